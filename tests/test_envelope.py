# -*- test-case-name: tests.test_envelope -*-
"""
Tests for L{aphelion.envelope}, the sans-IO envelope codec of Part 2.1.
"""

from __future__ import annotations

from itertools import pairwise
from operator import setitem

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import Encoding, EnvelopeType, ErrorCode
from aphelion.envelope import (
    ENCODINGS,
    HEADER,
    MAX_PAYLOAD,
    MAX_TYPE,
    PAYLOAD_TYPES,
    VERSION,
    Envelope,
    EnvelopeDecoder,
    EnvelopeError,
    decodePayload,
    encodeEnvelope,
    gameDataEnvelope,
    wholeGameData,
)
from aphelion.proto import control_pb2, game_pb2

envelopes = st.builds(
    Envelope,
    type=st.integers(0, MAX_TYPE),
    encoding=st.sampled_from([Encoding.PROTOBUF, Encoding.RAW]),
    payload=st.binary(max_size=300),
)

moderate = settings(max_examples=200, deadline=None)


def encodeAll(items: list[Envelope]) -> bytes:
    """
    Concatenate the encodings of C{items}.
    """
    return b"".join(encodeEnvelope(e.type, e.payload, e.encoding) for e in items)


def splitAt(data: bytes, points: list[int]) -> list[bytes]:
    """
    Cut C{data} at each of C{points} (in any order, repeats allowed).
    """
    bounds = [0, *sorted(points), len(data)]
    return [data[start:stop] for start, stop in pairwise(bounds)]


def feedAll(
    chunks: list[bytes],
) -> tuple[list[Envelope], EnvelopeError | None]:
    """
    Feed C{chunks} to a new decoder, stopping at the first error.

    :return: every envelope decoded (including those an error carries as
        preceding) and the error, if any.
    """
    decoder = EnvelopeDecoder()
    decoded: list[Envelope] = []
    for chunk in chunks:
        try:
            decoded.extend(decoder.feed(chunk))
        except EnvelopeError as e:
            decoded.extend(e.preceding)
            return decoded, e
    return decoded, None


class EncodeEnvelopeTests(SynchronousTestCase):
    """
    Tests for L{encodeEnvelope}.
    """

    def test_workedExample(self) -> None:
        """
        The contract's worked example holds: version 1, C{en} 0, type 10 and a
        3-byte payload start with C{01 28 00 03}.
        """
        self.assertEqual(
            encodeEnvelope(EnvelopeType.ClientAuth, b"abc", Encoding.PROTOBUF),
            b"\x01\x28\x00\x03abc",
        )

    def test_defaultEncodingIsProtobuf(self) -> None:
        """
        Without an encoding argument the envelope says protobuf (C{en} 0).
        """
        self.assertEqual(encodeEnvelope(10, b"abc"), b"\x01\x28\x00\x03abc")

    def test_rawEncoding(self) -> None:
        """
        The raw encoding sets the low bits of byte 1 to 1, below the type.
        """
        self.assertEqual(
            encodeEnvelope(EnvelopeType.GameData, b"x", Encoding.RAW),
            bytes([1, 14 << 2 | 1, 0, 1]) + b"x",
        )

    def test_headerLayout(self) -> None:
        """
        L{HEADER} is 4 bytes, big endian: version, type and encoding, length.
        """
        self.assertEqual(HEADER.size, 4)
        self.assertEqual(HEADER.pack(1, 0xFF, 0x1234), b"\x01\xff\x12\x34")
        self.assertEqual(VERSION, 1)
        self.assertEqual(MAX_PAYLOAD, 65535)

    def test_emptyPayload(self) -> None:
        """
        A payload of 0 bytes gives a bare header with length 0.
        """
        self.assertEqual(encodeEnvelope(63, b""), b"\x01\xfc\x00\x00")

    def test_largestPayload(self) -> None:
        """
        A payload of exactly 65535 bytes is allowed and has length C{ff ff}.
        """
        payload = b"\xaa" * MAX_PAYLOAD
        encoded = encodeEnvelope(EnvelopeType.GameData, payload, Encoding.RAW)
        self.assertEqual(encoded[:4], b"\x01\x39\xff\xff")
        self.assertEqual(encoded[4:], payload)

    def test_payloadTooLarge(self) -> None:
        """
        A payload of 65536 bytes raises L{ValueError}.
        """
        self.assertRaises(ValueError, encodeEnvelope, 14, b"\x00" * (MAX_PAYLOAD + 1))

    def test_typeOutOfRange(self) -> None:
        """
        A type below 0 or above 63 raises L{ValueError}; 0 and 63 are allowed.
        """
        self.assertRaises(ValueError, encodeEnvelope, -1, b"")
        self.assertRaises(ValueError, encodeEnvelope, 64, b"")
        self.assertEqual(encodeEnvelope(0, b"")[1], 0)
        self.assertEqual(encodeEnvelope(MAX_TYPE, b"")[1], 0xFC)

    def test_encodingOutOfRange(self) -> None:
        """
        Encodings other than 0 and 1 raise L{ValueError}: 2 and 3 are reserved
        and the rest do not fit the two bits.
        """
        for encoding in (-1, 2, 3, 4):
            self.assertRaises(ValueError, encodeEnvelope, 1, b"", encoding)


class EnvelopeDecoderTests(SynchronousTestCase):
    """
    Tests for L{EnvelopeDecoder}.
    """

    def test_workedExample(self) -> None:
        """
        The contract's worked example decodes to type 10, encoding 0 and its
        payload.
        """
        self.assertEqual(
            EnvelopeDecoder().feed(b"\x01\x28\x00\x03abc"),
            [Envelope(10, 0, b"abc")],
        )

    def test_nothing(self) -> None:
        """
        Feeding no bytes returns no envelopes.
        """
        self.assertEqual(EnvelopeDecoder().feed(b""), [])

    def test_several(self) -> None:
        """
        Several envelopes in one call come back in order.
        """
        data = encodeEnvelope(3, b"one") + encodeEnvelope(14, b"", 1)
        data += encodeEnvelope(63, b"three")
        self.assertEqual(
            EnvelopeDecoder().feed(data),
            [Envelope(3, 0, b"one"), Envelope(14, 1, b""), Envelope(63, 0, b"three")],
        )

    def test_incompleteTailKept(self) -> None:
        """
        An incomplete envelope is kept until the rest of it arrives.
        """
        decoder = EnvelopeDecoder()
        data = encodeEnvelope(4, b"status")
        self.assertEqual(decoder.feed(data[:2]), [])
        self.assertEqual(decoder.feed(data[2:5]), [])
        self.assertEqual(decoder.feed(data[5:-1]), [])
        self.assertEqual(decoder.feed(data[-1:]), [Envelope(4, 0, b"status")])
        self.assertEqual(decoder.feed(b""), [])

    def test_emptyPayload(self) -> None:
        """
        An envelope with a payload of 0 bytes decodes from its header alone.
        """
        self.assertEqual(
            EnvelopeDecoder().feed(b"\x01\x18\x00\x00"), [Envelope(6, 0, b"")]
        )

    def test_largestPayload(self) -> None:
        """
        A payload of exactly 65535 bytes decodes, whole or a byte at a time.
        """
        payload = bytes(range(256)) * 255 + b"\x00" * 255
        self.assertEqual(len(payload), MAX_PAYLOAD)
        data = encodeEnvelope(14, payload, 1) + encodeEnvelope(6, b"")
        expected = [Envelope(14, 1, payload), Envelope(6, 0, b"")]
        self.assertEqual(EnvelopeDecoder().feed(data), expected)
        decoder = EnvelopeDecoder()
        decoded: list[Envelope] = []
        for i in range(len(data)):
            decoded.extend(decoder.feed(data[i : i + 1]))
        self.assertEqual(decoded, expected)

    def test_unknownTypeYielded(self) -> None:
        """
        Types that table 2.2 does not list are yielded; answering them is the
        protocol's business.
        """
        self.assertEqual(
            EnvelopeDecoder().feed(encodeEnvelope(0, b"a") + encodeEnvelope(42, b"")),
            [Envelope(0, 0, b"a"), Envelope(42, 0, b"")],
        )

    def test_payloadIsBytes(self) -> None:
        """
        Payloads are C{bytes} even when the input was a C{bytearray} or
        arrived in pieces.
        """
        data = encodeEnvelope(3, b"abc")
        [whole] = EnvelopeDecoder().feed(bytearray(data))
        self.assertIs(type(whole.payload), bytes)
        decoder = EnvelopeDecoder()
        decoder.feed(data[:5])
        [pieced] = decoder.feed(data[5:])
        self.assertIs(type(pieced.payload), bytes)

    def test_envelopeIsFrozen(self) -> None:
        """
        An L{Envelope} cannot be changed after it is made.
        """
        envelope = Envelope(1, 0, b"")
        self.assertRaises(AttributeError, setattr, envelope, "type", 2)

    def test_unsupportedVersion(self) -> None:
        """
        A version other than 1 raises L{EnvelopeError} with code 1.
        """
        for version in (0, 2, 255):
            error = self.assertRaises(
                EnvelopeError,
                EnvelopeDecoder().feed,
                HEADER.pack(version, 3 << 2, 0),
            )
            self.assertEqual(error.code, ErrorCode.UNSUPPORTED_VERSION)
            self.assertEqual(error.code, 1)
            self.assertIn(str(version), error.message)

    def test_reservedEncoding(self) -> None:
        """
        The reserved encodings 2 and 3 raise L{EnvelopeError} with code 2.
        """
        for encoding in (2, 3):
            error = self.assertRaises(
                EnvelopeError,
                EnvelopeDecoder().feed,
                HEADER.pack(1, 3 << 2 | encoding, 0),
            )
            self.assertEqual(error.code, ErrorCode.RESERVED_ENCODING)
            self.assertEqual(error.code, 2)
            self.assertIn(str(encoding), error.message)

    def test_versionCheckedFirst(self) -> None:
        """
        A header with both a bad version and a reserved encoding reports the
        version.
        """
        error = self.assertRaises(
            EnvelopeError, EnvelopeDecoder().feed, HEADER.pack(2, 3, 0)
        )
        self.assertEqual(error.code, ErrorCode.UNSUPPORTED_VERSION)

    def test_badVersionDetectedEarly(self) -> None:
        """
        A bad version byte raises as soon as it arrives, before the rest of
        its header.
        """
        error = self.assertRaises(EnvelopeError, EnvelopeDecoder().feed, b"\x02")
        self.assertEqual(error.code, ErrorCode.UNSUPPORTED_VERSION)

    def test_reservedEncodingDetectedEarly(self) -> None:
        """
        A reserved encoding raises as soon as byte 1 arrives, before the
        length.
        """
        decoder = EnvelopeDecoder()
        self.assertEqual(decoder.feed(b"\x01"), [])
        error = self.assertRaises(EnvelopeError, decoder.feed, b"\x03")
        self.assertEqual(error.code, ErrorCode.RESERVED_ENCODING)

    def test_precedingEnvelopes(self) -> None:
        """
        The envelopes of the failing call that come before the bad header are
        on the error's C{preceding}; those of earlier calls were returned.
        """
        decoder = EnvelopeDecoder()
        self.assertEqual(decoder.feed(encodeEnvelope(3, b"r")), [Envelope(3, 0, b"r")])
        data = encodeEnvelope(4, b"s") + encodeEnvelope(6, b"h")
        error = self.assertRaises(EnvelopeError, decoder.feed, data + b"\x07")
        self.assertEqual(error.preceding, [Envelope(4, 0, b"s"), Envelope(6, 0, b"h")])

    def test_noPrecedingEnvelopes(self) -> None:
        """
        An error on the first header of a call has no preceding envelopes.
        """
        error = self.assertRaises(
            EnvelopeError, EnvelopeDecoder().feed, b"\x00\x00\x00\x00"
        )
        self.assertEqual(error.preceding, [])

    def test_staysFailed(self) -> None:
        """
        After an error every feed, even of valid or no data, raises an error
        with the same code and message and no preceding envelopes.
        """
        decoder = EnvelopeDecoder()
        first = self.assertRaises(
            EnvelopeError, decoder.feed, encodeEnvelope(3, b"") + b"\x01\x02"
        )
        for data in (b"", encodeEnvelope(3, b"")):
            again = self.assertRaises(EnvelopeError, decoder.feed, data)
            self.assertEqual(
                (again.code, again.message, again.preceding),
                (first.code, first.message, []),
            )

    def test_errorString(self) -> None:
        """
        An L{EnvelopeError} reads as its code's name and number and message.
        """
        error = EnvelopeError(ErrorCode.UNKNOWN_TYPE, "type 9")
        self.assertEqual(str(error), "UNKNOWN_TYPE (3): type 9")
        self.assertEqual(error.preceding, [])

    @moderate
    @given(items=st.lists(envelopes, max_size=8), data=st.data())
    def test_roundTripAnySplit(
        self, items: list[Envelope], data: st.DataObject
    ) -> None:
        """
        Any list of envelopes, encoded and concatenated, decodes back to the
        same list however the byte stream is cut into feeds.
        """
        stream = encodeAll(items)
        points = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
        decoded, error = feedAll(splitAt(stream, points))
        self.assertIsNone(error)
        self.assertEqual(decoded, items)

    @moderate
    @given(stream=st.binary(max_size=600), data=st.data())
    def test_arbitraryBytes(self, stream: bytes, data: st.DataObject) -> None:
        """
        Arbitrary bytes in arbitrary pieces produce envelopes or an
        L{EnvelopeError} and nothing else, and the outcome does not depend on
        how the bytes are cut.
        """
        points = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
        decoder = EnvelopeDecoder()
        decoded: list[Envelope] = []
        error: EnvelopeError | None = None
        for chunk in splitAt(stream, points):
            try:
                events = decoder.feed(chunk)
            except EnvelopeError as e:
                error = e
                decoded.extend(e.preceding)
                break
            self.assertIsInstance(events, list)
            for event in events:
                self.assertIsInstance(event, Envelope)
            decoded.extend(events)
        whole, wholeError = feedAll([stream])
        self.assertEqual(decoded, whole)
        self.assertEqual(
            None if error is None else (error.code, error.message),
            None if wholeError is None else (wholeError.code, wholeError.message),
        )

    @moderate
    @given(
        items=st.lists(envelopes, max_size=4),
        bad=st.sampled_from(
            [
                (b"\x00", ErrorCode.UNSUPPORTED_VERSION),
                (b"\x02\x28\x00\x00", ErrorCode.UNSUPPORTED_VERSION),
                (b"\x01\x2a", ErrorCode.RESERVED_ENCODING),
                (b"\x01\x2b\x00\x01x", ErrorCode.RESERVED_ENCODING),
            ]
        ),
        data=st.data(),
    )
    def test_errorAfterGoodEnvelopes(
        self,
        items: list[Envelope],
        bad: tuple[bytes, ErrorCode],
        data: st.DataObject,
    ) -> None:
        """
        Good envelopes followed by a bad header give every good envelope, then
        the header's error code, however the stream is cut.
        """
        badBytes, code = bad
        stream = encodeAll(items) + badBytes
        points = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
        decoded, error = feedAll(splitAt(stream, points))
        self.assertEqual(decoded, items)
        assert error is not None
        self.assertEqual(error.code, code)


class WholeGameDataTests(SynchronousTestCase):
    """
    L{wholeGameData}, the relay's shortcut past the decoder, agrees with
    L{EnvelopeDecoder}.
    """

    def test_oneEnvelope(self) -> None:
        """
        One whole C{GameData} envelope gives its payload.
        """
        self.assertEqual(wholeGameData(gameDataEnvelope(b"hello")), b"hello")
        self.assertEqual(wholeGameData(gameDataEnvelope(b"")), b"")

    def test_notOneWholeGameData(self) -> None:
        """
        Part of one, more than one, another type or another version gives
        L{None}.
        """
        whole = gameDataEnvelope(b"hello")
        self.assertIsNone(wholeGameData(whole[:-1]))
        self.assertIsNone(wholeGameData(whole[:3]))
        self.assertIsNone(wholeGameData(whole + whole))
        self.assertIsNone(wholeGameData(b"\x02" + whole[1:]))
        self.assertIsNone(
            wholeGameData(encodeEnvelope(EnvelopeType.GameConfig, b"hello"))
        )

    @given(data=st.binary(max_size=80))
    def test_agreesWithDecoder(self, data: bytes) -> None:
        """
        Whenever it gives a payload, a fresh decoder decodes the same bytes
        as exactly that one C{GameData} envelope.
        """
        payload = wholeGameData(data)
        if payload is None:
            return
        self.assertEqual(
            EnvelopeDecoder().feed(data),
            [Envelope(EnvelopeType.GameData, Encoding.RAW, payload)],
        )

    @given(payload=st.binary(max_size=300))
    def test_roundTrip(self, payload: bytes) -> None:
        """
        Every C{GameData} envelope that L{gameDataEnvelope} builds is seen.
        """
        self.assertEqual(wholeGameData(gameDataEnvelope(payload)), payload)

    def test_idle(self) -> None:
        """
        L{EnvelopeDecoder.idle} is false while part of an envelope is
        buffered, and once the decoder has failed.
        """
        decoder = EnvelopeDecoder()
        self.assertTrue(decoder.idle)
        decoder.feed(gameDataEnvelope(b"hello")[:3])
        self.assertFalse(decoder.idle)
        decoder.feed(gameDataEnvelope(b"hello")[3:])
        self.assertTrue(decoder.idle)
        self.assertRaises(EnvelopeError, decoder.feed, b"\x09\x00\x00\x00")
        self.assertFalse(decoder.idle)


class PayloadTypesTests(SynchronousTestCase):
    """
    Tests for L{PAYLOAD_TYPES} and L{ENCODINGS}.
    """

    def test_everyType(self) -> None:
        """
        Every type of table 2.2 has an entry in both tables.
        """
        self.assertEqual(set(PAYLOAD_TYPES), set(EnvelopeType))
        self.assertEqual(set(ENCODINGS), set(EnvelopeType))

    def test_messageClasses(self) -> None:
        """
        C{Connected} and C{GameConfig} carry the game protocol's messages,
        C{GameData} carries raw bytes, and every other type carries the
        control message of its own name.
        """
        self.assertIs(PAYLOAD_TYPES[EnvelopeType.Connected], game_pb2.GameDetails)
        self.assertIs(PAYLOAD_TYPES[EnvelopeType.GameConfig], game_pb2.GameConfig)
        self.assertIsNone(PAYLOAD_TYPES[EnvelopeType.GameData])
        special = {
            EnvelopeType.Connected,
            EnvelopeType.GameConfig,
            EnvelopeType.GameData,
        }
        for envelopeType in set(EnvelopeType) - special:
            self.assertIs(
                PAYLOAD_TYPES[envelopeType], getattr(control_pb2, envelopeType.name)
            )

    def test_encodings(self) -> None:
        """
        C{GameData} is raw; every other type is protobuf.
        """
        for envelopeType in EnvelopeType:
            expected = (
                Encoding.RAW
                if envelopeType == EnvelopeType.GameData
                else Encoding.PROTOBUF
            )
            self.assertEqual(ENCODINGS[envelopeType], expected)

    def test_readOnly(self) -> None:
        """
        The tables cannot be changed at run time.
        """
        self.assertRaises(TypeError, setitem, PAYLOAD_TYPES, EnvelopeType.Type, None)
        self.assertRaises(TypeError, setitem, ENCODINGS, EnvelopeType.Type, 0)


class DecodePayloadTests(SynchronousTestCase):
    """
    Tests for L{decodePayload}.
    """

    def test_decodes(self) -> None:
        """
        A protobuf payload parses into the given message class.
        """
        ready = control_pb2.Ready(server_id="s1", name="arena", capacity=8)
        envelope = Envelope(
            EnvelopeType.Ready, Encoding.PROTOBUF, ready.SerializeToString()
        )
        self.assertEqual(decodePayload(envelope, control_pb2.Ready), ready)

    def test_emptyPayload(self) -> None:
        """
        An empty payload is a message with every field at its default.
        """
        envelope = Envelope(EnvelopeType.Heartbeat, Encoding.PROTOBUF, b"")
        self.assertEqual(
            decodePayload(envelope, control_pb2.Heartbeat), control_pb2.Heartbeat()
        )

    def test_undecodable(self) -> None:
        """
        A payload that does not parse raises L{EnvelopeError} with code 5.
        """
        envelope = Envelope(EnvelopeType.Ready, Encoding.PROTOBUF, b"\x0a\x05ab")
        error = self.assertRaises(
            EnvelopeError, decodePayload, envelope, control_pb2.Ready
        )
        self.assertEqual(error.code, ErrorCode.UNDECODABLE_PAYLOAD)
        self.assertEqual(error.code, 5)
        self.assertIn("Ready", error.message)

    def test_rawEncodingRefused(self) -> None:
        """
        An envelope marked raw is not parsed as protobuf: it raises
        L{EnvelopeError} with code 5.
        """
        envelope = Envelope(EnvelopeType.Ready, Encoding.RAW, b"")
        error = self.assertRaises(
            EnvelopeError, decodePayload, envelope, control_pb2.Ready
        )
        self.assertEqual(error.code, ErrorCode.UNDECODABLE_PAYLOAD)

    @moderate
    @given(
        envelopeType=st.sampled_from(
            [t for t, cls in PAYLOAD_TYPES.items() if cls is not None]
        ),
        payload=st.binary(max_size=200),
    )
    def test_arbitraryPayload(self, envelopeType: EnvelopeType, payload: bytes) -> None:
        """
        Arbitrary bytes as the payload of any protobuf type parse or raise
        L{EnvelopeError}, never anything else.
        """
        messageClass = PAYLOAD_TYPES[envelopeType]
        assert messageClass is not None
        try:
            message = decodePayload(
                Envelope(envelopeType, Encoding.PROTOBUF, payload), messageClass
            )
        except EnvelopeError as e:
            self.assertEqual(e.code, ErrorCode.UNDECODABLE_PAYLOAD)
        else:
            self.assertIsInstance(message, messageClass)
