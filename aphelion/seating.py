# -*- test-case-name: tests.test_seating -*-
"""
A session's life at the gateway, without I/O (Parts 1.4, 1.6, 2.4 and 6).

L{SeatingMachine} is the one place that decides what happens to a session
between its first game payload and its end: give it an event (a payload, a
checker's answer, a player link's report, the session's end) and it returns
the actions for the gateway to carry out, in order. Everything that affects
the state lives in this module, as h11's C{_state.py} has it: the gateway
(L{aphelion.gateway}) only feeds events in and carries actions out.

The states, and the events that move a session between them::

    UNAUTHENTICATED --checkStarted--> AUTHENTICATING
    UNAUTHENTICATED --resumed--> SEATING       (handed over from another node)
    AUTHENTICATING --checkFailed, bound(refused)--> UNAUTHENTICATED
    AUTHENTICATING --bound--> SEATING          (Pick a game server)
    SEATING --accepted--> RELAYING
    SEATING --noServer, refused--> UNAUTHENTICATED  (first seating)
    SEATING --lost, full, draining--> SEATING  (Pick the next server)
    RELAYING --lost, draining--> SEATING       (moving: Pick another server)
    any --ended--> ENDED                       (final)

A seating is I{moving} when the session was seated before (a reseat): the
client then hears no C{authenticate_response}, and a seating that fails ends
the session with 1013 instead of answering C{NO_SERVER} or C{REJECTED}.

Seats and game servers are opaque to the machine: it compares them by
identity and names them in its actions. The plain values it works with (the
states and their transitions, the check failures, the rules, the held
payloads, the player-ID rule) live in L{aphelion.seatingrules}, and are
re-exported here.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

from google.protobuf.message import DecodeError

from aphelion.actions import (
    Action,
    Authenticated,
    Bind,
    Check,
    Close,
    DisconnectLink,
    End,
    EndWithNotice,
    LinkGone,
    Malformed,
    Moved,
    MoveNotice,
    Notify,
    Pick,
    Pin,
    Refused,
    Relay,
    Reply,
    Seated,
    SeatingBegun,
    SeatingOver,
    Unbind,
)
from aphelion.codes import CloseCode, RejectCode
from aphelion.proto.game_pb2 import C2S, AuthenticateResponse
from aphelion.seatingrules import (
    MAX_ID_BYTES,
    CheckFailure,
    Held,
    IllegalTransition,
    SeatingRules,
    SessionState,
    validPlayerId,
)
from aphelion.seatingrules import TRANSITIONS as _TRANSITIONS

__all__ = [
    "MAX_ID_BYTES",
    "CheckFailure",
    "Held",
    "IllegalTransition",
    "SeatingMachine",
    "SeatingRules",
    "SessionState",
    "validPlayerId",
]

R = AuthenticateResponse

S = TypeVar("S", bound=Hashable)


_NOT_AUTHENTICATED = (R.NOT_AUTHENTICATED, "authenticate first")
_IN_PROGRESS = (R.OTHER, "authentication in progress")
_CHECK_FAILURES = {
    CheckFailure.UNSUPPORTED: (
        R.AUTH_METHOD_UNSUPPORTED,
        "no authentication is configured",
    ),
    CheckFailure.BUSY: (R.OTHER, "busy, try again later"),
    CheckFailure.BROKEN: (R.OTHER, "authentication is unavailable"),
}
_FULL = frozenset({RejectCode.FULL, RejectCode.NOT_ACCEPTING})


class SeatingMachine(Generic[S]):
    """
    The state of one session at the gateway.

    Each event is a method that returns the actions to carry out, in order.
    An event that does not apply (a report from a seat the session has left,
    anything after the end) returns no actions.

    :ivar state: the L{SessionState}.
    :ivar seat: the seat the session is relayed through (in C{RELAYING}).
    :ivar attempt: the seat being set up (in C{SEATING}, once a server was
        picked).
    :ivar picking: whether a L{Pick} waits for its answer.
    :ivar moving: whether this seating moves a session that was seated.
    :ivar tried: the servers this seating tried (while relaying: the
        seat's server), each tried once per seating.
    :ivar held: what the client sent while being seated or moved, or
        L{None}.
    """

    __slots__ = (
        "_connection",
        "_failures",
        "_server",
        "attempt",
        "held",
        "moving",
        "picking",
        "rules",
        "seat",
        "state",
        "tried",
    )

    def __init__(self, rules: SeatingRules) -> None:
        self.rules = rules
        self.state = SessionState.UNAUTHENTICATED
        self.seat: S | None = None
        self.attempt: S | None = None
        self.picking = False
        self.moving = False
        self.tried: frozenset[Hashable] = frozenset()
        self.held: Held | None = None
        self._server: Hashable = None
        self._connection: object = None
        self._failures: WeakKeyDictionary[object, int] = WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<SeatingMachine {self.state.value}>"

    def _moveTo(self, state: SessionState) -> None:
        if state is not self.state and state not in _TRANSITIONS[self.state]:
            raise IllegalTransition(f"{self.state.value} -> {state.value}")
        self.state = state

    def current(self, seat: S) -> bool:
        """
        Whether C{seat} is the session's seat, or the seat being set up.
        """
        return seat is self.seat or seat is self.attempt

    def failures(self, connection: object) -> int:
        """
        The authentication failures of C{connection}.
        """
        return self._failures.get(connection, 0)

    # -- from the client ------------------------------------------------------

    def receive(self, connection: object, payload: bytes) -> list[Action[S]]:
        """
        A non-empty game payload arrived on one of the session's connections.
        """
        state = self.state
        if state is SessionState.RELAYING:
            assert self.seat is not None
            return [Relay(self.seat, (payload,))]
        if state is SessionState.SEATING:
            return self._hold(connection, payload)
        if state is SessionState.ENDED:
            return []
        try:
            message = C2S.FromString(payload)
        except DecodeError:
            return [Malformed(connection)]
        if state is SessionState.AUTHENTICATING:
            return [Reply(connection, *_IN_PROGRESS)]
        if not message.HasField("authenticate"):
            return [Reply(connection, *_NOT_AUTHENTICATED)]
        return [Check(connection, message.authenticate.id)]

    def _hold(self, connection: object, payload: bytes) -> list[Action[S]]:
        held = self.held
        if held is None:
            held = self.held = Held()
        if (
            len(held.payloads) >= self.rules.heldPackets
            or held.size + len(payload) > self.rules.heldBytes
        ):
            return [
                Close(
                    connection,
                    CloseCode.TOO_MANY_UNACKNOWLEDGED,
                    "too much sent while being seated",
                )
            ]
        held.payloads.append(payload)
        held.size += len(payload)
        return []

    # -- from the checker and the registry ------------------------------------

    def checkStarted(self, connection: object) -> list[Action[S]]:
        """
        The check that L{Check} asked for runs (the throttles let it).
        """
        if self.state is not SessionState.UNAUTHENTICATED:
            return []
        self._moveTo(SessionState.AUTHENTICATING)
        self._connection = connection
        return []

    def checkFailed(self, why: CheckFailure) -> list[Action[S]]:
        """
        The check failed.
        """
        if self.state is not SessionState.AUTHENTICATING:
            return []
        self._moveTo(SessionState.UNAUTHENTICATED)
        connection, self._connection = self._connection, None
        if why is not CheckFailure.UNAUTHORIZED:
            return [Reply(connection, *_CHECK_FAILURES[why])]
        failures = self._failures.get(connection, 0) + 1
        self._failures[connection] = failures
        if failures < self.rules.authTries:
            return [Reply(connection, R.INVALID_ID, "invalid ID")]
        return [
            Reply(connection, R.TOO_MANY_ATTEMPTS, "too many attempts"),
            Close(
                connection,
                CloseCode.TOO_MANY_AUTH_ATTEMPTS,
                "authentication failed too often",
            ),
        ]

    def checked(self, player: object) -> list[Action[S]]:
        """
        The checker and realm accepted the ID as C{player}.
        """
        if self.state is not SessionState.AUTHENTICATING:
            return []
        return [Bind(player)]

    def bound(self, player: object, refused: bool) -> list[Action[S]]:
        """
        The registry bound the player's ID to the session, or C{refused}
        because another session holds it.
        """
        if self.state is not SessionState.AUTHENTICATING:
            return []
        connection, self._connection = self._connection, None
        if refused:
            self._moveTo(SessionState.UNAUTHENTICATED)
            return [Reply(connection, R.ID_IN_USE, "already logged in")]
        self.moving = False
        return [Authenticated(player), *self._seek(frozenset())]

    # -- seating ----------------------------------------------------------------

    def _seek(self, exclude: frozenset[Hashable]) -> list[Action[S]]:
        self._moveTo(SessionState.SEATING)
        self.picking = True
        self.tried = exclude
        return [Pick(exclude)]

    def resumed(self) -> list[Action[S]]:
        """
        The session was authenticated and seated on another node of the
        cluster, and is handed over to this one (Part 5.2): it is seated
        again, as a move, on the server of its seat when that is still
        there (L{serverPicked} with a resumed seat) or on any (a L{Pick}
        that the gateway makes itself). What the client sends meanwhile is
        held.
        """
        if self.state is not SessionState.UNAUTHENTICATED:
            return []
        self.moving = True
        self._moveTo(SessionState.SEATING)
        self.picking = True
        self.tried = frozenset()
        return []

    def serverPicked(self, seat: S, server: Hashable) -> list[Action[S]]:
        """
        The pool picked C{server}; C{seat} is the seat to set up there.
        """
        if not self.picking:
            return []
        self.picking = False
        self.attempt = seat
        self._server = server
        self.tried = self.tried | {server}
        return [SeatingBegun(seat)]

    def noServer(self) -> list[Action[S]]:
        """
        No game server has room (or none can be reached).
        """
        if not self.picking:
            return []
        self.picking = False
        return self._fail(
            CloseCode.TRY_AGAIN_LATER,
            "no game server can take the player",
            R.NO_SERVER,
            "no game server has room",
        )

    def _fail(
        self, code: int, reason: str, result: int, description: str
    ) -> list[Action[S]]:
        """
        The seating failed: a moving session ends, another is unbound.
        """
        if self.moving:
            return [End(code, reason)]
        self._moveTo(SessionState.UNAUTHENTICATED)
        self.held = None
        self.tried = frozenset()
        return [Unbind(), Notify(result, description)]

    # -- from the player link ---------------------------------------------------

    def linkMade(self, seat: S) -> list[Action[S]]:
        """
        C{seat}'s player link is open.
        """
        if self.current(seat):
            return []
        return [DisconnectLink(seat, 0, "seat no longer wanted")]

    def accepted(self, seat: S) -> list[Action[S]]:
        """
        The game server of C{seat} took the player (C{Connected}).
        """
        if seat is not self.attempt:
            return [DisconnectLink(seat, 0, "session ended")]
        self.attempt = None
        self.seat = seat
        self._moveTo(SessionState.RELAYING)
        held, self.held = self.held, None
        actions: list[Action[S]] = [
            SeatingOver(seat),
            # connected and the game_config that follows in a later read go
            # on one connection, in order (Part 1.4).
            Pin(True),
            Seated(seat, greet=not self.moving),
        ]
        if held is not None and held.payloads:
            # What the client sent meanwhile goes to the game, in order.
            actions.append(Relay(seat, tuple(held.payloads)))
        self.moving = False
        # A move from this seat will not try its server again.
        self.tried = frozenset({self._server})
        return actions

    def gameConfig(self, seat: S) -> list[Action[S]]:
        """
        The game server of C{seat} sent its C{GameConfig}; the adapter sends
        it to the client before carrying out the actions.
        """
        if not self.current(seat):
            return []
        # The seating's replies are complete (Part 1.4).
        return [Pin(False)]

    def rejected(self, seat: S, code: int, reason: str) -> list[Action[S]]:
        """
        The game server of C{seat} refused the player (C{Rejected}).
        """
        if code in _FULL and seat is self.attempt:
            # Its Status was behind: no room there is not a refusal of the
            # player. Try the next server (NO_SERVER when none has room).
            return self.lost(seat, reason or "game server full")
        return self._refused(seat, code, reason)

    def _refused(self, seat: S, code: int, reason: str) -> list[Action[S]]:
        if seat is not self.attempt:
            return []
        self.attempt = None
        return [
            SeatingOver(seat),
            Refused(seat, code, reason),
            *self._fail(
                CloseCode.TRY_AGAIN_LATER, reason or "rejected", R.REJECTED, reason
            ),
        ]

    def disconnected(
        self, seat: S, code: int, reason: str, draining: bool
    ) -> list[Action[S]]:
        """
        The game server of C{seat} sent C{Disconnect}; C{draining} when it
        is going away (code 1, or a server being drained).
        """
        if seat is self.attempt:
            # Disconnect before Connected: a refusal, or a server going away.
            if draining:
                return self.lost(seat, reason or "game server draining")
            return self._refused(seat, code, reason or "disconnected")
        if seat is not self.seat:
            return []
        if draining:
            return self.lost(seat, "game server draining")
        return [EndWithNotice(reason or "kicked")]

    def lost(self, seat: S, reason: str) -> list[Action[S]]:
        """
        C{seat}'s player link closed or never opened, or its game server went
        away: seat the player elsewhere.
        """
        if seat is self.attempt:
            # It never seated the player: try elsewhere.
            self.attempt = None
            actions: list[Action[S]] = [
                SeatingOver(seat),
                LinkGone(seat, CloseCode.TRY_AGAIN_LATER, reason),
                Moved(seat, reason),
            ]
            return actions + self._seek(self.tried)
        if seat is not self.seat:
            return []
        self.seat = None
        exclude = self.tried
        self.moving = True
        return [
            LinkGone(seat, CloseCode.TRY_AGAIN_LATER, reason),
            # disconnect, then the new seat's connected and game_config, on
            # one connection (Part 1.4).
            Pin(True),
            MoveNotice(reason),
            Moved(seat, reason),
            *self._seek(exclude),
        ]

    # -- the end ----------------------------------------------------------------

    def ended(self, code: int, reason: str) -> list[Action[S]]:
        """
        The session ended with C{code} and C{reason}: its links go.
        """
        if self.state is SessionState.ENDED:
            return []
        self._moveTo(SessionState.ENDED)
        actions: list[Action[S]] = []
        if self.attempt is not None:
            actions += [
                SeatingOver(self.attempt),
                DisconnectLink(self.attempt, code, reason),
            ]
        if self.seat is not None:
            actions.append(LinkGone(self.seat, code, reason))
        self.attempt = self.seat = None
        self.picking = False
        self.held = None
        self._connection = None
        return actions
