# -*- test-case-name: tests.test_interfaces -*-
"""
Fakes of the contracts of L{aphelion.interfaces}, for testing registries
and gateways without sockets or game servers.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from zope.interface import implementer

from aphelion.codes import AphelionProtocol
from aphelion.interfaces import (
    IConnection,
    IGameServerPool,
    IPlayer,
    IPlayerLink,
    IPooledServer,
)

__all__ = [
    "FakeGameServerPool",
    "FakeServer",
    "Player",
    "RecordingConnection",
    "RecordingPlayerLink",
]


@implementer(IConnection)
class RecordingConnection:
    """
    An L{IConnection} that records what a session sends it and how it is
    closed, for testing registries and gateways without sockets.

    :ivar sent: the payloads sent, in order.
    :ivar closed: C{(code, reason)} once closed, else L{None}.
    :ivar pauses: the causes for which reading is paused now.
    """

    def __init__(
        self,
        protocol: AphelionProtocol = AphelionProtocol.GAME,
        unacknowledged: int = 0,
        remoteAddress: str = "127.0.0.1",
    ) -> None:
        self.protocol = protocol
        self.remoteAddress = remoteAddress
        self.unacknowledged = unacknowledged
        self.lastUsed = 0
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.pauses: set[str] = set()

    @property
    def isOpen(self) -> bool:
        """
        Whether L{closeWith} was not called yet.
        """
        return self.closed is None

    def sendPayload(self, payload: bytes) -> None:
        """
        Record C{payload}; it counts as unacknowledged.
        """
        self.sent.append(payload)
        self.unacknowledged += 1

    def closeWith(self, code: int, reason: str) -> None:
        """
        Record the close.
        """
        if self.closed is None:
            self.closed = (code, reason)

    def pauseReading(self, cause: str) -> None:
        """
        Record that reading is paused for C{cause}.
        """
        self.pauses.add(cause)

    def resumeReading(self, cause: str) -> None:
        """
        Record that C{cause} no longer pauses reading.
        """
        self.pauses.discard(cause)


@implementer(IPlayer)
class Player:
    """
    An L{IPlayer}, as a realm would yield it.
    """

    def __init__(
        self,
        playerId: str,
        name: str = "",
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        self.playerId = playerId
        self.name = name or playerId
        self.attributes = dict(attributes or {})


@implementer(IPlayerLink)
class RecordingPlayerLink:
    """
    An L{IPlayerLink} that records what the gateway asks of it.

    :ivar seat: the seat it reports to.
    :ivar sent: the payloads sent to the game server, in order.
    :ivar disconnected: C{(code, reason)} once disconnected, else L{None}.
    :ivar paused: whether reading from the game server is paused.
    """

    def __init__(self, seat: Any) -> None:
        self.seat = seat
        self.sent: list[bytes] = []
        self.disconnected: tuple[int, str] | None = None
        self.paused = False

    def sendGameData(self, payload: bytes) -> None:
        """
        Record a payload.
        """
        self.sent.append(payload)

    def disconnect(self, code: int, reason: str) -> None:
        """
        Record the disconnect.
        """
        self.disconnected = (code, reason)

    def pauseReading(self) -> None:
        """
        Record the pause.
        """
        self.paused = True

    def resumeReading(self) -> None:
        """
        Record the resume.
        """
        self.paused = False


@implementer(IPooledServer)
class FakeServer:
    """
    An L{IPooledServer} of a L{FakeGameServerPool}.

    :ivar room: players it still takes.
    :ivar pending: seats being set up on it.
    :ivar links: the links that seat players on it.
    """

    def __init__(self, serverId: str, room: int = 10) -> None:
        self.serverId = serverId
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.token = secrets.token_bytes(32)
        self.clientToken = secrets.token_bytes(32)
        self.draining = False
        self.room = room
        self.pending = 0
        self.links: set[IPlayerLink] = set()


@implementer(IGameServerPool)
class FakeGameServerPool:
    """
    An L{IGameServerPool} of L{FakeServer}s that picks the first with room,
    for testing a gateway without game servers.

    :ivar servers: the servers, in the order they are picked.
    """

    def __init__(self, *serverIds: str) -> None:
        self.servers = [FakeServer(serverId) for serverId in serverIds]
        self._observers: list[Any] = []

    def pick(self, exclude: Any) -> FakeServer | None:
        """
        The first server with room that is not in C{exclude}.
        """
        for server in self.servers:
            if server not in exclude and not server.draining:
                if len(server.links) + server.pending < server.room:
                    return server
        return None

    def seatingStarted(self, server: FakeServer) -> None:
        """
        Count a seat being set up.
        """
        server.pending += 1

    def seatingEnded(self, server: FakeServer) -> None:
        """
        Stop counting a seat being set up.
        """
        server.pending -= 1

    def linkAdded(self, server: FakeServer, link: IPlayerLink) -> None:
        """
        Record a link.
        """
        server.links.add(link)

    def linkRemoved(self, server: FakeServer, link: IPlayerLink) -> None:
        """
        Forget a link.
        """
        server.links.discard(link)

    def linksOf(self, server: FakeServer) -> set[IPlayerLink]:
        """
        The links of C{server}.
        """
        return server.links

    def addLostObserver(self, observer: Any) -> None:
        """
        Call C{observer(server)} from L{lose}.
        """
        self._observers.append(observer)

    def lose(self, server: FakeServer) -> None:
        """
        Report C{server} lost, as a crash would.
        """
        for observer in self._observers:
            observer(server)
