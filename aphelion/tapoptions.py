# -*- test-case-name: tests.test_tap -*-
"""
The options of C{twistd aphelion} (L{aphelion.tap.Options}): the table of
its flags and parameters with their defaults (L{Config}'s) and help, and
the parsers of the values that need one. The limits against abuse have
their own table (L{aphelion.limitoptions}).
"""

from __future__ import annotations

from typing import Any

from twisted.python import usage

from aphelion.config import Config
from aphelion.control.servers import RemoteGameServer
from aphelion.handshake import Revisions
from aphelion.limitoptions import limitParameters

__all__ = [
    "FLAGS",
    "PARAMETERS",
    "adminToken",
    "gameConfig",
    "remoteGameServer",
    "revisions",
]

_DEFAULTS = Config()


def revisions(value: str) -> Revisions:
    """
    :return: the L{Revisions} of C{MIN:CURRENT} (or C{N}, for C{N:N}).
    """
    try:
        minimum, _, current = value.partition(":")
        return Revisions(int(minimum), int(current or minimum))
    except ValueError as e:
        raise usage.UsageError(
            f"revisions are MIN:CURRENT with 1 <= MIN <= CURRENT, not {value!r}"
        ) from e


def remoteGameServer(value: str) -> RemoteGameServer:
    """
    :return: the game server of C{--game-server HOST:PORT:TOKEN_FILE}, its
        control token read from the file now.
    """
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


def adminToken(path: str | None) -> bytes | None:
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


def gameConfig(value: str) -> tuple[str, bytes]:
    """
    :return: the content type and content of C{--game-config
        CONTENT_TYPE:FILE}, the file read now.
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
    return contentType, content


FLAGS: list[list[Any]] = [
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
        "Serve no pages (index, chat page, aphelion.js): only the WebSocket endpoint.",
    ],
    [
        "legacy",
        None,
        "Serve the original Aphelion Java client: path /, ack cap 127, no "
        "unacknowledged limit, game revisions up to 5, results 5-8 sent as "
        "OTHER (each only where its own option keeps its default).",
    ],
]

PARAMETERS: list[list[Any]] = [
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
        "gc-threshold",
        None,
        _DEFAULTS.gcThreshold,
        "The young-generation threshold of the garbage collector, in the "
        "AuthProxy and its spawned game servers, set once started (what "
        "start-up made is frozen): full collections over thousands of live "
        "sessions stall every connection; 0 keeps Python's 700.",
        int,
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
        revisions,
    ],
    [
        "game-revisions",
        None,
        "1:1",
        "MIN:CURRENT revisions of the game protocol.",
        revisions,
    ],
]
