# -*- test-case-name: tests.test_codes -*-
"""
Every number of the contract (C{shared/spec/PROTOCOL.md}) as an enum, and
L{ProtocolViolation}, the one exception that carries a close code of it.

This module is sans-IO: it imports nothing from Twisted or Autobahn.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AphelionProtocol",
    "CloseCode",
    "DisconnectCode",
    "Encoding",
    "EnvelopeType",
    "ErrorCode",
    "ProtocolViolation",
    "RejectCode",
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
    SESSION_MOVED = 4010


class ProtocolViolation(Exception):
    """
    A peer broke the contract; the connection must close with L{code}.

    The sans-IO cores raise it (L{aphelion.ack.AckViolation},
    L{aphelion.handshake.HandshakeError}, L{aphelion.ping.MalformedPing} are
    its subclasses) and the adapters close with what it carries.

    :ivar code: the close code the contract names.
    :ivar reason: a short human-readable reason for the close frame.
    """

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


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


class RejectCode(IntEnum):
    """
    The codes of the C{Rejected} envelopes the game server sends itself.
    Games choose their own codes for L{GameServerProtocol.reject}, from 100 up.
    """

    FULL = 1
    NOT_ACCEPTING = 2
    INTERNAL_ERROR = 3
    INVALID_PLAYER = 4


class DisconnectCode(IntEnum):
    """
    The codes of the C{Disconnect} envelopes the game server sends itself.
    Games choose their own codes for L{GameServerProtocol.kick}, from 100 up.
    """

    KICKED = 0
    """The game kicked the player (the default of L{GameServerProtocol.kick})."""
    SHUTTING_DOWN = 1
    """The game server is draining; the player may be seated elsewhere."""
    REPLACED = 2
    """The same player ID was seated again on a newer connection."""
    INTERNAL_ERROR = 3
    """A hook of the game raised."""
    MALFORMED_MESSAGE = 4
    """The game could not parse the player's message."""
    MOVED = 5
    """
    The proxy side: the player's session moved to another AuthProxy of the
    cluster, which resumes the seat with C{ClientAuth{resumed}} (Part 5).
    The game server holds the seat for the seat hold time.
    """
