# -*- test-case-name: tests.test_registry_redis -*-
"""
Tests for L{aphelion.registry.redis} against a real C{redis-server}: the
shared registry tests of L{tests.test_registry}, then what only a cluster
does (two registries on one Redis: newest login wins across nodes,
handover with the queue, a dead node's sessions, counts, Redis lost).
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from aphelion.codes import CloseCode
from aphelion.registry.client import RedisClient
from aphelion.registry.redis import RedisSessionRegistry, RegistryUnavailable
from aphelion.session import Session
from aphelion.testing import RecordingConnection
from tests.redisserver import RedisServer, missing, startRedis
from tests.test_registry import RegistryBehaviourMixin


class RecordingHooks:
    """
    What the gateway is told by a registry about sessions other nodes
    touch.
    """

    def __init__(self) -> None:
        self.kicked: list[tuple[Session, str]] = []
        self.movedSessions: list[Session] = []
        self.resumedWith: list[tuple[Session, str]] = []
        self.waiting: list[Deferred[None]] = []

    def _fire(self) -> None:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def next(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.waiting.append(d)
        return d.addTimeout(5, reactor)

    def kick(self, session: Session, reason: str) -> None:
        self.kicked.append((session, reason))
        self._fire()

    def moved(self, session: Session) -> None:
        self.movedSessions.append(session)
        self._fire()

    def resumed(self, session: Session, serverId: str) -> None:
        self.resumedWith.append((session, serverId))


class _Server:
    serverId = "node1-gs1"


class _Seat:
    server = _Server()


SEAT: Any = _Seat()


async def makeRegistry(
    testCase: TestCase, redis: RedisServer, clock: Clock, **kwargs: Any
) -> RedisSessionRegistry:
    """
    A started registry on C{redis}, closed when the test ends.
    """
    client = RedisClient(reactor=reactor, url=redis.url)
    registry = RedisSessionRegistry(clock=clock, client=client, **kwargs)
    registry.hooks = RecordingHooks()
    registry.start()
    testCase.addCleanup(registry.close)
    await client.whenUp().addTimeout(10, reactor)
    return registry


class RedisRegistryBehaviourTests(RegistryBehaviourMixin, TestCase):
    """
    L{RedisSessionRegistry} passes the shared tests.
    """

    if missing():
        skip = missing()

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.clock = Clock()
        self.redis = await startRedis(self)
        self.registry = await makeRegistry(self, self.redis, self.clock)


async def _until(predicate: Any, within: float = 5.0) -> None:
    waited = 0.0
    while not predicate():
        if waited > within:
            raise AssertionError("condition not met in time")
        await deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


class ClusterRegistryTests(TestCase):
    """
    Two registries (two nodes) on one Redis.
    """

    if missing():
        skip = missing()

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.redis = await startRedis(self)
        self.clockA, self.clockB = Clock(), Clock()
        self.a = await makeRegistry(self, self.redis, self.clockA)
        self.b = await makeRegistry(self, self.redis, self.clockB)

    async def authenticated(
        self, registry: RedisSessionRegistry, playerId: str
    ) -> tuple[Session, RecordingConnection]:
        conn = RecordingConnection()
        session: Session = await registry.open(None, conn)
        await registry.authenticate(session, playerId)
        return session, conn

    async def test_recordsKeyedByHash(self) -> None:
        """
        Redis holds the session under the SHA-256 of its token, never the
        token, with its owning node and player.
        """
        session, _ = await self.authenticated(self.a, "alice")
        keys = await self.a.client.execute("KEYS", "*")
        digest = hashlib.sha256(session.token).hexdigest()
        self.assertIn(f"aphelion:session:{digest}".encode(), keys)
        for key in keys:
            self.assertNotIn(session.token.hex().encode(), key)
        record = await self.a.client.execute(
            "HGET", f"aphelion:session:{digest}", "node"
        )
        self.assertEqual(record, self.a.nodeId.encode())

    async def test_newestLoginWinsAcrossNodes(self) -> None:
        """
        A login on node B of a player whose session is on node A makes A's
        gateway kick that session.
        """
        first, _ = await self.authenticated(self.a, "p")
        kicked = self.a.hooks.next()
        second, _ = await self.authenticated(self.b, "p")
        await kicked
        self.assertEqual(self.a.hooks.kicked, [(first, "logged in elsewhere")])
        self.assertEqual(second.playerId, "p")

    async def test_refuseNewcomerAcrossNodes(self) -> None:
        """
        With C{refuse}, a login on node B of a player whose session lives on
        node A is refused.
        """
        await self.authenticated(self.a, "p")
        second: Session = await self.b.open(None, RecordingConnection())
        other = await self.b.authenticate(second, "p", refuse=True)
        self.assertIsNotNone(other)
        self.assertIsNone(second.playerId)

    async def test_handover(self) -> None:
        """
        A token presented to node B takes the session over from node A: A
        closes its connections with 4010 and hands over the queue; B has
        the token, identity and seat, and asks the gateway to resume the
        seat.
        """
        session, conn = await self.authenticated(self.a, "alice")
        await self.a.seat(session, SEAT)
        linger = RecordingConnection()
        await self.a.open(session.token, linger)
        await self.a.detach(session, conn)
        # Only a closing connection now: queue two packets.
        await self.a.detach(session, linger)
        session.send(b"one")
        session.send(b"two")
        other = await self.a.open(session.token, RecordingConnection())
        self.assertIs(other, session)
        newConn = RecordingConnection()
        resumed: Session = await self.b.open(session.token, newConn)
        self.assertEqual(resumed.token, session.token)
        self.assertEqual(resumed.playerId, "alice")
        self.assertEqual(resumed.identity.playerId, "alice")  # type: ignore[union-attr]
        self.assertEqual(list(resumed.queue), [b"one", b"two"])
        self.assertEqual(self.b.hooks.resumedWith, [(resumed, "node1-gs1")])
        self.assertEqual(self.a.hooks.movedSessions, [session])
        self.assertTrue(session.ended)
        self.assertEqual(other.connections[0].closed[0], CloseCode.SESSION_MOVED)  # type: ignore[attr-defined]
        digest = hashlib.sha256(session.token).hexdigest()
        owner = await self.b.client.execute(
            "HGET", f"aphelion:session:{digest}", "node"
        )
        self.assertEqual(owner, self.b.nodeId.encode())
        # B now owns the player: a login on A kicks B's session.
        kicked = self.b.hooks.next()
        await self.authenticated(self.a, "alice")
        await kicked
        self.assertEqual([s for s, _ in self.b.hooks.kicked], [resumed])

    async def test_deadNode(self) -> None:
        """
        The sessions of a node that died (its record expired) are taken
        over without asking it, queue lost, identity and seat kept.
        """
        session, _ = await self.authenticated(self.a, "bob")
        await self.a.seat(session, SEAT)
        # Node A dies: its connection to Redis goes, its record expires.
        self.a.client.stop()
        await self.b.client.execute("DEL", f"aphelion:node:{self.a.nodeId}")
        resumed: Session = await self.b.open(session.token, RecordingConnection())
        self.assertEqual(resumed.token, session.token)
        self.assertEqual(resumed.playerId, "bob")
        self.assertEqual(self.b.hooks.resumedWith, [(resumed, "node1-gs1")])

    async def test_stopLeavesSessions(self) -> None:
        """
        A node that stops tells the game servers its seated sessions moved
        (they hold the seats) and leaves the sessions in Redis: another
        node takes them over.
        """
        session, conn = await self.authenticated(self.a, "erin")
        await self.a.seat(session, SEAT)
        await self.a.detach(session, conn)
        await self.a.close()
        self.assertEqual(self.a.hooks.movedSessions, [session])
        await self.b.client.execute("DEL", f"aphelion:node:{self.a.nodeId}")
        resumed: Session = await self.b.open(session.token, RecordingConnection())
        self.assertEqual((resumed.token, resumed.playerId), (session.token, "erin"))

    async def test_countsOfTheCluster(self) -> None:
        """
        Every node counts the players and seats of the whole cluster.
        """
        a, _ = await self.authenticated(self.a, "a")
        await self.a.seat(a, SEAT)
        await self.authenticated(self.b, "b")
        # Each node publishes its own counts as it refreshes them.
        await self.a.counts()
        await self.b.counts()
        self.assertEqual(await self.a.counts(), (2, 1))
        self.assertEqual(await self.b.counts(), (2, 1))
        self.assertEqual((self.a.players, self.a.playing), (2, 1))

    async def test_redisLost(self) -> None:
        """
        While Redis is unreachable a new session or a resume from the store
        is refused (1013); a local session still takes connections; once
        Redis is back, new sessions are made again.
        """
        session, _ = await self.authenticated(self.a, "c")
        await self.redis.kill()
        await _until(lambda: not self.a.client.up)
        await self.assertFailure(
            self.a.open(None, RecordingConnection()), RegistryUnavailable
        )
        await self.assertFailure(
            self.b.open(session.token, RecordingConnection()), RegistryUnavailable
        )
        self.assertIs(await self.a.open(session.token, RecordingConnection()), session)
        await self.redis.restart()
        await self.a.client.whenUp().addTimeout(10, reactor)
        fresh: Session = await self.a.open(None, RecordingConnection())
        self.assertIsNone(await self.a.authenticate(fresh, "d"))
        # What the restarted Redis lost was written again: node B can take
        # the session over.
        await self.b.client.whenUp().addTimeout(10, reactor)
        resumed: Session = await self.b.open(session.token, RecordingConnection())
        self.assertEqual((resumed.token, resumed.playerId), (session.token, "c"))
