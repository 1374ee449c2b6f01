# -*- test-case-name: tests.test_integration_browser -*-
"""
The chat page in a real headless Chromium: C{clients/js/e2e/chat-browser.js}
drives it over WebDriver (Debian's C{chromium} and C{chromium-driver})
against a real aphelion started here, with a terminal C{aphelion chat} in
the room. The screenshot of the chat page is kept under C{_trial_temp}; the
test log says where.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.test_js import NODE, reactor, runProcess, startAphelion

_log = Logger()

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
APHELION = os.path.join(os.path.dirname(sys.executable), "aphelion")
SCRIPT = "clients/js/e2e/chat-browser.js"


def _missing() -> str | None:
    """
    :return: why the browser test cannot run here, or L{None}.
    """
    if NODE is None:
        return "node is not installed"
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium)"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


class ChatPageTests(TestCase):
    """
    Two browser pages and a terminal in the chat; cut sockets resume.
    """

    timeout = 180

    async def test_chatInChromium(self) -> None:
        """
        Two pages log in and chat with each other and with C{aphelion
        chat}; when their sockets are cut they resume their sessions with
        their tokens, keep their seats and get what was said meanwhile; a
        reloaded page resumes too. A screenshot of the chat page is saved.
        """
        missing = _missing()
        if missing is not None:
            raise self.skipTest(missing)
        assert NODE is not None and CHROMIUM is not None and CHROMEDRIVER is not None
        port = await startAphelion(self, "--seating", "fill")
        screenshot = os.path.abspath(self.mktemp()) + "-chat.png"
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
            seconds=150,
        )
        _log.info(
            "{script}: exit {code} in {elapsed:.1f} s; screenshot of the chat "
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
