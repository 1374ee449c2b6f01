# -*- test-case-name: tests.test_web -*-
"""
Tests of L{aphelion.web}: raw HTTP bytes fed to channels of the players'
site over in-memory transports, with a L{MemoryReactorClock} for every timer.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import txaio
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import _producer_helpers
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.protocol import connectionDone
from twisted.internet.task import Cooperator
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from txaio.testutil import replace_loop

from aphelion import __version__
from aphelion.config import Config
from aphelion.web import (
    FILE_RESERVE,
    PAGES,
    Admission,
    AphelionSite,
    WebSocketEndpoint,
    filesNeeded,
    makeSite,
    raiseFileLimit,
)

txaio.use_twisted()

CLIENT = "203.0.113.5"
PROXY = "192.0.2.1"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def upgradeRequest(path: bytes = b"/aphelion", extra: bytes = b"") -> bytes:
    """
    The head of a WebSocket upgrade request for C{path}.
    """
    return (
        b"GET " + path + b" HTTP/1.1\r\n"
        b"Host: localhost\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )


class WiredProtocol(WebSocketServerProtocol):
    """
    A WebSocket server protocol that calls its admission as
    C{AphelionServerProtocol} is to: C{forwardedFrom} in C{onConnect} when
    the proxy is trusted, C{opened} in C{onOpen}, C{closed} in
    C{connectionLost}.
    """

    admission: Admission
    trustForwardedFor = False

    def onConnect(self, request: Any) -> None:
        """
        Count the connection under the forwarded address, or refuse it.
        """
        if self.trustForwardedFor:
            forwarded = request.headers.get("x-forwarded-for", "")
            address = forwarded.split(",")[-1].strip() or request.peer
            if not self.admission.forwardedFrom(address):
                raise ConnectionDeny(503, "too many connections")

    def onOpen(self) -> None:
        """
        The upgrade completed.
        """
        super().onOpen()
        self.admission.opened()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The connection is gone.
        """
        super().connectionLost(reason)
        self.admission.closed()


class SiteTestsMixin:
    """
    Builds a players' site from C{config} on a L{MemoryReactorClock} and
    connects in-memory transports to it.
    """

    config = Config()
    protocolClass: type[WiredProtocol] = WiredProtocol

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        loop = replace_loop(self.clock)
        loop.__enter__()
        self.addCleanup(loop.__exit__, None, None, None)  # type: ignore[attr-defined]
        self.factory = WebSocketServerFactory(reactor=self.clock)
        self.factory.protocol = self.protocolClass
        self.protocolClass.trustForwardedFor = self.config.trustForwardedFor
        self.factory.setProtocolOptions(failByDrop=False)
        self.site = makeSite(self.factory, self.config, self.clock)

    def connect(
        self, host: str = CLIENT, port: int = 40000
    ) -> tuple[Any, StringTransport]:
        """
        Accept a connection from C{host} as a listening port does.

        :return: the protocol the site built and its transport.
        """
        address = IPv4Address("TCP", host, port)
        protocol = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def close(self, protocol: Any, transport: StringTransport) -> None:
        """
        Let the connection end, as the reactor does after a close.
        """
        transport.disconnecting = True
        protocol.connectionLost(Failure(Exception("closed")))

    def upgrade(self, host: str = CLIENT, extra: bytes = b"") -> tuple[Any, Any]:
        """
        Connect from C{host} and complete a WebSocket upgrade.

        :return: the channel and its transport.
        """
        channel, transport = self.connect(host)
        channel.dataReceived(upgradeRequest(extra=extra))
        self.assertTrue(  # type: ignore[attr-defined]
            transport.value().startswith(b"HTTP/1.1 101 "), transport.value()
        )
        return channel, transport


class DeadlineTests(SiteTestsMixin, SynchronousTestCase):
    """
    The upgrade deadline: total time from accept, not per byte.
    """

    config = Config(upgradeTimeout=10.0)

    def test_slowRequestDropped(self) -> None:
        """
        A request sent one byte a second, each byte in time for an idle
        timer, is aborted 10 s after accept all the same.
        """
        channel, transport = self.connect()
        request = upgradeRequest()
        for i in range(9):
            channel.dataReceived(request[i : i + 1])
            self.clock.advance(1)
        channel.dataReceived(request[9:10])
        self.clock.advance(0.9)
        self.assertFalse(transport.disconnected)
        with capturedLogs() as events:
            self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        self.assertEqual(transport.value(), b"")
        self.assertIn("--upgrade-timeout", events[0]["log_format"])

    def test_silentDropped(self) -> None:
        """
        A connection that sends nothing is aborted at the deadline.
        """
        _, transport = self.connect()
        self.clock.advance(10)
        self.assertTrue(transport.disconnected)

    def test_upgradeCancelsDeadline(self) -> None:
        """
        A completed upgrade (C{opened}) cancels the deadline: the
        connection outlives it.
        """
        channel, transport = self.upgrade()
        self.assertTrue(channel.admission.isOpen)
        self.clock.advance(60)
        self.assertFalse(transport.disconnected)

    def test_openWithoutOpenedKept(self) -> None:
        """
        A protocol that never calls C{opened} but is open when the deadline
        passes keeps its connection.
        """
        self.factory.protocol = WebSocketServerProtocol
        channel, transport = self.upgrade()
        self.assertFalse(channel.admission.isOpen)
        self.clock.advance(10)
        self.assertFalse(transport.disconnected)
        self.assertTrue(channel.admission.isOpen)

    def test_closeCancelsDeadline(self) -> None:
        """
        A connection that closes before the deadline leaves no timer.
        """
        channel, transport = self.connect()
        self.close(channel, transport)
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])

    def test_noDeadline(self) -> None:
        """
        An upgrade timeout of 0 sets no deadline.
        """
        self.site = makeSite(
            self.factory, replace(self.config, upgradeTimeout=0), self.clock
        )
        _, transport = self.connect()
        self.clock.advance(30)
        self.assertFalse(transport.disconnected)


class BodyTests(SiteTestsMixin, SynchronousTestCase):
    """
    A request with a body is refused before the body is read.
    """

    def assertRefused(self, head: bytes) -> None:
        """
        C{head} followed by some body gets a 400 and a close, and nothing of
        the body is stored nor the request handled.
        """
        channel, transport = self.connect()
        channel.dataReceived(head + b"x" * 100)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 "))
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(channel.requests[-1].content)
        channel.dataReceived(b"x" * 100_000)
        self.assertIsNone(channel.requests[-1].content)
        self.assertEqual(transport.value().count(b"HTTP/1.1"), 1)

    def test_contentLength(self) -> None:
        """
        An upgrade request with a 64 MiB C{Content-Length} is refused.
        """
        self.assertRefused(upgradeRequest(extra=b"Content-Length: 67108864\r\n"))

    def test_chunked(self) -> None:
        """
        A C{Transfer-Encoding: chunked} upgrade request is refused.
        """
        self.assertRefused(upgradeRequest(extra=b"Transfer-Encoding: chunked\r\n"))

    def test_identity(self) -> None:
        """
        Any C{Transfer-Encoding}, even C{identity}, is refused.
        """
        self.assertRefused(upgradeRequest(extra=b"Transfer-Encoding: identity\r\n"))

    def test_otherPath(self) -> None:
        """
        A request with a body on another path is refused the same way.
        """
        self.assertRefused(b"POST /upload HTTP/1.1\r\nContent-Length: 5\r\n\r\n")

    def test_zeroLength(self) -> None:
        """
        C{Content-Length: 0} is no body: the upgrade completes.
        """
        self.upgrade(extra=b"Content-Length: 0\r\n")

    def test_logged(self) -> None:
        """
        A refusal is logged once per interval with the client address.
        """
        with capturedLogs() as events:
            self.connect()[0].dataReceived(
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n"
            )
            self.connect()[0].dataReceived(
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n"
            )
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["client"], CLIENT)


class ResponseTests(SiteTestsMixin, SynchronousTestCase):
    """
    Plain requests: 426 on the WebSocket path, 404 elsewhere, no version.
    """

    def request(self, head: bytes, host: str = CLIENT) -> bytes:
        """
        Send C{head} on a new connection and return the response, checking
        that the connection is closed after it and shows no version.
        """
        channel, transport = self.connect(host)
        channel.dataReceived(head)
        response: bytes = transport.value()
        self.assertTrue(transport.disconnecting)
        self.close(channel, transport)
        lower = response.lower()
        for leak in (b"twisted", b"autobahn", b"server:", __version__.encode()):
            self.assertNotIn(leak, lower)
        return response

    def test_plainGet(self) -> None:
        """
        A plain GET on the WebSocket path gets 426 with C{Upgrade: websocket}.
        """
        response = self.request(b"GET /aphelion HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = response.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n"))
        self.assertIn(b"\r\nUpgrade: websocket", head)
        self.assertIn(b"\r\nConnection: close", head)
        self.assertIn(b"WebSocket", body)

    def test_head(self) -> None:
        """
        A HEAD request gets the 426 head with no body and logs nothing.
        """
        with capturedLogs() as events:
            response = self.request(b"HEAD /aphelion HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 426 "))
        self.assertTrue(response.endswith(b"\r\n\r\n"))
        self.assertEqual(events, [])

    def test_otherUpgrade(self) -> None:
        """
        An upgrade to anything but WebSocket gets 426 too.
        """
        response = self.request(b"GET /aphelion HTTP/1.1\r\nUpgrade: h2c\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 426 "))

    def test_otherPath(self) -> None:
        """
        Another path gets 404, and one log line names the client, the path
        and the option that sets the endpoint's path.
        """
        with capturedLogs() as events:
            response = self.request(b"GET /other HTTP/1.1\r\n\r\n")
            self.request(b"GET /again HTTP/1.1\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 404 Not Found\r\n"))
        self.assertEqual(len(events), 1)
        self.assertEqual((events[0]["client"], events[0]["path"]), (CLIENT, "/other"))
        self.assertIn("--path", events[0]["log_format"])
        self.assertIn("--legacy", events[0]["log_format"])

    def test_pathEscaped(self) -> None:
        """
        The logged path has its control characters escaped.
        """
        with capturedLogs() as events:
            self.request(b"GET /%1b[2J\x7f HTTP/1.1\r\n\r\n")
        self.assertEqual(events[0]["path"], "/%1b[2J\\x7f")

    def test_throttledSummary(self) -> None:
        """
        After a log interval, the requests not logged are summed up in one
        line.
        """
        with capturedLogs() as events:
            for _ in range(3):
                self.request(b"GET /other HTTP/1.1\r\n\r\n")
            self.clock.advance(self.config.logInterval)
        self.assertEqual(len(events), 2)
        self.assertEqual(events[1]["count"], 2)

    def test_trailingSlash(self) -> None:
        """
        The path with a trailing slash is the endpoint too.
        """
        response = self.request(b"GET /aphelion/ HTTP/1.1\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 426 "))

    def test_oneRequestPerConnection(self) -> None:
        """
        Pipelined requests get one response: the connection closes after it.
        """
        response = self.request(
            b"GET /aphelion HTTP/1.1\r\n\r\nGET /aphelion HTTP/1.1\r\n\r\n"
        )
        self.assertEqual(response.count(b"HTTP/1.1 426"), 1)

    def test_noEndpointProtocol(self) -> None:
        """
        An upgrade that the factory builds no protocol for gets 503.
        """
        self.factory.buildProtocol = lambda addr: None  # type: ignore[method-assign]
        response = self.request(upgradeRequest())
        self.assertTrue(response.startswith(b"HTTP/1.1 503 "))


class PathTests(SiteTestsMixin, SynchronousTestCase):
    """
    The endpoint at the root (C{--path /}, Part 1.7) and at a nested path.
    """

    def useSite(self, path: str) -> None:
        """
        Serve the endpoint at C{path}.
        """
        self.site = makeSite(self.factory, replace(self.config, path=path), self.clock)

    def test_root(self) -> None:
        """
        With the path C{/}, the root upgrades and any other path is 404.
        """
        self.useSite("/")
        channel, transport = self.connect()
        channel.dataReceived(upgradeRequest(b"/"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "))
        channel, transport = self.connect()
        channel.dataReceived(b"GET /aphelion HTTP/1.1\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 404 "))

    def test_nested(self) -> None:
        """
        A nested path upgrades; its parent is 404.
        """
        self.useSite("/a/b")
        channel, transport = self.connect()
        channel.dataReceived(upgradeRequest(b"/a/b"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "))
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.1\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 404 "))


class UpgradeTests(SiteTestsMixin, SynchronousTestCase):
    """
    The hand-over to the WebSocket protocol.
    """

    def test_admissionAttached(self) -> None:
        """
        The WebSocket protocol gets the connection's admission.
        """
        channel, _ = self.upgrade()
        protocol = channel._upgraded
        self.assertIsInstance(protocol, WiredProtocol)
        self.assertIs(protocol.admission, channel.admission)

    def test_requestReleased(self) -> None:
        """
        Once upgraded, the channel holds no request (its headers and body
        buffer would stay for the life of the connection).
        """
        channel, _ = self.upgrade()
        self.assertEqual(channel.requests, [])

    def test_framesReachProtocol(self) -> None:
        """
        Bytes after the upgrade, also those read with the request, reach
        the WebSocket protocol.
        """
        received: list[bytes] = []

        class Echo(WiredProtocol):
            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                received.append(payload)

        self.factory.protocol = Echo
        # A masked binary frame holding b"hi", with the mask 0.
        frame = b"\x82\x82\x00\x00\x00\x00hi"
        channel, transport = self.connect()
        channel.dataReceived(upgradeRequest() + frame)
        channel.dataReceived(frame)
        self.assertEqual(received, [b"hi", b"hi"])
        self.assertFalse(transport.disconnecting)

    def test_closeReleases(self) -> None:
        """
        The end of an upgraded connection reaches the WebSocket protocol and
        releases the admission.
        """
        channel, transport = self.upgrade()
        protocol = channel._upgraded
        self.assertEqual(self.site.gate.open, 1)
        self.close(channel, transport)
        self.assertEqual(self.site.gate.open, 0)
        self.assertTrue(channel.admission.isClosed)
        self.assertEqual(protocol.state, protocol.STATE_CLOSED)

    def test_unwiredReleases(self) -> None:
        """
        A protocol that never calls its admission still has it released when
        its connection ends.
        """
        self.factory.protocol = WebSocketServerProtocol
        channel, transport = self.upgrade()
        self.close(channel, transport)
        self.assertEqual(self.site.gate.open, 0)
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 0)

    def test_plainSite(self) -> None:
        """
        Outside an L{AphelionSite}, the endpoint upgrades as Autobahn's
        resource does.
        """
        from twisted.web.server import Site

        self.factory.protocol = WebSocketServerProtocol
        site = Site(WebSocketEndpoint(self.factory), reactor=self.clock)
        channel = site.buildProtocol(IPv4Address("TCP", CLIENT, 1))
        transport: Any = StringTransport()
        transport.protocol = channel
        channel.makeConnection(transport)
        channel.dataReceived(upgradeRequest(b"/"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "))

    def test_noAccessLog(self) -> None:
        """
        The site writes no access-log line.
        """
        self.site.log(object())
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_http11Only(self) -> None:
        """
        Only HTTP/1.1 is offered in TLS ALPN.
        """
        self.assertEqual(self.site.acceptableProtocols(), [b"http/1.1"])

    def test_isSite(self) -> None:
        """
        L{makeSite} makes an L{AphelionSite}.
        """
        self.assertIsInstance(self.site, AphelionSite)


class LimitTests(SiteTestsMixin, SynchronousTestCase):
    """
    Per-address limits counted from accept.
    """

    config = Config(connectionsPerAddress=3, connectionRate=1000, connectionBurst=1000)

    def test_capAtAccept(self) -> None:
        """
        The connection over the per-address cap is dropped at accept, before
        any byte, while another address still connects.
        """
        for _ in range(3):
            _, transport = self.connect()
            self.assertFalse(transport.disconnected)
        protocol, transport = self.connect()
        self.assertTrue(transport.disconnected)
        self.assertEqual(transport.value(), b"")
        self.assertNotIsInstance(protocol, AphelionSite.protocol)
        _, transport = self.connect("198.51.100.9")
        self.assertFalse(transport.disconnected)
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 3)

    def test_closeFreesPlace(self) -> None:
        """
        A closed connection frees its place under the cap.
        """
        first = self.connect()
        for _ in range(2):
            self.connect()
        self.close(*first)
        self.close(*first)
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 2)
        _, transport = self.connect()
        self.assertFalse(transport.disconnected)
        _, transport = self.connect()
        self.assertTrue(transport.disconnected)

    def test_plainRequestReleases(self) -> None:
        """
        A plain HTTP connection's count is released when it closes.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"GET /aphelion HTTP/1.1\r\n\r\n")
        self.close(channel, transport)
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 0)
        self.assertEqual(self.site.gate.open, 0)

    def test_rate(self) -> None:
        """
        New connections beyond the burst are dropped until the bucket
        refills.
        """
        self.site = makeSite(
            self.factory,
            replace(self.config, connectionRate=2, connectionBurst=2),
            self.clock,
        )
        for _ in range(2):
            self.close(*self.connect())
        _, transport = self.connect()
        self.assertTrue(transport.disconnected)
        self.clock.advance(0.5)
        _, transport = self.connect()
        self.assertFalse(transport.disconnected)

    def test_logged(self) -> None:
        """
        The first drop in a log interval is logged with the address and the
        hint about reverse proxies; the next is counted, not logged.
        """
        for _ in range(3):
            self.connect()
        with capturedLogs() as events:
            self.connect()
            self.connect()
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["address"], CLIENT)
        text = events[0]["log_format"].format(**events[0])
        self.assertIn("--connections-per-address", text)
        self.assertIn("--trust-forwarded-for", text)
        self.assertIn("PROXY protocol", text)
        self.assertIn("--exempt", text)

    def test_exempt(self) -> None:
        """
        An exempt address is not limited, and not counted.
        """
        self.site = makeSite(
            self.factory,
            replace(self.config, exempt=("203.0.113.0/24",)),
            self.clock,
        )
        for _ in range(10):
            _, transport = self.connect()
            self.assertFalse(transport.disconnected)
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 0)
        self.assertEqual(self.site.gate.open, 10)

    def test_mappedAddress(self) -> None:
        """
        An IPv4-mapped IPv6 peer is counted as its IPv4 address.
        """
        for _ in range(3):
            self.connect()
        address = IPv6Address("TCP", "::ffff:" + CLIENT, 1)
        protocol = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        self.assertTrue(transport.disconnected)

    def test_unixPeer(self) -> None:
        """
        A peer with no IP address (a UNIX socket) is not limited.
        """
        for _ in range(5):
            protocol = self.site.buildProtocol(UNIXAddress(None))
            transport = StringTransport()
            protocol.makeConnection(transport)
            self.assertFalse(transport.disconnected)

    def test_boundedMemory(self) -> None:
        """
        Many addresses coming and going leave the remembered addresses
        bounded: counts are forgotten at close, rates beyond the bound.
        """
        self.site.gate._rates.maxKeys = 100
        for i in range(2000):
            self.close(*self.connect(f"10.{i // 250}.{i % 250}.1"))
        self.assertLessEqual(self.site.gate.addressesRemembered, 100)
        self.assertEqual(len(self.site.gate._counts), 0)
        self.assertEqual(self.site.gate.open, 0)


class ForwardedTests(SiteTestsMixin, SynchronousTestCase):
    """
    Behind a trusted front proxy, the limits apply to the forwarded address.
    """

    config = Config(
        trustForwardedFor=True,
        connectionsPerAddress=2,
        connectionRate=1000,
        connectionBurst=1000,
    )

    def test_proxyNotLimited(self) -> None:
        """
        The proxy's connections are counted but not limited.
        """
        for _ in range(5):
            _, transport = self.connect(PROXY)
            self.assertFalse(transport.disconnected)
        self.assertEqual(self.site.gate.connectionsFrom(PROXY), 5)

    def test_forwardedLimited(self) -> None:
        """
        C{forwardedFrom} counts the connection under the client's address,
        no longer under the proxy's, and answers L{False} over the cap.
        """
        admissions = [self.connect(PROXY)[0].admission for _ in range(3)]
        self.assertEqual(
            [a.forwardedFrom(CLIENT) for a in admissions], [True, True, False]
        )
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 2)
        self.assertEqual(self.site.gate.connectionsFrom(PROXY), 0)
        self.assertEqual(admissions[0].address, CLIENT)
        self.assertEqual(admissions[0].peer, PROXY)

    def test_forwardedIdempotent(self) -> None:
        """
        A second C{forwardedFrom} returns the first answer and counts nothing
        more; C{closed} releases once.
        """
        admission = self.connect(PROXY)[0].admission
        self.assertTrue(admission.forwardedFrom(CLIENT))
        self.assertTrue(admission.forwardedFrom("198.51.100.1"))
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 1)
        admission.closed()
        admission.closed()
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 0)
        self.assertEqual(self.site.gate.open, 0)

    def test_forwardedExempt(self) -> None:
        """
        An exempt forwarded address is not limited.
        """
        self.site = makeSite(
            self.factory, replace(self.config, exempt=(CLIENT,)), self.clock
        )
        admissions = [self.connect(PROXY)[0].admission for _ in range(5)]
        self.assertTrue(all(a.forwardedFrom(CLIENT) for a in admissions))

    def test_upgradeRefused(self) -> None:
        """
        Over the cap, the upgrade is refused with 503 by the protocol.
        """
        header = b"X-Forwarded-For: 10.0.0.1, " + CLIENT.encode() + b"\r\n"
        for _ in range(2):
            self.upgrade(PROXY, extra=header)
        channel, transport = self.connect(PROXY)
        channel.dataReceived(upgradeRequest(extra=header))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 503 "))
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 2)
        self.close(channel, transport)
        self.assertEqual(self.site.gate.connectionsFrom(CLIENT), 2)

    def test_untrusted(self) -> None:
        """
        Without a trusted proxy, C{forwardedFrom} ignores the address.
        """
        self.site = makeSite(
            self.factory, replace(self.config, trustForwardedFor=False), self.clock
        )
        admission = self.connect(PROXY)[0].admission
        self.assertTrue(admission.forwardedFrom(CLIENT))
        self.assertEqual(admission.address, PROXY)
        self.assertEqual(self.site.gate.connectionsFrom(PROXY), 1)


class FakeLimits:
    """
    The part of the C{resource} module that L{raiseFileLimit} uses.
    """

    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft: int, hard: int, ceiling: int | None = None) -> None:
        self.soft, self.hard, self.ceiling = soft, hard, ceiling

    def getrlimit(self, resource: int, /) -> tuple[int, int]:
        """
        The limits.
        """
        return self.soft, self.hard

    def setrlimit(self, resource: int, limits: tuple[int, int], /) -> None:
        """
        Set the soft limit, up to the ceiling.
        """
        if self.ceiling is not None and limits[0] > self.ceiling:
            raise ValueError("not allowed")
        self.soft = limits[0]


class FileLimitTests(SynchronousTestCase):
    """
    Tests of L{raiseFileLimit}.
    """

    def test_raised(self) -> None:
        """
        The soft limit is raised to the hard limit; no warning when that is
        enough.
        """
        limits = FakeLimits(1024, 1_048_576)
        self.assertEqual(raiseFileLimit(Config(), limits), [])
        self.assertEqual(limits.soft, 1_048_576)

    def test_low(self) -> None:
        """
        A hard limit too low for the connection cap is warned about.
        """
        limits = FakeLimits(1024, 4096)
        [warning] = raiseFileLimit(Config(maxConnections=10000), limits)
        self.assertEqual(limits.soft, 4096)
        self.assertIn("4096", warning)
        self.assertIn("--max-connections 10000", warning)

    def test_infinity(self) -> None:
        """
        An unlimited hard limit raises the soft one as far as the system
        allows.
        """
        limits = FakeLimits(256, -1, ceiling=65_536)
        self.assertEqual(raiseFileLimit(Config(), limits), [])
        self.assertEqual(limits.soft, 65_536)

    def test_refused(self) -> None:
        """
        A refused raise is warned about.
        """
        limits = FakeLimits(1024, 1_048_576, ceiling=1024)
        warnings = raiseFileLimit(Config(maxConnections=100), limits)
        self.assertEqual(len(warnings), 1)
        self.assertIn("cannot raise", warnings[0])

    def test_noCap(self) -> None:
        """
        Without a connection cap, the open-files limit is the only one:
        said once.
        """
        warnings = raiseFileLimit(Config(maxConnections=0), FakeLimits(9, 9))
        self.assertEqual(len(warnings), 1)
        self.assertIn("--max-connections 0", warnings[0])

    def test_needed(self) -> None:
        """
        Two files per connection, four per local game server and the
        reserve.
        """
        config = Config(maxConnections=100, gameServers=2)
        self.assertEqual(filesNeeded(config), 200 + 8 + FILE_RESERVE)

    def test_realModule(self) -> None:
        """
        With the real C{resource} module, the soft limit ends at least where
        it was, and the hard limit is unchanged.
        """
        import resource

        before = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, before)
        raiseFileLimit(Config())
        after = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertGreaterEqual(after[0], before[0])
        self.assertEqual(after[1], before[1])


class PagesTests(SiteTestsMixin, SynchronousTestCase):
    """
    The players' pages: under a prefix (the root by default), through
    C{static.File}, no listing, the logged 404 for any other name, cache and
    security headers, no version.
    """

    def setUp(self) -> None:
        super().setUp()
        # static.File writes through a pull producer, which a Cooperator
        # drives: one on the test's clock instead of the global reactor.
        cooperator = Cooperator(scheduler=lambda work: self.clock.callLater(0, work))
        self.patch(_producer_helpers, "cooperate", cooperator.cooperate)

    def useSite(self, config: Config | None = None, **kwargs: Any) -> None:
        """
        Serve the pages with C{makeSite}'s keyword arguments C{kwargs}.
        """
        self.site = makeSite(self.factory, config or self.config, self.clock, **kwargs)

    def get(self, path: bytes, extra: bytes = b"") -> tuple[bytes, bytes]:
        """
        GET C{path} on a new connection, which closes after the response.

        :return: the response's head and body.
        """
        channel, transport = self.connect()
        channel.dataReceived(
            b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"
        )
        for _ in range(100):
            if transport.disconnecting:
                break
            self.clock.advance(0)
        response: bytes = transport.value()
        self.close(channel, transport)
        for leak in (b"twisted", b"autobahn", b"server:", __version__.encode()):
            self.assertNotIn(leak, response.split(b"\r\n\r\n")[0].lower())
        head, _, body = response.partition(b"\r\n\r\n")
        return head, body

    def test_index(self) -> None:
        """
        The root is C{index.html}, which links to the chat page, with the
        cache and security headers.
        """
        head, body = self.get(b"/")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b"\r\nContent-Type: text/html; charset=utf-8", head)
        self.assertIn(b"\r\nCache-Control: no-cache", head)
        self.assertIn(b"\r\nLast-Modified: ", head)
        self.assertIn(b"\r\nX-Content-Type-Options: nosniff", head)
        self.assertIn(b"\r\nContent-Security-Policy: default-src 'self'", head)
        self.assertIn(b'href="chat.html"', body)

    def test_library(self) -> None:
        """
        The library is at C{/aphelion.js}, as JavaScript, byte for byte the
        file in the pages.
        """
        head, body = self.get(b"/aphelion.js")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b"\r\nContent-Type: text/javascript; charset=utf-8", head)
        self.assertEqual(body, PAGES.child("aphelion.js").getContent())

    def test_chatPage(self) -> None:
        """
        The chat page and its script are served.
        """
        for path in (b"/chat.html", b"/chat.js", b"/style.css"):
            head, _ = self.get(path)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), path)

    def test_notModified(self) -> None:
        """
        A page not modified since the browser's copy gets 304 and no body.
        """
        head, body = self.get(
            b"/chat.html", b"If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"
        )
        self.assertTrue(head.startswith(b"HTTP/1.1 304 "), head)
        self.assertEqual(body, b"")

    def test_vendorImmutable(self) -> None:
        """
        A vendored file, whose name carries its version, is immutable.
        """
        names = [p.basename() for p in PAGES.child("vendor").children()]
        script = next(n for n in names if n.endswith(".js")).encode()
        head, _ = self.get(b"/vendor/" + script)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b"\r\nCache-Control: public, max-age=31536000, immutable", head)
        self.assertIn(b".LICENSE", b" ".join(n.encode() for n in names))

    def test_noListing(self) -> None:
        """
        A directory without an index is 404, never a listing; unknown names,
        escapes out of the directory, names that are not UTF-8 and names with
        a control character (NUL: found by the fuzz tests as a 500) are 404.
        """
        for path in (
            b"/vendor/",
            b"/nope.html",
            b"/%2e%2e/setup.cfg",
            b"/..%2fsetup.cfg",
            b"/%ff",
            b"/chat.html/x",
            b"/style.css%00",
            b"/%00",
            b"/vendor/%0a",
        ):
            head, _ = self.get(path)
            self.assertTrue(head.startswith(b"HTTP/1.1 404 "), (path, head))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_notFoundLogged(self) -> None:
        """
        A missing page is logged as any other path is, rate-limited.
        """
        with capturedLogs() as events:
            self.get(b"/nope.html")
            self.get(b"/again.html")
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["path"], "/nope.html")

    def test_endpointInfo(self) -> None:
        """
        C{endpoint.json} tells the pages' scripts the endpoint's path.
        """
        head, body = self.get(b"/endpoint.json")
        self.assertIn(b"\r\nContent-Type: application/json", head)
        self.assertEqual(json.loads(body), {"path": "/aphelion"})

    def test_endpointKeepsItsPath(self) -> None:
        """
        With the pages at the root, the endpoint still upgrades and a plain
        request on its path still gets 426.
        """
        self.upgrade()
        head, _ = self.get(b"/aphelion")
        self.assertTrue(head.startswith(b"HTTP/1.1 426 "), head)

    def test_prefix(self) -> None:
        """
        Under a prefix, the pages are there and the root is 404; the prefix
        without its slash redirects to it, for the relative links.
        """
        self.useSite(pagesPrefix="/play")
        head, body = self.get(b"/play/")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b'href="chat.html"', body)
        self.assertTrue(self.get(b"/play/chat.html")[0].startswith(b"HTTP/1.1 200 "))
        head, _ = self.get(b"/play")
        self.assertTrue(head.startswith(b"HTTP/1.1 302 "), head)
        self.assertIn(b"\r\nLocation: /play/", head)
        self.assertTrue(self.get(b"/")[0].startswith(b"HTTP/1.1 404 "))
        self.assertTrue(self.get(b"/chat.html")[0].startswith(b"HTTP/1.1 404 "))

    def test_off(self) -> None:
        """
        With no pages, every path but the endpoint's is 404.
        """
        self.useSite(pagesPrefix=None)
        self.assertIsNone(self.site.pages)
        for path in (b"/", b"/aphelion.js", b"/chat.html"):
            self.assertTrue(self.get(path)[0].startswith(b"HTTP/1.1 404 "), path)

    def test_endpointAtRoot(self) -> None:
        """
        With the endpoint at the root (C{--legacy}) and the pages there too,
        an upgrade of the root reaches the endpoint and a plain request gets
        the index.
        """
        self.useSite(replace(self.config, path="/"))
        channel, transport = self.connect()
        channel.dataReceived(upgradeRequest(b"/"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "))
        head, body = self.get(b"/")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b"chat.html", body)

    def test_badPrefix(self) -> None:
        """
        A prefix must start with a slash.
        """
        self.assertRaises(ValueError, self.useSite, pagesPrefix="play")

    def test_otherDirectory(self) -> None:
        """
        Another directory can be served instead of the shipped pages.
        """
        directory = FilePath(self.mktemp())
        directory.makedirs()
        directory.child("index.html").setContent(b"mine")
        self.useSite(pagesDirectory=directory)
        self.assertEqual(self.get(b"/")[1], b"mine")
