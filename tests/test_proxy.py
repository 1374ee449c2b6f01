# -*- test-case-name: tests.test_proxy -*-
"""
Tests of L{aphelion.control.proxy}: the AuthProxy's control connection to a
game server and its player connections, each built by its factory on a
L{StringTransport}, with a real L{GameServerMonitor} on the fake reactor of
L{tests.test_spawn}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from twisted.internet.defer import succeed
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import Encoding, EnvelopeType, ErrorCode
from aphelion.control.proxy import (
    ControlClientFactory,
    ControlClientProtocol,
    LinkConnector,
    PlayerLinkFactory,
    PlayerLinkProtocol,
    controlFactoryMaker,
)
from aphelion.control.spawn import GameServerMonitor, RemoteGameServer, ServerState
from aphelion.envelope import (
    PAYLOAD_TYPES,
    EnvelopeDecoder,
    decodePayload,
    encodeEnvelope,
)
from aphelion.gateway import Gateway, Seat, SessionState
from aphelion.proto import control_pb2, game_pb2
from aphelion.session import MemorySessionRegistry, Session
from aphelion.testing import RecordingConnection
from tests.test_control_protocol import QueueTransport
from tests.test_spawn import FakeProcessReactor

T = EnvelopeType


def envelope(envelopeType: EnvelopeType, message: Message | bytes) -> bytes:
    """
    Encode one envelope as a game server would send it: raw bytes for
    C{GameData}, protobuf for the rest.
    """
    if isinstance(message, bytes):
        return encodeEnvelope(envelopeType, message, Encoding.RAW)
    return encodeEnvelope(envelopeType, message.SerializeToString())


def written(transport: StringTransport) -> list[tuple[EnvelopeType, Any]]:
    """
    Decode and parse every envelope written to C{transport}, then clear it.

    :return: C{(type, message)} of each, with the raw payload for
        C{GameData}.
    """
    result: list[tuple[EnvelopeType, Any]] = []
    for decoded in EnvelopeDecoder().feed(transport.value()):
        envelopeType = EnvelopeType(decoded.type)
        messageClass = PAYLOAD_TYPES[envelopeType]
        if messageClass is None:
            result.append((envelopeType, decoded.payload))
        else:
            result.append((envelopeType, decodePayload(decoded, messageClass)))
    transport.clear()
    return result


def error(code: ErrorCode, message: str) -> tuple[EnvelopeType, control_pb2.Error]:
    """
    The parsed C{Error} envelope with C{code} and C{message}.
    """
    return (T.Error, control_pb2.Error(code=code, message=message))


@dataclass(frozen=True)
class Identity:
    """
    A player identity as a realm yields it.
    """

    playerId: str
    name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


class RecordingSeat:
    """
    A stand-in for L{aphelion.gateway.Seat} that records what its link
    reports.

    :ivar session: the session being seated.
    :ivar calls: C{(method name, arguments...)} of each report, in order.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.calls: list[tuple[Any, ...]] = []

    def linkMade(self, link: PlayerLinkProtocol) -> None:
        """
        Record that the link is open.
        """
        self.calls.append(("linkMade", link))

    def accepted(self, details: game_pb2.GameDetails) -> None:
        """
        Record C{Connected}.
        """
        self.calls.append(("accepted", details))

    def gameConfig(self, config: game_pb2.GameConfig) -> None:
        """
        Record C{GameConfig}.
        """
        self.calls.append(("gameConfig", config))

    def rejected(self, code: int, reason: str) -> None:
        """
        Record C{Rejected}.
        """
        self.calls.append(("rejected", code, reason))

    def gameData(self, payload: bytes) -> None:
        """
        Record a C{GameData} payload.
        """
        self.calls.append(("gameData", payload))

    def disconnected(self, code: int, reason: str) -> None:
        """
        Record C{Disconnect}.
        """
        self.calls.append(("disconnected", code, reason))

    def lost(self, reason: str) -> None:
        """
        Record the loss of the link.
        """
        self.calls.append(("lost", reason))


class ProxyTestCase(SynchronousTestCase):
    """
    A monitor with one local game server, not started, on the fake reactor.
    """

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.monitor = GameServerMonitor(
            reactor=self.reactor,
            game="aphelion.games.echo",
            count=1,
            makeControlFactory=controlFactoryMaker,
            options={"rounds": "3"},
        )
        self.server = self.monitor.servers["gs1"]

    def connectControl(
        self, **timers: float
    ) -> tuple[ControlClientProtocol, StringTransport]:
        """
        Open a control connection to the game server through
        L{controlFactoryMaker}, and clear what it wrote first.
        """
        factory = controlFactoryMaker(self.monitor, self.server, **timers)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        transport.clear()
        return protocol, transport


class ControlClientProtocolTests(ProxyTestCase):
    """
    Tests of L{ControlClientProtocol}.
    """

    def ready(self, **timers: float) -> tuple[ControlClientProtocol, StringTransport]:
        """
        A control connection whose game server said C{Ready}.
        """
        protocol, transport = self.connectControl(**timers)
        protocol.dataReceived(
            envelope(
                T.Ready, control_pb2.Ready(server_id="gs1", name="echo", capacity=8)
            )
        )
        return protocol, transport

    def test_controlFirst(self) -> None:
        """
        The first envelope is C{Control} with the server's token, its id and
        the monitor's options.
        """
        factory = controlFactoryMaker(self.monitor, self.server)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(
            written(transport),
            [
                (
                    T.Control,
                    control_pb2.Control(
                        token=self.server.token,
                        server_id="gs1",
                        options={"rounds": "3"},
                    ),
                )
            ],
        )
        self.assertFalse(transport.disconnecting)

    def test_controlCarriesGameConfig(self) -> None:
        """
        The monitor's game config, when it has one, travels in C{Control}.
        """
        from aphelion.proto.game_pb2 import GameConfig

        config = GameConfig(content_type="application/json", content=b'{"map": 2}')
        self.monitor.gameConfig = config
        protocol = controlFactoryMaker(self.monitor, self.server).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        [(kind, control)] = written(transport)
        self.assertEqual(kind, T.Control)
        self.assertEqual(control.config, config)

    def test_controlCarriesCurrentToken(self) -> None:
        """
        After a spawn, C{Control} carries the token of that spawn.
        """
        first = self.server.token
        self.monitor.startService()
        self.assertNotEqual(self.server.token, first)
        factory = controlFactoryMaker(self.monitor, self.server)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        [(_envelopeType, message)] = written(transport)
        self.assertEqual(message.token, self.server.token)

    def test_controlCarriesClientToken(self) -> None:
        """
        Each spawn has a client token of its own, apart from the control
        token, and C{Control} carries it (Part 5).
        """
        self.monitor.startService()
        first = self.server.clientToken
        self.assertEqual(len(first), 32)
        self.assertNotEqual(first, self.server.token)
        protocol = controlFactoryMaker(self.monitor, self.server).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        [(_envelopeType, message)] = written(transport)
        self.assertEqual(message.client_token, first)

    def test_readyReported(self) -> None:
        """
        C{Ready} calls the monitor's C{controlReady}: the server is C{READY}
        through this connection, with the name and capacity of C{Ready}.
        """
        protocol, transport = self.ready()
        self.assertIs(self.server.state, ServerState.READY)
        self.assertIs(self.server.control, protocol)
        self.assertEqual((self.server.name, self.server.capacity), ("echo", 8))
        self.assertTrue(self.server.accepting)
        self.assertIs(self.monitor.pick(), self.server)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)

    def test_statusReported(self) -> None:
        """
        C{Status} calls the monitor's C{controlStatus}.
        """
        protocol, transport = self.ready()
        protocol.dataReceived(
            envelope(
                T.Status, control_pb2.Status(players=3, capacity=12, accepting=False)
            )
        )
        self.assertEqual(
            (self.server.players, self.server.capacity, self.server.accepting),
            (3, 12, False),
        )
        protocol.dataReceived(
            envelope(
                T.Status, control_pb2.Status(players=4, capacity=12, accepting=True)
            )
        )
        self.assertEqual(
            (self.server.players, self.server.capacity, self.server.accepting),
            (4, 12, True),
        )
        self.assertFalse(transport.disconnecting)

    def test_statusBeforeReady(self) -> None:
        """
        C{Status} before C{Ready} is answered with C{Error{4}} and closes; the
        monitor hears nothing of it.
        """
        protocol, transport = self.connectControl()
        protocol.dataReceived(
            envelope(
                T.Status, control_pb2.Status(players=3, capacity=12, accepting=True)
            )
        )
        self.assertEqual(
            written(transport),
            [error(ErrorCode.NOT_ALLOWED_NOW, "Status is not allowed now")],
        )
        self.assertTrue(transport.disconnecting)
        self.assertEqual((self.server.players, self.server.capacity), (0, 0))
        self.assertIs(self.server.state, ServerState.STARTING)

    def test_readyTwice(self) -> None:
        """
        A second C{Ready} is answered with C{Error{4}}.
        """
        protocol, transport = self.ready()
        protocol.dataReceived(
            envelope(T.Ready, control_pb2.Ready(server_id="gs1", capacity=99))
        )
        self.assertEqual(
            written(transport),
            [error(ErrorCode.NOT_ALLOWED_NOW, "Ready is not allowed now")],
        )
        self.assertEqual(self.server.capacity, 8)

    def test_otherTypesRefused(self) -> None:
        """
        Envelopes that a game server does not send on a control connection
        (here C{Connected}) are answered with C{Error{4}}.
        """
        protocol, transport = self.ready()
        protocol.dataReceived(envelope(T.Connected, game_pb2.GameDetails()))
        self.assertEqual(
            written(transport),
            [error(ErrorCode.NOT_ALLOWED_NOW, "Connected is not allowed now")],
        )
        self.assertTrue(transport.disconnecting)

    def test_heartbeats(self) -> None:
        """
        A C{Heartbeat} is sent every C{heartbeatInterval} seconds, each with a
        new nonce.
        """
        _, transport = self.ready(heartbeatInterval=2.0, deadAfter=100.0)
        self.reactor.advance(1.5)
        self.assertEqual(written(transport), [])
        self.reactor.advance(0.5)
        [(first, beat1)] = written(transport)
        self.reactor.pump([0.5] * 4)
        [(second, beat2)] = written(transport)
        self.assertEqual((first, second), (T.Heartbeat, T.Heartbeat))
        self.assertNotEqual(beat1.nonce, beat2.nonce)

    def test_heartbeatAnswered(self) -> None:
        """
        A game server's C{Heartbeat} is answered with its nonce; the answer to
        our own is not answered.
        """
        protocol, transport = self.ready(heartbeatInterval=2.0)
        protocol.dataReceived(envelope(T.Heartbeat, control_pb2.Heartbeat(nonce=42)))
        self.assertEqual(
            written(transport), [(T.Heartbeat, control_pb2.Heartbeat(nonce=42))]
        )
        self.reactor.advance(2)
        [(_, ours)] = written(transport)
        protocol.dataReceived(envelope(T.Heartbeat, ours))
        self.assertEqual(written(transport), [])

    def test_silenceIsDeath(self) -> None:
        """
        A control connection silent for C{deadAfter} seconds gets C{Error{7}}
        and is closed, and the monitor hears of its loss.
        """
        protocol, transport = self.ready(heartbeatInterval=2.0, deadAfter=7.0)
        self.reactor.pump([0.5] * 13)
        self.assertEqual(
            [envelopeType for envelopeType, _ in written(transport)],
            [T.Heartbeat] * 3,
        )
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.5)
        self.assertEqual(
            written(transport), [error(ErrorCode.TIMEOUT, "nothing received for 7 s")]
        )
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.server.control)
        self.assertIsNone(self.monitor.pick())

    def test_receivingKeepsAlive(self) -> None:
        """
        Anything received restarts the wait: the connection dies C{deadAfter}
        seconds after the last envelope.
        """
        protocol, transport = self.ready(heartbeatInterval=2.0, deadAfter=7.0)
        self.reactor.pump([0.5] * 10)
        protocol.dataReceived(envelope(T.Heartbeat, control_pb2.Heartbeat(nonce=1)))
        self.reactor.pump([0.5] * 13)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.5)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(
            written(transport)[-1], error(ErrorCode.TIMEOUT, "nothing received for 7 s")
        )

    def test_firstMessageTimeout(self) -> None:
        """
        No C{Ready} within C{firstMessageTimeout}: C{Error{7}} and close.
        """
        _protocol, transport = self.connectControl(firstMessageTimeout=3.0)
        self.reactor.advance(2.5)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.5)
        self.assertEqual(
            written(transport), [error(ErrorCode.TIMEOUT, "no envelope within 3 s")]
        )
        self.assertTrue(transport.disconnecting)

    def test_factoryMakerTimers(self) -> None:
        """
        L{controlFactoryMaker} makes a L{ControlClientFactory} for the monitor
        and server on the monitor's clock, and passes the timers on to the
        protocols it builds.
        """
        factory = controlFactoryMaker(
            self.monitor,
            self.server,
            firstMessageTimeout=3.0,
            heartbeatInterval=2.0,
            deadAfter=7.0,
        )
        self.assertIsInstance(factory, ControlClientFactory)
        self.assertIs(factory.monitor, self.monitor)
        self.assertIs(factory.server, self.server)
        self.assertIs(factory.clock, self.reactor)
        self.assertEqual(
            (factory.firstMessageTimeout, factory.heartbeatInterval, factory.deadAfter),
            (3.0, 2.0, 7.0),
        )
        protocol = factory.buildProtocol(None)
        self.assertIsInstance(protocol, ControlClientProtocol)
        self.assertIs(protocol.factory, factory)
        self.assertEqual(
            (
                protocol.firstMessageTimeout,
                protocol.heartbeatInterval,
                protocol.deadAfter,
            ),
            (3.0, 2.0, 7.0),
        )
        self.assertTrue(protocol.heartbeats)

    def test_factoryMakerDefaults(self) -> None:
        """
        By default the timers are the contract's: 10 s for the first
        envelope, a heartbeat every 5 s, dead after 15 s.
        """
        protocol = controlFactoryMaker(self.monitor, self.server).buildProtocol(None)
        self.assertEqual(
            (
                protocol.firstMessageTimeout,
                protocol.heartbeatInterval,
                protocol.deadAfter,
            ),
            (10.0, 5.0, 15.0),
        )

    def test_monitorUsesFactory(self) -> None:
        """
        A started monitor opens the control connection with the factory of
        L{controlFactoryMaker}.
        """
        self.monitor.startService()
        self.reactor.processes[0].stdout(b"PORT 4321\n")
        [(host, port, factory, _, _)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 4321))
        self.assertIsInstance(factory, ControlClientFactory)
        self.assertIs(factory.server, self.server)

    def test_connectionLostReported(self) -> None:
        """
        The loss of the connection is reported to the monitor's
        C{controlLost}, and every timer is cancelled.
        """
        protocol, _transport = self.ready()
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertIsNone(self.server.control)
        self.assertFalse(self.server.hasRoom())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connectionLostKillsProcess(self) -> None:
        """
        With the monitor running, the loss of the control connection of a
        local server kills its process.
        """
        self.monitor.startService()
        protocol, _transport = self.ready()
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.reactor.processes[0].signals, ["KILL"])

    def test_staleConnectionLost(self) -> None:
        """
        The loss of an older control connection does not disturb the current
        one.
        """
        self.monitor.startService()
        old, _ = self.ready()
        current, _ = self.ready()
        old.connectionLost(Failure(ConnectionLost()))
        self.assertIs(self.server.control, current)
        self.assertEqual(self.reactor.processes[0].signals, [])

    def test_connectionFailed(self) -> None:
        """
        A control connection that cannot be opened is logged and reported to
        the monitor, which kills the process.
        """
        self.monitor.startService()
        factory = controlFactoryMaker(self.monitor, self.server)
        with capturedLogs() as events:
            factory.clientConnectionFailed(
                None,  # type: ignore[arg-type]
                Failure(ConnectionRefusedError("refused")),
            )
        self.assertEqual(self.reactor.processes[0].signals, ["KILL"])
        self.assertIn(
            "cannot open the control connection of gs1",
            " ".join(formatEvent(e) for e in events),
        )

    def test_sendShutdown(self) -> None:
        """
        C{sendShutdown} writes C{Shutdown} with the deadline and reason.
        """
        protocol, transport = self.ready()
        protocol.sendShutdown(2500, "maintenance")
        self.assertEqual(
            written(transport),
            [
                (
                    T.Shutdown,
                    control_pb2.Shutdown(deadline_ms=2500, reason="maintenance"),
                )
            ],
        )
        self.assertFalse(transport.disconnecting)

    def test_drainSendsShutdown(self) -> None:
        """
        Draining the server through the monitor writes C{Shutdown} on its
        control connection.
        """
        _protocol, transport = self.ready()
        self.monitor.drain("gs1", "maintenance", deadline=2.5)
        self.assertEqual(
            written(transport),
            [
                (
                    T.Shutdown,
                    control_pb2.Shutdown(deadline_ms=2500, reason="maintenance"),
                )
            ],
        )
        self.assertIs(self.server.state, ServerState.DRAINING)

    def test_errorReceived(self) -> None:
        """
        An C{Error} from the game server (say, a bad token) is logged with its
        code and closes the connection; the monitor hears of its loss.
        """
        self.monitor.startService()
        protocol, transport = self.connectControl()
        with capturedLogs() as events:
            protocol.dataReceived(
                envelope(T.Error, control_pb2.Error(code=6, message="bad token"))
            )
        self.assertTrue(transport.disconnecting)
        self.assertEqual(written(transport), [])
        [event] = events
        self.assertEqual(event["code"], 6)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.reactor.processes[0].signals, ["KILL"])

    def test_receivedErrorTextLogged(self) -> None:
        """
        The text of an C{Error} received is in the log.
        """
        protocol, _ = self.connectControl()
        with capturedLogs() as events:
            protocol.dataReceived(
                envelope(T.Error, control_pb2.Error(code=6, message="bad token"))
            )
        self.assertEqual(
            [formatEvent(e).split(" ", 1)[1] for e in events],
            ["sent Error 6: bad token"],
        )

    def test_sentErrorTextLogged(self) -> None:
        """
        The text of an C{Error} sent is in the log, with its code.
        """
        protocol, _ = self.connectControl()
        with capturedLogs() as events:
            protocol.dataReceived(envelope(T.Status, control_pb2.Status()))
        [event] = events
        self.assertEqual(event["code"], 4)
        self.assertTrue(
            formatEvent(event).endswith(": Status is not allowed now"),
            formatEvent(event),
        )


class PlayerLinkTestCase(ProxyTestCase):
    """
    A session with one connection and an identity, seated through
    L{LinkConnector} on a recording seat.
    """

    def setUp(self) -> None:
        super().setUp()
        self.server.port = 4321
        self.registry = MemorySessionRegistry(clock=self.reactor)
        self.connection = RecordingConnection()
        self.connection.remoteAddress = "203.0.113.9"  # type: ignore[attr-defined]
        self.connection.transport = StringTransport()  # type: ignore[attr-defined]
        self.session = self.successResultOf(self.registry.open(None, self.connection))
        self.session.identity = Identity("alice", "Alice", {"team": "red"})
        self.seat = RecordingSeat(self.session)

    def connectLink(self) -> tuple[PlayerLinkProtocol, StringTransport]:
        """
        Open the link through L{LinkConnector} and the factory it connected
        with, and clear what the link wrote first.
        """
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        factory = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        transport.clear()
        return protocol, transport

    def connected(self) -> tuple[PlayerLinkProtocol, StringTransport]:
        """
        A link whose game server answered C{Connected}.
        """
        protocol, transport = self.connectLink()
        protocol.dataReceived(
            envelope(T.Connected, game_pb2.GameDetails(server_id="gs1"))
        )
        return protocol, transport

    def reports(self) -> list[tuple[Any, ...]]:
        """
        The seat's reports other than C{linkMade}.
        """
        return [call for call in self.seat.calls if call[0] != "linkMade"]


class PlayerLinkProtocolTests(PlayerLinkTestCase):
    """
    Tests of L{PlayerLinkProtocol}.
    """

    def test_typeThenClientAuth(self) -> None:
        """
        The link sends C{Type{CLIENT}} with the game server's control token,
        then C{ClientAuth}, then reports to its seat that it is open.
        """
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        factory = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(
            written(transport),
            [
                (
                    T.Type,
                    control_pb2.Type(
                        kind=control_pb2.Type.CLIENT, token=self.server.token
                    ),
                ),
                (T.ClientAuth, factory.clientAuth),
            ],
        )
        self.assertEqual(self.seat.calls, [("linkMade", protocol)])
        self.assertIs(protocol.seat, self.seat)
        self.assertFalse(transport.disconnecting)

    def test_typeCarriesClientToken(self) -> None:
        """
        A game server with a client token is sent that in C{Type}, not its
        control token.
        """
        self.server.clientToken = b"\x05" * 32
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        protocol = self.reactor.tcpClients[-1][2].buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        kind, message = written(transport)[0]
        self.assertEqual((kind, message.token), (T.Type, b"\x05" * 32))

    def test_noSessionTokenSent(self) -> None:
        """
        The session's token is in nothing the link writes.
        """
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        protocol = self.reactor.tcpClients[-1][2].buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertNotIn(self.session.token, transport.value())

    def test_connected(self) -> None:
        """
        C{Connected} reports the game's details to the seat.
        """
        details = game_pb2.GameDetails(
            server_id="gs1", name="echo", player_id="alice", players=2, capacity=8
        )
        protocol, transport = self.connectLink()
        protocol.dataReceived(envelope(T.Connected, details))
        self.assertEqual(self.reports(), [("accepted", details)])
        self.assertFalse(transport.disconnecting)

    def test_gameConfig(self) -> None:
        """
        C{GameConfig} after C{Connected} is reported to the seat.
        """
        config = game_pb2.GameConfig(content_type="application/json", content=b"{}")
        protocol, _transport = self.connected()
        protocol.dataReceived(envelope(T.GameConfig, config))
        self.assertEqual(self.reports()[1:], [("gameConfig", config)])

    def test_gameData(self) -> None:
        """
        Each C{GameData} payload goes to the seat verbatim and in order.
        """
        payloads = [b"\x00\x01\xffabc", b"", bytes(range(256)) * 4]
        protocol, transport = self.connected()
        protocol.dataReceived(
            b"".join(envelope(T.GameData, payload) for payload in payloads)
        )
        self.assertEqual(
            self.reports()[1:], [("gameData", payload) for payload in payloads]
        )
        self.assertEqual(written(transport), [])

    def test_gameDataBeforeConnected(self) -> None:
        """
        C{GameData} before C{Connected} is answered with C{Error{4}} and
        closes; the seat gets no data, and hears that the link was lost.
        """
        protocol, transport = self.connectLink()
        protocol.dataReceived(envelope(T.GameData, b"early"))
        self.assertEqual(
            written(transport),
            [error(ErrorCode.NOT_ALLOWED_NOW, "GameData is not allowed now")],
        )
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.reports(), [])
        reason = Failure(ConnectionDone("closed"))
        protocol.connectionLost(reason)
        self.assertEqual(self.reports(), [("lost", reason.getErrorMessage())])

    def test_gameConfigBeforeConnected(self) -> None:
        """
        C{GameConfig} before C{Connected} is answered with C{Error{4}}.
        """
        protocol, transport = self.connectLink()
        protocol.dataReceived(envelope(T.GameConfig, game_pb2.GameConfig()))
        self.assertEqual(
            written(transport),
            [error(ErrorCode.NOT_ALLOWED_NOW, "GameConfig is not allowed now")],
        )

    def test_connectedTwice(self) -> None:
        """
        A second C{Connected} is answered with C{Error{4}}.
        """
        protocol, transport = self.connected()
        protocol.dataReceived(envelope(T.Connected, game_pb2.GameDetails()))
        self.assertEqual(
            written(transport),
            [error(ErrorCode.NOT_ALLOWED_NOW, "Connected is not allowed now")],
        )
        self.assertEqual(len(self.reports()), 1)

    def test_rejected(self) -> None:
        """
        C{Rejected} is reported to the seat with its code and reason, and
        closes the link; its loss is not reported as well.
        """
        protocol, transport = self.connectLink()
        protocol.dataReceived(
            envelope(T.Rejected, control_pb2.Rejected(code=3, reason="arena full"))
        )
        self.assertEqual(self.reports(), [("rejected", 3, "arena full")])
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.reports(), [("rejected", 3, "arena full")])

    def test_disconnect(self) -> None:
        """
        C{Disconnect} from the game server (a kick) is reported to the seat
        and closes the link; its loss is not reported as well.
        """
        protocol, transport = self.connected()
        protocol.dataReceived(
            envelope(T.Disconnect, control_pb2.Disconnect(code=9, reason="kicked"))
        )
        self.assertEqual(self.reports()[1:], [("disconnected", 9, "kicked")])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(written(transport), [])
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.reports()[1:], [("disconnected", 9, "kicked")])

    def test_disconnectBeforeConnected(self) -> None:
        """
        The game server may send C{Disconnect} before C{Connected}.
        """
        protocol, _transport = self.connectLink()
        protocol.dataReceived(
            envelope(T.Disconnect, control_pb2.Disconnect(code=1, reason="bye"))
        )
        self.assertEqual(self.reports(), [("disconnected", 1, "bye")])

    def test_connectionLost(self) -> None:
        """
        A link that closes without C{Disconnect} or C{Rejected} is reported
        lost to the seat, with the reason's message, once.
        """
        protocol, _transport = self.connected()
        reason = Failure(ConnectionLost("reset by peer"))
        protocol.connectionLost(reason)
        self.assertEqual(self.reports()[1:], [("lost", reason.getErrorMessage())])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connectionLostBeforeConnected(self) -> None:
        """
        A link lost before C{Connected} is reported lost too.
        """
        protocol, _transport = self.connectLink()
        reason = Failure(ConnectionLost("reset"))
        protocol.connectionLost(reason)
        self.assertEqual(self.reports(), [("lost", reason.getErrorMessage())])

    def test_errorReceived(self) -> None:
        """
        An C{Error} from the game server (say, a bad token) closes the link,
        which is then reported lost.
        """
        protocol, transport = self.connectLink()
        with capturedLogs():
            protocol.dataReceived(
                envelope(T.Error, control_pb2.Error(code=6, message="bad token"))
            )
        self.assertTrue(transport.disconnecting)
        reason = Failure(ConnectionDone("closed"))
        protocol.connectionLost(reason)
        self.assertEqual(self.reports(), [("lost", reason.getErrorMessage())])

    def test_disconnectFromSeat(self) -> None:
        """
        C{disconnect} writes C{Disconnect} with the code and reason and closes
        the link; its loss is not reported to the seat, and a second
        C{disconnect} writes nothing.
        """
        protocol, transport = self.connected()
        protocol.disconnect(4009, "logged in elsewhere")
        self.assertEqual(
            written(transport),
            [
                (
                    T.Disconnect,
                    control_pb2.Disconnect(code=4009, reason="logged in elsewhere"),
                )
            ],
        )
        self.assertTrue(transport.disconnecting)
        protocol.disconnect(4009, "again")
        self.assertEqual(written(transport), [])
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([call[0] for call in self.reports()], ["accepted"])

    def test_disconnectAfterRejected(self) -> None:
        """
        C{disconnect} on a link that the game server already ended writes
        nothing.
        """
        protocol, transport = self.connectLink()
        protocol.dataReceived(
            envelope(T.Rejected, control_pb2.Rejected(code=3, reason="full"))
        )
        protocol.disconnect(0, "seat no longer wanted")
        self.assertEqual(written(transport), [])

    def test_sendGameData(self) -> None:
        """
        C{sendGameData} writes one C{GameData} envelope with the payload
        verbatim.
        """
        protocol, transport = self.connected()
        protocol.sendGameData(b"\x00\x01payload")
        self.assertEqual(written(transport), [(T.GameData, b"\x00\x01payload")])

    def test_noHeartbeats(self) -> None:
        """
        A player link sends no heartbeats and, once C{Connected}, does not
        time out.
        """
        _protocol, transport = self.connected()
        self.reactor.advance(120)
        self.assertEqual(written(transport), [])
        self.assertFalse(transport.disconnecting)

    def test_connectedTimeout(self) -> None:
        """
        A game server that does not answer the link within the first-message
        timeout (10 s) gets C{Error{7}}; the link is then reported lost.
        """
        protocol, transport = self.connectLink()
        self.reactor.advance(9.5)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.5)
        self.assertEqual(
            written(transport), [error(ErrorCode.TIMEOUT, "no envelope within 10 s")]
        )
        self.assertTrue(transport.disconnecting)
        reason = Failure(ConnectionDone("closed"))
        protocol.connectionLost(reason)
        self.assertEqual(self.reports(), [("lost", reason.getErrorMessage())])

    def test_pauseResumeReading(self) -> None:
        """
        C{pauseReading} and C{resumeReading} pause and resume reading from the
        game server.
        """
        protocol, transport = self.connected()
        protocol.pauseReading()
        self.assertEqual(transport.producerState, "paused")
        protocol.resumeReading()
        self.assertEqual(transport.producerState, "producing")

    def test_pauseReadingWhenClosed(self) -> None:
        """
        C{pauseReading} on a closing link leaves its transport alone.
        """
        protocol, transport = self.connected()
        protocol.disconnect(0, "bye")
        protocol.pauseReading()
        self.assertEqual(transport.producerState, "producing")

    def test_registeredAsProducer(self) -> None:
        """
        The link is its transport's streaming producer, so that it hears when
        the game server reads too slowly.
        """
        protocol, transport = self.connectLink()
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)

    def test_slowGameServerPausesPlayer(self) -> None:
        """
        When the game server reads too slowly (the link's transport pauses
        it), reading from the player's connections pauses, with the cause
        C{"link"}, until it catches up.
        """
        protocol, _transport = self.connected()
        protocol.pauseProducing()
        self.assertTrue(protocol.writePaused)
        self.assertEqual(self.connection.pauses, {"link"})
        protocol.resumeProducing()
        self.assertFalse(protocol.writePaused)
        self.assertEqual(self.connection.pauses, set())

    def test_pauseOncePerPause(self) -> None:
        """
        The transport pauses the link again on every write while the game
        server reads too slowly; the player's connections are paused once.
        """
        calls: list[str] = []
        original = self.connection.pauseReading

        def pauseReading(cause: str) -> None:
            calls.append(cause)
            original(cause)

        self.connection.pauseReading = pauseReading  # type: ignore[method-assign]
        protocol, _transport = self.connected()
        for _ in range(3):
            protocol.pauseProducing()
            protocol.sendGameData(b"x")
        self.assertEqual(calls, ["link"])

    def test_otherCausesStay(self) -> None:
        """
        The link takes back only its own pause: a connection paused for
        another cause stays paused.
        """
        protocol, _transport = self.connected()
        self.connection.pauseReading("ping")
        protocol.pauseProducing()
        self.assertEqual(self.connection.pauses, {"ping", "link"})
        protocol.resumeProducing()
        self.assertEqual(self.connection.pauses, {"ping"})

    def test_lostWhilePausedResumes(self) -> None:
        """
        A link that goes away while it pauses the player's connections takes
        its pause back.
        """
        protocol, _transport = self.connected()
        protocol.pauseProducing()
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.connection.pauses, set())

    def test_disconnectWhilePausedResumes(self) -> None:
        """
        A link the seat disconnects while it pauses the player's connections
        takes its pause back.
        """
        protocol, _transport = self.connected()
        protocol.pauseProducing()
        protocol.disconnect(0, "bye")
        self.assertEqual(self.connection.pauses, set())

    def test_slowGameServerOverflow(self) -> None:
        """
        A game server that does not read while the link keeps writing: once
        more than the link's C{writeBufferLimit} waits, the link is aborted,
        the seat is told it is lost and the player's connections read again.
        """
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        factory = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(None)
        protocol.writeBufferLimit = 1000
        queue = QueueTransport()
        protocol.makeConnection(queue)
        protocol.dataReceived(
            envelope(T.Connected, game_pb2.GameDetails(server_id="gs1"))
        )
        for _ in range(30):
            protocol.sendGameData(b"x" * 46)
        self.assertTrue(queue.aborted)
        self.assertTrue(protocol.closing)
        self.assertEqual(self.connection.pauses, {"link"})
        protocol.connectionLost(Failure(ConnectionLost("aborted")))
        self.assertEqual(self.connection.pauses, set())
        self.assertEqual(self.reports()[-1][0], "lost")

    def test_connectionFailed(self) -> None:
        """
        A link that cannot be opened is reported lost to the seat.
        """
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        factory = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError("no")))
        self.assertEqual(len(self.seat.calls), 1)
        self.assertEqual(self.seat.calls[0][0], "lost")
        self.assertIn("no", self.seat.calls[0][1])


class LinkConnectorTests(PlayerLinkTestCase):
    """
    Tests of L{LinkConnector}.
    """

    def test_clientAuth(self) -> None:
        """
        C{ClientAuth} carries the session's identity (player id, name,
        attributes), its non-secret session id and the remote address of its
        connection.
        """
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        factory = self.reactor.tcpClients[-1][2]
        self.assertIsInstance(factory, PlayerLinkFactory)
        self.assertEqual(
            factory.clientAuth,
            control_pb2.ClientAuth(
                player_id="alice",
                name="Alice",
                session_id=self.session.sessionId,
                remote_address="203.0.113.9",
                attributes={"team": "red"},
            ),
        )
        self.assertIs(factory.seat, self.seat)
        self.assertIs(factory.server, self.server)
        self.assertIs(factory.clock, self.reactor)

    def test_neverTheToken(self) -> None:
        """
        The session id is not the session's token, and the token is nowhere
        in C{ClientAuth}.
        """
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        clientAuth = self.reactor.tcpClients[-1][2].clientAuth
        self.assertNotEqual(clientAuth.session_id, self.session.token)
        self.assertNotIn(self.session.token, clientAuth.SerializeToString())
        self.assertNotIn(self.session.token[:16], clientAuth.SerializeToString())

    def test_noRemoteAddress(self) -> None:
        """
        A session whose connections have no remote address sends an empty
        one.
        """
        self.connection.remoteAddress = ""  # type: ignore[attr-defined]
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        self.assertEqual(self.reactor.tcpClients[-1][2].clientAuth.remote_address, "")

    def test_connectsToServer(self) -> None:
        """
        The link is opened to the game server's host and port, with the
        connect timeout.
        """
        LinkConnector(self.reactor, connectTimeout=2.5)(self.server, self.seat)  # type: ignore[arg-type]
        [(host, port, _, timeout, _)] = self.reactor.tcpClients
        self.assertEqual((host, port, timeout), ("127.0.0.1", 4321, 2.5))

    def test_defaultTimeout(self) -> None:
        """
        The connect timeout is 10 s by default.
        """
        LinkConnector(self.reactor)(self.server, self.seat)  # type: ignore[arg-type]
        self.assertEqual(self.reactor.tcpClients[-1][3], 10.0)

    def test_remoteServer(self) -> None:
        """
        A link to a remote game server goes to its address, and carries its
        token.
        """
        monitor = GameServerMonitor(
            reactor=self.reactor,
            game="aphelion.games.echo",
            count=0,
            remotes=[RemoteGameServer("192.0.2.7", 7000, b"\x07" * 32)],
            makeControlFactory=controlFactoryMaker,
        )
        server = monitor.servers["remote1"]
        LinkConnector(self.reactor)(server, self.seat)  # type: ignore[arg-type]
        [(host, port, factory, _, _)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("192.0.2.7", 7000))
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(
            written(transport)[0],
            (
                T.Type,
                control_pb2.Type(kind=control_pb2.Type.CLIENT, token=b"\x07" * 32),
            ),
        )


class GatewayLinkTests(ProxyTestCase):
    """
    Tests of a L{PlayerLinkProtocol} serving a real L{Seat} of a real
    L{Gateway}, seated through a real control connection and
    L{LinkConnector}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.server.port = 4321
        self.control, _ = self.connectControl()
        self.control.dataReceived(
            envelope(
                T.Ready, control_pb2.Ready(server_id="gs1", name="echo", capacity=8)
            )
        )
        self.registry = MemorySessionRegistry(clock=self.reactor)
        self.gateway = Gateway(
            registry=self.registry,
            authenticator=lambda playerId: succeed(Identity(playerId, "Alice")),
            monitor=self.monitor,
            connectLink=LinkConnector(self.reactor),
        )
        self.connection = RecordingConnection()
        self.session = self.successResultOf(self.registry.open(None, self.connection))
        self.gateway.payloadReceived(
            self.session,
            self.connection,
            game_pb2.C2S(
                authenticate=game_pb2.Authenticate(id="alice")
            ).SerializeToString(),
        )
        [(_host, _port, factory, _, _)] = self.reactor.tcpClients
        self.link = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.link.makeConnection(self.transport)

    def test_seated(self) -> None:
        """
        C{Connected} on the link seats the session: the client gets
        C{connected}, and the link is the seat's.
        """
        self.assertIsInstance(self.link.seat, Seat)
        self.assertIs(self.link.seat.link, self.link)
        self.assertEqual(self.server.pending, 1)
        self.link.dataReceived(
            envelope(
                T.Connected, game_pb2.GameDetails(server_id="gs1", player_id="alice")
            )
        )
        self.assertIs(self.session.seat, self.link.seat)
        self.assertEqual(self.session.state, SessionState.RELAYING)
        self.assertEqual(self.server.pending, 0)
        self.assertIn(self.link, self.server.links)
        response = game_pb2.S2C.FromString(self.connection.sent[-1])
        self.assertEqual(response.connected.player_id, "alice")

    def test_relay(self) -> None:
        """
        Once seated, C{GameData} reaches the client verbatim, and the
        client's payloads reach the game server verbatim.
        """
        self.link.dataReceived(
            envelope(T.Connected, game_pb2.GameDetails(server_id="gs1"))
            + envelope(T.GameData, b"\x12\x00from the game")
        )
        self.assertEqual(self.connection.sent[-1], b"\x12\x00from the game")
        self.transport.clear()
        self.gateway.payloadReceived(self.session, self.connection, b"\x0a\x00to it")
        self.assertEqual(written(self.transport), [(T.GameData, b"\x0a\x00to it")])

    def test_kicked(self) -> None:
        """
        C{Disconnect} from the game server ends the session (4009) and closes
        the link, which does not then count as lost.
        """
        self.link.dataReceived(
            envelope(T.Connected, game_pb2.GameDetails(server_id="gs1"))
        )
        self.link.dataReceived(
            envelope(T.Disconnect, control_pb2.Disconnect(code=100, reason="cheating"))
        )
        self.assertEqual(self.connection.closed, (4009, "cheating"))
        self.assertTrue(self.transport.disconnecting)
        self.link.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_sessionEndedDisconnects(self) -> None:
        """
        When the session ends, its seat disconnects the link with the code
        and reason.
        """
        self.link.dataReceived(
            envelope(T.Connected, game_pb2.GameDetails(server_id="gs1"))
        )
        self.transport.clear()
        self.registry.end(self.session, 4009, "logged in elsewhere")
        self.assertEqual(
            written(self.transport),
            [
                (
                    T.Disconnect,
                    control_pb2.Disconnect(code=4009, reason="logged in elsewhere"),
                )
            ],
        )
        self.assertTrue(self.transport.disconnecting)
