# -*- test-case-name: tests.test_gctune -*-
"""
Tests of L{aphelion.gctune}.
"""

from __future__ import annotations

import gc

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from aphelion.game.child import Options
from aphelion.gctune import DEFAULT_THRESHOLD, tuneCollector


class FakeCollector:
    """
    Records what is asked of the C{gc} module.
    """

    def __init__(self) -> None:
        self.thresholds = (700, 10, 10)
        self.frozen = 0

    def freeze(self) -> None:
        self.frozen += 1

    def get_threshold(self) -> tuple[int, int, int]:
        return self.thresholds

    def set_threshold(self, *thresholds: int) -> None:
        self.thresholds = thresholds  # type: ignore[assignment]


class TuneCollectorTests(SynchronousTestCase):
    """
    L{tuneCollector} freezes what exists and raises the young threshold.
    """

    def test_default(self) -> None:
        """
        By default the young threshold becomes L{DEFAULT_THRESHOLD}, the
        older ones stay, and the objects made so far are frozen.
        """
        collector = FakeCollector()
        tuneCollector(collector=collector)
        self.assertEqual(collector.thresholds, (DEFAULT_THRESHOLD, 10, 10))
        self.assertEqual(collector.frozen, 1)

    def test_given(self) -> None:
        """
        The threshold given is set.
        """
        collector = FakeCollector()
        tuneCollector(1234, collector=collector)
        self.assertEqual(collector.thresholds, (1234, 10, 10))

    def test_zeroLeavesAlone(self) -> None:
        """
        0 changes nothing.
        """
        collector = FakeCollector()
        tuneCollector(0, collector=collector)
        self.assertEqual((collector.thresholds, collector.frozen), ((700, 10, 10), 0))

    def test_negative(self) -> None:
        """
        A negative threshold is refused.
        """
        self.assertRaises(ValueError, tuneCollector, -1, collector=FakeCollector())

    def test_realCollector(self) -> None:
        """
        The real C{gc} module takes it.
        """
        before = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *before)
        self.addCleanup(gc.unfreeze)
        tuneCollector(5000)
        self.assertEqual(gc.get_threshold(), (5000, *before[1:]))
        self.assertGreater(gc.get_freeze_count(), 0)


class ChildOptionTests(SynchronousTestCase):
    """
    The game server's C{--gc-threshold}.
    """

    def test_default(self) -> None:
        """
        By default it is L{DEFAULT_THRESHOLD}; it takes a number.
        """
        options = Options()
        options.parseOptions(["--game", "aphelion.games.echo"])
        self.assertEqual(options["gc-threshold"], DEFAULT_THRESHOLD)
        options = Options()
        options.parseOptions(["--game", "aphelion.games.echo", "--gc-threshold", "0"])
        self.assertEqual(options["gc-threshold"], 0)

    def test_negative(self) -> None:
        """
        A negative threshold is a usage error.
        """
        self.assertRaises(
            UsageError,
            Options().parseOptions,
            ["--game", "aphelion.games.echo", "--gc-threshold", "-1"],
        )
