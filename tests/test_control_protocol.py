# -*- test-case-name: tests.test_control_protocol -*-
"""
Tests of L{aphelion.control.protocol}: one L{EnvelopeProtocol} over a
L{StringTransport}, with a L{Clock} for every timer.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import Encoding, EnvelopeType, ErrorCode
from aphelion.control.protocol import (
    EnvelopeFactory,
    EnvelopeProtocol,
    gameDataEnvelope,
    tokensMatch,
)
from aphelion.envelope import (
    HEADER,
    PAYLOAD_TYPES,
    EnvelopeDecoder,
    decodePayload,
    encodeEnvelope,
)
from aphelion.proto import control_pb2

T = EnvelopeType
TOKEN = bytes(range(32))
_KNOWN = {int(t) for t in T}


def envelope(
    envelopeType: int, message: Message | bytes = b"", encoding: int = -1
) -> bytes:
    """
    Encode one envelope; the encoding defaults to the type's (or protobuf).
    """
    payload = message if isinstance(message, bytes) else message.SerializeToString()
    if encoding < 0:
        encoding = Encoding.RAW if envelopeType == T.GameData else Encoding.PROTOBUF
    return encodeEnvelope(envelopeType, payload, encoding)


def sent(transport: StringTransport) -> list[tuple[int, Any]]:
    """
    Decode what the protocol wrote, and clear it.

    :return: C{(type, message)} pairs; the message is parsed when the type is
        in table 2.2 and has a protobuf payload, else the raw payload.
    """
    result: list[tuple[int, Any]] = []
    for item in EnvelopeDecoder().feed(transport.value()):
        messageClass = PAYLOAD_TYPES.get(T(item.type)) if item.type in _KNOWN else None
        if messageClass is None:
            result.append((item.type, item.payload))
        else:
            result.append((item.type, decodePayload(item, messageClass)))
    transport.clear()
    return result


class Recorder(EnvelopeProtocol):
    """
    An envelope protocol that records what it is handed.
    """

    received: list[tuple[str, Any]]

    def connectionMade(self) -> None:
        """
        Start with nothing received.
        """
        super().connectionMade()
        self.received = []

    def envelope_Ready(self, message: control_pb2.Ready) -> None:
        """
        Record a C{Ready}.
        """
        self.received.append(("Ready", message))

    def envelope_Status(self, message: control_pb2.Status) -> None:
        """
        Record a C{Status}; one with 666 players raises.
        """
        if message.players == 666:
            raise ValueError("the handler failed")
        self.received.append(("Status", message))

    def envelope_Shutdown(self, message: control_pb2.Shutdown) -> None:
        """
        Record a C{Shutdown}.
        """
        self.received.append(("Shutdown", message))

    def envelope_GameData(self, payload: bytes) -> None:
        """
        Record a C{GameData}.
        """
        self.received.append(("GameData", payload))

    def envelope_Type(self, message: control_pb2.Type) -> None:
        """
        Check the token of a C{Type}.
        """
        if not tokensMatch(message.token, TOKEN):
            self.sendError(ErrorCode.BAD_TOKEN, "bad token")
            return
        self.received.append(("Type", message))


class RecorderFactory(EnvelopeFactory):
    """
    Builds L{Recorder}s.
    """

    protocol = Recorder  # type: ignore[assignment]


class NoDelayTransport(StringTransport):
    """
    A transport that records C{setTcpNoDelay} and counts writes.
    """

    noDelay = False
    writes = 0

    def setTcpNoDelay(self, enabled: bool) -> None:
        """
        Record the setting.
        """
        self.noDelay = enabled

    def write(self, data: bytes) -> None:
        """
        Count, then buffer.
        """
        self.writes += 1
        super().write(data)


class QueueTransport(FileDescriptor):
    """
    A transport with Twisted's own write buffer (a L{FileDescriptor} on a
    L{MemoryReactor}) and no socket: what the peer reads is set by the test
    with L{drain}. So it pauses its producer as a TCP connection does: on
    every write while more than C{bufferSize} bytes are queued.

    :ivar sent: the bytes the peer has read.
    :ivar aborted: whether C{abortConnection} was called.
    """

    bufferSize = 100

    def __init__(self) -> None:
        super().__init__(reactor=MemoryReactor())
        self.connected = 1
        self.sent = bytearray()
        self.aborted = False
        self._room = 0

    def writeSomeData(self, data: bytes) -> int:
        """
        Hand the peer as much as L{drain} allowed.
        """
        n = min(self._room, len(data))
        self._room -= n
        self.sent += bytes(data[:n])
        return n

    def drain(self, n: int) -> None:
        """
        Let the peer read C{n} bytes now.
        """
        self._room = n
        self.doWrite()
        self._room = 0

    def abortConnection(self) -> None:
        """
        Record the abort.
        """
        self.aborted = True
        self.disconnecting = True

    def getPeer(self) -> IPv4Address:
        """
        A fixed peer address, for logs.
        """
        return IPv4Address("TCP", "192.0.2.7", 4321)

    def getHost(self) -> IPv4Address:
        """
        A fixed local address.
        """
        return IPv4Address("TCP", "127.0.0.1", 1234)


class ProtocolTestsMixin:
    """
    Builds a L{Recorder} on a L{Clock}.
    """

    protocolClass: type[Recorder] = Recorder

    def setUp(self) -> None:
        """
        A factory with a fresh clock.
        """
        self.clock = Clock()
        self.factory = RecorderFactory(clock=self.clock)
        self.factory.protocol = self.protocolClass

    def connect(self) -> tuple[Recorder, NoDelayTransport]:
        """
        Build a protocol and connect it to a fresh transport.
        """
        protocol = self.factory.buildProtocol(None)
        assert isinstance(protocol, Recorder)
        transport = NoDelayTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def assertError(
        self, transport: StringTransport, code: ErrorCode
    ) -> control_pb2.Error:
        """
        The protocol sent exactly one envelope, C{Error{code}}, and closed.
        """
        envelopes = sent(transport)
        self.assertEqual(len(envelopes), 1, envelopes)  # type: ignore[attr-defined]
        envelopeType, message = envelopes[0]
        self.assertEqual(envelopeType, T.Error)  # type: ignore[attr-defined]
        self.assertEqual(message.code, code)  # type: ignore[attr-defined]
        self.assertTrue(message.message)  # type: ignore[attr-defined]
        self.assertTrue(transport.disconnecting)  # type: ignore[attr-defined]
        return message  # type: ignore[no-any-return]


class ErrorCodeTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Every C{Error} code of Part 2.2, each followed by a close.
    """

    def test_unsupportedVersion(self) -> None:
        """
        A version other than 1 is answered with C{Error{1}}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"\x02" + envelope(T.Ready)[1:])
        self.assertError(transport, ErrorCode.UNSUPPORTED_VERSION)

    def test_reservedEncoding(self) -> None:
        """
        A reserved encoding (2 or 3) is answered with C{Error{2}}.
        """
        for en in (2, 3):
            protocol, transport = self.connect()
            protocol.dataReceived(HEADER.pack(1, T.Ready << 2 | en, 0))
            self.assertError(transport, ErrorCode.RESERVED_ENCODING)

    def test_unknownType(self) -> None:
        """
        A type number that is not in table 2.2 goes to C{envelopeUnknown},
        which answers C{Error{3}}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(40))
        message = self.assertError(transport, ErrorCode.UNKNOWN_TYPE)
        self.assertIn("40", message.message)

    def test_noHandler(self) -> None:
        """
        A type of table 2.2 that is allowed but has no handler is unknown to
        this end: C{Error{3}}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Control, control_pb2.Control()))
        message = self.assertError(transport, ErrorCode.UNKNOWN_TYPE)
        self.assertIn("Control", message.message)

    def test_envelopeUnknownOverridable(self) -> None:
        """
        A subclass may handle unknown types itself.
        """
        seen = []

        class Lenient(Recorder):
            def envelopeUnknown(self, envelope: Any) -> None:
                seen.append(envelope.type)

        self.factory.protocol = Lenient
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(40) + envelope(T.Ready, control_pb2.Ready()))
        self.assertEqual(seen, [40])
        self.assertEqual([name for name, _ in protocol.received], ["Ready"])
        self.assertFalse(transport.disconnecting)

    def test_notAllowedNow(self) -> None:
        """
        A type the state does not allow is answered with C{Error{4}}, and its
        handler is not called.
        """
        protocol, transport = self.connect()
        protocol.allowedTypes = frozenset({T.Ready})
        protocol.dataReceived(envelope(T.Status, control_pb2.Status()))
        message = self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)
        self.assertIn("Status", message.message)
        self.assertEqual(protocol.received, [])

    def test_notAllowedBeatsNoHandler(self) -> None:
        """
        A type of table 2.2 that is not allowed is C{Error{4}} even when this
        end has no handler for it: the contract checks the state first.
        """
        protocol, transport = self.connect()
        protocol.allowedTypes = frozenset({T.Ready})
        protocol.dataReceived(envelope(T.Control, control_pb2.Control()))
        self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)

    def test_allowedNowOverridable(self) -> None:
        """
        A subclass may decide with a method instead of a set.
        """

        class OnlyShutdown(Recorder):
            def allowedNow(self, envelopeType: EnvelopeType) -> bool:
                return envelopeType is T.Shutdown

        self.factory.protocol = OnlyShutdown
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Shutdown, control_pb2.Shutdown()))
        self.assertEqual([name for name, _ in protocol.received], ["Shutdown"])
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        self.assertError(transport, ErrorCode.NOT_ALLOWED_NOW)

    def test_undecodablePayload(self) -> None:
        """
        A protobuf payload that does not parse is answered with C{Error{5}}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Ready, b"\xff\xff\xff"))
        self.assertError(transport, ErrorCode.UNDECODABLE_PAYLOAD)
        self.assertEqual(protocol.received, [])

    def test_rawEncodingForProtobufType(self) -> None:
        """
        A protobuf type sent with the raw encoding is C{Error{5}}: the payload
        does not decode as the type requires. C{Error{2}} is only for the
        reserved encodings.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready(), Encoding.RAW))
        self.assertError(transport, ErrorCode.UNDECODABLE_PAYLOAD)

    def test_protobufEncodingForGameData(self) -> None:
        """
        C{GameData} must be raw; with the protobuf encoding it is C{Error{5}}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.GameData, b"x", Encoding.PROTOBUF))
        self.assertError(transport, ErrorCode.UNDECODABLE_PAYLOAD)
        self.assertEqual(protocol.received, [])

    def test_badToken(self) -> None:
        """
        A subclass that checks a token with L{tokensMatch} answers a wrong one
        with C{Error{6}} through L{EnvelopeProtocol.sendError}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Type, control_pb2.Type(token=b"x" * 32)))
        self.assertError(transport, ErrorCode.BAD_TOKEN)
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Type, control_pb2.Type(token=TOKEN)))
        self.assertEqual([name for name, _ in protocol.received], ["Type"])

    def test_timeout(self) -> None:
        """
        No envelope within C{firstMessageTimeout} is C{Error{7}}.
        """
        protocol, transport = self.connect()
        self.clock.advance(protocol.firstMessageTimeout - 0.1)  # type: ignore[operator]
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.1)
        self.assertError(transport, ErrorCode.TIMEOUT)

    def test_errorIsLogged(self) -> None:
        """
        Each C{Error} sent is logged at C{warn} with its code.
        """
        protocol, _ = self.connect()
        with capturedLogs() as events:
            protocol.dataReceived(envelope(40))
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["code"], ErrorCode.UNKNOWN_TYPE)

    def test_envelopesAfterErrorIgnored(self) -> None:
        """
        Envelopes that arrive after an C{Error} was sent, in the same read or
        a later one, are not handled, and no second C{Error} is sent.
        """
        protocol, transport = self.connect()
        ready = envelope(T.Ready, control_pb2.Ready())
        protocol.dataReceived(envelope(40) + ready)
        protocol.dataReceived(ready + envelope(41))
        self.assertError(transport, ErrorCode.UNKNOWN_TYPE)
        self.assertEqual(protocol.received, [])

    def test_envelopesBeforeFaultHandled(self) -> None:
        """
        The envelopes before a bad header in the same read are handled, then
        the C{Error} is sent: as if the bytes had come one at a time.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            envelope(T.Ready, control_pb2.Ready(name="a")) + b"\x09\x00\x00\x00"
        )
        self.assertEqual([name for name, _ in protocol.received], ["Ready"])
        self.assertError(transport, ErrorCode.UNSUPPORTED_VERSION)

    def test_receivedError(self) -> None:
        """
        An C{Error} from the peer is logged and the connection closed, without
        an C{Error} in answer. It is allowed in every state.
        """
        protocol, transport = self.connect()
        protocol.allowedTypes = frozenset()
        with capturedLogs() as events:
            protocol.dataReceived(
                envelope(T.Error, control_pb2.Error(code=6, message="bad token"))
            )
        self.assertEqual(sent(transport), [])
        self.assertTrue(transport.disconnecting)
        self.assertEqual([e.get("code") for e in events], [6])

    def test_handlerRaises(self) -> None:
        """
        An exception from a handler is logged with its traceback and closes
        the connection; it does not reach the reactor.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            envelope(T.Status, control_pb2.Status(players=666))
            + envelope(T.Ready, control_pb2.Ready())
        )
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.received, [])


class DispatchTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Dispatch to C{envelope_<Name>}, sending, and the transport's settings.
    """

    def test_dispatch(self) -> None:
        """
        Each envelope reaches its handler, in order, parsed, however the bytes
        are split; C{GameData} arrives as raw bytes.
        """
        protocol, transport = self.connect()
        data = (
            envelope(T.Ready, control_pb2.Ready(server_id="s", capacity=3))
            + envelope(T.GameData, b"\x00raw")
            + envelope(T.Status, control_pb2.Status(players=2))
        )
        for i in range(len(data)):
            protocol.dataReceived(data[i : i + 1])
        self.assertEqual(
            protocol.received,
            [
                ("Ready", control_pb2.Ready(server_id="s", capacity=3)),
                ("GameData", b"\x00raw"),
                ("Status", control_pb2.Status(players=2)),
            ],
        )
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)

    def test_noDelay(self) -> None:
        """
        Nagle is disabled on the transport.
        """
        _, transport = self.connect()
        self.assertTrue(transport.noDelay)

    def test_transportWithoutNoDelay(self) -> None:
        """
        A transport without C{setTcpNoDelay} (not TCP) is fine.
        """
        protocol = self.factory.buildProtocol(None)
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertIs(transport.producer, protocol)

    def test_sendEnvelope(self) -> None:
        """
        L{EnvelopeProtocol.sendEnvelope} serializes a message, or sends bytes
        as they are, with the type's encoding.
        """
        protocol, transport = self.connect()
        protocol.sendEnvelope(T.Ready, control_pb2.Ready(name="n"))
        protocol.sendEnvelope(T.GameData, b"abc")
        self.assertEqual(
            transport.value(),
            envelope(T.Ready, control_pb2.Ready(name="n")) + b"\x01\x39\x00\x03abc",
        )

    def test_sendGameData(self) -> None:
        """
        L{EnvelopeProtocol.sendGameData} writes the header and the payload in
        one write.
        """
        protocol, transport = self.connect()
        protocol.sendGameData(b"\x00hello")
        self.assertEqual(transport.value(), b"\x01\x39\x00\x06\x00hello")
        self.assertEqual(transport.writes, 1)
        self.assertEqual(gameDataEnvelope(b""), b"\x01\x39\x00\x00")

    def test_sendGameDataTooLong(self) -> None:
        """
        A payload longer than 65535 bytes is refused with L{ValueError}.
        """
        protocol, _ = self.connect()
        protocol.sendGameData(b"x" * 65535)
        self.assertRaises(ValueError, protocol.sendGameData, b"x" * 65536)

    def test_nothingSentWhenClosing(self) -> None:
        """
        Once the connection is closing, sends do nothing.
        """
        protocol, transport = self.connect()
        protocol.loseConnection()
        protocol.sendGameData(b"x")
        protocol.sendEnvelope(T.Ready, control_pb2.Ready())
        protocol.sendError(ErrorCode.TIMEOUT, "late")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(protocol.closing)

    def test_tokensMatch(self) -> None:
        """
        L{tokensMatch} is equality, except that an empty expected token
        matches nothing.
        """
        self.assertTrue(tokensMatch(TOKEN, bytes(range(32))))
        self.assertFalse(tokensMatch(TOKEN[:-1] + b"\xff", TOKEN))
        self.assertFalse(tokensMatch(TOKEN[:-1], TOKEN))
        self.assertFalse(tokensMatch(b"", b""))


class TimerTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    The first-message timeout and the heartbeats.
    """

    def test_envelopeClearsTimeout(self) -> None:
        """
        The first envelope clears the timeout.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        self.clock.advance(100)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_partialEnvelopeTimesOut(self) -> None:
        """
        Bytes that do not complete an envelope do not count.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready(name="x"))[:-1])
        self.clock.advance(10)
        self.assertError(transport, ErrorCode.TIMEOUT)

    def test_noTimeout(self) -> None:
        """
        With C{firstMessageTimeout} set to L{None} nothing is scheduled.
        """

        class Patient(Recorder):
            firstMessageTimeout = None

        self.factory.protocol = Patient
        self.connect()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_setEnvelopeTimeout(self) -> None:
        """
        L{EnvelopeProtocol.setEnvelopeTimeout} arms the timeout again, for an
        answer the protocol waits for.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        protocol.setEnvelopeTimeout(3)
        self.clock.advance(2.9)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.1)
        message = self.assertError(transport, ErrorCode.TIMEOUT)
        self.assertIn("3 s", message.message)

    def test_timeoutClearedInSameRead(self) -> None:
        """
        A timeout that a handler sets is cleared by the next envelope even
        when both came in one read.
        """

        class Waiting(Recorder):
            def envelope_Ready(self, message: control_pb2.Ready) -> None:
                super().envelope_Ready(message)
                self.setEnvelopeTimeout(3)

        self.factory.protocol = Waiting
        protocol, _ = self.connect()
        protocol.dataReceived(
            envelope(T.Ready, control_pb2.Ready())
            + envelope(T.Status, control_pb2.Status())
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(protocol.received), 2)

    def test_heartbeatAnswered(self) -> None:
        """
        A C{Heartbeat} is answered with the same nonce, with or without our own
        heartbeats running.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Heartbeat, control_pb2.Heartbeat(nonce=42)))
        self.assertEqual(
            sent(transport), [(T.Heartbeat, control_pb2.Heartbeat(nonce=42))]
        )

    def test_noHeartbeatsByDefault(self) -> None:
        """
        Heartbeats are off unless switched on.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        self.clock.advance(60)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)

    def heartbeating(self) -> tuple[Recorder, NoDelayTransport]:
        """
        A connection with heartbeats switched on by the class attribute.
        """

        class Beating(Recorder):
            heartbeats = True

        self.factory.protocol = Beating
        return self.connect()

    def test_heartbeatsSent(self) -> None:
        """
        With heartbeats on, a C{Heartbeat} goes out every C{heartbeatInterval}
        seconds, each with a new nonce; its answer is not answered again.
        """
        protocol, transport = self.heartbeating()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        self.clock.advance(protocol.heartbeatInterval)
        [(kind, first)] = sent(transport)
        self.assertEqual(kind, T.Heartbeat)
        protocol.dataReceived(envelope(T.Heartbeat, first))
        self.assertEqual(sent(transport), [])
        self.clock.advance(protocol.heartbeatInterval)
        [(kind, second)] = sent(transport)
        self.assertEqual(kind, T.Heartbeat)
        self.assertNotEqual(first.nonce, second.nonce)

    def test_repeatedNonceAnswered(self) -> None:
        """
        Every Heartbeat of the peer is answered with its nonce, even one that
        repeats a nonce (a peer that always sends 0): the contract answers
        each.
        """
        protocol, transport = self.connect()
        beat = envelope(T.Heartbeat, control_pb2.Heartbeat(nonce=0))
        protocol.dataReceived(beat)
        protocol.dataReceived(beat)
        self.assertEqual(len(sent(transport)), 2)

    def test_deadAfterSilence(self) -> None:
        """
        A connection with heartbeats from which nothing at all arrives for
        C{deadAfter} seconds is closed with C{Error{7}}.
        """
        protocol, transport = self.heartbeating()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        self.clock.advance(protocol.deadAfter - 0.5)
        sent(transport)  # heartbeats
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.5)
        [(kind, message)] = sent(transport)
        self.assertEqual((kind, message.code), (T.Error, ErrorCode.TIMEOUT))
        self.assertTrue(transport.disconnecting)
        # What is left is the throttled log's summary, the factory's to stop.
        self.factory.stopFactory()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_anythingKeepsAlive(self) -> None:
        """
        Any bytes received count: the connection dies C{deadAfter} seconds
        after the last of them, not after the start.
        """
        protocol, transport = self.heartbeating()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        self.clock.advance(10)
        protocol.dataReceived(envelope(T.GameData, b"x")[:2])
        self.clock.advance(protocol.deadAfter - 0.5)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.5)
        self.assertTrue(transport.disconnecting)

    def test_startAndStopHeartbeats(self) -> None:
        """
        Heartbeats can be switched on and off at run time.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(envelope(T.Ready, control_pb2.Ready()))
        protocol.startHeartbeats()
        protocol.startHeartbeats()
        self.clock.advance(protocol.heartbeatInterval)
        self.assertEqual(len(sent(transport)), 1)
        protocol.stopHeartbeats()
        self.clock.advance(100)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timersCancelledOnConnectionLost(self) -> None:
        """
        Every timer is cancelled when the connection is lost.
        """
        protocol, _ = self.heartbeating()
        self.assertEqual(len(self.clock.getDelayedCalls()), 3)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timersCancelledOnClose(self) -> None:
        """
        Every timer is cancelled when this end closes.
        """
        protocol, _ = self.heartbeating()
        protocol.loseConnection()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FlowControlTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    The protocol is the transport's streaming producer, to see a slow peer.
    """

    def test_registered(self) -> None:
        """
        The protocol registers as a streaming producer, and unregisters when
        it closes (else the transport would never finish closing).
        """
        protocol, transport = self.connect()
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)
        protocol.loseConnection()
        self.assertIsNone(transport.producer)
        self.assertTrue(transport.disconnecting)

    def test_pauseAndResume(self) -> None:
        """
        C{writePaused} follows the transport's pause and resume.
        """
        protocol, _ = self.connect()
        self.assertFalse(protocol.writePaused)
        protocol.pauseProducing()
        self.assertTrue(protocol.writePaused)
        protocol.resumeProducing()
        self.assertFalse(protocol.writePaused)

    def test_overflowAborts(self) -> None:
        """
        Writing more than C{writeBufferLimit} bytes while paused aborts the
        connection; what was written before the pause does not count.
        """
        protocol, transport = self.connect()
        protocol.writeBufferLimit = 10
        protocol.sendGameData(b"x" * 100)
        protocol.pauseProducing()
        protocol.sendGameData(b"x" * 6)
        self.assertFalse(transport.disconnecting)
        with capturedLogs() as events:
            protocol.sendGameData(b"")
        self.assertTrue(transport.disconnected)  # aborted
        self.assertTrue(protocol.closing)
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])

    def test_resumeForgetsCount(self) -> None:
        """
        A resume starts the count over.
        """
        protocol, transport = self.connect()
        protocol.writeBufferLimit = 10
        protocol.pauseProducing()
        protocol.sendGameData(b"x" * 5)
        protocol.resumeProducing()
        protocol.pauseProducing()
        protocol.sendGameData(b"x" * 5)
        self.assertFalse(transport.disconnecting)

    def test_noLimit(self) -> None:
        """
        With C{writeBufferLimit} set to L{None} nothing is aborted.
        """
        protocol, transport = self.connect()
        protocol.writeBufferLimit = None
        protocol.pauseProducing()
        protocol.sendGameData(b"x" * 65535)
        self.assertFalse(transport.disconnecting)

    def test_repeatedPauseKeepsCount(self) -> None:
        """
        On a transport whose queue cannot be measured, a Twisted transport's
        C{pauseProducing} on every write while its buffer is full does not
        start the count over: the bytes written since the first pause reach
        the limit.
        """
        protocol, transport = self.connect()
        protocol.writeBufferLimit = 10
        for _ in range(2):
            protocol.pauseProducing()
            protocol.sendGameData(b"x" * 2)  # 6 bytes with the header
            protocol.pauseProducing()
        self.assertTrue(transport.disconnected)  # aborted
        self.assertTrue(protocol.closing)

    def connectQueued(self, limit: int) -> tuple[Recorder, QueueTransport]:
        """
        A protocol on a L{QueueTransport}, with C{writeBufferLimit} C{limit}.
        """
        protocol = self.factory.buildProtocol(None)  # type: ignore[attr-defined]
        assert isinstance(protocol, Recorder)
        protocol.writeBufferLimit = limit
        transport = QueueTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_transportPausesOnEveryWrite(self) -> None:
        """
        Twisted's own write buffer calls C{pauseProducing} on every write
        while more than its C{bufferSize} is queued; the limit still holds:
        the connection is aborted once the queue passes it.
        """
        pauses: list[int] = []
        protocol, transport = self.connectQueued(1000)
        original = protocol.pauseProducing

        def pauseProducing() -> None:
            pauses.append(1)
            original()

        protocol.pauseProducing = pauseProducing  # type: ignore[method-assign]
        with capturedLogs() as events:
            for _ in range(30):
                protocol.sendGameData(b"x" * 46)  # 50 bytes with the header
                if transport.aborted:
                    break
        self.assertGreater(len(pauses), 5)
        self.assertTrue(transport.aborted)
        self.assertTrue(protocol.closing)
        # 21 envelopes: the first that leaves more than 1000 bytes queued.
        self.assertEqual(len(transport.dataBuffer) + transport._tempDataLen, 1050)
        [warning] = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertIn("reads too slowly", formatEvent(warning))

    def test_limitOnQueuedBytes(self) -> None:
        """
        The limit is on the bytes the transport really holds: what the peer
        read meanwhile does not count, however much was written since the
        pause.
        """
        protocol, transport = self.connectQueued(1000)
        for _ in range(18):
            protocol.sendGameData(b"x" * 46)
        self.assertTrue(protocol.writePaused)
        transport.drain(800)  # 100 left: still paused, not drained
        self.assertTrue(protocol.writePaused)
        for _ in range(18):
            protocol.sendGameData(b"x" * 46)
        self.assertFalse(transport.aborted)  # 1000 queued, 1800 since pause
        protocol.sendGameData(b"")
        self.assertTrue(transport.aborted)

    def test_drainedResumes(self) -> None:
        """
        When the transport's buffer drains it resumes the protocol, and the
        pause is over.
        """
        protocol, transport = self.connectQueued(1000)
        for _ in range(3):
            protocol.sendGameData(b"x" * 46)
        self.assertTrue(protocol.writePaused)
        transport.drain(150)
        self.assertFalse(protocol.writePaused)
        self.assertEqual(len(transport.sent), 150)


class ThrottledLogTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    The warnings that peers cause go through the factory's L{ThrottledLog}:
    from many connections, the first line of each cause, then a count.
    """

    def test_manyTimeouts(self) -> None:
        """
        A hundred connections that send nothing each get C{Error{7}}, but the
        log has one line with the first peer, then after the interval (10 s
        by default) one summary line with the count of the others.
        """
        with capturedLogs() as events:
            connections = [self.connect() for _ in range(100)]
            self.clock.advance(10.0)
        for _, transport in connections:
            self.assertError(transport, ErrorCode.TIMEOUT)
        [first] = events
        self.assertEqual(first["cause"], "Error TIMEOUT sent")
        self.assertEqual(first["code"], ErrorCode.TIMEOUT)
        self.assertIn("sending Error 7 (TIMEOUT)", formatEvent(first))
        with capturedLogs() as events:
            self.clock.advance(10.0)
        [summary] = events
        self.assertEqual(summary["log_level"], LogLevel.warn)
        self.assertEqual(summary["count"], 99)
        self.assertEqual(
            formatEvent(summary), "99 more: Error TIMEOUT sent in the last 10 s"
        )

    def test_causeHasNoAddress(self) -> None:
        """
        The cause of a throttled line names only the kind of event; the
        peer's address is a field of the first line.
        """
        protocol, _ = self.connect()
        protocol.transport = QueueTransport()
        with capturedLogs() as events:
            protocol.dataReceived(envelope(40))
        [event] = events
        self.assertEqual(event["cause"], "Error UNKNOWN_TYPE sent")
        self.assertEqual(event["peer"], "192.0.2.7:4321")
        self.assertNotIn("192.0.2.7", event["cause"])

    def test_causesCountedApart(self) -> None:
        """
        Each cause has its own first line: a bad token, an unknown type and an
        C{Error} received are three lines, the second of each is counted.
        """
        with capturedLogs() as events:
            for _ in range(2):
                protocol, _ = self.connect()
                protocol.dataReceived(
                    envelope(T.Type, control_pb2.Type(kind=2, token=b"wrong token"))
                )
                protocol, _ = self.connect()
                protocol.dataReceived(envelope(40))
                protocol, _ = self.connect()
                protocol.dataReceived(
                    envelope(T.Error, control_pb2.Error(code=6, message="no"))
                )
        self.assertEqual(
            [e["cause"] for e in events],
            [
                "Error BAD_TOKEN sent",
                "Error UNKNOWN_TYPE sent",
                "Error BAD_TOKEN received",
            ],
        )
        with capturedLogs() as events:
            self.clock.advance(10.0)
        self.assertEqual(sorted(e["count"] for e in events), [1, 1, 1])

    def test_unknownCodeReceived(self) -> None:
        """
        An C{Error} with a code the contract does not have is one cause, so a
        peer cannot make a cause per number; its control characters are
        escaped in the line.
        """
        with capturedLogs() as events:
            for code in (1000, 1001):
                protocol, _ = self.connect()
                protocol.dataReceived(
                    envelope(T.Error, control_pb2.Error(code=code, message="a\x1b[2Jb"))
                )
        [event] = events
        self.assertEqual(event["cause"], "Error unknown code received")
        self.assertNotIn("\x1b", formatEvent(event))

    def test_interval(self) -> None:
        """
        The factory's C{logInterval} sets the summary interval.
        """
        self.factory = RecorderFactory(clock=self.clock, logInterval=2.5)
        self.factory.protocol = self.protocolClass
        self.assertEqual(self.factory.throttle.interval, 2.5)
        with capturedLogs() as events:
            for _ in range(3):
                protocol, _ = self.connect()
                protocol.dataReceived(envelope(40))
            self.clock.advance(2.5)
        self.assertEqual([e.get("count") for e in events], [None, 2])

    def test_stopFactory(self) -> None:
        """
        Stopping the factory cancels the summary timer (which runs once a
        second line of a cause is counted).
        """
        for _ in range(2):
            protocol, _ = self.connect()
            protocol.dataReceived(envelope(40))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.factory.doStart()
        self.factory.doStop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sharedThrottle(self) -> None:
        """
        Factories given one throttle count together, and stopping one of
        them leaves the shared throttle alone.
        """
        first = RecorderFactory(clock=self.clock)
        second = RecorderFactory(clock=self.clock, throttle=first.throttle)
        self.assertIs(second.throttle, first.throttle)
        with capturedLogs() as events:
            for factory in (first, second):
                factory.protocol = self.protocolClass
                protocol = factory.buildProtocol(None)
                protocol.makeConnection(StringTransport())
                protocol.dataReceived(envelope(40))
        self.assertEqual(len(events), 1)
        second.doStart()
        second.doStop()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)


class ArbitraryBytesTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Whatever arrives, the protocol keeps going or sends C{Error} and closes;
    it never raises.
    """

    @settings(max_examples=300, deadline=None)
    @given(
        stream=st.one_of(
            st.binary(max_size=400),
            # Mostly valid headers, so that dispatch is reached.
            st.lists(
                st.tuples(
                    st.sampled_from([*range(0, 16), 40, 63]),
                    st.integers(0, 1),
                    st.binary(max_size=40),
                ),
                max_size=6,
            ).map(
                lambda items: b"".join(
                    HEADER.pack(1, t << 2 | en, len(p)) + p for t, en, p in items
                )
            ),
        ),
        data=st.data(),
        allowed=st.one_of(st.none(), st.frozensets(st.sampled_from(list(T)))),
    )
    def test_neverRaises(
        self, stream: bytes, data: st.DataObject, allowed: frozenset[T] | None
    ) -> None:
        """
        Random bytes in random chunks: no exception; whatever was sent is
        heartbeat answers, then at most one C{Error}, and the connection is
        closing if and only if it closed itself (an C{Error} sent or received,
        or a handler failure).
        """
        protocol, transport = self.connect()
        protocol.allowedTypes = allowed
        offset = 0
        while offset < len(stream):
            size = data.draw(st.integers(1, len(stream) - offset))
            protocol.dataReceived(stream[offset : offset + size])
            offset += size
        self.flushLoggedErrors(ValueError)
        envelopes = sent(transport)
        kinds = [kind for kind, _ in envelopes]
        self.assertLessEqual(kinds.count(T.Error), 1)
        self.assertTrue(set(kinds) <= {T.Heartbeat, T.Error})
        if T.Error in kinds:
            self.assertEqual(kinds[-1], T.Error)
            self.assertTrue(transport.disconnecting)
        if not transport.disconnecting:
            self.assertFalse(protocol.closing)
        else:
            self.assertTrue(protocol.closing)
