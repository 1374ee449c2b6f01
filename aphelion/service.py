# -*- test-case-name: tests.test_service -*-
"""
Builds the AuthProxy's service tree from a L{Config}. Parses no options.
"""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import IService, MultiService, Service
from twisted.logger import Logger
from twisted.web.server import Site

from aphelion.codes import CloseCode
from aphelion.config import Config
from aphelion.gateway import Gateway
from aphelion.session import MemorySessionRegistry
from aphelion.websocket import AphelionServerFactory, buildResource

__all__ = ["AphelionSite", "ShutdownService", "build"]


class AphelionSite(Site):
    """
    The C{Site} of the WebSocket endpoint (and later of health and metrics).

    It writes no access log line per request: a WebSocket gateway's requests
    are its handshakes, which aphelion logs itself.
    """

    def log(self, request: Any) -> None:
        """
        Write nothing to an access log.
        """


class ShutdownService(Service):
    """
    Closes every client connection with C{1001} when the service stops.
    """

    _log = Logger()

    def __init__(self, factory: AphelionServerFactory) -> None:
        self._factory = factory

    def stopService(self) -> None:
        super().stopService()
        count = len(self._factory.connections)
        if count:
            self._log.info("closing {count} connections: shutting down", count=count)
        self._factory.closeAll(CloseCode.GOING_AWAY, "server shutting down")


def build(config: Config, reactor: Any) -> MultiService:
    """
    Make the AuthProxy's services.

    :param config: the settings.
    :param reactor: provides C{IReactorTCP}, C{IReactorTime} and whatever the
        endpoint descriptions need.
    :return: the parent service; its C{factory} attribute is the WebSocket
        factory.
    """
    top = MultiService()
    registry = MemorySessionRegistry(
        clock=reactor,
        sessionTimeout=config.sessionTimeout,
        maxConnections=config.connectionsPerSession,
        queueLimit=config.queueLimit,
    )
    factory = AphelionServerFactory(
        clock=reactor,
        registry=registry,
        config=config,
        gateway=Gateway(registry=registry, authTries=config.authTries),
    )
    site = AphelionSite(buildResource(factory, config.path))
    for description in config.listen:
        listener: IService = strports.service(description, site, reactor=reactor)
        listener.setName(f"listen:{description}")
        listener.setServiceParent(top)
    ShutdownService(factory).setServiceParent(top)
    top.factory = factory  # type: ignore[attr-defined]
    return top
