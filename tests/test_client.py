# -*- test-case-name: tests.test_client -*-
"""
Tests of L{aphelion.client}: client protocols over in-memory transports, with
a L{Clock} for every timer, against a scripted WebSocket server or the real
L{AphelionServerFactory}.
"""

from __future__ import annotations

from typing import Any

import txaio
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.test.iosim import (
    ConnectionCompleter,
    FakeAddress,
    FakeTransport,
    IOPump,
    connectedServerAndClient,
)
from twisted.trial.unittest import SynchronousTestCase
from txaio.testutil import replace_loop
from zope.interface.verify import verifyObject

from aphelion.client import (
    AphelionClientFactory,
    AphelionClientProtocol,
    ClientSession,
    ClosedError,
    IClientSession,
    NotConnectedError,
    PingResult,
    connect,
    endpointForURL,
    ping,
)
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.config import Config
from aphelion.handshake import encodeInit
from aphelion.service import build
from aphelion.websocket import AphelionServerFactory, AphelionServerProtocol

txaio.use_twisted()

URL = "ws://127.0.0.1:4321/aphelion"
TOKEN = bytes(range(32))
OTHER = bytes(range(1, 33))


class ScriptedServerProtocol(WebSocketServerProtocol):
    """
    A bare WebSocket server that records what the client sends and sends
    whatever the test tells it to.

    :ivar received: every message received, in order.
    :ivar closed: C{(code, reason)} of the client's close frame, once closed.
    """

    received: list[bytes]
    closed: tuple[int | None, str | None] | None = None

    def onOpen(self) -> None:
        """
        Start recording.
        """
        self.received = []

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Record a message.
        """
        self.received.append(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Record the client's close code and reason.
        """
        super().onClose(wasClean, code, reason)
        self.closed = (self.remoteCloseCode, self.remoteCloseReason)

    def send(self, message: bytes, isBinary: bool = True) -> None:
        """
        Send one raw message.
        """
        self.sendMessage(message, isBinary)


class NoDelayTransport(FakeTransport):
    """
    A L{FakeTransport} that remembers C{setTcpNoDelay}.
    """

    noDelay: bool | None = None

    def setTcpNoDelay(self, enabled: bool) -> None:
        """
        Remember C{enabled}.
        """
        self.noDelay = enabled


class ClientTestsMixin:
    """
    Puts Autobahn's timers on a L{Clock} and connects client protocols to a
    scripted server.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        loop = replace_loop(self.clock)
        loop.__enter__()
        self.addCleanup(loop.__exit__, None, None, None)  # type: ignore[attr-defined]
        self.serverFactory = WebSocketServerFactory(URL)
        self.serverFactory.protocol = ScriptedServerProtocol
        self.serverFactory.setProtocolOptions(failByDrop=False)

    def clientFactory(self, **kwargs: Any) -> AphelionClientFactory:
        """
        A client factory for L{URL} on the test clock.
        """
        return AphelionClientFactory(URL, clock=self.clock, **kwargs)

    def connectPair(
        self, factory: AphelionClientFactory | None = None
    ) -> tuple[AphelionClientProtocol, ScriptedServerProtocol, IOPump]:
        """
        Connect a client protocol to a scripted server and complete the
        WebSocket (not the init) handshake.

        :return: the client, the server and the pump.
        """
        factory = factory or self.clientFactory()
        client, server, pump = connectedServerAndClient(
            lambda: self.serverFactory.buildProtocol(FakeAddress()),
            lambda: factory.buildProtocol(FakeAddress()),
            clock=self.clock,
        )
        pump.flush()
        assert isinstance(client, AphelionClientProtocol)
        assert isinstance(server, ScriptedServerProtocol)
        return client, server, pump

    def handshake(
        self,
        factory: AphelionClientFactory | None = None,
        reply: bytes = TOKEN,
    ) -> tuple[AphelionClientProtocol, ScriptedServerProtocol, IOPump]:
        """
        Connect and complete the init handshake with C{reply}.
        """
        client, server, pump = self.connectPair(factory)
        server.received.clear()
        server.send(reply)
        pump.flush()
        return client, server, pump


class RecordingClientProtocol(AphelionClientProtocol):
    """
    Records the calls of its hooks.

    :ivar calls: C{(hook name, arguments)} in order.
    """

    def connectionMade(self) -> None:
        """
        Start recording.
        """
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        super().connectionMade()

    def handshakeDone(self, token: bytes, resumed: bool) -> None:
        """
        Record the call.
        """
        self.calls.append(("handshakeDone", (token, resumed)))

    def unexpectedNewSession(self, presented: bytes, token: bytes) -> None:
        """
        Record the call.
        """
        self.calls.append(("unexpectedNewSession", (presented, token)))


class HandshakeTests(ClientTestsMixin, SynchronousTestCase):
    """
    The client's side of the init handshake.
    """

    def test_initSent(self) -> None:
        """
        The first message is the 39-byte C2SInitPacket for a game session
        without a token and with the version check skipped.
        """
        _, server, _ = self.connectPair()
        self.assertEqual(server.received, [encodeInit(AphelionProtocol.GAME, 0, None)])
        self.assertEqual(len(server.received[0]), 39)

    def test_initWithToken(self) -> None:
        """
        The init packet carries the factory's protocol, version and token.
        """
        factory = self.clientFactory(
            aphelionProtocol=AphelionProtocol.PING, protocolVersion=3, token=TOKEN
        )
        _, server, _ = self.connectPair(factory)
        self.assertEqual(server.received, [b"\x00\x01\x00\x00\x00\x03\x01" + TOKEN])

    def test_tcpNoDelay(self) -> None:
        """
        The client disables Nagle on its TCP transport.
        """
        protocol = self.clientFactory().buildProtocol(FakeAddress())
        assert protocol is not None
        transport = NoDelayTransport(protocol, isServer=False)
        protocol.makeConnection(transport)
        self.assertIs(transport.noDelay, True)

    def test_handshakeDone(self) -> None:
        """
        Exactly 32 bytes complete the handshake: the token is kept, the hook
        is called, and L{AphelionClientProtocol.whenHandshakeDone} fires.
        """
        factory = self.clientFactory()
        factory.protocol = RecordingClientProtocol
        client, _, _ = self.handshake(factory)
        assert isinstance(client, RecordingClientProtocol)
        self.assertEqual(client.token, TOKEN)
        self.assertFalse(client.resumed)
        self.assertTrue(client.handshaken)
        self.assertEqual(client.calls, [("handshakeDone", (TOKEN, False))])
        self.assertIs(self.successResultOf(client.whenHandshakeDone()), client)

    def test_whenHandshakeDoneWaits(self) -> None:
        """
        L{AphelionClientProtocol.whenHandshakeDone} waits for the reply.
        """
        client, server, pump = self.connectPair()
        d = client.whenHandshakeDone()
        self.assertNoResult(d)
        server.send(TOKEN)
        pump.flush()
        self.assertIs(self.successResultOf(d), client)

    def test_resumed(self) -> None:
        """
        The server's echo of the presented token means the session was joined.
        """
        factory = self.clientFactory(token=TOKEN)
        factory.protocol = RecordingClientProtocol
        client, _, _ = self.handshake(factory, TOKEN)
        assert isinstance(client, RecordingClientProtocol)
        self.assertTrue(client.resumed)
        self.assertEqual(client.calls, [("handshakeDone", (TOKEN, True))])

    def test_unexpectedNewSession(self) -> None:
        """
        Another token than the presented one calls L{unexpectedNewSession}
        before L{handshakeDone}, and the connection stays open.
        """
        factory = self.clientFactory(token=TOKEN)
        factory.protocol = RecordingClientProtocol
        client, _, _ = self.handshake(factory, OTHER)
        assert isinstance(client, RecordingClientProtocol)
        self.assertFalse(client.resumed)
        self.assertEqual(
            client.calls,
            [
                ("unexpectedNewSession", (TOKEN, OTHER)),
                ("handshakeDone", (OTHER, False)),
            ],
        )
        self.assertTrue(client.handshaken)

    def assertClosedBy(
        self,
        client: AphelionClientProtocol,
        server: ScriptedServerProtocol,
        code: int,
    ) -> None:
        """
        The client closed with C{code} and a reason, the server saw it, and
        the handshake L{Deferred} failed with it.
        """
        assert server.closed is not None
        self.assertEqual(server.closed[0], code)
        self.assertTrue(server.closed[1])
        closed = self.successResultOf(client.whenClosed())
        self.assertEqual(closed[0], code)
        f = self.failureResultOf(client.whenHandshakeDone(), ClosedError)
        self.assertEqual(f.value.code, code)

    def test_shortReply(self) -> None:
        """
        A 31-byte S2CInitPacket is malformed: the client closes with 4003.
        """
        client, server, pump = self.connectPair()
        d = client.whenHandshakeDone()
        server.send(TOKEN[:31])
        pump.flush()
        self.assertEqual(self.failureResultOf(d, ClosedError).value.code, 4003)
        self.assertClosedBy(client, server, CloseCode.MALFORMED_INIT)
        self.assertIsNone(client.token)

    def test_longReply(self) -> None:
        """
        A 33-byte S2CInitPacket is malformed too.
        """
        client, server, pump = self.connectPair()
        server.send(TOKEN + b"\x00")
        pump.flush()
        self.assertClosedBy(client, server, CloseCode.MALFORMED_INIT)

    def test_noReply(self) -> None:
        """
        No S2CInitPacket within the init timeout: the client closes with 4004.
        """
        client, server, pump = self.connectPair(self.clientFactory(initTimeout=5.0))
        self.clock.advance(4.9)
        pump.flush()
        self.assertIsNone(server.closed)
        self.clock.advance(0.1)
        pump.flush()
        self.assertClosedBy(client, server, CloseCode.INIT_TIMEOUT)

    def test_replyCancelsTimeout(self) -> None:
        """
        Once the reply came, the init timeout no longer applies.
        """
        client, server, pump = self.handshake()
        self.clock.advance(60)
        pump.flush()
        self.assertIsNone(server.closed)
        self.assertTrue(client.handshaken)

    def test_textFrame(self) -> None:
        """
        A text frame from the server: the client closes with 1003.
        """
        client, server, pump = self.connectPair()
        server.send(b"hello", isBinary=False)
        pump.flush()
        self.assertClosedBy(client, server, CloseCode.UNSUPPORTED_DATA)

    def test_serverClose(self) -> None:
        """
        A close by the server before the reply fails the handshake with the
        server's code and reason.
        """
        client, server, pump = self.connectPair()
        d = client.whenHandshakeDone()
        server.sendCloseFrame(code=4000, reasonUtf8=b"protocol not served")
        pump.flush()
        f = self.failureResultOf(d, ClosedError)
        self.assertEqual((f.value.code, f.value.reason), (4000, "protocol not served"))
        self.assertEqual(
            self.successResultOf(client.whenClosed()), (4000, "protocol not served")
        )

    def test_sendBeforeHandshake(self) -> None:
        """
        Sending a payload before the handshake is a programming error.
        """
        client, _, _ = self.connectPair()
        self.assertRaises(RuntimeError, client.sendPayload, b"x")

    def test_cancelHandshake(self) -> None:
        """
        Cancelling the handshake L{Deferred} closes the connection.
        """
        client, server, pump = self.connectPair()
        d = client.whenHandshakeDone()
        d.cancel()
        pump.flush()
        self.failureResultOf(d)
        assert server.closed is not None
        self.assertEqual(server.closed[0], CloseCode.NORMAL)


class PacketTests(ClientTestsMixin, SynchronousTestCase):
    """
    ProtobufPackets and acknowledgements after the handshake.
    """

    def test_payloadReceived(self) -> None:
        """
        The ack byte is stripped and payloads queue for C{nextPayload}, in
        order.
        """
        client, server, pump = self.handshake()
        waiting = client.nextPayload()
        server.send(b"\x00one")
        server.send(b"\x00two")
        pump.flush()
        self.assertEqual(self.successResultOf(waiting), b"one")
        self.assertEqual(self.successResultOf(client.nextPayload()), b"two")
        self.assertNoResult(client.nextPayload())

    def test_emptyPayloadNotQueued(self) -> None:
        """
        An ack-only packet carries no payload and is not queued.
        """
        client, server, pump = self.handshake()
        client.sendPayload(b"x")
        server.send(b"\x01")
        pump.flush()
        self.assertNoResult(client.nextPayload())
        self.assertEqual(client.unacknowledged, 0)

    def test_sendPayload(self) -> None:
        """
        A payload goes out behind an ack byte of 0 and counts as
        unacknowledged until the server acks it.
        """
        client, server, pump = self.handshake()
        client.sendPayload(b"a")
        client.sendPayload(b"b")
        pump.flush()
        self.assertEqual(server.received, [b"\x00a", b"\x00b"])
        self.assertEqual(client.unacknowledged, 2)
        server.send(b"\x02")
        pump.flush()
        self.assertEqual(client.unacknowledged, 0)

    def test_ackPiggybacks(self) -> None:
        """
        A payload sent in the same turn as a received one carries its ack,
        and no ack-only packet follows.
        """
        client, server, pump = self.handshake()
        server.send(b"\x00hello")
        pump.flush(advanceClock=False)
        self.assertEqual(self.successResultOf(client.nextPayload()), b"hello")
        client.sendPayload(b"reply")
        self.clock.advance(0)
        pump.flush()
        self.assertEqual(server.received, [b"\x01reply"])

    def test_ackOnlyAtEndOfTurn(self) -> None:
        """
        With nothing else to send, a burst of payloads gets one ack-only
        packet at the end of the reactor turn.
        """
        _client, server, pump = self.handshake(self.clientFactory(ackDelay=0))
        server.send(b"\x00one")
        server.send(b"\x00two")
        pump.flush(advanceClock=False)
        self.assertEqual(server.received, [])
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(server.received, [b"\x02"])
        self.clock.advance(0)
        pump.flush()
        self.assertEqual(server.received, [b"\x02"])

    def test_ackDelayByDefault(self) -> None:
        """
        By default a burst gets one ack-only packet 5 ms later (Part 1.3).
        """
        _client, server, pump = self.handshake()
        server.send(b"\x00one")
        server.send(b"\x00two")
        pump.flush(advanceClock=False)
        self.clock.advance(0.004)
        pump.flush(advanceClock=False)
        self.assertEqual(server.received, [])
        self.clock.advance(0.001)
        pump.flush(advanceClock=False)
        self.assertEqual(server.received, [b"\x02"])

    def test_ackCapEndsTheWait(self) -> None:
        """
        When the acks owed reach the cap during the ack delay, they go at
        the end of the turn.
        """
        _client, server, pump = self.handshake(
            self.clientFactory(ackDelay=1.0, ackCap=3)
        )
        server.send(b"\x00one")
        pump.flush(advanceClock=False)
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(server.received, [])
        server.send(b"\x00two")
        server.send(b"\x00three")
        pump.flush(advanceClock=False)
        self.clock.advance(0)
        pump.flush(advanceClock=False)
        self.assertEqual(server.received, [b"\x03"])
        self.clock.advance(1.0)
        pump.flush(advanceClock=False)
        self.assertEqual(server.received, [b"\x03"])

    def test_ackDelay(self) -> None:
        """
        The factory's ack delay postpones the ack-only packet.
        """
        _client, server, pump = self.handshake(self.clientFactory(ackDelay=0.5))
        server.send(b"\x00one")
        pump.flush()
        self.assertEqual(server.received, [])
        self.clock.advance(0.5)
        pump.flush()
        self.assertEqual(server.received, [b"\x01"])

    def test_ackCap(self) -> None:
        """
        One packet acknowledges at most the cap; the rest rides on the next.
        """
        _client, server, pump = self.handshake(self.clientFactory(ackCap=2))
        for _ in range(3):
            server.send(b"\x00p")
        pump.flush(advanceClock=False)
        self.clock.advance(0)
        pump.flush()
        self.assertEqual(server.received, [b"\x02", b"\x01"])

    def assertMalformed(self, message: bytes) -> None:
        """
        C{message} from the server makes the client close with 4006.
        """
        client, server, pump = self.handshake()
        waiting = client.nextPayload()
        with capturedLogs() as events:
            server.send(message)
            pump.flush()
        assert server.closed is not None
        self.assertEqual(server.closed[0], CloseCode.MALFORMED_PACKET)
        self.assertEqual(
            self.failureResultOf(waiting, ClosedError).value.code,
            CloseCode.MALFORMED_PACKET,
        )
        self.assertTrue(any(e.get("code") == 4006 for e in events))

    def test_overAck(self) -> None:
        """
        An ack of more packets than are outstanding: close 4006.
        """
        self.assertMalformed(b"\x01hello")

    def test_reservedAck(self) -> None:
        """
        The reserved ack 255: close 4006.
        """
        self.assertMalformed(b"\xff")

    def test_emptyMessage(self) -> None:
        """
        A message of 0 bytes: close 4006.
        """
        self.assertMalformed(b"")

    def test_closeWithAnyCode(self) -> None:
        """
        C{closeWith} sends codes that Autobahn's C{sendClose} refuses, with
        the reason, and C{whenClosed} reports our code rather than the echo.
        """
        client, server, pump = self.handshake()
        client.closeWith(CloseCode.TRY_AGAIN_LATER, "busy")
        pump.flush()
        self.assertEqual(server.closed, (1013, "busy"))
        self.assertEqual(self.successResultOf(client.whenClosed()), (1013, "busy"))
        client.sendPayload(b"ignored")
        pump.flush()
        self.assertEqual(server.received, [])

    def test_longReasonStaysUtf8(self) -> None:
        """
        A reason too long for a close frame is cut at a character boundary,
        so the server accepts the close.
        """
        client, server, pump = self.handshake()
        client.closeWith(CloseCode.NORMAL, "\u00e9" * 100)
        pump.flush()
        self.assertEqual(server.closed, (1000, "\u00e9" * 61))

    def test_closeFailsNextPayload(self) -> None:
        """
        Once closed, C{nextPayload} returns what is left and then fails.
        """
        client, server, pump = self.handshake()
        server.send(b"\x00last")
        server.sendCloseFrame(code=4009, reasonUtf8=b"kicked")
        pump.flush()
        self.assertEqual(self.successResultOf(client.nextPayload()), b"last")
        f = self.failureResultOf(client.nextPayload(), ClosedError)
        self.assertEqual((f.value.code, f.value.reason), (4009, "kicked"))
        self.assertEqual(str(f.value), "closed with 4009: kicked")

    def test_hookFailure(self) -> None:
        """
        An exception in C{payloadReceived} is logged and closes with 1011.
        """

        class Broken(AphelionClientProtocol):
            def payloadReceived(self, payload: bytes) -> None:
                """
                Fail.
                """
                raise ZeroDivisionError()

        factory = self.clientFactory()
        factory.protocol = Broken
        _client, server, pump = self.handshake(factory)
        server.send(b"\x00x")
        pump.flush()
        assert server.closed is not None
        self.assertEqual(server.closed[0], CloseCode.INTERNAL_ERROR)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class ClientSessionTests(ClientTestsMixin, SynchronousTestCase):
    """
    L{ClientSession}: several sockets sharing one token.
    """

    def setUp(self) -> None:
        super().setUp()
        self.session = ClientSession(self.clock, URL)

    def join(
        self, reply: bytes = TOKEN
    ) -> tuple[AphelionClientProtocol, ScriptedServerProtocol, IOPump]:
        """
        Open one more connection of the session and answer its init packet
        with C{reply}.
        """
        return self.handshake(self.session.buildFactory(), reply)

    def test_interface(self) -> None:
        """
        A L{ClientSession} provides L{IClientSession}, what its connections
        tell it.
        """
        self.assertTrue(verifyObject(IClientSession, self.session))

    def test_firstGetsTokenRestPresentIt(self) -> None:
        """
        The first connection presents no token; the next ones present the
        token the first got.
        """
        self.assertIsNone(self.session.buildFactory().token)
        first, _, _ = self.join()
        self.assertEqual(self.session.token, TOKEN)
        _client, server, _ = self.connectPair(self.session.buildFactory())
        self.assertEqual(server.received, [encodeInit(AphelionProtocol.GAME, 0, TOKEN)])
        self.assertEqual(self.session.connections, [first])

    def test_leastUnacked(self) -> None:
        """
        Payloads go out on the connection with the fewest unacknowledged
        packets; on a tie, the one used least recently.
        """
        a, serverA, pumpA = self.join()
        b, serverB, pumpB = self.join()
        self.assertEqual(self.session.connections, [a, b])
        sentOn = [self.session.sendPayload(p) for p in (b"1", b"2", b"3", b"4")]
        self.assertEqual(sentOn, [a, b, a, b])
        serverB.send(b"\x02")
        pumpA.flush()
        pumpB.flush()
        self.assertEqual((a.unacknowledged, b.unacknowledged), (2, 0))
        self.assertIs(self.session.sendPayload(b"5"), b)
        self.assertIs(self.session.sendPayload(b"6"), b)
        self.assertIs(self.session.sendPayload(b"7"), a)
        pumpA.flush()
        pumpB.flush()
        self.assertEqual(serverA.received, [b"\x001", b"\x003", b"\x007"])
        self.assertEqual(serverB.received, [b"\x002", b"\x004", b"\x005", b"\x006"])

    def test_mergedInArrivalOrder(self) -> None:
        """
        Payloads from every connection come out of C{nextPayload} in the
        order they arrived, and each connection acks its own.
        """
        a, serverA, pumpA = self.join()
        _b, serverB, pumpB = self.join()
        serverB.send(b"\x00first")
        pumpB.flush(advanceClock=False)
        serverA.send(b"\x00second")
        pumpA.flush(advanceClock=False)
        serverB.send(b"\x00third")
        pumpB.flush(advanceClock=False)
        got = [self.successResultOf(self.session.nextPayload()) for _ in range(3)]
        self.assertEqual(got, [b"first", b"second", b"third"])
        self.assertNoResult(a.nextPayload())
        self.clock.advance(0.005)
        pumpA.flush()
        pumpB.flush()
        self.assertEqual(serverA.received, [b"\x01"])
        self.assertEqual(serverB.received, [b"\x02"])

    def test_unexpectedNewSession(self) -> None:
        """
        A connection that presented the token and got another one closes the
        old session's connections with 4005; the session takes the new token.
        """
        calls: list[tuple[bytes, bytes]] = []

        class Recording(ClientSession):
            def newSessionStarted(self, previous: bytes, token: bytes) -> None:
                """
                Record the call.
                """
                calls.append((previous, token))

        self.session = Recording(self.clock, URL)
        _a, serverA, pumpA = self.join()
        _b, serverB, pumpB = self.join()
        c, serverC, pumpC = self.join(OTHER)
        for pump in (pumpA, pumpB, pumpC):
            pump.flush()
        self.assertEqual(serverA.closed and serverA.closed[0], 4005)
        self.assertEqual(serverB.closed and serverB.closed[0], 4005)
        self.assertIsNone(serverC.closed)
        self.assertEqual(self.session.token, OTHER)
        self.assertEqual(self.session.connections, [c])
        self.assertEqual(calls, [(TOKEN, OTHER)])

    def test_notConnected(self) -> None:
        """
        With no open connection, sending fails and C{nextPayload} fails with
        the last close.
        """
        self.assertRaises(NotConnectedError, self.session.sendPayload, b"x")
        _a, serverA, pumpA = self.join()
        waiting = self.session.nextPayload()
        serverA.sendCloseFrame(code=1001, reasonUtf8=b"shutting down")
        pumpA.flush()
        self.assertEqual(self.failureResultOf(waiting, ClosedError).value.code, 1001)
        self.assertEqual(
            self.failureResultOf(self.session.nextPayload(), ClosedError).value.code,
            1001,
        )
        self.assertRaises(NotConnectedError, self.session.sendPayload, b"x")

    def test_sessionMoved(self) -> None:
        """
        A connection closed with 4010 tells L{ClientSession.sessionMoved}
        and leaves the session; the other connections go on, and once none
        is left the waiters get the 4010.
        """
        moved: list[AphelionClientProtocol] = []

        class Recording(ClientSession):
            def sessionMoved(self, conn: AphelionClientProtocol) -> None:
                """
                Record the call.
                """
                moved.append(conn)

        self.session = Recording(self.clock, URL)
        a, serverA, pumpA = self.join()
        b, serverB, pumpB = self.join()
        waiting = self.session.nextPayload()
        serverA.sendCloseFrame(code=4010, reasonUtf8=b"session moved")
        pumpA.flush()
        self.assertEqual(moved, [a])
        self.assertTrue(self.session.moved)
        self.assertEqual(self.session.connections, [b])
        self.assertNoResult(waiting)
        serverB.sendCloseFrame(code=4010, reasonUtf8=b"session moved")
        pumpB.flush()
        self.assertEqual(self.failureResultOf(waiting, ClosedError).value.code, 4010)

    def test_close(self) -> None:
        """
        C{close} closes every connection and fires when all are closed.
        """
        _a, serverA, pumpA = self.join()
        _b, serverB, pumpB = self.join()
        d = self.session.close(CloseCode.NORMAL, "bye")
        self.assertNoResult(d)
        pumpA.flush()
        pumpB.flush()
        self.successResultOf(d)
        self.assertEqual(serverA.closed, (1000, "bye"))
        self.assertEqual(serverB.closed, (1000, "bye"))
        self.assertEqual(self.session.connections, [])


class BadPingServerProtocol(ScriptedServerProtocol):
    """
    Answers the init packet with a token and a PingRequest with bytes that
    are no PingResponse.
    """

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Answer by position.
        """
        super().onMessage(payload, isBinary)
        if len(self.received) == 1:
            self.send(TOKEN)
        else:
            self.send(b"\x01\xff")


class PingRecordingServerProtocol(AphelionServerProtocol):
    """
    Records the client time of every PingRequest.
    """

    seen: list[int] = []

    def pingReceived(self, clientTime: int) -> None:
        """
        Record the client time, then answer.
        """
        self.seen.append(clientTime)
        super().pingReceived(clientTime)


class ConnectTests(SynchronousTestCase):
    """
    L{connect}, L{ping} and L{ClientSession.connect} over a memory reactor,
    against the real L{AphelionServerFactory}.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        loop = replace_loop(self.reactor)
        loop.__enter__()
        self.addCleanup(loop.__exit__, None, None, None)
        service: Any = build(Config(listen=()), self.reactor)
        self.factory: AphelionServerFactory = service.factory
        self.registry = self.factory.registry
        self.reactor.listenTCP(4321, self.factory)
        self.completer = ConnectionCompleter(self.reactor)

    def pumpAll(self) -> None:
        """
        Complete any pending connection and move all data.
        """
        while (pump := self.completer.succeedOnce()) is not None:
            self.pumps.append(pump)
        for _ in range(10):
            for pump in self.pumps:
                pump.flush()

    pumps: list[IOPump]

    def test_connect(self) -> None:
        """
        L{connect} fires with the protocol after the init handshake, and a
        second connection presenting the token joins the session.
        """
        self.pumps = []
        d = connect(self.reactor, URL)
        self.assertNoResult(d)
        self.pumpAll()
        client = self.successResultOf(d)
        self.assertTrue(client.handshaken)
        assert client.token is not None
        d2 = connect(self.reactor, URL, AphelionProtocol.PING, token=client.token)
        self.pumpAll()
        other = self.successResultOf(d2)
        self.assertTrue(other.resumed)
        session = self.successResultOf(self.registry.lookup(client.token))
        assert session is not None
        self.assertEqual(len(session.connections), 2)

    def test_connectRefused(self) -> None:
        """
        A refused connection fails L{connect} with the connection error.
        """
        d = connect(self.reactor, URL)
        self.completer.failOnce(Failure(ConnectionRefusedError()))
        self.failureResultOf(d, ConnectionRefusedError)

    def test_connectClosed(self) -> None:
        """
        A close during the handshake fails L{connect} with L{ClosedError}.
        """
        self.pumps = []
        d = connect(self.reactor, URL, version=2)
        self.pumpAll()
        f = self.failureResultOf(d, ClosedError)
        self.assertEqual(f.value.code, CloseCode.VERSION_TOO_NEW)

    def test_ping(self) -> None:
        """
        L{ping} sends a PingRequest and fires with the PingResponse's counts,
        the server time and the round trip by the reactor's clock, after
        closing with 1000.
        """
        self.pumps = []
        self.reactor.advance(1_700_000_000)
        d = ping(self.reactor, URL)
        self.pumpAll()
        result = self.successResultOf(d)
        self.assertIsInstance(result, PingResult)
        self.assertEqual((result.players, result.playing), (0, 0))
        self.assertEqual(result.serverTime, 1_700_000_000 * 1_000_000_000)
        self.assertGreaterEqual(result.rtt, 0)
        self.assertEqual(self.factory.connections, set())

    def test_pingRequestNeverEmpty(self) -> None:
        """
        At time 0 the client time would serialize to an empty payload, which
        is no PingRequest; the client sends 1 instead.
        """
        self.pumps = []
        self.factory.protocol = PingRecordingServerProtocol
        d = ping(self.reactor, URL)
        self.pumpAll()
        self.successResultOf(d)
        self.assertEqual(PingRecordingServerProtocol.seen, [1])

    def test_pingMalformedResponse(self) -> None:
        """
        A reply that is no PingResponse: the client closes with 4006 and
        L{ping} fails with L{ClosedError}.
        """
        self.pumps = []
        factory = WebSocketServerFactory(URL)
        factory.protocol = BadPingServerProtocol
        factory.setProtocolOptions(failByDrop=False)
        self.reactor.tcpServers.clear()
        self.reactor.listenTCP(4321, factory)
        d = ping(self.reactor, URL)
        self.pumpAll()
        f = self.failureResultOf(d, ClosedError)
        self.assertEqual(f.value.code, CloseCode.MALFORMED_PACKET)
        [server] = [p.server for p in self.pumps]
        self.assertEqual(server.closed, (4006, "malformed PingResponse"))

    def test_clientSessionConnect(self) -> None:
        """
        L{ClientSession.open} opens connections one after the other: the
        first makes the session and the others join it.
        """
        self.pumps = []
        session = ClientSession(self.reactor, URL)
        d = session.open(3)
        for _ in range(5):
            self.pumpAll()
        self.assertIs(self.successResultOf(d), session)
        assert session.token is not None
        self.assertEqual(len(session.connections), 3)
        self.assertEqual([c.token for c in session.connections], [session.token] * 3)
        self.assertEqual(len(self.registry), 1)

    def test_endpointForURL(self) -> None:
        """
        Only C{ws://} and C{wss://} URLs make endpoints.
        """
        self.assertRaises(ValueError, endpointForURL, self.reactor, "http://x/")
        self.assertRaises(ValueError, endpointForURL, self.reactor, "ws:///path")
