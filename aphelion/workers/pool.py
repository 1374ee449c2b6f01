# -*- test-case-name: tests.test_workers -*-
"""
The game servers a worker seats players on: those its parent controls and
publishes (L{GameServerRecord}), held in a L{PublishedPool}.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from aphelion.control.servers import pickServer
from aphelion.interfaces import IGameServerPool, IPlayerLink, IPooledServer

__all__ = [
    "GameServerRecord",
    "PublishedPool",
    "PublishedServer",
    "decodeRecords",
    "encodeRecords",
]


@dataclass(frozen=True)
class GameServerRecord:
    """
    What a node publishes of a game server it controls: enough for another
    AuthProxy to seat players on it (Part 5.1), never its control token.

    :ivar serverId: its id.
    :ivar host: the address its player connections go to.
    :ivar port: its port.
    :ivar clientToken: the token its player connections present.
    :ivar name: the game's name.
    :ivar capacity: the players it takes.
    :ivar players: the players it reported in its last C{Status}.
    :ivar accepting: whether it takes players.
    """

    serverId: str
    host: str
    port: int
    clientToken: bytes = field(repr=False)
    name: str = ""
    capacity: int = 0
    players: int = 0
    accepting: bool = True

    @classmethod
    def fromServer(cls, server: Any) -> GameServerRecord:
        """
        The record of a L{aphelion.control.servers.GameServer}.
        """
        return cls(
            server.serverId,
            server.host,
            server.port,
            server.clientToken or server.token,
            server.name,
            server.capacity,
            server.players,
            server.accepting,
        )


def encodeRecords(records: Iterable[GameServerRecord]) -> bytes:
    """
    One line of JSON with every record (the client token in hex).
    """
    items = [
        {
            "id": r.serverId,
            "host": r.host,
            "port": r.port,
            "clientToken": r.clientToken.hex(),
            "name": r.name,
            "capacity": r.capacity,
            "players": r.players,
            "accepting": r.accepting,
        }
        for r in records
    ]
    return json.dumps({"servers": items}, separators=(",", ":")).encode() + b"\n"


def decodeRecords(line: bytes) -> list[GameServerRecord]:
    """
    The records of a line that L{encodeRecords} wrote.

    :raises ValueError: if it is not one.
    """
    try:
        items = json.loads(line)["servers"]
        return [
            GameServerRecord(
                str(i["id"]),
                str(i["host"]),
                int(i["port"]),
                bytes.fromhex(i["clientToken"]),
                str(i.get("name", "")),
                int(i.get("capacity", 0)),
                int(i.get("players", 0)),
                bool(i.get("accepting", True)),
            )
            for i in items
        ]
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not a line of game-server records: {e}") from e


@implementer(IPooledServer)
@dataclass(eq=False)
class PublishedServer:
    """
    A game server another process controls, as a worker seats players on it.

    :ivar token: empty: the control token is never published.
    :ivar pending: seats being set up on it by this worker.
    :ivar links: this worker's player connections to it.
    """

    serverId: str
    host: str
    port: int | None
    clientToken: bytes = field(repr=False)
    name: str = ""
    capacity: int = 0
    players: int = 0
    accepting: bool = True
    token: bytes = field(default=b"", repr=False)
    draining: bool = False
    pending: int = 0
    links: set[IPlayerLink] = field(default_factory=set)

    def hasRoom(self) -> bool:
        """
        Whether it is accepting and not full.
        """
        return self.accepting and self.load() < self.capacity

    def load(self) -> int:
        """
        Its players (its last C{Status}, which counts every worker's), or
        this worker's links if more, plus the seats being set up here.
        """
        return max(self.players, len(self.links)) + self.pending


@implementer(IGameServerPool)
class PublishedPool:
    """
    The game servers a worker's parent publishes: the worker's
    L{IGameServerPool}. L{update} replaces them with a new set of records; a
    server that is gone, or came back with another client token (a restart),
    is reported to the lost observers, like a crashed game server.

    :ivar servers: the servers by id.
    :ivar seating: C{"spread"} or C{"fill"}, as L{GameServerMonitor.pick}.
    """

    _log = Logger()

    def __init__(self, seating: str = "spread") -> None:
        if seating not in ("spread", "fill"):
            raise ValueError(f"seating is spread or fill, not {seating!r}")
        self.seating = seating
        self.servers: dict[str, PublishedServer] = {}
        self._observers: list[Callable[[Any], object]] = []

    def update(self, records: Iterable[GameServerRecord]) -> None:
        """
        Take the parent's current records.
        """
        fresh: dict[str, PublishedServer] = {}
        lost: list[PublishedServer] = []
        for record in records:
            server = self.servers.get(record.serverId)
            if server is None or server.clientToken != record.clientToken:
                if server is not None:
                    lost.append(server)
                server = PublishedServer(
                    record.serverId, record.host, record.port, record.clientToken
                )
                self._log.info(
                    "game server {serverId} at {host}:{port} published",
                    serverId=record.serverId,
                    host=record.host,
                    port=record.port,
                )
            server.name = record.name
            server.capacity = record.capacity
            server.players = record.players
            server.accepting = record.accepting
            server.host, server.port = record.host, record.port
            fresh[record.serverId] = server
        for serverId, server in self.servers.items():
            if serverId not in fresh:
                lost.append(server)
        self.servers = fresh
        for server in lost:
            self._log.info("game server {serverId} gone", serverId=server.serverId)
            server.accepting = False
            for observer in self._observers:
                try:
                    observer(server)
                except Exception:
                    self._log.failure("game server lost observer failed")

    def pick(self, exclude: Collection[Any] = ()) -> PublishedServer | None:
        """
        The server with room and the fewest players (C{spread}) or the most
        (C{fill}) that is not in C{exclude}; ties to the first published.
        """
        return pickServer(self.servers.values(), exclude, self.seating == "fill")

    def seatingStarted(self, server: Any) -> None:
        """
        A seat is being set up on C{server}.
        """
        server.pending += 1

    def seatingEnded(self, server: Any) -> None:
        """
        A seat that L{seatingStarted} counted was made or given up.
        """
        server.pending = max(0, server.pending - 1)

    def linkAdded(self, server: Any, link: IPlayerLink) -> None:
        """
        C{link} seats a player on C{server}.
        """
        server.links.add(link)

    def linkRemoved(self, server: Any, link: IPlayerLink) -> None:
        """
        C{link} no longer seats a player on C{server}.
        """
        server.links.discard(link)

    def linksOf(self, server: Any) -> Collection[IPlayerLink]:
        """
        This worker's links to C{server}.
        """
        links: set[IPlayerLink] = server.links
        return links

    def addLostObserver(self, observer: Callable[[Any], object]) -> None:
        """
        Call C{observer(server)} when a published server is gone.
        """
        self._observers.append(observer)
