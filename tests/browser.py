# -*- test-case-name: tests.test_integration_browser -*-
"""
What the browser tests share: finding Chromium and chromedriver, and
running one of the C{clients/js/e2e} scripts (which drive Chromium over
WebDriver, see C{clients/js/e2e/webdriver.js}) against a running aphelion,
its output logged and its screenshot checked.

Usage in a trial test::

    from tests.browser import runScript, skipUnlessBrowser

    async def test_x(self) -> None:
        skipUnlessBrowser(self)
        port = await startAphelion(self)
        await runScript(self, "clients/js/e2e/x.js", {...}, "x.png", 90, "x")
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.test_js import NODE, reactor, runProcess

__all__ = ["APHELION", "CHROMEDRIVER", "CHROMIUM", "missing", "runScript"]

_log = Logger()

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
APHELION = os.path.join(os.path.dirname(sys.executable), "aphelion")


def missing() -> str | None:
    """
    :return: why the browser tests cannot run here, or L{None}.
    """
    if NODE is None:
        return "node is not installed"
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium)"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def skipUnlessBrowser(test: TestCase) -> None:
    """
    Skip C{test}, with the reason, when L{missing} says why it cannot run.
    """
    reason = missing()
    if reason is not None:
        raise test.skipTest(reason)


async def runScript(
    test: TestCase,
    script: str,
    env: dict[str, str],
    screenshot: str,
    seconds: float,
    shows: str,
) -> None:
    """
    Run the Node script C{script} with C{env} (and where Chromium and
    chromedriver are); log its output and where its screenshot is; fail
    C{test} with the output when the script fails, and check that it saved
    a screenshot.

    :param screenshot: the PNG the script writes (its C{SCREENSHOT}).
    :param seconds: how long the script may run before it is stopped.
    :param shows: what the screenshot shows, for the log.
    """
    assert NODE is not None and CHROMIUM is not None and CHROMEDRIVER is not None
    start: Any = reactor.seconds()
    code, output = await runProcess(
        NODE,
        [script],
        {
            **env,
            "SCREENSHOT": screenshot,
            "CHROMIUM": os.path.realpath(CHROMIUM),
            "CHROMEDRIVER": CHROMEDRIVER,
        },
        seconds=seconds,
    )
    _log.info(
        "{script}: exit {code} in {elapsed:.1f} s; screenshot of the {shows}: "
        "{screenshot}\n{output}",
        script=script,
        code=code,
        elapsed=reactor.seconds() - start,
        shows=shows,
        screenshot=screenshot,
        output=output,
    )
    if code != 0:
        test.fail(f"{script} failed ({code}):\n{output[-20000:]}")
    test.assertTrue(os.path.getsize(screenshot) > 1000, screenshot)
