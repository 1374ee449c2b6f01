# -*- test-case-name: tests.test_service -*-
"""
Builds the AuthProxy's service tree from a L{Config}. Parses no options.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.application import strports
from twisted.application.service import IService, MultiService, Service
from twisted.cred.portal import Portal
from twisted.logger import Logger
from twisted.web.server import Site

from aphelion.auth import BoundedAuthenticator, PlayerRealm, authenticate
from aphelion.codes import CloseCode
from aphelion.config import Config
from aphelion.control.proxy import LinkConnector, controlFactoryMaker
from aphelion.control.spawn import GameServerMonitor
from aphelion.gateway import Gateway
from aphelion.interfaces import IGameServerPool, IReactorUser
from aphelion.limits import Exemptions
from aphelion.proto.game_pb2 import GameConfig
from aphelion.session import MemorySessionRegistry
from aphelion.web import makeSite
from aphelion.web.proxied import ProxiedSiteFactory, isProxied
from aphelion.websocket import AphelionServerFactory

__all__ = ["AuthProxyService", "ShutdownService", "build"]

_log = Logger()


class AuthProxyService(MultiService):
    """
    The AuthProxy: its listeners, game servers and shutdown as child
    services, and the parts that more endpoints or tests reach for.

    :ivar factory: the WebSocket factory.
    :ivar monitor: the game-server monitor (or the pool given to L{build}).
    :ivar gateway: the gateway.
    :ivar site: the web site (to listen on more endpoints).
    """

    def __init__(
        self,
        *,
        factory: AphelionServerFactory,
        monitor: Any,
        gateway: Gateway,
        site: Site,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.monitor = monitor
        self.gateway = gateway
        self.site = site


class ShutdownService(Service):
    """
    Closes every client connection with C{1001} when the service stops.
    """

    _log = Logger()

    def __init__(self, factory: AphelionServerFactory) -> None:
        self._factory = factory

    def stopService(self) -> None:
        """
        Called when the AuthProxy stops: close every connection with 1001 and
        let the registry forget its sessions.
        """
        super().stopService()
        count = len(self._factory.connections)
        if count:
            self._log.info("closing {count} connections: shutting down", count=count)
        self._factory.closeAll(CloseCode.GOING_AWAY, "server shutting down")
        self._factory.registry.close()
        self._factory.gateway.stop()
        self._factory.throttle.stop()


def build(
    config: Config, reactor: Any, *, pool: IGameServerPool | None = None
) -> AuthProxyService:
    """
    Make the AuthProxy's services.

    :param config: the settings.
    :param reactor: provides C{IReactorTCP}, C{IReactorTime} and whatever the
        endpoint descriptions need.
    :param pool: the game servers to seat players on, instead of the
        L{GameServerMonitor} of the config's own (a worker of C{--workers},
        with no game servers of its own, seats them on its parent's); a pool
        that is a service becomes a child service.
    :return: the parent service.
    """
    exempt = Exemptions(config.exempt)
    registry = MemorySessionRegistry(
        clock=reactor,
        sessionTimeout=config.sessionTimeout,
        maxConnections=config.connectionsPerSession,
        queueLimit=config.queueLimit,
        queueBytes=config.queueBytes,
        maxSessions=config.maxSessions,
        sessionsPerAddress=config.sessionsPerAddress,
        exempt=exempt,
    )
    monitor = GameServerMonitor(
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
    )
    monitor.setName("game-servers")
    seats: Any = monitor if pool is None else pool
    authenticator = None
    if config.checkers:
        for checker in config.checkers:
            if IReactorUser.providedBy(checker):
                checker.bindReactor(reactor)
        portal = Portal(PlayerRealm(), config.checkers)
        # At most --checker-queue checks wait for the checker (Part 6).
        authenticator = BoundedAuthenticator(
            partial(authenticate, portal), config.checkerQueue
        )
    else:
        _log.warn(
            "no --auth given: every authenticate is answered AUTH_METHOD_UNSUPPORTED"
        )
    gateway = Gateway(
        registry=registry,
        authenticator=authenticator,
        monitor=seats,
        connectLink=LinkConnector(reactor, connectTimeout=config.controlTimeout),
        authTries=config.authTries,
        refuseNewcomer=config.refuseNewcomer,
        clock=reactor,
        loginsPerMinute=config.loginsPerMinute,
        checksPerAddress=config.checksPerAddress,
        exempt=exempt,
        legacy=config.legacy,
        seatingBuffer=config.seatingBuffer,
        seatingBufferBytes=config.seatingBufferBytes,
        logInterval=config.logInterval,
    )
    factory = AphelionServerFactory(
        clock=reactor, registry=registry, config=config, gateway=gateway
    )
    site = makeSite(
        factory,
        config,
        reactor,
        pagesPrefix=config.pagesPrefix if config.pages else None,
    )
    top = AuthProxyService(factory=factory, monitor=seats, gateway=gateway, site=site)
    monitor.setServiceParent(top)
    if IService.providedBy(pool):
        pool.setServiceParent(top)
    for description in config.listen:
        # Behind PROXY, a connection is admitted under the client's address,
        # which only the header names.
        listening: Any = (
            ProxiedSiteFactory(site, clock=reactor, timeout=config.upgradeTimeout)
            if isProxied(description)
            else site
        )
        listener: IService = strports.service(description, listening, reactor=reactor)
        listener.setName(f"listen:{description}")
        listener.setServiceParent(top)
    ShutdownService(factory).setServiceParent(top)
    return top
