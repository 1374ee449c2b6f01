# -*- test-case-name: tests.test_fastwrite -*-
"""
Tests of L{aphelion.fastwrite}: sending at once keeps Twisted's order,
back-pressure and error handling; L{bufferedBytes} counts what a real
transport holds unsent. The guard tests (C{*GuardTests}) fail loudly, naming
the Twisted or Autobahn internal that moved, when an upgrade breaks what
L{bufferedBytes}, L{writeNow} and L{FastSendMixin} read.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections import deque
from typing import Any

import twisted.test
from autobahn.exception import PayloadExceededError
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import TrafficStats, WebSocketProtocol
from twisted.internet import reactor as _reactor
from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from txaio.testutil import replace_loop

from aphelion.fastwrite import (
    NO_QUEUE,
    FastSendMixin,
    binaryFrame,
    bufferedBytes,
    setNoDelay,
    writeNow,
)

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


async def abortHolder(holder: Holder) -> None:
    """
    Abort the connection of C{holder}, and wait for its end.
    """
    if not holder.lost.called:
        holder.transport.abortConnection()  # type: ignore[union-attr]
    await holder.lost.addTimeout(TIMEOUT, reactor)


def readingServerFactory() -> tuple[Factory, Deferred[Holder]]:
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
        await abortHolder(holder)

    def serverFactory(self) -> tuple[Factory, Deferred[Holder]]:
        """
        A factory of one server-side L{Holder} that reads, and a L{Deferred}
        that fires with it once connected.
        """
        return readingServerFactory()

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


class SetNoDelayTests(SynchronousTestCase):
    """
    L{setNoDelay} asks any transport that can for C{TCP_NODELAY}.
    """

    def test_notTCP(self) -> None:
        """
        A transport without C{setTcpNoDelay} is left alone: L{False}.
        """
        self.assertFalse(setNoDelay(StringTransport()))
        self.assertFalse(setNoDelay(None))

    def test_set(self) -> None:
        """
        A transport with C{setTcpNoDelay} is asked to set it: L{True}.
        """
        calls: list[bool] = []

        class Fake:
            def setTcpNoDelay(self, enabled: bool) -> None:
                calls.append(enabled)

        self.assertTrue(setNoDelay(Fake()))
        self.assertEqual(calls, [True])

    def test_refused(self) -> None:
        """
        A transport that refuses (a closed socket, a transport that is not
        TCP underneath) is no error: L{False}.
        """

        class Refusing:
            def setTcpNoDelay(self, enabled: bool) -> None:
                raise OSError("closed")

        self.assertFalse(setNoDelay(Refusing()))


# What writeNow reads of a plain TCP transport, and the type each must have.
_WRITE_NOW_ATTRIBUTES: dict[str, type | tuple[type, ...]] = {
    "_tempDataLen": int,
    "dataBuffer": (bytes, bytearray, memoryview),
    "connected": int,
    "disconnecting": int,
    "_writeDisconnected": int,
    "TLS": int,
    "socket": socket.socket,
}


class WriteNowGuardTests(TestCase):
    """
    L{writeNow} reads private attributes of Twisted's C{tcp.Server} and
    C{tcp.Client} and writes to their socket itself. These tests look at
    both ends of a real loopback connection and name what moved if a
    Twisted upgrade breaks those assumptions.
    """

    def assertInternals(self, transport: Any, where: str) -> None:
        """
        Fail, naming the attribute, unless C{transport} has every attribute
        L{writeNow} reads, with the type it expects.
        """
        for name, kind in _WRITE_NOW_ATTRIBUTES.items():
            if not hasattr(transport, name):
                self.fail(
                    f"{where}.{name} is gone (Twisted upgrade?): "
                    "aphelion.fastwrite.writeNow reads it to send at once"
                )
            value = getattr(transport, name)
            if not isinstance(value, kind):
                self.fail(
                    f"{where}.{name} is a {type(value).__name__} now, not "
                    f"{kind} (Twisted upgrade?): aphelion.fastwrite.writeNow "
                    "reads it to send at once"
                )

    def assertIdle(self, transport: Any, where: str, what: str) -> None:
        """
        Fail unless C{transport} holds nothing unsent, as L{writeNow} sees it.
        """
        if transport._tempDataLen or transport.dataBuffer:
            self.fail(f"{where}: {what}, but _tempDataLen or dataBuffer is set")

    async def ends(self) -> list[tuple[Any, Holder, str]]:
        """
        Both ends of a loopback connection whose peers read: the server's
        transport, the client's, each with the peer that reads it and its
        class's name. Both are aborted on cleanup.
        """
        factory, accepted = readingServerFactory()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Holder(read=True)
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client
        ).addTimeout(TIMEOUT, reactor)
        server = await accepted.addTimeout(TIMEOUT, reactor)
        for holder in (server, client):
            self.addCleanup(abortHolder, holder)
        return [
            (server.transport, client, "twisted.internet.tcp.Server"),
            (client.transport, server, "twisted.internet.tcp.Client"),
        ]

    async def test_plainTCP(self) -> None:
        """
        On both ends the transport is exactly C{tcp.Server} or C{tcp.Client}
        (what L{writeNow} tests for), has the attributes it reads with their
        types, and a Twisted C{write} shows in C{_tempDataLen} or
        C{dataBuffer} until the reactor sent it: else L{writeNow} could pass
        bytes that Twisted still holds.
        """
        for transport, peer, where in await self.ends():
            self.assertIn(
                type(transport),
                (tcp.Server, tcp.Client),
                f"{where} is a {type(transport)} now: aphelion.fastwrite."
                "writeNow only sends at once on these two classes",
            )
            self.assertInternals(transport, where)
            self.assertTrue(transport.connected, f"{where}.connected")
            self.assertFalse(transport.disconnecting, f"{where}.disconnecting")
            self.assertFalse(
                transport._writeDisconnected, f"{where}._writeDisconnected"
            )
            self.assertFalse(transport.TLS, f"{where}.TLS")
            self.assertIdle(transport, where, "nothing was written")
            transport.write(b"queued")
            if not (transport._tempDataLen or transport.dataBuffer):
                self.fail(
                    f"{where}.write no longer queues in _tempDataLen or "
                    "dataBuffer (Twisted upgrade?): aphelion.fastwrite."
                    "writeNow would send past bytes Twisted holds"
                )
            while peer.received < len(b"queued"):
                await deferLater(reactor, 0.01)
            self.assertIdle(transport, where, "the reactor sent everything")
            writeNow(transport, b"at once")
            self.assertIdle(transport, where, "writeNow sent on the socket")
            while peer.received < len(b"queuedat once"):
                await deferLater(reactor, 0.01)

    async def test_closing(self) -> None:
        """
        C{loseConnection} sets C{disconnecting}, and C{loseWriteConnection}
        sets C{_writeDisconnected} once the reactor has shut the socket
        down: the flags with which L{writeNow} leaves a closing connection to
        Twisted. (Each on a connection of its own.)
        """
        (server, _, where), _ = await self.ends()
        server.loseConnection()
        self.assertTrue(
            server.disconnecting,
            f"{where}.loseConnection no longer sets disconnecting "
            "(Twisted upgrade?): aphelion.fastwrite.writeNow reads it",
        )
        _, (client, _, where) = await self.ends()
        client.loseWriteConnection()
        # The reactor shuts the socket down on its next write turn.
        for _ in range(100):
            if client._writeDisconnected:
                break
            await deferLater(reactor, 0.01)
        self.assertTrue(
            client._writeDisconnected,
            f"{where}.loseWriteConnection no longer sets _writeDisconnected "
            "(Twisted upgrade?): aphelion.fastwrite.writeNow reads it",
        )

    async def test_startTLS(self) -> None:
        """
        C{startTLS} sets C{TLS}, with which L{writeNow} leaves a connection
        that encrypts to Twisted.
        """
        with open(PEM, "rb") as f:
            options = PrivateCertificate.loadPEM(f.read()).options()
        (server, _, where), _client = await self.ends()
        server.startTLS(options)
        self.assertTrue(
            server.TLS,
            f"{where}.startTLS no longer sets TLS (Twisted upgrade?): "
            "aphelion.fastwrite.writeNow would send cleartext",
        )

    async def test_noDelay(self) -> None:
        """
        L{setNoDelay} sets C{TCP_NODELAY} on both ends of a real connection.
        """
        for transport, _, where in await self.ends():
            self.assertTrue(setNoDelay(transport), where)
            self.assertTrue(transport.getTcpNoDelay(), where)


# What FastSendMixin reads of an Autobahn protocol, and the type each must
# have; "factory.isServer" is read on the factory.
_FAST_SEND_ATTRIBUTES: dict[str, type | tuple[type, ...]] = {
    "send_queue": deque,
    "logOctets": bool,
    "state": int,
    "trafficStats": TrafficStats,
    "maskServerFrames": bool,
    "autoFragmentSize": int,
    "maxMessagePayloadSize": int,
    "factory.isServer": bool,
}
_TRAFFIC_COUNTERS = (
    "outgoingOctetsWireLevel",
    "outgoingWebSocketMessages",
    "outgoingOctetsAppLevel",
    "outgoingOctetsWebSocketLevel",
)
_UPGRADE = (
    b"GET /aphelion HTTP/1.1\r\n"
    b"Host: 127.0.0.1:9\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
_PAYLOAD_SIZES = (0, 1, 125, 126, 127, 65535, 65536)


class FastServer(FastSendMixin, WebSocketServerProtocol):  # type: ignore[misc]
    """
    A bare Autobahn server protocol with L{FastSendMixin}, as aphelion's.
    """


class PlainServer(WebSocketServerProtocol):  # type: ignore[misc]
    """
    The same without it: Autobahn's own C{sendData} and C{sendMessage}.
    """


class FastSendGuardTests(SynchronousTestCase):
    """
    L{FastSendMixin} reads private attributes of Autobahn's protocol and
    frames binary messages itself. These tests open real Autobahn server
    protocols with aphelion's options, and name what moved if an Autobahn
    upgrade breaks those assumptions.
    """

    def setUp(self) -> None:
        loop = replace_loop(Clock())
        loop.__enter__()
        self.addCleanup(loop.__exit__, None, None, None)

    def opened(
        self, protocolClass: type[WebSocketServerProtocol]
    ) -> tuple[Any, StringTransport]:
        """
        A server protocol of C{protocolClass} whose opening handshake is done,
        with aphelion's protocol options, and its transport, emptied.
        """
        factory = WebSocketServerFactory("ws://127.0.0.1:9/aphelion")
        factory.protocol = protocolClass
        factory.setProtocolOptions(
            failByDrop=False,
            maxMessagePayloadSize=65536,
            maxFramePayloadSize=65536,
            autoFragmentSize=0,
            utf8validateIncoming=False,
            webStatus=False,
        )
        protocol: Any = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(_UPGRADE)
        self.assertEqual(
            protocol.state,
            WebSocketProtocol.STATE_OPEN,
            "the opening handshake did not complete",
        )
        self.addCleanup(protocol.connectionLost, Failure(ConnectionDone()))
        transport.clear()
        return protocol, transport

    def test_attributes(self) -> None:
        """
        An open Autobahn server protocol has every attribute
        L{FastSendMixin} reads, with the type and, under aphelion's options,
        the value with which it frames binary messages itself.
        """
        protocol, _ = self.opened(FastServer)
        for name, kind in _FAST_SEND_ATTRIBUTES.items():
            owner: Any = protocol
            where = "autobahn.websocket.protocol.WebSocketServerProtocol"
            if name.startswith("factory."):
                owner, name = protocol.factory, name.split(".", 1)[1]
                where = "autobahn.websocket.protocol.WebSocketServerFactory"
            if not hasattr(owner, name):
                self.fail(
                    f"{where}.{name} is gone (Autobahn upgrade?): "
                    "aphelion.fastwrite.FastSendMixin reads it"
                )
            value = getattr(owner, name)
            if not isinstance(value, kind):
                self.fail(
                    f"{where}.{name} is a {type(value).__name__} now, not "
                    f"{kind} (Autobahn upgrade?): aphelion.fastwrite."
                    "FastSendMixin reads it"
                )
        for counter in _TRAFFIC_COUNTERS:
            self.assertIsInstance(
                getattr(protocol.trafficStats, counter, None),
                int,
                f"autobahn.websocket.protocol.TrafficStats.{counter} is gone "
                "(Autobahn upgrade?): aphelion.fastwrite.FastSendMixin counts it",
            )
        self.assertTrue(
            hasattr(protocol, "_perMessageCompress"),
            "autobahn.websocket.protocol.WebSocketProtocol._perMessageCompress "
            "is gone (Autobahn upgrade?): aphelion.fastwrite.FastSendMixin "
            "reads it to know that frames are not compressed",
        )
        self.assertIsNone(protocol._perMessageCompress)
        self.assertEqual(protocol.send_queue, deque())
        self.assertTrue(protocol.factory.isServer)
        self.assertFalse(protocol.maskServerFrames)
        self.assertFalse(protocol.logOctets)

    def test_sendDataSignature(self) -> None:
        """
        Autobahn's C{sendData} still takes C{(data, sync, chopsize)}, the
        signature L{FastSendMixin.sendData} overrides.
        """
        parameters = list(inspect.signature(WebSocketProtocol.sendData).parameters)
        self.assertEqual(
            parameters,
            ["self", "data", "sync", "chopsize"],
            "autobahn.websocket.protocol.WebSocketProtocol.sendData changed "
            "its signature (Autobahn upgrade?): aphelion.fastwrite."
            "FastSendMixin.sendData overrides it",
        )

    def test_releaseHandshake(self) -> None:
        """
        L{FastSendMixin.releaseHandshake} lets go of the opening handshake's
        records and the empty send queue; a chopped send afterwards gets a
        real queue again and still reaches the wire, in order.
        """
        fast, transport = self.opened(FastServer)
        fast.releaseHandshake()
        self.assertIsNone(fast.http_request_data)
        self.assertIsNone(fast.http_headers)
        self.assertIs(fast.send_queue, NO_QUEUE)
        fast.sendBinary(b"one")
        fast.sendData(b"two", chopsize=1)
        self.assertIsInstance(fast.send_queue, deque)
        self.assertEqual(transport.value(), binaryFrame(b"one") + b"t")

    def test_framesAsAutobahn(self) -> None:
        """
        For payloads of every length class, L{FastSendMixin.sendBinary}
        takes its own path and writes byte for byte what Autobahn's
        C{sendMessage} writes, and counts the same traffic.
        """
        fast, fastTransport = self.opened(FastServer)
        plain, plainTransport = self.opened(PlainServer)
        for n in _PAYLOAD_SIZES:
            payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
            fast.sendBinary(payload)
            plain.sendMessage(payload, True)
            self.assertTrue(
                fast._plainFrames,
                "FastSendMixin.sendBinary took Autobahn's path under aphelion's "
                "options: one of the attributes it reads changed meaning",
            )
            self.assertEqual(
                fastTransport.value(),
                plainTransport.value(),
                f"FastSendMixin.sendBinary framed {n} bytes unlike Autobahn's "
                "sendMessage (Autobahn upgrade?)",
            )
            fastTransport.clear()
            plainTransport.clear()
        for counter in _TRAFFIC_COUNTERS:
            self.assertEqual(
                getattr(fast.trafficStats, counter),
                getattr(plain.trafficStats, counter),
                f"TrafficStats.{counter} counts unlike Autobahn's sendMessage",
            )

    def test_tooBig(self) -> None:
        """
        A payload over C{maxMessagePayloadSize} goes to Autobahn's
        C{sendMessage}, which refuses it as it refuses it without the mixin.
        """
        fast, fastTransport = self.opened(FastServer)
        plain, _ = self.opened(PlainServer)
        payload = b"x" * 65537
        self.assertRaises(PayloadExceededError, plain.sendMessage, payload, True)
        self.assertRaises(PayloadExceededError, fast.sendBinary, payload)
        self.assertEqual(fastTransport.value(), b"")
