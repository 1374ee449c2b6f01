# -*- test-case-name: tests.test_service -*-
"""
Builds the AuthProxy's service tree from a L{Config}. Parses no options.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from twisted.application import strports
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger
from twisted.web.server import Site

from aphelion.admin import Lifecycle
from aphelion.admin.view import ProxyView
from aphelion.codes import CloseCode
from aphelion.config import Config
from aphelion.control.proxy import LinkConnector
from aphelion.control.spawn import GameServerMonitor
from aphelion.gateway import Gateway
from aphelion.interfaces import IGameServerPool
from aphelion.lifecycle import SignalHandlers
from aphelion.limits import Exemptions
from aphelion.parts import (
    ClusterService,
    makeAdmin,
    makeAuthenticator,
    makeMonitor,
    makeRegistry,
)
from aphelion.registry.cluster import ClusterLinkConnector, ClusterPool
from aphelion.registry.redis import RedisSessionRegistry
from aphelion.reload import ReloadMixin
from aphelion.replies import disconnectNotice
from aphelion.stats import Stats
from aphelion.web import makeSite
from aphelion.web.proxied import ProxiedSiteFactory, isProxied
from aphelion.websocket import AphelionServerFactory

__all__ = [
    "AuthProxyService",
    "ClusterService",
    "ShutdownService",
    "build",
    "makeAuthenticator",
]

_log = Logger()


class AuthProxyService(ReloadMixin, MultiService):
    """
    The AuthProxy: its listeners, game servers and shutdown as child
    services, and the parts that more endpoints or tests reach for.

    It stops in order (Part "Shutting down" of the operations guide): the
    drain observers are told first (readiness turns 503), then the listening
    ports close, then every player is told C{S2C{disconnect}} and closed
    with 1001, then the game servers drain within the drain deadline.

    :ivar factory: the WebSocket factory.
    :ivar monitor: the game-server monitor.
    :ivar gateway: the gateway.
    :ivar site: the web site (to listen on more endpoints).
    :ivar registry: the session registry.
    :ivar pool: the game servers the gateway seats on: the monitor, in a
        cluster the L{ClusterPool} around it, or the pool given to
        L{build}.
    :ivar config: the settings in force: those it was built with, and the
        reloadable ones of the last reload.
    :ivar draining: whether it is stopping (no longer ready).
    :ivar loadConfig: reads the configuration again (the command line and
        its C{--config} file), for L{reloadConfig}; L{None} where nothing
        can be read again.
    :ivar checkerCloseDelay: seconds after a reload before the replaced
        checkers are closed (their checks in flight end first).
    :ivar lifecycle: the admin endpoint's view of L{draining}: a drain
        observer, so C{/ready} answers 503 as soon as the AuthProxy drains.
    :ivar stats: the running counts of messages, bytes, closes, logins and
        seating times, shared by the factory and the gateway.
    :ivar adminSite: the admin site (C{--admin}), or L{None}.
    :ivar adminListener: the service that listens with the admin site, or
        L{None}. It is not a child: it starts with the AuthProxy and stops
        after everything else has stopped, so that C{/health} and C{/ready}
        (503) answer all through a drain.
    """

    _log = Logger()
    checkerCloseDelay = 60.0
    pool: Any = None

    def __init__(
        self,
        *,
        factory: AphelionServerFactory,
        monitor: GameServerMonitor,
        gateway: Gateway,
        site: Site,
        reactor: Any = None,
        config: Config | None = None,
        handleSignals: bool = False,
        lifecycle: Lifecycle | None = None,
        adminSite: Site | None = None,
    ) -> None:
        """
        :param reactor: the reactor (for C{SIGHUP} and C{SIGTERM} and the
            reload's timers); required with C{handleSignals}.
        :param handleSignals: install the handlers of C{SIGHUP} (reload)
            and C{SIGTERM} (drain, then stop with status 0) once the reactor
            runs, and remove them when the service stops.
        :param lifecycle: told when the AuthProxy starts draining; a new
            L{Lifecycle} by default.
        :param adminSite: the admin site, if any.
        """
        super().__init__()
        self.factory = factory
        self.monitor = monitor
        self.gateway = gateway
        self.site = site
        self.registry: Any = factory.registry
        self.pool = monitor
        self.config = config if config is not None else factory.config
        self.draining = False
        self.loadConfig: Callable[[], Config] | None = None
        self._reactor = reactor
        self._drainObservers: list[Callable[[str], object]] = []
        self.lifecycle = Lifecycle() if lifecycle is None else lifecycle
        self.addDrainObserver(self.lifecycle.startDraining)
        self.stats: Stats = factory.stats
        self.adminSite = adminSite
        self.adminListener: IService | None = None
        self._closeCalls: list[Any] = []
        self._signals = (
            SignalHandlers(
                reactor,
                {signal.SIGHUP: self.reloadConfig, signal.SIGTERM: self.terminate},
            )
            if handleSignals
            else None
        )

    # -- start and stop ------------------------------------------------------

    def privilegedStartService(self) -> None:
        """
        Bind the ports that need privileges, the admin endpoint's too.
        """
        if self.adminListener is not None:
            self.adminListener.privilegedStartService()
        super().privilegedStartService()

    def startService(self) -> None:
        """
        Start the admin endpoint and the children; install the signal
        handlers once the reactor runs (it installs its own as it starts,
        and ours replace them).
        """
        if self.adminListener is not None and not self.adminListener.running:
            self.adminListener.startService()
        super().startService()
        if self._signals is not None:
            self._reactor.callWhenRunning(self._installSignals)

    def _installSignals(self) -> None:
        if self.running and self._signals is not None:
            self._signals.install()

    def addDrainObserver(self, observer: Callable[[str], object]) -> None:
        """
        Call C{observer(reason)} when the AuthProxy starts to stop, before
        anything else stops: for readiness to answer 503 at once.
        """
        self._drainObservers.append(observer)

    def startDraining(self, reason: str) -> None:
        """
        Mark the AuthProxy as stopping and tell the drain observers, once.
        """
        if self.draining:
            return
        self.draining = True
        self._log.info("draining: {reason}", reason=reason)
        for observer in self._drainObservers:
            with self._log.failuresHandled("drain observer failed"):
                observer(reason)

    def terminate(self) -> None:
        """
        Called on C{SIGTERM}: drain, and stop the reactor (which stops this
        service); the process then exits with status 0, as a stop asked
        for.
        """
        if self.draining:
            return
        self.startDraining("SIGTERM")
        try:
            self._reactor.stop()
        except ReactorNotRunning:
            # A stop asked for already (SIGINT, say) and not begun yet.
            pass

    def stopService(self) -> Deferred[Any]:
        """
        Stop in order: tell the drain observers, close the listening ports,
        close the players' connections, drain the game servers.
        """
        self.startDraining("stopping")
        if self._signals is not None:
            self._signals.uninstall()
        for call in self._closeCalls:
            if call.active():
                call.cancel()
        self._closeCalls.clear()
        stopped: Deferred[Any] = super().stopService()
        listener = self.adminListener
        if listener is not None and listener.running:

            def stopAdmin(result: object) -> Deferred[object]:
                d: Deferred[object] = maybeDeferred(listener.stopService)
                return d.addBoth(lambda _: result)

            stopped.addBoth(stopAdmin)
        return stopped


class ShutdownService(Service):
    """
    Closes every client connection with C{1001} when the service stops.
    """

    _log = Logger()

    def __init__(self, factory: AphelionServerFactory) -> None:
        self._factory = factory

    def stopService(self) -> None:
        """
        Called when the AuthProxy stops: tell every player
        C{S2C{disconnect{1001}}}, close every connection with 1001 and let
        the registry forget its sessions.
        """
        super().stopService()
        connections = self._factory.connections
        count = len(connections)
        if count:
            self._log.info("closing {count} connections: shutting down", count=count)
        notice = disconnectNotice(CloseCode.GOING_AWAY, "server shutting down")
        told = set()
        for connection in list(connections):
            session = getattr(connection, "session", None)
            if session is not None and id(session) not in told:
                told.add(id(session))
                session.send(notice)
        self._factory.closeAll(CloseCode.GOING_AWAY, "server shutting down")
        self._factory.registry.close()
        self._factory.gateway.stop()
        self._factory.throttle.stop()


def build(
    config: Config,
    reactor: Any,
    *,
    handleSignals: bool = False,
    pool: IGameServerPool | None = None,
) -> AuthProxyService:
    """
    Make the AuthProxy's services.

    :param config: the settings.
    :param reactor: provides C{IReactorTCP}, C{IReactorTime} and whatever the
        endpoint descriptions need.
    :param handleSignals: handle C{SIGHUP} and C{SIGTERM} (as C{twistd}
        runs it; see L{AuthProxyService}).
    :param pool: the game servers to seat players on, instead of the
        L{GameServerMonitor} of the config's own (a worker of C{--workers},
        with no game servers of its own, seats them on its parent's); a pool
        that is a service becomes a child service.
    :return: the parent service.
    """
    exempt = Exemptions(config.exempt)
    stats = Stats()
    limits: dict[str, Any] = dict(
        sessionTimeout=config.sessionTimeout,
        maxConnections=config.connectionsPerSession,
        queueLimit=config.queueLimit,
        queueBytes=config.queueBytes,
        maxSessions=config.maxSessions,
        sessionsPerAddress=config.sessionsPerAddress,
        exempt=exempt,
    )
    registry, client, nodeId = makeRegistry(config, reactor, limits)
    if client is not None:
        _log.info(
            "node {nodeId} of a cluster: sessions shared in {url}",
            nodeId=nodeId,
            url=client.url,
        )
    monitor = makeMonitor(config, reactor, nodeId, shared=client is not None)
    monitor.setName("game-servers")
    seats: Any = monitor if pool is None else pool
    connectLink: Any = LinkConnector(reactor, connectTimeout=config.controlTimeout)
    cluster: ClusterPool | None = None
    if client is not None and pool is None:
        seats = cluster = ClusterPool(
            clock=reactor,
            client=client,
            monitor=monitor,
            nodeId=nodeId,
            refreshInterval=config.countsInterval,
            deadAfter=config.deadAfter,
        )
        connectLink = ClusterLinkConnector(cluster, connectLink)
    authenticator = makeAuthenticator(config, reactor)
    if authenticator is None:
        _log.warn(
            "no --auth given: every authenticate is answered AUTH_METHOD_UNSUPPORTED"
        )
    gateway = Gateway(
        registry=registry,
        authenticator=authenticator,
        monitor=seats,
        connectLink=connectLink,
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
    adminSite = makeAdmin(
        config,
        reactor,
        lambda: ProxyView(
            factory=factory,
            monitor=monitor,
            gateway=gateway,
            lifecycle=lifecycle,
            clock=reactor,
        ),
    )
    if adminSite is not None and config.adminToken is None:
        _log.warn(
            "--admin without --admin-token-file: the admin API and dashboard "
            "refuse everything; /metrics, /health and /ready are open"
        )
    top = AuthProxyService(
        factory=factory,
        monitor=monitor,
        gateway=gateway,
        site=site,
        reactor=reactor,
        config=config,
        handleSignals=handleSignals,
        lifecycle=lifecycle,
        adminSite=adminSite,
    )
    if adminSite is not None and config.admin is not None:
        top.adminListener = strports.service(config.admin, adminSite, reactor=reactor)
        top.adminListener.setName(f"admin:{config.admin}")
    top.pool = seats
    if isinstance(registry, RedisSessionRegistry):
        registry.hooks = gateway
        ClusterService(registry, cluster).setServiceParent(top)
    # A MultiService stops its children last first: the listening ports
    # close, then the players' connections, then the game servers drain
    # (then, in a cluster, the node stops reading the others' game servers).
    monitor.setServiceParent(top)
    if IService.providedBy(pool):
        pool.setServiceParent(top)
    ShutdownService(factory).setServiceParent(top)
    for description in config.listen:
        # Behind PROXY, a connection is admitted under the client's address,
        # which only the header names.
        listening: Any = (
            ProxiedSiteFactory(site, clock=reactor) if isProxied(description) else site
        )
        listener: IService = strports.service(description, listening, reactor=reactor)
        listener.setName(f"listen:{description}")
        listener.setServiceParent(top)
    return top
