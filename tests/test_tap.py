# -*- test-case-name: tests.test_tap -*-
"""
Tests of L{aphelion.tap} and the twistd plugin.
"""

from __future__ import annotations

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import AphelionProtocol
from aphelion.config import Config
from aphelion.handshake import Revisions
from aphelion.tap import Options


def parse(*argv: str) -> Config:
    """
    Parse C{argv} and return the config.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options.toConfig()


class OptionsTests(SynchronousTestCase):
    """
    Tests of L{Options}.
    """

    def test_contractDefaults(self) -> None:
        """
        With no options every setting is the contract's default (Part 4).
        """
        config = parse()
        self.assertEqual(config, Config())
        self.assertEqual(config.listen, ("tcp:80",))
        self.assertEqual(config.path, "/aphelion")
        self.assertEqual(config.initTimeout, 10.0)
        self.assertEqual(config.maxMessage, 65536)
        self.assertEqual(config.ackDelay, 0.0)
        self.assertEqual(config.ackCap, 254)
        self.assertEqual(
            (config.autoPingInterval, config.autoPingTimeout), (10.0, 20.0)
        )
        self.assertEqual(config.unackedLimit, 1024)
        self.assertEqual(config.sessionTimeout, 60.0)
        self.assertEqual(config.connectionsPerSession, 8)
        self.assertEqual(config.queueLimit, 256)
        self.assertEqual(config.authTries, 3)
        self.assertEqual(
            config.revisions,
            {
                AphelionProtocol.PING: Revisions(1, 1),
                AphelionProtocol.GAME: Revisions(1, 1),
            },
        )

    def test_everyOption(self) -> None:
        """
        Every option reaches the config, coerced.
        """
        config = parse(
            "--listen",
            "tcp:8080",
            "--listen",
            "tcp:8081",
            "--path",
            "/",
            "--init-timeout",
            "2.5",
            "--max-message",
            "1024",
            "--ack-delay",
            "0.01",
            "--ack-cap",
            "127",
            "--unacked-limit",
            "0",
            "--auto-ping-interval",
            "3",
            "--auto-ping-timeout",
            "4",
            "--session-timeout",
            "5",
            "--connections-per-session",
            "5",
            "--queue-limit",
            "10",
            "--max-connections",
            "0",
            "--auth-tries",
            "1",
            "--ping-revisions",
            "1:2",
            "--game-revisions",
            "2:3",
            "--trust-forwarded-for",
        )
        self.assertEqual(config.listen, ("tcp:8080", "tcp:8081"))
        self.assertEqual(config.path, "/")
        self.assertEqual(config.initTimeout, 2.5)
        self.assertEqual(config.maxMessage, 1024)
        self.assertEqual(config.ackDelay, 0.01)
        self.assertEqual(config.ackCap, 127)
        self.assertIsNone(config.unackedLimit)
        self.assertEqual((config.autoPingInterval, config.autoPingTimeout), (3, 4))
        self.assertEqual(config.sessionTimeout, 5)
        self.assertEqual(config.connectionsPerSession, 5)
        self.assertEqual(config.queueLimit, 10)
        self.assertEqual(config.maxConnections, 0)
        self.assertEqual(config.authTries, 1)
        self.assertEqual(config.revisions[1], Revisions(1, 2))
        self.assertEqual(config.revisions[2], Revisions(2, 3))
        self.assertTrue(config.trustForwardedFor)

    def test_badValues(self) -> None:
        """
        Wrong values are refused with a L{UsageError}.
        """
        for argv in (
            ["--path", "aphelion"],
            ["--init-timeout", "0"],
            ["--ack-cap", "0"],
            ["--ack-cap", "255"],
            ["--max-message", "65537"],
            ["--max-message", "1"],
            ["--auto-ping-interval", "0.5"],
            ["--auto-ping-timeout", "0"],
            ["--connections-per-session", "0"],
            ["--unacked-limit", "-1"],
            ["--session-timeout", "-1"],
            ["--queue-limit", "-1"],
            ["--auth-tries", "0"],
            ["--game-revisions", "3:2"],
            ["--game-revisions", "x"],
            ["--ack-delay", "-1"],
        ):
            self.assertRaises(UsageError, parse, *argv)

    def test_gameConfig(self) -> None:
        """
        C{--game-config CONTENT_TYPE:FILE} reads the file at start-up; a
        missing file or a bad value is a L{UsageError}.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b'{"arena": "moon"}')
        config = parse("--game-config", f"application/json:{path}")
        self.assertEqual(config.gameConfig, ("application/json", b'{"arena": "moon"}'))
        self.assertRaises(UsageError, parse, "--game-config", "application/json")
        self.assertRaises(
            UsageError, parse, "--game-config", "text/plain:" + path + ".missing"
        )

    def test_notANumber(self) -> None:
        """
        A value that does not coerce is a L{UsageError}.
        """
        self.assertRaises(UsageError, parse, "--init-timeout", "soon")


class PluginTests(SynchronousTestCase):
    """
    The twistd plugin is found and points at L{aphelion.tap}.
    """

    def test_found(self) -> None:
        """
        C{twistd aphelion} exists.
        """
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("aphelion", makers)
        self.assertIs(makers["aphelion"].options, Options)
