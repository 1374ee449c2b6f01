# -*- test-case-name: tests.test_service -*-
"""
The parts of an AuthProxy that L{aphelion.service.build} makes from a
L{Config} (the session registry, the game-server monitor, the
authenticator, the admin site), and the small services that start and stop
them with it (joining the cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.application.service import Service
from twisted.cred.portal import Portal
from twisted.web.server import Site

from aphelion.admin import makeAdminSite
from aphelion.auth import BoundedAuthenticator, PlayerRealm, authenticate
from aphelion.config import Config
from aphelion.control.proxy import controlFactoryMaker
from aphelion.control.spawn import GameServerMonitor
from aphelion.interfaces import IReactorUser
from aphelion.proto.game_pb2 import GameConfig
from aphelion.registry.client import RedisClient
from aphelion.registry.cluster import ClusterPool
from aphelion.registry.redis import RedisSessionRegistry, newNodeId
from aphelion.session import MemorySessionRegistry

__all__ = [
    "ClusterService",
    "makeAdmin",
    "makeAuthenticator",
    "makeMonitor",
    "makeRegistry",
]


def makeRegistry(
    config: Config, reactor: Any, limits: dict[str, Any]
) -> tuple[MemorySessionRegistry, RedisClient | None, str]:
    """
    The session registry of C{config}: in memory, or shared in Redis with
    the other nodes of a cluster.

    :param limits: the registry's limits, as keyword arguments.
    :return: the registry, its Redis client (or L{None}), and this node's
        id in the cluster (or C{""}).
    """
    if config.registry == "memory":
        return MemorySessionRegistry(clock=reactor, **limits), None, ""
    client = RedisClient(reactor=reactor, url=config.registry)
    nodeId = newNodeId()
    registry = RedisSessionRegistry(
        clock=reactor,
        client=client,
        nodeId=nodeId,
        address=config.nodeAddress,
        countsInterval=config.countsInterval,
        deadAfter=config.deadAfter,
        **limits,
    )
    return registry, client, nodeId


def makeMonitor(
    config: Config, reactor: Any, nodeId: str, shared: bool
) -> GameServerMonitor:
    """
    The monitor of C{config}'s game servers.

    :param nodeId: this node's id in a cluster (or C{""}).
    :param shared: whether the remote game servers are shared by the nodes
        of a cluster.
    """
    return GameServerMonitor(
        reactor=reactor,
        game=config.game,
        count=config.gameServers,
        remotes=config.remoteGameServers,
        makeControlFactory=partial(
            controlFactoryMaker,
            firstMessageTimeout=config.controlTimeout,
            heartbeatInterval=config.heartbeatInterval,
            deadAfter=config.deadAfter,
        ),
        restartInitial=config.restartInitial,
        playerWriteLimit=config.playerWriteLimit,
        logInterval=config.logInterval,
        seatHold=config.seatHold,
        gcThreshold=config.gcThreshold,
        restartMax=config.restartMax,
        drainDeadline=config.drainDeadline,
        connectTimeout=config.controlTimeout,
        options=dict(config.gameOptions),
        seating=config.seating,
        gameConfig=(
            GameConfig(content_type=config.gameConfig[0], content=config.gameConfig[1])
            if config.gameConfig is not None
            else None
        ),
        # Game-server ids unique in the cluster (Part 5.2).
        idPrefix=f"{nodeId[:8]}-" if nodeId else "",
        sharedRemotes=shared,
    )


def makeAdmin(config: Config, reactor: Any, view: Callable[[], Any]) -> Site | None:
    """
    The admin site of C{config} (C{--admin}), or L{None}.

    :param view: makes the admin's view of the AuthProxy.
    """
    if config.admin is None:
        return None
    return makeAdminSite(
        view(),
        token=config.adminToken,
        clock=reactor,
        logInterval=config.logInterval,
    )


def makeAuthenticator(config: Config, reactor: Any) -> BoundedAuthenticator | None:
    """
    The authenticator of C{config}'s checkers, bound to the reactor, or
    L{None} when there are none.
    """
    if not config.checkers:
        return None
    for checker in config.checkers:
        if IReactorUser.providedBy(checker):
            checker.bindReactor(reactor)
    portal = Portal(PlayerRealm(), config.checkers)
    # At most --checker-queue checks wait for the checker (Part 6).
    return BoundedAuthenticator(partial(authenticate, portal), config.checkerQueue)


class ClusterService(Service):
    """
    Joins the cluster when the AuthProxy starts: connects the shared
    registry to Redis and starts the cluster's view of the game servers.
    """

    def __init__(
        self, registry: RedisSessionRegistry, pool: ClusterPool | None
    ) -> None:
        self._registry = registry
        self._pool = pool

    def startService(self) -> None:
        """
        Called when the AuthProxy starts.
        """
        super().startService()
        self._registry.start()
        if self._pool is not None:
            self._pool.start()

    def stopService(self) -> None:
        """
        Called when the AuthProxy stops (the registry is closed by
        L{ShutdownService}).
        """
        super().stopService()
        if self._pool is not None:
            self._pool.stop()
