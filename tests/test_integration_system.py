# -*- test-case-name: tests.test_integration_system -*-
"""
The whole system over loopback: an AuthProxy in this process, real game-server
processes that it spawned, and real WebSocket clients.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from aphelion.accounts import addAccount
from aphelion.auth import DatabaseChecker, DevChecker, TicketChecker, mintTicket
from aphelion.chatclient import ChatTerminal
from aphelion.client import AphelionClientProtocol, connect
from aphelion.codes import AphelionProtocol, EnvelopeType, ErrorCode
from aphelion.config import Config
from aphelion.control.spawn import RemoteGameServer, ServerState
from aphelion.envelope import EnvelopeDecoder, encodeEnvelope
from aphelion.proto import chat_pb2, control_pb2
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate, AuthenticateResponse
from aphelion.service import build

reactor: Any = _reactor
R = AuthenticateResponse


async def waitFor(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    """
    Poll C{predicate} on the reactor until it holds, or fail after C{seconds}.
    """
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"timed out waiting for {predicate}")


def within(d: Deferred[Any], seconds: float = 10.0) -> Deferred[Any]:
    """
    Fail C{d} if it has not fired within C{seconds}.
    """
    return d.addTimeout(seconds, reactor)


class SystemTestCase(TestCase):
    """
    Starts an AuthProxy with two spawned chat game servers.
    """

    timeout = 120

    async def startProxy(self, checker: Any = None, **settings: Any) -> None:
        """
        Build and start the proxy; wait until both game servers are ready.
        """
        config = Config(
            listen=(),
            gameServers=2,
            checkers=(checker if checker is not None else DevChecker(),),
            restartInitial=0.2,
            sessionTimeout=30,
            drainDeadline=2,
        )
        self.service = build(replace(config, **settings), reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.monitor = self.service.monitor
        port = reactor.listenTCP(0, self.service.site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = f"ws://127.0.0.1:{port.getHost().port}/aphelion"
        await waitFor(self.allReady)

    def allReady(self) -> bool:
        """
        Whether every game server is ready.
        """
        return all(s.state is ServerState.READY for s in self.monitor.servers.values())

    async def player(
        self, playerId: str, token: bytes | None = None
    ) -> AphelionClientProtocol:
        """
        Connect a game client; close it in cleanup.
        """
        client = await within(connect(reactor, self.url, AphelionProtocol.GAME, token))
        self.addCleanup(self.closeClient, client)
        return client

    async def closeClient(self, client: AphelionClientProtocol) -> None:
        """
        Close a client and wait for the close.
        """
        client.closeWith(1000, "bye")
        await within(client.whenClosed())

    async def login(self, client: AphelionClientProtocol, playerId: str) -> S2C:
        """
        Authenticate and return the first answer.
        """
        client.sendPayload(
            C2S(authenticate=Authenticate(id=playerId)).SerializeToString()
        )
        return S2C.FromString(await within(client.nextPayload()))

    async def seated(self, playerId: str) -> tuple[AphelionClientProtocol, S2C]:
        """
        A client authenticated and seated; its game_config is consumed.
        """
        client = await self.player(playerId)
        answer = await self.login(client, playerId)
        self.assertEqual(answer.authenticate_response.result, R.OK, answer)
        config = S2C.FromString(await within(client.nextPayload()))
        self.assertTrue(config.HasField("game_config"))
        return client, answer


def say(text: str) -> bytes:
    """
    A chat C{Say}.
    """
    return chat_pb2.C2S(say=chat_pb2.Say(text=text)).SerializeToString()


class ChatTests(SystemTestCase):
    """
    Players authenticate with each checker, are seated and chat.
    """

    async def test_twoPlayersChat(self) -> None:
        """
        With the dev checker and fill seating, two players share a game
        server and hear each other (the sender too).
        """
        await self.startProxy(seating="fill")
        alice, a = await self.seated("alice")
        bob, b = await self.seated("bob")
        self.assertEqual(a.connected.server_id, b.connected.server_id)
        self.assertEqual(
            (a.connected.player_id, b.connected.player_id), ("alice", "bob")
        )
        alice.sendPayload(say("hello bob"))
        for client in (alice, bob):
            said = chat_pb2.S2C.FromString(await within(client.nextPayload())).said
            self.assertEqual((said.player_id, said.text), ("alice", "hello bob"))

    async def test_spreadSeating(self) -> None:
        """
        By default players are spread: the second goes to the other server.
        """
        await self.startProxy()
        _, a = await self.seated("alice")
        _, b = await self.seated("bob")
        self.assertNotEqual(a.connected.server_id, b.connected.server_id)

    async def test_sqliteAccounts(self) -> None:
        """
        With a real SQLite accounts database, the right secret is seated and a
        wrong one is INVALID_ID; the third failure closes with 4008.
        """
        path = os.path.abspath(self.mktemp())
        connection = sqlite3.connect(path)
        addAccount(connection, "alice", "Alice", "s3cret", 0.0, iterations=1000)
        connection.close()
        from twisted.enterprise.adbapi import ConnectionPool

        pool = ConnectionPool(
            "sqlite3", path, check_same_thread=False, cp_min=1, cp_max=2
        )
        self.addCleanup(pool.close)
        await self.startProxy(DatabaseChecker(pool, "qmark"))
        _client, answer = await self.seated("alice:s3cret")
        self.assertEqual(answer.connected.player_id, "alice")
        other = await self.player("mallory")
        results = [
            (await self.login(other, f"alice:wrong{i}")).authenticate_response.result
            for i in range(3)
        ]
        self.assertEqual(results, [R.INVALID_ID, R.INVALID_ID, R.TOO_MANY_ATTEMPTS])
        self.assertEqual((await within(other.whenClosed()))[0], 4008)

    async def test_tickets(self) -> None:
        """
        A ticket minted with the shared secret seats the player it names.
        """
        secret = b"k" * 32
        await self.startProxy(TicketChecker(secret, reactor))
        ticket = mintTicket(secret, "p42", "Zed", 60, reactor.seconds())
        _, answer = await self.seated(ticket)
        self.assertEqual(answer.connected.player_id, "p42")
        expired = mintTicket(secret, "p43", "Old", 1, reactor.seconds() - 10)
        client = await self.player("x")
        self.assertEqual(
            (await self.login(client, expired)).authenticate_response.result,
            R.INVALID_ID,
        )

    async def test_chatTerminal(self) -> None:
        """
        The terminal client of C{aphelion chat} joins and shows what is said.
        """
        await self.startProxy(seating="fill")
        lines: list[str] = []
        terminal = ChatTerminal(reactor, self.url, "carol", lines.append)
        running = Deferred.fromCoroutine(terminal.run())
        await within(terminal.joined)
        terminal.say("anyone here?")
        await waitFor(lambda: "<carol> anyone here?" in lines)
        assert terminal.connection is not None
        terminal.connection.closeWith(1000, "bye")
        self.assertEqual((await within(running))[0], 1000)
        self.assertTrue(lines[0].startswith("* joined chat on gs"), lines)


class SupervisionTests(SystemTestCase):
    """
    Game servers die, restart, drain and refuse strangers.
    """

    async def test_killedServerReseats(self) -> None:
        """
        SIGKILL of a game server: its player gets S2C{disconnect}, is seated
        on the other server without re-authenticating, and the killed server
        is restarted.
        """
        await self.startProxy()
        client, answer = await self.seated("alice")
        victim = self.monitor.servers[answer.connected.server_id]
        oldPid = victim.process.pid
        os.kill(oldPid, signal.SIGKILL)
        notice = S2C.FromString(await within(client.nextPayload(), 20))
        self.assertTrue(notice.HasField("disconnect"), notice)
        moved = S2C.FromString(await within(client.nextPayload(), 20))
        self.assertTrue(moved.HasField("connected"), moved)
        self.assertNotEqual(moved.connected.server_id, victim.serverId)
        self.assertFalse(moved.HasField("authenticate_response"))
        # The link can go before the process is reaped: wait for the new one.
        await waitFor(
            lambda: (
                victim.state is ServerState.READY
                and victim.process is not None
                and victim.process.pid != oldPid
            )
        )
        self.assertNotEqual(victim.process.pid, oldPid)

    async def test_resumeKeepsSeat(self) -> None:
        """
        A dropped connection's session resumes onto the same seat with its
        token, without authenticating again; the game never saw it leave.
        """
        await self.startProxy(seating="fill")
        client, _answer = await self.seated("alice")
        token = client.token
        client.transport.abortConnection()  # type: ignore[union-attr]
        await within(client.whenClosed())
        again = await self.player("alice", token)
        self.assertEqual(again.token, token)
        again.sendPayload(say("still here"))
        said = chat_pb2.S2C.FromString(await within(again.nextPayload())).said
        self.assertEqual((said.player_id, said.text), ("alice", "still here"))

    async def test_drain(self) -> None:
        """
        Draining a game server moves its players elsewhere; it exits and is
        not restarted.
        """
        await self.startProxy()
        client, answer = await self.seated("alice")
        serverId = answer.connected.server_id
        self.monitor.drain(serverId, "maintenance", deadline=1)
        notice = S2C.FromString(await within(client.nextPayload(), 20))
        self.assertTrue(notice.HasField("disconnect"), notice)
        moved = S2C.FromString(await within(client.nextPayload(), 20))
        self.assertNotEqual(moved.connected.server_id, serverId)
        server = self.monitor.servers[serverId]
        await waitFor(
            lambda: server.state is ServerState.STOPPED and server.process is None
        )

    async def wrongToken(
        self, first: control_pb2.Control | control_pb2.Type, kind: EnvelopeType
    ) -> control_pb2.Error:
        """
        Open a raw TCP connection to a game server, send C{first} with a wrong
        token, and return the C{Error} it answers.
        """
        server = self.monitor.servers["gs1"]
        received: Deferred[control_pb2.Error] = Deferred()
        decoder = EnvelopeDecoder()

        class Raw(Protocol):
            def dataReceived(self, data: bytes) -> None:
                for envelope in decoder.feed(data):
                    if envelope.type == EnvelopeType.Error and not received.called:
                        received.callback(
                            control_pb2.Error.FromString(envelope.payload)
                        )

        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        raw = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), Raw()
        )
        self.addCleanup(raw.transport.loseConnection)
        raw.transport.write(encodeEnvelope(kind, first.SerializeToString()))
        return await within(received)

    async def test_wrongControlToken(self) -> None:
        """
        A control connection with a wrong token gets Error{6}.
        """
        await self.startProxy()
        error = await self.wrongToken(
            control_pb2.Control(token=b"x" * 32, server_id="gs1"), EnvelopeType.Control
        )
        self.assertEqual(error.code, ErrorCode.BAD_TOKEN)

    async def test_wrongClientToken(self) -> None:
        """
        A player connection with a wrong token gets Error{6}.
        """
        await self.startProxy()
        error = await self.wrongToken(
            control_pb2.Type(kind=control_pb2.Type.CLIENT, token=b"y" * 32),
            EnvelopeType.Type,
        )
        self.assertEqual(error.code, ErrorCode.BAD_TOKEN)

    async def test_noServerWithoutGameServers(self) -> None:
        """
        With no game server at all, a valid ID gets NO_SERVER.
        """
        await self.startProxy(gameServers=0)
        client = await self.player("alice")
        self.assertEqual(
            (await self.login(client, "alice")).authenticate_response.result,
            R.NO_SERVER,
        )

    async def test_remoteGameServer(self) -> None:
        """
        A game server started by the operator with a token file, configured
        on the proxy by address and token, seats players.
        """
        remote = await startRemoteGameServer(self)
        await self.startProxy(
            gameServers=0,
            remoteGameServers=(remote,),
        )
        _, answer = await self.seated("alice")
        self.assertEqual(answer.connected.server_id, "remote1")


class ChildProcess(ProcessProtocol):
    """
    A game server started by hand: the port it reports, and its end.
    """

    def __init__(self) -> None:
        self.port: Deferred[int] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self._out = b""

    def outReceived(self, data: bytes) -> None:
        """
        Look for the C{PORT n} line.
        """
        self._out += data
        if not self.port.called and b"\n" in self._out:
            self.port.callback(int(self._out.split()[1]))

    def processEnded(self, reason: Any) -> None:
        """
        Fire L{ended}.
        """
        self.ended.callback(None)


async def startRemoteGameServer(test: TestCase) -> RemoteGameServer:
    """
    Start a chat game server by hand, as an operator does, with a token
    file; kill it (by its PID) in C{test}'s cleanup.

    :return: the game server, as C{--game-server} configures it.
    """
    token = os.urandom(32)
    tokenFile = test.mktemp()
    with open(tokenFile, "w") as f:
        f.write(token.hex() + "\n")
    child = ChildProcess()
    argv = [
        sys.executable,
        "-m",
        "aphelion.game.child",
        "--game",
        "aphelion.games.chat",
        "--token-file",
        tokenFile,
    ]
    transport = reactor.spawnProcess(child, sys.executable, argv, env=dict(os.environ))

    async def stop() -> None:
        if not child.ended.called:
            transport.signalProcess("KILL")
        await within(child.ended, 20)

    test.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    port = await within(child.port, 20)
    return RemoteGameServer("127.0.0.1", port, token)
