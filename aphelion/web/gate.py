# -*- test-case-name: tests.test_web -*-
"""
The limits of Part 6 that apply from TCP accept to the WebSocket upgrade.

Every connection the players' site accepts gets an L{Admission} from the
site's L{ConnectionGate}: its place under the per-address limits and its
upgrade deadline.
"""

from __future__ import annotations

from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime

from aphelion.config import Config
from aphelion.limits import (
    AddressCounter,
    Exemptions,
    KeyedRateLimiter,
    normalAddress,
    safeText,
)
from aphelion.logthrottle import ThrottledLog

__all__ = ["LIMIT_HINT", "Admission", "ConnectionGate"]

#: Appended to the log line of a per-address limit (Part 6).
LIMIT_HINT = (
    "behind a reverse proxy, give --trust-forwarded-for (or use the PROXY "
    "protocol), or --exempt the proxy's address"
)

_UPGRADED = (WebSocketProtocol.STATE_OPEN, WebSocketProtocol.STATE_CLOSING)


def _hostOf(address: IAddress | None) -> str | None:
    """
    :return: the IP address of C{address}, or L{None} for an address that
        has none (a UNIX socket).
    """
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else None


class ConnectionGate:
    """
    The per-address limits counted from TCP accept (Part 6): open connections
    per client address and new connections per client address, except for
    the exempt addresses. Builds the L{Admission} of each accepted
    connection.

    When the front proxy is trusted (C{trustForwardedFor}), the peer at
    accept is that proxy: its connections are counted but not limited, and
    the limits apply once L{Admission.forwardedFrom} names the client. A peer
    with no IP address (a UNIX socket: a local front proxy) is not limited.

    Memory follows what is open: the counts forget an address whose last
    connection closed, and the rate limiter remembers at most
    C{maxAddresses} addresses (those whose bucket is full again first).

    :ivar clock: the clock of the deadlines and rates.
    :ivar upgradeTimeout: seconds from accept to a completed upgrade; 0 is
        no limit.
    :ivar trustForwardedFor: whether the peer at accept is a trusted proxy.
    :ivar exemptions: the addresses the per-address limits do not apply to.
    :ivar open: connections admitted and not closed yet.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        config: Config,
        throttledLog: ThrottledLog,
        maxAddresses: int = 100_000,
    ) -> None:
        """
        :param clock: the clock of the deadlines and rates.
        :param config: C{upgradeTimeout}, C{connectionsPerAddress},
            C{connectionRate}, C{connectionBurst}, C{exempt} and
            C{trustForwardedFor} are read.
        :param throttledLog: writes the lines an outsider can cause.
        :param maxAddresses: the most addresses the rate limiter remembers.
        """
        self.clock = clock
        self.upgradeTimeout = config.upgradeTimeout
        self.trustForwardedFor = config.trustForwardedFor
        self.exemptions = Exemptions(config.exempt)
        self.open = 0
        self._throttled = throttledLog
        self._counts: AddressCounter[str] = AddressCounter(config.connectionsPerAddress)
        self._proxies: AddressCounter[str] = AddressCounter(0)
        self._rates: KeyedRateLimiter[str] = KeyedRateLimiter(
            config.connectionRate, config.connectionBurst, maxAddresses
        )

    @property
    def connectionsPerAddress(self) -> int:
        """
        Open connections allowed per client address, 0 for no limit; set
        by a reload, for the connections accepted from then on.
        """
        return self._counts.limit

    @connectionsPerAddress.setter
    def connectionsPerAddress(self, limit: int) -> None:
        self._counts.limit = limit

    @property
    def connectionRate(self) -> float:
        """
        New connections per second per client address; set by a reload,
        for the addresses first seen from then on.
        """
        return self._rates.rate

    @connectionRate.setter
    def connectionRate(self, rate: float) -> None:
        self._rates.rate = rate

    @property
    def connectionBurst(self) -> float:
        """
        The burst of new connections per client address (as
        L{connectionRate}).
        """
        return self._rates.burst

    @connectionBurst.setter
    def connectionBurst(self, burst: float) -> None:
        self._rates.burst = burst

    def connectionsFrom(self, address: str) -> int:
        """
        :return: the open connections counted for C{address}, as a client
            or as a trusted proxy.
        """
        address = normalAddress(address)
        return self._counts[address] + self._proxies[address]

    @property
    def addressesRemembered(self) -> int:
        """
        How many addresses the counts and the rate limiter remember.
        """
        return len(self._counts) + len(self._proxies) + len(self._rates)

    def admit(self, peer: IAddress | None) -> Admission | None:
        """
        Called when a TCP connection from C{peer} is accepted.

        :return: its L{Admission}, with the upgrade deadline running, or
            L{None} if the address is over one of its limits (the connection
            is to be dropped; the first drop of each kind in a log interval
            is logged).
        """
        host = _hostOf(peer)
        counter: AddressCounter[str] | None = None
        if host is not None:
            host = normalAddress(host)
            if self.trustForwardedFor:
                counter = self._proxies
                counter.acquire(host)
            else:
                claimed, counter = self._claim(host, None)
                if not claimed:
                    return None
        admission = Admission(self, host or str(peer), counter)
        self.open += 1
        if self.upgradeTimeout > 0:
            admission._deadline = self.clock.callLater(
                self.upgradeTimeout, admission._expired
            )
        return admission

    def _claim(
        self, address: str, proxy: str | None
    ) -> tuple[bool, AddressCounter[str] | None]:
        """
        Count one more connection from C{address} if its limits allow.

        :param proxy: the front proxy's address when C{address} was
            forwarded by it.
        :return: whether it may proceed, and the counter it was counted in
            (L{None} when nothing was counted: an exempt address).
        """
        if address in self.exemptions:
            return True, None
        via = f" (via {proxy})" if proxy is not None else ""
        if not self._rates.allow(address, self.clock.seconds()):
            self._throttled.warn(
                "new connections too fast from one address",
                "connection from {address}{via} dropped: more than {rate:g} new "
                "connections per second (bursts of {burst:g}) from one address "
                "(--connection-rate, --connection-burst); {hint}",
                address=safeText(address),
                via=via,
                rate=self._rates.rate,
                burst=self._rates.burst,
                hint=LIMIT_HINT,
            )
            return False, None
        if not self._counts.acquire(address):
            self._throttled.warn(
                "too many connections from one address",
                "connection from {address}{via} dropped: {limit} connections "
                "from that address are open, the limit per address "
                "(--connections-per-address); {hint}",
                address=safeText(address),
                via=via,
                limit=self._counts.limit,
                hint=LIMIT_HINT,
            )
            return False, None
        return True, self._counts

    def _note(self, cause: str, format: str, **kwargs: Any) -> None:
        """
        Write an info line of C{cause} through the throttled log.
        """
        self._throttled.info(cause, format, **kwargs)


class Admission:
    """
    One accepted connection's place under the limits of Part 6, from TCP
    accept to its close, made by L{ConnectionGate.admit}.

    The site's channel calls L{connected}; L{WebSocketEndpoint} attaches it
    to the WebSocket protocol as C{protocol.admission} before the handshake
    runs, for the protocol to call L{forwardedFrom} (in C{onConnect}, when
    the front proxy is trusted), L{opened} (in C{onOpen}) and L{closed} (in
    C{connectionLost}). Every method may be called more than once.

    If the upgrade is not complete C{upgradeTimeout} seconds after accept,
    the connection is aborted (dropped without a response).

    :ivar peer: the peer's address at accept (the front proxy's, if trusted).
    :ivar address: the client address: the peer's, or the forwarded one
        once L{forwardedFrom} accepted it.
    :ivar isOpen: whether the WebSocket upgrade completed.
    :ivar isClosed: whether the connection closed.
    """

    isOpen = False
    isClosed = False
    _deadline: IDelayedCall | None = None
    _transport: Any = None
    _protocol: Any = None
    _forwarded: bool | None = None

    def __init__(
        self, gate: ConnectionGate, peer: str, counter: AddressCounter[str] | None
    ) -> None:
        """
        :param gate: the gate that admitted the connection.
        :param peer: the peer's address at accept.
        :param counter: where C{peer} is counted, or L{None} if nowhere.
        """
        self._gate = gate
        self.peer = self.address = self._key = peer
        self._counter = counter

    def connected(self, transport: Any) -> None:
        """
        Called with the connection's transport, which the deadline aborts.
        """
        if not self.isClosed:
            self._transport = transport

    def upgrading(self, protocol: Any) -> None:
        """
        Called with the WebSocket protocol that takes the connection over.
        If it is open when the deadline passes, L{opened} was not called but
        the upgrade did complete: the connection is kept.
        """
        if not self.isClosed:
            self._protocol = protocol

    def opened(self) -> None:
        """
        Called when the WebSocket upgrade completed: cancel the deadline.
        """
        if self.isClosed:
            return
        self.isOpen = True
        self._cancelDeadline()

    def closed(self) -> None:
        """
        Called when the connection is lost: release what it counted.
        """
        if self.isClosed:
            return
        self.isClosed = True
        self._cancelDeadline()
        self._release()
        self._gate.open -= 1
        self._transport = self._protocol = None

    def forwardedFrom(self, address: str) -> bool:
        """
        Called with the client address that the trusted front proxy
        forwarded (C{X-Forwarded-For}): count the connection under it
        instead of under the proxy, under its per-address limits.

        When the front proxy is not trusted, the address is ignored.

        :return: whether the connection may proceed; L{False} when
            C{address} is over one of its limits (answer 503). Later calls
            return the first answer.
        """
        if self._forwarded is not None:
            return self._forwarded
        gate = self._gate
        if self.isClosed or not gate.trustForwardedFor:
            self._forwarded = not self.isClosed
            return self._forwarded
        address = normalAddress(address)
        self._release()
        claimed, self._counter = gate._claim(address, self.peer)
        self.address = self._key = address
        self._forwarded = claimed
        return claimed

    def _release(self) -> None:
        counter, self._counter = self._counter, None
        if counter is not None:
            counter.release(self._key)

    def _cancelDeadline(self) -> None:
        call, self._deadline = self._deadline, None
        if call is not None and call.active():
            call.cancel()

    def _expired(self) -> None:
        self._deadline = None
        if self.isClosed or self.isOpen:
            return
        protocol = self._protocol
        if protocol is not None and getattr(protocol, "state", None) in _UPGRADED:
            self.opened()
            return
        self._gate._note(
            "no upgrade in time",
            "connection from {address} dropped: no WebSocket upgrade within "
            "{timeout:g} s of accept (--upgrade-timeout)",
            address=safeText(self.address),
            timeout=self._gate.upgradeTimeout,
        )
        transport = self._transport
        if transport is not None:
            transport.abortConnection()
