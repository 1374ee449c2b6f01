# -*- test-case-name: tests.test_chat -*-
"""
Tests of the games that ship with aphelion: L{aphelion.games.chat} and
L{aphelion.games.echo}, seated on a game server over in-memory transports.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import EnvelopeType
from aphelion.game import DisconnectCode
from aphelion.games import chat, echo
from aphelion.proto.chat_pb2 import C2S, S2C, Said, Say
from aphelion.proto.game_pb2 import C2S as GatewayC2S
from aphelion.proto.game_pb2 import Authenticate, GameConfig
from tests.test_control_protocol import envelope
from tests.test_gameserver import GameServerHarness, received

T = EnvelopeType


def say(text: str) -> bytes:
    """
    A C{GameData} envelope carrying C{C2S{say}}.
    """
    return envelope(T.GameData, C2S(say=Say(text=text)).SerializeToString())


def saids(payloads: list[tuple[int, object]]) -> list[tuple[str, str]]:
    """
    The C{said} messages among what a player received.
    """
    result = []
    for kind, payload in payloads:
        assert kind == T.GameData, kind
        assert isinstance(payload, bytes)
        message = S2C.FromString(payload)
        result.append((message.said.player_id, message.said.text))
    return result


class ChatTests(SynchronousTestCase):
    """
    The chat room.
    """

    def setUp(self) -> None:
        """
        A chat game server.
        """
        self.server = GameServerHarness(chat.makeGame())

    def test_saidToEveryone(self) -> None:
        """
        A C{say} is broadcast as C{said}, with the sender's player ID, to every
        player, the sender included.
        """
        alice, aliceTransport = self.server.seat("alice")
        _, bobTransport = self.server.seat("bob")
        alice.dataReceived(say("hello"))
        self.assertEqual(saids(received(aliceTransport)), [("alice", "hello")])
        self.assertEqual(saids(received(bobTransport)), [("alice", "hello")])

    def test_config(self) -> None:
        """
        Each player gets the room's name and message of the day as JSON, from
        the options of C{Control} or their defaults.
        """
        _, transport = self.server.player("alice")
        [_, (_, config)] = received(transport)
        self.assertEqual(config.content_type, "application/json")
        self.assertEqual(
            json.loads(config.content),
            {"arena": "lobby", "motd": "Welcome to aphelion chat."},
        )
        self.server.control({"arena": "den", "motd": "hi"})
        _, transport = self.server.player("bob")
        [_, (_, config)] = received(transport)
        self.assertEqual(json.loads(config.content), {"arena": "den", "motd": "hi"})

    def test_gatewayView(self) -> None:
        """
        The chat's C{S2C} and the gateway's are two views of one message: a
        C{said} parses as the gateway's C{S2C} (with the field unknown), and
        the gateway's C{authenticate} parses as the chat's C{C2S}.
        """
        auth = GatewayC2S(authenticate=Authenticate(id="ticket"))
        self.assertEqual(
            C2S.FromString(auth.SerializeToString()).authenticate.id, "ticket"
        )
        said = S2C(said=Said(player_id="a", text="b")).SerializeToString()
        self.assertEqual(S2C.FromString(said).said.text, "b")

    def test_malformed(self) -> None:
        """
        A payload that does not parse as C{C2S} gets the player kicked with
        C{Disconnect{MALFORMED_MESSAGE}}; the others hear nothing.
        """
        alice, aliceTransport = self.server.seat("alice")
        _, bobTransport = self.server.seat("bob")
        alice.dataReceived(envelope(T.GameData, b"\xff\xff\xff"))
        [(kind, message)] = received(aliceTransport)
        self.assertEqual(
            (kind, message.code, message.reason),
            (T.Disconnect, DisconnectCode.MALFORMED_MESSAGE, "malformed C2S"),
        )
        self.assertTrue(aliceTransport.disconnecting)
        self.assertEqual(received(bobTransport), [])
        self.assertNotIn("alice", self.server.factory.players)

    def test_nothingToSay(self) -> None:
        """
        A C{C2S} without C{say}, or with only blanks to say, is ignored.
        """
        alice, transport = self.server.seat("alice")
        alice.dataReceived(envelope(T.GameData, b""))
        alice.dataReceived(say("   "))
        alice.dataReceived(
            envelope(
                T.GameData,
                C2S(authenticate=Authenticate(id="again")).SerializeToString(),
            )
        )
        self.assertEqual(received(transport), [])
        self.assertFalse(transport.disconnecting)

    def test_longTextCut(self) -> None:
        """
        Only the first C{MAX_TEXT} characters are passed on.
        """
        alice, transport = self.server.seat("alice")
        alice.dataReceived(say("x" * (chat.MAX_TEXT + 10)))
        [(_, text)] = saids(received(transport))
        self.assertEqual(len(text), chat.MAX_TEXT)


class EchoTests(SynchronousTestCase):
    """
    The echo game.
    """

    def test_echo(self) -> None:
        """
        Each game message goes back to its sender only, verbatim.
        """
        server = GameServerHarness(echo.makeGame())
        alice, aliceTransport = server.seat("alice")
        _, bobTransport = server.seat("bob")
        alice.dataReceived(envelope(T.GameData, b"\x00\x01ping"))
        self.assertEqual(received(aliceTransport), [(T.GameData, b"\x00\x01ping")])
        self.assertEqual(received(bobTransport), [])

    def test_config(self) -> None:
        """
        The echo game's config is empty.
        """
        server = GameServerHarness(echo.makeGame())
        _, transport = server.player("alice")
        [_, (_, config)] = received(transport)
        self.assertEqual(config, GameConfig(content_type="application/octet-stream"))
