# -*- test-case-name: tests.test_integration_child -*-
"""
Integration tests of L{aphelion.game.child}: a real game-server process,
spawned as the AuthProxy spawns it, spoken to over loopback TCP by a small
envelope client written here (not by aphelion's own proxy side).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol, Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from aphelion.codes import Encoding, EnvelopeType
from aphelion.envelope import (
    PAYLOAD_TYPES,
    Envelope,
    EnvelopeDecoder,
    decodePayload,
    encodeEnvelope,
)
from aphelion.game.child import Options
from aphelion.proto import chat_pb2, control_pb2
from tests.test_integration_flow import FloodingPlayer

T = EnvelopeType
TIMEOUT = 15.0  # seconds any one step may take


def theReactor() -> Any:
    """
    The global reactor, which trial runs (imported here, not at module top).
    """
    from twisted.internet import reactor

    return reactor


class ChildProcess(ProcessProtocol):
    """
    One game-server process: its port line, its logs and its exit.

    :ivar port: fires with the port number of its C{PORT} line.
    :ivar ended: fires with its exit status.
    :ivar stderr: what it logged.
    """

    def __init__(self) -> None:
        """
        Nothing heard yet.
        """
        self.port: Deferred[int] = Deferred()
        self.ended: Deferred[int | None] = Deferred()
        self.stdout = b""
        self.stderr = b""
        self.running = False

    def connectionMade(self) -> None:
        """
        The process runs.
        """
        self.running = True

    def outReceived(self, data: bytes) -> None:
        """
        Look for the port line.
        """
        self.stdout += data
        if not self.port.called and b"\n" in self.stdout:
            line = self.stdout.split(b"\n", 1)[0]
            word, _, number = line.partition(b" ")
            if word == b"PORT" and number.isdigit():
                self.port.callback(int(number))
            else:
                self.port.errback(ValueError(f"bad port line {line!r}"))

    def errReceived(self, data: bytes) -> None:
        """
        Keep the logs, for failure messages.
        """
        self.stderr += data

    def processEnded(self, reason: Failure) -> None:
        """
        Report the exit status.
        """
        self.running = False
        if not self.port.called:
            self.port.errback(reason)
        if isinstance(reason.value, (ProcessDone, ProcessTerminated)):
            self.ended.callback(reason.value.exitCode)
        else:
            self.ended.errback(reason)


class EnvelopeClient(Protocol):
    """
    A minimal envelope peer: it queues what it receives and sends what it is
    told, with the codec only.

    :ivar envelopes: the decoded envelopes received, in order.
    :ivar lost: fires when the connection is gone.
    """

    def __init__(self) -> None:
        """
        Nothing received yet.
        """
        self.decoder = EnvelopeDecoder()
        self.envelopes: DeferredQueue[Envelope] = DeferredQueue()
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        """
        Queue each envelope.
        """
        for item in self.decoder.feed(data):
            self.envelopes.put(item)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Note the end.
        """
        self.lost.callback(None)

    def send(self, envelopeType: T, message: Message | bytes) -> None:
        """
        Send one envelope.
        """
        assert self.transport is not None
        if isinstance(message, bytes):
            data = encodeEnvelope(envelopeType, message, Encoding.RAW)
        else:
            data = encodeEnvelope(envelopeType, message.SerializeToString())
        self.transport.write(data)

    async def next(self, expected: T) -> Any:
        """
        The next envelope that is not a C{Heartbeat}, which must be of the
        expected type.

        :return: its parsed message, or its raw payload for C{GameData}.
        """
        while True:
            item = await self.envelopes.get().addTimeout(TIMEOUT, theReactor())
            if item.type != T.Heartbeat:
                break
        assert item.type == expected, f"got type {item.type}, not {expected.name}"
        messageClass = PAYLOAD_TYPES[expected]
        if messageClass is None:
            return item.payload
        return decodePayload(item, messageClass)

    async def close(self) -> None:
        """
        Close, and wait until closed.
        """
        if not self.lost.called:
            assert self.transport is not None
            self.transport.loseConnection()
        await self.lost


class ChildTests(TestCase):
    """
    The game-server process of C{aphelion.games.chat}.
    """

    token = bytes(range(100, 132))

    async def spawn(
        self,
        tokenLine: bytes | None = None,
        game: str = "aphelion.games.chat",
        extra: tuple[str, ...] = (),
    ) -> ChildProcess:
        """
        Start the process and give it its token (or C{tokenLine}); it is
        killed and awaited on cleanup.

        :param game: the game module.
        :param extra: more command-line arguments.
        """
        reactor = theReactor()
        child = ChildProcess()
        reactor.spawnProcess(
            child,
            sys.executable,
            [
                sys.executable,
                "-m",
                "aphelion.game.child",
                "--game",
                game,
                "--server-id",
                "it-1",
                *extra,
            ],
            env=dict(os.environ),
        )
        self.addCleanup(self.reap, child)
        assert child.transport is not None
        if tokenLine is None:
            tokenLine = self.token.hex().encode("ascii") + b"\n"
        child.transport.write(tokenLine)
        return child

    async def reap(self, child: ChildProcess) -> None:
        """
        Kill the process if it still runs, and wait for its end.
        """
        if child.running:
            assert child.transport is not None
            child.transport.signalProcess("KILL")
        await child.ended

    async def connect(self, port: int) -> EnvelopeClient:
        """
        Connect an envelope client to the game server; it is closed on cleanup.
        """
        endpoint = TCP4ClientEndpoint(theReactor(), "127.0.0.1", port)
        client: EnvelopeClient = await connectProtocol(
            endpoint, EnvelopeClient()
        ).addTimeout(TIMEOUT, theReactor())
        self.addCleanup(client.close)
        return client

    async def exitStatus(self, child: ChildProcess) -> int | None:
        """
        Wait for the process to exit.
        """
        status = await child.ended.addTimeout(TIMEOUT, theReactor())
        if status != 0:
            self.fail(f"exit status {status}; stderr:\n{child.stderr.decode()}")
        return status

    async def test_controlPlayAndShutdown(self) -> None:
        """
        The child reports its port; C{Control} gets C{Ready}; a player gets
        C{Connected} and the chat's config; its C{say} comes back as C{said};
        C{Shutdown} disconnects it, closes the control connection and the
        process exits with status 0.
        """
        child = await self.spawn()
        port = await child.port.addTimeout(TIMEOUT, theReactor())

        control = await self.connect(port)
        control.send(
            T.Control,
            control_pb2.Control(token=self.token, options={"motd": "integration"}),
        )
        ready = await control.next(T.Ready)
        self.assertEqual(
            ready, control_pb2.Ready(server_id="it-1", name="chat", capacity=64)
        )
        status = await control.next(T.Status)
        self.assertEqual((status.players, status.accepting), (0, True))

        player = await self.connect(port)
        player.send(
            T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=self.token)
        )
        player.send(
            T.ClientAuth, control_pb2.ClientAuth(player_id="alice", name="Alice")
        )
        connected = await player.next(T.Connected)
        self.assertEqual(
            (connected.player_id, connected.server_id, connected.players),
            ("alice", "it-1", 1),
        )
        config = await player.next(T.GameConfig)
        self.assertEqual(json.loads(config.content)["motd"], "integration")
        status = await control.next(T.Status)
        self.assertEqual(status.players, 1)

        player.send(
            T.GameData,
            chat_pb2.C2S(say=chat_pb2.Say(text="hi there")).SerializeToString(),
        )
        said = chat_pb2.S2C.FromString(await player.next(T.GameData)).said
        self.assertEqual((said.player_id, said.text), ("alice", "hi there"))

        control.send(
            T.Shutdown, control_pb2.Shutdown(deadline_ms=5000, reason="test over")
        )
        disconnect = await player.next(T.Disconnect)
        self.assertEqual((disconnect.code, disconnect.reason), (1, "test over"))
        await player.lost.addTimeout(TIMEOUT, theReactor())
        status = await control.next(T.Status)
        self.assertFalse(status.accepting)
        await control.lost.addTimeout(TIMEOUT, theReactor())
        self.assertEqual(await self.exitStatus(child), 0)

    async def test_clientTokenAndSeatHold(self) -> None:
        """
        With C{Control.client_token}, player connections present it (the
        control token is refused); a player whose connection drops without a
        C{Disconnect} keeps its seat (C{Status} unchanged) and takes it back
        with C{ClientAuth{resumed}}, getting what the room said meanwhile;
        unclaimed, a held seat ends after C{--seat-hold}.
        """
        # Long enough for a loaded machine to resume within it.
        child = await self.spawn(extra=("--seat-hold", "3"))
        port = await child.port.addTimeout(TIMEOUT, theReactor())
        clientToken = bytes(range(1, 33))
        control = await self.connect(port)
        control.send(
            T.Control, control_pb2.Control(token=self.token, client_token=clientToken)
        )
        await control.next(T.Ready)
        await control.next(T.Status)

        refused = await self.connect(port)
        refused.send(
            T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=self.token)
        )
        error = await refused.next(T.Error)
        self.assertEqual(error.code, 6)

        async def seat(playerId: str, resumed: bool = False) -> EnvelopeClient:
            player = await self.connect(port)
            player.send(
                T.Type,
                control_pb2.Type(kind=control_pb2.Type.CLIENT, token=clientToken),
            )
            player.send(
                T.ClientAuth,
                control_pb2.ClientAuth(
                    player_id=playerId,
                    session_id=b"sid-" + playerId.encode(),
                    resumed=resumed,
                ),
            )
            await player.next(T.Connected)
            await player.next(T.GameConfig)
            return player

        alice = await seat("alice")
        bob = await seat("bob")
        status = await control.next(T.Status)
        if status.players != 2:
            status = await control.next(T.Status)
        self.assertEqual(status.players, 2)

        await alice.close()  # no Disconnect: the seat is held
        # Two connections are not ordered: until the child has seen alice's
        # go, bob's message would still be written to her old connection.
        await self.waitForLog(
            child, lambda text: "holding the seat of player alice" in text, "the hold"
        )
        bob.send(
            T.GameData, chat_pb2.C2S(say=chat_pb2.Say(text="wb")).SerializeToString()
        )
        await bob.next(T.GameData)
        alice = await seat("alice", resumed=True)
        said = chat_pb2.S2C.FromString(await alice.next(T.GameData)).said
        self.assertEqual((said.player_id, said.text), ("bob", "wb"))

        await bob.close()
        status = await control.next(T.Status)  # after the 3 s hold
        self.assertEqual(status.players, 1)
        await self.waitForLog(
            child, lambda text: "bob was not claimed" in text, "the hold's end"
        )

    async def waitForLog(
        self, child: ChildProcess, test: Callable[[str], bool], what: str
    ) -> None:
        """
        Wait until what the child logged passes C{test}.

        :param what: what is awaited, for the failure message.
        """
        reactor = theReactor()
        deadline = reactor.seconds() + TIMEOUT
        while not test(child.stderr.decode("utf-8", "replace")):
            if reactor.seconds() > deadline:
                self.fail(f"not logged: {what}; stderr:\n{child.stderr.decode()}")
            await deferLater(reactor, 0.05)

    async def test_badTokensThrottled(self) -> None:
        """
        Twenty connections with a wrong client token each get C{Error{6}},
        but the child logs one line for the first and then, every
        C{--log-interval}, one line with the count of the others: the
        AuthProxy's log, which takes the child's, does not grow by a line a
        connection.
        """
        child = await self.spawn(extra=("--log-interval", "2"))
        port = await child.port.addTimeout(TIMEOUT, theReactor())
        for _ in range(20):
            client = await self.connect(port)
            client.send(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=b"no")
            )
            error = await client.next(T.Error)
            self.assertEqual(error.code, 6)
            await client.lost.addTimeout(TIMEOUT, theReactor())

        def counted(text: str) -> int:
            # "[namespace#warn] 19 more: Error BAD_TOKEN sent in the last 2 s"
            return sum(
                int(line.split("] ", 1)[1].split(" ", 1)[0])
                for line in text.splitlines()
                if "more: Error BAD_TOKEN sent" in line
            )

        # The twenty may straddle two intervals: wait for all 19 counted.
        await self.waitForLog(
            child, lambda text: counted(text) >= 19, "summaries counting 19"
        )
        text = child.stderr.decode()
        self.assertEqual(counted(text), 19)
        self.assertEqual(text.count("sending Error"), 1)

    async def test_playerWriteLimit(self) -> None:
        """
        C{--player-write-limit} is the game server's limit on the bytes
        waiting for one player connection: a player that floods the echo
        game and never reads is disconnected, and the log names that limit.
        """
        child = await self.spawn(
            game="aphelion.games.echo", extra=("--player-write-limit", "262144")
        )
        port = await child.port.addTimeout(TIMEOUT, theReactor())
        flooder = FloodingPlayer(self.token)
        endpoint = TCP4ClientEndpoint(theReactor(), "127.0.0.1", port)
        await connectProtocol(endpoint, flooder).addTimeout(TIMEOUT, theReactor())
        await flooder.whenEnded().addTimeout(TIMEOUT, theReactor())
        await self.waitForLog(
            child,
            lambda text: "player flooder reads too slowly: more than 262144" in text,
            "the slow player with the limit",
        )

    async def test_stdinClosed(self) -> None:
        """
        When its standard input closes (the parent is gone), the child exits
        with status 0.
        """
        child = await self.spawn()
        await child.port.addTimeout(TIMEOUT, theReactor())
        assert child.transport is not None
        child.transport.closeStdin()
        self.assertEqual(await self.exitStatus(child), 0)

    async def test_badToken(self) -> None:
        """
        A token line that is not 64 hex digits makes the child exit with
        status 1, before it listens.
        """
        child = await self.spawn(b"not a token\n")
        status = await child.ended.addTimeout(TIMEOUT, theReactor())
        self.assertEqual(status, 1)
        self.assertEqual(child.stdout, b"")
        self.assertIn(b"no control token", child.stderr)
        self.failureResultOf(child.port)


class OptionsTests(SynchronousTestCase):
    """
    The child's command line.
    """

    def parse(self, *args: str) -> Options:
        """
        Parse C{--game echo} and C{args}.
        """
        options = Options()
        options.parseOptions(["--game", "aphelion.games.echo", *args])
        return options

    def test_defaults(self) -> None:
        """
        By default a player connection may hold 4 MiB unsent, and the
        summary log lines come every 10 s.
        """
        options = self.parse()
        self.assertEqual(options["player-write-limit"], 4 * 1024 * 1024)
        self.assertEqual(options["log-interval"], 10.0)
        self.assertEqual(options["seat-hold"], 15.0)

    def test_values(self) -> None:
        """
        C{--player-write-limit} takes bytes, C{--log-interval} seconds.
        """
        options = self.parse(
            "--player-write-limit", "65536", "--log-interval", "2.5", "--seat-hold", "0"
        )
        self.assertEqual(options["player-write-limit"], 65536)
        self.assertEqual(options["log-interval"], 2.5)
        self.assertEqual(options["seat-hold"], 0.0)

    def test_badValues(self) -> None:
        """
        A limit or interval that is not positive is a usage error.
        """
        for args in (
            ("--player-write-limit", "0"),
            ("--player-write-limit", "-5"),
            ("--log-interval", "0"),
            ("--seat-hold", "-1"),
            ("--seat-hold", "nan"),
        ):
            self.assertRaises(usage.UsageError, self.parse, *args)
