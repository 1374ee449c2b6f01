# -*- test-case-name: tests.test_seating -*-
"""
The actions a L{aphelion.seating.SeatingMachine} returns, for the gateway to
carry out in order (as h11 keeps its events apart from its state machine).

Seats are opaque to the machine: the actions name them, typed C{S}.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

__all__ = [
    "Action",
    "Authenticated",
    "Bind",
    "Check",
    "Close",
    "DisconnectLink",
    "End",
    "EndWithNotice",
    "LinkGone",
    "Malformed",
    "MoveNotice",
    "Moved",
    "Notify",
    "Pick",
    "Pin",
    "Refused",
    "Relay",
    "Reply",
    "Seated",
    "SeatingBegun",
    "SeatingOver",
    "Unbind",
]

S = TypeVar("S", bound=Hashable)


@dataclass(frozen=True)
class Reply:
    """
    Send C{authenticate_response{result, description}} on C{connection}.
    """

    connection: object
    result: int
    description: str


@dataclass(frozen=True)
class Notify:
    """
    Send C{authenticate_response{result, description}} to the session.
    """

    result: int
    description: str


@dataclass(frozen=True)
class Close:
    """
    Close C{connection} with C{code} and C{reason}.
    """

    connection: object
    code: int
    reason: str


@dataclass(frozen=True)
class Malformed:
    """
    C{connection} sent a payload that is not a C{C2S}: log it, close 4006.
    """

    connection: object


@dataclass(frozen=True)
class Check:
    """
    Check C{playerId} (after the login throttles); the adapter reports
    L{SeatingMachine.checkStarted}, then the outcome.
    """

    connection: object
    playerId: str


@dataclass(frozen=True)
class Bind:
    """
    Bind C{player}'s ID to the session in the registry; the adapter reports
    L{SeatingMachine.bound}.
    """

    player: object


@dataclass(frozen=True)
class Authenticated:
    """
    The session is C{player}'s now.
    """

    player: object


@dataclass(frozen=True)
class Unbind:
    """
    The session is nobody's again: forget its player.
    """


@dataclass(frozen=True)
class Pick:
    """
    Pick a game server with room, not one of C{exclude}; the adapter reports
    L{SeatingMachine.serverPicked} or L{SeatingMachine.noServer}.
    """

    exclude: frozenset[Hashable]


@dataclass(frozen=True)
class SeatingBegun(Generic[S]):
    """
    Count C{seat} in its server's load and open its player link.
    """

    seat: S


@dataclass(frozen=True)
class SeatingOver(Generic[S]):
    """
    C{seat} was made or given up: no longer count it as being set up.
    """

    seat: S


@dataclass(frozen=True)
class Seated(Generic[S]):
    """
    C{seat} took the player: record it, and send the client C{connected}
    (with C{authenticate_response{OK}} when C{greet}).
    """

    seat: S
    greet: bool


@dataclass(frozen=True)
class Refused(Generic[S]):
    """
    The game server of C{seat} refused the player (for the log).
    """

    seat: S
    code: int
    reason: str


@dataclass(frozen=True)
class Relay(Generic[S]):
    """
    Send C{payloads} to the game server over C{seat}'s link, in order.
    """

    seat: S
    payloads: tuple[bytes, ...]


@dataclass(frozen=True)
class DisconnectLink(Generic[S]):
    """
    Tell C{seat}'s link (if it is open) that the player is gone.
    """

    seat: S
    code: int
    reason: str


@dataclass(frozen=True)
class LinkGone(Generic[S]):
    """
    C{seat}'s link no longer seats the player: take it off its server and
    disconnect it.
    """

    seat: S
    code: int
    reason: str


@dataclass(frozen=True)
class MoveNotice:
    """
    The session lost its seat: record that it has none, and send the client
    C{disconnect{1013, reason}}.
    """

    reason: str


@dataclass(frozen=True)
class Moved(Generic[S]):
    """
    The session lost C{seat} and looks for another (for the log).
    """

    seat: S
    reason: str


@dataclass(frozen=True)
class Pin:
    """
    Keep (or stop keeping) the session's packets on one connection from one
    reactor turn to the next, so that a seating's replies arrive in order
    (Part 1.4).
    """

    pinned: bool


@dataclass(frozen=True)
class End:
    """
    End the session with C{code} and C{reason}.
    """

    code: int
    reason: str


@dataclass(frozen=True)
class EndWithNotice:
    """
    Send the client C{disconnect{4009, reason}}, then end the session with
    4009.
    """

    reason: str


Action: TypeAlias = (
    Reply
    | Notify
    | Close
    | Malformed
    | Check
    | Bind
    | Authenticated
    | Unbind
    | Pick
    | SeatingBegun[S]
    | SeatingOver[S]
    | Seated[S]
    | Refused[S]
    | Relay[S]
    | DisconnectLink[S]
    | LinkGone[S]
    | MoveNotice
    | Moved[S]
    | Pin
    | End
    | EndWithNotice
)
