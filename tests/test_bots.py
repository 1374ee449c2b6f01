# -*- test-case-name: tests.test_bots -*-
"""
Tests of L{aphelion.bots}'s figures: L{Histogram}, L{PlayerFeel} and
L{Report}, and the options of C{aphelion bots}.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from aphelion.bots import Histogram, PlayerFeel, Report
from aphelion.cli import Options


class HistogramTests(SynchronousTestCase):
    """
    Durations in buckets.
    """

    def test_empty(self) -> None:
        """
        An empty histogram has no percentiles, mean or deviation.
        """
        histogram = Histogram()
        self.assertIsNone(histogram.percentile(0.5))
        self.assertIsNone(histogram.mean)
        self.assertIsNone(histogram.stdev)

    def test_percentiles(self) -> None:
        """
        A percentile is the upper edge of the bucket that holds the value of
        that rank.
        """
        histogram = Histogram()
        for ms in range(1, 101):
            histogram.add(ms - 0.05)
        self.assertAlmostEqual(histogram.percentile(0.5) or 0, 50.0)
        self.assertAlmostEqual(histogram.percentile(0.99) or 0, 99.0)
        self.assertAlmostEqual(histogram.percentile(1.0) or 0, 100.0)
        self.assertAlmostEqual(histogram.mean or 0, 50.45)

    def test_stdev(self) -> None:
        """
        The deviation is exact, from the sums, not from the buckets.
        """
        histogram = Histogram()
        for ms in (40.0, 60.0, 40.0, 60.0):
            histogram.add(ms)
        self.assertAlmostEqual(histogram.stdev or 0, 10.0)

    @given(
        st.lists(st.floats(min_value=0, max_value=5000)),
        st.lists(st.floats(min_value=0, max_value=5000)),
    )
    def test_mergeIsUnion(self, first: list[float], second: list[float]) -> None:
        """
        Merging two histograms, also through their JSON form, gives the
        histogram of all their durations.
        """
        a, b, together = Histogram(), Histogram(), Histogram()
        for ms in first:
            a.add(ms)
            together.add(ms)
        for ms in second:
            b.add(ms)
            together.add(ms)
        a.merge(Histogram.fromDict(json.loads(json.dumps(b.toDict()))))
        self.assertEqual(a.buckets, together.buckets)
        self.assertEqual(a.count, together.count)
        for fraction in (0.5, 0.99):
            self.assertEqual(a.percentile(fraction), together.percentile(fraction))


class PlayerFeelTests(SynchronousTestCase):
    """
    What one player feels.
    """

    def setUp(self) -> None:
        self.report = Report()
        self.report.recording = True
        self.feel = PlayerFeel(self.report)

    def test_intervals(self) -> None:
        """
        The interval between consecutive snapshots is recorded, in ms.
        """
        for tick, now in ((1, 1.0), (2, 1.05), (3, 1.11)):
            self.feel.snapshotReceived(tick, 0, now)
        self.assertEqual(self.report.snapshots, 3)
        self.assertEqual(self.report.interval.count, 2)
        self.assertAlmostEqual(self.report.interval.mean or 0, 55.0)
        self.assertEqual(self.report.missingTicks, 0)

    def test_missingTicks(self) -> None:
        """
        A gap in the tick numbers counts the ticks missing; a tick that is
        not after the last one counts as reordered.
        """
        for tick in (1, 2, 5, 6, 9, 9):
            self.feel.snapshotReceived(tick, 0, float(tick))
        self.assertEqual(self.report.missingTicks, 4)
        self.assertEqual(self.report.reordered, 1)

    def test_latency(self) -> None:
        """
        An input's latency runs from its sending to the first snapshot that
        acknowledges it or a later input; a later snapshot does not count it
        again.
        """
        self.feel.inputSent(1, 10.0)
        self.feel.inputSent(2, 10.02)
        self.feel.inputSent(3, 10.04)
        self.feel.snapshotReceived(1, 0, 10.03)
        self.feel.snapshotReceived(2, 2, 10.05)
        self.feel.snapshotReceived(3, 2, 10.1)
        self.feel.snapshotReceived(4, 3, 10.15)
        self.assertEqual((self.report.inputs, self.report.acknowledged), (3, 3))
        self.assertAlmostEqual(self.report.latency.total, 50 + 30 + 110, places=6)
        # The upper edge of the 0.1 ms bucket that holds 110 ms.
        self.assertAlmostEqual(self.report.latency.percentile(1.0) or 0, 110.1)

    def test_window(self) -> None:
        """
        Only what happens while the report records is counted, but an input
        sent in the window counts even when its snapshot comes after it.
        """
        self.report.recording = False
        self.feel.inputSent(1, 0.0)
        self.feel.snapshotReceived(1, 1, 0.05)
        self.feel.reconnected()
        self.report.recording = True
        self.feel.inputSent(2, 0.1)
        self.feel.snapshotReceived(2, 1, 0.1)
        self.report.recording = False
        self.feel.snapshotReceived(3, 2, 0.15)
        self.assertEqual(self.report.snapshots, 1)
        self.assertEqual(self.report.interval.count, 1)
        self.assertEqual((self.report.inputs, self.report.acknowledged), (1, 1))
        self.assertAlmostEqual(self.report.latency.total, 50.0)
        self.assertEqual(self.report.reconnects, 0)
        self.report.recording = True
        self.feel.reconnected()
        self.assertEqual(self.report.reconnects, 1)


class ReportTests(SynchronousTestCase):
    """
    Reports of groups of bots, merged.
    """

    def test_mergeThroughJSON(self) -> None:
        """
        Two reports merged through their JSON form add up, and the summary
        gives snapshots per player per second and the percentiles.
        """
        reports = []
        for players in (2, 3):
            report = Report()
            report.players = report.joined = players
            report.seconds = 10.0
            report.snapshots = players * 200
            report.missingTicks = 1
            report.latency.add(30.0)
            report.interval.add(50.0)
            reports.append(report)
        merged = Report.fromDict(json.loads(json.dumps(reports[0].toDict())))
        merged.merge(Report.fromDict(json.loads(json.dumps(reports[1].toDict()))))
        summary = merged.summary()
        self.assertEqual(summary["players"], 5)
        self.assertEqual(summary["missing_ticks"], 2)
        self.assertAlmostEqual(summary["snapshots_per_player_s"] or 0, 20.0)
        self.assertAlmostEqual(summary["latency_p99_ms"] or 0, 30.1)
        self.assertAlmostEqual(summary["interval_p50_ms"] or 0, 50.1)


class BotsOptionsTests(SynchronousTestCase):
    """
    C{aphelion bots} options.
    """

    def test_options(self) -> None:
        """
        The URL, count, game, seconds and input rate are taken, options
        after the URL too.
        """
        options = Options()
        options.parseOptions(
            [
                "bots",
                "ws://127.0.0.1:1/aphelion",
                "--count",
                "5",
                "--seconds",
                "2",
                "--game",
                "arena",
                "--input-hz",
                "20",
            ]
        )
        sub = options.subOptions
        self.assertEqual(
            (sub["url"], sub["count"], sub["game"], sub["seconds"], sub["input-hz"]),
            ("ws://127.0.0.1:1/aphelion", 5, "arena", 2.0, 20.0),
        )

    def test_unknownGame(self) -> None:
        """
        A game the bots cannot play is refused.
        """
        self.assertRaises(
            usage.UsageError,
            Options().parseOptions,
            ["bots", "ws://127.0.0.1:1/aphelion", "--game", "chess"],
        )
