# -*- test-case-name: tests.test_client -*-
"""
The client side of Part 1: an Autobahn WebSocket client that speaks the init
handshake and ProtobufPackets, and a L{Deferred}-based API on top of it for
tests, tools and bots.

L{AphelionClientProtocol} is the thin adapter: it feeds L{AckState} (the same
core the server uses) and calls hooks. L{connect} opens one connection and
fires once the init handshake is done; L{ping} measures one round trip of the
ping protocol; L{ClientSession} groups several game sockets that share one
session token (the contract's inverse multiplexing).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from google.protobuf.message import DecodeError
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger

from aphelion import __version__
from aphelion.ack import AckState, AckViolation
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.handshake import TOKEN_LENGTH, encodeInit
from aphelion.proto.ping_pb2 import PingRequest, PingResponse
from aphelion.session import tokenHint

__all__ = [
    "AphelionClientFactory",
    "AphelionClientProtocol",
    "ClientSession",
    "ClosedError",
    "NotConnectedError",
    "PingResult",
    "connect",
    "connectFactory",
    "endpointForURL",
    "ping",
]

_OPEN = WebSocketProtocol.STATE_OPEN
_MAX_REASON = 123  # a close frame's payload is at most 125 bytes, 2 are the code
#: RFC 6455: no status code was present in the close frame.
_NO_STATUS = 1005
#: RFC 6455: the connection closed without a closing handshake.
_ABNORMAL = 1006


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


class NotConnectedError(Exception):
    """
    A L{ClientSession} has no open connection to send on.
    """


@dataclass(frozen=True, slots=True)
class PingResult:
    """
    The answer to one ping.

    :ivar rtt: the round-trip time in seconds, by the client's clock.
    :ivar players: authenticated sessions on the server.
    :ivar playing: sessions seated in a game server.
    :ivar serverTime: the server's clock, in ns since the Unix epoch.
    """

    rtt: float
    players: int
    playing: int
    serverTime: int


class _PayloadQueue:
    """
    Received payloads, in arrival order, and the L{Deferred}s waiting for them.
    """

    def __init__(self) -> None:
        self._payloads: deque[bytes] = deque()
        self._waiting: list[Deferred[bytes]] = []

    def __len__(self) -> int:
        return len(self._payloads)

    def put(self, payload: bytes) -> None:
        """
        Hand C{payload} to the oldest waiter, or keep it.
        """
        while self._waiting:
            d = self._waiting.pop(0)
            if not d.called:
                d.callback(payload)
                return
        self._payloads.append(payload)

    def get(self) -> Deferred[bytes] | None:
        """
        :return: a L{Deferred} for the oldest payload, or L{None} when none
            is kept (the caller then decides whether to wait, see L{wait}).
        """
        if self._payloads:
            return succeed(self._payloads.popleft())
        return None

    def wait(self) -> Deferred[bytes]:
        """
        :return: a L{Deferred} that fires with the next payload put here.
        """
        d: Deferred[bytes] = Deferred(lambda d: self._forget(d))
        self._waiting.append(d)
        return d

    def _forget(self, d: Deferred[bytes]) -> None:
        if d in self._waiting:
            self._waiting.remove(d)

    def failWaiters(self, error: Exception) -> None:
        """
        Fail every waiting L{Deferred} with C{error}.
        """
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not d.called:
                d.errback(error)


class AphelionClientProtocol(WebSocketClientProtocol):
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
    :ivar session: the L{ClientSession} this connection belongs to, or
        L{None}.
    :ivar lastUsed: grows with every payload a L{ClientSession} sends here.
    :ivar closeCode: how the connection closed (see L{ClosedError.code}), or
        L{None} while it is open.
    :ivar closeReason: the reason that came with L{closeCode}.
    """

    _log = Logger()
    factory: AphelionClientFactory

    token: bytes | None = None
    resumed = False
    session: ClientSession | None = None
    lastUsed = 0
    closeCode: int | None = None
    closeReason = ""
    _handshaken = False
    _initCall: IDelayedCall | None = None
    _ackCall: IDelayedCall | None = None

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
    def unacknowledged(self) -> int:
        """
        Our packets with a payload that the server has not acknowledged yet.
        """
        return self._acks.unacknowledged

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
        if self.state != _OPEN:
            return
        if not self._handshaken:
            raise RuntimeError("the init handshake is not done")
        try:
            packet = self._acks.send(payload)
        except AckViolation as e:
            self.closeWith(e.code, e.reason)
            return
        if not self._acks.owed and self._ackCall is not None:
            self._ackCall.cancel()
            self._ackCall = None
        self.sendMessage(packet, True)

    def closeWith(self, code: int, reason: str) -> None:
        """
        Close with any close code and a short reason.

        Autobahn's C{sendClose} refuses codes other than 1000 and 3000-4999,
        so this sends the close frame itself. Does nothing unless the
        connection is open.
        """
        if self.state != _OPEN:
            return
        self._log.debug(
            "closing connection to {peer} (session {hint}): {code} {reason}",
            peer=self.peer,
            hint=tokenHint(self.token),
            code=code,
            reason=reason,
        )
        # Cut at a character boundary: the reason must stay valid UTF-8.
        reasonUtf8 = reason.encode("utf-8")[:_MAX_REASON]
        reasonUtf8 = reasonUtf8.decode("utf-8", "ignore").encode("utf-8")
        self.sendCloseFrame(code=int(code), reasonUtf8=reasonUtf8)

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
        connection outside a L{ClientSession} are queued here.

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
        Called when the transport is connected: disable Nagle.
        """
        super().connectionMade()
        self._handshakeWaiters: list[Deferred[AphelionClientProtocol]] = []
        self._closeWaiters: list[Deferred[tuple[int, str]]] = []
        self._queue = _PayloadQueue()
        self._acks = AckState(self.factory.ackCap, self.factory.unackedLimit)
        # Autobahn's own attempt runs before it copies tcpNoDelay from the
        # factory, and swallows the AttributeError.
        transport: Any = self.transport
        try:
            transport.setTcpNoDelay(True)
        except (AttributeError, OSError, NotImplementedError):
            self._log.debug(
                "cannot set TCP_NODELAY on {transport}", transport=self.transport
            )

    def onOpen(self) -> None:
        """
        Send the C2SInitPacket and start waiting for the server's reply.
        """
        super().onOpen()
        factory = self.factory
        self._initCall = factory.clock.callLater(
            factory.initTimeout, self._initTimedOut
        )
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
            self._packetReceived(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Called when the WebSocket is closed: cancel the timers and tell whoever
        waits.
        """
        super().onClose(wasClean, code, reason)
        for call in (self._initCall, self._ackCall):
            if call is not None and call.active():
                call.cancel()
        self._initCall = self._ackCall = None
        if not wasClean:
            code, reason = _ABNORMAL, reason or "connection lost"
        elif getattr(self, "closedByMe", False) and self.localCloseCode is not None:
            code = self.localCloseCode
            reason = (self.localCloseReason or b"").decode("utf-8", "replace")
        else:
            code = self.remoteCloseCode
            reason = self.remoteCloseReason
        self.closeCode = _NO_STATUS if code is None else int(code)
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
            self.session._connectionClosed(self)
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

    def _initTimedOut(self) -> None:
        self._initCall = None
        self.closeWith(CloseCode.INIT_TIMEOUT, "no S2CInitPacket in time")

    def _initReplyReceived(self, message: bytes) -> None:
        if self._initCall is not None:
            self._initCall.cancel()
            self._initCall = None
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
            self.session._connectionReady(self)
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

    def _packetReceived(self, packet: bytes) -> None:
        try:
            payload = self._acks.receive(packet)
        except AckViolation as e:
            self._log.warn(
                "server {peer} broke the ack rules: {code} {reason}",
                peer=self.peer,
                code=int(e.code),
                reason=e.reason,
            )
            self.closeWith(e.code, e.reason)
            return
        if not payload:
            return
        with self._log.failuresHandled("payloadReceived failed") as op:
            if self.session is not None:
                self.session._payloadReceived(self, payload)
            else:
                self.payloadReceived(payload)
        if op.failed:
            self.closeWith(CloseCode.INTERNAL_ERROR, "internal error")
            return
        if self._acks.owed and self._ackCall is None and self.state == _OPEN:
            self._ackCall = self.factory.clock.callLater(
                self.factory.ackDelay, self._flushAcks
            )

    def _flushAcks(self) -> None:
        self._ackCall = None
        acks = self._acks
        while acks.owed and self.state == _OPEN:
            self.sendMessage(acks.send(b""), True)

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
        gone. A L{ClientSession} then closes its sockets of the old session
        with 4005. The default does nothing.

        :param presented: the token this connection presented.
        :param token: the token of the new session.
        """

    def payloadReceived(self, payload: bytes) -> None:
        """
        Called with each non-empty payload that arrives after the handshake,
        on a connection that belongs to no L{ClientSession}. The default
        queues it for L{nextPayload}.
        """
        self._queue.put(payload)


class AphelionClientFactory(WebSocketClientFactory):
    """
    Builds L{AphelionClientProtocol}s for one URL and holds what they share.

    :ivar clock: the clock of the protocols' timers.
    :ivar aphelionProtocol: the protocol asked for in the init packet.
    :ivar protocolVersion: the revision asked for, 0 to skip the check.
    :ivar token: the session token to present, or L{None}.
    :ivar session: the L{ClientSession} the connections join, or L{None}.
    :ivar initTimeout: seconds to wait for the S2CInitPacket (close 4004).
    :ivar ackDelay: seconds before an ack-only packet; 0 is the end of the
        current reactor turn.
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
        session: ClientSession | None = None,
        initTimeout: float = 10.0,
        ackDelay: float = 0.0,
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


def endpointForURL(reactor: Any, url: str) -> IStreamClientEndpoint:
    """
    Make the client endpoint for a C{ws://} or C{wss://} URL.

    :param reactor: provides C{IReactorTCP} (and C{IReactorPluggableNameResolver}
        for host names).
    :raises ValueError: for any other scheme.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    host = parsed.hostname
    secure = parsed.scheme == "wss"
    port = parsed.port or (443 if secure else 80)
    endpoint: IStreamClientEndpoint
    if isIPv6Address(host):
        endpoint = TCP6ClientEndpoint(reactor, host, port)
    elif isIPAddress(host):
        endpoint = TCP4ClientEndpoint(reactor, host, port)
    else:
        endpoint = HostnameEndpoint(reactor, host, port)
    if secure:
        from twisted.internet.ssl import optionsForClientTLS

        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    return endpoint


def connectFactory(
    reactor: Any, factory: AphelionClientFactory
) -> Deferred[AphelionClientProtocol]:
    """
    Connect to the URL of C{factory}.

    :return: a L{Deferred} that fires with the protocol once the init
        handshake is done, or fails with L{ClosedError} (or the connection
        error). Cancelling it drops the connection.
    """
    d: Deferred[Any] = endpointForURL(reactor, factory.url).connect(factory)
    d.addCallback(lambda protocol: protocol.whenHandshakeDone())
    return d


def connect(
    reactor: Any,
    url: str,
    protocol: int = AphelionProtocol.GAME,
    token: bytes | None = None,
    version: int = 0,
    **options: Any,
) -> Deferred[AphelionClientProtocol]:
    """
    Open one connection and complete the init handshake.

    :param reactor: the reactor to connect with; also the clock of every timer.
    :param url: C{ws://host:port/path} or C{wss://...}.
    :param protocol: the C{aphelion_protocol} to ask for.
    :param token: a session token to present, or L{None} for a new session.
    :param version: the protocol revision, 0 to skip the check.
    :param options: more keyword arguments of L{AphelionClientFactory}.
    :return: a L{Deferred} that fires with the protocol once the handshake is
        done, or fails with L{ClosedError} carrying the close code and reason
        (or with the connection error, such as C{ConnectionRefusedError}).
    """
    factory = AphelionClientFactory(
        url,
        clock=reactor,
        aphelionProtocol=protocol,
        protocolVersion=version,
        token=token,
        **options,
    )
    return connectFactory(reactor, factory)


def ping(
    reactor: Any, url: str, version: int = 0, **options: Any
) -> Deferred[PingResult]:
    """
    Open a ping connection, send one C{PingRequest}, await the
    C{PingResponse} and close with 1000.

    :param reactor: the reactor to connect with; also the clock.
    :param url: the server's WebSocket URL.
    :param version: the protocol revision, 0 to skip the check.
    :param options: more keyword arguments of L{AphelionClientFactory}.
    :return: a L{Deferred} that fires with the L{PingResult} once the
        connection is closed, or fails with L{ClosedError} or the connection
        error.
    """
    return Deferred.fromCoroutine(_ping(reactor, url, version, options))


async def _ping(
    reactor: Any, url: str, version: int, options: dict[str, Any]
) -> PingResult:
    connection = await connect(
        reactor, url, AphelionProtocol.PING, version=version, **options
    )
    try:
        # proto3 leaves a zero field out, and an empty payload is not a
        # PingRequest: never send a client time of 0.
        clientTime = int(reactor.seconds() * 1_000_000_000) or 1
        sent = reactor.seconds()
        connection.sendPayload(PingRequest(client_time=clientTime).SerializeToString())
        payload = await connection.nextPayload()
        rtt = reactor.seconds() - sent
        try:
            response = PingResponse.FromString(payload)
        except DecodeError:
            connection.closeWith(CloseCode.MALFORMED_PACKET, "malformed PingResponse")
            raise ClosedError(
                CloseCode.MALFORMED_PACKET, "malformed PingResponse"
            ) from None
    finally:
        connection.closeWith(CloseCode.NORMAL, "done")
        await connection.whenClosed()
    return PingResult(
        rtt=rtt,
        players=response.players,
        playing=response.playing,
        serverTime=response.server_time,
    )


class ClientSession:
    """
    Several game sockets that share one session token.

    The first connection gets the token; the rest present it. Payloads go out
    on the open connection with the fewest unacknowledged packets (on a tie,
    the one used least recently), and payloads received on any of them are
    merged in arrival order for L{nextPayload}.

    If a connection that presented the token gets a different one back, the
    old session is gone: the session takes the new token and closes its
    connections of the old one with 4005 (L{newSessionStarted} is called).

    :ivar token: the session token, or L{None} before the first handshake.
    :ivar connections: the open, handshaken connections, in joining order.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        url: str,
        *,
        protocol: int = AphelionProtocol.GAME,
        version: int = 0,
        token: bytes | None = None,
        **options: Any,
    ) -> None:
        """
        :param reactor: the reactor to connect with; also the clock.
        :param url: the server's WebSocket URL.
        :param protocol: the C{aphelion_protocol} of every connection.
        :param version: the protocol revision, 0 to skip the check.
        :param token: a token to resume, or L{None} for a new session.
        :param options: more keyword arguments of L{AphelionClientFactory}.
        """
        self._reactor = reactor
        self.url = url
        self.aphelionProtocol = protocol
        self.version = version
        self.token = token
        self.connections: list[AphelionClientProtocol] = []
        self._options = options
        self._queue = _PayloadQueue()
        self._firstLock = DeferredLock()
        self._connecting = 0
        self._tick = 0
        self._lastClose: tuple[int, str] | None = None

    def buildFactory(self) -> AphelionClientFactory:
        """
        :return: a factory for one more connection of this session: it
            presents the current token.
        """
        return AphelionClientFactory(
            self.url,
            clock=self._reactor,
            aphelionProtocol=self.aphelionProtocol,
            protocolVersion=self.version,
            token=self.token,
            session=self,
            **self._options,
        )

    def connect(self) -> Deferred[AphelionClientProtocol]:
        """
        Open one more connection of this session. While the session has no
        token yet, connections are opened one after the other, so that only
        the first one makes a session.

        :return: a L{Deferred} that fires with the connection once its
            handshake is done, or fails like L{aphelion.client.connect}.
        """
        return Deferred.fromCoroutine(self._connect())

    async def _connect(self) -> AphelionClientProtocol:
        if self.token is None:
            await self._firstLock.acquire()
            try:
                if self.token is None:
                    return await self._connectOne()
            finally:
                self._firstLock.release()
        return await self._connectOne()

    async def _connectOne(self) -> AphelionClientProtocol:
        self._connecting += 1
        try:
            return await connectFactory(self._reactor, self.buildFactory())
        except ClosedError as e:
            self._lastClose = (e.code, e.reason)
            raise
        finally:
            self._connecting -= 1
            if not self.connections and not self._connecting:
                code, reason = self._lastClose or (_ABNORMAL, "not connected")
                self._queue.failWaiters(ClosedError(code, reason))

    def open(self, count: int) -> Deferred[ClientSession]:
        """
        Open C{count} connections of this session, one after the other.

        :return: a L{Deferred} that fires with this session, or fails like
            L{connect}.
        """

        async def openAll() -> ClientSession:
            """
            Open the connections one after the other.
            """
            for _ in range(count):
                await self.connect()
            return self

        return Deferred.fromCoroutine(openAll())

    def chooseConnection(self) -> AphelionClientProtocol:
        """
        :return: the open connection with the fewest unacknowledged packets;
            on a tie, the one used least recently.
        :raises NotConnectedError: when no connection is open.
        """
        best: AphelionClientProtocol | None = None
        for conn in self.connections:
            if not conn.handshaken:
                continue
            if best is None or (conn.unacknowledged, conn.lastUsed) < (
                best.unacknowledged,
                best.lastUsed,
            ):
                best = conn
        if best is None:
            raise NotConnectedError("no open connection in this session")
        return best

    def sendPayload(self, payload: bytes) -> AphelionClientProtocol:
        """
        Send one payload on the connection L{chooseConnection} picks.

        :return: the connection it went out on.
        :raises NotConnectedError: when no connection is open.
        """
        conn = self.chooseConnection()
        self._tick += 1
        conn.lastUsed = self._tick
        conn.sendPayload(payload)
        return conn

    def nextPayload(self) -> Deferred[bytes]:
        """
        Take the oldest payload received on any connection and not taken yet.

        :return: a L{Deferred} that fires with it, or fails with
            L{ClosedError} (the last close) when the session has no open or
            opening connection and nothing is left.
        """
        d = self._queue.get()
        if d is not None:
            return d
        if not self.connections and not self._connecting:
            code, reason = self._lastClose or (_ABNORMAL, "not connected")
            return fail(ClosedError(code, reason))
        return self._queue.wait()

    def close(
        self, code: int = CloseCode.NORMAL, reason: str = "bye"
    ) -> Deferred[None]:
        """
        Close every connection of the session.

        :return: a L{Deferred} that fires when all of them are closed.
        """

        async def closeAll() -> None:
            """
            Close every connection and wait for each.
            """
            conns = list(self.connections)
            for conn in conns:
                conn.closeWith(code, reason)
            for conn in conns:
                await conn.whenClosed()

        return Deferred.fromCoroutine(closeAll())

    # -- called by the connections -------------------------------------------

    def _connectionReady(self, conn: AphelionClientProtocol) -> None:
        presented = conn.presentedToken
        self.token = conn.token
        self.connections.append(conn)
        if presented is None or conn.resumed:
            return
        assert conn.token is not None
        self._log.info(
            "session {old} is gone; the server made session {new}",
            old=tokenHint(presented),
            new=tokenHint(conn.token),
        )
        for old in list(self.connections):
            if old.token == presented:
                old.closeWith(
                    CloseCode.UNEXPECTED_NEW_SESSION,
                    "the server made a new session unexpectedly",
                )
        with self._log.failuresHandled("newSessionStarted failed"):
            self.newSessionStarted(presented, conn.token)

    def _connectionClosed(self, conn: AphelionClientProtocol) -> None:
        if conn in self.connections:
            self.connections.remove(conn)
        assert conn.closeCode is not None
        self._lastClose = (conn.closeCode, conn.closeReason)
        if not self.connections and not self._connecting:
            self._queue.failWaiters(ClosedError(conn.closeCode, conn.closeReason))

    def _payloadReceived(self, conn: AphelionClientProtocol, payload: bytes) -> None:
        self.payloadReceived(conn, payload)

    # -- hooks -------------------------------------------------------------

    def payloadReceived(self, conn: AphelionClientProtocol, payload: bytes) -> None:
        """
        Called with each non-empty payload received on any connection of the
        session. The default queues it for L{nextPayload}.
        """
        self._queue.put(payload)

    def newSessionStarted(self, previous: bytes, token: bytes) -> None:
        """
        Called when the server answered a presented token with a new session;
        the connections of the old one are closing with 4005. The default
        does nothing.

        :param previous: the token of the session that is gone.
        :param token: the new token, now L{token}.
        """
