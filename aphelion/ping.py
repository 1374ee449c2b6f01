# -*- test-case-name: tests.test_ping -*-
"""
The ping protocol's messages (Part 1.5), encoded and decoded without the
protobuf runtime on the hot path.

C{PingRequest} and C{PingResponse} have a fixed layout; building and parsing
them through protobuf costs a few microseconds per ping, a tenth of what the
whole round trip costs the server. These functions produce exactly the bytes
protobuf does, and fall back to protobuf for any request they do not
recognise, so the two can never disagree (the tests check it).

This module is sans-IO: it imports nothing from Twisted or Autobahn.
"""

from __future__ import annotations

import struct

from google.protobuf.message import DecodeError

from aphelion.codes import CloseCode, ProtocolViolation
from aphelion.proto.ping_pb2 import PingRequest

__all__ = ["MalformedPing", "encodePingResponse", "readPingRequest"]

_FIXED = struct.Struct("<q")
_TIMES = struct.Struct("<BqBq")
_PLAYERS = struct.Struct("<BqBqBB")
_PLAYING = struct.Struct("<BqBqBB")
_BOTH = struct.Struct("<BqBqBBBB")
_TAG_CLIENT_TIME = 0x09  # field 1, wire type 1 (64-bit)
_TAG_SERVER_TIME = b"\x11"  # field 2, wire type 1
_TAG_PLAYERS = 0x18  # field 3, wire type 0 (varint)
_TAG_PLAYING = 0x20  # field 4, wire type 0


class MalformedPing(ProtocolViolation, ValueError):
    """
    The payload is not a C{PingRequest}: close with 4006. (Still a
    L{ValueError}, as it was before it carried the close code.)
    """


def readPingRequest(payload: bytes) -> int:
    """
    Parse a C{PingRequest}.

    :return: its C{client_time}.
    :raises MalformedPing: if the payload does not parse.
    """
    if len(payload) == 9 and payload[0] == _TAG_CLIENT_TIME:
        value: int = _FIXED.unpack_from(payload, 1)[0]
        return value
    try:
        return PingRequest.FromString(payload).client_time
    except DecodeError as e:
        raise MalformedPing(CloseCode.MALFORMED_PACKET, "malformed PingRequest") from e


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encodePingResponse(
    clientTime: int, serverTime: int, players: int, playing: int
) -> bytes:
    """
    Serialize a C{PingResponse} exactly as protobuf does: fields in number
    order, fields equal to zero left out.

    :param clientTime: copied from the request (sfixed64).
    :param serverTime: the server clock in ns since the Unix epoch (sfixed64).
    :param players: authenticated sessions (uint32).
    :param playing: seated sessions (uint32).
    """
    if clientTime and serverTime and 0 <= players < 128 and 0 <= playing < 128:
        # The usual case, in one struct call: small counts are one byte.
        if playing:
            if players:
                return _BOTH.pack(
                    9, clientTime, 17, serverTime, 24, players, 32, playing
                )
            return _PLAYING.pack(9, clientTime, 17, serverTime, 32, playing)
        if players:
            return _PLAYERS.pack(9, clientTime, 17, serverTime, 24, players)
        return _TIMES.pack(9, clientTime, 17, serverTime)
    parts = []
    if clientTime:
        parts.append(b"\x09" + _FIXED.pack(clientTime))
    if serverTime:
        parts.append(_TAG_SERVER_TIME + _FIXED.pack(serverTime))
    if players:
        parts.append(bytes((_TAG_PLAYERS,)) + _varint(players & 0xFFFFFFFF))
    if playing:
        parts.append(bytes((_TAG_PLAYING,)) + _varint(playing & 0xFFFFFFFF))
    return b"".join(parts)
