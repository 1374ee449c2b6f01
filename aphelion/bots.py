# -*- test-case-name: tests.test_bots -*-
"""
Bots for the arena (L{aphelion.games.arena}), on L{aphelion.client}: each
logs in with a dev ID, steers at random and records what a player feels.

What they report (L{Report}):

  - the interval between consecutive snapshots (its p50, p99 and standard
    deviation, the jitter), by the bot's clock on arrival;
  - the input-to-snapshot latency: from sending an C{Input} to the first
    snapshot whose C{you.ack} is at least that input's C{seq} (the game
    applies inputs at its next tick, so at 20 Hz up to 50 ms of it is the
    wait for the tick);
  - missing ticks: the gaps in the snapshots' tick numbers;
  - reconnects: connections that closed under a bot and were opened again
    with the session's token.

L{PlayerFeel} and L{Report} are plain classes (events in, figures out);
L{Bot} is the client and L{runBots} runs many for a while. C{aphelion bots}
(L{aphelion.cli}) prints the report; C{benchmarks/capacity.py} merges the
reports of several processes (L{Report.fromDict}, L{Report.merge}).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from aphelion.botstats import Histogram, PlayerFeel, Report
from aphelion.client import AphelionClientFactory, AphelionClientProtocol
from aphelion.client.connect import connectFactory
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.proto.arena_pb2 import C2S, S2C, Input
from aphelion.proto.game_pb2 import Authenticate, AuthenticateResponse

__all__ = [
    "GAMES",
    "Bot",
    "Histogram",
    "PlayerFeel",
    "Report",
    "runBots",
]

#: The games the bots can play.
GAMES = ("arena",)

# Every direction a bot may steer in, standing still included.
_DIRECTIONS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


class _BotProtocol(AphelionClientProtocol):
    """
    A bot's connection: hands everything to its L{Bot}.
    """

    factory: _BotFactory

    def handshakeDone(self, token: bytes, resumed: bool) -> None:
        """
        Called when the init handshake is done: tell the bot.
        """
        self.factory.bot.handshakeDone(self, resumed)

    def payloadReceived(self, payload: bytes) -> None:
        """
        Called with each payload: tell the bot.
        """
        self.factory.bot.payloadReceived(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Called when the connection closed: tell the bot.
        """
        super().onClose(wasClean, code, reason)
        self.factory.bot.connectionClosed(self)


class _BotFactory(AphelionClientFactory):
    protocol = _BotProtocol

    def __init__(self, url: str, *, bot: Bot, **options: Any) -> None:
        super().__init__(url, **options)
        self.bot = bot


class Bot:
    """
    One player of the arena: connects, authenticates with its ID, then
    sends an C{Input} C{inputHz} times a second, now and then turning to a
    random direction. A lost connection is opened again with the session's
    token after L{reconnectDelay}; if the session is gone, the bot logs in
    again.

    :cvar reconnectDelay: seconds before opening a lost connection again.
    :cvar maxReconnects: how many times in a row it tries.
    :cvar turnChance: the chance that an input turns to a new direction.
    :ivar seated: fires once the bot is first seated, or fails with why not.
    :ivar joined: whether it was seated.
    :ivar connection: the open connection, or L{None}.
    """

    _log = Logger()

    reconnectDelay = 1.0
    maxReconnects = 5
    turnChance = 0.2

    def __init__(
        self,
        reactor: Any,
        url: str,
        playerId: str,
        report: Report,
        *,
        inputHz: float = 10.0,
        rng: random.Random | None = None,
        ackDelay: float = 0.1,
    ) -> None:
        """
        :param reactor: connects, and is the clock.
        :param url: the AuthProxy's WebSocket URL.
        :param playerId: the ID to log in with (dev auth takes any).
        :param report: where what it feels is counted.
        :param inputHz: inputs per second.
        :param rng: the source of its turns.
        :param ackDelay: seconds before an ack-only packet: with more than
            the input interval, acks ride on inputs.
        """
        self._reactor = reactor
        self._url = url
        self.playerId = playerId
        self.feel = PlayerFeel(report)
        self._inputHz = inputHz
        self._random = rng if rng is not None else random.Random()
        self._ackDelay = ackDelay
        self._token: bytes | None = None
        self._seq = 0
        self._direction = (0, 0)
        self._stopping = False
        self._failures = 0
        self._loop: LoopingCall | None = None
        self._closed: Deferred[None] | None = None
        self.connection: AphelionClientProtocol | None = None
        self.seated: Deferred[None] = Deferred()
        self.joined = False

    def start(self) -> Deferred[None]:
        """
        Connect and log in.

        :return: L{seated}.
        """
        self._connect()
        return self.seated

    def stop(self) -> Deferred[None]:
        """
        Stop steering and close with 1000.

        :return: a L{Deferred} that fires once the connection is closed.
        """
        self._stopping = True
        self._stopLoop()
        connection = self.connection
        if connection is None:
            return Deferred.fromCoroutine(_nothing())
        connection.closeWith(CloseCode.NORMAL, "bot done")
        return Deferred.fromCoroutine(_closed(connection))

    # -- from the connection -------------------------------------------------

    def handshakeDone(self, connection: AphelionClientProtocol, resumed: bool) -> None:
        """
        Called when a connection finished its init handshake: log in, unless
        it resumed a session that is logged in.
        """
        self.connection = connection
        self._failures = 0
        if self._token is not None:
            self.feel.reconnected()
        self._token = connection.token
        if not resumed:
            connection.sendPayload(
                C2S(authenticate=Authenticate(id=self.playerId)).SerializeToString()
            )

    def payloadReceived(self, payload: bytes) -> None:
        """
        Called with each payload: a snapshot is counted; the first
        C{connected} starts the steering; a refusal fails L{seated}.
        """
        try:
            message = S2C.FromString(payload)
        except DecodeError:
            self._log.warn("bot {playerId}: unreadable S2C", playerId=self.playerId)
            return
        if message.HasField("snapshot"):
            self.feel.snapshotReceived(
                message.snapshot.tick, message.you.ack, self._reactor.seconds()
            )
            return
        if message.HasField("authenticate_response"):
            response = message.authenticate_response
            if response.result == AuthenticateResponse.NOT_AUTHENTICATED:
                self._send(C2S(authenticate=Authenticate(id=self.playerId)))
            elif response.result != AuthenticateResponse.OK:
                name = AuthenticateResponse.Result.Name(response.result)
                self._fail(f"not admitted: {name} {response.description}")
        if message.HasField("connected") and not self.seated.called:
            self.joined = True
            self._startLoop()
            self.seated.callback(None)

    def connectionClosed(self, connection: AphelionClientProtocol) -> None:
        """
        Called when a connection closed: open it again, unless the bot is
        stopping or has failed.
        """
        if connection is not self.connection:
            # It closed before its handshake: the connect attempt's errback
            # (_connectFailed) deals with it.
            return
        self.connection = None
        if self._stopping:
            return
        self._failures += 1
        if self._failures > self.maxReconnects:
            self._fail(f"closed with {connection.closeCode}: {connection.closeReason}")
            return
        self._reactor.callLater(self.reconnectDelay, self._connect)

    # -- internals -----------------------------------------------------------

    def _connect(self) -> None:
        if self._stopping:
            return
        factory = _BotFactory(
            self._url,
            bot=self,
            clock=self._reactor,
            aphelionProtocol=AphelionProtocol.GAME,
            token=self._token,
            ackDelay=self._ackDelay,
        )
        d = connectFactory(self._reactor, factory)
        d.addErrback(self._connectFailed)

    def _connectFailed(self, failure: Any) -> None:
        if self._stopping:
            return
        self._failures += 1
        if self._failures > self.maxReconnects:
            self._fail(str(failure.value))
            return
        self._reactor.callLater(self.reconnectDelay, self._connect)

    def _fail(self, why: str) -> None:
        self._stopping = True
        self._stopLoop()
        if self.connection is not None:
            self.connection.closeWith(CloseCode.NORMAL, "bot gives up")
        if not self.seated.called:
            self.seated.errback(RuntimeError(f"{self.playerId}: {why}"))
        else:
            self._log.warn(
                "bot {playerId} gave up: {why}", playerId=self.playerId, why=why
            )

    def _send(self, message: C2S) -> bool:
        connection = self.connection
        if connection is None or not connection.handshaken:
            return False
        connection.sendPayload(message.SerializeToString())
        return True

    def _steer(self) -> None:
        if self._random.random() < self.turnChance:
            self._direction = self._random.choice(_DIRECTIONS)
        dx, dy = self._direction
        seq = self._seq + 1
        if self._send(C2S(input=Input(seq=seq, dx=dx, dy=dy))):
            self._seq = seq
            self.feel.inputSent(seq, self._reactor.seconds())

    def _startLoop(self) -> None:
        loop = LoopingCall(self._steer)
        loop.clock = self._reactor
        self._loop = loop
        # A random phase, so that the bots' inputs do not come in bursts.
        self._reactor.callLater(
            self._random.random() / self._inputHz, self._startLoopNow, loop
        )

    def _startLoopNow(self, loop: LoopingCall) -> None:
        if self._loop is loop and not self._stopping:
            loop.start(1.0 / self._inputHz).addErrback(
                lambda f: self._log.failure("bot steering failed", f)
            )

    def _stopLoop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()


async def _nothing() -> None:
    return None


async def _closed(connection: AphelionClientProtocol) -> None:
    await connection.whenClosed()


async def runBots(
    reactor: Any,
    url: str,
    count: int,
    *,
    seconds: float,
    warmup: float = 2.0,
    inputHz: float = 10.0,
    idPrefix: str = "bot-",
    firstId: int = 1,
    concurrency: int = 50,
    ackDelay: float = 0.1,
    seed: int | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Report:
    """
    Run C{count} bots: log them in (C{concurrency} at a time), let them play
    C{warmup} seconds, record for C{seconds}, then close them all.

    :param idPrefix: with a number from C{firstId} up, the bots' IDs.
    :param progress: called with a line at each stage (all seated,
        recording, done).
    :return: the L{Report} of the recorded window.
    """
    report = Report()
    report.players = count
    rng = random.Random(seed)
    bots = [
        Bot(
            reactor,
            url,
            f"{idPrefix}{firstId + n}",
            report,
            inputHz=inputHz,
            rng=random.Random(rng.random()),
            ackDelay=ackDelay,
        )
        for n in range(count)
    ]
    semaphore = DeferredSemaphore(concurrency)
    failures: list[str] = []

    async def seat(bot: Bot) -> None:
        try:
            await semaphore.run(bot.start)
        except Exception as e:
            failures.append(str(e))
        else:
            report.joined += 1

    await gatherResults([Deferred.fromCoroutine(seat(bot)) for bot in bots])
    progress(f"{report.joined} of {count} bots seated")
    for why in failures[:5]:
        progress(f"not seated: {why}")
    try:
        await deferLater(reactor, warmup, lambda: None)
        progress(f"recording for {seconds:g} s")
        report.recording = True
        started = reactor.seconds()
        await deferLater(reactor, seconds, lambda: None)
        report.recording = False
        report.seconds = reactor.seconds() - started
        seated = [bot.feel.snapshots for bot in bots if bot.joined]
        report.fewestSnapshots = min(seated) if seated else None
    finally:
        closing = [bot.stop() for bot in bots]
        await (
            gatherResults(closing)
            .addTimeout(10, reactor)
            .addErrback(lambda f: progress(f"not every bot closed in time: {f.value}"))
        )
    progress("done")
    return report
