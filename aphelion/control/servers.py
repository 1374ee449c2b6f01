# -*- test-case-name: tests.test_spawn -*-
"""
The records of the game servers an AuthProxy seats players on: a
L{GameServer} and its L{ServerState}, and a L{RemoteGameServer} as the
operator configures it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar

from twisted.internet.interfaces import IDelayedCall
from zope.interface import implementer

from aphelion.interfaces import IControlConnection, IPlayerLink, IPooledServer

__all__ = [
    "GameServer",
    "RemoteGameServer",
    "ServerState",
    "pickServer",
    "restartDelay",
]


class ServerState(Enum):
    """
    The states of a game server that an operator sees in the logs.
    """

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    CRASHED = "crashed"


@dataclass(frozen=True)
class RemoteGameServer:
    """
    A game server that runs elsewhere, started by the operator.

    :ivar host: its address.
    :ivar port: its TCP port.
    :ivar token: its control token.
    """

    host: str
    port: int
    token: bytes = field(repr=False)


@implementer(IPooledServer)
@dataclass(eq=False)
class GameServer:
    """
    One game server as the AuthProxy sees it.

    :ivar serverId: the id the AuthProxy gave it.
    :ivar token: its control token (never logged; see L{tokenHint}).
    :ivar clientToken: the token its player connections present, new at
        each start and sent in C{Control} (Part 5: what a cluster publishes);
        empty before the first start, when the control token serves.
    :ivar remote: whether it runs elsewhere (not spawned by us).
    :ivar state: where it is in its life.
    :ivar host: the address its control and player connections go to.
    :ivar port: its port, once known.
    :ivar name: the game's name, from C{Ready}.
    :ivar capacity: players it takes, from C{Ready} and C{Status}.
    :ivar players: players it reports, from C{Status}.
    :ivar accepting: whether it takes players, from C{Status}.
    :ivar pending: seats being set up on it that its C{Status} does not show yet.
    :ivar control: the control connection, when open.
    :ivar links: the player connections to it.
    :ivar failures: deaths since it was last ready for long; drives back-off.
    :ivar generation: counts its starts; a control connection of an earlier
        start is stale.
    :ivar restartWhenStopped: start it again once it has stopped (an
        operator's restart).
    """

    serverId: str
    token: bytes = field(repr=False)
    remote: bool = False
    clientToken: bytes = field(default=b"", repr=False)
    state: ServerState = ServerState.STARTING
    host: str = "127.0.0.1"
    port: int | None = None
    name: str = ""
    capacity: int = 0
    players: int = 0
    accepting: bool = False
    pending: int = 0
    control: IControlConnection | None = None
    links: set[IPlayerLink] = field(default_factory=set)
    failures: int = 0
    process: Any = None
    generation: int = 0
    restartWhenStopped: bool = False
    _retired: Any = None
    _restartCall: IDelayedCall | None = None
    _killCall: IDelayedCall | None = None
    _portCall: IDelayedCall | None = None
    _readySince: float | None = None

    @property
    def draining(self) -> bool:
        """
        Whether it is being drained: it takes no new players.
        """
        return self.state is ServerState.DRAINING

    def hasRoom(self) -> bool:
        """
        Whether the server is ready, accepting and not full.
        """
        return (
            self.state is ServerState.READY
            and self.accepting
            and self.control is not None
            and self.load() < self.capacity
        )

    def load(self) -> int:
        """
        Players on it, counting seats in progress. Its last C{Status} may not
        show the players this AuthProxy seated a moment ago, so those count
        too.
        """
        return max(self.players, len(self.links)) + self.pending


class _Seatable(Protocol):
    """
    What L{pickServer} asks of a server.
    """

    def hasRoom(self) -> bool: ...
    def load(self) -> int: ...


_S = TypeVar("_S", bound=_Seatable)


def restartDelay(failures: int, initial: float, maximum: float) -> float:
    """
    The back-off before a restart (Part 2.3, 4): C{initial} doubled for each
    failure before this one, at most C{maximum}. Game servers and the
    workers of C{--workers} are restarted alike.

    :param failures: the failures before this one, since the last stable run.
    """
    doubled: float = initial * 2 ** min(failures, 32)
    return min(doubled, maximum)


def pickServer(
    servers: Iterable[_S], exclude: Collection[object], fill: bool
) -> _S | None:
    """
    The server with room that is not in C{exclude}, with the fewest players
    or, with C{fill}, the most; ties go to the first. The one rule of the
    game-server monitor and of a worker's published pool.
    """
    best: _S | None = None
    for server in servers:
        if server in exclude or not server.hasRoom():
            continue
        if best is None:
            best = server
        elif fill and server.load() > best.load():
            best = server
        elif not fill and server.load() < best.load():
            best = server
    return best
