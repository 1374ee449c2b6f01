# -*- test-case-name: tests.test_gameserver -*-
"""
Tests of L{aphelion.game}: the game server's router, control and player
connections over in-memory transports, with a L{Clock} for every timer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import EnvelopeType, ErrorCode
from aphelion.envelope import HEADER, PAYLOAD_TYPES, EnvelopeDecoder, decodePayload
from aphelion.game import (
    DisconnectCode,
    Game,
    GameServerFactory,
    GameServerProtocol,
    RejectCode,
    loadGame,
)
from aphelion.game.router import GameServerRouter
from aphelion.games.chat import ChatGame
from aphelion.proto import control_pb2
from aphelion.proto.game_pb2 import GameConfig, GameDetails
from tests.test_control_protocol import QueueTransport, envelope

T = EnvelopeType
TOKEN = b"\x07" * 32


def received(transport: StringTransport) -> list[tuple[int, Any]]:
    """
    Decode what the game server wrote on one connection, and clear it.

    :return: C{(type, message)} pairs; C{GameData} as raw bytes.
    """
    result: list[tuple[int, Any]] = []
    for item in EnvelopeDecoder().feed(transport.value()):
        messageClass = PAYLOAD_TYPES[T(item.type)]
        if messageClass is None:
            result.append((item.type, item.payload))
        else:
            result.append((item.type, decodePayload(item, messageClass)))
    transport.clear()
    return result


class GameServerHarness:
    """
    A game server on a L{Clock}, and helpers that connect to it the way the
    AuthProxy does. For tests of games too.

    :ivar clock: the clock.
    :ivar factory: the L{GameServerFactory}.
    """

    def __init__(self, game: Game, serverId: str = "s1") -> None:
        """
        :param game: the game to serve.
        :param serverId: the server's id.
        """
        self.clock = Clock()
        self.factory = GameServerFactory(
            clock=self.clock, token=TOKEN, game=game, serverId=serverId
        )

    def connect(self) -> tuple[GameServerRouter, StringTransport]:
        """
        Open a connection; nothing sent yet. The transport's C{protocol} is
        the router, as a TCP connection's is.
        """
        protocol = self.factory.buildProtocol(None)
        assert isinstance(protocol, GameServerRouter)
        transport = StringTransport()
        transport.protocol = protocol  # type: ignore[attr-defined]
        protocol.makeConnection(transport)
        return protocol, transport

    def control(
        self,
        options: Mapping[str, str] | None = None,
        config: GameConfig | None = None,
    ) -> tuple[Any, StringTransport]:
        """
        Open the control connection; its C{Ready} and C{Status} are read.
        """
        router, transport = self.connect()
        router.dataReceived(
            envelope(
                T.Control,
                control_pb2.Control(
                    token=TOKEN, server_id="s1", options=options or {}, config=config
                ),
            )
        )
        kinds = [kind for kind, _ in received(transport)]
        assert kinds == [T.Ready, T.Status], kinds
        return router.connection, transport

    def player(
        self, playerId: str, attributes: Mapping[str, str] | None = None
    ) -> tuple[GameServerProtocol, StringTransport]:
        """
        Open a player connection and send C{Type{CLIENT}} and C{ClientAuth};
        what the game server answered is left in the transport.
        """
        router, transport = self.connect()
        router.dataReceived(
            envelope(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=TOKEN)
            )
            + envelope(
                T.ClientAuth,
                control_pb2.ClientAuth(
                    player_id=playerId,
                    name=playerId.title(),
                    session_id=b"sid-" + playerId.encode(),
                    remote_address="192.0.2.1",
                    attributes=attributes or {},
                ),
            )
        )
        protocol = router.connection
        assert isinstance(protocol, GameServerProtocol)
        return protocol, transport

    def seat(
        self, playerId: str, attributes: Mapping[str, str] | None = None
    ) -> tuple[GameServerProtocol, StringTransport]:
        """
        Seat a player; its C{Connected} and C{GameConfig} are read.
        """
        protocol, transport = self.player(playerId, attributes)
        kinds = [kind for kind, _ in received(transport)]
        assert kinds[:2] == [T.Connected, T.GameConfig], kinds
        return protocol, transport


def lose(protocol: Any) -> None:
    """
    Deliver the end of a connection, as a real transport would once closed:
    to the transport's protocol, the router.
    """
    protocol.transport.protocol.connectionLost(Failure(ConnectionDone()))


class Arena(GameServerProtocol):
    """
    A game protocol that records its hooks and acts on a few payloads.
    """

    def playerJoined(self, playerId: str, attributes: dict[str, str]) -> None:
        """
        Record the join; act on a few attributes.
        """
        self.factory.game.joined.append((playerId, attributes))  # type: ignore[attr-defined]
        if "reject" in attributes:
            self.reject(100, attributes["reject"])
        if "kick" in attributes:
            self.kick(attributes["kick"], 101)
        if "raise" in attributes:
            raise ValueError("playerJoined failed")
        if "hello" in attributes:
            self.send(b"hello " + playerId.encode())
            self.broadcast(b"welcome " + playerId.encode())

    def messageReceived(self, payload: bytes) -> None:
        """
        Record the message; act on a few.
        """
        self.factory.game.messages.append((self.playerId, payload))  # type: ignore[attr-defined]
        if payload == b"raise":
            raise ValueError("messageReceived failed")
        if payload == b"kick me":
            self.kick("you asked", 101)
        if payload.startswith(b"all "):
            self.broadcast(payload[4:])

    def playerLeft(self, reason: str) -> None:
        """
        Record the leave.
        """
        self.factory.game.left.append((self.playerId, reason))  # type: ignore[attr-defined]


class ArenaGame(Game):
    """
    A game of capacity 2 that records what happens.
    """

    name = "arena"
    capacity = 2
    protocol = Arena

    def __init__(self) -> None:
        """
        Nothing happened yet.
        """
        self.joined: list[tuple[str, dict[str, str]]] = []
        self.messages: list[tuple[str, bytes]] = []
        self.left: list[tuple[str, str]] = []
        self.configured: list[tuple[dict[str, str], GameConfig | None]] = []
        self.events: list[str] = []

    def configure(self, options: Mapping[str, str], config: GameConfig | None) -> None:
        """
        Record the options and config, then store them.
        """
        self.configured.append((dict(options), config))
        if options.get("raise"):
            raise ValueError("configure failed")
        super().configure(options, config)

    def start(self) -> None:
        """
        Record the start.
        """
        self.events.append("start")

    def stop(self) -> None:
        """
        Record the stop.
        """
        self.events.append("stop")


class GameServerTestsMixin:
    """
    A harness around a fresh L{ArenaGame}.
    """

    def setUp(self) -> None:
        """
        A fresh game and server.
        """
        self.game = ArenaGame()
        self.server = GameServerHarness(self.game)
        self.factory = self.server.factory
        self.clock = self.server.clock

    def assertError(self, transport: StringTransport, code: ErrorCode) -> None:
        """
        The game server sent only C{Error{code}} and closed.
        """
        [(kind, message)] = received(transport)
        self.assertEqual((kind, message.code), (T.Error, code))  # type: ignore[attr-defined]
        self.assertTrue(transport.disconnecting)  # type: ignore[attr-defined]

    def assertRejected(
        self, transport: StringTransport, code: int, reason: str
    ) -> None:
        """
        The game server sent only C{Rejected{code, reason}} and closed.
        """
        self.assertEqual(  # type: ignore[attr-defined]
            received(transport),
            [(T.Rejected, control_pb2.Rejected(code=code, reason=reason))],
        )
        self.assertTrue(transport.disconnecting)  # type: ignore[attr-defined]


class ControlTests(GameServerTestsMixin, SynchronousTestCase):
    """
    The control connection (Part 2.3).
    """

    def test_ready(self) -> None:
        """
        C{Control} with the right token is answered with C{Ready} and a first
        C{Status}.
        """
        protocol, transport = self.server.connect()
        protocol.dataReceived(
            envelope(T.Control, control_pb2.Control(token=TOKEN, server_id="s1"))
        )
        self.assertEqual(
            received(transport),
            [
                (T.Ready, control_pb2.Ready(server_id="s1", name="arena", capacity=2)),
                (T.Status, control_pb2.Status(players=0, capacity=2, accepting=True)),
            ],
        )
        self.assertIs(self.factory.control, protocol.connection)
        self.assertFalse(transport.disconnecting)

    def test_wrongToken(self) -> None:
        """
        C{Control} with a wrong token is C{Error{6}}.
        """
        protocol, transport = self.server.connect()
        protocol.dataReceived(
            envelope(T.Control, control_pb2.Control(token=b"\x08" * 32))
        )
        self.assertError(transport, ErrorCode.BAD_TOKEN)
        self.assertIsNone(self.factory.control)
        self.assertEqual(self.game.configured, [])

    def test_secondControl(self) -> None:
        """
        A second control connection while one is open is C{Error{4}}; once the
        first is gone, another may open.
        """
        first, _ = self.server.control()
        protocol, transport = self.server.connect()
        protocol.dataReceived(envelope(T.Control, control_pb2.Control(token=TOKEN)))
        self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)
        self.assertIs(self.factory.control, first)
        lose(first)
        self.assertIsNone(self.factory.control)
        second, _ = self.server.control()
        self.assertIs(self.factory.control, second)

    def test_heartbeats(self) -> None:
        """
        The control connection sends heartbeats and answers the AuthProxy's;
        silence for 15 s closes it with C{Error{7}}.
        """
        protocol, transport = self.server.control()
        self.clock.advance(5)
        [(kind, _)] = received(transport)
        self.assertEqual(kind, T.Heartbeat)
        protocol.dataReceived(envelope(T.Heartbeat, control_pb2.Heartbeat(nonce=9)))
        self.assertEqual(
            received(transport), [(T.Heartbeat, control_pb2.Heartbeat(nonce=9))]
        )
        self.clock.advance(14.9)
        received(transport)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        [*_, (kind, message)] = received(transport)
        self.assertEqual((kind, message.code), (T.Error, ErrorCode.TIMEOUT))

    def test_serverIdFromControl(self) -> None:
        """
        A factory without a server id takes the one of C{Control}.
        """
        server = GameServerHarness(ArenaGame(), serverId="")
        protocol, transport = server.connect()
        protocol.dataReceived(
            envelope(T.Control, control_pb2.Control(token=TOKEN, server_id="given"))
        )
        [(_, ready), _] = received(transport)
        self.assertEqual(ready.server_id, "given")
        self.assertEqual(server.factory.serverId, "given")

    def test_configure(self) -> None:
        """
        The options and config of C{Control} reach L{Game.configure}; the
        default config of each player is the config of C{Control}.
        """
        config = GameConfig(content_type="text/plain", content=b"hi")
        self.server.control({"map": "dust"}, config)
        self.assertEqual(self.game.configured, [({"map": "dust"}, config)])
        self.assertEqual(self.game.options, {"map": "dust"})
        _, transport = self.server.player("alice")
        [_, (kind, message)] = received(transport)
        self.assertEqual((kind, message), (T.GameConfig, config))

    def test_configureFails(self) -> None:
        """
        When L{Game.configure} raises, the failure is logged and the control
        connection closed without C{Ready}.
        """
        protocol, transport = self.server.connect()
        protocol.dataReceived(
            envelope(
                T.Control,
                control_pb2.Control(token=TOKEN, options={"raise": "yes"}),
            )
        )
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(received(transport), [])
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(self.factory.control)

    def test_controlMessagesOnly(self) -> None:
        """
        The control connection refuses player messages with C{Error{4}}.
        """
        protocol, transport = self.server.control()
        protocol.dataReceived(envelope(T.GameData, b"x"))
        self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)

    def test_startAndStop(self) -> None:
        """
        The game starts and stops with the factory (with its listening port).
        """
        self.factory.doStart()
        self.factory.doStop()
        self.assertEqual(self.game.events, ["start", "stop"])

    def test_gameNeedsProtocol(self) -> None:
        """
        A game without a L{GameServerProtocol} subclass is refused.
        """

        class Nothing(Game):
            pass

        self.assertRaises(
            TypeError, GameServerFactory, clock=self.clock, token=TOKEN, game=Nothing()
        )

    def test_gameKnowsServer(self) -> None:
        """
        The game's C{server} is its factory.
        """
        self.assertIs(self.game.server, self.factory)


class FirstEnvelopeTests(GameServerTestsMixin, SynchronousTestCase):
    """
    The first envelope decides what a connection is (Part 2.2).
    """

    def test_anythingElseFirst(self) -> None:
        """
        Any type of table 2.2 other than C{Control} and C{Type} first is
        C{Error{4}}, even one the game server never handles.
        """
        firsts: list[tuple[T, Message | bytes]] = [
            (T.ClientAuth, control_pb2.ClientAuth(player_id="a")),
            (T.GameData, b"x"),
            (T.Heartbeat, control_pb2.Heartbeat()),
            (T.Shutdown, control_pb2.Shutdown()),
            (T.Ready, control_pb2.Ready()),
            (T.Disconnect, control_pb2.Disconnect()),
        ]
        for kind, message in firsts:
            protocol, transport = self.server.connect()
            protocol.dataReceived(envelope(kind, message))
            self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)

    def test_timeout(self) -> None:
        """
        A connection whose first envelope does not come within 10 s is closed
        with C{Error{7}}.
        """
        _, transport = self.server.connect()
        self.clock.advance(10)
        self.assertError(transport, ErrorCode.TIMEOUT)

    def test_typeWrongToken(self) -> None:
        """
        C{Type{CLIENT}} with a wrong token is C{Error{6}}.
        """
        protocol, transport = self.server.connect()
        protocol.dataReceived(
            envelope(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=b"no")
            )
        )
        self.assertError(transport, ErrorCode.BAD_TOKEN)

    def test_typeNotClient(self) -> None:
        """
        C{Type} of another kind than C{CLIENT} is C{Error{4}}.
        """
        protocol, transport = self.server.connect()
        protocol.dataReceived(envelope(T.Type, control_pb2.Type(token=TOKEN)))
        self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)

    def test_clientAuthTimeout(self) -> None:
        """
        C{ClientAuth} must follow C{Type{CLIENT}} within 10 s.
        """
        protocol, transport = self.server.connect()
        protocol.dataReceived(
            envelope(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=TOKEN)
            )
        )
        self.clock.advance(9.9)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.1)
        self.assertError(transport, ErrorCode.TIMEOUT)

    def test_gameDataBeforeClientAuth(self) -> None:
        """
        C{GameData} before C{ClientAuth} is C{Error{4}}.
        """
        protocol, transport = self.server.connect()
        protocol.dataReceived(
            envelope(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=TOKEN)
            )
            + envelope(T.GameData, b"x")
        )
        self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)

    def test_disconnectBeforeClientAuth(self) -> None:
        """
        The AuthProxy may give up before C{ClientAuth}: C{Disconnect} closes
        the connection quietly.
        """
        protocol, transport = self.server.connect()
        protocol.dataReceived(
            envelope(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=TOKEN)
            )
            + envelope(T.Disconnect, control_pb2.Disconnect(reason="gone"))
        )
        self.assertEqual(received(transport), [])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.game.joined, [])


class SeatingTests(GameServerTestsMixin, SynchronousTestCase):
    """
    Player connections: C{ClientAuth}, C{Connected}, C{Rejected} (Part 2.4).
    """

    def test_connected(self) -> None:
        """
        C{ClientAuth} calls C{playerJoined} and is answered with C{Connected}
        and C{GameConfig}; the protocol knows the player.
        """
        protocol, transport = self.server.player("alice", {"team": "red"})
        self.assertEqual(
            received(transport),
            [
                (
                    T.Connected,
                    GameDetails(
                        server_id="s1",
                        name="arena",
                        player_id="alice",
                        players=1,
                        capacity=2,
                    ),
                ),
                (T.GameConfig, GameConfig()),
            ],
        )
        self.assertEqual(self.game.joined, [("alice", {"team": "red"})])
        self.assertEqual(
            (
                protocol.playerId,
                protocol.name,
                protocol.sessionId,
                protocol.remoteAddress,
                protocol.attributes,
            ),
            ("alice", "Alice", b"sid-alice", "192.0.2.1", {"team": "red"}),
        )
        self.assertTrue(protocol.seated)
        self.assertIs(protocol.game, self.game)
        self.assertEqual(self.factory.players, {"alice": protocol})
        self.assertFalse(transport.disconnecting)

    def test_sendWhileJoining(self) -> None:
        """
        What C{playerJoined} sends or broadcasts reaches the new player after
        C{Connected} and C{GameConfig}, and the others at once.
        """
        _, bob = self.server.seat("bob")
        _, transport = self.server.player("alice", {"hello": ""})
        self.assertEqual(
            [
                (kind, m if kind == T.GameData else None)
                for kind, m in received(transport)
            ],
            [
                (T.Connected, None),
                (T.GameConfig, None),
                (T.GameData, b"hello alice"),
                (T.GameData, b"welcome alice"),
            ],
        )
        self.assertEqual(received(bob), [(T.GameData, b"welcome alice")])

    def test_reject(self) -> None:
        """
        A player that C{playerJoined} rejects gets C{Rejected} with the game's
        code and reason, is not seated, and never leaves.
        """
        protocol, transport = self.server.player("alice", {"reject": "banned"})
        self.assertRejected(transport, 100, "banned")
        self.assertEqual(self.factory.players, {})
        self.assertFalse(protocol.seated)
        lose(protocol)
        self.assertEqual(self.game.left, [])

    def test_rejectDropsSends(self) -> None:
        """
        What a rejected player's C{playerJoined} sent is not delivered.
        """
        _, transport = self.server.player("alice", {"hello": "", "reject": "no"})
        self.assertRejected(transport, 100, "no")

    def test_kickWhileJoining(self) -> None:
        """
        C{kick} from C{playerJoined} rejects the player.
        """
        _, transport = self.server.player("alice", {"kick": "go away"})
        self.assertRejected(transport, 101, "go away")

    def test_rejectOutsideJoin(self) -> None:
        """
        C{reject} after C{playerJoined} is a programming error.
        """
        protocol, _ = self.server.seat("alice")
        self.assertRaises(RuntimeError, protocol.reject, 100, "too late")

    def test_playerJoinedRaises(self) -> None:
        """
        An exception from C{playerJoined} is logged and the player gets
        C{Rejected{INTERNAL_ERROR}}.
        """
        _, transport = self.server.player("alice", {"raise": ""})
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertRejected(transport, RejectCode.INTERNAL_ERROR, "internal error")
        self.assertEqual(self.factory.players, {})

    def test_full(self) -> None:
        """
        When the players fill the capacity, the next gets
        C{Rejected{FULL, "server full"}} and C{playerJoined} is not called.
        """
        self.server.seat("alice")
        self.server.seat("bob")
        _, transport = self.server.player("carol")
        self.assertRejected(transport, RejectCode.FULL, "server full")
        self.assertEqual([p for p, _ in self.game.joined], ["alice", "bob"])

    def test_roomAfterLeave(self) -> None:
        """
        A player who leaves makes room.
        """
        self.factory.seatHold = 0
        alice, _ = self.server.seat("alice")
        self.server.seat("bob")
        lose(alice)
        self.server.seat("carol")
        self.assertEqual(sorted(self.factory.players), ["bob", "carol"])

    def test_emptyPlayerId(self) -> None:
        """
        An empty player ID is C{Rejected{INVALID_PLAYER}}.
        """
        _, transport = self.server.player("")
        self.assertRejected(transport, RejectCode.INVALID_PLAYER, "empty player id")

    def test_replaced(self) -> None:
        """
        The same player ID seated again replaces the first connection, which
        gets C{Disconnect{REPLACED}} and leaves.
        """
        first, firstTransport = self.server.seat("alice")
        second, _ = self.server.seat("alice")
        [(kind, message)] = received(firstTransport)
        self.assertEqual((kind, message.code), (T.Disconnect, DisconnectCode.REPLACED))
        self.assertTrue(firstTransport.disconnecting)
        self.assertEqual(self.game.left, [("alice", "replaced by a newer connection")])
        self.assertEqual(self.factory.players, {"alice": second})
        lose(first)
        self.assertEqual(self.factory.players, {"alice": second})
        self.assertEqual(len(self.game.left), 1)

    def test_onlyOneClientAuth(self) -> None:
        """
        A second C{ClientAuth} on a player connection is C{Error{4}}.
        """
        protocol, transport = self.server.seat("alice")
        protocol.dataReceived(
            envelope(T.ClientAuth, control_pb2.ClientAuth(player_id="bob"))
        )
        self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)


class PlayingTests(GameServerTestsMixin, SynchronousTestCase):
    """
    Seated players: C{GameData}, C{broadcast}, C{kick}, C{Disconnect}.
    """

    def test_messageReceived(self) -> None:
        """
        Each C{GameData} from the AuthProxy reaches C{messageReceived}, in
        order and verbatim.
        """
        protocol, _ = self.server.seat("alice")
        protocol.dataReceived(envelope(T.GameData, b"\x01") + envelope(T.GameData, b""))
        self.assertEqual(self.game.messages, [("alice", b"\x01"), ("alice", b"")])

    def test_send(self) -> None:
        """
        C{send} is one C{GameData} to this player only.
        """
        alice, aliceTransport = self.server.seat("alice")
        _, bobTransport = self.server.seat("bob")
        alice.send(b"\x00secret")
        self.assertEqual(received(aliceTransport), [(T.GameData, b"\x00secret")])
        self.assertEqual(received(bobTransport), [])

    def test_broadcast(self) -> None:
        """
        C{broadcast} reaches every seated player, the sender included, but not
        the control connection.
        """
        _, control = self.server.control()
        alice, aliceTransport = self.server.seat("alice")
        _, bobTransport = self.server.seat("bob")
        alice.dataReceived(envelope(T.GameData, b"all \x00news"))
        self.assertEqual(received(aliceTransport), [(T.GameData, b"\x00news")])
        self.assertEqual(received(bobTransport), [(T.GameData, b"\x00news")])
        self.assertEqual(
            [kind for kind, _ in received(control) if kind != T.Status], []
        )

    def test_broadcastExclude(self) -> None:
        """
        The factory's C{broadcast} can leave one player out.
        """
        alice, aliceTransport = self.server.seat("alice")
        _, bobTransport = self.server.seat("bob")
        self.factory.broadcast(b"x", exclude=alice)
        self.assertEqual(received(aliceTransport), [])
        self.assertEqual(received(bobTransport), [(T.GameData, b"x")])

    def test_kick(self) -> None:
        """
        C{kick} sends C{Disconnect{code, reason}}, calls C{playerLeft} and
        closes; the player is no longer seated.
        """
        protocol, transport = self.server.seat("alice")
        protocol.dataReceived(envelope(T.GameData, b"kick me"))
        self.assertEqual(
            received(transport),
            [(T.Disconnect, control_pb2.Disconnect(code=101, reason="you asked"))],
        )
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.game.left, [("alice", "you asked")])
        self.assertEqual(self.factory.players, {})
        protocol.kick("again")
        lose(protocol)
        self.assertEqual(len(self.game.left), 1)
        self.assertEqual(transport.value(), b"")

    def test_messageReceivedRaises(self) -> None:
        """
        An exception from C{messageReceived} is logged and the player is
        kicked with C{Disconnect{INTERNAL_ERROR}}.
        """
        protocol, transport = self.server.seat("alice")
        protocol.dataReceived(
            envelope(T.GameData, b"raise") + envelope(T.GameData, b"x")
        )
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        [(kind, message)] = received(transport)
        self.assertEqual(
            (kind, message.code), (T.Disconnect, DisconnectCode.INTERNAL_ERROR)
        )
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.game.messages, [("alice", b"raise")])

    def test_messageReceivedRequired(self) -> None:
        """
        A game protocol that does not override C{messageReceived} kicks its
        players on their first message, with the traceback logged.
        """

        class Lazy(GameServerProtocol):
            pass

        class LazyGame(Game):
            protocol = Lazy

        server = GameServerHarness(LazyGame())
        protocol, transport = server.seat("alice")
        protocol.dataReceived(envelope(T.GameData, b"x"))
        self.assertEqual(len(self.flushLoggedErrors(NotImplementedError)), 1)
        [(kind, _)] = received(transport)
        self.assertEqual(kind, T.Disconnect)

    def test_disconnectFromProxy(self) -> None:
        """
        C{Disconnect} from the AuthProxy calls C{playerLeft} with its reason
        and closes.
        """
        protocol, transport = self.server.seat("alice")
        protocol.dataReceived(
            envelope(T.Disconnect, control_pb2.Disconnect(reason="client left"))
        )
        self.assertEqual(self.game.left, [("alice", "client left")])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(received(transport), [])
        lose(protocol)
        self.assertEqual(len(self.game.left), 1)

    def test_connectionLost(self) -> None:
        """
        A lost connection holds a seated player's seat; when the seat hold
        ends, the player leaves, once.
        """
        protocol, _ = self.server.seat("alice")
        lose(protocol)
        self.assertEqual(self.game.left, [])
        self.assertTrue(protocol.held)
        self.server.clock.advance(self.factory.seatHold)
        self.assertEqual(self.game.left, [("alice", "seat hold expired")])
        self.assertEqual(self.factory.players, {})

    def test_connectionLostWithoutHold(self) -> None:
        """
        With no seat hold, a lost connection makes a seated player leave at
        once.
        """
        self.factory.seatHold = 0
        protocol, _ = self.server.seat("alice")
        lose(protocol)
        self.assertEqual(self.game.left, [("alice", "connection lost")])
        self.assertEqual(self.factory.players, {})

    def test_playerLeftRaises(self) -> None:
        """
        An exception from C{playerLeft} is logged; the player is gone anyway.
        """

        class Clumsy(Arena):
            def playerLeft(self, reason: str) -> None:
                raise ValueError("playerLeft failed")

        self.factory.playerProtocol = Clumsy
        self.factory.seatHold = 0
        protocol, _ = self.server.seat("alice")
        lose(protocol)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(self.factory.players, {})

    def test_relayTooSlow(self) -> None:
        """
        When the AuthProxy stops reading a player's connection and too much
        is queued, the player gets C{Disconnect{KICKED, "reads too slowly"}},
        leaves and the connection is aborted; the other player stays.
        """
        protocol, transport = self.server.seat("alice")
        _bob, bobTransport = self.server.seat("bob")
        protocol.writeBufferLimit = 100
        protocol.pauseProducing()
        protocol.send(b"x" * 101)
        self.assertTrue(transport.disconnected)  # aborted
        self.assertEqual(
            received(transport)[-1],
            (
                T.Disconnect,
                control_pb2.Disconnect(
                    code=DisconnectCode.KICKED, reason="reads too slowly"
                ),
            ),
        )
        self.assertEqual(self.game.left, [("alice", "reads too slowly")])
        self.assertEqual(list(self.factory.players), ["bob"])
        self.assertFalse(bobTransport.disconnecting)

    def test_controlNotInPlayers(self) -> None:
        """
        Heartbeats on a player connection are not allowed (C{Error{4}}).
        """
        protocol, transport = self.server.seat("alice")
        protocol.dataReceived(envelope(T.Heartbeat, control_pb2.Heartbeat(nonce=1)))
        self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)


def queued(transport: QueueTransport) -> list[tuple[int, Any]]:
    """
    Decode what a L{QueueTransport} still holds unsent.
    """
    data = bytes(transport.dataBuffer[transport.offset :]) + b"".join(
        transport._tempDataBuffer
    )
    stand = StringTransport()
    stand.write(data)
    return received(stand)


class SlowPlayerTests(GameServerTestsMixin, SynchronousTestCase):
    """
    A player connection on which more than C{playerWriteLimit} bytes wait
    unsent (Part 6: "bytes a game server buffers toward one player
    connection") is disconnected, that one only.
    """

    def seatQueued(self, playerId: str) -> tuple[GameServerProtocol, QueueTransport]:
        """
        Seat a player on a L{QueueTransport}; what the game server answered
        is read by the peer.
        """
        router = self.factory.buildProtocol(None)
        assert isinstance(router, GameServerRouter)
        transport = QueueTransport()
        transport.bufferSize = 64
        transport.protocol = router
        router.makeConnection(transport)
        router.dataReceived(
            envelope(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=TOKEN)
            )
            + envelope(T.ClientAuth, control_pb2.ClientAuth(player_id=playerId))
        )
        transport.drain(10000)
        protocol = router.connection
        assert isinstance(protocol, GameServerProtocol)
        self.assertTrue(protocol.seated)
        return protocol, transport

    def test_default(self) -> None:
        """
        By default a player connection may hold 4 MiB unsent; the factory's
        C{playerWriteLimit} sets it (L{None}: no limit) for player
        connections only.
        """
        self.assertEqual(self.factory.playerWriteLimit, 4 * 1024 * 1024)
        protocol, _ = self.server.seat("alice")
        self.assertEqual(protocol.writeBufferLimit, 4 * 1024 * 1024)
        factory = GameServerFactory(
            clock=self.clock, token=TOKEN, game=self.game, playerWriteLimit=None
        )
        self.server.factory = factory
        protocol, _ = self.server.seat("bob")
        self.assertIsNone(protocol.writeBufferLimit)
        control, _ = self.server.control()
        self.assertEqual(control.writeBufferLimit, 4 * 1024 * 1024)

    def test_onlyTheSlowPlayer(self) -> None:
        """
        Broadcasts to two players, one of which does not read: once more
        than the limit waits on its connection, it gets C{Disconnect}, is
        aborted and leaves (C{playerLeft}); the other gets every message.
        """
        self.factory.playerWriteLimit = 1000
        alice, aliceTransport = self.seatQueued("alice")
        bob, bobTransport = self.seatQueued("bob")
        bobTransport.sent.clear()
        with capturedLogs() as events:
            for i in range(40):
                self.factory.broadcast(b"%02d" % i + b"x" * 44)
                bobTransport.drain(10000)
        self.assertTrue(aliceTransport.aborted)
        self.assertFalse(bobTransport.aborted)
        self.assertEqual(self.game.left, [("alice", "reads too slowly")])
        self.assertEqual(list(self.factory.players), ["bob"])
        self.assertTrue(bob.seated)
        stand = StringTransport()
        stand.write(bytes(bobTransport.sent))
        self.assertEqual(
            [payload[:2] for _, payload in received(stand)],
            [b"%02d" % i for i in range(40)],
        )
        # The queue passed the limit with the 21st message (50 bytes each),
        # and the Disconnect joined it.
        kinds = [kind for kind, _ in queued(aliceTransport)]
        self.assertEqual(kinds, [T.GameData] * 21 + [T.Disconnect])
        [warning] = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(warning["cause"], "player reads too slowly")
        self.assertEqual(warning["playerId"], "alice")
        self.assertFalse(alice.seated)

    def test_pausesDoNotReset(self) -> None:
        """
        The transport pauses the protocol on every write while its buffer is
        full; that does not postpone the limit.
        """
        self.factory.playerWriteLimit = 500
        alice, transport = self.seatQueued("alice")
        for _ in range(20):
            alice.send(b"x" * 46)
            alice.pauseProducing()
        self.assertTrue(transport.aborted)
        self.assertEqual(self.game.left, [("alice", "reads too slowly")])

    def test_drainingPlayerStays(self) -> None:
        """
        A player whose connection drains in time stays, however much it is
        sent in all.
        """
        self.factory.playerWriteLimit = 500
        alice, transport = self.seatQueued("alice")
        for _ in range(200):
            alice.send(b"x" * 46)
            transport.drain(50)
        self.assertFalse(transport.aborted)
        self.assertTrue(alice.seated)

    def test_controlConnectionOverflow(self) -> None:
        """
        A control connection over its limit is aborted without a
        C{Disconnect}, as any envelope connection.
        """
        control, transport = self.server.control()
        control.writeBufferLimit = 10
        control.pauseProducing()
        with capturedLogs() as events:
            self.clock.advance(5)  # a Heartbeat
        self.assertTrue(transport.disconnected)
        self.assertEqual([kind for kind, _ in received(transport)], [T.Heartbeat])
        self.assertEqual(events[0]["cause"], "peer reads too slowly")

    def test_factoryKeyword(self) -> None:
        """
        C{playerWriteLimit} and C{logInterval} are keyword arguments of the
        factory.
        """
        factory = GameServerFactory(
            clock=self.clock,
            token=TOKEN,
            game=self.game,
            playerWriteLimit=1234,
            logInterval=3.0,
        )
        self.assertEqual(factory.playerWriteLimit, 1234)
        self.assertEqual(factory.throttle.interval, 3.0)


class ThrottledLogTests(GameServerTestsMixin, SynchronousTestCase):
    """
    Outsiders on a game port cause one log line per cause, then a count
    (Part 6), not one line per connection.
    """

    def test_silentSockets(self) -> None:
        """
        A hundred connections that send nothing are each closed with
        C{Error{7}} after 10 s, with one log line, and 10 s later a summary
        line counts the others.
        """
        with capturedLogs() as events:
            transports = [self.server.connect()[1] for _ in range(100)]
            self.clock.advance(10)
            for transport in transports:
                self.assertError(transport, ErrorCode.TIMEOUT)
            self.clock.advance(10)
        self.assertEqual(
            [formatEvent(e) for e in events][1:],
            ["99 more: Error TIMEOUT sent in the last 10 s"],
        )

    def test_badTokens(self) -> None:
        """
        Wrong client tokens from many connections: one line, then a count.
        """
        with capturedLogs() as events:
            for _ in range(5):
                protocol, transport = self.server.connect()
                protocol.dataReceived(
                    envelope(
                        T.Type,
                        control_pb2.Type(kind=control_pb2.Type.CLIENT, token=b"x"),
                    )
                )
                self.assertError(transport, ErrorCode.BAD_TOKEN)
            self.clock.advance(10)
        self.assertEqual([e.get("count") for e in events], [None, 4])

    def test_stopFactoryStopsThrottle(self) -> None:
        """
        When the game server stops listening, the summary timer is
        cancelled, and the game is stopped.
        """
        for _ in range(2):
            protocol, _ = self.server.connect()
            protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.factory.doStart()
        self.factory.doStop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.game.events, ["start", "stop"])


class StatusTests(GameServerTestsMixin, SynchronousTestCase):
    """
    C{Status} whenever players, capacity or accepting change.
    """

    def statuses(self, transport: StringTransport) -> list[tuple[int, int, bool]]:
        """
        The C{Status}es sent at the end of this turn.
        """
        self.clock.advance(0)
        return [
            (m.players, m.capacity, m.accepting)
            for kind, m in received(transport)
            if kind == T.Status
        ]

    def test_joinAndLeave(self) -> None:
        """
        A join and a leave each bring a C{Status}.
        """
        _, control = self.server.control()
        self.factory.seatHold = 2.0  # within the control connection's life
        alice, _ = self.server.seat("alice")
        self.assertEqual(self.statuses(control), [(1, 2, True)])
        lose(alice)
        self.assertEqual(self.statuses(control), [])  # the seat is held
        self.clock.advance(self.factory.seatHold)
        self.assertEqual(self.statuses(control), [(0, 2, True)])

    def test_oncePerTurn(self) -> None:
        """
        Changes within one reactor turn bring one C{Status}, and none if they
        cancel out.
        """
        _, control = self.server.control()
        self.factory.seatHold = 0
        self.server.seat("alice")
        self.server.seat("bob")
        self.assertEqual(self.statuses(control), [(2, 2, True)])
        self.server.player("carol")  # full: refused
        self.assertEqual(self.statuses(control), [])
        bob = self.factory.players["bob"]
        lose(bob)
        self.server.seat("dave")
        self.assertEqual(self.statuses(control), [])

    def test_capacityChange(self) -> None:
        """
        A game that changes its capacity calls C{statusChanged}.
        """
        _, control = self.server.control()
        self.game.capacity = 5
        self.factory.statusChanged()
        self.assertEqual(self.statuses(control), [(0, 5, True)])

    def test_statusAfterReady(self) -> None:
        """
        A new control connection is told the current count at once.
        """
        self.server.seat("alice")
        protocol, transport = self.server.connect()
        protocol.dataReceived(envelope(T.Control, control_pb2.Control(token=TOKEN)))
        [_, (kind, status)] = received(transport)
        self.assertEqual((kind, status.players), (T.Status, 1))

    def test_noControl(self) -> None:
        """
        Without a control connection nothing is scheduled.
        """
        self.server.seat("alice")
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ShutdownTests(GameServerTestsMixin, SynchronousTestCase):
    """
    C{Shutdown}: the drain (Part 2.3, step 5).
    """

    def shutdown(self, deadlineMs: int = 5000) -> tuple[Any, StringTransport]:
        """
        Open the control connection and send C{Shutdown}.
        """
        control, transport = self.server.control()
        control.dataReceived(
            envelope(
                T.Shutdown,
                control_pb2.Shutdown(deadline_ms=deadlineMs, reason="maintenance"),
            )
        )
        return control, transport

    def test_drain(self) -> None:
        """
        C{Shutdown} stops accepting (C{Status}), sends every player
        C{Disconnect{SHUTTING_DOWN, reason}} and closes them; once they are
        closed the control connection is closed, and once it is gone the
        drain is done.
        """
        alice, aliceTransport = self.server.seat("alice")
        bob, bobTransport = self.server.seat("bob")
        done = self.factory.whenShutDown()
        control, transport = self.shutdown()
        self.assertFalse(self.factory.accepting)
        self.assertEqual(
            received(transport),
            [(T.Status, control_pb2.Status(players=2, capacity=2, accepting=False))],
        )
        for playerTransport in (aliceTransport, bobTransport):
            self.assertEqual(
                received(playerTransport),
                [
                    (
                        T.Disconnect,
                        control_pb2.Disconnect(
                            code=DisconnectCode.SHUTTING_DOWN, reason="maintenance"
                        ),
                    )
                ],
            )
            self.assertTrue(playerTransport.disconnecting)
        self.assertEqual(
            sorted(self.game.left), [("alice", "maintenance"), ("bob", "maintenance")]
        )
        lose(alice)
        self.assertFalse(transport.disconnecting)
        lose(bob)
        self.assertEqual(
            received(transport),
            [(T.Status, control_pb2.Status(players=0, capacity=2, accepting=False))],
        )
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(done)
        lose(control)
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refusesNewPlayers(self) -> None:
        """
        A player that arrives during a drain gets
        C{Rejected{NOT_ACCEPTING}}.
        """
        self.server.seat("alice")
        self.shutdown()
        _, transport = self.server.player("bob")
        self.assertRejected(
            transport, RejectCode.NOT_ACCEPTING, "server is not accepting players"
        )

    def test_deadline(self) -> None:
        """
        Connections still open at the deadline are aborted, and the drain is
        done.
        """
        _, aliceTransport = self.server.seat("alice")
        _, waitingTransport = self.server.connect()
        done = self.factory.whenShutDown()
        _, transport = self.shutdown(3000)
        self.assertTrue(waitingTransport.disconnecting)
        self.clock.advance(2.9)
        self.assertNoResult(done)
        self.clock.advance(0.1)
        self.assertIsNone(self.successResultOf(done))
        self.assertTrue(aliceTransport.disconnected)
        self.assertTrue(transport.disconnected)
        self.assertTrue(waitingTransport.disconnected)

    def test_defaultDeadline(self) -> None:
        """
        C{deadline_ms} 0 means the factory's default deadline.
        """
        self.server.seat("alice")
        done = self.factory.whenShutDown()
        self.shutdown(0)
        self.clock.advance(self.factory.defaultShutdownDeadline - 0.1)
        self.assertNoResult(done)
        self.clock.advance(0.1)
        self.successResultOf(done)

    def test_noPlayers(self) -> None:
        """
        Without players the control connection is closed at once.
        """
        control, transport = self.shutdown()
        self.assertTrue(transport.disconnecting)
        lose(control)
        self.successResultOf(self.factory.whenShutDown())

    def test_withoutControl(self) -> None:
        """
        A drain asked for by the process itself (no control connection) is
        done when the players are gone.
        """
        alice, _ = self.server.seat("alice")
        self.factory.shutdown("parent gone", 1.0)
        done = self.factory.whenShutDown()
        self.assertNoResult(done)
        lose(alice)
        self.successResultOf(done)

    def test_secondShutdownIgnored(self) -> None:
        """
        A second C{Shutdown} does not restart the drain.
        """
        self.server.seat("alice")
        self.server.connect()
        control, transport = self.shutdown(3000)
        before = self.clock.getDelayedCalls()
        control.dataReceived(
            envelope(T.Shutdown, control_pb2.Shutdown(deadline_ms=60000))
        )
        self.assertEqual(self.clock.getDelayedCalls(), before)
        self.assertFalse(transport.disconnecting)

    def test_cancelWait(self) -> None:
        """
        A cancelled L{GameServerFactory.whenShutDown} is forgotten.
        """
        done = self.factory.whenShutDown()
        done.cancel()
        self.failureResultOf(done)
        control, _ = self.shutdown()
        lose(control)


class LoadGameTests(SynchronousTestCase):
    """
    L{loadGame} finds a game module's game.
    """

    def test_chat(self) -> None:
        """
        The chat module's C{makeGame} makes a L{ChatGame}.
        """
        self.assertIsInstance(loadGame("aphelion.games.chat"), ChatGame)

    def test_missingModule(self) -> None:
        """
        A module that does not exist is an L{ImportError}.
        """
        self.assertRaises(ImportError, loadGame, "aphelion.games.nonexistent")

    def test_notAGameModule(self) -> None:
        """
        A module without C{makeGame} is a L{TypeError}.
        """
        self.assertRaises(TypeError, loadGame, "aphelion.codes")


class ArbitraryBytesTests(SynchronousTestCase):
    """
    Whatever the AuthProxy (or anyone) sends, the game server never raises.
    """

    prefixes = [
        b"",
        envelope(T.Control, control_pb2.Control(token=TOKEN)),
        envelope(T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=TOKEN)),
        envelope(T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=TOKEN))
        + envelope(T.ClientAuth, control_pb2.ClientAuth(player_id="alice")),
    ]

    @settings(max_examples=300, deadline=None)
    @given(
        prefix=st.sampled_from(prefixes),
        items=st.lists(
            st.tuples(
                st.sampled_from([*range(0, 16), 40, 63]),
                st.integers(0, 3),
                st.binary(max_size=30),
            ),
            max_size=6,
        ),
        data=st.data(),
    )
    def test_neverRaises(
        self,
        prefix: bytes,
        items: list[tuple[int, int, bytes]],
        data: st.DataObject,
    ) -> None:
        """
        After any start, random envelopes in random chunks never raise out of
        the protocol; a connection that sent C{Error} is closing.
        """
        server = GameServerHarness(ArenaGame())
        protocol, transport = server.connect()
        stream = prefix + b"".join(
            HEADER.pack(1, t << 2 | en, len(p)) + p for t, en, p in items
        )
        offset = 0
        while offset < len(stream):
            size = data.draw(st.integers(1, len(stream) - offset))
            protocol.dataReceived(stream[offset : offset + size])
            offset += size
        server.clock.advance(0)
        self.flushLoggedErrors(ValueError)
        kinds = [kind for kind, _ in received(transport)]
        if T.Error in kinds:
            self.assertEqual(kinds[-1], T.Error)
            self.assertTrue(transport.disconnecting)
