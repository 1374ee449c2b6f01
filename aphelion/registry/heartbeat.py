# -*- test-case-name: tests.test_registry_redis -*-
"""
A node's heartbeat in a cluster (Part 5.1): its record
C{<prefix>node:<nodeId>} (its address, players, playing), written every
C{interval} seconds and expiring C{deadAfter} seconds after the last write,
and the counts of the whole cluster, summed from every node's record at
each beat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from aphelion.registry.client import RedisClient, RedisUnavailable
from aphelion.registry.records import text

__all__ = ["NodeRecord"]


class NodeRecord:
    """
    One node's record and the cluster's counts.

    :ivar cluster: the cluster's (players, playing) as last read, or
        L{None} until Redis first answered.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        client: RedisClient,
        nodeId: str,
        name: Callable[[str], str],
        address: str,
        interval: float,
        deadAfter: float,
        local: Callable[[], tuple[int, int]],
        write: Callable[[list[list[Any]], str], None],
        ignore: Callable[[Failure, str], None],
    ) -> None:
        """
        :param name: the record of a node, by its id (C{"*"} matches all).
        :param local: this node's (players, playing) now.
        :param write: sends commands to Redis (with what they are for).
        :param ignore: the errback of a refresh (with what it was for).
        """
        self._clock = clock
        self.client = client
        self.nodeId = nodeId
        self.name = name
        self.address = address
        self.interval = interval
        self.deadAfter = deadAfter
        self._local = local
        self._write = write
        self._ignore = ignore
        self.cluster: tuple[int, int] | None = None
        self._call: IDelayedCall | None = None

    def start(self) -> None:
        """
        Beat now, then every C{interval} seconds.
        """
        self._call = self._clock.callLater(0, self._beat)

    def stop(self) -> None:
        """
        Beat no more.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _beat(self) -> None:
        self._call = self._clock.callLater(self.interval, self._beat)
        if not self.client.up:
            return
        d = Deferred.fromCoroutine(self.refresh())
        d.addErrback(self._ignore, "refreshing the node record")

    async def refresh(self) -> None:
        """
        Write this node's record and read the cluster's counts.
        """
        client = self.client
        node = self.name(self.nodeId)
        players, playing = self._local()
        self._write(
            [
                [
                    "HSET",
                    node,
                    "address",
                    self.address,
                    "players",
                    players,
                    "playing",
                    playing,
                ],
                ["PEXPIRE", node, int(self.deadAfter * 1000)],
            ],
            "refreshing the node record",
        )
        nodes = await self._nodes()
        if not nodes:
            return
        waits = client.pipeline([["HMGET", n, "players", "playing"] for n in nodes])
        results = await DeferredList(waits, consumeErrors=True)
        players = playing = 0
        for ok, values in results:
            if not ok:
                raise RedisUnavailable("counts unavailable")
            players += int(values[0] or 0)
            playing += int(values[1] or 0)
        self.cluster = (players, playing)

    async def _nodes(self) -> list[str]:
        cursor = b"0"
        found: list[str] = []
        while True:
            reply = await self.client.execute(
                "SCAN", cursor, "MATCH", self.name("*"), "COUNT", 1000
            )
            cursor = reply[0]
            found += [text(k) for k in reply[1]]
            if cursor in (b"0", 0):
                return sorted(set(found))
