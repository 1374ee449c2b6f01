# -*- test-case-name: tests.test_tap -*-
"""
The frozen configuration that C{tap.makeService} builds and every component
reads through its constructor. Defaults are the contract's (Part 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aphelion.codes import AphelionProtocol
from aphelion.handshake import Revisions

__all__ = ["Config"]


def _defaultRevisions() -> dict[int, Revisions]:
    return {AphelionProtocol.PING: Revisions(), AphelionProtocol.GAME: Revisions()}


@dataclass(frozen=True)
class Config:
    """
    Every setting of an AuthProxy.

    :ivar listen: strports descriptions of the WebSocket endpoints.
    :ivar path: the URL path of the WebSocket endpoint.
    :ivar revisions: the minimum and current revision of each served protocol.
    :ivar initTimeout: seconds to wait for the C2SInitPacket (close 4004).
    :ivar maxMessage: the largest WebSocket message, ack byte included (1009).
    :ivar ackDelay: seconds before an ack-only packet, unless a packet sent
        meanwhile carries the ack (5 ms, Part 1.3); 0 is the end of the
        current reactor turn. At the ack cap the ack goes at the end of the
        turn whatever the delay.
    :ivar ackCap: the most one packet acknowledges (127 for signed readers).
    :ivar unackedLimit: packets the peer may leave unacknowledged (4007), or
        L{None} to switch the check off.
    :ivar autoPingInterval: seconds between WebSocket pings.
    :ivar autoPingTimeout: seconds to wait for a pong before dropping.
    :ivar sessionTimeout: seconds a session lingers after its last connection.
    :ivar connectionsPerSession: connections one session may hold (1013).
    :ivar queueLimit: packets queued while a session has no game connection.
    :ivar maxConnections: open WebSocket connections in all (1013), or 0 for
        no limit.
    :ivar trustForwardedFor: take the client address from
        C{X-Forwarded-For}, set by a trusted front proxy.
    :ivar authTries: authentication tries per connection (4008).
    :ivar checkers: the C{twisted.cred} checkers of C{--auth}; none means
        every C{authenticate} is answered C{AUTH_METHOD_UNSUPPORTED}.
    :ivar refuseNewcomer: answer C{ID_IN_USE} to a second login of a player
        instead of ending the first session.
    :ivar game: the module of the game that local game servers run.
    :ivar gameServers: how many local game-server processes to spawn.
    :ivar remoteGameServers: game servers elsewhere, as
        L{aphelion.control.spawn.RemoteGameServer}s.
    :ivar controlTimeout: seconds to wait for a game server's first envelope.
    :ivar heartbeatInterval: seconds between control heartbeats.
    :ivar deadAfter: seconds of silence after which a control connection is
        dead.
    :ivar restartInitial: the first restart delay of a game server.
    :ivar restartMax: the longest restart delay.
    :ivar drainDeadline: seconds a draining game server has to disconnect its
        players.
    :ivar gameOptions: options passed to every game server in C{Control}.
    :ivar gameConfig: C{(content_type, content)} of the C{GameConfig} sent
        to every game server in C{Control}, or L{None}.
    :ivar seating: C{spread} (the fewest players first) or C{fill} (the most
        players that still leave room first).
    :ivar registry: C{memory}, or the C{redis://} (C{rediss://}) URL of the
        cluster's shared session registry (Part 5).
    :ivar nodeAddress: this AuthProxy's address, published in its node
        record.
    :ivar countsInterval: seconds between refreshes of the cluster's counts
        and of the node record (the node's heartbeat).
    :ivar legacy: the profile of the original Aphelion Java client (Part
        1.7): results 5-8 of C{AuthenticateResponse} are sent as C{OTHER}
        with the real one in the description. C{--legacy} also sets the
        path, ack cap, unacknowledged limit and game revisions.
    :ivar upgradeTimeout: seconds from TCP accept to a completed WebSocket
        upgrade; the connection is dropped after it (Part 6).
    :ivar connectionsPerAddress: open connections per client address,
        counted from TCP accept; 0 is no limit.
    :ivar connectionRate: new connections per second per client address.
    :ivar connectionBurst: the burst of new connections per client address.
    :ivar authTimeout: seconds a game connection has from its init packet to
        be authenticated (4008 "not authenticated in time"); 0 is no limit.
    :ivar loginsPerMinute: authentication tries per minute per client
        address, and per player ID (token buckets of that size).
    :ivar checkerQueue: credential checks waiting for the checker at once;
        more are answered C{OTHER} "busy, try again later".
    :ivar checksPerAddress: credential checks of one client address running
        at once, so that one address cannot fill the checker's pool; more
        are answered C{OTHER} "busy, try again later". 0 is no limit.
    :ivar maxSessions: sessions in all (1013); 0 is no limit.
    :ivar sessionsPerAddress: sessions made from one client address (1013);
        0 is no limit.
    :ivar writePause: bytes waiting to be written to one client connection
        at which the proxy stops reading it.
    :ivar writeLimit: bytes waiting to be written to one client connection
        at which it is closed with 4007 "reads too slowly".
    :ivar queueBytes: bytes of packets queued for a lingering session; more
        ends the session.
    :ivar seatingBuffer: payloads a client may send while being seated or
        moved (4007 beyond).
    :ivar seatingBufferBytes: bytes of payloads a client may send while
        being seated or moved (4007 beyond).
    :ivar playerWriteLimit: bytes a game server buffers toward one player
        connection before it disconnects that player ("reads too slowly").
    :ivar logInterval: seconds between the summary lines of a rate-limited
        log cause.
    :ivar exempt: CIDR networks exempt from the per-address limits.
    :ivar pagesPrefix: the URL path under which the players' pages (the
        index, the chat page, C{aphelion.js}) are served.
    :ivar pages: whether the players' pages are served at all.
    :ivar gcThreshold: the young-generation threshold of the garbage
        collector of the AuthProxy and of its spawned game servers, set once
        started, with what start-up made frozen (L{aphelion.gctune}); 0
        keeps Python's.
    :ivar seatHold: seconds a game server holds the seat of a player whose
        connection went without a C{Disconnect} (or with C{MOVED}), for it to
        resume (Part 5.2); 0 holds none.
    :ivar workers: AuthProxy worker processes sharing the listening sockets
        (Part 5.3); more than 1 needs a Redis registry.
    :ivar admin: the strports description of the admin endpoint (metrics,
        probes, API, dashboard), or L{None} for none.
    :ivar adminToken: the bearer token of the admin API, or L{None}: then
        the API refuses everything.
    """

    listen: tuple[str, ...] = ("tcp:80",)
    path: str = "/aphelion"
    revisions: dict[int, Revisions] = field(default_factory=_defaultRevisions)
    initTimeout: float = 10.0
    maxMessage: int = 65536
    ackDelay: float = 0.005
    ackCap: int = 254
    unackedLimit: int | None = 1024
    autoPingInterval: float = 10.0
    autoPingTimeout: float = 20.0
    sessionTimeout: float = 60.0
    connectionsPerSession: int = 8
    queueLimit: int = 256
    maxConnections: int = 10000
    trustForwardedFor: bool = False
    authTries: int = 3
    checkers: tuple[Any, ...] = ()
    refuseNewcomer: bool = False
    game: str = "aphelion.games.chat"
    gameServers: int = 1
    remoteGameServers: tuple[Any, ...] = ()
    controlTimeout: float = 10.0
    heartbeatInterval: float = 5.0
    deadAfter: float = 15.0
    restartInitial: float = 1.0
    restartMax: float = 60.0
    drainDeadline: float = 10.0
    gameOptions: tuple[tuple[str, str], ...] = ()
    seating: str = "spread"
    registry: str = "memory"
    nodeAddress: str = ""
    countsInterval: float = 1.0
    gameConfig: tuple[str, bytes] | None = None
    legacy: bool = False
    upgradeTimeout: float = 10.0
    connectionsPerAddress: int = 64
    connectionRate: float = 20.0
    connectionBurst: int = 40
    authTimeout: float = 30.0
    loginsPerMinute: float = 10.0
    checkerQueue: int = 64
    checksPerAddress: int = 2
    maxSessions: int = 100_000
    sessionsPerAddress: int = 256
    writePause: int = 1024 * 1024
    writeLimit: int = 4 * 1024 * 1024
    queueBytes: int = 1024 * 1024
    seatingBuffer: int = 64
    seatingBufferBytes: int = 256 * 1024
    playerWriteLimit: int = 4 * 1024 * 1024
    logInterval: float = 10.0
    exempt: tuple[str, ...] = ()
    pagesPrefix: str = "/"
    pages: bool = True
    seatHold: float = 15.0
    gcThreshold: int = 50_000
    workers: int = 1
    admin: str | None = None
    adminToken: bytes | None = field(default=None, repr=False)
