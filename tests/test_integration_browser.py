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

from twisted.trial.unittest import TestCase

from tests.browser import APHELION, runScript, skipUnlessBrowser
from tests.test_js import startAphelion

SCRIPT = "clients/js/e2e/chat-browser.js"


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
        skipUnlessBrowser(self)
        port = await startAphelion(self, "--seating", "fill")
        screenshot = os.path.abspath(self.mktemp()) + "-chat.png"
        os.makedirs(os.path.dirname(screenshot), exist_ok=True)
        await runScript(
            self,
            SCRIPT,
            {"APHELION_PORT": str(port), "APHELION_CLI": APHELION},
            screenshot,
            seconds=150,
            shows="chat page",
        )
