# -*- test-case-name: tests.test_integration_admin_browser -*-
"""
The admin dashboard in a real headless Chromium:
C{clients/js/e2e/admin-dashboard.js} drives it over WebDriver (Debian's
C{chromium} and C{chromium-driver}) against a real C{twistd aphelion
--admin} with two game servers started here, and seats a player of its
own. The screenshot of the dashboard is kept under C{_trial_temp}; the test
log says where.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.test_integration_browser import CHROMEDRIVER, CHROMIUM, _missing
from tests.test_js import NODE, reactor, runProcess, startAphelion

_log = Logger()

SCRIPT = "clients/js/e2e/admin-dashboard.js"
TOKEN = "browser-admin-token-0123456789"


def freePort() -> int:
    """
    A port free on 127.0.0.1 now, found by binding port 0.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DashboardTests(TestCase):
    """
    The dashboard shows the game servers and a player, charts the traffic
    and kicks the player.
    """

    timeout = 180

    async def test_dashboardInChromium(self) -> None:
        """
        Logged in with the token, the dashboard shows two running game
        servers and the seated player; the packets-per-second chart moves
        under traffic; the kick button ends the player's session with
        C{S2C{disconnect}} and 4009. A screenshot is saved.
        """
        missing = _missing()
        if missing is not None:
            raise self.skipTest(missing)
        assert NODE is not None and CHROMIUM is not None and CHROMEDRIVER is not None
        tokenFile = os.path.abspath(self.mktemp())
        os.makedirs(os.path.dirname(tokenFile), exist_ok=True)
        with open(tokenFile, "w") as f:
            f.write(TOKEN + "\n")
        adminPort = freePort()
        port = await startAphelion(
            self,
            "--admin",
            f"tcp:{adminPort}:interface=127.0.0.1",
            "--admin-token-file",
            tokenFile,
            gameServers=2,
        )
        screenshot = tokenFile + "-dashboard.png"
        start: Any = reactor.seconds()
        code, output = await runProcess(
            NODE,
            [SCRIPT],
            {
                "APHELION_PORT": str(port),
                "ADMIN_PORT": str(adminPort),
                "ADMIN_TOKEN": TOKEN,
                "SCREENSHOT": screenshot,
                "CHROMIUM": os.path.realpath(CHROMIUM),
                "CHROMEDRIVER": CHROMEDRIVER,
            },
            seconds=150,
        )
        _log.info(
            "{script}: exit {code} in {elapsed:.1f} s; screenshot of the "
            "dashboard: {screenshot}\n{output}",
            script=SCRIPT,
            code=code,
            elapsed=reactor.seconds() - start,
            screenshot=screenshot,
            output=output,
        )
        if code != 0:
            self.fail(f"{SCRIPT} failed ({code}):\n{output[-20000:]}")
        self.assertTrue(os.path.getsize(screenshot) > 1000, screenshot)
