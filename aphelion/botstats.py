# -*- test-case-name: tests.test_bots -*-
"""
The figures of L{aphelion.bots}: what a player of the arena feels, as plain
classes (events in, figures out; no Twisted): L{Histogram} of latencies and
intervals, L{PlayerFeel} of one bot, and L{Report}, which sums up many and
merges the reports of several processes.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

__all__ = ["Histogram", "PlayerFeel", "Report"]


class Histogram:
    """
    Durations in milliseconds, kept in buckets of L{resolution} ms so that
    the histograms of several processes merge exactly, with the exact count,
    sum and sum of squares beside them.

    :cvar resolution: the width of a bucket, ms.
    """

    resolution = 0.1

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.squares = 0.0

    def add(self, ms: float) -> None:
        """
        Record one duration.
        """
        bucket = int(ms / self.resolution)
        self.buckets[bucket] = self.buckets.get(bucket, 0) + 1
        self.count += 1
        self.total += ms
        self.squares += ms * ms

    def merge(self, other: Histogram) -> None:
        """
        Add every duration of C{other} to this one.
        """
        for bucket, count in other.buckets.items():
            self.buckets[bucket] = self.buckets.get(bucket, 0) + count
        self.count += other.count
        self.total += other.total
        self.squares += other.squares

    def percentile(self, fraction: float) -> float | None:
        """
        The duration below which C{fraction} of them fall (the upper edge of
        its bucket), or L{None} when there are none.
        """
        if not self.count:
            return None
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return (bucket + 1) * self.resolution
        raise AssertionError("counts do not add up")  # pragma: no cover

    @property
    def mean(self) -> float | None:
        """
        The mean duration, or L{None} when there are none.
        """
        return self.total / self.count if self.count else None

    @property
    def stdev(self) -> float | None:
        """
        The standard deviation (of the population), or L{None} when there
        are none.
        """
        if not self.count:
            return None
        mean = self.total / self.count
        return math.sqrt(max(0.0, self.squares / self.count - mean * mean))

    def toDict(self) -> dict[str, Any]:
        """
        A JSON-able form, for L{fromDict}.
        """
        return {
            "resolution": self.resolution,
            "buckets": {str(k): v for k, v in sorted(self.buckets.items())},
            "count": self.count,
            "total": self.total,
            "squares": self.squares,
        }

    @classmethod
    def fromDict(cls, data: dict[str, Any]) -> Histogram:
        """
        The histogram that L{toDict} described.

        :raises ValueError: if it was kept at another resolution.
        """
        if data["resolution"] != cls.resolution:
            raise ValueError("histograms of another resolution do not merge")
        histogram = cls()
        histogram.buckets = {int(k): int(v) for k, v in data["buckets"].items()}
        histogram.count = int(data["count"])
        histogram.total = float(data["total"])
        histogram.squares = float(data["squares"])
        return histogram


class Report:
    """
    What a group of bots felt while it was recording.

    :ivar recording: whether events are counted now (the measured window).
    :ivar players: bots in the group.
    :ivar joined: bots that were seated.
    :ivar seconds: the length of the measured window.
    :ivar snapshots: snapshots received.
    :ivar inputs: inputs sent.
    :ivar acknowledged: inputs sent while recording that a snapshot showed
        applied (their latency is measured).
    :ivar missingTicks: ticks missing between consecutive snapshots.
    :ivar reordered: snapshots whose tick was not after the last one's.
    :ivar reconnects: connections opened again after one was lost.
    :ivar fewestSnapshots: the fewest snapshots one seated bot received, or
        L{None} before the end.
    :ivar latency: input-to-snapshot latencies, ms.
    :ivar interval: intervals between consecutive snapshots, ms.
    """

    _COUNTS = (
        "players",
        "joined",
        "snapshots",
        "inputs",
        "acknowledged",
        "missingTicks",
        "reordered",
        "reconnects",
    )

    def __init__(self) -> None:
        self.recording = False
        self.players = 0
        self.joined = 0
        self.seconds = 0.0
        self.snapshots = 0
        self.inputs = 0
        self.acknowledged = 0
        self.missingTicks = 0
        self.reordered = 0
        self.reconnects = 0
        self.fewestSnapshots: int | None = None
        self.latency = Histogram()
        self.interval = Histogram()

    def merge(self, other: Report) -> None:
        """
        Add the counts and durations of C{other}, a report of another group
        over the same window.
        """
        for name in self._COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds = max(self.seconds, other.seconds)
        fewest = [
            n for n in (self.fewestSnapshots, other.fewestSnapshots) if n is not None
        ]
        self.fewestSnapshots = min(fewest) if fewest else None
        self.latency.merge(other.latency)
        self.interval.merge(other.interval)

    def toDict(self) -> dict[str, Any]:
        """
        A JSON-able form, for L{fromDict}.
        """
        data: dict[str, Any] = {name: getattr(self, name) for name in self._COUNTS}
        data["seconds"] = self.seconds
        data["fewest_snapshots"] = self.fewestSnapshots
        data["latency"] = self.latency.toDict()
        data["interval"] = self.interval.toDict()
        data["summary"] = self.summary()
        return data

    @classmethod
    def fromDict(cls, data: dict[str, Any]) -> Report:
        """
        The report that L{toDict} described.
        """
        report = cls()
        for name in cls._COUNTS:
            setattr(report, name, int(data[name]))
        report.seconds = float(data["seconds"])
        fewest = data.get("fewest_snapshots")
        report.fewestSnapshots = None if fewest is None else int(fewest)
        report.latency = Histogram.fromDict(data["latency"])
        report.interval = Histogram.fromDict(data["interval"])
        return report

    def summary(self) -> dict[str, float | int | None]:
        """
        The headline figures: snapshots per player per second, the interval's
        p50, p99 and jitter (standard deviation), the latency's p50 and p99
        (ms), missing ticks and reconnects.
        """
        perPlayer = None
        if self.joined and self.seconds:
            perPlayer = self.snapshots / self.joined / self.seconds
        return {
            "players": self.players,
            "joined": self.joined,
            "snapshots_per_player_s": perPlayer,
            "interval_p50_ms": self.interval.percentile(0.5),
            "interval_p99_ms": self.interval.percentile(0.99),
            "jitter_ms": self.interval.stdev,
            "latency_p50_ms": self.latency.percentile(0.5),
            "latency_p99_ms": self.latency.percentile(0.99),
            "inputs": self.inputs,
            "acknowledged": self.acknowledged,
            "missing_ticks": self.missingTicks,
            "reconnects": self.reconnects,
            "fewest_snapshots": self.fewestSnapshots,
        }


class PlayerFeel:
    """
    What one player feels, from its inputs and the snapshots it receives;
    counted into a L{Report} while that records.

    :ivar lastTick: the tick of the last snapshot, or L{None}.
    :ivar snapshots: the snapshots it received while the report recorded.
    """

    def __init__(self, report: Report) -> None:
        self._report = report
        self._pending: deque[tuple[int, float, bool]] = deque()
        self._lastArrival: float | None = None
        self.lastTick: int | None = None
        self.snapshots = 0

    def inputSent(self, seq: int, now: float) -> None:
        """
        Called when an input with C{seq} (larger than every earlier one) is
        sent at C{now}, in seconds.
        """
        recording = self._report.recording
        self._pending.append((seq, now, recording))
        if recording:
            self._report.inputs += 1

    def snapshotReceived(self, tick: int, ack: int, now: float) -> None:
        """
        Called when a snapshot of C{tick} arrives at C{now} (seconds) and says
        that the input C{ack} was the last one applied.
        """
        report = self._report
        recording = report.recording
        pending = self._pending
        while pending and pending[0][0] <= ack:
            # An input sent while recording counts even if the snapshot that
            # applied it came after the end of the window.
            _, sent, counted = pending.popleft()
            if counted:
                report.latency.add((now - sent) * 1000.0)
                report.acknowledged += 1
        last, self.lastTick = self.lastTick, tick
        lastArrival, self._lastArrival = self._lastArrival, now
        if not recording:
            return
        report.snapshots += 1
        self.snapshots += 1
        if last is not None:
            if tick <= last:
                report.reordered += 1
            elif tick > last + 1:
                report.missingTicks += tick - last - 1
        if lastArrival is not None:
            report.interval.add((now - lastArrival) * 1000.0)

    def reconnected(self) -> None:
        """
        Called when the bot opened its connection again after losing it.
        """
        if self._report.recording:
            self._report.reconnects += 1
