# -*- test-case-name: tests.test_integration_cluster -*-
"""
A cluster of AuthProxies over loopback (Part 5): a real C{redis-server},
AuthProxies in this process on ports of their own (and one as a real
C{twistd} process, to be killed), real game-server processes and real
WebSocket clients.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.trial.unittest import TestCase

from aphelion.auth import DevChecker
from aphelion.client import AphelionClientProtocol, ClosedError, connect, ping
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.config import Config
from aphelion.control.spawn import RemoteGameServer, ServerState
from aphelion.game.interfaces import IGameServer
from aphelion.proto import chat_pb2
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate, AuthenticateResponse
from aphelion.service import AuthProxyService, build
from tests.redisserver import RedisServer, missing, startRedis
from tests.test_integration_system import (
    say,
    startRemoteGameServer,
    waitFor,
    within,
)
from tests.test_integration_twistd import startTwistd, timeout

reactor: Any = _reactor
R = AuthenticateResponse

# What the game side of Part 5 brings (the seat hold and the client token
# required of player connections); without it, a node cannot seat players
# on another node's game servers.
GAME_SIDE = "clientToken" in IGameServer.names() and "seatHold" in IGameServer.names()
NO_GAME_SIDE = (
    "the game side of Part 5 (Control.client_token required of player "
    "connections, and the seat hold for ClientAuth{resumed}) is not in this tree"
)


class Node:
    """
    One AuthProxy of the cluster, in this process.
    """

    def __init__(self, service: AuthProxyService, url: str) -> None:
        self.service = service
        self.url = url

    @property
    def registry(self) -> Any:
        return self.service.registry

    def ready(self) -> bool:
        """
        Whether Redis is reachable and its own game servers are ready (not
        the remote ones, which one node at a time controls).
        """
        return all(
            s.state is ServerState.READY
            for s in self.service.monitor.servers.values()
            if not s.remote
        ) and bool(self.registry.client.up)


class ClusterTestCase(TestCase):
    """
    A Redis and AuthProxies on it.
    """

    timeout = 120

    if missing():
        skip = missing()

    async def startRedis(self) -> RedisServer:
        self.redis = await startRedis(self)
        return self.redis

    async def node(self, **settings: Any) -> Node:
        """
        Start an AuthProxy of the cluster; wait for its game servers and
        Redis.
        """
        config = Config(
            listen=(),
            gameServers=1,
            checkers=(DevChecker(),),
            restartInitial=0.2,
            sessionTimeout=30,
            drainDeadline=2,
            registry=self.redis.url,
            countsInterval=0.2,
        )
        service = build(replace(config, **settings), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = reactor.listenTCP(0, service.site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        node = Node(service, f"ws://127.0.0.1:{port.getHost().port}/aphelion")
        await waitFor(node.ready)
        return node

    async def client(
        self, url: str, token: bytes | None = None
    ) -> AphelionClientProtocol:
        """
        A game connection, closed in cleanup.
        """
        client = await within(connect(reactor, url, AphelionProtocol.GAME, token))

        async def close() -> None:
            if client.closeCode is None:
                client.closeWith(1000, "bye")
                try:
                    await within(client.whenClosed())
                except ClosedError:
                    pass

        self.addCleanup(lambda: Deferred.fromCoroutine(close()))
        return client

    async def seated(
        self, url: str, playerId: str
    ) -> tuple[AphelionClientProtocol, S2C]:
        """
        A client authenticated and seated; its game_config is consumed.
        """
        client = await self.client(url)
        client.sendPayload(
            C2S(authenticate=Authenticate(id=playerId)).SerializeToString()
        )
        answer = S2C.FromString(await within(client.nextPayload()))
        self.assertEqual(answer.authenticate_response.result, R.OK, answer)
        config = S2C.FromString(await within(client.nextPayload()))
        self.assertTrue(config.HasField("game_config"), config)
        return client, answer

    async def heard(self, client: AphelionClientProtocol) -> tuple[str, str]:
        said = chat_pb2.S2C.FromString(await within(client.nextPayload())).said
        return said.player_id, said.text


class ClusterTests(ClusterTestCase):
    """
    Two AuthProxies on one Redis behave as one.
    """

    if not GAME_SIDE:
        skip = NO_GAME_SIDE

    async def test_countsAgree(self) -> None:
        """
        Every node's pings count the players and seats of the whole cluster.
        """
        await self.startRedis()
        a, b = await self.node(), await self.node()
        await self.seated(a.url, "alice")
        await self.seated(b.url, "bob")

        async def counts(node: Node) -> tuple[int, int]:
            result = await within(ping(reactor, node.url))
            return result.players, result.playing

        async def agree() -> bool:
            return await counts(a) == (2, 2) and await counts(b) == (2, 2)

        for _ in range(100):
            if await agree():
                break
            await within(Deferred.fromCoroutine(_sleep(0.1)))
        self.assertEqual(await counts(a), (2, 2))
        self.assertEqual(await counts(b), (2, 2))

    async def test_newestLoginWinsAcrossNodes(self) -> None:
        """
        A player who logs in on node B while seated on node A: A's session
        gets S2C{disconnect} and is closed with 4009.
        """
        await self.startRedis()
        a, b = await self.node(), await self.node()
        first, _ = await self.seated(a.url, "alice")
        await self.seated(b.url, "alice")
        notice = S2C.FromString(await within(first.nextPayload()))
        self.assertTrue(notice.HasField("disconnect"), notice)
        await self.assertFailure(within(first.nextPayload()), ClosedError)
        self.assertEqual(first.closeCode, CloseCode.SESSION_ENDED)

    async def test_redisLost(self) -> None:
        """
        With Redis gone, established relays keep working, a new session is
        closed with 1013; once Redis is back new sessions are made again.
        """
        await self.startRedis()
        a = await self.node(seating="fill")
        alice, _ = await self.seated(a.url, "alice")
        bob, _ = await self.seated(a.url, "bob")
        await self.redis.kill()
        await waitFor(lambda: not a.registry.client.up)
        alice.sendPayload(say("still here"))
        self.assertEqual(await self.heard(bob), ("alice", "still here"))
        refused = connect(reactor, a.url, AphelionProtocol.GAME)
        failure = await self.assertFailure(within(refused), ClosedError)
        self.assertEqual(failure.code, CloseCode.TRY_AGAIN_LATER)
        await self.redis.restart()
        await waitFor(lambda: bool(a.registry.client.up))
        await self.seated(a.url, "carol")


class SharedGameServerTests(ClusterTestCase):
    """
    Nodes seat players on each other's game servers.
    """

    if not GAME_SIDE:
        skip = NO_GAME_SIDE

    async def test_capacityAcrossNodes(self) -> None:
        """
        A game server of capacity 2 shared by two nodes seating at once
        never takes a third player: the others get NO_SERVER.
        """
        await self.startRedis()
        a = await self.node(gameOptions=(("capacity", "2"),))
        b = await self.node(gameServers=0)
        await waitFor(lambda: bool(b.service.pool.shared))

        async def login(url: str, playerId: str) -> S2C:
            client = await self.client(url)
            client.sendPayload(
                C2S(authenticate=Authenticate(id=playerId)).SerializeToString()
            )
            return S2C.FromString(await within(client.nextPayload()))

        answers = await DeferredList(
            [
                Deferred.fromCoroutine(login(node.url, f"p{i}"))
                for i, node in enumerate([a, b, a, b, a, b])
            ],
            fireOnOneErrback=True,
        )
        results = [answer.authenticate_response.result for _, answer in answers]
        self.assertEqual(results.count(R.OK), 2, results)
        self.assertEqual(results.count(R.NO_SERVER), 4, results)
        [server] = a.service.monitor.servers.values()
        await waitFor(lambda: server.players == 2)

    async def test_handover(self) -> None:
        """
        A client that reconnects to another node with its token keeps its
        token, identity and seat (the same game server), and gets what was
        queued for it meanwhile.
        """
        await self.startRedis()
        a = await self.node(seating="fill")
        b = await self.node(gameServers=0)
        alice, seatedAs = await self.seated(a.url, "alice")
        bob, _ = await self.seated(a.url, "bob")
        token = alice.token
        assert token is not None
        alice.closeWith(1000, "switching")
        await within(alice.whenClosed())
        bob.sendPayload(say("while you were away"))
        self.assertEqual(await self.heard(bob), ("bob", "while you were away"))
        await waitFor(lambda: bool(b.service.pool.shared))
        again = await self.client(b.url, token)
        self.assertEqual(again.token, token)
        self.assertEqual(await self.heard(again), ("bob", "while you were away"))
        [session] = b.registry._sessions.values()
        self.assertEqual(session.playerId, "alice")
        await waitFor(
            lambda: session.seating is not None and session.seating.seat is not None
        )
        self.assertEqual(
            session.seating.seat.server.serverId, seatedAs.connected.server_id
        )
        bob.sendPayload(say("welcome back"))
        self.assertEqual(await self.heard(again), ("bob", "welcome back"))
        self.assertEqual(await self.heard(bob), ("bob", "welcome back"))
        again.sendPayload(say("thanks"))
        self.assertEqual(await self.heard(bob), ("alice", "thanks"))

    async def test_handoverClosesOldConnections(self) -> None:
        """
        The old node closes the session's remaining connections with 4010.
        """
        await self.startRedis()
        a = await self.node()
        b = await self.node(gameServers=0)
        alice, _ = await self.seated(a.url, "alice")
        await waitFor(lambda: bool(b.service.pool.shared))
        again = await self.client(b.url, alice.token)
        self.assertEqual(again.token, alice.token)
        await self.assertFailure(within(alice.nextPayload()), ClosedError)
        self.assertEqual(alice.closeCode, CloseCode.SESSION_MOVED)

    async def test_killedNode(self) -> None:
        """
        A node killed with SIGKILL: its client resumes on another node with
        its token and identity, and is seated again there.
        """
        redis = await self.startRedis()
        process = startTwistd(
            self,
            "--auth",
            "dev",
            "--registry",
            redis.url,
            "--game-servers",
            "1",
            "--counts-interval",
            "0.2",
            "--dead-after",
            "2",
            "--heartbeat",
            "0.5",
        )
        port = await timeout(process.port, 30)
        url = f"ws://127.0.0.1:{port}/aphelion"
        b = await self.node()
        for _ in range(200):
            try:
                alice, _ = await self.seated(url, "alice")
                break
            except Exception:
                await within(Deferred.fromCoroutine(_sleep(0.1)))
        token = alice.token
        os.kill(process.transport.pid, signal.SIGKILL)  # type: ignore[union-attr]
        await timeout(process.ended, 20)
        again = await self.client(b.url, token)
        self.assertEqual(again.token, token)
        # Its game server died with it: seated again, here.
        moved = S2C.FromString(await within(again.nextPayload(), 30))
        if moved.HasField("disconnect"):
            moved = S2C.FromString(await within(again.nextPayload(), 30))
        self.assertTrue(moved.HasField("connected"), moved)
        self.assertEqual(moved.connected.player_id, "alice")


class RemoteControlTests(ClusterTestCase):
    """
    A game server started by the operator and configured on two nodes:
    one at a time holds its control connection.
    """

    if not GAME_SIDE:
        skip = NO_GAME_SIDE

    async def remoteGameServer(self) -> RemoteGameServer:
        """
        Start a chat game server with a token file; kill it in cleanup.
        """
        return await startRemoteGameServer(self)

    async def test_takeover(self) -> None:
        """
        Exactly one node controls the remote game server; both seat players
        on it; when the controlling node stops, the other takes the control
        over, its players keep playing, and new players are seated.
        """
        await self.startRedis()
        remote = await self.remoteGameServer()
        settings = dict(
            gameServers=0,
            remoteGameServers=(remote,),
            deadAfter=2.0,
            heartbeatInterval=0.5,
        )
        a, b = await self.node(**settings), await self.node(**settings)
        serverId = f"remote-127.0.0.1-{remote.port}"

        def controllers() -> list[Node]:
            return [
                n
                for n in (a, b)
                if n.service.monitor.servers[serverId].state is ServerState.READY
            ]

        await waitFor(lambda: len(controllers()) == 1)
        [owner] = controllers()
        other = b if owner is a else a
        await waitFor(lambda: serverId in other.service.pool.shared)
        alice, seated = await self.seated(other.url, "alice")
        self.assertEqual(seated.connected.server_id, serverId)
        bob, _ = await self.seated(other.url, "bob")
        await owner.service.stopService()
        await waitFor(lambda: controllers() == [other])
        alice.sendPayload(say("still here"))
        self.assertEqual(await self.heard(bob), ("alice", "still here"))
        _, carol = await self.seated(other.url, "carol")
        self.assertEqual(carol.connected.server_id, serverId)


async def _sleep(seconds: float) -> None:
    from twisted.internet.task import deferLater

    await deferLater(reactor, seconds, lambda: None)
