# -*- test-case-name: tests.test_websocket,tests.test_client -*-
"""
What the two halves of Part 1 share over Autobahn: the server's
L{aphelion.websocket.AphelionServerProtocol} and the client's
L{aphelion.client.AphelionClientProtocol} both derive from
L{PacketProtocol}.

It holds one connection's L{AckState} and does what both ends do with it:
send a payload with the pending ack, account for a received ProtobufPacket,
send ack-only packets for what is owed. It closes with any close code of the
contract and a reason (L{PacketProtocol.closeWith}), times the init
handshake, and disables Nagle on the transport. Which end it is, and so what
it sends first, whom it tells about a payload and when it acknowledges, is
the subclass's.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FunctionType
from typing import Any

from autobahn.twisted.websocket import WebSocketAdapterProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.ack import AckState
from aphelion.codes import CloseCode, ProtocolViolation
from aphelion.fastwrite import setNoDelay

__all__ = ["MAX_REASON", "PacketProtocol", "bakedProtocol", "closeReason"]

_OPEN = WebSocketProtocol.STATE_OPEN

#: The longest close reason in bytes: a close frame's payload is at most 125
#: bytes, and 2 of them are the code (RFC 6455, section 5.5).
MAX_REASON = 123


def closeReason(reason: str) -> bytes:
    """
    Encode C{reason} for a close frame: UTF-8, at most L{MAX_REASON} bytes,
    cut at a character boundary so that it stays valid UTF-8.
    """
    reasonUtf8 = reason.encode("utf-8")[:MAX_REASON]
    return reasonUtf8.decode("utf-8", "ignore").encode("utf-8")


def bakedProtocol(protocolClass: type[Any], factory: Any) -> type[Any]:
    """
    A subclass of C{protocolClass} that holds the protocol options of
    C{factory} as class attributes.

    Autobahn copies every one of its options (C{CONFIG_ATTRS}, about 30)
    from the factory into each new protocol's instance dictionary, unless
    the protocol already has it, and formats the whole list with C{pformat}
    for a debug line, even when debug logging is off. That is about a
    seventh of the CPU of a handshake, and 1.5 KB of every connection's
    dictionary. Options that the class holds are neither copied nor
    formatted: each connection reads them from the class. A protocol may
    still set one for itself.

    :param protocolClass: an Autobahn protocol class.
    :param factory: the factory whose options to bake in; bake again after
        its C{setProtocolOptions}.
    :return: the subclass, named as C{protocolClass}.
    """
    options: dict[str, Any] = {}
    for name in protocolClass.CONFIG_ATTRS:
        value = getattr(factory, name)
        # A function (such as perMessageCompressionAccept) must not become
        # a method of the protocol.
        options[name] = (
            staticmethod(value) if isinstance(value, FunctionType) else value
        )
    options["CONFIG_ATTRS"] = ()
    options["__module__"] = protocolClass.__module__
    options["__qualname__"] = protocolClass.__qualname__
    options["__doc__"] = protocolClass.__doc__
    return type(protocolClass.__name__, (protocolClass,), options)


# Autobahn's two halves annotate peer and _transport_details differently, as
# every one of its Twisted protocols inherits them.
class PacketProtocol(WebSocketAdapterProtocol, WebSocketProtocol):  # type: ignore[misc]
    """
    The base of both ends' WebSocket protocols: ProtobufPackets with acks,
    closing with a reason, the init timer and C{TCP_NODELAY}.

    Put it before Autobahn's Twisted C{WebSocketServerProtocol} or
    C{WebSocketClientProtocol} in the bases. The subclass creates L{_acks} before the
    first packet and implements L{acksOwed}.
    """

    _log = Logger()

    _acks: AckState
    _initCall: IDelayedCall | None = None
    _ackCall: IDelayedCall | None = None
    #: An ack is on its way: a timer (the ack delay) or the end of the turn.
    _ackQueued = False
    #: The ack goes at the end of this turn (no delay, or the cap is reached).
    _ackSoon = False

    @property
    def unacknowledged(self) -> int:
        """
        Our packets with a payload that the peer has not acknowledged yet.
        """
        return self._acks.unacknowledged

    def sendBinary(self, payload: bytes) -> None:
        """
        Send C{payload} as one binary message (L{FastSendMixin} has a faster
        one for servers).
        """
        self.sendMessage(payload, True)

    def sendPayload(self, payload: bytes) -> None:
        """
        Send one payload in a ProtobufPacket carrying the pending ack.

        An empty payload sends an ack-only packet. Does nothing once the
        connection is closing; closes with 4007 when the peer leaves too many
        packets unacknowledged.
        """
        if self.state != _OPEN:
            return
        acks = self._acks
        try:
            packet = acks.send(payload)
        except ProtocolViolation as e:
            self.closeWith(e.code, e.reason)
            return
        if self._ackQueued and not acks.owed:
            # The packet carried every ack a timer was waiting to send.
            call = self._ackCall
            if call is not None:
                call.cancel()
                self._ackCall = None
            self._ackQueued = self._ackSoon = False
        self.sendBinary(packet)

    def flushAcks(self) -> None:
        """
        Send ack-only packets for everything owed, at most the ack cap each.
        """
        self._ackCall = None
        self._ackQueued = self._ackSoon = False
        acks = self._acks
        while acks.owed and self.state == _OPEN:
            self.sendBinary(acks.send(b""))

    def ackAfter(self, clock: IReactorTime, delay: float) -> None:
        """
        Call L{flushAcks} after C{delay} seconds of C{clock}, unless a payload
        we send carries the acks first. A timer already set is replaced (as
        when the ack cap is reached while it waits: C{delay} is 0 then).
        """
        call = self._ackCall
        if call is not None and call.active():
            call.cancel()
        if delay <= 0:
            self._ackSoon = True
        self._ackCall = clock.callLater(delay, self.flushAcks)

    def closeWith(self, code: int, reason: str) -> None:
        """
        Close with any close code of the contract and a short reason.

        Autobahn's C{sendClose} refuses every code but 1000 and 3000-4999,
        which leaves out the contract's 1001, 1003, 1011 and 1013, so this
        sends the close frame itself, with the reason cut to fit (see
        L{closeReason}). Does nothing unless the connection is open.
        """
        if self.state != _OPEN:
            return
        self.closing(code, reason)
        self.sendCloseFrame(code=int(code), reasonUtf8=closeReason(reason))

    # -- Autobahn and Twisted callbacks --------------------------------------

    def connectionMade(self) -> None:
        """
        Called when the transport is connected: disable Nagle.
        """
        super().connectionMade()
        setNoDelay(self.transport)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Called when the WebSocket is closed: cancel the init and ack timers.
        """
        super().onClose(wasClean, code, reason)
        for call in (self._initCall, self._ackCall):
            if call is not None and call.active():
                call.cancel()
        self._initCall = self._ackCall = None

    # -- for subclasses ------------------------------------------------------

    def _awaitInit(self, clock: IReactorTime, timeout: float, reason: str) -> None:
        """
        Close with 4004 and C{reason} unless L{_initArrived} is called within
        C{timeout} seconds of C{clock}.
        """
        self._initCall = clock.callLater(timeout, self._initTimedOut, reason)

    def _initArrived(self) -> None:
        """
        Stop the timer of L{_awaitInit}.
        """
        if self._initCall is not None:
            self._initCall.cancel()
            self._initCall = None

    def _initTimedOut(self, reason: str) -> None:
        self._initCall = None
        self.closeWith(CloseCode.INIT_TIMEOUT, reason)

    def _packetReceived(self, packet: bytes, deliver: Callable[[bytes], None]) -> None:
        """
        Account for one received ProtobufPacket, hand its payload (if any) to
        C{deliver} and make sure it gets acknowledged.

        A packet that breaks the ack rules goes to L{protocolViolated}; an
        exception from C{deliver} to L{_internalError}.
        """
        try:
            payload = self._acks.receive(packet)
        except ProtocolViolation as e:
            self.protocolViolated(e)
            return
        if not payload:
            return
        try:
            deliver(payload)
        except Exception:
            self._internalError(Failure())
            return
        acks = self._acks
        owed = acks.owed
        if (
            owed
            and (not self._ackQueued or (owed >= acks.cap and not self._ackSoon))
            and self.state == _OPEN
        ):
            self._ackQueued = True
            self.acksOwed()

    def _internalError(self, failure: Failure) -> None:
        """
        Log C{failure}, our own bug, and close with 1011.
        """
        self._log.failure(
            "internal error on connection with {peer}", failure, peer=self.peer
        )
        self.closeWith(CloseCode.INTERNAL_ERROR, "internal error")

    # -- hooks ---------------------------------------------------------------

    def acksOwed(self) -> None:
        """
        Called when a received payload needs an ack and none is due yet, and
        again when the acks owed reach the ack cap while they wait for the ack
        delay. It must see to it that L{flushAcks} is called (L{ackAfter}
        does): after the ack delay, or at the end of the reactor turn when the
        delay is 0 or the cap is reached (it sets L{_ackSoon} then), unless a
        payload sent first carries the acks (Part 1.3).
        """
        raise NotImplementedError(f"{type(self).__name__} must define acksOwed")

    def protocolViolated(self, violation: ProtocolViolation) -> None:
        """
        Called when the peer broke the contract: its packet broke the ack
        rules, or it is not what the contract allows here. The default closes
        with the violation's code and reason.
        """
        self.closeWith(violation.code, violation.reason)

    def closing(self, code: int, reason: str) -> None:
        """
        Called by L{closeWith} just before it sends the close frame. The
        default logs the close at debug level.
        """
        self._log.debug(
            "closing connection with {peer}: {code} {reason}",
            peer=self.peer,
            code=code,
            reason=reason,
        )
