# -*- test-case-name: tests.test_fastwrite -*-
"""
Tests of L{aphelion.fastwrite}: sending at once keeps Twisted's order,
back-pressure and error handling; L{bufferedBytes} counts what a real
transport holds unsent, and fails loudly when Twisted moves what it reads.
"""

from __future__ import annotations

import os
from typing import Any

import twisted.test
from twisted.internet import reactor as _reactor
from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from aphelion.fastwrite import binaryFrame, bufferedBytes, writeNow

reactor: Any = _reactor
PEM = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")
TIMEOUT = 30.0

# What bufferedBytes reads, by class: an upgrade of Twisted that moves one
# breaks the guard tests below, by name.
_FD_ATTRIBUTES = ("dataBuffer", "offset", "_tempDataLen")
_TLS_ATTRIBUTES = ("_appSendBuffer",)


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


class BufferedBytesTests(SynchronousTestCase):
    """
    L{bufferedBytes} on transports it cannot measure.
    """

    def test_unknown(self) -> None:
        """
        A transport that is not a Twisted file descriptor or TLS layer (a
        L{StringTransport}, anything else) is unknown: L{None}.
        """
        self.assertIsNone(bufferedBytes(StringTransport()))
        self.assertIsNone(bufferedBytes(object()))
        self.assertIsNone(bufferedBytes(None))

    def test_missingAttribute(self) -> None:
        """
        A file descriptor without the attributes it reads is unknown too,
        rather than an exception in the middle of a write.
        """
        transport = FileDescriptor()
        del transport._tempDataLen
        self.assertIsNone(bufferedBytes(transport))


class Holder(Protocol):
    """
    One end of a loopback connection that reads nothing until told to, and
    reports its connection and its end.

    :ivar made: fires with this protocol once connected.
    :ivar lost: fires once the connection is gone.
    :ivar received: the number of bytes read.
    """

    def __init__(self, read: bool = False) -> None:
        self.made: Deferred[Holder] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self.received = 0
        self._read = read

    def connectionMade(self) -> None:
        """
        Stop reading, unless told to read; report the connection.
        """
        if not self._read:
            self.transport.pauseProducing()  # type: ignore[union-attr]
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        """
        Count the bytes.
        """
        self.received += len(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Report the end.
        """
        self.lost.callback(None)


class BufferedBytesGuardTests(TestCase):
    """
    L{bufferedBytes} reads private attributes of Twisted's transports. These
    tests measure real loopback connections whose peer does not read, and
    name the attribute that moved if a Twisted upgrade breaks the function.
    """

    def assertHasAttributes(
        self, obj: object, where: str, names: tuple[str, ...]
    ) -> None:
        """
        Fail, naming the attribute, unless C{obj} has every one of C{names}.
        """
        for name in names:
            if not hasattr(obj, name):
                self.fail(
                    f"{where}.{name} is gone (Twisted upgrade?): "
                    "aphelion.fastwrite.bufferedBytes reads it to measure "
                    "the bytes a transport holds unsent"
                )

    async def pair(
        self, listening: Factory, accepted: Deferred[Holder]
    ) -> tuple[Holder, Holder]:
        """
        Listen with C{listening}, whose server-side L{Holder} (perhaps under a
        TLS layer) fires C{accepted}, and connect a plain TCP L{Holder} to it
        that reads nothing; both are aborted on cleanup.

        :return: the server's protocol and the client.
        """
        port = reactor.listenTCP(0, listening, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Holder()
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client
        ).addTimeout(TIMEOUT, reactor)
        server = await accepted.addTimeout(TIMEOUT, reactor)
        self.addCleanup(self.abort, server)
        self.addCleanup(self.abort, client)
        return server, client

    async def abort(self, holder: Holder) -> None:
        """
        Abort a connection, and wait for its end.
        """
        if not holder.lost.called:
            holder.transport.abortConnection()  # type: ignore[union-attr]
        await holder.lost.addTimeout(TIMEOUT, reactor)

    def serverFactory(self) -> tuple[Factory, Deferred[Holder]]:
        """
        A factory of one server-side L{Holder} that reads, and a L{Deferred}
        that fires with it once connected.
        """
        accepted: Deferred[Holder] = Deferred()

        def build() -> Holder:
            holder = Holder(read=True)
            holder.made.chainDeferred(accepted)
            return holder

        return Factory.forProtocol(build), accepted

    async def test_tcp(self) -> None:
        """
        On a TCP connection whose peer does not read, the count is exactly
        what was written and not yet taken by the kernel: it grows by each
        write, settles once the socket buffers are full, and is 0 once the
        peer has read everything.
        """
        server, client = await self.pair(*self.serverFactory())
        transport = server.transport
        self.assertIsInstance(
            transport,
            FileDescriptor,
            "twisted.internet.tcp.Server is no longer a "
            "twisted.internet.abstract.FileDescriptor",
        )
        self.assertIs(type(transport), tcp.Server)
        self.assertHasAttributes(
            transport, "twisted.internet.abstract.FileDescriptor", _FD_ATTRIBUTES
        )
        self.assertEqual(bufferedBytes(transport), 0)
        chunk = b"x" * (1024 * 1024)
        total = 0
        for i in range(32):
            transport.write(chunk)  # type: ignore[union-attr]
            total += len(chunk)
            # A write only queues; the reactor sends later.
            self.assertEqual(bufferedBytes(transport), total, f"after write {i}")
        # Let the reactor send what the kernel takes, until it takes no more.
        last, stable = -1, 0
        while stable < 5:
            await deferLater(reactor, 0.02)
            now = bufferedBytes(transport)
            assert now is not None
            stable = stable + 1 if now == last else 0
            last = now
        self.assertGreater(last, 0, "the kernel took 32 MiB")
        self.assertLess(last, total, "the reactor sent nothing")
        transport.write(b"y" * 1000)  # type: ignore[union-attr]
        self.assertEqual(bufferedBytes(transport), last + 1000)
        # Twisted paused nothing here, but its own figure agrees.
        self.assertTrue(transport._isSendBufferFull())  # type: ignore[union-attr]
        client.transport.resumeProducing()  # type: ignore[union-attr]
        while client.received < total + 1000:
            await deferLater(reactor, 0.01)
        self.assertEqual(bufferedBytes(transport), 0)

    async def test_tls(self) -> None:
        """
        Under TLS, cleartext written before the handshake is done waits in
        the TLS layer and is counted: on a TCP connection that runs TLS
        itself (C{startTLS}) and on a L{TLSMemoryBIOProtocol} over TCP (as
        C{listenSSL} and the C{ssl:} endpoints make). The client here never
        starts the handshake.
        """
        with open(PEM, "rb") as f:
            options = PrivateCertificate.loadPEM(f.read()).options()
        for how in ("startTLS", "TLSMemoryBIOFactory"):
            factory, accepted = self.serverFactory()
            if how == "startTLS":
                server, _client = await self.pair(factory, accepted)
                transport: Any = server.transport
                transport.startTLS(options)
                self.assertTrue(transport.TLS)
                tls = transport.protocol
            else:
                wrapper = TLSMemoryBIOFactory(options, False, factory)
                server, _client = await self.pair(wrapper, accepted)
                transport = server.transport
                tls = transport
            self.assertIsInstance(
                tls,
                TLSMemoryBIOProtocol,
                f"{how}: the TLS layer is no longer a TLSMemoryBIOProtocol",
            )
            self.assertHasAttributes(
                tls, "twisted.protocols.tls.TLSMemoryBIOProtocol", _TLS_ATTRIBUTES
            )
            before = bufferedBytes(transport)
            self.assertIsNotNone(before, how)
            transport.write(b"z" * 100000)
            self.assertEqual(bufferedBytes(transport), before + 100000, how)
