# -*- test-case-name: tests.test_lifecycle -*-
"""
Reloading the AuthProxy on C{SIGHUP}: L{ReloadMixin}, the part of
L{aphelion.service.AuthProxyService} that reads the configuration again and
applies to the running objects what may change while players play.

What may change, and how a change is found and described, is
L{aphelion.lifecycle}; this module applies it. Its log lines are the
service's (namespace C{aphelion.service.AuthProxyService}), as the
operations guide quotes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python import usage

from aphelion.config import Config
from aphelion.lifecycle import ATTRIBUTES, Change, configChanges, describeChange
from aphelion.parts import makeAuthenticator

if TYPE_CHECKING:
    from twisted.web.server import Site

    from aphelion.control.spawn import GameServerMonitor
    from aphelion.gateway import Gateway
    from aphelion.websocket import AphelionServerFactory

__all__ = ["ReloadMixin"]


class ReloadMixin:
    """
    The C{SIGHUP} reload of L{aphelion.service.AuthProxyService}, which
    holds the attributes below.

    :ivar config: the settings in force.
    :ivar loadConfig: reads the configuration again, or L{None}.
    :ivar checkerCloseDelay: seconds after a reload before the replaced
        checkers are closed.
    """

    _log: Logger
    config: Config
    draining: bool
    loadConfig: Callable[[], Config] | None
    checkerCloseDelay: float
    factory: AphelionServerFactory
    monitor: GameServerMonitor
    gateway: Gateway
    site: Site
    _reactor: Any
    _closeCalls: list[Any]

    def reloadConfig(self) -> list[Change]:
        """
        Called on C{SIGHUP}: read the configuration again and apply what
        may change while players play (L{reload}). A configuration that
        does not parse is logged and changes nothing.

        :return: the changes found.
        """
        if self.draining:
            self._log.warn("reload ignored: the AuthProxy is stopping")
            return []
        if self.loadConfig is None:
            self._log.warn("reload: there is no configuration to read again")
            return []
        try:
            new = self.loadConfig()
        except usage.UsageError as e:
            self._log.error("reload refused, nothing changed: {error}", error=str(e))
            return []
        except Exception:
            # Run from a signal: nothing may reach the reactor.
            self._log.failure("reload refused, nothing changed: reading failed")
            return []
        changes: list[Change] = []
        with self._log.failuresHandled("reload failed part way"):
            changes = self.reload(new)
        return changes

    def reload(self, new: Config) -> list[Change]:
        """
        Apply the reloadable fields of C{new} (L{RELOADABLE}) to the running
        objects; log each change (never a secret), and each field that
        needs a restart.

        :return: every change found, applied or not.
        """
        changes = configChanges(self.config, new)
        applied: list[Change] = []
        for change in changes:
            ok = False
            if change.reloadable:
                # One change that fails leaves the others, and self.config
                # keeps only what was applied.
                with self._log.failuresHandled(
                    "reload: applying {field} failed; not applied",
                    field=change.field,
                ) as op:
                    ok = self._apply(change, new)
                if op.failed:
                    continue
            if not ok:
                self._log.warn(
                    "reload: {change} needs a restart; not applied",
                    change=describeChange(change),
                    field=change.field,
                )
                continue
            applied.append(change)
            self._log.info(
                "reload: {change}", change=describeChange(change), field=change.field
            )
        if not changes:
            self._log.info("reload: nothing changed")
        self.config = replace(self.config, **{c.field: c.new for c in applied})
        self.factory.config = self.config
        return changes

    def _apply(self, change: Change, new: Config) -> bool:
        """
        Apply one reloadable change.

        :return: whether it could be applied.
        """
        if change.field in ATTRIBUTES:
            owner, attribute = ATTRIBUTES[change.field]
            target = {
                "registry": self.factory.registry,
                "gate": getattr(self.site, "gate", None),
                "rules": self.gateway.rules,
                "logins": getattr(self.gateway, "logins", None),
                "monitor": self.monitor,
            }[owner]
            if not hasattr(target, attribute):
                return False
            setattr(target, attribute, change.new)
        elif change.field in ("checkers", "checkerQueue"):
            if change.field == "checkerQueue" and new.checkers:
                return True  # the checkers' change makes a queue of this size
            self._replaceAuthenticator(new)
        elif change.field in ("gameServers", "remoteGameServers"):
            started, drained = self.monitor.setServers(
                new.gameServers, new.remoteGameServers
            )
            if started or drained:
                self._log.info(
                    "reload: game servers started {started}, drained {drained}",
                    started=started,
                    drained=drained,
                )
        elif change.field == "gameOptions":
            self.monitor.options = dict(new.gameOptions)
        return True

    def _replaceAuthenticator(self, new: Config) -> None:
        old = self.config.checkers
        self.gateway.setAuthenticator(makeAuthenticator(new, self._reactor))
        closers = [c.close for c in old if callable(getattr(c, "close", None))]
        if closers and self._reactor is not None:
            self._closeCalls = [c for c in self._closeCalls if c.active()]
            self._closeCalls.extend(
                self._reactor.callLater(
                    self.checkerCloseDelay, self._closeChecker, close
                )
                for close in closers
            )

    def _closeChecker(self, close: Callable[[], object]) -> None:
        # On a timer: a checker that fails to close must not reach the
        # reactor.
        with self._log.failuresHandled("closing a replaced checker failed"):
            closed = close()
            if isinstance(closed, Deferred):
                closed.addErrback(
                    lambda f: self._log.failure("closing a replaced checker failed", f)
                )
