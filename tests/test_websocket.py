# -*- test-case-name: tests.test_websocket -*-
"""
Tests of L{aphelion.websocket}: one server protocol over an in-memory
transport, with a L{Clock} for every timer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import txaio
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from txaio.testutil import replace_loop

from aphelion import sendbuffer, websocket
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.config import Config
from aphelion.gateway import Gateway
from aphelion.handshake import encodeInit
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate, AuthenticateResponse
from aphelion.proto.ping_pb2 import PingRequest, PingResponse
from aphelion.session import MemorySessionRegistry
from aphelion.testing import RecordingClientProtocol, connectedToServer
from aphelion.websocket import AphelionServerFactory

txaio.use_twisted()

PING, GAME = AphelionProtocol.PING, AphelionProtocol.GAME


class ServerTestsMixin:
    """
    Builds a factory on a L{Clock} and connects clients to it.
    """

    config = Config()

    def setUp(self) -> None:
        self.clock = Clock()
        loop = replace_loop(self.clock)
        loop.__enter__()
        self.addCleanup(loop.__exit__, None, None, None)  # type: ignore[attr-defined]
        self.registry = MemorySessionRegistry(
            clock=self.clock,
            sessionTimeout=self.config.sessionTimeout,
            maxConnections=self.config.connectionsPerSession,
            queueLimit=self.config.queueLimit,
        )
        self.factory = AphelionServerFactory(
            clock=self.clock,
            registry=self.registry,
            config=self.config,
            gateway=Gateway(registry=self.registry),
        )

    def connect(self) -> tuple[RecordingClientProtocol, Any, Any]:
        """
        Connect a client and complete the WebSocket handshake.
        """
        client, server, pump = connectedToServer(self.factory, self.clock)
        assert client.opened
        return client, server, pump

    def handshake(
        self, protocol: int = GAME, token: bytes | None = None
    ) -> tuple[RecordingClientProtocol, Any, Any, bytes]:
        """
        Connect a client and complete the init handshake.

        :return: the client, the server protocol, the pump and the token.
        """
        client, server, pump = self.connect()
        client.send(encodeInit(protocol, 1, token))
        pump.flush(advanceClock=False)
        token = client.received.pop(0)
        self.assertEqual(len(token), 32)  # type: ignore[attr-defined]
        return client, server, pump, token

    def login(self, token: bytes, playerId: str = "alice") -> Any:
        """
        Bind a player ID to the session of C{token}, as the gateway does
        once a checker said yes: only such a session lingers.

        :return: the session.
        """
        session = self.successResultOf(self.registry.lookup(token))  # type: ignore[attr-defined]
        self.registry.authenticate(session, playerId)
        return session


def ping(clientTime: int = 7) -> bytes:
    """
    A PingRequest payload.
    """
    return PingRequest(client_time=clientTime).SerializeToString()


class BakedOptionsTests(ServerTestsMixin, SynchronousTestCase):
    """
    The factory's protocols hold Autobahn's options in their class
    (L{aphelion.wsbase.bakedProtocol}), not in each connection.
    """

    def test_optionsNotCopied(self) -> None:
        """
        A connection reads the factory's options without a copy of its own,
        and is still an L{websocket.AphelionServerProtocol}.
        """
        _client, server, _pump, _ = self.handshake()
        self.assertIsInstance(server, websocket.AphelionServerProtocol)
        self.assertNotIn("maxMessagePayloadSize", vars(server))
        self.assertEqual(server.maxMessagePayloadSize, self.config.maxMessage)
        self.assertEqual(server.autoPingInterval, self.config.autoPingInterval)

    def test_optionsChanged(self) -> None:
        """
        Options set on the factory later reach the protocols built after.
        """
        self.factory.setProtocolOptions(maxMessagePayloadSize=100)
        protocol = self.factory.buildProtocol(None)
        self.assertEqual(protocol.maxMessagePayloadSize, 100)

    def test_functionOption(self) -> None:
        """
        An option that is a function stays a plain function, not a method.
        """
        seen: list[object] = []

        def accept(offers: object) -> None:
            seen.append(offers)

        self.factory.setProtocolOptions(perMessageCompressionAccept=accept)
        protocol = self.factory.buildProtocol(None)
        protocol.perMessageCompressionAccept(["offer"])
        self.assertEqual(seen, [["offer"]])


class HandshakeTests(ServerTestsMixin, SynchronousTestCase):
    """
    The init handshake and its close codes.
    """

    def closeCode(self, message: bytes, isBinary: bool = True) -> int | None:
        """
        Send C{message} as the first message and return the close code.
        """
        client, _, pump = self.connect()
        client.send(message, isBinary)
        pump.flush()
        assert client.closed is not None
        self.assertTrue(client.closed[1])  # every close has a reason
        return client.closed[0]

    def test_newSession(self) -> None:
        """
        An init packet without a token gets 32 fresh token bytes.
        """
        client, _, _, token = self.handshake()
        self.assertIsNone(client.closed)
        self.assertIsNotNone(self.successResultOf(self.registry.lookup(token)))

    def test_joinSession(self) -> None:
        """
        Presenting a live token joins the session: the reply equals it.
        """
        _, _, _, token = self.handshake()
        _, _, _, again = self.handshake(PING, token)
        self.assertEqual(again, token)
        session = self.successResultOf(self.registry.lookup(token))
        self.assertEqual(len(session.connections), 2)

    def test_unknownTokenNewSession(self) -> None:
        """
        An unknown token is not an error: a new session with another token.
        """
        _, _, _, token = self.handshake(GAME, b"\x07" * 32)
        self.assertNotEqual(token, b"\x07" * 32)

    def test_text(self) -> None:
        """
        A text init packet: 1003.
        """
        self.assertEqual(self.closeCode(b"x" * 39, isBinary=False), 1003)

    def test_badLength(self) -> None:
        """
        A 38-byte init packet: 4003.
        """
        self.assertEqual(self.closeCode(encodeInit(GAME)[:38]), 4003)

    def test_badFlag(self) -> None:
        """
        A C{has_session_token} of 2: 4003.
        """
        packet = bytearray(encodeInit(GAME))
        packet[6] = 2
        self.assertEqual(self.closeCode(bytes(packet)), 4003)

    def test_badProtocol(self) -> None:
        """
        Protocol 3: 4000.
        """
        self.assertEqual(self.closeCode(encodeInit(3)), 4000)

    def test_tooOld(self) -> None:
        """
        A version below the configured minimum: 4001.
        """
        self.config = replace(
            Config(),
            revisions={1: Config().revisions[1], 2: type(Config().revisions[2])(2, 3)},
        )
        self.setUp()
        self.assertEqual(self.closeCode(encodeInit(GAME, 1)), 4001)

    def test_tooNew(self) -> None:
        """
        A version above the current revision: 4002.
        """
        self.assertEqual(self.closeCode(encodeInit(PING, 2)), 4002)

    def test_initTimeout(self) -> None:
        """
        No init packet within 10 seconds: 4004.
        """
        client, _, pump = self.connect()
        self.clock.advance(9.9)
        pump.flush(advanceClock=False)
        self.assertIsNone(client.closed)
        self.clock.advance(0.1)
        pump.flush(advanceClock=False)
        self.assertEqual(client.closed, (4004, "no init packet in time"))

    def test_initTimeoutCancelled(self) -> None:
        """
        After the init packet the timeout never fires.
        """
        client, _, pump, _ = self.handshake(PING)
        self.clock.advance(30)
        pump.flush(advanceClock=False)
        self.assertIsNone(client.closed)

    def test_tooManyConnections(self) -> None:
        """
        The ninth connection of one session: 1013.
        """
        _, _, _, token = self.handshake()
        for _ in range(7):
            self.handshake(GAME, token)
        self.assertEqual(self.closeCode(encodeInit(GAME, 0, token)), 1013)

    def test_serverFull(self) -> None:
        """
        Past the global connection limit a new connection is closed with 1013.
        """
        self.config = replace(Config(), maxConnections=2)
        self.setUp()
        self.handshake()
        self.handshake()
        client, _, pump = self.connect()
        pump.flush()
        self.assertEqual(client.closed, (1013, "server full"))

    def test_registryAnswersLater(self) -> None:
        """
        With a registry that answers later (a shared store), the connection
        reads nothing more until it has, and then handles what came meanwhile
        in order.
        """
        answers: list[Deferred[Any]] = []
        memoryOpen = self.registry.open

        def slowOpen(token: bytes | None, connection: Any) -> Deferred[Any]:
            later: Deferred[Any] = Deferred()
            answers.append(later)
            later.addCallback(lambda _: memoryOpen(token, connection))
            return later

        self.registry.open = slowOpen  # type: ignore[method-assign]
        client, server, pump = self.connect()
        reading: list[str] = []
        server.transport.pauseProducing = lambda: reading.append("paused")
        server.transport.resumeProducing = lambda: reading.append("resumed")
        client.send(encodeInit(PING))
        client.send(b"\x00" + ping(9))
        pump.flush()
        self.assertEqual(client.received, [])
        self.assertEqual(reading, ["paused"])
        answers[0].callback(None)
        pump.flush()
        self.assertEqual(reading, ["paused", "resumed"])
        self.assertEqual(len(client.received[0]), 32)
        self.assertEqual(PingResponse.FromString(client.received[1][1:]).client_time, 9)

    def test_forwardedForIgnored(self) -> None:
        """
        By default X-Forwarded-For is ignored: the address is the peer's.
        """
        _, server, _ = connectedToServer(
            self.factory, self.clock, headers={"X-Forwarded-For": "203.0.113.9"}
        )
        self.assertNotIn("203.0.113.9", server.remoteAddress)

    def test_forwardedForTrusted(self) -> None:
        """
        Behind a trusted front proxy, the client address is the last entry of
        X-Forwarded-For, the one that proxy appended.
        """
        self.config = replace(Config(), trustForwardedFor=True)
        self.setUp()
        _, server, _ = connectedToServer(
            self.factory,
            self.clock,
            headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.9"},
        )
        self.assertEqual(server.remoteAddress, "203.0.113.9")

    def test_pipelined(self) -> None:
        """
        Packets sent right behind the init packet are processed after it.
        """
        client, _, pump = self.connect()
        client.send(encodeInit(PING))
        client.send(b"\x00" + ping(5))
        pump.flush()
        self.assertEqual(len(client.received), 2)
        response = PingResponse.FromString(client.received[1][1:])
        self.assertEqual(response.client_time, 5)


class PacketTests(ServerTestsMixin, SynchronousTestCase):
    """
    ProtobufPackets, acks and their close codes.
    """

    def test_invalidUtf8Text(self) -> None:
        """
        A text frame that is not even valid UTF-8 is still 1003, not 1007.
        """
        client, _, pump, _ = self.handshake(PING)
        client.sendFrame(opcode=1, payload=b"\xff\xfe")
        pump.flush()
        self.assertEqual(client.closed, (1003, "text frames are not allowed"))

    def test_textAfterHandshake(self) -> None:
        """
        A text frame at any time: 1003.
        """
        client, _, pump, _ = self.handshake(PING)
        client.send(b"hello", isBinary=False)
        pump.flush()
        self.assertEqual(client.closed, (1003, "text frames are not allowed"))

    def test_emptyMessage(self) -> None:
        """
        A message of 0 bytes: 4006.
        """
        client, _, pump, _ = self.handshake()
        client.send(b"")
        pump.flush()
        self.assertEqual(client.closed, (4006, "empty packet"))

    def test_reservedAck(self) -> None:
        """
        Ack 255: 4006.
        """
        client, _, pump, _ = self.handshake()
        client.send(b"\xff")
        pump.flush()
        self.assertEqual(client.closed, (4006, "reserved ack 255"))

    def test_overAck(self) -> None:
        """
        Acking more than was sent: 4006.
        """
        client, _, pump, _ = self.handshake(PING)
        client.send(b"\x00" + ping())
        pump.flush()
        client.send(b"\x02")
        pump.flush()
        self.assertEqual(client.closed, (4006, "acknowledged more than was sent"))

    def test_pingAnswered(self) -> None:
        """
        A PingRequest is answered with its client time, the server time in ns
        and the counts, acking the request in the same packet.
        """
        client, _, pump, _ = self.handshake(PING)
        self.clock.advance(1.5)
        client.send(b"\x00" + ping(-42))
        pump.flush(advanceClock=False)
        [packet] = client.received
        self.assertEqual(packet[0], 1)
        response = PingResponse.FromString(packet[1:])
        self.assertEqual(response.client_time, -42)
        self.assertEqual(response.server_time, 1_500_000_000)
        self.assertEqual((response.players, response.playing), (0, 0))

    def test_pingCounts(self) -> None:
        """
        Players and playing come from the registry.
        """
        _, _, _, token = self.handshake()
        session = self.successResultOf(self.registry.lookup(token))
        self.registry.authenticate(session, "p")
        self.registry.seat(session, "s")
        client, _, pump, _ = self.handshake(PING)
        client.send(b"\x00" + ping())
        pump.flush()
        response = PingResponse.FromString(client.received[0][1:])
        self.assertEqual((response.players, response.playing), (1, 1))

    def test_malformedPing(self) -> None:
        """
        A payload that is not a PingRequest: 4006.
        """
        client, _, pump, _ = self.handshake(PING)
        client.send(b"\x00\xff\xff")
        pump.flush()
        self.assertEqual(client.closed, (4006, "malformed PingRequest"))

    def test_notAuthenticated(self) -> None:
        """
        A game payload other than authenticate, before authenticating, gets
        NOT_AUTHENTICATED, acking the request in the same packet.
        """
        client, _, pump, _ = self.handshake()
        client.send(b"\x00" + C2S().SerializeToString() + b"\x0a\x00")
        pump.flush()
        [packet] = client.received
        self.assertEqual(packet[0], 1)
        response = S2C.FromString(packet[1:]).authenticate_response
        self.assertEqual(response.result, AuthenticateResponse.NOT_AUTHENTICATED)
        self.assertTrue(S2C.FromString(packet[1:]).HasField("authenticate_response"))

    def test_noAuthConfigured(self) -> None:
        """
        With no checker configured, authenticate gets AUTH_METHOD_UNSUPPORTED.
        """
        client, _, pump, _ = self.handshake()
        auth = C2S(authenticate=Authenticate(id="alice")).SerializeToString()
        client.send(b"\x00" + auth)
        pump.flush()
        response = S2C.FromString(client.received[0][1:]).authenticate_response
        self.assertEqual(response.result, AuthenticateResponse.AUTH_METHOD_UNSUPPORTED)

    def test_malformedC2S(self) -> None:
        """
        A game payload that is not a C2S: 4006.
        """
        client, _, pump, _ = self.handshake()
        client.send(b"\x00\xff\xff")
        pump.flush()
        self.assertEqual(client.closed, (4006, "malformed C2S"))

    def test_burstGetsOneAck(self) -> None:
        """
        Payloads that the server does not answer are acked by one ack-only
        packet after the ack delay (5 ms by default).
        """
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        client.send(b"\x00one")
        client.send(b"\x00two")
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [])
        self.clock.advance(0.004)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [])
        self.clock.advance(0.001)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x02"])

    def test_burstAtEndOfTurnWithoutDelay(self) -> None:
        """
        With an ack delay of 0, the ack-only packet goes at the end of the
        reactor turn.
        """
        self.config = replace(Config(), ackDelay=0)
        self.setUp()
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        client.send(b"\x00one")
        client.send(b"\x00two")
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [])
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x02"])

    def test_ackRidesOnLaterAnswer(self) -> None:
        """
        An answer sent in a later turn, within the ack delay, carries the
        ack, and no ack-only packet follows (the relay's case).
        """
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        client.send(b"\x00ask")
        pump.flush(advanceClock=False)
        self.clock.advance(0.002)
        server.sendPayload(b"answer")
        pump.flush(advanceClock=False)
        self.clock.advance(0.01)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x01answer"])
        self.assertIsNone(server.factory._ackWaitCall)

    def test_ackAfterDelayWaitsForReads(self) -> None:
        """
        When the ack delay passes, the ack-only packets go in a later call
        (after the reactor's next reads), so an answer already in the socket
        can still carry the ack.
        """
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        client.send(b"\x00ask")
        pump.flush(advanceClock=False)
        waiting = server.factory._ackWaitCall
        assert waiting is not None
        # What the reactor does when the delay has passed: the timer's call.
        self.clock.rightNow += 0.005
        flush = waiting.func
        waiting.cancel()
        flush()
        self.assertIsNotNone(server.factory._ackCall)
        server.sendPayload(b"answer")
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x01answer"])

    def test_ackWaitsFromTheLatestPacket(self) -> None:
        """
        A payload that arrives after an answer carried the acks waits a
        whole ack delay of its own: the earlier deadline does not send it.
        """
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        client.send(b"\x00one")
        pump.flush(advanceClock=False)
        self.clock.advance(0.003)
        server.sendPayload(b"answer")
        client.send(b"\x01two")
        pump.flush(advanceClock=False)
        self.clock.advance(0.002)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x01answer"])
        self.clock.advance(0.003)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x01answer", b"\x01"])

    def test_ackCapEndsTheWait(self) -> None:
        """
        When the acks owed reach the cap within the ack delay, they go at
        the end of the turn, and the delay's timer then sends nothing.
        """
        self.config = replace(Config(), ackCap=3, ackDelay=1.0)
        self.setUp()
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        client.send(b"\x00one")
        pump.flush(advanceClock=False)
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [])
        client.send(b"\x00two")
        client.send(b"\x00three")
        pump.flush(advanceClock=False)
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x03"])
        self.clock.advance(1.0)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x03"])

    def test_nothingHandledWhileClosing(self) -> None:
        """
        Once the server has sent its close frame, packets that still arrive
        are not handled (a client closed with 4008 gets no extra try).
        """
        client, server, pump, _ = self.handshake()
        got: list[bytes] = []
        server.factory.gateway.payloadReceived = lambda s, c, p: got.append(p)
        server.closeWith(CloseCode.TOO_MANY_AUTH_ATTEMPTS, "too many")
        client.send(b"\x00late")
        pump.flush()
        self.assertEqual(got, [])

    def test_oneTimerForAllAcks(self) -> None:
        """
        Connections that need an ack after the ack delay share one timer,
        and each gets its own ack-only packet.
        """
        a, serverA, pumpA, _ = self.handshake()
        b, _, pumpB, _ = self.handshake()
        serverA.factory.gateway.payloadReceived = lambda *args: None
        a.send(b"\x00one")
        b.send(b"\x00two")
        pumpA.flush(advanceClock=False)
        pumpB.flush(advanceClock=False)
        flushes = [
            call
            for call in self.clock.getDelayedCalls()
            if getattr(call.func, "__name__", "") == "_flushWaitingAcks"
        ]
        self.assertEqual(len(flushes), 1)
        self.clock.advance(0.005)
        pumpA.flush(advanceClock=False)
        pumpB.flush(advanceClock=False)
        self.assertEqual((a.received, b.received), ([b"\x01"], [b"\x01"]))

    def test_ackOnlyNotAcked(self) -> None:
        """
        Ack-only packets from the client are never acked.
        """
        client, _, pump, _ = self.handshake()
        client.send(b"\x00")
        pump.flush()
        self.assertEqual(client.received, [])

    def test_ackCap(self) -> None:
        """
        300 payloads in one turn are acked 254, then 46.
        """
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        for _ in range(300):
            client.send(b"\x00p")
        pump.flush(advanceClock=False)
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\xfe", b"\x2e"])

    def test_ackCapConfigurable(self) -> None:
        """
        With a cap of 127, 200 payloads are acked 127, then 73.
        """
        self.config = replace(Config(), ackCap=127)
        self.setUp()
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        for _ in range(200):
            client.send(b"\x00p")
        pump.flush(advanceClock=False)
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x7f", b"\x49"])

    def test_ackDelay(self) -> None:
        """
        With an ack delay, the ack-only packet waits for it.
        """
        self.config = replace(Config(), ackDelay=0.05)
        self.setUp()
        client, server, pump, _ = self.handshake()
        server.factory.gateway.payloadReceived = lambda *a: None
        client.send(b"\x00p")
        pump.flush(advanceClock=False)
        self.clock.advance(0.04)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [])
        self.clock.advance(0.01)
        pump.flush(advanceClock=False)
        self.assertEqual(client.received, [b"\x01"])

    def test_unackedLimit(self) -> None:
        """
        A client that leaves more than the limit unacknowledged: 4007.
        """
        self.config = replace(Config(), unackedLimit=3)
        self.setUp()
        client, _, pump, _ = self.handshake(PING)
        for _ in range(4):
            client.send(b"\x00" + ping())
        pump.flush()
        self.assertEqual(len(client.received), 3)
        self.assertEqual(client.closed, (4007, "too many packets left unacknowledged"))

    def test_unackedLimitOff(self) -> None:
        """
        With the limit switched off, a client that never acks is served.
        """
        self.config = replace(Config(), unackedLimit=None)
        self.setUp()
        client, _, pump, _ = self.handshake(PING)
        for _ in range(1100):
            client.send(b"\x00" + ping())
        pump.flush()
        self.assertEqual(len(client.received), 1100)
        self.assertIsNone(client.closed)

    def test_tooBig(self) -> None:
        """
        A message over the limit: 1009.
        """
        client, _, pump, _ = self.handshake()
        client.send(b"\x00" + b"x" * 65536)
        pump.flush()
        assert client.closed is not None
        self.assertEqual(client.closed[0], 1009)

    def test_largestMessage(self) -> None:
        """
        A message of exactly the limit is accepted.
        """
        client, server, pump, _ = self.handshake()
        got: list[bytes] = []
        server.factory.gateway.payloadReceived = lambda s, c, p: got.append(p)
        client.send(b"\x00" + b"x" * 65535)
        pump.flush()
        self.assertIsNone(client.closed)
        self.assertEqual(len(got[0]), 65535)

    def test_internalError(self) -> None:
        """
        A bug in a handler closes with 1011 and logs the traceback.
        """
        client, server, pump, _ = self.handshake()

        def broken(*a: object) -> None:
            raise ZeroDivisionError()

        server.factory.gateway.payloadReceived = broken
        with capturedLogs() as events:
            client.send(b"\x00p")
            pump.flush()
        self.assertEqual(client.closed, (1011, "internal error"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(any("log_failure" in e for e in events))


class SessionTransportTests(ServerTestsMixin, SynchronousTestCase):
    """
    Sessions across connections.
    """

    def test_lingerResume(self) -> None:
        """
        A dropped connection's session can be resumed within the timeout.
        """
        client, _, pump, token = self.handshake()
        self.login(token)
        client.sendClose(1000)
        pump.flush()
        self.clock.advance(59)
        _, _, _, again = self.handshake(GAME, token)
        self.assertEqual(again, token)

    def test_expired(self) -> None:
        """
        After the session timeout the token gets a new session.
        """
        client, _, pump, token = self.handshake()
        self.login(token)
        client.sendClose(1000)
        pump.flush()
        self.clock.advance(60)
        _, _, _, again = self.handshake(GAME, token)
        self.assertNotEqual(again, token)

    def test_queuedOnResume(self) -> None:
        """
        Game messages produced while disconnected are sent in order on resume.
        """
        client, _, pump, token = self.handshake()
        self.login(token)
        client.sendClose(1000)
        pump.flush()
        session = self.successResultOf(self.registry.lookup(token))
        session.send(b"one")
        session.send(b"two")
        client2, _, pump2, _ = self.handshake(GAME, token)
        pump2.flush()
        self.assertEqual(client2.received, [b"\x00one", b"\x00two"])

    def test_outboundChoice(self) -> None:
        """
        Outbound messages take the game connection with the fewest
        unacknowledged packets, then the least recently used one.
        """
        a, _, pumpA, token = self.handshake()
        b, _, pumpB, _ = self.handshake(GAME, token)
        session = self.successResultOf(self.registry.lookup(token))
        for message in (b"1", b"2", b"3"):
            session.send(message)
            self.clock.advance(0)  # a new reactor turn chooses again
        pumpA.flush()
        pumpB.flush()
        self.assertEqual((a.received, b.received), ([b"\x001", b"\x003"], [b"\x002"]))
        b.send(b"\x01")
        pumpB.flush()
        self.clock.advance(0)
        session.send(b"4")
        pumpA.flush()
        pumpB.flush()
        self.assertEqual(b.received[-1], b"\x004")

    def test_sessionEndClosesAll(self) -> None:
        """
        Ending a session closes its connections with 4009 and the reason.
        """
        a, _, pumpA, token = self.handshake()
        b, _, pumpB, _ = self.handshake(PING, token)
        session = self.successResultOf(self.registry.lookup(token))
        self.registry.end(session, CloseCode.SESSION_ENDED, "kicked by the game")
        pumpA.flush()
        pumpB.flush()
        self.assertEqual(a.closed, (4009, "kicked by the game"))
        self.assertEqual(b.closed, (4009, "kicked by the game"))

    def test_clientClose4005(self) -> None:
        """
        A client closing with 4005 is a normal close: the session lingers.
        """
        client, _, pump, token = self.handshake()
        self.login(token)
        client.sendClose(4005, "new session")
        pump.flush()
        session = self.successResultOf(self.registry.lookup(token))
        self.assertTrue(session.lingering)

    def test_longReasonStaysUtf8(self) -> None:
        """
        A close reason longer than a close frame allows is cut at a character
        boundary, so it stays valid UTF-8.
        """
        client, server, pump, _ = self.handshake()
        server.closeWith(CloseCode.SESSION_ENDED, "\u00e9" * 100)
        pump.flush()
        assert client.closed is not None
        self.assertEqual(client.closed, (4009, "\u00e9" * 61))

    def test_closeAll(self) -> None:
        """
        Shutting down closes every connection with 1001.
        """
        client, _, pump, _ = self.handshake()
        self.factory.closeAll(CloseCode.GOING_AWAY, "server shutting down")
        pump.flush()
        self.assertEqual(client.closed, (1001, "server shutting down"))
        self.assertEqual(len(self.factory.connections), 0)

    def test_autoPing(self) -> None:
        """
        A client that answers no WebSocket ping is dropped after the timeout.
        """
        client, server, pump, _ = self.handshake()
        client.onPing = lambda payload: None
        self.clock.advance(10.5)
        pump.flush(advanceClock=False)
        self.assertIsNotNone(server.autoPingTimeoutCall)
        self.clock.advance(20.5)
        pump.flush(advanceClock=False)
        self.assertNotIn(server, self.factory.connections)

    def test_autoPingAnswered(self) -> None:
        """
        A client that answers WebSocket pings stays connected.
        """
        client, server, pump, _ = self.handshake(PING)
        for _ in range(10):
            self.clock.advance(5)
            pump.flush(advanceClock=False)
        self.assertIn(server, self.factory.connections)
        self.assertIsNone(client.closed)


class FuzzTests(ServerTestsMixin, SynchronousTestCase):
    """
    Arbitrary input never breaks the server: every connection ends with a
    close code of the contract, or stays open, and nothing is logged as a
    failure.
    """

    @settings(max_examples=60, deadline=None)
    @given(
        st.sampled_from([PING, GAME, 3]),
        st.lists(st.tuples(st.binary(max_size=40), st.booleans()), max_size=12),
    )
    def test_arbitraryMessages(
        self, protocol: int, messages: list[tuple[bytes, bool]]
    ) -> None:
        """
        After an init packet of any protocol, any sequence of text and binary
        messages leads to an open connection or a contract close code.
        """
        self.setUp()
        client, _, pump = self.connect()
        client.send(encodeInit(protocol))
        for message, isBinary in messages:
            if client.closed is not None:
                break
            client.send(message, isBinary)
            pump.flush()
        pump.flush()
        self.clock.advance(1)
        pump.flush()
        if client.closed is not None:
            self.assertIn(client.closed[0], {1003, 4000, 4006, 4007})
        self.assertEqual(self.flushLoggedErrors(), [])


class RecordingAdmission:
    """
    Records what a connection tells the site's admission about it.
    """

    def __init__(self, allowForwarded: bool = True) -> None:
        self.allowForwarded = allowForwarded
        self.events: list[str] = []

    def opened(self) -> None:
        """
        Record the completed upgrade.
        """
        self.events.append("opened")

    def closed(self) -> None:
        """
        Record the close.
        """
        self.events.append("closed")

    def forwardedFrom(self, address: str) -> bool:
        """
        Record the forwarded address; allow it or not.
        """
        self.events.append(f"forwarded {address}")
        return self.allowForwarded


class LimitTests(ServerTestsMixin, SynchronousTestCase):
    """
    The limits of Part 6 on a client connection: the authentication
    deadline, the write buffer, the admission of the site, quiet logs.
    """

    def test_authTimeout(self) -> None:
        """
        A game connection not authenticated within 30 s of its init packet
        is closed with 4008 "not authenticated in time".
        """
        client, _, pump, _ = self.handshake()
        self.clock.advance(29.9)
        pump.flush(advanceClock=False)
        self.assertIsNone(client.closed)
        self.clock.advance(0.1)
        pump.flush(advanceClock=False)
        self.assertEqual(client.closed, (4008, "not authenticated in time"))

    def test_authTimeoutSpared(self) -> None:
        """
        A session that authenticated in time keeps its connection; a ping
        connection has no such deadline.
        """
        client, _, pump, token = self.handshake()
        self.login(token)
        pinger, _, pingPump, _ = self.handshake(PING)
        self.clock.advance(31)
        pump.flush(advanceClock=False)
        pingPump.flush(advanceClock=False)
        self.assertIsNone(client.closed)
        self.assertIsNone(pinger.closed)

    def test_joinAuthenticatedSession(self) -> None:
        """
        A game connection that joins an authenticated session has no
        deadline to meet.
        """
        _, _, _, token = self.handshake()
        self.login(token)
        second, _, pump, _ = self.handshake(GAME, token)
        self.clock.advance(31)
        pump.flush(advanceClock=False)
        self.assertIsNone(second.closed)

    def test_authTimeoutOff(self) -> None:
        """
        An authentication timeout of 0 is no deadline.
        """
        self.config = replace(Config(), authTimeout=0)
        self.setUp()
        client, _, pump, _ = self.handshake()
        self.clock.advance(1000)
        pump.flush(advanceClock=False)
        self.assertNotEqual((client.closed or (0,))[0], 4008)

    def fullBuffer(self, server: Any, queued: int) -> None:
        """
        Tell C{server} its transport's buffer is full and holds C{queued}
        bytes, as Twisted does on each write while it is full.
        """
        self.patch(sendbuffer, "bufferedBytes", lambda transport: queued)
        server.pauseProducing()

    def test_writePause(self) -> None:
        """
        Past the write pause the client is not read; once the buffer drains
        it is read again.
        """
        _, server, _, _ = self.handshake()
        self.fullBuffer(server, 512 * 1024)
        self.assertNotIn("write", server._pauses)
        self.fullBuffer(server, 1024 * 1024 + 1)
        self.assertIn("write", server._pauses)
        server.resumeProducing()
        self.assertNotIn("write", server._pauses)

    def test_writeLimit(self) -> None:
        """
        Past the write limit the connection is closed with 4007 "reads too
        slowly".
        """
        client, server, pump, _ = self.handshake()
        self.fullBuffer(server, 4 * 1024 * 1024 + 1)
        self.patch(sendbuffer, "bufferedBytes", lambda transport: 0)
        pump.flush()
        self.assertEqual(client.closed, (4007, "reads too slowly"))

    def test_writeLimitsConfigurable(self) -> None:
        """
        The write pause and limit are settings.
        """
        self.config = replace(Config(), writePause=100_000, writeLimit=200_000)
        self.setUp()
        client, server, pump, _ = self.handshake()
        self.fullBuffer(server, 150_000)
        self.assertIn("write", server._pauses)
        self.fullBuffer(server, 200_001)
        self.patch(sendbuffer, "bufferedBytes", lambda transport: 0)
        pump.flush()
        self.assertEqual(client.closed, (4007, "reads too slowly"))

    def test_pauseCauses(self) -> None:
        """
        Reading resumes only when every cause that paused it has resumed.
        """
        _, server, _, _ = self.handshake()
        server.pauseReading("write")
        server.pauseReading("link")
        server.resumeReading("write")
        self.assertEqual(server._pauses, frozenset({"link"}))
        server.resumeReading("link")
        server.resumeReading("link")
        self.assertEqual(server._pauses, frozenset())

    def admitted(self, admission: RecordingAdmission) -> None:
        """
        Give every connection the factory builds C{admission}, as the
        players' site does.
        """
        build = self.factory.buildProtocol

        def buildProtocol(addr: Any) -> Any:
            protocol = build(addr)
            protocol.admission = admission
            return protocol

        self.factory.buildProtocol = buildProtocol  # type: ignore[method-assign]

    def test_admissionTold(self) -> None:
        """
        The site's admission hears when the upgrade completes and when the
        connection closes.
        """
        admission = RecordingAdmission()
        self.admitted(admission)
        client, _, pump, _ = self.handshake()
        self.assertEqual(admission.events, ["opened"])
        client.sendClose(1000)
        pump.flush()
        self.assertEqual(admission.events, ["opened", "closed"])

    def test_forwardedAddressOverLimit(self) -> None:
        """
        Behind a trusted proxy, a forwarded address over its limits is
        refused before the upgrade (HTTP 503).
        """
        self.config = replace(Config(), trustForwardedFor=True)
        self.setUp()
        admission = RecordingAdmission(allowForwarded=False)
        self.admitted(admission)
        client, server, _ = connectedToServer(
            self.factory, self.clock, headers={"X-Forwarded-For": "203.0.113.9"}
        )
        self.assertFalse(client.opened)
        self.assertIn("forwarded 203.0.113.9", admission.events)
        self.assertNotIn(server, self.factory.connections)

    def test_forwardedAddressAllowed(self) -> None:
        """
        Behind a trusted proxy, an allowed forwarded address becomes the
        connection's address.
        """
        self.config = replace(Config(), trustForwardedFor=True)
        self.setUp()
        admission = RecordingAdmission()
        self.admitted(admission)
        client, server, _ = connectedToServer(
            self.factory, self.clock, headers={"X-Forwarded-For": "203.0.113.9"}
        )
        self.assertTrue(client.opened)
        self.assertEqual(server.remoteAddress, "203.0.113.9")

    def test_noVersionInHeaders(self) -> None:
        """
        The upgrade response names no version (Part 6).
        """
        client, _, _ = self.connect()
        server = client.http_headers.get("server", "")
        self.assertEqual(server, "aphelion")

    def test_closeLinesThrottled(self) -> None:
        """
        A flood of bad init packets writes one line for the close code, then
        one summary line with the count per interval.
        """
        with capturedLogs() as events:
            for _ in range(20):
                self.closeCode(b"short")
            self.clock.advance(10)
        lines = [e for e in events if e.get("cause") == "close 4003"]
        self.assertEqual(len(lines), 2)
        self.assertEqual(lines[1]["count"], 19)

    def closeCode(self, message: bytes) -> int | None:
        """
        Send C{message} as the first message and return the close code.
        """
        client, _, pump = self.connect()
        client.send(message, True)
        pump.flush()
        return client.closed[0] if client.closed else None

    def test_tooManySessions(self) -> None:
        """
        Past the per-address session limit, a new session is closed with
        1013 and the reason.
        """
        self.registry = MemorySessionRegistry(clock=self.clock, sessionsPerAddress=1)
        self.factory = AphelionServerFactory(
            clock=self.clock,
            registry=self.registry,
            config=self.config,
            gateway=Gateway(registry=self.registry),
        )
        self.handshake()
        client, _, pump = self.connect()
        client.send(encodeInit(GAME, 1, None), True)
        pump.flush()
        self.assertEqual(client.closed, (1013, "too many sessions from this address"))

    def test_dropsThrottled(self) -> None:
        """
        Connections dropped because their peers stopped answering pings are
        logged once through the throttle, then counted, instead of with a
        warning per connection.
        """
        clients = [self.handshake(PING) for _ in range(3)]
        for client, _, _, _ in clients:
            client.onPing = lambda payload: None
        with capturedLogs() as events:
            self.clock.advance(10.5)
            for _, _, pump, _ in clients:
                pump.flush(advanceClock=False)
            self.clock.advance(20.5)
            for _, _, pump, _ in clients:
                pump.flush(advanceClock=False)
            self.clock.advance(10)
        self.assertEqual(self.factory.connections, set())
        dropped = [e for e in events if e.get("cause") == "connection dropped"]
        self.assertEqual([e.get("count") for e in dropped], [None, 2])
        warnings = [
            e
            for e in events
            if "dropping connection" in str(e.get("log_format"))
            and e.get("cause") is None
        ]
        self.assertEqual(warnings, [])
