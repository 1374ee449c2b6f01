# -*- test-case-name: tests.test_ack -*-
"""
Tests of L{aphelion.ack}.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aphelion.ack import AckState, AckViolation, pickConnection
from aphelion.codes import CloseCode, ProtocolViolation


class AckStateTests(SynchronousTestCase):
    """
    Tests of L{AckState}.
    """

    def test_seedExample(self) -> None:
        """
        The worked example of the seed document: two payloads are acked by 2,
        the ack-only reply is not counted, and one more payload is acked by 1.
        """
        server, client = AckState(), AckState()
        for packet in (b"\x00\x12\x34", b"\x00\x45\x67"):
            client.unacknowledged += 1
            self.assertEqual(server.receive(packet), packet[1:])
        first = server.send(b"\x43\x21")
        second = server.send(b"\x89\xab")
        self.assertEqual((first, second), (b"\x02\x43\x21", b"\x00\x89\xab"))
        client.receive(first)
        client.receive(second)
        self.assertEqual(client.send(b""), b"\x02")
        self.assertEqual(server.unacknowledged, 2)
        server.receive(b"\x02")
        self.assertEqual(server.unacknowledged, 0)
        self.assertEqual(server.send(b"\x67\x89"), b"\x00\x67\x89")
        client.receive(b"\x00\x67\x89")
        self.assertEqual(client.send(b""), b"\x01")

    def test_emptyMessage(self) -> None:
        """
        A message of 0 bytes is a violation with 4006.
        """
        with self.assertRaises(AckViolation) as e:
            AckState().receive(b"")
        self.assertEqual(e.exception.code, CloseCode.MALFORMED_PACKET)

    def test_violationIsProtocolViolation(self) -> None:
        """
        An L{AckViolation} is the one L{ProtocolViolation}, carrying the close
        code and reason, so an adapter closes with what any core raises.
        """
        with self.assertRaises(ProtocolViolation) as e:
            AckState().receive(b"")
        self.assertIsInstance(e.exception, AckViolation)
        self.assertEqual(
            (e.exception.code, e.exception.reason),
            (CloseCode.MALFORMED_PACKET, "empty packet"),
        )

    def test_reservedAck(self) -> None:
        """
        The ack value 255 is reserved: 4006, even with 255 packets outstanding.
        """
        acks = AckState(limit=None)
        for _ in range(300):
            acks.send(b"x")
        with self.assertRaises(AckViolation) as e:
            acks.receive(b"\xff")
        self.assertEqual(e.exception.code, CloseCode.MALFORMED_PACKET)
        self.assertEqual(e.exception.reason, "reserved ack 255")

    def test_overAck(self) -> None:
        """
        Acknowledging more packets than were sent and not yet acked is 4006.
        """
        acks = AckState()
        acks.send(b"a")
        acks.receive(b"\x01")
        with self.assertRaises(AckViolation) as e:
            acks.receive(b"\x01")
        self.assertEqual(e.exception.code, CloseCode.MALFORMED_PACKET)

    def test_emptyPayloadNotCounted(self) -> None:
        """
        Ack-only packets never add to what is owed; payloads add one each.
        """
        acks = AckState()
        self.assertEqual(acks.receive(b"\x00"), b"")
        self.assertEqual(acks.owed, 0)
        acks.receive(b"\x00p")
        self.assertEqual(acks.owed, 1)

    def test_ackOnlyNotCountedAsSent(self) -> None:
        """
        Sending an ack-only packet does not add to the unacknowledged count.
        """
        acks = AckState()
        acks.send(b"")
        self.assertEqual(acks.unacknowledged, 0)

    def test_cap254(self) -> None:
        """
        At most 254 are acked per packet by default; the rest rides on the
        next packet.
        """
        acks = AckState()
        for _ in range(300):
            acks.receive(b"\x00p")
        self.assertEqual(acks.send(b"")[0], 254)
        self.assertEqual(acks.send(b"")[0], 46)
        self.assertEqual(acks.send(b"")[0], 0)

    def test_capConfigurable(self) -> None:
        """
        A cap of 127 suits peers that read the ack byte as signed.
        """
        acks = AckState(cap=127)
        for _ in range(200):
            acks.receive(b"\x00p")
        self.assertEqual(acks.nextAck(), 127)
        self.assertEqual(acks.nextAck(), 73)

    def test_limit1024(self) -> None:
        """
        The 1025th unacknowledged packet is a violation with 4007.
        """
        acks = AckState()
        for _ in range(1024):
            acks.send(b"p")
        with self.assertRaises(AckViolation) as e:
            acks.send(b"p")
        self.assertEqual(e.exception.code, CloseCode.TOO_MANY_UNACKNOWLEDGED)

    def test_limitOff(self) -> None:
        """
        With no limit, a peer that never acks is never a violation.
        """
        acks = AckState(limit=None)
        for _ in range(5000):
            acks.send(b"p")
        self.assertEqual(acks.unacknowledged, 5000)

    def test_badSettings(self) -> None:
        """
        Caps outside 1..254 and limits below 1 are refused.
        """
        for cap in (0, 255):
            self.assertRaises(ValueError, AckState, cap=cap)
        self.assertRaises(ValueError, AckState, limit=0)

    @settings(max_examples=200)
    @given(st.lists(st.binary(max_size=4)), st.integers(1, 254))
    def test_ackConservation(self, packets: list[bytes], cap: int) -> None:
        """
        Whatever arrives, every payload received is acked exactly once over
        the packets sent, and no packet acks more than the cap.
        """
        acks = AckState(cap=cap)
        received = 0
        for packet in packets:
            try:
                if acks.receive(b"\x00" + packet):
                    received += 1
            except AckViolation:  # pragma: no cover - ack 0 is always fine
                self.fail("ack 0 refused")
        total = 0
        while acks.owed:
            ack = acks.send(b"")[0]
            self.assertLessEqual(ack, cap)
            total += ack
        self.assertEqual(total, received)

    @settings(max_examples=200)
    @given(st.binary(max_size=3), st.integers(0, 300))
    def test_arbitraryPackets(self, packet: bytes, sent: int) -> None:
        """
        Arbitrary bytes either return the payload or raise L{AckViolation}
        with 4006, and never leave the count negative.
        """
        acks = AckState(limit=None)
        for _ in range(sent):
            acks.send(b"x")
        try:
            payload = acks.receive(packet)
        except AckViolation as e:
            self.assertEqual(e.code, CloseCode.MALFORMED_PACKET)
        else:
            self.assertEqual(payload, packet[1:])
        self.assertGreaterEqual(acks.unacknowledged, 0)


class PickConnectionTests(SynchronousTestCase):
    """
    Tests of L{pickConnection}.
    """

    def test_fewestUnacknowledgedThenLeastRecent(self) -> None:
        """
        The fewest unacknowledged packets win; on a tie the least recently
        used; on a tie again the first; none gives L{None}.
        """

        class Conn:
            def __init__(self, unacknowledged: int, lastUsed: int) -> None:
                self.unacknowledged, self.lastUsed = unacknowledged, lastUsed

        a, b, c, d = Conn(2, 0), Conn(1, 5), Conn(1, 3), Conn(1, 3)
        self.assertIs(pickConnection([a, b, c, d]), c)
        self.assertIs(pickConnection([a]), a)
        self.assertIsNone(pickConnection([]))
