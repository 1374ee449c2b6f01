# -*- test-case-name: tests.test_workers -*-
"""
A worker of C{--workers} (L{makeWorkerService}): an AuthProxy without game
servers of its own, on listening sockets its parent bound, seating players
on the game servers its parent publishes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet import tcp
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.stdio import StandardIO
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.haproxy import proxyEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from aphelion.config import Config
from aphelion.lifecycle import SignalHandlers
from aphelion.service import AuthProxyService, build
from aphelion.web.proxied import ProxiedSiteFactory
from aphelion.workers.listen import parseListen
from aphelion.workers.pool import PublishedPool, decodeRecords

__all__ = ["FIRST_FD", "RecordsReader", "makeWorkerService"]

FIRST_FD = 3
"""
The descriptor of a worker's first listening socket; the others follow, in
the order of C{--listen}.
"""


class RecordsReader(LineOnlyReceiver):
    """
    The worker's standard input: the parent's game-server records, one JSON
    line each time they change; its end means the parent is gone.
    """

    _log = Logger()
    delimiter = b"\n"
    MAX_LENGTH = 4 * 1024 * 1024

    def __init__(self, pool: PublishedPool, parentGone: Callable[[], object]) -> None:
        """
        :param pool: the pool the records go to.
        :param parentGone: called when the input ends.
        """
        self._pool = pool
        self._parentGone = parentGone

    def lineReceived(self, line: bytes) -> None:
        """
        Called with each line: the current records.
        """
        try:
            records = decodeRecords(line)
        except ValueError as e:
            self._log.warn("bad game-server records from the parent: {why}", why=e)
            return
        # An exception here would close standard input, which stops the
        # worker as if its parent were gone.
        with self._log.failuresHandled("taking the game-server records failed"):
            self._pool.update(records)

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        Called when a line is too long: ignored.
        """
        self._log.warn("game-server records line too long; ignored")

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Called when standard input closes: the parent is gone.
        """
        self._parentGone()


class _OneAcceptPort(tcp.Port):
    """
    A listening port that accepts one connection per wake-up. Twisted's
    accepts up to a hundred or more, and grows the number while there are
    more: on a socket several workers share, the first worker the kernel
    wakes would take a whole burst of connections. One at a time, every
    worker woken by the same readiness takes its turn, and a burst spreads
    over the workers.
    """

    @property
    def numberAccepts(self) -> int:
        """
        Always 1.
        """
        return 1

    @numberAccepts.setter
    def numberAccepts(self, value: int) -> None:
        """
        Ignored: Twisted adapts it after each wake-up.
        """


@implementer(IStreamServerEndpoint)
class _AdoptedEndpoint:
    """
    A listening socket inherited from the parent, as an endpoint: listening
    adopts it (Twisted takes a copy of it; ours is closed). Being an
    endpoint, it goes behind Twisted's public C{proxyEndpoint} for a
    C{haproxy:} listener.
    """

    def __init__(self, reactor: Any, fd: int, family: int) -> None:
        self._reactor = reactor
        self._fd = fd
        self._family = family

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        """
        Accept connections on the socket with C{factory}.
        """
        port = self._reactor.adoptStreamPort(self._fd, self._family, factory)
        if type(port) is tcp.Port:
            port.__class__ = _OneAcceptPort
        os.close(self._fd)
        return succeed(port)


class _ParentLink(Service):
    """
    Reads the parent's records from standard input; stops the reactor when
    it closes.
    """

    _log = Logger()

    def __init__(self, reactor: Any, pool: PublishedPool) -> None:
        self._reactor = reactor
        self._pool = pool

    def startService(self) -> None:
        """
        Read standard input (standard output stays the log's).
        """
        super().startService()
        devnull = os.open(os.devnull, os.O_WRONLY)
        stdio: Any = StandardIO  # the POSIX one takes the descriptors
        stdio(
            RecordsReader(self._pool, self._gone),
            stdin=0,
            stdout=devnull,
            reactor=self._reactor,
        )

    def _gone(self) -> None:
        if self.running:
            self._log.warn("standard input closed: the parent is gone; stopping")
            try:
                self._reactor.stop()
            except ReactorNotRunning:
                # Already stopping (SIGTERM), before this service stopped.
                pass


class _HangupIgnored(Service):
    """
    A worker's C{SIGHUP}: logged and ignored. The parent does not reload
    with C{--workers}, and a hang-up sent to the whole process group (a
    closed terminal) must not end the workers one by one.
    """

    _log = Logger()

    def __init__(self, reactor: Any, installSignal: Any = signal.signal) -> None:
        self._signals = SignalHandlers(
            reactor, {signal.SIGHUP: self._hangup}, installSignal
        )

    def startService(self) -> None:
        """
        Install the handler.
        """
        super().startService()
        self._signals.install()

    def stopService(self) -> Any:
        """
        Put back the handler it replaced.
        """
        self._signals.uninstall()
        return super().stopService()

    def _hangup(self) -> None:
        self._log.info("SIGHUP ignored: a worker does not reload")


def makeWorkerService(
    config: Config,
    reactor: Any,
    *,
    firstFd: int = FIRST_FD,
    pool: PublishedPool | None = None,
    readParent: bool = True,
    handleSignals: bool = False,
    installSignal: Any = signal.signal,
) -> AuthProxyService:
    """
    A worker: the AuthProxy of L{build} with no game servers of its own,
    accepting on the inherited sockets of C{config.listen} (descriptors
    C{firstFd}, C{firstFd + 1}, ...), seating players on the game servers
    of its pool.

    :param config: the settings (those of the parent's command line).
    :param reactor: provides C{IReactorSocket} and what L{build} needs.
    :param firstFd: the descriptor of the first listening socket.
    :param pool: the pool, or L{None} for a new L{PublishedPool}.
    :param readParent: whether to read the records from standard input.
    :param handleSignals: ignore C{SIGHUP} (as C{twistd} runs a worker),
        with a log line.
    :param installSignal: L{signal.signal}, or a fake in tests.
    """
    if pool is None:
        pool = PublishedPool(config.seating)
    # The parent serves the admin endpoint (--admin), on its one port.
    top = build(
        replace(config, listen=(), gameServers=0, remoteGameServers=(), admin=None),
        reactor,
        pool=pool,
    )
    for i, description in enumerate(config.listen):
        spec = parseListen(description)
        factory: Any = top.site
        endpoint: IStreamServerEndpoint = _AdoptedEndpoint(
            reactor, firstFd + i, spec.family
        )
        if spec.proxied:
            factory = ProxiedSiteFactory(top.site, clock=reactor)
            endpoint = proxyEndpoint(endpoint)
        port = StreamServerEndpointService(endpoint, factory)
        # As strports.service does: a socket that cannot be adopted fails
        # the start, rather than leaving a worker that accepts nothing.
        port._raiseSynchronously = True
        port.setName(f"listen:{description}")
        port.setServiceParent(top)
    if readParent:
        _ParentLink(reactor, pool).setServiceParent(top)
    if handleSignals:
        _HangupIgnored(reactor, installSignal).setServiceParent(top)
    return top
