# -*- test-case-name: tests.test_integration_arena_browser -*-
"""
The arena page in a real headless Chromium: C{clients/js/e2e/arena-browser.js}
drives it over WebDriver against a real aphelion with the arena game, bots
moving about: holding a key moves the player's dot. The screenshot is kept
under C{_trial_temp}; the test log says where.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from tests.browser import APHELION, runScript, skipUnlessBrowser
from tests.test_js import startAphelion

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
        skipUnlessBrowser(self)
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
        await runScript(
            self,
            SCRIPT,
            {"APHELION_PORT": str(port), "APHELION_CLI": APHELION},
            screenshot,
            seconds=90,
            shows="arena page",
        )
