# -*- test-case-name: tests.test_fastwrite -*-
"""
Tests of L{aphelion.fastwrite}: sending at once keeps Twisted's order,
back-pressure and error handling.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from aphelion.fastwrite import binaryFrame, writeNow

reactor: Any = _reactor


class Collector(Protocol):
    """
    Collects what it receives until the connection closes.
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        """
        Keep the bytes.
        """
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        """
        Fire L{done} with everything.
        """
        self.done.callback(bytes(self.data))


class WriteNowTests(SynchronousTestCase):
    """
    L{writeNow} on transports that are not plain TCP.
    """

    def test_otherTransports(self) -> None:
        """
        A transport that is not plain TCP gets an ordinary C{write}.
        """
        transport = StringTransport()
        writeNow(transport, b"abc")
        writeNow(transport, b"def")
        self.assertEqual(transport.value(), b"abcdef")


class RealSocketTests(TestCase):
    """
    L{writeNow} on a real loopback connection.
    """

    async def connected(self) -> tuple[Any, Collector]:
        """
        A server-side transport and the client collecting what it sends.
        """
        accepted: Deferred[Protocol] = Deferred()

        class Accepted(Protocol):
            def connectionMade(self) -> None:
                accepted.callback(self)

        port = reactor.listenTCP(
            0, Factory.forProtocol(Accepted), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        collector = Collector()
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), collector
        )
        server = await accepted
        return server.transport, collector

    async def test_orderUnderBackPressure(self) -> None:
        """
        Far more than the socket buffers hold, written in small and large
        pieces mixed with plain C{write}s, arrives complete and in order.
        """
        transport, collector = await self.connected()
        chunks = [bytes([i % 251]) * (1 + (i * 7919) % 30000) for i in range(400)]
        for i, chunk in enumerate(chunks):
            if i % 5 == 0:
                transport.write(chunk)
            else:
                writeNow(transport, chunk)
        transport.loseConnection()
        received = await collector.done.addTimeout(30, reactor)
        self.assertEqual(received, b"".join(chunks))

    async def test_afterClose(self) -> None:
        """
        Writing to a connection that is closing goes through Twisted's
        C{write} (which still sends what comes before the close completes),
        and writing to a closed one raises nothing.
        """
        transport, collector = await self.connected()
        writeNow(transport, b"first")
        transport.loseConnection()
        writeNow(transport, b"late")
        received = await collector.done.addTimeout(30, reactor)
        self.assertEqual(received, b"firstlate")
        writeNow(transport, b"closed")


class BinaryFrameTests(SynchronousTestCase):
    """
    L{binaryFrame} builds what Autobahn's C{sendMessage} sends for a server.
    """

    def test_asAutobahn(self) -> None:
        """
        For payloads of every length class, the frame is byte for byte
        Autobahn's own.
        """
        from autobahn.websocket.protocol import WebSocketServerProtocol

        class Recorder(WebSocketServerProtocol):
            def __init__(self) -> None:
                self.sent: list[bytes] = []
                self.state = WebSocketServerProtocol.STATE_OPEN
                self.factory = type("F", (), {"isServer": True})()
                self._perMessageCompress = None
                self.maxMessagePayloadSize = 0
                self.autoFragmentSize = 0
                self.maskServerFrames = False
                self.trackedTimings = None
                from autobahn.websocket.protocol import TrafficStats

                self.trafficStats = TrafficStats()
                self.logFrames = False
                self.logOctets = False
                self.send_queue: list[Any] = []

            def sendData(
                self, data: bytes, sync: bool = False, chopsize: int | None = None
            ) -> None:
                self.sent.append(data)

        for n in (0, 1, 125, 126, 127, 65535, 65536, 70000):
            payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
            recorder = Recorder()
            recorder.sendMessage(payload, isBinary=True)
            self.assertEqual(binaryFrame(payload), b"".join(recorder.sent), n)
