# -*- test-case-name: tests.test_ack -*-
"""
The acknowledgement state machine of one connection (Part 1.3).

All ack arithmetic lives here and none of it in the WebSocket adapter. The
object owns no transport and no timer: it is told what arrived and asked what
to put in the next outgoing packet's ack byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from aphelion.codes import CloseCode, ProtocolViolation

__all__ = ["RESERVED_ACK", "AckState", "AckViolation", "pickConnection"]

#: The ack value 255 is reserved (Part 1.3).
RESERVED_ACK = 255
_BYTES = tuple(bytes((i,)) for i in range(256))


class AckViolation(ProtocolViolation):
    """
    The peer broke the ack rules; the connection must close with C{code}.
    """


class AckState:
    """
    Ack accounting for one connection, never for a session.

    :ivar cap: the most that one outgoing packet acknowledges (254 by default;
        127 suits peers that read the byte as signed).
    :ivar limit: the most of our packets the peer may leave unacknowledged, or
        L{None} to never close with 4007 (for peers that never ack).
    :ivar unacknowledged: our sent packets with a payload, not yet acked.
    :ivar owed: the peer's packets with a payload that we have not acked yet.
    """

    __slots__ = ("cap", "limit", "owed", "unacknowledged")

    def __init__(self, cap: int = 254, limit: int | None = 1024) -> None:
        if not 1 <= cap <= 254:
            raise ValueError(f"ack cap must be 1-254, not {cap}")
        if limit is not None and limit < 1:
            raise ValueError(f"unacknowledged limit must be positive, not {limit}")
        self.cap = cap
        self.limit = limit
        self.unacknowledged = 0
        self.owed = 0

    def receive(self, packet: bytes) -> bytes:
        """
        Account for one received ProtobufPacket.

        :param packet: the whole WebSocket message: the ack byte and payload.
        :return: the payload, possibly empty.
        :raises AckViolation: with 4006 for an empty message, the reserved ack
            255, or an ack of more packets than are outstanding.
        """
        if not packet:
            raise AckViolation(CloseCode.MALFORMED_PACKET, "empty packet")
        ack = packet[0]
        if ack > self.unacknowledged or ack == RESERVED_ACK:
            if ack == RESERVED_ACK:
                raise AckViolation(CloseCode.MALFORMED_PACKET, "reserved ack 255")
            raise AckViolation(
                CloseCode.MALFORMED_PACKET, "acknowledged more than was sent"
            )
        self.unacknowledged -= ack
        if len(packet) > 1:
            self.owed += 1
            return packet[1:]
        return b""

    def nextAck(self) -> int:
        """
        Take the ack byte for the next outgoing packet.

        At most L{cap} is taken; the rest rides on the next packet.

        :return: the value of the ack byte, 0 to L{cap}.
        """
        owed = self.owed
        if owed > self.cap:
            self.owed = owed - self.cap
            return self.cap
        self.owed = 0
        return owed

    def send(self, payload: bytes) -> bytes:
        """
        Build an outgoing ProtobufPacket and account for it.

        :param payload: the payload; empty for an ack-only packet.
        :return: the message to send: the ack byte followed by C{payload}.
        :raises AckViolation: with 4007 when this packet takes the count of
            unacknowledged packets over the limit.
        """
        packet = _BYTES[self.nextAck()] + payload
        if payload:
            self.unacknowledged += 1
            if self.limit is not None and self.unacknowledged > self.limit:
                raise AckViolation(
                    CloseCode.TOO_MANY_UNACKNOWLEDGED,
                    "too many packets left unacknowledged",
                )
        return packet


C = TypeVar("C")


def _load(conn: Any) -> tuple[int, int]:
    return (conn.unacknowledged, conn.lastUsed)


def pickConnection(candidates: Iterable[C]) -> C | None:
    """
    Choose the connection for the next outbound packet of a session (Part
    1.4): the one with the fewest C{unacknowledged} packets; on a tie, the
    one used least recently (the smallest C{lastUsed}); on a tie again, the
    first.

    :param candidates: the open connections that may carry the packet.
    :return: the chosen one, or L{None} when there is none.
    """
    return min(candidates, key=_load, default=None)
