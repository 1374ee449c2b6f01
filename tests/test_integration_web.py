# -*- test-case-name: tests.test_integration_web -*-
"""
Integration tests of L{aphelion.web}: the players' site listening on
127.0.0.1, port 0, against raw sockets and the aphelion client.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from aphelion import __version__
from aphelion.client import AphelionClientFactory, AphelionClientProtocol
from aphelion.codes import CloseCode
from aphelion.config import Config
from aphelion.service import build
from aphelion.web import PAGES, AphelionSite, makeSite

UPGRADE = (
    b"GET /aphelion HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)


class RawClient(Protocol):
    """
    Collects what the server sends; C{done} fires with it when the
    connection is lost.
    """

    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        """
        Keep C{data}.
        """
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Fire C{done}.
        """
        self.done.callback(self.data)


class WebIntegrationTests(TestCase):
    """
    The players' site on a real listening port.
    """

    timeout = 30
    config = Config(listen=(), gameServers=0, sessionTimeout=0.0)

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor

    def startServer(self, **settings: Any) -> None:
        """
        Listen on 127.0.0.1, port 0, with a server built from the class's
        config and C{settings}; stop after the test, once its connections
        are gone.
        """
        config = replace(self.config, **settings)
        service: Any = build(config, self.reactor)
        self.factory = service.factory
        self.site: AphelionSite = makeSite(self.factory, config, self.reactor)
        port = self.reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.port = port.getHost().port
        self.addCleanup(self.serverGone)
        self.addCleanup(port.stopListening)

    async def eventually(self, check: Any) -> None:
        """
        Let the reactor run until C{check()} is true, for at most 2 s.
        """
        for _ in range(200):
            if check():
                return
            await deferLater(self.reactor, 0.01, lambda: None)
        self.assertTrue(check())

    async def serverGone(self) -> None:
        """
        Wait until the server has seen every connection close and every
        session end.
        """
        registry: Any = self.factory.registry
        await self.eventually(
            lambda: (
                not self.factory.connections
                and not len(registry)
                and not self.site.gate.open
            )
        )

    async def raw(self, source: str = "127.0.0.1", data: bytes = b"") -> RawClient:
        """
        Open a raw socket from C{source} and send C{data}; it is aborted
        after the test if the server has not closed it.
        """
        endpoint = TCP4ClientEndpoint(
            self.reactor, "127.0.0.1", self.port, bindAddress=(source, 0)
        )
        client: RawClient = await connectProtocol(endpoint, RawClient())
        self.addCleanup(self.abortRaw, client)
        if data:
            assert client.transport is not None
            client.transport.write(data)
        return client

    async def abortRaw(self, client: RawClient) -> None:
        """
        Abort C{client} unless it is closed, and wait until it is.
        """
        if not client.done.called:
            cast(Any, client.transport).abortConnection()
        await client.done

    async def player(self, source: str = "127.0.0.1") -> AphelionClientProtocol:
        """
        Connect the aphelion client from C{source} and complete the upgrade
        and the init handshake; it is closed after the test.
        """
        factory = AphelionClientFactory(
            f"ws://127.0.0.1:{self.port}/aphelion", clock=self.reactor
        )
        endpoint = TCP4ClientEndpoint(
            self.reactor, "127.0.0.1", self.port, bindAddress=(source, 0)
        )
        protocol: Any = await endpoint.connect(factory)
        conn: AphelionClientProtocol = await protocol.whenHandshakeDone()
        self.addCleanup(self.closePlayer, conn)
        return conn

    async def closePlayer(self, conn: AphelionClientProtocol) -> None:
        """
        Close C{conn} normally and wait until it is closed.
        """
        conn.closeWith(CloseCode.NORMAL, "test over")
        await conn.whenClosed()

    async def test_slowlorisDropped(self) -> None:
        """
        A socket that sends its upgrade request one byte at a time, each in
        time for any idle timer, is dropped at the upgrade deadline.
        """
        self.startServer(upgradeTimeout=0.5)
        start = self.reactor.seconds()
        client = await self.raw()
        request = iter(UPGRADE)

        def drip() -> None:
            assert client.transport is not None
            client.transport.write(bytes([next(request)]))

        dripping = LoopingCall(drip)
        dripping.clock = self.reactor
        dripping.start(0.05)
        self.addCleanup(lambda: dripping.stop() if dripping.running else None)
        data = await client.done
        elapsed = self.reactor.seconds() - start
        self.assertEqual(data, b"")
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertLess(elapsed, 5)
        await self.eventually(lambda: not self.site.gate.open)

    async def test_bodyRefused(self) -> None:
        """
        An upgrade request announcing a 1 GiB body gets 400 and is closed by
        the server with the body unsent.
        """
        self.startServer()
        client = await self.raw(
            data=UPGRADE + b"Content-Length: 1073741824\r\n\r\n" + b"x" * 1000
        )
        data = await client.done
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)

    async def test_plainGet(self) -> None:
        """
        A plain GET on the WebSocket path gets 426 without any version.
        """
        self.startServer()
        client = await self.raw(data=b"GET /aphelion HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await client.done
        self.assertTrue(data.startswith(b"HTTP/1.1 426 "), data)
        self.assertIn(b"Upgrade: websocket", data)
        for leak in (b"twisted", b"autobahn", b"server:", __version__.encode()):
            self.assertNotIn(leak, data.lower())

    async def test_capHolds(self) -> None:
        """
        Slow sockets fill their address's cap and the next one is dropped,
        while a client from another address, and an exempt address over
        the cap, complete the upgrade and the init handshake.
        """
        self.startServer(connectionsPerAddress=2, exempt=("127.0.0.3/32",))
        slow = [await self.raw(data=b"GET /aph") for _ in range(2)]
        await self.eventually(lambda: self.site.gate.connectionsFrom("127.0.0.1") == 2)
        dropped = await self.raw()
        self.assertEqual(await dropped.done, b"")
        self.assertFalse(any(s.done.called for s in slow))

        other = await self.player("127.0.0.2")
        self.assertEqual(len(other.token or b""), 32)

        exemptSlow = [await self.raw("127.0.0.3", b"GET /aph") for _ in range(3)]
        exempt = await self.player("127.0.0.3")
        self.assertEqual(len(exempt.token or b""), 32)
        self.assertFalse(any(s.done.called for s in slow + exemptSlow))
        self.assertEqual(self.site.gate.connectionsFrom("127.0.0.1"), 2)

        # A place freed by a closed socket takes a player again.
        await self.abortRaw(slow[0])
        await self.eventually(lambda: self.site.gate.connectionsFrom("127.0.0.1") == 1)
        player = await self.player()
        self.assertEqual(len(player.token or b""), 32)

    async def test_pagesServed(self) -> None:
        """
        On a real port, the root is the index with its link to the chat
        page, and C{/aphelion.js} is the library, whole, through the file
        producer.
        """
        self.startServer()
        client = await self.raw(data=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = (await client.done).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b'href="chat.html"', body)
        client = await self.raw(data=b"GET /aphelion.js HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = (await client.done).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertEqual(body, PAGES.child("aphelion.js").getContent())
        for leak in (b"twisted", b"server:", __version__.encode()):
            self.assertNotIn(leak, head.lower())

    async def test_pagesOff(self) -> None:
        """
        A site made without pages answers 404 at the root.
        """
        config = replace(self.config)
        service: Any = build(config, self.reactor)
        self.factory = service.factory
        self.site = makeSite(self.factory, config, self.reactor, pagesPrefix=None)
        port = self.reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.port = port.getHost().port
        self.addCleanup(self.serverGone)
        self.addCleanup(port.stopListening)
        client = await self.raw(data=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue((await client.done).startswith(b"HTTP/1.1 404 "))
