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

from twisted.trial.unittest import TestCase

from tests.browser import runScript, skipUnlessBrowser
from tests.test_js import startAphelion

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
        skipUnlessBrowser(self)
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
        await runScript(
            self,
            SCRIPT,
            {
                "APHELION_PORT": str(port),
                "ADMIN_PORT": str(adminPort),
                "ADMIN_TOKEN": TOKEN,
            },
            screenshot,
            seconds=150,
            shows="dashboard",
        )
