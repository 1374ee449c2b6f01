# -*- test-case-name: tests.test_ping -*-
"""
Tests of L{aphelion.ping}: the hand-written codec agrees with protobuf.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import CloseCode, ProtocolViolation
from aphelion.ping import MalformedPing, encodePingResponse, readPingRequest
from aphelion.proto.ping_pb2 import PingRequest, PingResponse

INT64 = st.integers(-(2**63), 2**63 - 1)
UINT32 = st.one_of(st.integers(0, 130), st.integers(0, 2**32 - 1))


class PingCodecTests(SynchronousTestCase):
    """
    Tests of L{encodePingResponse} and L{readPingRequest}.
    """

    @settings(max_examples=500)
    @given(INT64, INT64, UINT32, UINT32)
    def test_responseBytesAsProtobuf(
        self, clientTime: int, serverTime: int, players: int, playing: int
    ) -> None:
        """
        The response is byte for byte what protobuf serializes.
        """
        expected = PingResponse(
            client_time=clientTime,
            server_time=serverTime,
            players=players,
            playing=playing,
        ).SerializeToString()
        self.assertEqual(
            encodePingResponse(clientTime, serverTime, players, playing), expected
        )

    @settings(max_examples=500)
    @given(INT64)
    def test_requestAsProtobuf(self, clientTime: int) -> None:
        """
        A request protobuf serialized reads back to its client time.
        """
        payload = PingRequest(client_time=clientTime).SerializeToString()
        self.assertEqual(readPingRequest(payload), clientTime)

    @settings(max_examples=500)
    @given(st.binary(max_size=20))
    def test_arbitraryBytes(self, payload: bytes) -> None:
        """
        Arbitrary bytes give the client time protobuf would, or
        L{MalformedPing} exactly when protobuf refuses them.
        """
        try:
            expected: int | None = PingRequest.FromString(payload).client_time
        except Exception:
            expected = None
        try:
            got: int | None = readPingRequest(payload)
        except MalformedPing:
            got = None
        self.assertEqual(got, expected)

    def test_malformedCarriesCloseCode(self) -> None:
        """
        A payload that is not a C{PingRequest} raises L{MalformedPing}, a
        L{ProtocolViolation} with 4006 (and still a L{ValueError}).
        """
        with self.assertRaises(MalformedPing) as e:
            readPingRequest(b"\xff")
        self.assertIsInstance(e.exception, ProtocolViolation)
        self.assertIsInstance(e.exception, ValueError)
        self.assertEqual(
            (e.exception.code, e.exception.reason),
            (CloseCode.MALFORMED_PACKET, "malformed PingRequest"),
        )

    def test_unknownFieldsIgnored(self) -> None:
        """
        A request with fields it does not know still reads (protobuf rules).
        """
        payload = PingRequest(client_time=7).SerializeToString() + b"\x28\x01"
        self.assertEqual(readPingRequest(payload), 7)
