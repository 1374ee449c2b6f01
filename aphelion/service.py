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

from aphelion.admin import Lifecycle, makeAdminSite
from aphelion.admin.view import ProxyView
from aphelion.auth import BoundedAuthenticator, PlayerRealm, authenticate
from aphelion.codes import CloseCode
from aphelion.config import Config
from aphelion.control.proxy import LinkConnector, controlFactoryMaker
from aphelion.control.spawn import GameServerMonitor
from aphelion.gateway import Gateway
from aphelion.interfaces import IReactorUser
from aphelion.limits import Exemptions
from aphelion.proto.game_pb2 import GameConfig
from aphelion.session import MemorySessionRegistry
from aphelion.stats import Stats
from aphelion.web import makeSite
from aphelion.websocket import AphelionServerFactory

__all__ = ["AuthProxyService", "ShutdownService", "build"]

_log = Logger()


class AuthProxyService(MultiService):
    """
    The AuthProxy: its listeners, game servers and shutdown as child
    services, and the parts that more endpoints or tests reach for.

    :ivar factory: the WebSocket factory.
    :ivar monitor: the game-server monitor.
    :ivar gateway: the gateway.
    :ivar site: the web site (to listen on more endpoints).
    :ivar lifecycle: whether the AuthProxy is draining; call its
        C{startDraining(reason)} to make C{/ready} answer 503.
    :ivar stats: the running counts of packets, bytes, closes and logins.
    :ivar adminSite: the admin site (C{--admin}), or L{None}.
    """

    def __init__(
        self,
        *,
        factory: AphelionServerFactory,
        monitor: GameServerMonitor,
        gateway: Gateway,
        site: Site,
        lifecycle: Lifecycle | None = None,
        adminSite: Site | None = None,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.monitor = monitor
        self.gateway = gateway
        self.site = site
        self.lifecycle = Lifecycle() if lifecycle is None else lifecycle
        self.stats: Stats = factory.stats
        self.adminSite = adminSite


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


def build(config: Config, reactor: Any) -> AuthProxyService:
    """
    Make the AuthProxy's services.

    :param config: the settings.
    :param reactor: provides C{IReactorTCP}, C{IReactorTime} and whatever the
        endpoint descriptions need.
    :return: the parent service.
    """
    exempt = Exemptions(config.exempt)
    stats = Stats()
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
        monitor=monitor,
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
        stats=stats,
    )
    factory = AphelionServerFactory(
        clock=reactor, registry=registry, config=config, gateway=gateway, stats=stats
    )
    site = makeSite(
        factory,
        config,
        reactor,
        pagesPrefix=config.pagesPrefix if config.pages else None,
    )
    lifecycle = Lifecycle()
    adminSite = None
    if config.admin is not None:
        adminSite = makeAdminSite(
            ProxyView(
                factory=factory,
                monitor=monitor,
                gateway=gateway,
                lifecycle=lifecycle,
                clock=reactor,
            ),
            token=config.adminToken,
            clock=reactor,
            logInterval=config.logInterval,
        )
        if config.adminToken is None:
            _log.warn(
                "--admin without --admin-token-file: the admin API and dashboard "
                "refuse everything; /metrics, /health and /ready are open"
            )
    top = AuthProxyService(
        factory=factory,
        monitor=monitor,
        gateway=gateway,
        site=site,
        lifecycle=lifecycle,
        adminSite=adminSite,
    )
    monitor.setServiceParent(top)
    for description in config.listen:
        listener: IService = strports.service(description, site, reactor=reactor)
        listener.setName(f"listen:{description}")
        listener.setServiceParent(top)
    if adminSite is not None and config.admin is not None:
        admin: IService = strports.service(config.admin, adminSite, reactor=reactor)
        admin.setName(f"admin:{config.admin}")
        admin.setServiceParent(top)
    ShutdownService(factory).setServiceParent(top)
    return top
