# -*- test-case-name: tests.test_handshake -*-
"""
The C2SInitPacket and its checks, in the contract's order (Part 1.2).

Sans-IO: the adapter passes the first message and whether it was binary; this
module answers with an L{InitPacket} or raises L{HandshakeError} carrying the
close code.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from aphelion.codes import AphelionProtocol, CloseCode, ProtocolViolation

__all__ = [
    "INIT_LENGTH",
    "TOKEN_LENGTH",
    "HandshakeError",
    "InitPacket",
    "Revisions",
    "checkInit",
    "encodeInit",
]

TOKEN_LENGTH = 32
INIT_LENGTH = 39
_HEAD = struct.Struct("!hib")


@dataclass(frozen=True, slots=True)
class Revisions:
    """
    The revisions of one protocol that a server speaks.

    :ivar minimum: the oldest revision accepted.
    :ivar current: the newest revision spoken.
    """

    minimum: int = 1
    current: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.current:
            raise ValueError(
                f"need 1 <= minimum <= current, not {self.minimum}..{self.current}"
            )


@dataclass(frozen=True, slots=True)
class InitPacket:
    """
    A C2SInitPacket that passed every check.

    :ivar protocol: the requested protocol.
    :ivar version: the requested revision, 0 to skip the check.
    :ivar token: the session token to join, or L{None} for a new session.
    """

    protocol: AphelionProtocol
    version: int
    token: bytes | None


class HandshakeError(ProtocolViolation):
    """
    The init packet failed a check; close the connection with C{code}, a
    close code of Part 1.2.
    """


def checkInit(
    message: bytes, isBinary: bool, served: Mapping[int, Revisions]
) -> InitPacket:
    """
    Check a C2SInitPacket in the order of Part 1.2.

    :param message: the first WebSocket message of the connection.
    :param isBinary: whether it came in a binary frame.
    :param served: the revisions of each served C{aphelion_protocol} number.
    :return: the parsed packet.
    :raises HandshakeError: with the first close code that applies.
    """
    if not isBinary:
        raise HandshakeError(CloseCode.UNSUPPORTED_DATA, "init packet must be binary")
    if len(message) != INIT_LENGTH:
        raise HandshakeError(
            CloseCode.MALFORMED_INIT, f"init packet must be {INIT_LENGTH} bytes"
        )
    protocol, version, hasToken = _HEAD.unpack_from(message)
    if hasToken not in (0, 1):
        raise HandshakeError(CloseCode.MALFORMED_INIT, "has_session_token not 0 or 1")
    revisions = served.get(protocol)
    if revisions is None:
        raise HandshakeError(CloseCode.INVALID_PROTOCOL, "protocol not served")
    # 0 skips the check; a negative revision is below every minimum.
    if version != 0:
        if version < revisions.minimum:
            raise HandshakeError(CloseCode.VERSION_TOO_OLD, "protocol version too old")
        if version > revisions.current:
            raise HandshakeError(CloseCode.VERSION_TOO_NEW, "protocol version too new")
    return InitPacket(
        AphelionProtocol(protocol),
        version,
        bytes(message[7:]) if hasToken else None,
    )


def encodeInit(protocol: int, version: int = 0, token: bytes | None = None) -> bytes:
    """
    Build a C2SInitPacket, as a client sends it.

    :param protocol: the C{aphelion_protocol} number.
    :param version: the revision, 0 to skip the check.
    :param token: a session token to resume, or L{None}.
    :return: the 39 bytes.
    :raises ValueError: for a token that is not 32 bytes.
    """
    if token is not None and len(token) != TOKEN_LENGTH:
        raise ValueError(f"a session token is {TOKEN_LENGTH} bytes")
    return _HEAD.pack(protocol, version, token is not None) + (
        token or bytes(TOKEN_LENGTH)
    )
