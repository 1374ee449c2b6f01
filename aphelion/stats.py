# -*- test-case-name: tests.test_stats -*-
"""
The AuthProxy's running counts: messages and bytes relayed, closes by code,
logins by result and how long seating takes.

L{Stats} is a plain object of plain integers, and the relay's hot path adds
nothing to it: Autobahn already counts the messages and bytes of each
connection (its C{trafficStats}), so L{Stats} banks those of a connection
when it closes, and L{Stats.traffic} adds the open connections' at the
moment it is asked. Closes, logins and seatings are counted as they happen,
a few times per session. The admin endpoint (L{aphelion.admin.metrics})
reads it when Prometheus scrapes; nothing here knows about Prometheus.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, NamedTuple

from aphelion.codes import CloseCode

__all__ = ["OTHER_CODE", "SEATING_BUCKETS", "Close", "Stats", "Traffic"]

#: The key under which L{Stats.closes} counts close codes that are neither
#: RFC 6455's (1000-1015) nor the contract's: a client chooses its own code,
#: and a label per code it makes up would grow the metrics without bound.
OTHER_CODE = 0

_KNOWN_CODES = frozenset(range(1000, 1016)) | frozenset(CloseCode)

#: The upper bounds, in seconds, of the seating-time histogram's buckets.
SEATING_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Close(NamedTuple):
    """
    One closed client connection.

    :ivar when: the clock's time of the close, in seconds.
    :ivar code: the WebSocket close code.
    :ivar reason: the close reason.
    """

    when: float
    code: int
    reason: str


class Traffic(NamedTuple):
    """
    Messages and bytes from and to clients.

    :ivar packetsIn: WebSocket messages received from clients (init
        packets and ProtobufPackets, ack-only ones included).
    :ivar packetsOut: WebSocket messages sent to clients (S2CInitPackets,
        ProtobufPackets, ping answers).
    :ivar bytesIn: the bytes of the messages received (WebSocket payloads,
        without framing).
    :ivar bytesOut: the bytes of the messages sent.
    """

    packetsIn: int
    packetsOut: int
    bytesIn: int
    bytesOut: int


class Stats:
    """
    Counts of one AuthProxy since it started. Every count only grows.

    :ivar packetsIn: WebSocket messages received on connections that
        have closed (see L{Traffic}).
    :ivar packetsOut: WebSocket messages sent on connections that have
        closed.
    :ivar bytesIn: the bytes of those messages received.
    :ivar bytesOut: the bytes of those messages sent.
    :ivar closes: client connections closed, by close code (L{OTHER_CODE}
        for a code that is neither RFC 6455's nor the contract's).
    :ivar recentCloses: the last L{recentLimit} closes, the newest last.
    :ivar logins: credential checks asked for, by result (C{ok},
        C{unauthorized}, C{unsupported}, C{busy}, C{broken},
        C{throttled}).
    :ivar seatingCounts: seatings that took at most each bound of
        L{SEATING_BUCKETS} (not cumulative; the last is above every bound).
    :ivar seatingSum: the seconds all seatings took.
    :ivar seatingCount: the seatings measured.
    """

    __slots__ = (
        "bytesIn",
        "bytesOut",
        "closes",
        "logins",
        "packetsIn",
        "packetsOut",
        "recentCloses",
        "seatingCount",
        "seatingCounts",
        "seatingSum",
    )

    #: How many closes L{recentCloses} keeps.
    recentLimit = 50

    def __init__(self) -> None:
        self.packetsIn = 0
        self.packetsOut = 0
        self.bytesIn = 0
        self.bytesOut = 0
        self.closes: dict[int, int] = {}
        self.recentCloses: deque[Close] = deque(maxlen=self.recentLimit)
        self.logins: dict[str, int] = {}
        self.seatingCounts = [0] * (len(SEATING_BUCKETS) + 1)
        self.seatingSum = 0.0
        self.seatingCount = 0

    def bank(self, trafficStats: Any) -> None:
        """
        Add the counts of a connection that is closing, from its Autobahn
        C{trafficStats}; call it once per connection, when it leaves the
        connections that L{traffic} is given.
        """
        self.packetsIn += trafficStats.incomingWebSocketMessages
        self.packetsOut += trafficStats.outgoingWebSocketMessages
        self.bytesIn += trafficStats.incomingOctetsAppLevel
        self.bytesOut += trafficStats.outgoingOctetsAppLevel

    def traffic(self, connections: Iterable[Any]) -> Traffic:
        """
        Every message and byte so far: those banked, plus those of the open
        C{connections} (Autobahn protocols, read through their
        C{trafficStats}).
        """
        packetsIn, packetsOut = self.packetsIn, self.packetsOut
        bytesIn, bytesOut = self.bytesIn, self.bytesOut
        for connection in connections:
            counts = connection.trafficStats
            packetsIn += counts.incomingWebSocketMessages
            packetsOut += counts.outgoingWebSocketMessages
            bytesIn += counts.incomingOctetsAppLevel
            bytesOut += counts.outgoingOctetsAppLevel
        return Traffic(packetsIn, packetsOut, bytesIn, bytesOut)

    def closed(self, when: float, code: int, reason: str) -> None:
        """
        Count a client connection closed with C{code}.

        :param when: the clock's time now.
        """
        key = code if code in _KNOWN_CODES else OTHER_CODE
        self.closes[key] = self.closes.get(key, 0) + 1
        self.recentCloses.append(Close(when, code, reason))

    def login(self, result: str) -> None:
        """
        Count a credential check's C{result}.
        """
        self.logins[result] = self.logins.get(result, 0) + 1

    def seated(self, seconds: float) -> None:
        """
        Count a seating that took C{seconds}, from picking a game server to
        being seated on it.
        """
        index = len(SEATING_BUCKETS)
        for i, bound in enumerate(SEATING_BUCKETS):
            if seconds <= bound:
                index = i
                break
        self.seatingCounts[index] += 1
        self.seatingSum += seconds
        self.seatingCount += 1

    def seatingBuckets(self) -> list[tuple[str, int]]:
        """
        The seating-time histogram as Prometheus reads it: cumulative
        counts by upper bound, C{+Inf} last.
        """
        buckets = []
        total = 0
        for bound, count in zip(SEATING_BUCKETS, self.seatingCounts, strict=False):
            total += count
            buckets.append((repr(bound), total))
        buckets.append(("+Inf", self.seatingCount))
        return buckets
