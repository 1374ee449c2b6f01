# -*- test-case-name: tests.test_seating -*-
"""
The plain values of a session's seating, without I/O (Parts 1.6 and 6).

L{aphelion.seating.SeatingMachine} decides what happens to a session; this
module holds the values it works with and nothing that decides: the states
(L{SessionState}) and the transitions allowed between them
(L{TRANSITIONS}), why a credential check failed (L{CheckFailure}), the limits
a machine applies (L{SeatingRules}), the payloads held while a session is
seated or moved (L{Held}), and the rule a player ID must meet before it
reaches a checker (L{validPlayerId}).

L{aphelion.seating} re-exports every name here, so code may import them
from either module. Like it, this module imports nothing from Twisted or
Autobahn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from aphelion.limits import hasControlCharacters

__all__ = [
    "MAX_ID_BYTES",
    "TRANSITIONS",
    "CheckFailure",
    "Held",
    "IllegalTransition",
    "SeatingRules",
    "SessionState",
    "validPlayerId",
]

MAX_ID_BYTES = 1024


class SessionState(Enum):
    """
    Where a session is in the game protocol (Part 1.6).
    """

    UNAUTHENTICATED = "unauthenticated"
    AUTHENTICATING = "authenticating"
    SEATING = "seating"
    RELAYING = "relaying"
    ENDED = "ended"


#: Every transition a machine may make; any other is a bug in
#: L{aphelion.seating}.
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.UNAUTHENTICATED: frozenset(
        # SEATING: a session handed over from another node (resumed).
        {SessionState.AUTHENTICATING, SessionState.SEATING, SessionState.ENDED}
    ),
    SessionState.AUTHENTICATING: frozenset(
        {SessionState.UNAUTHENTICATED, SessionState.SEATING, SessionState.ENDED}
    ),
    SessionState.SEATING: frozenset(
        {
            SessionState.SEATING,
            SessionState.RELAYING,
            SessionState.UNAUTHENTICATED,
            SessionState.ENDED,
        }
    ),
    SessionState.RELAYING: frozenset({SessionState.SEATING, SessionState.ENDED}),
    SessionState.ENDED: frozenset(),
}


class IllegalTransition(Exception):
    """
    A machine tried a transition that L{TRANSITIONS} does not allow: a bug.
    """


class CheckFailure(Enum):
    """
    Why a credential check failed.
    """

    #: The ID is wrong: it counts as a try.
    UNAUTHORIZED = "unauthorized"
    #: No checker takes this kind of credentials.
    UNSUPPORTED = "unsupported"
    #: Too many checks wait for the checker (Part 6): not a try.
    BUSY = "busy"
    #: The checker broke (a database down): not the player's fault.
    BROKEN = "broken"


def validPlayerId(playerId: str) -> bool:
    """
    Whether an ID may reach the checker: not empty, at most 1024 bytes, and
    without control characters (C0, C1, DEL; Parts 1.6 and 6).
    """
    return (
        bool(playerId)
        and len(playerId.encode("utf-8")) <= MAX_ID_BYTES
        and not hasControlCharacters(playerId)
    )


@dataclass
class SeatingRules:
    """
    The limits a machine applies.

    :ivar authTries: authentication failures allowed per connection; the
        last one closes it with 4008.
    :ivar heldPackets: payloads a client may send while being seated or
        moved; one more closes that connection with 4007.
    :ivar heldBytes: bytes a client may send while being seated or moved.
    """

    authTries: int = 3
    heldPackets: int = 64
    heldBytes: int = 256 * 1024


@dataclass
class Held:
    """
    Payloads a client sent while being seated or moved (Part 6).
    """

    payloads: list[bytes] = field(default_factory=list)
    size: int = 0
