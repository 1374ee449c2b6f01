# -*- test-case-name: tests.test_testing -*-
"""
Tests of L{aphelion.testing.GameHarness}: the games that ship with aphelion,
chat and echo, and a game with a timer, run against fake players.
"""

from __future__ import annotations

import json

from twisted.internet.interfaces import IDelayedCall
from twisted.trial.unittest import SynchronousTestCase

from aphelion.game import DisconnectCode, Game, GameServerProtocol, RejectCode
from aphelion.games import chat, echo
from aphelion.proto.chat_pb2 import C2S, S2C, Say
from aphelion.testing import FakePlayer, GameHarness


def said(player: FakePlayer) -> list[tuple[str, str]]:
    """
    The C{said} messages a chat player received.
    """
    result = []
    for payload in player.received:
        message = S2C.FromString(payload).said
        result.append((message.player_id, message.text))
    return result


def say(text: str) -> bytes:
    """
    A chat C{C2S{say}}.
    """
    return C2S(say=Say(text=text)).SerializeToString()


class ChatThroughHarnessTests(SynchronousTestCase):
    """
    The chat game, run by the harness.
    """

    def setUp(self) -> None:
        """
        A chat room with two players.
        """
        self.harness = GameHarness(chat.makeGame(), options={"motd": "hi"})
        self.alice = self.harness.join("alice")
        self.bob = self.harness.join("bob")

    def test_seated(self) -> None:
        """
        Joined players are seated, got C{Connected} and the room's config, and
        the game server reported them in C{Status}.
        """
        self.assertTrue(self.alice.seated)
        connected = self.alice.connected
        assert connected is not None
        self.assertEqual((connected.player_id, connected.name), ("alice", "chat"))
        config = self.bob.config
        assert config is not None
        self.assertEqual(json.loads(config.content), {"arena": "lobby", "motd": "hi"})
        self.assertEqual(sorted(self.harness.players), ["alice", "bob"])
        self.assertEqual(self.harness.statuses[-1], (2, 64, True))

    def test_broadcast(self) -> None:
        """
        What a player says reaches every player, itself included.
        """
        self.alice.send(say("hello"))
        self.assertEqual(said(self.alice), [("alice", "hello")])
        self.assertEqual(said(self.bob), [("alice", "hello")])

    def test_kicked(self) -> None:
        """
        A malformed message gets the player kicked; the game forgets it.
        """
        self.alice.send(b"\xff")
        self.assertEqual(
            self.alice.kicked,
            (DisconnectCode.MALFORMED_MESSAGE, "malformed C2S"),
        )
        self.assertFalse(self.alice.seated)
        self.assertEqual(list(self.harness.players), ["bob"])

    def test_leave(self) -> None:
        """
        A player who leaves is no longer seated, and gets nothing more.
        """
        self.bob.leave()
        self.assertFalse(self.bob.seated)
        self.alice.send(say("anyone?"))
        self.assertEqual(said(self.bob), [])
        self.assertEqual(list(self.harness.players), ["alice"])

    def test_shutdown(self) -> None:
        """
        A drain disconnects every player with C{SHUTTING_DOWN}.
        """
        self.harness.shutdown("maintenance")
        self.assertEqual(
            self.alice.kicked, (DisconnectCode.SHUTTING_DOWN, "maintenance")
        )
        self.assertEqual(self.harness.players, {})


class EchoThroughHarnessTests(SynchronousTestCase):
    """
    The echo game, run by the harness.
    """

    def test_echo(self) -> None:
        """
        Each message comes back to its sender only, verbatim.
        """
        harness = GameHarness(echo.makeGame())
        alice = harness.join("alice")
        bob = harness.join("bob")
        alice.send(b"\x00one")
        alice.send(b"\x00two")
        self.assertEqual(alice.received, [b"\x00one", b"\x00two"])
        self.assertEqual(bob.received, [])

    def test_protocol(self) -> None:
        """
        A fake player's C{protocol} is the game's protocol instance.
        """
        harness = GameHarness(echo.makeGame())
        alice = harness.join("alice", {"team": "red"})
        protocol = alice.protocol
        assert protocol is not None
        self.assertIsInstance(protocol, echo.Echo)
        self.assertEqual(protocol.attributes, {"team": "red"})


class Ticker(GameServerProtocol):
    """
    A game protocol that refuses banned players and echoes messages.
    """

    def playerJoined(self, playerId: str, attributes: dict[str, str]) -> None:
        """
        Refuse a banned player.
        """
        if "banned" in attributes:
            self.reject(100, "banned")

    def messageReceived(self, payload: bytes) -> None:
        """
        Echo.
        """
        self.send(payload)


class TickerGame(Game):
    """
    A game that broadcasts a tick every 10 seconds, on the server's clock.
    """

    name = "ticker"
    capacity = 1
    protocol = Ticker
    _call: IDelayedCall | None = None

    def start(self) -> None:
        """
        Start ticking.
        """
        self._tick()

    def _tick(self) -> None:
        """
        Broadcast a tick and schedule the next.
        """
        server = self.server
        assert server is not None
        server.broadcast(b"tick")
        self._call = server.clock.callLater(10, self._tick)

    def stop(self) -> None:
        """
        Stop ticking.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()


class TimersAndRefusalsTests(SynchronousTestCase):
    """
    The harness's clock, refusals, and a long wait with the control
    connection alive.
    """

    def test_timer(self) -> None:
        """
        The game's timers run on the harness's clock; a long wait keeps the
        control connection open (its heartbeats are answered).
        """
        harness = GameHarness(TickerGame())
        alice = harness.join("alice")
        harness.advance(60)
        self.assertEqual(alice.received, [b"tick"] * 6)
        self.assertIsNotNone(harness.factory.control)
        harness.stop()
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_rejected(self) -> None:
        """
        A player the game refuses has C{rejected} and is not seated.
        """
        harness = GameHarness(TickerGame())
        mallory = harness.join("mallory", {"banned": "yes"})
        self.assertEqual(mallory.rejected, (100, "banned"))
        self.assertFalse(mallory.seated)
        self.assertIsNone(mallory.connected)

    def test_full(self) -> None:
        """
        The game server refuses a player beyond the game's capacity.
        """
        harness = GameHarness(TickerGame())
        harness.join("alice")
        bob = harness.join("bob")
        self.assertEqual(bob.rejected, (RejectCode.FULL, "server full"))
