# -*- test-case-name: tests.test_seating -*-
"""
Tests of L{aphelion.seating}: the sans-IO machine of a session's life at the
gateway, driven by hypothesis through every order of events.
"""

from __future__ import annotations

import ast
import inspect
from collections import Counter
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from twisted.trial.unittest import SynchronousTestCase

from aphelion import seating
from aphelion.actions import (
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
from aphelion.proto.game_pb2 import C2S, Authenticate, AuthenticateResponse
from aphelion.seating import (
    _TRANSITIONS,
    CheckFailure,
    IllegalTransition,
    SeatingMachine,
    SeatingRules,
    SessionState,
    validPlayerId,
)

R = AuthenticateResponse
SERVERS = ("gs1", "gs2", "gs3")


class Connection:
    """
    A client connection: only its identity matters to the machine.
    """


class FakeSeat:
    """
    A seat on C{server}. Its link opens when the gateway carries out
    L{SeatingBegun} (a seat the machine does not take, say because the
    session ended meanwhile, never gets one) and stays open until it is
    disconnected or reports its end.
    """

    def __init__(self, server: str) -> None:
        self.server = server
        self.linkOpen = False
        self.linkMade = False
        self.connected = False


def _varint(value: int) -> bytes:
    """
    C{value} as a protobuf varint.
    """
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def authenticate(playerId: str) -> bytes:
    """
    A C{C2S{authenticate}} payload.
    """
    return C2S(authenticate=Authenticate(id=playerId)).SerializeToString()


class SeatingStateMachine(RuleBasedStateMachine):
    """
    Any sequence of events leaves a L{SeatingMachine} in a legal state; the
    actions are carried out as the gateway would, and checked on the way.
    """

    @initialize()
    def start(self) -> None:
        """
        A fresh machine, two connections, nothing outstanding.
        """
        self.machine: SeatingMachine[FakeSeat] = SeatingMachine(
            SeatingRules(authTries=3, heldPackets=4, heldBytes=64)
        )
        self.connections = [Connection(), Connection()]
        self.closed: set[Connection] = set()
        self.seats: list[FakeSeat] = []
        self.pending: Counter[str] = Counter()
        self.checkWanted: Connection | None = None
        self.bindWanted: object = None
        self.pick: frozenset[Any] | None = None
        self.endWanted = False
        self.everEnded = False
        self.counter = 0
        self.held: list[bytes] = []
        self.relayed: list[bytes] = []
        self.pinned = False
        self.seatedOnce = False

    # -- carrying out actions ----------------------------------------------------

    def carryOut(self, actions: list[Any]) -> None:
        """
        Do what the gateway does with each action, checking it may come now.
        Once the session is no longer being seated, nothing is held.
        """
        self._carryOut(actions)
        if self.machine.state is not SessionState.SEATING:
            self.held.clear()

    def _carryOut(self, actions: list[Any]) -> None:
        machine = self.machine
        for action in actions:
            if isinstance(action, (Reply, Close, Malformed)):
                assert action.connection in self.connections
                if isinstance(action, Close) or isinstance(action, Malformed):
                    self.closed.add(action.connection)  # type: ignore[arg-type]
            elif isinstance(action, Check):
                assert machine.state is SessionState.UNAUTHENTICATED
                self.checkWanted = action.connection  # type: ignore[assignment]
            elif isinstance(action, Bind):
                self.bindWanted = action.player
            elif isinstance(action, Pick):
                assert machine.picking
                self.pick = action.exclude
            elif isinstance(action, SeatingBegun):
                assert action.seat is machine.attempt
                action.seat.linkOpen = True
                self.pending[action.seat.server] += 1
            elif isinstance(action, SeatingOver):
                self.pending[action.seat.server] -= 1
                assert self.pending[action.seat.server] >= 0
            elif isinstance(action, Relay):
                assert action.seat is machine.seat
                self.relayed.extend(action.payloads)
            elif isinstance(action, (DisconnectLink, LinkGone)):
                action.seat.linkOpen = False
            elif isinstance(action, Pin):
                self.pinned = action.pinned
            elif isinstance(action, Seated):
                assert action.seat is machine.seat
                assert self.pinned
                assert action.greet is not self.seatedOnce or not action.greet
                self.seatedOnce = True
            elif isinstance(action, (End, EndWithNotice)):
                self.endWanted = True
            elif isinstance(action, Unbind):
                self.seatedOnce = False
            else:
                assert isinstance(
                    action, (Notify, Authenticated, Refused, MoveNotice, Moved)
                ), action

    def linked(self) -> list[FakeSeat]:
        return [seat for seat in self.seats if seat.linkOpen]

    # -- the client ---------------------------------------------------------------

    @rule(
        index=st.integers(0, 1),
        kind=st.sampled_from(["valid", "invalid", "other", "garbage", "game"]),
    )
    def receive(self, index: int, kind: str) -> None:
        """
        A payload on one of the connections.
        """
        connection = self.connections[index]
        if connection in self.closed:
            return
        self.counter += 1
        # Every payload is distinct (a game field 2 with the counter), so
        # that "relayed twice" means the same packet twice.
        unique = b"\x10" + _varint(self.counter)
        payload = {
            "valid": authenticate("alice") + unique,
            "invalid": authenticate("bad\x00") + unique,
            "other": C2S().SerializeToString() + b"\x08\x01" + unique,
            "garbage": b"\xff\xff" + unique,
            "game": b"\xfa\xfb" + self.counter.to_bytes(4, "big"),
        }[kind]
        state = self.machine.state
        before = list(self.machine.held.payloads) if self.machine.held else []
        actions = self.machine.receive(connection, payload)
        if state is SessionState.SEATING and not actions:
            self.held.append(payload)
            assert self.machine.held is not None
            self.assertEqual(self.machine.held.payloads, [*before, payload])
        if state is SessionState.RELAYING:
            self.assertEqual(actions, [Relay(self.machine.seat, (payload,))])
        self.carryOut(actions)

    # -- the checker and the registry ---------------------------------------------

    @precondition(lambda self: self.checkWanted is not None)
    @rule(valid=st.booleans())
    def checkStarted(self, valid: bool) -> None:
        """
        The throttles let the check run.
        """
        connection, self.checkWanted = self.checkWanted, None
        self.carryOut(self.machine.checkStarted(connection))

    @precondition(lambda self: self.machine.state is SessionState.AUTHENTICATING)
    @rule(why=st.sampled_from(list(CheckFailure)))
    def checkFailed(self, why: CheckFailure) -> None:
        """
        The check fails.
        """
        self.carryOut(self.machine.checkFailed(why))

    @precondition(lambda self: self.machine.state is SessionState.AUTHENTICATING)
    @rule()
    def checked(self) -> None:
        """
        The check succeeds.
        """
        self.carryOut(self.machine.checked("alice"))

    @precondition(lambda self: self.bindWanted is not None)
    @rule(refused=st.booleans())
    def bound(self, refused: bool) -> None:
        """
        The registry binds the player, or refuses.
        """
        player, self.bindWanted = self.bindWanted, None
        self.carryOut(self.machine.bound(player, refused))

    @precondition(lambda self: self.pick is not None)
    @rule(server=st.sampled_from([*SERVERS, None]))
    def picked(self, server: str | None) -> None:
        """
        The pool answers a L{Pick}.
        """
        exclude, self.pick = self.pick, None
        assert exclude is not None
        if server is None or server in exclude:
            self.carryOut(self.machine.noServer())
            return
        seat = FakeSeat(server)
        self.seats.append(seat)
        self.carryOut(self.machine.serverPicked(seat, server))

    # -- the player links ------------------------------------------------------------

    @precondition(lambda self: any(s.linkOpen for s in self.seats))
    @rule(
        data=st.data(),
        event=st.sampled_from(
            ["linkMade", "accepted", "gameConfig", "rejected", "disconnected", "lost"]
        ),
        code=st.sampled_from([0, 1, 2, 100]),
        draining=st.booleans(),
    )
    def link(self, data: st.DataObject, event: str, code: int, draining: bool) -> None:
        """
        A report from an open link.
        """
        seat = data.draw(st.sampled_from(self.linked()))
        machine = self.machine
        if event == "linkMade":
            self.carryOut(machine.linkMade(seat))
        elif event == "accepted":
            held = list(self.held)
            relayedBefore = len(self.relayed)
            wasAttempt = seat is machine.attempt
            self.carryOut(machine.accepted(seat))
            if wasAttempt:
                # Part 6: what was held goes to the game first, in order.
                self.assertEqual(self.relayed[relayedBefore:], held)
                self.held.clear()
        elif event == "gameConfig":
            self.carryOut(machine.gameConfig(seat))
        elif event == "rejected":
            seat.linkOpen = False
            self.carryOut(machine.rejected(seat, code, "no"))
        elif event == "disconnected":
            seat.linkOpen = False
            self.carryOut(machine.disconnected(seat, code, "bye", draining))
        else:
            seat.linkOpen = False
            self.carryOut(machine.lost(seat, "gone"))
        if machine.state is not SessionState.SEATING:
            self.held.clear()

    # -- the end ------------------------------------------------------------------

    @rule(code=st.sampled_from([1000, 4009, 1013]))
    def ended(self, code: int) -> None:
        """
        The session ends (asked for by the machine, or from outside).
        """
        self.endWanted = False
        self.carryOut(self.machine.ended(code, "the end"))
        self.everEnded = True
        self.held.clear()

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def legal(self) -> None:
        """
        The state and its data agree.
        """
        machine = self.machine
        state = machine.state
        if self.everEnded:
            assert state is SessionState.ENDED, "ended is final"
        assert (state is SessionState.RELAYING) == (machine.seat is not None)
        if machine.seat is not None:
            # A seated session has exactly one seat.
            assert machine.attempt is None
        if machine.attempt is not None or machine.picking:
            assert state is SessionState.SEATING
        assert not (machine.attempt is not None and machine.picking)
        if machine.held is not None:
            assert state is SessionState.SEATING
        if state is SessionState.ENDED:
            assert machine.attempt is None and machine.seat is None
            assert machine.held is None

    @invariant()
    def heldInOrder(self) -> None:
        """
        Held payloads are what the client sent while seating, in order;
        nothing is relayed twice.
        """
        held = self.machine.held
        if held is not None and self.held:
            self.assertEqual(held.payloads, self.held)
        assert len(self.relayed) == len(set(self.relayed)), "relayed twice"

    @invariant()
    def seatsCounted(self) -> None:
        """
        A server counts exactly the seat being set up on it.
        """
        attempt = self.machine.attempt
        expected = Counter({attempt.server: 1}) if attempt is not None else Counter()
        self.assertEqual(+self.pending, expected)

    @invariant()
    def linksOnlyForCurrentSeats(self) -> None:
        """
        Only the seat and the seat being set up keep a link open.
        """
        machine = self.machine
        for seat in self.linked():
            assert seat is machine.seat or seat is machine.attempt, seat

    def assertEqual(self, first: object, second: object) -> None:
        assert first == second, (first, second)


class SeatingStateMachineTests(SynchronousTestCase):
    """
    Any sequence of events leaves the machine legal.
    """

    def test_anySequence(self) -> None:
        """
        Hypothesis drives L{SeatingStateMachine} through hundreds of event
        sequences; every invariant holds after every step.
        """
        run_state_machine_as_test(
            SeatingStateMachine,
            settings=settings(max_examples=300, stateful_step_count=40, deadline=None),
        )


class SeatingMachineTests(SynchronousTestCase):
    """
    Single paths through L{SeatingMachine}.
    """

    def machine(self) -> SeatingMachine[FakeSeat]:
        """
        A fresh machine with the default rules.
        """
        return SeatingMachine(SeatingRules())

    def seated(self) -> tuple[SeatingMachine[FakeSeat], FakeSeat, Connection]:
        """
        A machine through authentication and seating on C{gs1}.
        """
        machine, conn = self.machine(), Connection()
        [check] = machine.receive(conn, authenticate("alice"))
        self.assertEqual(check, Check(conn, "alice"))
        machine.checkStarted(conn)
        self.assertEqual(machine.checked("alice"), [Bind("alice")])
        self.assertEqual(
            machine.bound("alice", refused=False),
            [Authenticated("alice"), Pick(frozenset())],
        )
        seat = FakeSeat("gs1")
        self.assertEqual(machine.serverPicked(seat, "gs1"), [SeatingBegun(seat)])
        machine.accepted(seat)
        return machine, seat, conn

    def test_firstSeating(self) -> None:
        """
        Connected greets the client with authenticate_response{OK}, pinned.
        """
        machine, conn = self.machine(), Connection()
        machine.receive(conn, authenticate("alice"))
        machine.checkStarted(conn)
        machine.bound("alice", refused=False)
        seat = FakeSeat("gs1")
        machine.serverPicked(seat, "gs1")
        self.assertEqual(
            machine.accepted(seat),
            [SeatingOver(seat), Pin(True), Seated(seat, greet=True)],
        )
        self.assertIs(machine.state, SessionState.RELAYING)
        self.assertEqual(machine.gameConfig(seat), [Pin(False)])

    def test_moveExcludesOldServer(self) -> None:
        """
        A lost seat sends the notice, pinned, and picks another server; the
        new seat does not greet again.
        """
        machine, seat, _ = self.seated()
        actions = machine.lost(seat, "gone")
        self.assertEqual(
            actions,
            [
                LinkGone(seat, 1013, "gone"),
                Pin(True),
                MoveNotice("gone"),
                Moved(seat, "gone"),
                Pick(frozenset({"gs1"})),
            ],
        )
        other = FakeSeat("gs2")
        machine.serverPicked(other, "gs2")
        self.assertIn(Seated(other, greet=False), machine.accepted(other))

    def test_resumed(self) -> None:
        """
        A session handed over from another node is seating, as a move:
        what the client sends is held and relayed once the resumed seat is
        taken back, without a greeting; a resumed seat lost tries another
        server, and no server ends the session with 1013.
        """
        machine, conn = self.machine(), Connection()
        self.assertEqual(machine.resumed(), [])
        self.assertIs(machine.state, SessionState.SEATING)
        self.assertEqual(machine.receive(conn, b"early"), [])
        seat = FakeSeat("gs1")
        self.assertEqual(machine.serverPicked(seat, "gs1"), [SeatingBegun(seat)])
        actions = machine.accepted(seat)
        self.assertIn(Seated(seat, greet=False), actions)
        self.assertIn(Relay(seat, (b"early",)), actions)
        self.assertEqual(machine.resumed(), [])
        other = self.machine()
        other.resumed()
        lost = FakeSeat("gs1")
        other.serverPicked(lost, "gs1")
        self.assertEqual(
            other.lost(lost, "held seat gone")[-1], Pick(frozenset({"gs1"}))
        )
        self.assertEqual(
            other.noServer(), [End(1013, "no game server can take the player")]
        )

    def test_moveWithoutRoomEnds(self) -> None:
        """
        A move that finds no server ends the session with 1013.
        """
        machine, seat, _ = self.seated()
        machine.lost(seat, "gone")
        self.assertEqual(
            machine.noServer(), [End(1013, "no game server can take the player")]
        )

    def test_kick(self) -> None:
        """
        Disconnect from the seat's server ends the session with a notice;
        a draining one moves it.
        """
        machine, seat, _ = self.seated()
        self.assertEqual(
            machine.disconnected(seat, 0, "cheat", False), [EndWithNotice("cheat")]
        )
        self.assertEqual(
            machine.disconnected(seat, 1, "", True)[-1], Pick(frozenset({"gs1"}))
        )

    def test_tooManyFailures(self) -> None:
        """
        The third wrong ID on one connection closes it with 4008.
        """
        machine, conn = self.machine(), Connection()
        for _ in range(2):
            machine.checkStarted(conn)
            self.assertEqual(
                machine.checkFailed(CheckFailure.UNAUTHORIZED),
                [Reply(conn, R.INVALID_ID, "invalid ID")],
            )
        machine.checkStarted(conn)
        self.assertEqual(
            machine.checkFailed(CheckFailure.UNAUTHORIZED)[-1],
            Close(conn, 4008, "authentication failed too often"),
        )
        self.assertEqual(machine.failures(conn), 3)

    def test_endedIsFinal(self) -> None:
        """
        After the end, every event is ignored.
        """
        machine, seat, conn = self.seated()
        self.assertEqual(machine.ended(4009, "x"), [LinkGone(seat, 4009, "x")])
        self.assertEqual(machine.ended(4009, "x"), [])
        self.assertEqual(machine.receive(conn, b"\x08\x01"), [])
        self.assertEqual(machine.lost(seat, "gone"), [])
        self.assertIs(machine.state, SessionState.ENDED)

    def test_illegalTransition(self) -> None:
        """
        A transition outside the table raises L{IllegalTransition}.
        """
        machine = self.machine()
        self.assertRaises(IllegalTransition, machine._moveTo, SessionState.RELAYING)
        self.assertEqual(_TRANSITIONS[SessionState.ENDED], frozenset())

    def test_validPlayerId(self) -> None:
        """
        Empty, over 1024 bytes, or with control characters: not valid.
        """
        self.assertTrue(validPlayerId("alice"))
        for bad in ("", "x" * 1025, "a\n", "b\x7f", "c\x85"):
            self.assertFalse(validPlayerId(bad))

    def test_noTwisted(self) -> None:
        """
        The sans-IO machine imports nothing from Twisted or Autobahn.
        """
        tree = ast.parse(inspect.getsource(seating))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                self.assertNotIn(name.split(".")[0], {"twisted", "autobahn", "txaio"})
