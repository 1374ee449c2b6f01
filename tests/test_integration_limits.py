# -*- test-case-name: tests.test_integration_limits -*-
"""
The limits against abuse (PROTOCOL.md Part 6) over loopback: an AuthProxy in
this process, real game-server processes that it spawned, and real WebSocket
clients. Each test shows a limit holding and a well-behaved player still
getting in: seated, its chat still relayed.
"""

from __future__ import annotations

import os
import socket
from typing import Any, cast
from urllib.parse import urlparse

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher

from aphelion.client import (
    AphelionClientFactory,
    AphelionClientProtocol,
    ClientSession,
    ClosedError,
    connect,
)
from aphelion.codes import AphelionProtocol
from aphelion.fastwrite import bufferedBytes
from aphelion.proto import chat_pb2
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate
from aphelion.session import MemorySessionRegistry
from aphelion.websocket import AphelionServerFactory, AphelionServerProtocol
from tests.test_integration_system import (
    R,
    SystemTestCase,
    reactor,
    say,
    waitFor,
    within,
)

MiB = 1024 * 1024


def authenticate(playerId: str) -> bytes:
    """
    A serialized C{C2S{authenticate}}.
    """
    return C2S(authenticate=Authenticate(id=playerId)).SerializeToString()


class LimitsTestCase(SystemTestCase):
    """
    A L{SystemTestCase} with the checks every limit test ends with.
    """

    async def assertChats(self, client: AphelionClientProtocol, text: str) -> None:
        """
        C{client}, seated, says C{text} and hears it back from its room.
        """
        client.sendPayload(say(text))
        said = chat_pb2.S2C.FromString(await within(client.nextPayload())).said
        self.assertEqual(said.text, text)

    async def assertWellBehavedPlayerGetsIn(self, playerId: str) -> None:
        """
        A new player logs in, is seated, and its chat is relayed.
        """
        client, answer = await self.seated(playerId)
        self.assertEqual(answer.connected.player_id, playerId)
        await self.assertChats(client, f"{playerId} is in")

    @property
    def serverFactory(self) -> AphelionServerFactory:
        """
        The proxy's WebSocket factory.
        """
        return cast(AphelionServerFactory, self.service.factory)  # type: ignore[attr-defined]

    def serverConnectionOf(
        self, client: AphelionClientProtocol
    ) -> AphelionServerProtocol:
        """
        The proxy's connection for C{client}, found by its address.
        """
        local: Any = cast(Any, client.transport).getHost()
        for conn in self.serverFactory.connections:
            peer: Any = cast(Any, conn.transport).getPeer()
            if (peer.host, peer.port) == (local.host, local.port):
                return conn
        raise AssertionError(f"no server connection for {local}")


class AuthenticationDeadlineTests(LimitsTestCase):
    """
    A game connection must authenticate within the deadline of its init
    packet.
    """

    async def test_idleConnectionClosed(self) -> None:
        """
        With authTimeout=0.5, a game connection that never authenticates is
        closed with 4008 "not authenticated in time"; a player who logged in
        at once (before the idle one even connected) is seated and still
        open after the deadline, and chats.
        """
        await self.startProxy(authTimeout=0.5)
        good, _answer = await self.seated("alice")
        idle = await self.player("idle")
        opened = reactor.seconds()
        code, reason = await within(idle.whenClosed())
        self.assertEqual((code, reason), (4008, "not authenticated in time"))
        self.assertGreaterEqual(reactor.seconds() - opened, 0.4)
        self.assertIsNone(good.closeCode)
        self.assertTrue(good.handshaken)
        await self.assertChats(good, "still here")


class LoginThrottleTests(LimitsTestCase):
    """
    Logins are throttled per client address before the checker runs.
    """

    async def test_fourthLoginThrottled(self) -> None:
        """
        With loginsPerMinute=3, three logins from 127.0.0.1 are seated; the
        fourth is answered TOO_MANY_ATTEMPTS and its connection stays open;
        the seated players still chat.
        """
        await self.startProxy(loginsPerMinute=3, seating="fill")
        alice, _ = await self.seated("alice")
        await self.seated("bob")
        await self.seated("carol")
        dave = await self.player("dave")
        answer = await self.login(dave, "dave")
        self.assertEqual(answer.authenticate_response.result, R.TOO_MANY_ATTEMPTS)
        self.assertFalse(answer.HasField("connected"))
        await self.assertChats(alice, "hello")
        self.assertIsNone(dave.closeCode)
        self.assertTrue(dave.handshaken)

    async def test_exemptAddressNotThrottled(self) -> None:
        """
        With loginsPerMinute=3 and 127.0.0.0/8 exempt, the fourth login from
        127.0.0.1 is seated too, and chats.
        """
        await self.startProxy(loginsPerMinute=3, exempt=("127.0.0.0/8",))
        for playerId in ("alice", "bob", "carol"):
            await self.seated(playerId)
        await self.assertWellBehavedPlayerGetsIn("dave")


class SeatingBufferTests(LimitsTestCase):
    """
    Payloads a client sends while being seated are held, relayed in order
    once it is seated, and bounded.
    """

    async def test_heldAndBounded(self) -> None:
        """
        A client that sends C{authenticate} and a chat Say in one burst,
        before C{connected} arrives, receives authenticate_response{OK} with
        connected, then game_config, then its room's echo of the Say:
        nothing lost, in order. With seatingBuffer=2, a client that sends
        five payloads right after C{authenticate} is closed with 4007, and
        another player still gets in.
        """
        await self.startProxy(seatingBuffer=2)
        eager = await self.player("eager")
        eager.sendPayload(authenticate("eager"))
        eager.sendPayload(say("first words"))
        first = S2C.FromString(await within(eager.nextPayload()))
        self.assertEqual(first.authenticate_response.result, R.OK, first)
        self.assertEqual(first.connected.player_id, "eager")
        second = S2C.FromString(await within(eager.nextPayload()))
        self.assertTrue(second.HasField("game_config"), second)
        said = chat_pb2.S2C.FromString(await within(eager.nextPayload())).said
        self.assertEqual((said.player_id, said.text), ("eager", "first words"))

        flood = await self.player("flood")
        flood.sendPayload(authenticate("flood"))
        for i in range(5):
            flood.sendPayload(say(f"too soon {i}"))
        code, _reason = await within(flood.whenClosed())
        self.assertEqual(code, 4007)
        await self.assertWellBehavedPlayerGetsIn("patient")


class SessionCapTests(LimitsTestCase):
    """
    Sessions are capped per client address, and sessions that never
    authenticated do not linger.
    """

    async def test_sessionsPerAddress(self) -> None:
        """
        With sessionsPerAddress=2, two game sessions open and a third is
        closed with 1013 "too many sessions from this address". One of the
        two, never authenticated, closes: its session ends at once (the
        registry no longer holds it) and frees its place, so a new session
        opens and its player is seated and chats.
        """
        await self.startProxy(sessionsPerAddress=2)
        registry = cast(MemorySessionRegistry, self.serverFactory.registry)
        first = await self.player("first")
        await self.player("second")
        self.assertEqual(len(registry), 2)
        try:
            third = await within(connect(reactor, self.url, AphelionProtocol.GAME))
        except ClosedError as e:
            refused = (e.code, e.reason)
        else:
            self.addCleanup(self.closeClient, third)
            refused = (0, "a third session opened")
        self.assertEqual(refused, (1013, "too many sessions from this address"))
        await self.closeClient(first)
        await waitFor(lambda: len(registry) == 1)
        await self.assertWellBehavedPlayerGetsIn("fourth")
        self.assertEqual(len(registry), 2)


class OneConnectionPerTurnTests(LimitsTestCase):
    """
    Part 1.4: the packets a session sends in one reactor turn go on one
    connection, in order.
    """

    async def test_seatingRepliesOnOneSocket(self) -> None:
        """
        A session with three game sockets logs in: authenticate_response
        with connected, then game_config, arrive on the same socket, in that
        order, and the session chats. The client acknowledges late (ack
        delay 5 s), so the socket that carried the first reply has one
        unacknowledged packet more than the others: only the
        one-connection-per-turn rule keeps game_config on it. Repeated with
        new sessions.
        """
        await self.startProxy()
        for attempt in range(6):
            session = RecordingSession(reactor, self.url, ackDelay=5.0)
            self.addCleanup(session.close)
            await within(session.open(3))
            self.assertEqual(len(session.connections), 3)
            playerId = f"multi{attempt}"
            session.sendPayload(authenticate(playerId))
            first = S2C.FromString(await within(session.nextPayload()))
            self.assertEqual(first.authenticate_response.result, R.OK, first)
            self.assertEqual(first.connected.player_id, playerId)
            second = S2C.FromString(await within(session.nextPayload()))
            self.assertTrue(second.HasField("game_config"), second)
            self.assertIs(session.sockets[0], session.sockets[1], f"try {attempt}")
            session.sendPayload(say("multiplexed"))
            said = chat_pb2.S2C.FromString(await within(session.nextPayload())).said
            self.assertEqual((said.player_id, said.text), (playerId, "multiplexed"))
            await within(session.close())


class RecordingSession(ClientSession):
    """
    A L{ClientSession} that notes the socket each payload came on.

    :ivar sockets: the connection of each payload received, in order.
    """

    def __init__(self, reactor: Any, url: str, **options: Any) -> None:
        super().__init__(reactor, url, **options)
        self.sockets: list[AphelionClientProtocol] = []

    def payloadReceived(self, conn: AphelionClientProtocol, payload: bytes) -> None:
        """
        Note C{conn}, and queue C{payload} for L{nextPayload}.
        """
        self.sockets.append(conn)
        super().payloadReceived(conn, payload)


class CapturingFactory(AphelionClientFactory):
    """
    An L{AphelionClientFactory} that hands over the protocol it builds.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.built: Deferred[AphelionClientProtocol] = Deferred()

    def buildProtocol(self, addr: Any) -> Any:
        """
        Build the protocol and fire L{built} with it.
        """
        protocol = super().buildProtocol(addr)
        self.built.callback(cast(AphelionClientProtocol, protocol))
        return protocol


class SlowReaderTests(LimitsTestCase):
    """
    Bytes waiting to be written to one client connection are bounded
    (Part 6).
    """

    async def slowReader(self) -> AphelionClientProtocol:
        """
        A client whose socket has a 4 KiB receive buffer, handshaken, and
        then not read any more. It is aborted in cleanup, which waits until
        the proxy has dropped its side too.
        """
        port = urlparse(self.url).port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            factory = CapturingFactory(self.url, clock=reactor)
            reactor.adoptStreamConnection(sock.fileno(), socket.AF_INET, factory)
        finally:
            # The reactor holds its own duplicate of the descriptor.
            sock.close()
        client: AphelionClientProtocol = await within(factory.built)
        await within(client.whenHandshakeDone())
        conn = self.serverConnectionOf(client)
        connections = self.serverFactory.connections
        transport: Any = client.transport

        async def abort() -> None:
            transport.abortConnection()
            await within(client.whenClosed())
            await waitFor(lambda: conn not in connections, 10)

        self.addCleanup(lambda: Deferred.fromCoroutine(abort()))
        transport.pauseProducing()
        return client

    async def test_neverReadingClient(self) -> None:
        """
        A client that never reads and keeps sending payloads (each answered
        NOT_AUTHENTICATED) gets its connection paused for "write" once the
        proxy holds more than writePause bytes for it: the proxy reads it no
        more, and the bytes it holds for it stay below writeLimit while the
        client keeps sending. Another player logs in, is seated and chats
        meanwhile.
        """
        writePause, writeLimit = 131072, 4 * MiB
        await self.startProxy(
            unackedLimit=None, writePause=writePause, writeLimit=writeLimit
        )
        client = await self.slowReader()
        conn = self.serverConnectionOf(client)
        transport: Any = client.transport
        # A thousand ProtobufPackets (ack 0, a chat Say: not authenticate),
        # each a masked binary frame, written at once: the client protocol
        # would spend more time framing them one by one than the proxy
        # spends answering them.
        batch = maskedFrame(b"\x00" + say("are you there?")) * 1000
        most = 0
        sent = 0
        # Up to 16 MB of requests, far more than the buffers between the two
        # can hold: the proxy must stop reading before the end.
        while "write" not in conn._pauses and sent < 1_000_000:
            transport.write(batch)
            sent += 1000
            await deferLater(reactor, 0.001, lambda: None)
            most = max(most, bufferedBytes(conn.transport) or 0)
        self.assertIn("write", conn._pauses, f"{sent} packets sent")
        self.assertNotIn(conn.transport, reactor.getReaders())
        # The client goes on sending: it is not read, so what the proxy holds
        # for it does not grow to the limit.
        for _ in range(50):
            transport.write(batch)
            await deferLater(reactor, 0.001, lambda: None)
            most = max(most, bufferedBytes(conn.transport) or 0)
        await self.assertWellBehavedPlayerGetsIn("bystander")
        most = max(most, bufferedBytes(conn.transport) or 0)
        self.assertGreater(most, writePause)
        self.assertLess(most, writeLimit)
        self.assertIn("write", conn._pauses)
        self.assertNotIn(conn.transport, reactor.getReaders())
        self.assertTrue(conn.isOpen)


def maskedFrame(payload: bytes) -> bytes:
    """
    C{payload} as one final, masked binary WebSocket frame, as a client sends
    it (RFC 6455, section 5.2); at most 125 bytes.
    """
    assert len(payload) < 126
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x82, 0x80 | len(payload))) + key + masked


class ControlCharacterTests(LimitsTestCase):
    """
    IDs with control characters are refused and cannot forge log lines.
    """

    async def test_newlineInId(self) -> None:
        """
        In dev mode, authenticate with "alice\\n[gs1] FAKE LOG LINE" is
        answered INVALID_ID, and no log event of the test renders with the
        forged line on a line of its own; alice then logs in and chats.
        """
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        await self.startProxy()
        mallory = await self.player("mallory")
        answer = await self.login(mallory, "alice\n[gs1] FAKE LOG LINE")
        self.assertEqual(answer.authenticate_response.result, R.INVALID_ID)
        await self.assertWellBehavedPlayerGetsIn("alice")
        forged = [
            text
            for text in (formatEvent(event) for event in events)
            if any(
                line.strip().startswith("[gs1] FAKE LOG LINE")
                for line in text.splitlines()
            )
        ]
        self.assertEqual(forged, [])
        self.assertTrue(events)
