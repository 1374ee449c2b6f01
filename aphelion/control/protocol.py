# -*- test-case-name: tests.test_control_protocol -*-
"""
The envelope protocol of Part 2: the base of both ends of every connection
between the AuthProxy and a game server.

L{EnvelopeProtocol} feeds the sans-IO L{EnvelopeDecoder} and, for each
envelope, in the order of the contract's list in Part 2.1:

1. a version other than 1 or a reserved encoding (2-3): the decoder's
   C{EnvelopeError}, answered with C{Error{1}} or C{Error{2}};
2. a type number with no name in table 2.2:
   L{EnvelopeProtocol.envelopeUnknown}, which answers C{Error{3}};
3. a type that is not allowed in the connection's state
   (L{EnvelopeProtocol.allowedNow}): C{Error{4}} (C{Error} envelopes are
   always allowed); an allowed type with no C{envelope_<Name>} handler here
   goes to L{EnvelopeProtocol.envelopeUnknown} too;
4. a payload that does not decode: C{Error{5}}. That includes a valid
   encoding that is wrong for the type (raw bytes for a protobuf type, or
   protobuf for C{GameData}): C{Error{2}} is only for the reserved encodings;
5. otherwise the handler is called: C{envelope_<Name>(message)} with the parsed
   protobuf message, or with the raw payload bytes for C{GameData}.

Every C{Error} this end sends is logged at C{warn} with its code and followed
by L{EnvelopeProtocol.loseConnection}; envelopes that arrive after it are
ignored. An C{Error} received is logged and the connection closed. Nothing
raises out of C{dataReceived}: an exception from a handler is logged with its
traceback and the connection is closed.

A peer chooses those log lines (an C{Error} it provokes or sends, a slow
read), and a thousand peers would write a thousand of them: they go through
the factory's L{ThrottledLog}: one line for the first of each cause, then a
count per interval (C{logInterval} of L{EnvelopeFactory}, 10 s by default)
while more come (Part 6). The cause is a constant (C{"Error TIMEOUT sent"});
the peer's address is only in the fields of the first line.

A peer that does not read is found by the write-buffer watch of
L{aphelion.control.flow}.

Always close through L{EnvelopeProtocol.loseConnection} rather than the
transport's: the protocol is registered as the transport's streaming producer
(to see a slow peer), and a transport with a registered producer never
finishes closing.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.message import Message
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.codes import Encoding, EnvelopeType, ErrorCode
from aphelion.control.flow import WriteBufferWatch
from aphelion.control.timers import EnvelopeTimers
from aphelion.envelope import (
    ENCODINGS,
    PAYLOAD_TYPES,
    Envelope,
    EnvelopeDecoder,
    EnvelopeError,
    decodePayload,
    encodeEnvelope,
    gameDataEnvelope,
    wholeGameData,
)
from aphelion.fastwrite import setNoDelay, writeNow
from aphelion.limits import safeText
from aphelion.logthrottle import ThrottledLog
from aphelion.proto import control_pb2

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "EnvelopeFactory",
    "EnvelopeProtocol",
    "gameDataEnvelope",
    "tokensMatch",
]

_MAX_ERROR_TEXT = 1024  # characters of an Error's message that are sent

# type number -> (type, handler name, message class or None for raw, encoding)
_TYPES: Final[dict[int, tuple[EnvelopeType, str, type[Message] | None, Encoding]]] = {
    int(envelopeType): (
        envelopeType,
        "envelope_" + envelopeType.name,
        messageClass,
        ENCODINGS[envelopeType],
    )
    for envelopeType, messageClass in PAYLOAD_TYPES.items()
}


def tokensMatch(given: bytes, expected: bytes) -> bool:
    """
    Compare a token a peer presented with the one it must be, in constant
    time (C{hmac.compare_digest}).

    :param given: the token the peer sent.
    :param expected: the real token. An empty one matches nothing, so that a
        server without a token cannot be opened with an empty one.
    :return: whether they are equal.
    """
    if not expected:
        return False
    return hmac.compare_digest(given, expected)


class EnvelopeFactory(Factory):
    """
    The base of the factories of L{EnvelopeProtocol}s: it holds the clock that
    every timer of its protocols runs on, and the rate-limited log of the
    lines their peers cause.

    A client factory mixes it in: C{class F(EnvelopeFactory, ClientFactory)}.
    A subclass that overrides C{stopFactory} calls C{super()}.

    :ivar clock: the clock of the envelope timeout and the heartbeats.
    :ivar throttle: the log of the lines a peer causes (an C{Error} sent or
        received, a peer that reads too slowly): the first of each cause,
        then one summary line per interval.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        logInterval: float = 10.0,
        throttle: ThrottledLog | None = None,
    ) -> None:
        """
        :param clock: the clock of every timer of the protocols (required).
        :param logInterval: seconds between the summary lines of one cause.
        :param throttle: a log to share with other factories (say, one per
            connection that should count together); by default one of its
            own on C{clock}, stopped with the factory.
        """
        self.clock = clock
        self._ownThrottle = throttle is None
        self.throttle = (
            ThrottledLog(EnvelopeProtocol._log, clock=clock, interval=logInterval)
            if throttle is None
            else throttle
        )

    def stopFactory(self) -> None:
        """
        Called when the factory stops: cancel the summary timer of its own
        throttled log (a shared one is its owner's to stop).
        """
        if self._ownThrottle:
            self.throttle.stop()
        super().stopFactory()


class EnvelopeProtocol(EnvelopeTimers, WriteBufferWatch, Protocol):
    """
    One connection that speaks envelopes (Part 2.1), either end.

    Subclasses add C{envelope_<Name>} handlers for the types of table 2.2 they
    accept, and say which are allowed in each state by setting
    L{allowedTypes} (or by overriding L{allowedNow}). Built only by a factory's
    C{buildProtocol}; the factory is an L{EnvelopeFactory}.

    Its timers (the first-message timeout, L{setEnvelopeTimeout}, the
    heartbeats and their class variables) are those of L{EnvelopeTimers}.

    It is its transport's streaming producer, to see a peer that reads too
    slowly: L{writeBufferLimit}, L{writePaused} and the C{IPushProducer}
    methods are those of L{WriteBufferWatch}.

    :ivar allowedTypes: the types allowed now, or L{None} for all of them.
        C{Error} is always allowed.
    """

    _log = Logger()
    factory: EnvelopeFactory

    allowedTypes: frozenset[EnvelopeType] | None = None

    _closing = False

    # -- Twisted callbacks ---------------------------------------------------

    def connectionMade(self) -> None:
        """
        Disable Nagle, watch the write buffer, start the first-message timeout
        and, if L{heartbeats} is set, the heartbeats.
        """
        super().connectionMade()
        self._decoder = EnvelopeDecoder()
        transport: Any = self.transport
        # Twisted does not disable Nagle on TCP connections by default; on a
        # loopback relay it costs up to 40 ms a packet.
        setNoDelay(transport)
        self._watchWrites(transport)
        self._startTimers()

    def dataReceived(self, data: bytes) -> None:
        """
        Decode envelopes and dispatch each. Never raises.
        """
        if self._closing:
            return
        if self._deadCall is not None:
            self._lastReceived = self.factory.clock.seconds()
        decoder = self._decoder
        if decoder.idle and self._envelopeCall is None:
            # The hot path of the relay: a read that is one whole GameData
            # envelope is dispatched without the decoder's buffer and loop.
            payload = wholeGameData(data)
            if payload is not None:
                try:
                    self._dispatch(
                        Envelope(EnvelopeType.GameData, Encoding.RAW, payload)
                    )
                except Exception:
                    self._log.failure(
                        "handling an envelope from {peer} failed", peer=self._peer()
                    )
                    self.loseConnection()
                return
        try:
            envelopes = decoder.feed(data)
        except EnvelopeError as e:
            # The envelopes before the fault are handled, then the Error is
            # sent: as if the bytes had arrived one at a time.
            envelopes = e.preceding
            error: EnvelopeError | None = e
        else:
            error = None
        try:
            self._dispatchAll(envelopes)
        except Exception:
            self._log.failure(
                "handling an envelope from {peer} failed", peer=self._peer()
            )
            self.loseConnection()
            return
        if error is not None:
            self.sendError(error.code, error.message)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Cancel every timer.
        """
        super().connectionLost(reason)
        self._closing = True
        self._producing = False
        self._cancelTimers()

    # -- hooks ---------------------------------------------------------------

    def allowedNow(self, envelopeType: EnvelopeType) -> bool:
        """
        Called with the type of each envelope of a type in table 2.2, to ask
        whether it is allowed in the connection's state (else C{Error{4}}).
        Never called for C{Error}, which is always allowed.

        :return: whether L{allowedTypes} is L{None} or contains the type.
        """
        allowed = self.allowedTypes
        return allowed is None or envelopeType in allowed

    def envelopeUnknown(self, envelope: Envelope) -> None:
        """
        Called when an envelope arrives whose type has no name in table 2.2,
        or is allowed but has no C{envelope_<Name>} handler here. Answers
        C{Error{3}} and closes.
        """
        try:
            name = EnvelopeType(envelope.type).name
        except ValueError:
            name = str(envelope.type)
        self.sendError(ErrorCode.UNKNOWN_TYPE, f"unknown envelope type {name}")

    def envelope_Error(self, message: control_pb2.Error) -> None:
        """
        Called when the peer sends C{Error}: it is about to close. Logs it
        (throttled: the cause is the code's name) and closes.
        """
        code = message.code
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = "unknown code"
        self.factory.throttle.warn(
            f"Error {name} received",
            "{peer} sent Error {code}: {text}",
            peer=self._peer(),
            code=code,
            text=safeText(message.message, _MAX_ERROR_TEXT),
        )
        self.loseConnection()

    # -- sending -------------------------------------------------------------

    def sendEnvelope(
        self, envelopeType: EnvelopeType, message: Message | bytes
    ) -> None:
        """
        Send one envelope. Does nothing once the connection is closing.

        :param envelopeType: its type.
        :param message: a protobuf message (serialized here) or the payload
            bytes, sent with the type's encoding of table 2.2. For C{GameData},
            L{sendGameData} is faster.
        :raises ValueError: if the payload is longer than 65535 bytes.
        """
        if self._closing:
            return
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        self.writeEnvelopes(
            encodeEnvelope(envelopeType, payload, ENCODINGS[envelopeType])
        )

    def sendGameData(self, payload: bytes) -> None:
        """
        Send one C{GameData} envelope: one write, no protobuf. Does nothing
        once the connection is closing.

        :param payload: the raw C{C2S} or C{S2C} bytes of one client packet.
        :raises ValueError: if the payload is longer than 65535 bytes.
        """
        if self._closing:
            return
        self.writeEnvelopes(gameDataEnvelope(payload))

    def writeEnvelopes(self, data: bytes) -> None:
        """
        Write envelopes that are already encoded (say, one C{GameData}
        broadcast to many connections, encoded once). Does nothing once the
        connection is closing.

        :param data: whole envelopes.
        """
        if self._closing:
            return
        transport = self.transport
        writeNow(transport, data)
        # The transport pauses us from inside that write once its buffer is
        # full; only then is the buffer worth measuring.
        if self.writePaused and self.writeBufferLimit is not None:
            self._wrotePaused(transport, len(data))

    def sendError(self, code: ErrorCode, message: str) -> None:
        """
        Send C{Error{code, message}}, log it at C{warn} with the code (through
        the factory's throttle: the cause is the code's name), and close.
        Does nothing once the connection is closing.

        :param code: the contract's code.
        :param message: a short text for the peer's log.
        """
        if self._closing:
            return
        self.factory.throttle.warn(
            f"Error {code.name} sent",
            "sending Error {code} ({codeName}) to {peer}: {text}",
            code=int(code),
            codeName=code.name,
            peer=self._peer(),
            text=message,
        )
        self.sendEnvelope(
            EnvelopeType.Error,
            control_pb2.Error(code=code, message=message[:_MAX_ERROR_TEXT]),
        )
        self.loseConnection()

    def loseConnection(self) -> None:
        """
        Close once what is written has been sent: stop the timers, stop
        handling envelopes, unregister from the transport and close it. Close
        through this, not through the transport.
        """
        if self._closing:
            return
        self._closing = True
        self._cancelTimers()
        self._unregister()
        self.transport.loseConnection()  # type: ignore[union-attr]

    def abortConnection(self) -> None:
        """
        Close now, dropping whatever is not sent yet: stop the timers, stop
        handling envelopes and abort the transport.
        """
        if self.transport is None:
            return
        self._closing = True
        self._cancelTimers()
        self._unregister()
        transport: Any = self.transport
        transport.abortConnection()

    @property
    def closing(self) -> bool:
        """
        Whether the connection is closing or closed: nothing more is sent or
        handled.
        """
        return self._closing

    # -- internals -----------------------------------------------------------

    def _dispatchAll(self, envelopes: list[Envelope]) -> None:
        """
        Dispatch envelopes in order, until one closes the connection.
        """
        for envelope in envelopes:
            if self._closing:
                return
            if self._envelopeCall is not None:
                self.setEnvelopeTimeout(None)
            self._dispatch(envelope)

    def _dispatch(self, envelope: Envelope) -> None:
        """
        Check one envelope in the contract's order and call its handler.
        """
        entry = _TYPES.get(envelope.type)
        if entry is None:
            self.envelopeUnknown(envelope)
            return
        envelopeType, handlerName, messageClass, encoding = entry
        if envelopeType is not EnvelopeType.Error and not self.allowedNow(envelopeType):
            self.sendError(
                ErrorCode.NOT_ALLOWED_NOW, f"{envelopeType.name} is not allowed now"
            )
            return
        handler: Callable[[Any], None] | None = getattr(self, handlerName, None)
        if handler is None:
            self.envelopeUnknown(envelope)
            return
        if messageClass is None:
            if envelope.encoding != encoding:
                self.sendError(
                    ErrorCode.UNDECODABLE_PAYLOAD,
                    f"{envelopeType.name} payload must have encoding "
                    f"{int(encoding)}, not {envelope.encoding}",
                )
                return
            handler(envelope.payload)
            return
        try:
            message = decodePayload(envelope, messageClass)
        except EnvelopeError as e:
            self.sendError(e.code, e.message)
            return
        handler(message)

    def _peer(self) -> str:
        """
        The peer's address, for logs.
        """
        transport = self.transport
        if transport is None:
            return "?"
        peer = transport.getPeer()
        host = getattr(peer, "host", None)
        port = getattr(peer, "port", None)
        return f"{host}:{port}" if host is not None else str(peer)
