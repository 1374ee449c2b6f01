# -*- test-case-name: tests.test_integration_arena -*-
"""
The arena with real processes: C{twistd aphelion} with the arena game and
two game servers on loopback, and C{aphelion bots} playing it for a few
seconds in a process of its own.
"""

from __future__ import annotations

import json
import os
import sys

from twisted.trial.unittest import TestCase

from tests.test_js import runProcess, startAphelion

APHELION = os.path.join(os.path.dirname(sys.executable), "aphelion")


class ArenaBotsTests(TestCase):
    """
    Bots play the arena through a real AuthProxy.
    """

    timeout = 60

    async def test_botsGetEveryTick(self) -> None:
        """
        Six bots log in, steer for 3 seconds at 10 inputs a second and every
        one of them receives consecutive ticks at 20 Hz: no tick missing or
        out of order, about 60 snapshots each, and its inputs are seen
        applied.
        """
        port = await startAphelion(
            self, "--game", "aphelion.games.arena", gameServers=2
        )
        seconds = 3.0
        code, output = await runProcess(
            APHELION,
            [
                "bots",
                f"ws://127.0.0.1:{port}/aphelion",
                "--count",
                "6",
                "--game",
                "arena",
                "--seconds",
                str(seconds),
                "--warmup",
                "0.5",
                "--json",
                "--seed",
                "1",
            ],
            {},
            seconds=40,
        )
        self.assertEqual(code, 0, output)
        [line] = [line for line in output.splitlines() if line.startswith("{")]
        report = json.loads(line)
        summary = report["summary"]
        self.assertEqual((summary["players"], summary["joined"]), (6, 6), output)
        self.assertEqual(summary["missing_ticks"], 0, output)
        self.assertEqual(report["reordered"], 0, output)
        self.assertEqual(summary["reconnects"], 0, output)
        # 20 Hz for 3 s, give or take the edges of the window.
        self.assertGreaterEqual(summary["fewest_snapshots"], 55, output)
        self.assertLessEqual(report["snapshots"], 6 * 62, output)
        self.assertGreater(summary["acknowledged"], 6 * 25, output)
        self.assertLess(summary["latency_p50_ms"], 100, output)
        self.assertGreater(summary["interval_p50_ms"], 40, output)
        self.assertLess(summary["interval_p50_ms"], 60, output)
