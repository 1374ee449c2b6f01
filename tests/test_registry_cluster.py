# -*- test-case-name: tests.test_registry_cluster -*-
"""
Tests for L{aphelion.registry.cluster} against a real C{redis-server}: the
records of other nodes' game servers, and the reservations of places.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from aphelion.registry.client import RedisClient
from aphelion.registry.cluster import ClusterPool
from tests.redisserver import missing, startRedis


class StubMonitor:
    """
    A node's own game servers: none.
    """

    seating = "spread"
    sharedRemotes = True
    controlGate: Any = None

    def __init__(self) -> None:
        self.servers: dict[str, Any] = {}

    def addChangeObserver(self, observer: Any) -> None:
        pass

    def addLostObserver(self, observer: Any) -> None:
        pass


class ClusterPoolTests(TestCase):
    """
    L{ClusterPool} reads the others' game servers and reserves places.
    """

    if missing():
        skip = missing()

    async def pool(self) -> ClusterPool:
        redis = await startRedis(self)
        client = RedisClient(reactor=reactor, url=redis.url)
        client.start()
        self.addCleanup(client.stop)
        await client.whenUp().addTimeout(10, reactor)
        return ClusterPool(
            clock=Clock(), client=client, monitor=StubMonitor(), nodeId="me"
        )

    async def publish(self, pool: ClusterPool, serverId: str, **fields: Any) -> None:
        record = dict(
            node="other",
            host="127.0.0.1",
            port=7000,
            ctoken="ab" * 32,
            name="chat",
            capacity=2,
            players=0,
            accepting="1",
            machine=pool.machine,
        )
        record.update(fields)
        flat = [x for kv in record.items() for x in kv]
        await pool.client.execute("HSET", f"aphelion:gs:{serverId}", *flat)

    async def test_readShared(self) -> None:
        """
        The others' records become servers to pick from; one on the
        loopback of another machine is out of reach and left out.
        """
        pool = await self.pool()
        await self.publish(pool, "here")
        await self.publish(pool, "there", machine="another-host")
        # One player on it, so that picking (fewest players first) does not
        # hang on the order in which Redis lists the keys.
        await self.publish(
            pool, "remote", host="192.0.2.9", machine="another-host", players=1
        )
        await pool.readShared()
        self.assertEqual(sorted(pool.shared), ["here", "remote"])
        here = pool.shared["here"]
        self.assertEqual(
            (here.port, here.capacity, here.token), (7000, 2, b"\xab" * 32)
        )
        self.assertIs(pool.pick(()), here)

    async def test_reserveUpToCapacity(self) -> None:
        """
        Places are reserved while players plus reservations stay below the
        capacity; an ended seating gives its place back.
        """
        pool = await self.pool()
        await self.publish(pool, "gs", players=1)
        await pool.readShared()
        server = pool.shared["gs"]
        self.assertTrue(await pool.reserve(server))
        self.assertFalse(await pool.reserve(server))
        pool.seatingStarted(server)
        pool.seatingEnded(server)
        await pool.client.execute("PING")
        self.assertTrue(await pool.reserve(server))
