# -*- test-case-name: tests.test_lifecycle -*-
"""
The AuthProxy's life as an operator sees it: what a reload (C{SIGHUP}) may
change while players play, and the signal handlers that start a reload or a
graceful stop (C{SIGTERM}) on the reactor's thread.

L{configChanges} compares two L{Config}s field by field; L{RELOADABLE} names
the fields a reload applies to the running objects (the rest need a
restart); L{describeChange} says what changed without saying a secret.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twisted.logger import Logger

from aphelion.config import Config

__all__ = [
    "ATTRIBUTES",
    "RELOADABLE",
    "Change",
    "SignalHandlers",
    "configChanges",
    "describeChange",
]

ATTRIBUTES: dict[str, tuple[str, str]] = {
    "sessionTimeout": ("registry", "sessionTimeout"),
    "connectionsPerSession": ("registry", "maxConnections"),
    "queueLimit": ("registry", "queueLimit"),
    "queueBytes": ("registry", "queueBytes"),
    "maxSessions": ("registry", "maxSessions"),
    "sessionsPerAddress": ("registry", "sessionsPerAddress"),
    "upgradeTimeout": ("gate", "upgradeTimeout"),
    "connectionsPerAddress": ("gate", "connectionsPerAddress"),
    "connectionRate": ("gate", "connectionRate"),
    "connectionBurst": ("gate", "connectionBurst"),
    "loginsPerMinute": ("logins", "loginsPerMinute"),
    "checksPerAddress": ("logins", "checksPerAddress"),
    "authTries": ("rules", "authTries"),
    "seatingBuffer": ("rules", "heldPackets"),
    "seatingBufferBytes": ("rules", "heldBytes"),
    "restartInitial": ("monitor", "restartInitial"),
    "restartMax": ("monitor", "restartMax"),
    "drainDeadline": ("monitor", "drainDeadline"),
    "playerWriteLimit": ("monitor", "playerWriteLimit"),
    "seatHold": ("monitor", "seatHold"),
}
"""
The reloadable fields that one attribute of a running object holds, as
C{field: (object, attribute)}; the objects are the session registry, the
connection gate of the site, the gateway's seating rules and login
throttles, and the game-server monitor. Each applies to what starts after
the reload: a new session, a new connection, a new seat, an address first
seen, a game server spawned from now on.
"""

THROUGH_CONFIG = frozenset(
    {"maxConnections", "initTimeout", "authTimeout", "writePause", "writeLimit"}
)
"""
The reloadable fields that the WebSocket factory reads from its L{Config} at
each use.
"""

RELOADABLE = frozenset(
    {
        *ATTRIBUTES,
        *THROUGH_CONFIG,
        "checkers",
        "checkerQueue",
        "gameServers",
        "remoteGameServers",
        "gameOptions",
    }
)
"""
Every field a reload applies: the above, the C{--auth} checkers (their
secrets and databases are read again, whatever changed), the checker queue,
the game servers (new ones are started, removed ones drained) and the game
options (sent to game servers started from now on).
"""

_SECRET = frozenset({"checkers", "gameConfig", "adminToken"})


@dataclass(frozen=True)
class Change:
    """
    One field that differs between two L{Config}s.

    :ivar field: the field's name.
    :ivar old: the running value.
    :ivar new: the value read.
    """

    field: str
    old: Any
    new: Any

    @property
    def reloadable(self) -> bool:
        """
        Whether a reload applies it.
        """
        return self.field in RELOADABLE


def configChanges(old: Config, new: Config) -> list[Change]:
    """
    :return: the fields that differ, in the order of L{Config}. The
        checkers are objects made anew by each parse: they always count as
        changed when there are any.
    """
    changes = []
    for f in fields(Config):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if f.name == "checkers":
            if before or after:
                changes.append(Change(f.name, before, after))
        elif before != after:
            changes.append(Change(f.name, before, after))
    return changes


def _withoutPassword(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _show(field: str, value: Any) -> str:
    if field == "remoteGameServers":
        # The control tokens stay out of the log.
        return "[" + ", ".join(f"{r.host}:{r.port}" for r in value) + "]"
    if field == "registry":
        # redis://:PASSWORD@host: the password stays out of the log.
        return repr(_withoutPassword(value))
    if field == "gameOptions":
        # A game's options may carry its secrets (an API key): keys only.
        return "[" + ", ".join(sorted(key for key, _ in value)) + "]"
    return repr(value)


def describeChange(change: Change) -> str:
    """
    :return: C{field: old -> new}, or for a field that may hold a secret
        (the checkers, the game config), the field's name and a word; the
        remote game servers by address and the game options by key.
    """
    if change.field == "checkers":
        return "checkers: read again (secrets and databases)"
    if change.field in _SECRET:
        return f"{change.field}: changed"
    return (
        f"{change.field}: {_show(change.field, change.old)}"
        f" -> {_show(change.field, change.new)}"
    )


SignalInstaller = Callable[[int, Any], Any]


class SignalHandlers:
    """
    Signal handlers that run their work on the reactor's thread: the
    handler only calls C{reactor.callFromThread}, the one reactor call that
    is safe from a signal handler.

    :ivar installed: whether the handlers are installed.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        handlers: dict[int, Callable[[], object]],
        installSignal: SignalInstaller = signal.signal,
    ) -> None:
        """
        :param reactor: provides C{callFromThread}.
        :param handlers: what to do on each signal, by number.
        :param installSignal: L{signal.signal}, or a fake in tests.
        """
        self._reactor = reactor
        self._handlers = handlers
        self._installSignal = installSignal
        self._previous: dict[int, Any] = {}
        self.installed = False

    def install(self) -> None:
        """
        Install the handlers, keeping the ones they replace.
        """
        if self.installed:
            return
        for number, work in self._handlers.items():
            self._previous[number] = self._installSignal(
                number, partial(self._received, work)
            )
        self.installed = True

    def uninstall(self) -> None:
        """
        Put back the handlers that L{install} replaced.
        """
        if not self.installed:
            return
        for number, previous in self._previous.items():
            self._installSignal(
                number, signal.SIG_DFL if previous is None else previous
            )
        self._previous.clear()
        self.installed = False

    def _received(
        self, work: Callable[[], object], number: int, frame: FrameType | None
    ) -> None:
        self._reactor.callFromThread(work)
