# -*- test-case-name: tests.test_integration_client -*-
"""
Integration tests of L{aphelion.client} against the real in-process server
over loopback sockets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from aphelion.client import (
    AphelionClientFactory,
    AphelionClientProtocol,
    ClientSession,
    ClosedError,
    connect,
    connectFactory,
    ping,
)
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.config import Config
from aphelion.proto.game_pb2 import S2C, AuthenticateResponse
from aphelion.service import build
from aphelion.web import makeSite
from aphelion.websocket import AphelionServerFactory

#: A C2S payload with a game-defined field (1: varint 1).
GAME_C2S = b"\x08\x01"


class ShortInitProtocol(AphelionClientProtocol):
    """
    Sends a 38-byte init packet.
    """

    def initPacket(self) -> bytes:
        """
        One byte short.
        """
        return super().initPacket()[:-1]


class ClientIntegrationTests(TestCase):
    """
    The client against a server listening on 127.0.0.1, port 0.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        # A session timeout of 0 expires each session in the turn after its
        # last connection closed, so that none outlives a test.
        self.url, self.factory = self.startServer(Config(listen=(), sessionTimeout=0.0))

    def startServer(self, config: Config) -> tuple[str, AphelionServerFactory]:
        """
        Listen on 127.0.0.1, port 0, with a server built from C{config}, and
        stop after the test once its connections and sessions are gone.

        :return: the server's URL and its WebSocket factory.
        """
        service: Any = build(config, self.reactor)
        factory: AphelionServerFactory = service.factory
        site = makeSite(factory, config, self.reactor)
        port = self.reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.serverGone, factory)
        self.addCleanup(port.stopListening)
        return f"ws://127.0.0.1:{port.getHost().port}/aphelion", factory

    async def serverGone(self, factory: AphelionServerFactory) -> None:
        """
        Let the reactor run until the server has seen every connection close
        and every session end.
        """
        for _ in range(200):
            registry: Any = factory.registry
            if not factory.connections and not len(registry):
                break
            await deferLater(self.reactor, 0.01, lambda: None)
        self.assertEqual(factory.connections, set())
        self.assertEqual(len(registry), 0)

    async def connect(
        self, url: str | None = None, **kwargs: Any
    ) -> AphelionClientProtocol:
        """
        Connect to the server (or C{url}) and close the connection after the
        test.
        """
        conn = await connect(self.reactor, url or self.url, **kwargs)
        self.addCleanup(self.closeConnection, conn)
        return conn

    async def closeConnection(self, conn: AphelionClientProtocol) -> None:
        """
        Close C{conn} normally and wait until it is closed.
        """
        conn.closeWith(CloseCode.NORMAL, "test over")
        await conn.whenClosed()

    async def assertRefused(self, d: Deferred[Any], code: int) -> ClosedError:
        """
        C{d} fails with L{ClosedError} carrying C{code} and a reason.
        """
        try:
            result = await d
        except ClosedError as e:
            self.assertEqual(e.code, code)
            self.assertTrue(e.reason)
            return e
        self.addCleanup(self.closeConnection, result)
        self.fail(f"expected a close with {code}, got {result!r}")

    async def test_ping(self) -> None:
        """
        A ping returns the player counts, a server time close to ours and a
        small round trip, and leaves no connection behind.
        """
        before = self.reactor.seconds()
        result = await ping(self.reactor, self.url)
        after = self.reactor.seconds()
        self.assertEqual((result.players, result.playing), (0, 0))
        self.assertGreaterEqual(result.rtt, 0)
        self.assertLess(result.rtt, after - before + 0.001)
        self.assertGreaterEqual(result.serverTime, int((before - 1) * 1e9))
        self.assertLessEqual(result.serverTime, int((after + 1) * 1e9))

    async def test_notAuthenticated(self) -> None:
        """
        Any C2S on a fresh game connection gets
        C{authenticate_response{NOT_AUTHENTICATED}}, which also acks it.
        """
        conn = await self.connect()
        self.assertFalse(conn.resumed)
        conn.sendPayload(GAME_C2S)
        self.assertEqual(conn.unacknowledged, 1)
        message = S2C.FromString(await conn.nextPayload())
        self.assertTrue(message.authenticate_response.HasField("result"))
        self.assertEqual(
            message.authenticate_response.result,
            AuthenticateResponse.NOT_AUTHENTICATED,
        )
        self.assertEqual(conn.unacknowledged, 0)

    async def test_resume(self) -> None:
        """
        A new connection that presents the token of an authenticated
        session whose last connection closed gets the same token back within
        the session timeout.
        """
        url, factory = self.startServer(Config(listen=(), sessionTimeout=60.0))
        registry = factory.registry
        first = await connect(self.reactor, url)
        token = first.token
        assert token is not None
        session = await registry.lookup(token)
        assert session is not None
        # Only an authenticated session lingers (Part 6).
        await registry.authenticate(session, "alice")
        self.addCleanup(registry.end, session, CloseCode.SESSION_ENDED, "test over")
        await self.closeConnection(first)
        for _ in range(200):
            if session.lingering:
                break
            await deferLater(self.reactor, 0.01, lambda: None)
        self.assertTrue(session.lingering)
        again = await self.connect(url=url, token=token)
        self.assertEqual(again.token, token)
        self.assertTrue(again.resumed)
        self.assertFalse(session.lingering)

    async def test_unknownTokenMakesNewSession(self) -> None:
        """
        A token that names no session gets a new one; a L{ClientSession}
        then adopts the new token.
        """
        session = ClientSession(self.reactor, self.url, token=b"\x01" * 32)
        self.addCleanup(session.close)
        conn = await session.connect()
        self.assertFalse(conn.resumed)
        self.assertNotEqual(session.token, b"\x01" * 32)
        self.assertEqual(session.token, conn.token)

    async def test_secondSocketJoins(self) -> None:
        """
        A L{ClientSession}'s second socket joins the first one's session, and
        payloads flow through either.
        """
        session = ClientSession(self.reactor, self.url)
        self.addCleanup(session.close)
        await session.open(2)
        first, second = session.connections
        self.assertFalse(first.resumed)
        self.assertTrue(second.resumed)
        self.assertEqual(first.token, second.token)
        assert session.token is not None
        server = await self.factory.registry.lookup(session.token)
        assert server is not None
        self.assertEqual(len(server.connections), 2)
        self.assertIs(session.sendPayload(GAME_C2S), first)
        self.assertIs(session.sendPayload(GAME_C2S), second)
        for _ in range(2):
            message = S2C.FromString(await session.nextPayload())
            self.assertEqual(
                message.authenticate_response.result,
                AuthenticateResponse.NOT_AUTHENTICATED,
            )

    async def test_textFrame(self) -> None:
        """
        A text frame after the handshake: the server closes with 1003.
        """
        conn = await self.connect()
        conn.sendMessage(b"hello", isBinary=False)
        code, reason = await conn.whenClosed()
        self.assertEqual(code, CloseCode.UNSUPPORTED_DATA)
        self.assertTrue(reason)

    async def test_wrongInitLength(self) -> None:
        """
        A 38-byte init packet: the server closes with 4003.
        """
        factory = AphelionClientFactory(self.url, clock=self.reactor)
        factory.protocol = ShortInitProtocol
        await self.assertRefused(
            connectFactory(self.reactor, factory), CloseCode.MALFORMED_INIT
        )

    async def test_unknownProtocol(self) -> None:
        """
        An C{aphelion_protocol} the server does not serve: close 4000.
        """
        await self.assertRefused(
            connect(self.reactor, self.url, protocol=3), CloseCode.INVALID_PROTOCOL
        )

    async def test_versionTooNew(self) -> None:
        """
        A revision above the server's current one: close 4002.
        """
        await self.assertRefused(
            connect(self.reactor, self.url, protocol=AphelionProtocol.PING, version=2),
            CloseCode.VERSION_TOO_NEW,
        )

    async def test_ninthConnection(self) -> None:
        """
        A session holds 8 connections; the 9th gets 1013.
        """
        session = ClientSession(self.reactor, self.url)
        self.addCleanup(session.close)
        await session.open(8)
        self.assertEqual(len(session.connections), 8)
        await self.assertRefused(session.connect(), CloseCode.TRY_AGAIN_LATER)
        self.assertEqual(len(session.connections), 8)

    async def test_wrongPath(self) -> None:
        """
        A path the server does not serve fails the WebSocket upgrade: the
        connection ends without a closing handshake (1006).
        """
        url = self.url.replace("/aphelion", "/elsewhere")
        e = await self.assertRefused(connect(self.reactor, url), 1006)
        self.assertIn("404", e.reason)

    async def test_connectionRefused(self) -> None:
        """
        Nothing listening: L{connect} fails with the connection error.
        """
        port = self.reactor.listenTCP(
            0,
            makeSite(self.factory, Config(listen=(), path="/"), self.reactor),
            interface="127.0.0.1",
        )
        number = port.getHost().port
        await port.stopListening()
        with self.assertRaises(ConnectionRefusedError):
            await connect(self.reactor, f"ws://127.0.0.1:{number}/aphelion")
