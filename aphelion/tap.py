# -*- test-case-name: tests.test_tap -*-
"""
C{twistd aphelion}: command-line options and C{makeService}. Glue only.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.application.service import IService
from twisted.cred import strcred
from twisted.logger import Logger
from twisted.python import usage

from aphelion.auth import IPlayerIdCredentials
from aphelion.codes import AphelionProtocol
from aphelion.config import Config
from aphelion.configfile import ConfigFileOptions
from aphelion.gctune import tuneCollector
from aphelion.handshake import Revisions
from aphelion.limitoptions import (
    atLeast,
    checkLimits,
    limitValues,
)
from aphelion.limits import Exemptions
from aphelion.registry.client import parseURL
from aphelion.tapoptions import (
    FLAGS,
    PARAMETERS,
    adminToken,
    gameConfig,
    remoteGameServer,
    revisions,
)
from aphelion.web import raiseFileLimit

__all__ = ["Options", "makeService"]

_DEFAULTS = Config()
_log = Logger()


class Options(ConfigFileOptions, strcred.AuthOptionMixin):
    """
    Options of C{twistd aphelion}. Defaults are the contract's (Part 4).
    """

    # --auth may carry a password (memory:USER:PASSWORD).
    secretKeys = frozenset({"auth"})

    supportedInterfaces = [IPlayerIdCredentials]

    synopsis = "[options]"
    longdesc = (
        "Run an aphelion AuthProxy: WebSocket clients on --listen endpoints "
        "(strports: tcp:8080, ssl:443:privateKey=key.pem:certKey=cert.pem)."
    )

    optFlags = FLAGS
    optParameters = PARAMETERS

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["game-server"] = []
        self["game-option"] = []
        self["game-config"] = None
        self["exempt"] = []

    def opt_game_server(self, value: str) -> None:
        """
        A game server started elsewhere, as HOST:PORT:TOKEN_FILE; the file
        holds its control token in hex (repeatable).
        """
        self["game-server"].append(remoteGameServer(value))

    def opt_game_config(self, value: str) -> None:
        """
        CONTENT_TYPE:FILE, the game config sent to every game server in
        Control (read now), such as application/json:arena.json.
        """
        self["game-config"] = gameConfig(value)

    def opt_game_option(self, value: str) -> None:
        """
        KEY=VALUE passed to every game server in Control (repeatable).
        """
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise usage.UsageError(f"--game-option is KEY=VALUE, not {value!r}")
        self["game-option"].append((key, item))

    def opt_exempt(self, value: str) -> None:
        """
        A CIDR network (such as 127.0.0.0/8) exempt from the per-address
        limits: load generators, health checkers (repeatable).
        """
        try:
            Exemptions([value])
        except ValueError as e:
            raise usage.UsageError(f"--exempt is a CIDR network, not {value!r}") from e
        self["exempt"].append(value)

    def opt_listen(self, description: str) -> None:
        """
        A strports endpoint for WebSocket clients (repeatable; default tcp:80).
        """
        self["listen"].append(description)

    def postOptions(self) -> None:
        """
        Check every value and raise L{usage.UsageError} for a wrong one.
        """
        if not self["listen"]:
            self["listen"] = list(_DEFAULTS.listen)
        if len(self.get("credCheckers", [])) > 1:
            # A Portal keeps one checker per credentials interface.
            raise usage.UsageError("give --auth once")
        for name in ("ping-revisions", "game-revisions"):
            if isinstance(self[name], str):
                self[name] = revisions(self[name])
        if self["legacy"]:
            self._legacyProfile()
        if not self["path"].startswith("/"):
            raise usage.UsageError("--path must start with /")
        if not self["pages-prefix"].startswith("/"):
            raise usage.UsageError("--pages-prefix must start with /")
        self._atLeast("init-timeout", 0, strictly=True)
        self._atLeast("ack-delay", 0)
        self._atLeast("auto-ping-interval", 1)
        self._atLeast("auto-ping-timeout", 0, strictly=True)
        self._atLeast("session-timeout", 0)
        self._atLeast("unacked-limit", 0)
        self._atLeast("connections-per-session", 1)
        self._atLeast("queue-limit", 0)
        self._atLeast("max-connections", 0)
        self._atLeast("auth-tries", 1)
        self._atLeast("game-servers", 0)
        if self["seating"] not in ("spread", "fill"):
            raise usage.UsageError("--seating is spread or fill")
        if self["registry"] != "memory":
            try:
                parseURL(self["registry"])
            except ValueError as e:
                raise usage.UsageError(
                    f"--registry is memory or a redis:// URL: {e}"
                ) from None
        self._atLeast("counts-interval", 0, strictly=True)
        self._atLeast("control-timeout", 0, strictly=True)
        self._atLeast("heartbeat", 0, strictly=True)
        self._atLeast("restart-initial", 0, strictly=True)
        self._atLeast("restart-max", 0, strictly=True)
        self._atLeast("dead-after", 0, strictly=True)
        self._atLeast("drain-deadline", 0)
        self._atLeast("seat-hold", 0)
        self._atLeast("gc-threshold", 0)
        self._atLeast("workers", 1)
        self._atLeast("worker", 0)
        if self["worker"] > self["workers"]:
            raise usage.UsageError("--worker is at most --workers")
        if self["workers"] > 1:
            self._sharedListeners()
        # The parent of --workers checked this; its workers run regardless.
        registry = self.get("registry") or "memory"
        if self["workers"] > 1 and not self["worker"] and registry == "memory":
            raise usage.UsageError(
                "--workers above 1 needs a Redis registry (--registry "
                "redis://HOST:PORT): the workers share sessions and game "
                "servers through it"
            )
        if self["dead-after"] <= self["heartbeat"]:
            raise usage.UsageError("--dead-after must be longer than --heartbeat")
        if self["restart-max"] < self["restart-initial"]:
            raise usage.UsageError("--restart-max must be at least --restart-initial")
        if not 1 <= self["ack-cap"] <= 254:
            raise usage.UsageError("--ack-cap must be 1 to 254")
        if not 2 <= self["max-message"] <= 65536:
            raise usage.UsageError("--max-message must be 2 to 65536")
        checkLimits(self)
        self["admin-token"] = adminToken(self["admin-token-file"])
        if self["admin-token-file"] and not self["admin"]:
            raise usage.UsageError("--admin-token-file needs --admin")

    def _legacyProfile(self) -> None:
        """
        Apply C{--legacy} (Part 1.7) to every option still at its default.
        """
        for name, default, legacy in (
            ("path", _DEFAULTS.path, "/"),
            ("ack-cap", _DEFAULTS.ackCap, 127),
            ("unacked-limit", _DEFAULTS.unackedLimit, 0),
        ):
            if self[name] == default:
                self[name] = legacy
        if self["game-revisions"] == Revisions():
            self["game-revisions"] = Revisions(1, 5)

    def _sharedListeners(self) -> None:
        """
        Check that every C{--listen} can be shared by workers.
        """
        from aphelion.workers import parseListen

        for description in self["listen"]:
            try:
                parseListen(description)
            except ValueError as e:
                raise usage.UsageError(str(e)) from e

    def _atLeast(self, name: str, low: float, strictly: bool = False) -> None:
        atLeast(self, name, low, strictly)

    def toConfig(self) -> Config:
        """
        :return: the frozen L{Config} these options describe.
        """
        return Config(
            listen=tuple(self["listen"]),
            path=self["path"],
            revisions={
                AphelionProtocol.PING: self["ping-revisions"],
                AphelionProtocol.GAME: self["game-revisions"],
            },
            initTimeout=self["init-timeout"],
            maxMessage=self["max-message"],
            ackDelay=self["ack-delay"],
            ackCap=self["ack-cap"],
            unackedLimit=self["unacked-limit"] or None,
            autoPingInterval=self["auto-ping-interval"],
            autoPingTimeout=self["auto-ping-timeout"],
            sessionTimeout=self["session-timeout"],
            connectionsPerSession=self["connections-per-session"],
            queueLimit=self["queue-limit"],
            maxConnections=self["max-connections"],
            trustForwardedFor=bool(self["trust-forwarded-for"]),
            authTries=self["auth-tries"],
            checkers=tuple(self.get("credCheckers", [])),
            refuseNewcomer=bool(self["refuse-newcomer"]),
            game=self["game"],
            gameServers=self["game-servers"],
            remoteGameServers=tuple(self["game-server"]),
            controlTimeout=self["control-timeout"],
            heartbeatInterval=self["heartbeat"],
            deadAfter=self["dead-after"],
            restartInitial=self["restart-initial"],
            restartMax=self["restart-max"],
            drainDeadline=self["drain-deadline"],
            gameOptions=tuple(self["game-option"]),
            seating=self["seating"],
            registry=self["registry"],
            nodeAddress=self["node-address"],
            countsInterval=self["counts-interval"],
            gameConfig=self["game-config"],
            legacy=bool(self["legacy"]),
            exempt=tuple(self["exempt"]),
            pagesPrefix=self["pages-prefix"],
            **limitValues(self),
            pages=not self["no-pages"],
            seatHold=self["seat-hold"],
            gcThreshold=self["gc-threshold"],
            workers=self["workers"],
            admin=self["admin"] or None,
            adminToken=self.get("admin-token"),
        )


def makeService(options: Options) -> IService:
    """
    Build the AuthProxy service tree from parsed options.
    """
    from twisted.internet import reactor

    from aphelion import service

    config = options.toConfig()
    for warning in raiseFileLimit(config):
        _log.warn("{warning}", warning=warning)
    reactor_: Any = reactor
    # Once started, before serving: what start-up made is frozen.
    reactor_.callWhenRunning(tuneCollector, config.gcThreshold)
    if options["worker"]:
        from aphelion.workers import makeWorkerService

        return makeWorkerService(config, reactor_, handleSignals=True)
    if config.workers > 1:
        from aphelion.workers import WorkersService

        return WorkersService(config, reactor_, options.arguments, handleSignals=True)
    top = service.build(config, reactor_, handleSignals=True)
    top.loadConfig = partial(_readAgain, type(options), list(options.arguments))
    return top


def _readAgain(optionsType: type[Options], arguments: list[str]) -> Config:
    """
    Parse the same command line again, reading its C{--config} file again:
    the configuration of a reload.

    :raises usage.UsageError: for a wrong value.
    """
    options = optionsType()
    options.parseOptions(arguments)
    return options.toConfig()
