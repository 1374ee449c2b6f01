# -*- test-case-name: tests.test_arena -*-
"""
Tests of L{aphelion.games.arena}: the tick, the inputs and the interest
filter, on a L{Clock} with L{aphelion.testing.GameHarness}.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import DisconnectCode
from aphelion.games.arena import ArenaGame, ArenaPlayer, encodeVarint, makeGame
from aphelion.proto.arena_pb2 import C2S, S2C, Input
from aphelion.proto.game_pb2 import Authenticate
from aphelion.testing import FakePlayer, GameHarness


def inputMessage(seq: int, dx: int = 0, dy: int = 0) -> bytes:
    """
    A C{C2S{input}}.
    """
    return C2S(input=Input(seq=seq, dx=dx, dy=dy)).SerializeToString()


def messages(player: FakePlayer) -> list[S2C]:
    """
    What the player got since the last call, parsed; its record is cleared.
    """
    received = [S2C.FromString(payload) for payload in player.received]
    player.received.clear()
    return received


def seen(message: S2C) -> dict[int, tuple[int, int]]:
    """
    The entities of a snapshot, by number.
    """
    return {e.id: (e.x, e.y) for e in message.snapshot.entities}


class ArenaTestCase(SynchronousTestCase):
    """
    A harness around the arena, with the options of L{options}.
    """

    options: dict[str, str] = {"seed": "7"}

    def setUp(self) -> None:
        self.harness = GameHarness(makeGame(), options=self.options)
        self.addCleanup(self.harness.stop)
        game = self.harness.game
        assert isinstance(game, ArenaGame)
        self.game = game

    def tick(self, count: int = 1) -> None:
        """
        Let C{count} ticks pass, one at a time.
        """
        for _ in range(count):
            self.harness.clock.advance(1.0 / self.game.tickHz)
            self.harness.settle()

    def join(self, playerId: str, x: float, y: float) -> FakePlayer:
        """
        Seat a player and put its dot at C{(x, y)}.
        """
        player = self.harness.join(playerId)
        protocol = self.protocol(playerId)
        protocol.x, protocol.y = x, y
        return player

    def protocol(self, playerId: str) -> ArenaPlayer:
        """
        The game's protocol of a seated player.
        """
        protocol = self.harness.players[playerId]
        assert isinstance(protocol, ArenaPlayer)
        return protocol


class TickTests(ArenaTestCase):
    """
    The fixed tick: one snapshot per player per tick, numbered.
    """

    def test_config(self) -> None:
        """
        A player gets C{Connected} and the field and tick as JSON.
        """
        alice = self.harness.join("alice")
        assert alice.connected is not None and alice.config is not None
        self.assertEqual(alice.connected.name, "arena")
        self.assertEqual(alice.config.content_type, "application/json")
        self.assertEqual(
            json.loads(alice.config.content),
            {
                "size": 1000,
                "interest": 100,
                "tick_hz": 20.0,
                "speed": 200.0,
                "max_visible": 32,
            },
        )

    def test_oneSnapshotPerTick(self) -> None:
        """
        Nothing arrives between ticks; each tick brings every player one
        C{S2C} with the next tick number, its own number and position.
        """
        alice = self.join("alice", 10, 20)
        self.harness.clock.advance(0.049)
        self.harness.settle()
        self.assertEqual(messages(alice), [])
        self.tick(3)
        got = messages(alice)
        self.assertEqual([m.snapshot.tick for m in got], [1, 2, 3])
        you = got[-1].you
        self.assertEqual((you.id, you.ack, you.x, you.y), (1, 0, 10, 20))
        self.assertEqual(seen(got[-1]), {1: (10, 20)})

    def test_tickRate(self) -> None:
        """
        C{tick_hz} sets the rate: at 10 Hz, a snapshot every 0.1 s.
        """
        harness = GameHarness(makeGame(), options={"tick_hz": "10"})
        self.addCleanup(harness.stop)
        alice = harness.join("alice")
        for _ in range(4):
            harness.clock.advance(0.05)
            harness.settle()
        self.assertEqual([m.snapshot.tick for m in messages(alice)], [1, 2])

    def test_lateTick(self) -> None:
        """
        A tick that comes three intervals late moves the dots three ticks'
        distance and sends one snapshot whose number skips the two missed
        ones; they are counted and logged.
        """
        alice = self.join("alice", 100, 100)
        alice.send(inputMessage(1, dx=1))
        with capturedLogs() as events:
            self.harness.clock.advance(3 / 20 + 0.001)
            self.harness.settle()
        [message] = messages(alice)
        self.assertEqual(message.snapshot.tick, 3)
        self.assertEqual(message.you.x, 130)
        self.assertEqual(self.game.missedTicks, 2)
        self.assertIn("late", " ".join(e["log_format"] for e in events))

    def test_stopped(self) -> None:
        """
        When the game server stops, the tick stops: no timer is left.
        """
        self.join("alice", 0, 0)
        self.tick()
        self.harness.stop()
        self.assertEqual(self.harness.clock.getDelayedCalls(), [])

    def test_badOption(self) -> None:
        """
        An option out of range or not a number is refused.
        """
        for options in ({"tick_hz": "0"}, {"size": "big"}, {"max_visible": "0"}):
            self.assertRaises(ValueError, ArenaGame().configure, options, None)

    @given(st.integers(min_value=0, max_value=2**32 - 1))
    def test_varint(self, value: int) -> None:
        """
        L{encodeVarint} encodes a number as protobuf does.
        """
        self.assertEqual(
            encodeVarint(value), Input(seq=value).SerializeToString()[1:] or b"\x00"
        )


class InputTests(ArenaTestCase):
    """
    Inputs: applied at the next tick, the latest one only, acknowledged.
    """

    def test_appliedAtTheTick(self) -> None:
        """
        An input changes nothing until the next tick; then the dot moves
        C{speed / tick_hz} units and C{you.ack} names the input.
        """
        alice = self.join("alice", 100, 100)
        self.tick()
        messages(alice)
        alice.send(inputMessage(1, dx=1))
        self.assertEqual(messages(alice), [])
        self.assertEqual(self.protocol("alice").x, 100)
        self.tick()
        [message] = messages(alice)
        self.assertEqual((message.you.ack, message.you.x, message.you.y), (1, 110, 100))
        self.tick()
        [message] = messages(alice)
        self.assertEqual((message.you.ack, message.you.x), (1, 120))

    def test_latestCounts(self) -> None:
        """
        Of the inputs that arrive between two ticks, the one with the
        highest C{seq} is applied; an older or repeated C{seq} is ignored;
        directions count only by their sign.
        """
        alice = self.join("alice", 100, 100)
        alice.send(inputMessage(2, dx=5))
        alice.send(inputMessage(1, dx=-1))
        alice.send(inputMessage(2, dy=1))
        self.tick()
        [message] = messages(alice)
        self.assertEqual((message.you.ack, message.you.x, message.you.y), (2, 110, 100))
        alice.send(inputMessage(3, dx=-1, dy=-1))
        alice.send(inputMessage(4, dy=-7))
        self.tick()
        [message] = messages(alice)
        self.assertEqual((message.you.ack, message.you.x, message.you.y), (4, 110, 90))

    def test_diagonal(self) -> None:
        """
        A diagonal move is as fast as a straight one.
        """
        alice = self.join("alice", 100, 100)
        alice.send(inputMessage(1, dx=1, dy=1))
        self.tick()
        [message] = messages(alice)
        self.assertEqual((message.you.x, message.you.y), (107, 107))

    def test_clampedToTheField(self) -> None:
        """
        A dot stops at the edge of the field.
        """
        alice = self.join("alice", 5, 995)
        alice.send(inputMessage(1, dx=-1))
        self.tick()
        alice.send(inputMessage(2, dy=1))
        self.tick()
        self.assertEqual(messages(alice)[-1].you.x, 0)
        self.tick()
        self.assertEqual(messages(alice)[-1].you.y, 999)

    def test_malformed(self) -> None:
        """
        A C{C2S} that does not parse gets the player kicked; one without an
        input (such as a stray C{authenticate}) is ignored.
        """
        alice = self.join("alice", 0, 0)
        alice.send(C2S(authenticate=Authenticate(id="alice")).SerializeToString())
        self.assertTrue(alice.seated)
        alice.send(b"\xff\xff")
        assert alice.kicked is not None
        self.assertEqual(alice.kicked[0], DisconnectCode.MALFORMED_MESSAGE)
        self.assertFalse(alice.seated)


class InterestTests(ArenaTestCase):
    """
    Who sees whom: the cells of C{interest} units, C{max_visible}, and the
    snapshot shared by a cell.
    """

    options = {"seed": "7", "max_visible": "4"}

    def test_nearAndFar(self) -> None:
        """
        A player sees those in its cell and the eight around it, not those
        farther away.
        """
        alice = self.join("alice", 150, 150)
        self.join("bob", 250, 250)  # the next cell, diagonally
        self.join("carol", 350, 150)  # two cells away
        self.tick()
        [message] = messages(alice)
        self.assertEqual(seen(message), {1: (150, 150), 2: (250, 250)})

    def test_bounded(self) -> None:
        """
        A snapshot has at most C{max_visible} entities, its own cell's
        first; a player left out still gets its own state in C{you}.
        """
        players = [self.join(f"p{n}", 150 + n, 150) for n in range(3)]
        near = [self.join(f"q{n}", 250, 150) for n in range(3)]
        self.tick()
        for player in players:
            [message] = messages(player)
            self.assertEqual(len(message.snapshot.entities), 4)
            self.assertEqual(set(seen(message)) & {1, 2, 3}, {1, 2, 3})
        for player in near:
            messages(player)
        crowd = [self.join(f"r{n}", 250, 150) for n in range(3)]
        self.tick()
        for player in near + crowd:
            [message] = messages(player)
            self.assertEqual(len(message.snapshot.entities), 4)
            self.assertEqual(set(seen(message)) & {1, 2, 3}, set())
        # The last of the crowd's message: it is left out of its own snapshot.
        self.assertEqual((message.you.id, message.you.x), (9, 250))
        self.assertNotIn(9, seen(message))

    def test_sharedPerCell(self) -> None:
        """
        Players of one cell get the same snapshot bytes, followed by their
        own C{you}.
        """
        alice = self.join("alice", 110, 110)
        bob = self.join("bob", 190, 190)
        self.tick()
        [fromAlice], [fromBob] = alice.received, bob.received
        self.assertEqual(
            S2C.FromString(fromAlice).snapshot, S2C.FromString(fromBob).snapshot
        )
        cut = len(S2C(snapshot=S2C.FromString(fromAlice).snapshot).SerializeToString())
        self.assertEqual(fromAlice[:cut], fromBob[:cut])
        self.assertNotEqual(fromAlice[cut:], fromBob[cut:])

    def test_left(self) -> None:
        """
        A player who left is missing from the next snapshots.
        """
        alice = self.join("alice", 150, 150)
        bob = self.join("bob", 160, 160)
        self.tick()
        self.assertEqual(set(seen(messages(alice)[0])), {1, 2})
        bob.leave()
        self.tick()
        self.assertEqual(set(seen(messages(alice)[0])), {1})

    def test_backedUpSkipped(self) -> None:
        """
        A player whose connection is backed up skips the snapshot; it is
        counted, and the others still get theirs.
        """
        alice = self.join("alice", 150, 150)
        bob = self.join("bob", 160, 160)
        self.protocol("bob").pauseProducing()
        self.tick()
        self.assertEqual(len(messages(alice)), 1)
        self.assertEqual(messages(bob), [])
        self.assertEqual(self.game.skippedSnapshots, 1)
        self.protocol("bob").resumeProducing()
        self.tick()
        self.assertEqual([m.snapshot.tick for m in messages(bob)], [2])
