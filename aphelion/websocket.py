# -*- test-case-name: tests.test_websocket -*-
"""
The client side of the AuthProxy: Autobahn adapters for Part 1.

L{AphelionServerProtocol} feeds the sans-IO cores (L{aphelion.handshake},
L{aphelion.ack}) and the session registry, and calls hooks that subclasses may
override. What it shares with the client (acks, closing with a reason, the
init timer, C{TCP_NODELAY}) is L{aphelion.wsbase.PacketProtocol}; its send
buffer and paused reads are L{aphelion.sendbuffer.SendBufferMixin}.
L{AphelionServerFactory} holds the collaborators, and times every
connection's waiting acks (L{aphelion.acktimer.AckTimerMixin});
L{aphelion.web.makeSite} serves it at the configured path.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, cast

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from aphelion.ack import AckState
from aphelion.acktimer import AckTimerMixin
from aphelion.codes import AphelionProtocol, CloseCode, ProtocolViolation
from aphelion.config import Config
from aphelion.fastread import LeanReadMixin
from aphelion.fastwrite import FastSendMixin
from aphelion.handshake import checkInit
from aphelion.interfaces import IConnection, ISessionRegistry
from aphelion.limits import normalAddress
from aphelion.logthrottle import ThrottledLog
from aphelion.ping import encodePingResponse, readPingRequest
from aphelion.sendbuffer import SendBufferMixin
from aphelion.session import Session, SessionFull
from aphelion.stats import Stats
from aphelion.wsbase import PacketProtocol, bakedProtocol

if TYPE_CHECKING:
    from aphelion.gateway import Gateway

__all__ = ["AphelionServerFactory", "AphelionServerProtocol"]

_OPEN = WebSocketProtocol.STATE_OPEN
_CLOSED = WebSocketProtocol.STATE_CLOSED


@implementer(IConnection)
class AphelionServerProtocol(  # type: ignore[misc]
    SendBufferMixin,
    FastSendMixin,
    LeanReadMixin,
    PacketProtocol,
    WebSocketServerProtocol,
):
    """
    One client WebSocket connection to the AuthProxy.

    Built only by L{AphelionServerFactory.buildProtocol}.

    :ivar protocol: the L{AphelionProtocol} chosen by the init packet, or
        L{None} before it.
    :ivar session: the session this connection belongs to, or L{None}.
    :ivar remoteAddress: the client's address, from C{X-Forwarded-For} when
        the factory trusts a front proxy.
    :ivar lastUsed: grows with every game packet sent here (for LRU choice).
    :ivar admission: what the players' site counted for this connection from
        TCP accept (L{aphelion.web.Admission}), or L{None}.
    """

    _log = Logger()
    factory: AphelionServerFactory

    protocol: AphelionProtocol | None = None
    session: Session | None = None
    remoteAddress = ""
    lastUsed = 0
    admission: Any = None
    _authCall: IDelayedCall | None = None
    _receive: Any = None
    _opening: list[tuple[bytes, bool]] | None = None
    _counted = False
    _ackDeadline = 0.0
    _opened = False

    # -- IConnection -------------------------------------------------------

    @property
    def isOpen(self) -> bool:
        """
        Whether the WebSocket is open (not closing or closed).
        """
        return bool(self.state == _OPEN)

    # -- Autobahn and Twisted callbacks --------------------------------------

    def closing(self, code: int, reason: str) -> None:
        """
        Called by L{closeWith} just before it sends the close frame: log it.
        Outsiders choose most closes (a bad init, a flood), so the log is the
        factory's throttle: one line per code, then a count.
        """
        self.factory.throttle.info(
            f"close {int(code)}",
            "closing connection from {peer} (session {hint}): {code} {reason}",
            peer=self.remoteAddress,
            hint=self.session.hint if self.session else "-",
            code=code,
            reason=reason,
        )

    def onConnect(self, request: Any) -> None:
        """
        Note the client's address once the upgrade request is read. Behind a
        trusted front proxy it is the forwarded one, and the per-address
        limits apply to it now: over them, the upgrade is refused with 503.
        """
        # The host alone: Autobahn's request.peer is "tcp4:HOST:PORT", and
        # the per-address limits count hosts.
        host = getattr(cast(Any, self.transport).getPeer(), "host", None)
        address = normalAddress(host) if isinstance(host, str) else str(request.peer)
        if self.factory.config.trustForwardedFor:
            forwarded = request.headers.get("x-forwarded-for", "")
            forwarded = forwarded.split(",")[-1].strip()
            if forwarded:
                address = normalAddress(forwarded)
            admission = self.admission
            if admission is not None and not admission.forwardedFrom(address):
                raise ConnectionDeny(503, "too many connections from this address")
        self.remoteAddress = address

    def onOpen(self) -> None:
        """
        Start waiting for the init packet, unless the server is full.
        """
        super().onOpen()
        self.releaseHandshake()
        self._opened = True
        if self.admission is not None:
            self.admission.opened()
        factory = self.factory
        config = factory.config
        self._acks = AckState(config.ackCap, config.unackedLimit)
        if config.maxConnections and len(factory.connections) >= config.maxConnections:
            self.closeWith(CloseCode.TRY_AGAIN_LATER, "server full")
            return
        factory.connections.add(self)
        self._awaitInit(factory.clock, config.initTimeout, "no init packet in time")

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Dispatch one WebSocket message: the init packet first, then
        ProtobufPackets. Nothing is handled once the connection is closing:
        a client closed with 4008 cannot try once more meanwhile.
        """
        if self.state != _OPEN:
            return
        receive = self._receive
        if receive is not None and isBinary:
            self._packetReceived(payload, receive)
            return
        if not isBinary:
            self.closeWith(CloseCode.UNSUPPORTED_DATA, "text frames are not allowed")
        elif self._opening is not None:
            self._opening.append((payload, isBinary))
        elif self._initCall is not None:
            self._initReceived(payload)

    def leanMessage(self, payload: bytes) -> None:
        """
        Called with each binary message that the lean receive path read
        (L{aphelion.fastread}): after the handshake, straight to the ack
        state machine.
        """
        receive = self._receive
        if receive is not None:
            self._packetReceived(payload, receive)
        else:
            self.onMessage(payload, True)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Called when the WebSocket is closed: cancel the timers and take the
        connection off its session.
        """
        super().onClose(wasClean, code, reason)
        if self._authCall is not None and self._authCall.active():
            self._authCall.cancel()
        self._authCall = None
        self._receive = None
        factory = self.factory
        if self in factory.connections:
            factory.connections.discard(self)
            factory.stats.bank(self.trafficStats)
        if self._opened:
            self._opened = False
            if self.closedByMe and self.localCloseCode:
                # Ours: the code we sent, whatever the peer answered.
                code, reason = self.localCloseCode, self.localCloseReason
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            factory.stats.closed(
                factory.clock.seconds(), int(code or 1006), reason or ""
            )
        session, self.session = self.session, None
        if session is not None:
            if self.protocol is AphelionProtocol.GAME:
                self.factory.gateway.connectionResumed(session, self)
            self.factory.registry.detach(session, self).addErrback(
                lambda f: self._log.failure(
                    "detaching from session {hint} failed", f, hint=session.hint
                )
            )

    # -- the handshake -----------------------------------------------------

    def dropConnection(self, abort: bool = False) -> None:
        """
        Called to drop the TCP connection. A drop that the peer caused (a
        close handshake or a ping that timed out) is logged through the
        factory's throttle (Part 6), not with Autobahn's line per connection.
        """
        wasClean = self.wasClean
        if self.state != _CLOSED and not wasClean:
            self.factory.throttle.info(
                "connection dropped",
                "dropping connection from {peer} (session {hint}): {reason}",
                peer=self.remoteAddress,
                hint=self.session.hint if self.session else "-",
                reason=self.wasNotCleanReason,
            )
            self.wasClean = True  # Autobahn logs a clean drop at debug only
        try:
            super().dropConnection(abort)
        finally:
            self.wasClean = wasClean

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Called when the transport is gone: release what the site counted
        for it.
        """
        super().connectionLost(reason)
        if self.admission is not None:
            self.admission.closed()

    def _initReceived(self, message: bytes) -> None:
        self._initArrived()
        try:
            init = checkInit(message, True, self.factory.config.revisions)
        except ProtocolViolation as e:
            self.protocolViolated(e)
            return
        self.protocol = init.protocol
        self._opening = []
        d: Deferred[Session] = self.factory.registry.open(init.token, self)
        d.addCallbacks(self._sessionOpened, self._sessionRefused)
        d.addErrback(self._internalError)
        if self._opening is not None:
            # A registry on a shared store answers later: read no more until
            # it has (what was read meanwhile waits in _opening).
            self.pauseReading("opening")

    def _sessionOpened(self, session: Session) -> None:
        pending, self._opening = self._opening or [], None
        if self.state != _OPEN:
            self.factory.registry.detach(session, self)
            return
        self.resumeReading("opening")
        self.session = session
        self.sendBinary(session.token)
        if self.protocol is AphelionProtocol.PING:
            self._receive = self._receivePing
        else:
            self._receive = self._receiveGame
        if self.protocol is AphelionProtocol.GAME:
            # Anyone can open sessions by the thousand: not logged until they
            # authenticate (the gateway logs that).
            authTimeout = self.factory.config.authTimeout
            if session.playerId is None and authTimeout > 0:
                self._authCall = self.factory.clock.callLater(
                    authTimeout, self._authTimedOut
                )
        self.sessionOpened(session)
        for message, isBinary in pending:
            self.onMessage(message, isBinary)

    def _sessionRefused(self, failure: Failure) -> None:
        self._opening = None
        self.resumeReading("opening")
        failure.trap(SessionFull)
        self.closeWith(CloseCode.TRY_AGAIN_LATER, str(failure.value))

    def _authTimedOut(self) -> None:
        self._authCall = None
        session = self.session
        if session is not None and session.playerId is None:
            self.closeWith(
                CloseCode.TOO_MANY_AUTH_ATTEMPTS, "not authenticated in time"
            )

    def _internalError(self, failure: Failure) -> None:
        self._log.failure(
            "internal error on connection from {peer}", failure, peer=self.remoteAddress
        )
        self.closeWith(CloseCode.INTERNAL_ERROR, "internal error")

    # -- acknowledgements --------------------------------------------------

    def acksOwed(self) -> None:
        """
        Called when a received payload needs an ack: the factory sends it
        (see L{AphelionServerFactory.ackLater}).
        """
        self.factory.ackLater(self)

    # -- the protocols -----------------------------------------------------

    def _receivePing(self, data: bytes) -> None:
        try:
            clientTime = readPingRequest(data)
        except ProtocolViolation as e:
            self.protocolViolated(e)
            return
        self.pingReceived(clientTime)

    def _receiveGame(self, data: bytes) -> None:
        assert self.session is not None
        self.factory.gateway.payloadReceived(self.session, self, data)

    # -- hooks -------------------------------------------------------------

    def sessionOpened(self, session: Session) -> None:
        """
        Called when the connection has joined C{session} and the
        S2CInitPacket is sent. The default does nothing for ping connections
        and sends a game connection its session's queued packets.
        """
        if self.protocol is AphelionProtocol.GAME:
            session.flushQueue()

    def pingReceived(self, clientTime: int) -> None:
        """
        Called with the C{client_time} of each C{PingRequest}. The default
        answers with a C{PingResponse} carrying it, the server time and the
        registry's player counts as last known.
        """
        factory = self.factory
        registry = factory.registry
        self.sendPayload(
            encodePingResponse(
                clientTime,
                int(factory.clock.seconds() * 1_000_000_000),
                registry.players,
                registry.playing,
            )
        )


class AphelionServerFactory(AckTimerMixin, WebSocketServerFactory):
    """
    Builds L{AphelionServerProtocol}s and holds what they share.

    :ivar clock: the clock of every timer of the connections.
    :ivar registry: the session registry.
    :ivar config: the settings.
    :ivar gateway: what game payloads go to.
    :ivar connections: the open connections.
    :ivar stats: the closes, and the messages and bytes of the connections
        that have closed (Autobahn counts those of each open connection in
        its C{trafficStats}).
    """

    protocol = AphelionServerProtocol  # type: ignore[assignment]
    _baked: type[Any] | None = None

    def __init__(
        self,
        *,
        clock: IReactorTime,
        registry: ISessionRegistry,
        config: Config,
        gateway: Gateway,
        stats: Stats | None = None,
    ) -> None:
        """
        :param stats: where to count closes, and the messages and bytes of
            closed connections; a new L{Stats} by default.
        """
        # No version in any header (Part 6): it only helps an attacker.
        super().__init__(server="aphelion", reactor=clock)
        self.clock = clock
        self.registry = registry
        self.config = config
        self.gateway = gateway
        self.connections: set[AphelionServerProtocol] = set()
        self.stats = Stats() if stats is None else stats
        self.throttle = ThrottledLog(
            AphelionServerProtocol._log, clock=clock, interval=config.logInterval
        )
        self._ackDue = []
        self._ackCall = None
        self._ackWaiting = deque()
        self._ackWaitCall = None
        self.setProtocolOptions(
            failByDrop=False,
            maxMessagePayloadSize=config.maxMessage,
            maxFramePayloadSize=config.maxMessage,
            autoFragmentSize=0,
            # Text frames are refused with 1003 whatever they hold; Autobahn
            # would close invalid UTF-8 with 1007 before we see it.
            utf8validateIncoming=False,
            # Autobahn's status page for a plain GET names its version.
            webStatus=False,
            autoPingInterval=config.autoPingInterval,
            autoPingTimeout=config.autoPingTimeout,
        )

    def setProtocolOptions(self, **options: Any) -> None:  # type: ignore[override]
        """
        Set Autobahn's protocol options (see Autobahn's
        C{WebSocketServerFactory.setProtocolOptions}).
        """
        super().setProtocolOptions(**options)
        self._baked = None

    def buildProtocol(self, addr: Any) -> AphelionServerProtocol:  # type: ignore[override]
        """
        Build a connection's protocol: of a subclass of L{protocol} that holds
        the protocol options (L{aphelion.wsbase.bakedProtocol}), made once.
        """
        baked = self._baked
        if baked is None or baked.__bases__[0] is not self.protocol:
            baked = self._baked = bakedProtocol(self.protocol, self)
        protocol: AphelionServerProtocol = baked()
        protocol.factory = self
        return protocol

    def stopFactory(self) -> None:
        """
        Called when the last port stops: no more acks are due.
        """
        self.stopAckTimers()
        self.throttle.stop()
        super().stopFactory()

    def closeAll(self, code: int, reason: str) -> None:
        """
        Close every open connection, as when the server shuts down.
        """
        for connection in list(self.connections):
            connection.closeWith(code, reason)
