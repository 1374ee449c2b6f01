# -*- test-case-name: tests.test_codes -*-
"""
Tests for L{aphelion.codes}: every number of the contract, written out again
here so that changing one in the code fails a test.
"""

from __future__ import annotations

from enum import IntEnum

from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import (
    AphelionProtocol,
    CloseCode,
    Encoding,
    EnvelopeType,
    ErrorCode,
)


def tableOf(enum: type[IntEnum]) -> dict[str, int]:
    """
    The names and numbers of C{enum}'s members, to compare with a table of the
    contract.
    """
    return {member.name: int(member) for member in enum}


class CloseCodeTests(SynchronousTestCase):
    """
    Tests for L{CloseCode}, the close code table of Part 1.2.
    """

    def test_table(self) -> None:
        """
        L{CloseCode} holds exactly the contract's close codes: 1000 and the
        1003 of a text frame, the table's 4000-4009, 1001, 1009, 1011 and 1013.
        """
        self.assertEqual(
            tableOf(CloseCode),
            {
                "NORMAL": 1000,
                "GOING_AWAY": 1001,
                "UNSUPPORTED_DATA": 1003,
                "MESSAGE_TOO_BIG": 1009,
                "INTERNAL_ERROR": 1011,
                "TRY_AGAIN_LATER": 1013,
                "INVALID_PROTOCOL": 4000,
                "VERSION_TOO_OLD": 4001,
                "VERSION_TOO_NEW": 4002,
                "MALFORMED_INIT": 4003,
                "INIT_TIMEOUT": 4004,
                "UNEXPECTED_NEW_SESSION": 4005,
                "MALFORMED_PACKET": 4006,
                "TOO_MANY_UNACKNOWLEDGED": 4007,
                "TOO_MANY_AUTH_ATTEMPTS": 4008,
                "SESSION_ENDED": 4009,
                "SESSION_MOVED": 4010,
            },
        )

    def test_privateRange(self) -> None:
        """
        The contract's own codes are all in the private-use range 4000-4009.
        """
        private = [code for code in CloseCode if code >= 4000]
        self.assertEqual(sorted(private), list(range(4000, 4011)))


class ErrorCodeTests(SynchronousTestCase):
    """
    Tests for L{ErrorCode}, the codes of the envelope's C{Error} (Part 2.2).
    """

    def test_table(self) -> None:
        """
        L{ErrorCode} holds exactly the codes 1-7 with the contract's meanings.
        """
        self.assertEqual(
            tableOf(ErrorCode),
            {
                "UNSUPPORTED_VERSION": 1,
                "RESERVED_ENCODING": 2,
                "UNKNOWN_TYPE": 3,
                "NOT_ALLOWED_NOW": 4,
                "UNDECODABLE_PAYLOAD": 5,
                "BAD_TOKEN": 6,
                "TIMEOUT": 7,
            },
        )


class EnvelopeTypeTests(SynchronousTestCase):
    """
    Tests for L{EnvelopeType}, table 2.2.
    """

    def test_table(self) -> None:
        """
        L{EnvelopeType} holds exactly the types of table 2.2.
        """
        self.assertEqual(
            tableOf(EnvelopeType),
            {
                "Type": 1,
                "Control": 2,
                "Ready": 3,
                "Status": 4,
                "Shutdown": 5,
                "Heartbeat": 6,
                "ClientAuth": 10,
                "Connected": 11,
                "GameConfig": 12,
                "Rejected": 13,
                "GameData": 14,
                "Disconnect": 15,
                "Error": 63,
            },
        )

    def test_fitsSixBits(self) -> None:
        """
        Every type fits the 6-bit type field of the header.
        """
        for envelopeType in EnvelopeType:
            self.assertTrue(0 <= envelopeType <= 63, envelopeType)


class EncodingTests(SynchronousTestCase):
    """
    Tests for L{Encoding}, the C{en} field of Part 2.1.
    """

    def test_table(self) -> None:
        """
        Protobuf is 0 and raw bytes is 1; 2 and 3 are reserved, so absent.
        """
        self.assertEqual(tableOf(Encoding), {"PROTOBUF": 0, "RAW": 1})


class AphelionProtocolTests(SynchronousTestCase):
    """
    Tests for L{AphelionProtocol}, the C{aphelion_protocol} of Part 1.2.
    """

    def test_table(self) -> None:
        """
        Ping is 1 and game is 2.
        """
        self.assertEqual(tableOf(AphelionProtocol), {"PING": 1, "GAME": 2})
