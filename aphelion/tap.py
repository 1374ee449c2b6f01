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
from aphelion.control.spawn import RemoteGameServer
from aphelion.handshake import Revisions
from aphelion.limitoptions import (
    atLeast,
    checkLimits,
    limitParameters,
    limitValues,
)
from aphelion.limits import Exemptions
from aphelion.registry.client import parseURL
from aphelion.web import raiseFileLimit

__all__ = ["Options", "makeService"]

_DEFAULTS = Config()
_log = Logger()


def _revisions(value: str) -> Revisions:
    try:
        minimum, _, current = value.partition(":")
        return Revisions(int(minimum), int(current or minimum))
    except ValueError as e:
        raise usage.UsageError(
            f"revisions are MIN:CURRENT with 1 <= MIN <= CURRENT, not {value!r}"
        ) from e


def _remoteGameServer(value: str) -> RemoteGameServer:
    host, sep, rest = value.rpartition(":")
    host, sep2, port = host.rpartition(":")
    tokenFile = rest
    if not (sep and sep2 and host and port.isdigit() and tokenFile):
        raise usage.UsageError(f"--game-server is HOST:PORT:TOKEN_FILE, not {value!r}")
    try:
        with open(tokenFile, "rb") as f:
            text = f.read().strip()
        token = bytes.fromhex(text.decode("ascii"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise usage.UsageError(
            f"cannot read a hex control token from {tokenFile!r}: {e}"
        ) from e
    if len(token) != 32:
        raise usage.UsageError(f"the token in {tokenFile!r} is not 32 bytes")
    return RemoteGameServer(host.strip("[]"), int(port), token)


def _adminToken(path: str | None) -> bytes | None:
    """
    The admin API's bearer token, read from the file at C{path} (L{None}
    for no file): printable ASCII without spaces, at least 16 characters.
    """
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            token = f.read().strip()
    except OSError as e:
        raise usage.UsageError(f"cannot read --admin-token-file {path!r}: {e}") from e
    if len(token) < 16 or not all(0x21 <= byte <= 0x7E for byte in token):
        raise usage.UsageError(
            f"the token in {path!r} must be at least 16 printable ASCII "
            "characters without spaces"
        )
    return token


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

    optFlags = [
        [
            "trust-forwarded-for",
            None,
            "Take the client address from X-Forwarded-For (behind a trusted proxy).",
        ],
        [
            "refuse-newcomer",
            None,
            "Refuse a second login of a player (ID_IN_USE) instead of ending "
            "the first session.",
        ],
        [
            "no-pages",
            None,
            "Serve no pages (index, chat page, aphelion.js): only the WebSocket "
            "endpoint.",
        ],
        [
            "legacy",
            None,
            "Serve the original Aphelion Java client: path /, ack cap 127, no "
            "unacknowledged limit, game revisions up to 5, results 5-8 sent as "
            "OTHER (each only where its own option keeps its default).",
        ],
    ]

    optParameters = [
        *limitParameters(),
        ["path", None, _DEFAULTS.path, "URL path of the WebSocket endpoint."],
        [
            "pages-prefix",
            None,
            _DEFAULTS.pagesPrefix,
            "URL path of the players' pages (index, chat page, /aphelion.js).",
        ],
        [
            "init-timeout",
            None,
            _DEFAULTS.initTimeout,
            "Seconds to wait for the init packet (close 4004).",
            float,
        ],
        [
            "max-message",
            None,
            _DEFAULTS.maxMessage,
            "Largest WebSocket message in bytes, ack byte included (close 1009).",
            int,
        ],
        [
            "ack-delay",
            None,
            _DEFAULTS.ackDelay,
            "Seconds before an ack-only packet unless a packet sent meanwhile "
            "carries the ack; 0 is the end of the reactor turn.",
            float,
        ],
        [
            "ack-cap",
            None,
            _DEFAULTS.ackCap,
            "Most packets one ack byte acknowledges (127 for signed readers).",
            int,
        ],
        [
            "unacked-limit",
            None,
            _DEFAULTS.unackedLimit,
            "Packets a client may leave unacknowledged (close 4007); 0 is no limit.",
            int,
        ],
        [
            "auto-ping-interval",
            None,
            _DEFAULTS.autoPingInterval,
            "Seconds between WebSocket pings (at least 1).",
            float,
        ],
        [
            "auto-ping-timeout",
            None,
            _DEFAULTS.autoPingTimeout,
            "Seconds to wait for a pong before dropping the connection.",
            float,
        ],
        [
            "session-timeout",
            None,
            _DEFAULTS.sessionTimeout,
            "Seconds a session lingers after its last connection.",
            float,
        ],
        [
            "connections-per-session",
            None,
            _DEFAULTS.connectionsPerSession,
            "Connections one session may hold (close 1013).",
            int,
        ],
        [
            "queue-limit",
            None,
            _DEFAULTS.queueLimit,
            "Packets queued while a session has no game connection.",
            int,
        ],
        [
            "max-connections",
            None,
            _DEFAULTS.maxConnections,
            "Open WebSocket connections in all (close 1013); 0 is no limit.",
            int,
        ],
        [
            "auth-tries",
            None,
            _DEFAULTS.authTries,
            "Authentication tries per connection (close 4008).",
            int,
        ],
        [
            "game",
            None,
            _DEFAULTS.game,
            "Module of the game the local game servers run.",
        ],
        [
            "registry",
            None,
            _DEFAULTS.registry,
            "Where sessions live: memory (this process alone), or "
            "redis://[[USER]:PASSWORD@]HOST:PORT/DB (rediss:// for TLS) to "
            "share them with the other AuthProxies of a cluster (Part 5).",
        ],
        [
            "node-address",
            None,
            _DEFAULTS.nodeAddress,
            "This AuthProxy's address as other nodes and operators see it, "
            "published in its node record (with --registry redis://...).",
        ],
        [
            "counts-interval",
            None,
            _DEFAULTS.countsInterval,
            "Seconds between refreshes of the cluster's player counts and of "
            "this node's record in Redis (its heartbeat).",
            float,
        ],
        [
            "seating",
            None,
            _DEFAULTS.seating,
            "spread: seat on the game server with the fewest players; fill: on "
            "the one with the most that has room (players share a room).",
        ],
        [
            "game-servers",
            None,
            _DEFAULTS.gameServers,
            "Local game-server processes to spawn.",
            int,
        ],
        [
            "control-timeout",
            None,
            _DEFAULTS.controlTimeout,
            "Seconds to wait for an envelope connection's first message.",
            float,
        ],
        [
            "heartbeat",
            None,
            _DEFAULTS.heartbeatInterval,
            "Seconds between control heartbeats.",
            float,
        ],
        [
            "dead-after",
            None,
            _DEFAULTS.deadAfter,
            "Seconds of silence after which a control connection is dead.",
            float,
        ],
        [
            "restart-initial",
            None,
            _DEFAULTS.restartInitial,
            "First restart delay of a game server, doubling each time.",
            float,
        ],
        [
            "restart-max",
            None,
            _DEFAULTS.restartMax,
            "Longest restart delay of a game server.",
            float,
        ],
        [
            "drain-deadline",
            None,
            _DEFAULTS.drainDeadline,
            "Seconds a draining game server has to disconnect its players.",
            float,
        ],
        [
            "admin",
            None,
            None,
            "A strports endpoint for operators (off by default): /metrics, "
            "/health, /ready, the /api/ and a dashboard; such as "
            "tcp:9100:interface=127.0.0.1.",
        ],
        [
            "admin-token-file",
            None,
            None,
            "A file holding the bearer token of the admin API (read at start; "
            "at least 16 characters). Without one the API refuses everything.",
        ],
        [
            "seat-hold",
            None,
            _DEFAULTS.seatHold,
            "Seconds a game server holds the seat of a player whose connection "
            "went (its AuthProxy died, or its session moved to another), for it "
            "to resume; 0 holds none.",
            float,
        ],
        [
            "workers",
            None,
            _DEFAULTS.workers,
            "AuthProxy worker processes sharing the listening sockets; this "
            "process then runs the game servers. More than 1 needs a Redis "
            "registry.",
            int,
        ],
        [
            "worker",
            None,
            0,
            "Internal: set by the parent of --workers on the command line of "
            "its worker number I (it runs no game servers and accepts on the "
            "sockets the parent passes).",
            int,
        ],
        [
            "ping-revisions",
            None,
            "1:1",
            "MIN:CURRENT revisions of the ping protocol.",
            _revisions,
        ],
        [
            "game-revisions",
            None,
            "1:1",
            "MIN:CURRENT revisions of the game protocol.",
            _revisions,
        ],
    ]

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
        self["game-server"].append(_remoteGameServer(value))

    def opt_game_config(self, value: str) -> None:
        """
        CONTENT_TYPE:FILE, the game config sent to every game server in
        Control (read now), such as application/json:arena.json.
        """
        contentType, sep, path = value.partition(":")
        if not sep or not contentType or not path:
            raise usage.UsageError(f"--game-config is CONTENT_TYPE:FILE, not {value!r}")
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as e:
            raise usage.UsageError(f"cannot read --game-config {path!r}: {e}") from e
        if len(content) > 60000:
            raise usage.UsageError("--game-config must fit in one envelope (60 KB)")
        self["game-config"] = (contentType, content)

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
                self[name] = _revisions(self[name])
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
        self["admin-token"] = _adminToken(self["admin-token-file"])
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
