# -*- test-case-name: tests.test_handshake -*-
"""
Tests of L{aphelion.handshake}.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import AphelionProtocol, CloseCode, ProtocolViolation
from aphelion.handshake import (
    INIT_LENGTH,
    HandshakeError,
    InitPacket,
    Revisions,
    checkInit,
    encodeInit,
)

SERVED = {1: Revisions(1, 1), 2: Revisions(2, 4)}
TOKEN = bytes(range(32))


def raw(protocol: int, version: int, hasToken: int, token: bytes = TOKEN) -> bytes:
    """
    A C2SInitPacket with any field values, valid or not.
    """
    return struct.pack("!hib", protocol, version, hasToken) + token


class CheckInitTests(SynchronousTestCase):
    """
    Tests of L{checkInit}: each check and their order.
    """

    def assertCode(
        self, code: CloseCode, message: bytes, isBinary: bool = True
    ) -> None:
        """
        Assert that C{message} fails with C{code}.
        """
        with self.assertRaises(HandshakeError) as e:
            checkInit(message, isBinary, SERVED)
        self.assertEqual(e.exception.code, code)
        self.assertTrue(e.exception.reason)

    def test_errorIsProtocolViolation(self) -> None:
        """
        A L{HandshakeError} is the one L{ProtocolViolation}: it carries the
        close code and reason.
        """
        with self.assertRaises(ProtocolViolation) as e:
            checkInit(b"", True, SERVED)
        self.assertIsInstance(e.exception, HandshakeError)
        self.assertEqual(e.exception.code, CloseCode.MALFORMED_INIT)

    def test_layout(self) -> None:
        """
        The packet is 39 bytes, big endian: i16 protocol, i32 version, i8 flag,
        32 token bytes.
        """
        packet = encodeInit(2, 3, TOKEN)
        self.assertEqual(len(packet), INIT_LENGTH)
        self.assertEqual(packet[:7], b"\x00\x02\x00\x00\x00\x03\x01")
        self.assertEqual(packet[7:], TOKEN)
        self.assertEqual(
            checkInit(packet, True, SERVED),
            InitPacket(AphelionProtocol.GAME, 3, TOKEN),
        )

    def test_noToken(self) -> None:
        """
        With C{has_session_token} 0 the token bytes are ignored.
        """
        init = checkInit(raw(1, 0, 0, b"\xff" * 32), True, SERVED)
        self.assertIsNone(init.token)
        self.assertEqual(init.protocol, AphelionProtocol.PING)

    def test_text(self) -> None:
        """
        A text message: 1003, before any other check.
        """
        self.assertCode(CloseCode.UNSUPPORTED_DATA, b"short", isBinary=False)

    def test_length(self) -> None:
        """
        Any length other than 39: 4003.
        """
        for length in (0, 1, 38, 40, 100):
            self.assertCode(
                CloseCode.MALFORMED_INIT, encodeInit(1).ljust(length, b"\0")[:length]
            )

    def test_flag(self) -> None:
        """
        C{has_session_token} other than 0 or 1: 4003, before the protocol check.
        """
        self.assertCode(CloseCode.MALFORMED_INIT, raw(99, 1, 2))
        self.assertCode(CloseCode.MALFORMED_INIT, raw(1, 1, -1))

    def test_protocol(self) -> None:
        """
        A protocol not served: 4000, before the version checks.
        """
        for protocol in (0, 3, -1, 0x7FFF):
            self.assertCode(CloseCode.INVALID_PROTOCOL, raw(protocol, 99, 0))

    def test_versionTooOld(self) -> None:
        """
        A version below the minimum: 4001.
        """
        self.assertCode(CloseCode.VERSION_TOO_OLD, raw(2, 1, 0))

    def test_versionNegative(self) -> None:
        """
        A negative version is below every minimum: 4001.
        """
        self.assertCode(CloseCode.VERSION_TOO_OLD, raw(1, -1, 0))

    def test_versionTooNew(self) -> None:
        """
        A version above the current revision: 4002.
        """
        self.assertCode(CloseCode.VERSION_TOO_NEW, raw(2, 5, 0))
        self.assertCode(CloseCode.VERSION_TOO_NEW, raw(1, 2, 0))

    def test_versionInRange(self) -> None:
        """
        Versions from the minimum to the current revision pass; 0 skips the
        check.
        """
        for version in (0, 2, 3, 4):
            self.assertEqual(
                checkInit(raw(2, version, 0), True, SERVED).version, version
            )

    def test_encodeBadToken(self) -> None:
        """
        L{encodeInit} refuses a token that is not 32 bytes.
        """
        self.assertRaises(ValueError, encodeInit, 1, 0, b"short")

    def test_revisionsChecked(self) -> None:
        """
        L{Revisions} needs 1 <= minimum <= current.
        """
        self.assertRaises(ValueError, Revisions, 0, 1)
        self.assertRaises(ValueError, Revisions, 3, 2)

    @settings(max_examples=500)
    @given(st.binary(max_size=45), st.booleans())
    def test_arbitraryBytes(self, message: bytes, isBinary: bool) -> None:
        """
        Arbitrary bytes give an L{InitPacket} or a L{HandshakeError} with a
        code of the contract, never anything else.
        """
        try:
            init = checkInit(message, isBinary, SERVED)
        except HandshakeError as e:
            self.assertIn(
                e.code,
                {
                    CloseCode.UNSUPPORTED_DATA,
                    CloseCode.MALFORMED_INIT,
                    CloseCode.INVALID_PROTOCOL,
                    CloseCode.VERSION_TOO_OLD,
                    CloseCode.VERSION_TOO_NEW,
                },
            )
        else:
            self.assertEqual(len(message), INIT_LENGTH)
            self.assertIn(init.protocol, SERVED)

    @given(
        st.sampled_from([1, 2]),
        st.integers(0, 1),
        st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
    )
    def test_roundTrip(self, protocol: int, version: int, token: bytes | None) -> None:
        """
        What L{encodeInit} builds, L{checkInit} reads back.
        """
        served = {1: Revisions(1, 1), 2: Revisions(1, 1)}
        init = checkInit(encodeInit(protocol, version, token), True, served)
        self.assertEqual(
            (init.protocol, init.version, init.token), (protocol, version, token)
        )
