# -*- test-case-name: tests.test_seathold -*-
"""
Tests of the game server's side of Part 5: the client token of C{Control},
the seat hold and C{ClientAuth{resumed}} (L{aphelion.game.player}), and the
harness's L{aphelion.testing.FakePlayer.move}, C{drop} and C{resume}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import ErrorCode
from aphelion.game import DisconnectCode, GameServerFactory
from aphelion.game.player import HOLD_QUEUE_PACKETS
from aphelion.games.chat import ChatGame
from aphelion.proto import chat_pb2, control_pb2
from aphelion.testing import GameHarness
from tests.test_control_protocol import envelope
from tests.test_gameserver import (
    TOKEN,
    Arena,
    ArenaGame,
    GameServerTestsMixin,
    T,
    lose,
    received,
)

CLIENT_TOKEN = b"\x09" * 32


class Resumable(Arena):
    """
    An L{Arena} that records its seat-hold hooks and keeps state of its own
    on the protocol object.
    """

    score = 0

    def messageReceived(self, payload: bytes) -> None:
        """
        Count each message in C{score}, then as L{Arena}.
        """
        self.score += 1
        super().messageReceived(payload)

    def playerHeld(self, reason: str) -> None:
        """
        Record the hold.
        """
        self.factory.game.events.append(f"held {self.playerId}: {reason}")  # type: ignore[attr-defined]

    def playerResumed(self) -> None:
        """
        Record the resume, and greet the player back.
        """
        self.factory.game.events.append(f"resumed {self.playerId}")  # type: ignore[attr-defined]
        self.send(b"welcome back")


def clientAuth(
    playerId: str, sessionId: bytes | None = None, resumed: bool = True
) -> control_pb2.ClientAuth:
    """
    The C{ClientAuth} an AuthProxy sends, by default a resumed one.
    """
    return control_pb2.ClientAuth(
        player_id=playerId,
        name=playerId.title(),
        session_id=b"sid-" + playerId.encode() if sessionId is None else sessionId,
        remote_address="198.51.100.7",
        resumed=resumed,
    )


class SeatHoldTests(GameServerTestsMixin, SynchronousTestCase):
    """
    A seat is held when the connection goes without a C{Disconnect} or with
    C{Disconnect{MOVED}}, and a resumed C{ClientAuth} takes it back.
    """

    def setUp(self) -> None:
        """
        The game's protocol records the seat-hold hooks.
        """
        super().setUp()
        self.factory.playerProtocol = Resumable

    def resume(
        self, playerId: str, extra: bytes = b"", **kwargs: Any
    ) -> tuple[Any, StringTransport]:
        """
        Open a new player connection with a resumed C{ClientAuth} (and
        C{extra} bytes in the same read).

        :return: the protocol that serves the connection now, and its
            transport.
        """
        router, transport = self.server.connect()
        router.dataReceived(
            envelope(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=TOKEN)
            )
            + envelope(T.ClientAuth, clientAuth(playerId, **kwargs))
            + extra
        )
        return router.connection, transport

    def move(self, transport: StringTransport, protocol: Any) -> None:
        """
        Send C{Disconnect{MOVED}} on a player's connection and deliver its
        close.
        """
        protocol.dataReceived(
            envelope(
                T.Disconnect,
                control_pb2.Disconnect(code=DisconnectCode.MOVED, reason="moved"),
            )
        )
        self.assertTrue(transport.disconnecting)
        lose(protocol)

    def test_movedHoldsTheSeat(self) -> None:
        """
        C{Disconnect{MOVED}} holds the seat: the player stays seated, the game
        hears C{playerHeld}, not C{playerLeft}, and C{Status} is unchanged.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        self.assertTrue(alice.held)
        self.assertTrue(alice.seated)
        self.assertIs(self.factory.players["alice"], alice)
        self.assertIs(self.factory.held[b"sid-alice"], alice)
        self.assertEqual(self.game.left, [])
        self.assertEqual(self.game.events, ["held alice: moved"])

    def test_otherDisconnectLeaves(self) -> None:
        """
        A C{Disconnect} with any other code makes the player leave at once.
        """
        alice, _ = self.server.seat("alice")
        alice.dataReceived(
            envelope(T.Disconnect, control_pb2.Disconnect(code=0, reason="bye"))
        )
        self.assertFalse(alice.held)
        self.assertEqual(self.game.left, [("alice", "bye")])
        self.assertEqual(self.factory.held, {})

    def test_resumeTakesTheSeatBack(self) -> None:
        """
        A resumed C{ClientAuth} with the same session id, within the hold, is
        answered C{Connected} and C{GameConfig}, then what the game sent
        during the hold and in C{playerResumed}, in order; the same protocol
        object plays on, and the game saw no leave and no join.
        """
        alice, transport = self.server.seat("alice")
        alice.score = 5
        self.move(transport, alice)
        alice.send(b"one")
        self.factory.broadcast(b"two")
        self.clock.advance(self.factory.seatHold - 1)
        protocol, transport = self.resume("alice")
        self.assertIs(protocol, alice)
        messages = received(transport)
        self.assertEqual(
            [kind for kind, _ in messages],
            [T.Connected, T.GameConfig, T.GameData, T.GameData, T.GameData],
        )
        self.assertEqual(messages[0][1].player_id, "alice")
        self.assertEqual(
            [m for _, m in messages[2:]], [b"one", b"two", b"welcome back"]
        )
        self.assertFalse(alice.held)
        self.assertEqual(alice.score, 5)
        self.assertEqual(alice.remoteAddress, "198.51.100.7")
        self.assertEqual([p for p, _ in self.game.joined], ["alice"])
        self.assertEqual(self.game.left, [])
        self.assertEqual(self.game.events, ["held alice: moved", "resumed alice"])
        self.assertEqual(self.factory.held, {})
        # The hold's timer is gone: no leave when it would have ended.
        self.clock.advance(5)
        self.assertEqual(self.game.left, [])

    def test_resumedPlayerPlays(self) -> None:
        """
        After a resume, the player's messages (even those in the same read as
        the C{ClientAuth}) reach the same object, and what it sends goes over
        the new connection.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        extra = envelope(T.GameData, b"hello")
        protocol, transport = self.resume("alice", extra)
        received(transport)
        self.assertEqual(self.game.messages, [("alice", b"hello")])
        protocol.dataReceived(envelope(T.GameData, b"all again"))
        self.assertEqual(self.game.messages[-1], ("alice", b"all again"))
        self.assertEqual(received(transport), [(T.GameData, b"again")])
        self.assertEqual(alice.score, 2)

    def test_resumedThenLostIsHeldAgain(self) -> None:
        """
        The resumed connection's loss reaches the same player, whose seat is
        held again.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        protocol, _ = self.resume("alice")
        lose(protocol)
        self.assertTrue(alice.held)
        self.clock.advance(self.factory.seatHold)
        self.assertEqual(self.game.left, [("alice", "seat hold expired")])

    def test_lostConnectionHolds(self) -> None:
        """
        A connection lost without a C{Disconnect} holds the seat too.
        """
        alice, _ = self.server.seat("alice")
        lose(alice)
        self.assertTrue(alice.held)
        protocol, transport = self.resume("alice")
        self.assertIs(protocol, alice)
        self.assertEqual(received(transport)[0][0], T.Connected)

    def test_holdExpires(self) -> None:
        """
        When the hold ends unclaimed the player leaves (C{playerLeft}), and a
        later resumed C{ClientAuth} seats it as a new player.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        self.clock.advance(self.factory.seatHold)
        self.assertEqual(self.game.left, [("alice", "seat hold expired")])
        self.assertEqual(self.factory.players, {})
        protocol, transport = self.resume("alice")
        self.assertIsNot(protocol, alice)
        self.assertEqual(received(transport)[0][0], T.Connected)
        self.assertEqual([p for p, _ in self.game.joined], ["alice", "alice"])

    def test_resumeWithoutHold(self) -> None:
        """
        A resumed C{ClientAuth} that finds no held seat is a normal join.
        """
        protocol, transport = self.resume("alice")
        self.assertEqual(received(transport)[0][0], T.Connected)
        self.assertEqual([p for p, _ in self.game.joined], ["alice"])
        self.assertEqual(self.game.events, [])
        self.assertTrue(protocol.seated)

    def test_resumeOtherPlayer(self) -> None:
        """
        A resumed C{ClientAuth} naming a held session but another player is
        not that seat's: it joins as a new player.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        protocol, _ = self.resume("bob", sessionId=b"sid-alice")
        self.assertIsNot(protocol, alice)
        self.assertTrue(alice.held)
        self.assertEqual([p for p, _ in self.game.joined], ["alice", "bob"])

    def test_newLoginReplacesHeld(self) -> None:
        """
        A C{ClientAuth} that is not resumed, for the player whose seat is
        held, replaces it: the held player leaves, the new one joins.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        protocol, _ = self.resume("alice", resumed=False)
        self.assertIsNot(protocol, alice)
        self.assertEqual(self.game.left, [("alice", "replaced by a newer connection")])
        self.assertIs(self.factory.players["alice"], protocol)
        self.assertEqual(self.factory.held, {})

    def test_queueBounded(self) -> None:
        """
        More than L{HOLD_QUEUE_PACKETS} game messages for a held player end
        the hold: the player leaves.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        for _ in range(HOLD_QUEUE_PACKETS):
            alice.send(b"x")
        self.assertTrue(alice.held)
        alice.send(b"x")
        self.assertFalse(alice.seated)
        self.assertEqual(
            self.game.left, [("alice", "too much queued while its seat was held")]
        )

    def test_queueBoundsTunable(self) -> None:
        """
        A game's protocol may set its own bounds: C{holdQueueBytes} ends the
        hold once the queued bytes pass it.
        """
        self.factory.playerProtocol = type(
            "Small", (Resumable,), {"holdQueueBytes": 100}
        )
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        alice.send(b"x" * 60)
        self.assertTrue(alice.held)
        alice.send(b"x" * 60)
        self.assertFalse(alice.seated)
        self.assertEqual(
            self.game.left, [("alice", "too much queued while its seat was held")]
        )

    def test_badSeatHold(self) -> None:
        """
        A negative or NaN seat hold is refused when the factory is made (NaN
        would pass a plain comparison and reach the clock).
        """
        for bad in (-1.0, float("nan")):
            self.assertRaises(
                ValueError,
                GameServerFactory,
                clock=Clock(),
                token=b"\x01" * 32,
                game=ChatGame(),
                seatHold=bad,
            )

    def test_heldIsWritePaused(self) -> None:
        """
        A held player shows L{writePaused}, so that a game may skip state
        updates; a resumed one does not.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        self.assertTrue(alice.writePaused)
        self.resume("alice")
        self.assertFalse(alice.writePaused)

    def test_noHold(self) -> None:
        """
        With a seat hold of 0, a C{MOVED} player leaves at once.
        """
        self.factory.seatHold = 0
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        self.assertEqual(self.game.left, [("alice", "moved")])

    def test_drainEndsHolds(self) -> None:
        """
        A drain makes held players leave, and holds no new seat.
        """
        self.server.control()
        alice, transport = self.server.seat("alice")
        bob, _ = self.server.seat("bob")
        self.move(transport, alice)
        self.factory.shutdown("bye")
        self.assertEqual(sorted(p for p, _ in self.game.left), ["alice", "bob"])
        self.assertEqual(self.factory.held, {})
        self.assertFalse(bob.held)

    def test_resumedHookRaises(self) -> None:
        """
        An exception from C{playerResumed} is logged and the player is
        kicked with C{INTERNAL_ERROR}.
        """

        class Clumsy(Resumable):
            def playerResumed(self) -> None:
                raise ValueError("playerResumed failed")

        self.factory.playerProtocol = Clumsy
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        _, transport = self.resume("alice")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        [(kind, message)] = received(transport)
        self.assertEqual(
            (kind, message.code), (T.Disconnect, DisconnectCode.INTERNAL_ERROR)
        )
        self.assertEqual(self.game.left[0][0], "alice")

    def test_stopEndsHolds(self) -> None:
        """
        When the game server stops, held players leave before the game stops.
        """
        alice, transport = self.server.seat("alice")
        self.move(transport, alice)
        self.factory.doStart()
        self.factory.doStop()
        self.assertEqual(self.game.left[0][0], "alice")


class ClientTokenTests(GameServerTestsMixin, SynchronousTestCase):
    """
    Player connections present C{Control.client_token} once a control
    connection named one, else the control token.
    """

    def typeWith(self, token: bytes) -> StringTransport:
        """
        Open a player connection that presents C{token} and asks for a seat.
        """
        router, transport = self.server.connect()
        router.dataReceived(
            envelope(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=token)
            )
            + envelope(T.ClientAuth, clientAuth("alice", resumed=False))
        )
        return transport

    def control(self, clientToken: bytes) -> None:
        """
        Open the control connection with a client token.
        """
        router, transport = self.server.connect()
        router.dataReceived(
            envelope(
                T.Control,
                control_pb2.Control(
                    token=TOKEN, server_id="s1", client_token=clientToken
                ),
            )
        )
        self.assertEqual([kind for kind, _ in received(transport)], [T.Ready, T.Status])

    def test_clientToken(self) -> None:
        """
        After C{Control} with a client token, C{Type} with it seats players.
        """
        self.control(CLIENT_TOKEN)
        transport = self.typeWith(CLIENT_TOKEN)
        self.assertEqual(received(transport)[0][0], T.Connected)

    def test_controlTokenRefused(self) -> None:
        """
        After C{Control} with a client token, the control token is no
        longer taken from player connections: C{Error{BAD_TOKEN}}.
        """
        self.control(CLIENT_TOKEN)
        self.assertError(self.typeWith(TOKEN), ErrorCode.BAD_TOKEN)

    def test_emptyClientToken(self) -> None:
        """
        C{Control} without a client token leaves the control token in use.
        """
        self.control(b"")
        self.assertEqual(received(self.typeWith(TOKEN))[0][0], T.Connected)
        self.assertError(self.typeWith(CLIENT_TOKEN), ErrorCode.BAD_TOKEN)


class HarnessTests(SynchronousTestCase):
    """
    L{GameHarness} lets a game test its C{playerResumed}.
    """

    def test_moveAndResume(self) -> None:
        """
        A moved player is held, and resumes with what the game said to the
        room meanwhile; the others never saw it leave.
        """
        harness = GameHarness(ChatGame())
        alice = harness.join("alice")
        bob = harness.join("bob")
        protocol = alice.protocol
        alice.move()
        self.assertTrue(alice.held)
        self.assertTrue(alice.seated)
        before = len(bob.received)
        bob.send(chat_pb2.C2S(say=chat_pb2.Say(text="hi")).SerializeToString())
        self.assertEqual(len(bob.received), before + 1)
        alice.resume()
        self.assertFalse(alice.held)
        self.assertIs(alice.protocol, protocol)
        self.assertIsNotNone(alice.connected)
        self.assertEqual(alice.received[-1], bob.received[-1])
        self.assertEqual(sorted(harness.players), ["alice", "bob"])

    def test_dropThenExpire(self) -> None:
        """
        A dropped player leaves when the seat hold ends.
        """
        harness = GameHarness(ArenaGame(), seatHold=3.0)
        alice = harness.join("alice")
        alice.drop()
        self.assertTrue(alice.held)
        harness.advance(3)
        self.assertFalse(alice.seated)
        self.assertEqual(harness.game.left, [("alice", "seat hold expired")])  # type: ignore[attr-defined]
