# -*- test-case-name: tests.test_integration_arena_browser -*-
"""
The arena page in a real headless Chromium: C{clients/js/e2e/arena-browser.js}
drives it over WebDriver against a real aphelion with the arena game, bots
moving about: holding a key moves the player's dot. The screenshot is kept
under C{_trial_temp}; the test log says where.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.test_integration_browser import (
    APHELION,
    CHROMEDRIVER,
    CHROMIUM,
    _missing,
)
from tests.test_js import NODE, reactor, runProcess, startAphelion

_log = Logger()

SCRIPT = "clients/js/e2e/arena-browser.js"


class ArenaPageTests(TestCase):
    """
    The arena page, played with the keyboard.
    """

    timeout = 120

    async def test_dotMovesInChromium(self) -> None:
        """
        The index page links to the arena; the page logs in, draws the bots
        from the snapshots, and holding the right arrow (or C{w}) moves the
        player's dot that way; the round-trip time and the input latency are
        shown. A screenshot is saved.
        """
        missing = _missing()
        if missing is not None:
            raise self.skipTest(missing)
        assert NODE is not None and CHROMIUM is not None and CHROMEDRIVER is not None
        # A small field that is one interest cell, so that the page sees
        # every bot wherever they wander.
        port = await startAphelion(
            self,
            "--game",
            "aphelion.games.arena",
            "--game-option",
            "size=400",
            "--game-option",
            "interest=400",
        )
        screenshot = os.path.abspath(self.mktemp()) + "-arena.png"
        os.makedirs(os.path.dirname(screenshot), exist_ok=True)
        start: Any = reactor.seconds()
        code, output = await runProcess(
            NODE,
            [SCRIPT],
            {
                "APHELION_PORT": str(port),
                "APHELION_CLI": APHELION,
                "SCREENSHOT": screenshot,
                "CHROMIUM": os.path.realpath(CHROMIUM),
                "CHROMEDRIVER": CHROMEDRIVER,
            },
            seconds=90,
        )
        _log.info(
            "{script}: exit {code} in {elapsed:.1f} s; screenshot of the arena "
            "page: {screenshot}\n{output}",
            script=SCRIPT,
            code=code,
            elapsed=reactor.seconds() - start,
            screenshot=screenshot,
            output=output,
        )
        if code != 0:
            self.fail(f"{SCRIPT} failed ({code}):\n{output[-20000:]}")
        self.assertTrue(os.path.getsize(screenshot) > 1000, screenshot)
