# -*- test-case-name: tests.test_envelope -*-
"""
The TCP envelope between the AuthProxy and a GameServer (contract Part 2.1).

Every envelope is a 4-byte header and a payload::

    byte 0     version (now 1)
    byte 1     type << 2 | en      (type 0-63, en 0 = protobuf, 1 = raw)
    bytes 2-3  payload length, big endian (0-65535)
    bytes 4... payload

L{encodeEnvelope} builds one; L{EnvelopeDecoder} turns a byte stream into
L{Envelope}s, or raises an L{EnvelopeError} that carries the contract's
C{Error} code. L{PAYLOAD_TYPES} and L{ENCODINGS} say what each type of table
2.2 carries, and L{decodePayload} parses a protobuf payload.

This module is sans-IO: it imports nothing from Twisted or Autobahn. Only
L{decodePayload} and the two tables use protobuf; the codec itself does not.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar

from google.protobuf.message import DecodeError, Message

from aphelion.codes import Encoding, EnvelopeType, ErrorCode
from aphelion.proto import control_pb2, game_pb2

__all__ = [
    "ENCODINGS",
    "HEADER",
    "MAX_PAYLOAD",
    "MAX_TYPE",
    "PAYLOAD_TYPES",
    "VERSION",
    "Envelope",
    "EnvelopeDecoder",
    "EnvelopeError",
    "decodePayload",
    "encodeEnvelope",
    "gameDataEnvelope",
    "wholeGameData",
]

HEADER: Final = struct.Struct("!BBH")
"""
The envelope header: version, C{type << 2 | en}, payload length.
"""

VERSION: Final = 1
"""
The envelope version this module speaks, and the only one it accepts.
"""

MAX_PAYLOAD: Final = 65535
"""
The largest payload, in bytes, that the 16-bit length field can describe.
"""

MAX_TYPE: Final = 63
"""
The largest type number that the 6-bit type field can hold.
"""

# The bit of byte 1 that is set in both reserved encodings, 2 and 3.
_RESERVED_ENCODING_BIT = 0x02

_MessageT = TypeVar("_MessageT", bound=Message)


@dataclass(frozen=True, slots=True)
class Envelope:
    """
    One decoded envelope.

    :ivar type: the type number (0-63). The decoder yields types that are not
        in L{EnvelopeType} too: answering them with C{Error{3}} is the
        protocol's business, not the codec's.
    :ivar encoding: the payload encoding, an L{Encoding} value (0 or 1).
    :ivar payload: the payload bytes, at most L{MAX_PAYLOAD} of them.
    """

    type: int
    encoding: int
    payload: bytes


class EnvelopeError(Exception):
    """
    A peer sent something that the contract answers with an C{Error} envelope.

    :ivar code: the code to send in the C{Error} envelope.
    :ivar message: the text to send in the C{Error} envelope.
    :ivar preceding: the well-formed envelopes that came before the fault in
        the data of the L{EnvelopeDecoder.feed} call that raised. They were
        not returned, because the call raised instead; a receiver that handles
        messages up to the fault handles these first, then sends the
        C{Error}. Empty when the error did not come from a decoder.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        preceding: list[Envelope] | None = None,
    ) -> None:
        """
        :param code: the contract's C{Error} code.
        :param message: a short human-readable text.
        :param preceding: see L{EnvelopeError.preceding}.
        """
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.preceding: list[Envelope] = [] if preceding is None else preceding

    def __str__(self) -> str:
        """
        The code's name and number, then the message.
        """
        return f"{self.code.name} ({int(self.code)}): {self.message}"


def encodeEnvelope(
    type: int, payload: bytes, encoding: int = Encoding.PROTOBUF
) -> bytes:
    """
    Build one envelope.

    :param type: the type number, 0-63; unknown types are allowed (a test or a
        newer peer may need them).
    :param payload: the payload, at most L{MAX_PAYLOAD} bytes.
    :param encoding: an L{Encoding} value. The reserved encodings 2 and 3 are
        refused, so that everything this function builds decodes.
    :return: the header followed by the payload.
    :raises ValueError: if any argument is out of range.
    """
    if not 0 <= type <= MAX_TYPE:
        raise ValueError(f"envelope type {type} is not in 0-{MAX_TYPE}")
    if encoding not in (Encoding.PROTOBUF, Encoding.RAW):
        raise ValueError(f"envelope encoding {encoding} is reserved or invalid")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(
            f"envelope payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}"
        )
    return HEADER.pack(VERSION, type << 2 | encoding, len(payload)) + payload


_GAME_DATA_BYTE: Final = int(EnvelopeType.GameData) << 2 | Encoding.RAW


def wholeGameData(data: bytes) -> bytes | None:
    """
    The payload of C{data} if it is exactly one whole C{GameData} envelope
    (the common read on a relay connection), else L{None}: then the
    L{EnvelopeDecoder} decides.
    """
    if (
        len(data) >= 4
        and data[1] == _GAME_DATA_BYTE
        and data[0] == VERSION
        and (data[2] << 8 | data[3]) == len(data) - 4
    ):
        return bytes(data[4:])
    return None


def gameDataEnvelope(payload: bytes) -> bytes:
    """
    Encode one C{GameData} envelope, without protobuf: the hot path of the
    relay in both directions.

    :param payload: the raw C{C2S} or C{S2C} bytes of one client packet.
    :return: the header followed by the payload.
    :raises ValueError: if the payload is longer than 65535 bytes.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(
            f"GameData payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}"
        )
    return HEADER.pack(VERSION, _GAME_DATA_BYTE, len(payload)) + payload


class EnvelopeDecoder:
    """
    Turn a stream of bytes into L{Envelope}s.

    Feed it whatever the transport delivers; it returns every envelope that is
    complete and keeps any incomplete tail for the next call. This is the loop
    of Twisted's C{IntNStringReceiver.dataReceived}, minus the transport.

    A header is checked as soon as its bytes arrive, even before its payload
    does: a version other than L{VERSION} raises L{EnvelopeError} with
    L{ErrorCode.UNSUPPORTED_VERSION}, and a reserved encoding (2 or 3) raises
    it with L{ErrorCode.RESERVED_ENCODING}. Unknown types are not checked.

    Once it has raised, the decoder has failed for good: the stream cannot be
    resynchronised, so it drops its buffer and every later L{feed} raises an
    L{EnvelopeError} with the same code and message (and no preceding
    envelopes).

    How the stream is cut into C{feed} calls changes neither the envelopes nor
    the error: the envelopes returned, followed by the C{preceding} envelopes of
    the error, are always the same.
    """

    __slots__ = ("_buffer", "_failure", "_needed")

    def __init__(self) -> None:
        """
        Start with an empty buffer.
        """
        self._buffer = bytearray()
        # The length of the buffered envelope once its header is complete, so
        # that a large payload arriving in small pieces is not re-parsed (or
        # copied) on every piece; 0 while the header is incomplete.
        self._needed = 0
        self._failure: EnvelopeError | None = None

    def feed(self, data: bytes) -> list[Envelope]:
        """
        Decode the envelopes that C{data} completes.

        :param data: the next bytes of the stream, of any length.
        :return: the complete envelopes, in order; possibly none.
        :raises EnvelopeError: if a header is invalid, now or on any earlier
            call.
        """
        if self._failure is not None:
            raise EnvelopeError(self._failure.code, self._failure.message)
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._needed:
                return []
            # At least one envelope completes here, so this copy is paid for
            # by the bytes it consumes.
            data = bytes(buffer)
            buffer.clear()
        else:
            # Free for bytes; makes payloads bytes if the caller passed a
            # bytearray or a memoryview.
            data = bytes(data)

        envelopes: list[Envelope] = []
        unpack = HEADER.unpack_from
        size = HEADER.size
        offset = 0
        end = len(data)
        self._needed = 0
        while True:
            remaining = end - offset
            if remaining < size:
                # Check the part of the header that has arrived.
                if remaining >= 1 and data[offset] != VERSION:
                    raise self._fail(
                        ErrorCode.UNSUPPORTED_VERSION,
                        f"unsupported envelope version {data[offset]}",
                        envelopes,
                    )
                if remaining >= 2 and data[offset + 1] & _RESERVED_ENCODING_BIT:
                    raise self._fail(
                        ErrorCode.RESERVED_ENCODING,
                        f"reserved envelope encoding {data[offset + 1] & 0x03}",
                        envelopes,
                    )
                break
            version, typeAndEncoding, length = unpack(data, offset)
            if version != VERSION:
                raise self._fail(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"unsupported envelope version {version}",
                    envelopes,
                )
            if typeAndEncoding & _RESERVED_ENCODING_BIT:
                raise self._fail(
                    ErrorCode.RESERVED_ENCODING,
                    f"reserved envelope encoding {typeAndEncoding & 0x03}",
                    envelopes,
                )
            stop = offset + size + length
            if stop > end:
                self._needed = stop - offset
                break
            envelopes.append(
                Envelope(
                    typeAndEncoding >> 2,
                    typeAndEncoding & 0x03,
                    data[offset + size : stop],
                )
            )
            offset = stop
        if offset < end:
            buffer += memoryview(data)[offset:]
        return envelopes

    @property
    def idle(self) -> bool:
        """
        Whether nothing is buffered and the decoder has not failed: the next
        bytes start an envelope.
        """
        return not self._buffer and self._failure is None

    def _fail(
        self, code: ErrorCode, message: str, preceding: list[Envelope]
    ) -> EnvelopeError:
        """
        Enter the failed state.

        :param code: the contract's C{Error} code.
        :param message: the text for the C{Error} envelope.
        :param preceding: the envelopes decoded before the fault in this call.
        :return: the exception to raise.
        """
        self._buffer.clear()
        self._needed = 0
        self._failure = EnvelopeError(code, message, preceding)
        return self._failure


PAYLOAD_TYPES: Final[Mapping[EnvelopeType, type[Message] | None]] = MappingProxyType(
    {
        EnvelopeType.Type: control_pb2.Type,
        EnvelopeType.Control: control_pb2.Control,
        EnvelopeType.Ready: control_pb2.Ready,
        EnvelopeType.Status: control_pb2.Status,
        EnvelopeType.Shutdown: control_pb2.Shutdown,
        EnvelopeType.Heartbeat: control_pb2.Heartbeat,
        EnvelopeType.ClientAuth: control_pb2.ClientAuth,
        EnvelopeType.Connected: game_pb2.GameDetails,
        EnvelopeType.GameConfig: game_pb2.GameConfig,
        EnvelopeType.Rejected: control_pb2.Rejected,
        EnvelopeType.GameData: None,
        EnvelopeType.Disconnect: control_pb2.Disconnect,
        EnvelopeType.Error: control_pb2.Error,
    }
)
"""
The protobuf message class of each type's payload (table 2.2); C{None} for
L{EnvelopeType.GameData}, whose payload is raw bytes relayed verbatim.
Read-only.
"""

ENCODINGS: Final[Mapping[EnvelopeType, Encoding]] = MappingProxyType(
    {
        envelopeType: Encoding.RAW if messageClass is None else Encoding.PROTOBUF
        for envelopeType, messageClass in PAYLOAD_TYPES.items()
    }
)
"""
The encoding each type's payload must have (table 2.2): L{Encoding.RAW} for
L{EnvelopeType.GameData}, L{Encoding.PROTOBUF} for every other type. Read-only.
"""


def decodePayload(envelope: Envelope, messageClass: type[_MessageT]) -> _MessageT:
    """
    Parse the protobuf payload of an envelope.

    :param envelope: an envelope whose encoding must be L{Encoding.PROTOBUF}.
    :param messageClass: the message class to parse, usually
        C{PAYLOAD_TYPES[envelope.type]}.
    :return: the parsed message.
    :raises EnvelopeError: with L{ErrorCode.UNDECODABLE_PAYLOAD} if the
        encoding is not protobuf or the payload does not parse.
    """
    if envelope.encoding != Encoding.PROTOBUF:
        raise EnvelopeError(
            ErrorCode.UNDECODABLE_PAYLOAD,
            f"{messageClass.DESCRIPTOR.name} payload must have encoding "
            f"{int(Encoding.PROTOBUF)}, not {envelope.encoding}",
        )
    try:
        return messageClass.FromString(envelope.payload)
    except DecodeError as e:
        raise EnvelopeError(
            ErrorCode.UNDECODABLE_PAYLOAD,
            f"{messageClass.DESCRIPTOR.name} payload does not decode: {e}",
        ) from e
