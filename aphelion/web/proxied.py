# -*- test-case-name: tests.test_proxied -*-
"""
The players' site behind a load balancer that speaks the PROXY protocol
(C{--listen haproxy:tcp:PORT}, Part 5.2).

Twisted's C{haproxy:} endpoint prefix wraps the factory it listens with, and
its transports answer C{getPeer} with the client's address once the PROXY
header is read. But a wrapped factory's C{buildProtocol} runs when the TCP
connection is accepted, before the header: an L{AphelionSite} would admit
every connection under the address of the load balancer, and its
per-address limits would count the balancer as one client.
L{ProxiedSiteFactory} puts the admission off until the header is read: the
site builds the connection's protocol with the address the header names.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["ProxiedSiteFactory", "isProxied"]


def isProxied(description: str) -> bool:
    """
    Whether a C{--listen} description takes the PROXY protocol.

    :param description: a strports description.
    """
    return description.split(":", 1)[0].strip().lower() == "haproxy"


class _AwaitingHeader(Protocol):
    """
    A connection whose PROXY header is not read yet. The first bytes it is
    given follow the header (the C{haproxy:} wrapper passes on nothing
    before): the site then builds the real protocol with the client's
    address, and every byte and the end of the connection go to it.
    """

    factory: ProxiedSiteFactory
    _wrapped: Any = None
    _deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """
        Wait for the header, for at most the factory's C{timeout}.
        """
        factory = self.factory
        timeout = factory.headerTimeout()
        if timeout > 0:
            self._deadline = factory.clock.callLater(timeout, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        """
        The first bytes after the header: admit the connection under the
        client's address; the rest is the site protocol's.
        """
        wrapped = self._wrapped
        if wrapped is None:
            self._cancel()
            assert self.transport is not None
            wrapped = self.factory.site.buildProtocol(self.transport.getPeer())
            self._wrapped = wrapped
            wrapped.makeConnection(self.transport)
        wrapped.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Pass the end of the connection on, if the site has its protocol.
        """
        self._cancel()
        if self._wrapped is not None:
            self._wrapped.connectionLost(reason)

    def _timedOut(self) -> None:
        self._deadline = None
        self.factory._log.info(
            "no request within {timeout:g} s of a PROXY connection; closing it",
            timeout=self.factory.headerTimeout(),
        )
        transport: Any = self.transport
        transport.abortConnection()

    def _cancel(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None


class ProxiedSiteFactory(Factory):
    """
    What a C{haproxy:} listener of the players' site listens with: the site,
    with each connection admitted once its PROXY header is read.

    :ivar site: the L{aphelion.web.AphelionSite}.
    :ivar clock: the clock of the deadline.
    :ivar timeout: seconds from accept to the first bytes after the header
        before the connection is aborted (the site's own upgrade deadline
        runs from then on); 0 for no limit; L{None} for the site's gate's
        C{upgradeTimeout} as it is at each accept (a reload changes it).
    """

    _log = Logger()
    noisy = False

    def __init__(
        self, site: Any, *, clock: IReactorTime, timeout: float | None = None
    ) -> None:
        self.site = site
        self.clock = clock
        self.timeout = timeout

    def headerTimeout(self) -> float:
        """
        :return: the limit in force for a connection accepted now, 0 for
            none.
        """
        if self.timeout is not None:
            return self.timeout
        timeout: float = self.site.gate.upgradeTimeout
        return timeout

    def doStart(self) -> None:
        """
        Start the site too.
        """
        self.site.doStart()
        super().doStart()

    def doStop(self) -> None:
        """
        Stop the site too.
        """
        super().doStop()
        self.site.doStop()

    def logPrefix(self) -> str:
        """
        The site's log prefix, marked as behind PROXY.
        """
        return f"{type(self.site).__name__} (awaiting PROXY)"

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """
        Called when a connection is accepted (the address is the load
        balancer's): wait for the header.
        """
        protocol = _AwaitingHeader()
        protocol.factory = self
        return protocol
