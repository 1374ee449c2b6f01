# -*- test-case-name: tests.test_deploy -*-
"""
Tests that the deploy files stay right: the systemd unit's command line
parses, and its stop timeout leaves room for the drain. (The nginx and
varnish files are run for real by L{tests.test_integration_proxies}.)
"""

from __future__ import annotations

import configparser
import os
import shlex

from twisted.python.reflect import namedAny
from twisted.trial.unittest import SynchronousTestCase

from aphelion.config import Config
from aphelion.tap import Options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "deploy", "systemd", "aphelion.service")
EXAMPLE = os.path.join(ROOT, "docs", "aphelion.example.toml")


class SystemdUnitTests(SynchronousTestCase):
    """
    C{deploy/systemd/aphelion.service}.
    """

    def setUp(self) -> None:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(UNIT)
        self.service = parser["Service"]

    def test_execStart(self) -> None:
        """
        C{ExecStart} runs twistd in the foreground with the JSON logger,
        and its aphelion options parse (with the example file as config).
        """
        argv = shlex.split(self.service["ExecStart"])
        self.assertTrue(argv[0].endswith("/twistd"))
        self.assertIn("--nodaemon", argv)
        logger = argv[argv.index("--logger") + 1]
        self.assertTrue(callable(namedAny(logger)))
        rest = argv[argv.index("aphelion") + 1 :]
        rest[rest.index("--config") + 1] = EXAMPLE
        options = Options()
        options.parseOptions(rest)
        self.assertEqual(options.configFile, EXAMPLE)

    def test_stop(self) -> None:
        """
        SIGTERM goes to twistd alone, the reload is SIGHUP, and the stop
        timeout is longer than the default drain deadline plus the 2 s
        before a spawned game server is killed.
        """
        self.assertEqual(self.service["KillMode"], "mixed")
        self.assertEqual(self.service["KillSignal"], "SIGTERM")
        self.assertIn("-HUP $MAINPID", self.service["ExecReload"])
        self.assertGreater(
            float(self.service["TimeoutStopSec"]), Config().drainDeadline + 2
        )
