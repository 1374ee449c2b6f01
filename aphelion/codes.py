# -*- test-case-name: tests.test_codes -*-
"""
Every number of the contract (C{shared/spec/PROTOCOL.md}) as an enum.

This module is sans-IO: it imports nothing from Twisted or Autobahn.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AphelionProtocol",
    "CloseCode",
    "Encoding",
    "EnvelopeType",
    "ErrorCode",
]


class AphelionProtocol(IntEnum):
    """
    The C{aphelion_protocol} field of the C2SInitPacket (Part 1.2).
    """

    PING = 1
    GAME = 2


class CloseCode(IntEnum):
    """
    WebSocket close codes of Part 1.2.
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013

    INVALID_PROTOCOL = 4000
    VERSION_TOO_OLD = 4001
    VERSION_TOO_NEW = 4002
    MALFORMED_INIT = 4003
    INIT_TIMEOUT = 4004
    UNEXPECTED_NEW_SESSION = 4005
    MALFORMED_PACKET = 4006
    TOO_MANY_UNACKNOWLEDGED = 4007
    TOO_MANY_AUTH_ATTEMPTS = 4008
    SESSION_ENDED = 4009


class ErrorCode(IntEnum):
    """
    Codes of the envelope's C{Error} message (Part 2.2).
    """

    UNSUPPORTED_VERSION = 1
    RESERVED_ENCODING = 2
    UNKNOWN_TYPE = 3
    NOT_ALLOWED_NOW = 4
    UNDECODABLE_PAYLOAD = 5
    BAD_TOKEN = 6
    TIMEOUT = 7


class Encoding(IntEnum):
    """
    The C{en} field of the envelope header (Part 2.1).
    """

    PROTOBUF = 0
    RAW = 1


class EnvelopeType(IntEnum):
    """
    The C{type} field of the envelope header (table 2.2).
    """

    Type = 1
    Control = 2
    Ready = 3
    Status = 4
    Shutdown = 5
    Heartbeat = 6
    ClientAuth = 10
    Connected = 11
    GameConfig = 12
    Rejected = 13
    GameData = 14
    Disconnect = 15
    Error = 63
