# -*- test-case-name: tests.test_service -*-
"""
Tests of L{aphelion.service}.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from aphelion.auth import BoundedAuthenticator, DevChecker
from aphelion.config import Config
from aphelion.registry.cluster import ClusterPool
from aphelion.registry.redis import RedisSessionRegistry
from aphelion.service import build
from aphelion.session import MemorySessionRegistry
from aphelion.web import AphelionSite


class BuildTests(SynchronousTestCase):
    """
    Tests of L{build}.
    """

    def test_listeners(self) -> None:
        """
        Each --listen description becomes a listening port serving the Site.
        """
        reactor = MemoryReactorClock()
        service = build(Config(listen=("tcp:8080", "tcp:8081"), gameServers=0), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        ports = [(port, type(factory)) for port, factory, _, _ in reactor.tcpServers]
        self.assertEqual(ports, [(8080, AphelionSite), (8081, AphelionSite)])

    def test_stopCloses(self) -> None:
        """
        Stopping the service closes every connection with 1001.
        """
        reactor = MemoryReactorClock()
        service = build(Config(listen=("tcp:8080",), gameServers=0), reactor)
        service.startService()
        closed: list[tuple[int, str]] = []

        class Conn:
            def closeWith(self, code: int, reason: str) -> None:
                closed.append((code, reason))

        service.factory.connections.add(Conn())  # type: ignore[attr-defined]
        service.stopService()
        self.assertEqual(closed, [(1001, "server shutting down")])

    def test_memoryRegistry(self) -> None:
        """
        By default sessions live in memory and the gateway seats on the
        monitor: no Redis.
        """
        service = build(Config(listen=(), gameServers=0), MemoryReactorClock())
        self.assertIsInstance(service.registry, MemorySessionRegistry)
        self.assertIs(service.pool, service.monitor)

    def test_redisRegistry(self) -> None:
        """
        With a Redis URL, the registry is shared, the gateway seats on the
        cluster's game servers, and the node's game-server ids are its own.
        """
        reactor = MemoryReactorClock()
        service = build(
            Config(listen=(), gameServers=1, registry="redis://127.0.0.1:1/0"),
            reactor,
        )
        registry = service.registry
        self.assertIsInstance(registry, RedisSessionRegistry)
        self.assertIsInstance(service.pool, ClusterPool)
        self.assertIs(registry.hooks, service.gateway)
        [serverId] = service.monitor.servers
        self.assertEqual(serverId, f"{registry.nodeId[:8]}-gs1")

    def test_checkerQueue(self) -> None:
        """
        The gateway's checks go through a L{BoundedAuthenticator} of
        C{--checker-queue} places (Part 6).
        """
        reactor = MemoryReactorClock()
        service = build(
            Config(listen=(), gameServers=0, checkers=(DevChecker(),), checkerQueue=5),
            reactor,
        )
        authenticator = service.gateway._authenticate  # type: ignore[attr-defined]
        self.assertIsInstance(authenticator, BoundedAuthenticator)
        self.assertEqual(authenticator.limit, 5)

    def test_pages(self) -> None:
        """
        The site serves the pages under C{pagesPrefix}, and none when
        C{pages} is off.
        """
        reactor = MemoryReactorClock()
        site = build(
            Config(listen=(), gameServers=0, pagesPrefix="/play"), reactor
        ).site
        self.assertEqual(site.pagesPrefix, "/play")
        off = build(Config(listen=(), gameServers=0, pages=False), reactor).site
        self.assertIsNone(off.pagesPrefix)

    def test_seatHold(self) -> None:
        """
        The config's seat hold reaches the game-server monitor, which passes
        it to every game server it spawns.
        """
        reactor = MemoryReactorClock()
        service = build(Config(listen=(), gameServers=0, seatHold=3.5), reactor)
        self.assertEqual(service.monitor.seatHold, 3.5)
