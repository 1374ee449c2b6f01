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
    :ivar ackDelay: seconds before an ack-only packet; 0 is the end of the
        current reactor turn.
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
    """

    listen: tuple[str, ...] = ("tcp:80",)
    path: str = "/aphelion"
    revisions: dict[int, Revisions] = field(default_factory=_defaultRevisions)
    initTimeout: float = 10.0
    maxMessage: int = 65536
    ackDelay: float = 0.0
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
    gameConfig: tuple[str, bytes] | None = None
