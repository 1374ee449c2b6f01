# -*- test-case-name: tests.test_client -*-
"""
One client WebSocket connection: L{AphelionClientProtocol} speaks the init
handshake and ProtobufPackets, L{AphelionClientFactory} builds it for one URL.

The protocol is a thin adapter over L{aphelion.wsbase.PacketProtocol} (the
same ack core and close handling as the server's) with hooks and a
L{Deferred}-based API. A connection that belongs to a session tells it, as
L{IClientSession} says, about its handshake, its payloads and its close.
"""

from __future__ import annotations

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from aphelion import __version__
from aphelion.ack import AckState
from aphelion.codes import AphelionProtocol, CloseCode, ProtocolViolation
from aphelion.handshake import TOKEN_LENGTH, encodeInit
from aphelion.session import tokenHint
from aphelion.wsbase import PacketProtocol

from .payloads import PayloadQueue

__all__ = [
    "ABNORMAL_CLOSURE",
    "NO_STATUS_RECEIVED",
    "AphelionClientFactory",
    "AphelionClientProtocol",
    "ClosedError",
    "IClientSession",
]

_OPEN = WebSocketProtocol.STATE_OPEN
#: RFC 6455: no status code was present in the close frame.
NO_STATUS_RECEIVED = 1005
#: RFC 6455: the connection closed without a closing handshake.
ABNORMAL_CLOSURE = 1006


class ClosedError(Exception):
    """
    A connection closed (or failed) before what was awaited happened.

    :ivar code: the WebSocket close code: the one we sent when we closed, the
        server's when it closed, 1006 when there was no closing handshake.
    :ivar reason: the close reason that came with C{code}.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"closed with {self.code}: {self.reason}"


class IClientSession(Interface):
    """
    What the connections of a session (L{aphelion.client.ClientSession}) tell
    it. Each method is called by an L{AphelionClientProtocol} whose factory
    was given the session.
    """

    token = Attribute("The session token, or None before the first handshake.")

    def connectionReady(connection: AphelionClientProtocol) -> None:
        """
        Called when C{connection} finished its init handshake, before its own
        L{AphelionClientProtocol.handshakeDone} hook.
        """

    def payloadReceived(connection: AphelionClientProtocol, payload: bytes) -> None:
        """
        Called with each non-empty payload received on C{connection}.
        """

    def connectionClosed(connection: AphelionClientProtocol) -> None:
        """
        Called when C{connection} closed; its C{closeCode} and C{closeReason}
        are set.
        """


class AphelionClientProtocol(PacketProtocol, WebSocketClientProtocol):  # type: ignore[misc]
    """
    One client WebSocket connection to an AuthProxy.

    Built only by L{AphelionClientFactory.buildProtocol}. When the WebSocket
    opens it sends the C2SInitPacket; the 32-byte S2CInitPacket completes
    the handshake (L{handshakeDone}). After that every message is a
    ProtobufPacket: an ack byte and a payload (L{sendPayload},
    L{payloadReceived}).

    :ivar token: the session token the server gave, or L{None} before the
        handshake is done.
    :ivar resumed: whether the server put this connection into the session
        whose token it presented.
    :ivar session: the session this connection belongs to, or L{None}.
    :ivar lastUsed: grows with every payload a session sends here.
    :ivar closeCode: how the connection closed (see L{ClosedError.code}), or
        L{None} while it is open.
    :ivar closeReason: the reason that came with L{closeCode}.
    """

    _log = Logger()
    factory: AphelionClientFactory

    token: bytes | None = None
    resumed = False
    session: IClientSession | None = None
    lastUsed = 0
    closeCode: int | None = None
    closeReason = ""
    _handshaken = False

    # -- the public API ----------------------------------------------------

    @property
    def aphelionProtocol(self) -> int:
        """
        The protocol this connection asked for in its init packet.
        """
        return self.factory.aphelionProtocol

    @property
    def presentedToken(self) -> bytes | None:
        """
        The session token sent in the init packet, or L{None}.
        """
        return self.factory.token

    @property
    def handshaken(self) -> bool:
        """
        Whether the init handshake is done and the connection still open.
        """
        return self._handshaken and self.state == _OPEN

    def sendPayload(self, payload: bytes) -> None:
        """
        Send one payload in a ProtobufPacket carrying the pending ack.

        An empty payload sends an ack-only packet. Does nothing once the
        connection is closing.

        :raises RuntimeError: before the init handshake is done.
        """
        if self.state == _OPEN and not self._handshaken:
            raise RuntimeError("the init handshake is not done")
        super().sendPayload(payload)

    def whenHandshakeDone(self) -> Deferred[AphelionClientProtocol]:
        """
        :return: a L{Deferred} that fires with this protocol once the init
            handshake is done, or fails with L{ClosedError} if the connection
            closes first. Cancelling it closes (or, before the WebSocket is
            open, drops) the connection.
        """
        if self._handshaken:
            return succeed(self)
        if self.closeCode is not None:
            return fail(ClosedError(self.closeCode, self.closeReason))
        d: Deferred[AphelionClientProtocol] = Deferred(self._cancelHandshake)
        self._handshakeWaiters.append(d)
        return d

    def nextPayload(self) -> Deferred[bytes]:
        """
        Take the oldest received payload that was not taken yet.

        Only payloads that reach the default L{payloadReceived} of a
        connection outside a session are queued here.

        :return: a L{Deferred} that fires with the payload, or fails with
            L{ClosedError} when the connection closes with none left.
        """
        d = self._queue.get()
        if d is not None:
            return d
        if self.closeCode is not None:
            return fail(ClosedError(self.closeCode, self.closeReason))
        return self._queue.wait()

    def whenClosed(self) -> Deferred[tuple[int, str]]:
        """
        :return: a L{Deferred} that fires with C{(code, reason)} once the
            connection is closed (see L{ClosedError.code}).
        """
        if self.closeCode is not None:
            return succeed((self.closeCode, self.closeReason))
        d: Deferred[tuple[int, str]] = Deferred()
        self._closeWaiters.append(d)
        return d

    # -- Autobahn and Twisted callbacks --------------------------------------

    def connectionMade(self) -> None:
        """
        Called when the transport is connected (Nagle is off then): start
        the ack accounting.
        """
        super().connectionMade()
        self._handshakeWaiters: list[Deferred[AphelionClientProtocol]] = []
        self._closeWaiters: list[Deferred[tuple[int, str]]] = []
        self._queue = PayloadQueue()
        self._acks = AckState(self.factory.ackCap, self.factory.unackedLimit)

    def onOpen(self) -> None:
        """
        Send the C2SInitPacket and start waiting for the server's reply.
        """
        super().onOpen()
        factory = self.factory
        self._awaitInit(factory.clock, factory.initTimeout, "no S2CInitPacket in time")
        self.sendMessage(self.initPacket(), True)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Dispatch one WebSocket message: the S2CInitPacket first, then
        ProtobufPackets.
        """
        if self.state != _OPEN:
            return
        if not isBinary:
            self.closeWith(CloseCode.UNSUPPORTED_DATA, "text frames are not allowed")
        elif not self._handshaken:
            self._initReplyReceived(payload)
        else:
            self._packetReceived(payload, self._deliver)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Called when the WebSocket is closed (the timers are cancelled then):
        tell whoever waits.
        """
        super().onClose(wasClean, code, reason)
        if not wasClean:
            code, reason = ABNORMAL_CLOSURE, reason or "connection lost"
        elif getattr(self, "closedByMe", False) and self.localCloseCode is not None:
            code = self.localCloseCode
            reason = (self.localCloseReason or b"").decode("utf-8", "replace")
        else:
            code = self.remoteCloseCode
            reason = self.remoteCloseReason
        self.closeCode = NO_STATUS_RECEIVED if code is None else int(code)
        self.closeReason = reason or ""
        self._log.debug(
            "connection to {peer} closed: {code} {reason}",
            peer=self.peer,
            code=self.closeCode,
            reason=self.closeReason,
        )
        error = ClosedError(self.closeCode, self.closeReason)
        handshakeWaiters, self._handshakeWaiters = self._handshakeWaiters, []
        for d in handshakeWaiters:
            if not d.called:
                d.errback(error)
        self._queue.failWaiters(error)
        if self.session is not None:
            self.session.connectionClosed(self)
        closeWaiters, self._closeWaiters = self._closeWaiters, []
        for waiter in closeWaiters:
            waiter.callback((self.closeCode, self.closeReason))

    # -- the handshake -----------------------------------------------------

    def _cancelHandshake(self, d: Deferred[AphelionClientProtocol]) -> None:
        if d in self._handshakeWaiters:
            self._handshakeWaiters.remove(d)
        if self.state == _OPEN:
            self.closeWith(CloseCode.NORMAL, "cancelled")
        else:
            self.dropConnection(abort=True)

    def _initReplyReceived(self, message: bytes) -> None:
        self._initArrived()
        if len(message) != TOKEN_LENGTH:
            self.closeWith(
                CloseCode.MALFORMED_INIT, f"S2CInitPacket must be {TOKEN_LENGTH} bytes"
            )
            return
        presented = self.factory.token
        self.token = token = bytes(message)
        self.resumed = token == presented
        self._handshaken = True
        self.session = self.factory.session
        self._log.debug(
            "{verb} session {hint} on {peer}",
            verb="joined" if self.resumed else "opened",
            hint=tokenHint(token),
            peer=self.peer,
        )
        if self.session is not None:
            self.session.connectionReady(self)
        if presented is not None and not self.resumed:
            with self._log.failuresHandled("unexpectedNewSession failed") as op:
                self.unexpectedNewSession(presented, token)
            if op.failed:
                self.closeWith(CloseCode.INTERNAL_ERROR, "internal error")
                return
        with self._log.failuresHandled("handshakeDone failed") as op:
            self.handshakeDone(token, self.resumed)
        if op.failed:
            self.closeWith(CloseCode.INTERNAL_ERROR, "internal error")
            return
        waiters, self._handshakeWaiters = self._handshakeWaiters, []
        for d in waiters:
            if not d.called:
                d.callback(self)

    # -- ProtobufPackets and acknowledgements ----------------------------

    def _deliver(self, payload: bytes) -> None:
        if self.session is not None:
            self.session.payloadReceived(self, payload)
        else:
            self.payloadReceived(payload)

    def acksOwed(self) -> None:
        """
        Called when a received payload needs an ack: send it after the
        factory's C{ackDelay} (at the end of the turn once the ack cap is
        owed), unless a payload carries it first.
        """
        acks = self._acks
        delay = self.factory.ackDelay
        if acks.owed >= acks.cap:
            delay = 0.0
        self.ackAfter(self.factory.clock, delay)

    def protocolViolated(self, violation: ProtocolViolation) -> None:
        """
        Called when the server broke the contract: log it, and close with
        its code.
        """
        self._log.warn(
            "server {peer} broke the contract: {code} {reason}",
            peer=self.peer,
            code=int(violation.code),
            reason=violation.reason,
        )
        super().protocolViolated(violation)

    def closing(self, code: int, reason: str) -> None:
        """
        Called by L{closeWith} just before it sends the close frame: log it
        at debug level, with the session's token hint.
        """
        self._log.debug(
            "closing connection to {peer} (session {hint}): {code} {reason}",
            peer=self.peer,
            hint=tokenHint(self.token),
            code=code,
            reason=reason,
        )

    # -- hooks -------------------------------------------------------------

    def initPacket(self) -> bytes:
        """
        Called to build the C2SInitPacket when the WebSocket opens. The
        default encodes the factory's protocol, version and token; tests
        override it to send malformed packets.

        :return: the first message to send.
        """
        factory = self.factory
        return encodeInit(
            factory.aphelionProtocol, factory.protocolVersion, factory.token
        )

    def handshakeDone(self, token: bytes, resumed: bool) -> None:
        """
        Called when the S2CInitPacket arrived: the connection now belongs to
        the session C{token} and may send payloads. The default does nothing.

        :param token: the session token; never log more than
            L{aphelion.session.tokenHint} of it.
        :param resumed: whether it is the token this connection presented.
        """

    def unexpectedNewSession(self, presented: bytes, token: bytes) -> None:
        """
        Called before L{handshakeDone} when this connection presented a token
        and the server answered with a different one: the old session is
        gone. A L{aphelion.client.ClientSession} then closes its sockets of
        the old session with 4005. The default does nothing.

        :param presented: the token this connection presented.
        :param token: the token of the new session.
        """

    def payloadReceived(self, payload: bytes) -> None:
        """
        Called with each non-empty payload that arrives after the handshake,
        on a connection that belongs to no session. The default queues it
        for L{nextPayload}.
        """
        self._queue.put(payload)


class AphelionClientFactory(WebSocketClientFactory):
    """
    Builds L{AphelionClientProtocol}s for one URL and holds what they share.

    :ivar clock: the clock of the protocols' timers.
    :ivar aphelionProtocol: the protocol asked for in the init packet.
    :ivar protocolVersion: the revision asked for, 0 to skip the check.
    :ivar token: the session token to present, or L{None}.
    :ivar session: the session the connections join, or L{None}.
    :ivar initTimeout: seconds to wait for the S2CInitPacket (close 4004).
    :ivar ackDelay: seconds before an ack-only packet (5 ms by default, as
        the contract's Part 1.3 says); 0 is the end of the current reactor
        turn.
    :ivar ackCap: the most one packet acknowledges.
    :ivar unackedLimit: the most of our packets the server may leave
        unacknowledged before we close with 4007, or L{None} (the default:
        the contract has the server, not the client, enforce a limit).
    """

    protocol = AphelionClientProtocol  # type: ignore[assignment]

    def __init__(
        self,
        url: str,
        *,
        clock: IReactorTime,
        aphelionProtocol: int = AphelionProtocol.GAME,
        protocolVersion: int = 0,
        token: bytes | None = None,
        session: IClientSession | None = None,
        initTimeout: float = 10.0,
        ackDelay: float = 0.005,
        ackCap: int = 254,
        unackedLimit: int | None = None,
        maxMessage: int = 65536,
        autoPingInterval: float = 10.0,
        autoPingTimeout: float = 20.0,
    ) -> None:
        if token is not None and len(token) != TOKEN_LENGTH:
            raise ValueError(f"a session token is {TOKEN_LENGTH} bytes")
        super().__init__(url, useragent=f"aphelion/{__version__}", reactor=clock)
        self.clock = clock
        self.aphelionProtocol = aphelionProtocol
        self.protocolVersion = protocolVersion
        self.token = token
        self.session = session
        self.initTimeout = initTimeout
        self.ackDelay = ackDelay
        self.ackCap = ackCap
        self.unackedLimit = unackedLimit
        self.setProtocolOptions(
            failByDrop=False,
            maxMessagePayloadSize=maxMessage,
            maxFramePayloadSize=maxMessage,
            autoFragmentSize=0,
            autoPingInterval=autoPingInterval,
            autoPingTimeout=autoPingTimeout,
        )
