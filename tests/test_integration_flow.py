# -*- test-case-name: tests.test_integration_flow -*-
"""
Integration tests of the limits on slow readers between the AuthProxy and a
game server (Part 6), over real loopback sockets: a game server disconnects
the one player connection that does not read, and a player link gives up on
a game server that does not read.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, DeferredQueue, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from aphelion.codes import Encoding, EnvelopeType
from aphelion.control.proxy import PlayerLinkFactory, PlayerLinkProtocol
from aphelion.control.spawn import GameServer
from aphelion.envelope import EnvelopeDecoder, encodeEnvelope
from aphelion.game import GameServerFactory
from aphelion.games.echo import Echo, EchoGame
from aphelion.proto import control_pb2, game_pb2
from aphelion.testing import RecordingConnection

reactor: Any = _reactor
T = EnvelopeType
TOKEN = bytes(range(200, 232))
TIMEOUT = 30.0  # seconds any one step may take
LIMIT = 256 * 1024
PACKET = b"f" * 65000


def envelope(envelopeType: EnvelopeType, message: Any) -> bytes:
    """
    Encode one envelope: raw bytes for C{GameData}, protobuf for the rest.
    """
    if isinstance(message, bytes):
        return encodeEnvelope(envelopeType, message, Encoding.RAW)
    return encodeEnvelope(envelopeType, message.SerializeToString())


def hello(playerId: str, token: bytes = TOKEN) -> bytes:
    """
    What the AuthProxy sends first on a player connection: C{Type{CLIENT}}
    and C{ClientAuth}.
    """
    return envelope(
        T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=token)
    ) + envelope(T.ClientAuth, control_pb2.ClientAuth(player_id=playerId))


class Ending:
    """
    Something that ends once; any number of waiters may ask for its end.

    :ivar ended: whether it has ended.
    """

    def __init__(self) -> None:
        self.ended = False
        self._waiters: list[Deferred[None]] = []

    def whenEnded(self) -> Deferred[None]:
        """
        :return: a new L{Deferred} that fires once it has ended.
        """
        if self.ended:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def end(self) -> None:
        """
        It has ended: fire every waiter.
        """
        self.ended = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)


class Flooder(Ending, Protocol):
    """
    A peer that writes as fast as its own socket takes it and never reads:
    C{fill()} is called each reactor turn while its transport is not paused.

    """

    def __init__(self) -> None:
        super().__init__()
        self._paused = False
        self._call: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """
        Stop reading, and write until the connection is gone.
        """
        transport: Any = self.transport
        transport.pauseProducing()  # never read
        transport.registerProducer(self, True)
        self.start()
        self._schedule()

    def start(self) -> None:
        """
        Called once connected, before the first C{fill()}.
        """

    def fill(self) -> None:
        """
        Called each reactor turn while writing is not paused.
        """
        raise NotImplementedError()

    def pauseProducing(self) -> None:
        """
        Our own write buffer is full: wait.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        Our own write buffer drained: write again.
        """
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        """
        The connection is going away.
        """
        self._paused = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Stop writing; report the end.
        """
        self._paused = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.end()

    def _schedule(self) -> None:
        if self._call is None and not self._paused:
            self._call = reactor.callLater(0, self._turn)

    def _turn(self) -> None:
        self._call = None
        if self._paused or self.ended:
            return
        self.fill()
        self._schedule()


class FloodingPlayer(Flooder):
    """
    A player connection that floods C{GameData} to the echo game and never
    reads the echoes.
    """

    def __init__(self, token: bytes = TOKEN) -> None:
        """
        :param token: the game server's client token.
        """
        super().__init__()
        self._token = token

    def start(self) -> None:
        """
        Seat the player C{flooder}.
        """
        assert self.transport is not None
        self.transport.write(hello("flooder", self._token))

    def fill(self) -> None:
        """
        Eight 65000-byte game messages a turn.
        """
        assert self.transport is not None
        self.transport.write(envelope(T.GameData, PACKET) * 8)


class Player(Ending, Protocol):
    """
    A well-behaved player connection: it reads and queues every envelope.

    :ivar envelopes: the decoded envelopes, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.decoder = EnvelopeDecoder()
        self.envelopes: DeferredQueue[Any] = DeferredQueue()

    def dataReceived(self, data: bytes) -> None:
        """
        Queue each envelope.
        """
        for item in self.decoder.feed(data):
            self.envelopes.put(item)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Report the end.
        """
        self.end()

    async def next(self) -> Any:
        """
        The next envelope.
        """
        return await self.envelopes.get().addTimeout(TIMEOUT, reactor)


class Deaf(Ending, Protocol):
    """
    A game server that answers C{Connected} to a player link and then never
    reads.

    """

    def connectionMade(self) -> None:
        """
        Seat the player, then stop reading.
        """
        transport: Any = self.transport
        transport.pauseProducing()
        transport.write(envelope(T.Connected, game_pb2.GameDetails(server_id="deaf")))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Report the end.
        """
        self.end()


class SmallLink(PlayerLinkProtocol):
    """
    A player link that gives up once 256 KiB wait unsent.
    """

    writeBufferLimit = LIMIT


class FlowTests(TestCase):
    """
    Slow readers on both ends of Part 2's player connections.
    """

    async def connect(self, port: int, protocol: Protocol) -> None:
        """
        Connect C{protocol} to C{port} on loopback.
        """
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol
        ).addTimeout(TIMEOUT, reactor)

    async def close(self, protocol: Any) -> None:
        """
        Abort a connection unless it is gone, and wait for its end.
        """
        if not protocol.ended:
            protocol.transport.abortConnection()
        await protocol.whenEnded().addTimeout(TIMEOUT, reactor)

    async def drain(self, factory: GameServerFactory) -> None:
        """
        Close every connection of the game server (a drain), and wait.
        """
        if not factory.draining:
            factory.shutdown("test over", 5.0)
        await factory.whenShutDown().addTimeout(TIMEOUT, reactor)

    async def test_gameServerDropsSlowPlayer(self) -> None:
        """
        A player connection that floods the echo game and never reads its
        echoes is disconnected once more than the game server's player
        write limit waits on it; the game sees it leave. Another player on
        the same game server keeps its seat and gets its echo.
        """
        left: DeferredQueue[tuple[str, str]] = DeferredQueue()

        class WatchedEcho(Echo):
            def playerLeft(self, reason: str) -> None:
                left.put((self.playerId, reason))

        game = EchoGame()
        game.protocol = WatchedEcho  # type: ignore[misc]
        factory = GameServerFactory(
            clock=reactor, token=TOKEN, game=game, playerWriteLimit=LIMIT
        )
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(self.drain, factory)
        number = port.getHost().port

        good = Player()
        await self.connect(number, good)
        self.addCleanup(self.close, good)
        assert good.transport is not None
        good.transport.write(hello("good"))
        self.assertEqual((await good.next()).type, T.Connected)
        self.assertEqual((await good.next()).type, T.GameConfig)

        flooder = FloodingPlayer()
        with capturedLogs() as events:
            await self.connect(number, flooder)
            self.addCleanup(self.close, flooder)
            self.assertEqual(
                await left.get().addTimeout(TIMEOUT, reactor),
                ("flooder", "reads too slowly"),
            )
            await flooder.whenEnded().addTimeout(TIMEOUT, reactor)
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual([e["cause"] for e in warnings], ["player reads too slowly"])
        self.assertEqual(list(factory.players), ["good"])

        good.transport.write(envelope(T.GameData, b"still here"))
        echo = await good.next()
        self.assertEqual((echo.type, echo.payload), (T.GameData, b"still here"))
        self.assertFalse(good.ended)

    async def test_linkDropsDeafGameServer(self) -> None:
        """
        A player link to a game server that does not read, relaying a player
        that keeps sending, is aborted once more than its limit waits: the
        seat hears it is lost, and the player's connection, paused by the
        link meanwhile, reads again.
        """
        deaf = Deaf()
        listening = reactor.listenTCP(
            0, Factory.forProtocol(lambda: deaf), interface="127.0.0.1"
        )
        self.addCleanup(listening.stopListening)
        self.addCleanup(self.close, deaf)

        connection = PauseRecorder()
        seat = WatchedSeat(connection)
        server = GameServer("gs1", TOKEN, port=listening.getHost().port)
        linkFactory = PlayerLinkFactory(
            clock=reactor,
            seat=seat,  # type: ignore[arg-type]
            server=server,
            clientAuth=control_pb2.ClientAuth(player_id="alice"),
        )
        linkFactory.protocol = SmallLink  # type: ignore[assignment]
        reactor.connectTCP("127.0.0.1", server.port, linkFactory)
        link = await seat.seated.addTimeout(TIMEOUT, reactor)
        self.addCleanup(self.closeLink, link, seat)

        relaying: list[IDelayedCall] = []

        def relay() -> None:
            relaying.clear()
            if link.closing:
                return
            for _ in range(8):
                link.sendGameData(PACKET)
            relaying.append(reactor.callLater(0, relay))

        relay()
        self.addCleanup(lambda: [c.cancel() for c in relaying if c.active()])
        with capturedLogs() as events:
            await seat.whenEnded().addTimeout(TIMEOUT, reactor)
        self.assertIn("abort", seat.reason.lower())
        self.assertTrue(link.closing)
        self.assertIn({"link"}, connection.history)
        self.assertEqual(connection.pauses, set())
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual([e["cause"] for e in warnings], ["peer reads too slowly"])

    async def closeLink(self, link: PlayerLinkProtocol, seat: WatchedSeat) -> None:
        """
        Abort the link unless it is gone, and wait for its end.
        """
        if not seat.ended:
            link.abortConnection()
        await seat.whenEnded().addTimeout(TIMEOUT, reactor)


class PauseRecorder(RecordingConnection):
    """
    A client connection that keeps every state of its pauses.

    :ivar history: the causes that paused it, after each L{pauseReading}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: list[set[str]] = []

    def pauseReading(self, cause: str) -> None:
        """
        Record the pause, and the causes now pausing it.
        """
        super().pauseReading(cause)
        self.history.append(set(self.pauses))


class WatchedSeat(Ending):
    """
    The seat of one player link, in place of the gateway's: it reports the
    link's progress through L{Deferred}s.

    :ivar session: what the link reads the player's connections from.
    :ivar seated: fires with the link once the game server seated the player.
    :ivar reason: why the link was lost, once it was (see C{whenEnded}).
    """

    def __init__(self, connection: RecordingConnection) -> None:
        super().__init__()
        self.session = SimpleNamespace(connections=[connection])
        self.seated: Deferred[PlayerLinkProtocol] = Deferred()
        self.reason = ""
        self._link: PlayerLinkProtocol | None = None

    def linkMade(self, link: PlayerLinkProtocol) -> None:
        """
        Keep the link.
        """
        self._link = link

    def accepted(self, details: game_pb2.GameDetails) -> None:
        """
        Report the link seated.
        """
        assert self._link is not None
        self.seated.callback(self._link)

    def gameConfig(self, config: game_pb2.GameConfig) -> None:
        """
        Not sent by this game server.
        """

    def gameData(self, payload: bytes) -> None:
        """
        Not sent by this game server.
        """

    def rejected(self, code: int, reason: str) -> None:
        """
        Not sent by this game server.
        """

    def disconnected(self, code: int, reason: str) -> None:
        """
        Not sent by this game server.
        """

    def lost(self, reason: str) -> None:
        """
        Report the link lost.
        """
        self.reason = reason
        self.end()
