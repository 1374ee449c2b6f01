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
        self.assertEqual(config.ackDelay, 0.005)
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

    def test_seatHold(self) -> None:
        """
        C{--seat-hold} sets how long game servers hold a seat (15 s by
        default, 0 for none); a negative one is refused.
        """
        self.assertEqual(parse().seatHold, 15.0)
        self.assertEqual(parse("--seat-hold", "0").seatHold, 0.0)
        self.assertEqual(parse("--seat-hold", "2.5").seatHold, 2.5)
        self.assertRaises(UsageError, parse, "--seat-hold", "-1")

    def test_gcThreshold(self) -> None:
        """
        C{--gc-threshold} sets the garbage collector's young threshold of the
        AuthProxy and its game servers (50,000 by default, 0 for Python's);
        a negative one is refused.
        """
        self.assertEqual(parse().gcThreshold, 50_000)
        self.assertEqual(parse("--gc-threshold", "0").gcThreshold, 0)
        self.assertEqual(parse("--gc-threshold", "1000").gcThreshold, 1000)
        self.assertRaises(UsageError, parse, "--gc-threshold", "-1")

    def test_workersNeedRedis(self) -> None:
        """
        C{--workers 1} is the default; more than one without a Redis
        registry is refused with a message that names what is missing.
        """
        self.assertEqual(parse().workers, 1)
        self.assertEqual(parse("--workers", "1").workers, 1)
        self.assertRaises(UsageError, parse, "--workers", "0")
        error = self.assertRaises(UsageError, parse, "--workers", "2")
        self.assertIn("Redis registry", str(error))

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

    def test_registry(self) -> None:
        """
        C{--registry} is C{memory} by default, or a C{redis://} or
        C{rediss://} URL; anything else is refused.
        """
        self.assertEqual(parse().registry, "memory")
        config = parse(
            "--registry",
            "rediss://:pw@10.0.0.2:6380/2",
            "--node-address",
            "10.0.0.5:8080",
            "--counts-interval",
            "0.5",
        )
        self.assertEqual(
            (config.registry, config.nodeAddress, config.countsInterval),
            ("rediss://:pw@10.0.0.2:6380/2", "10.0.0.5:8080", 0.5),
        )
        for argv in (
            ["--registry", "redis"],
            ["--registry", "http://h/0"],
            ["--registry", "redis://h:port/0"],
            ["--counts-interval", "0"],
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

    def test_limitDefaults(self) -> None:
        """
        The limits of Part 6 default to the contract's table.
        """
        config = parse()
        self.assertEqual(
            (
                config.upgradeTimeout,
                config.connectionsPerAddress,
                config.connectionRate,
                config.connectionBurst,
                config.authTimeout,
                config.loginsPerMinute,
                config.checkerQueue,
                config.maxSessions,
                config.sessionsPerAddress,
                config.writePause,
                config.writeLimit,
                config.queueBytes,
                config.seatingBuffer,
                config.seatingBufferBytes,
                config.playerWriteLimit,
                config.logInterval,
                config.exempt,
            ),
            (
                10.0,
                64,
                20.0,
                40,
                30.0,
                10.0,
                64,
                100_000,
                256,
                1 << 20,
                4 << 20,
                1 << 20,
                64,
                256 << 10,
                4 << 20,
                10.0,
                (),
            ),
        )

    def test_limitOptions(self) -> None:
        """
        Every limit has its option.
        """
        config = parse(
            "--upgrade-timeout=3",
            "--connections-per-address=5",
            "--connection-rate=2",
            "--connection-burst=4",
            "--auth-timeout=7",
            "--logins-per-minute=30",
            "--checker-queue=8",
            "--checks-per-address=3",
            "--max-sessions=9",
            "--sessions-per-address=10",
            "--write-pause=100000",
            "--write-limit=200000",
            "--queue-bytes=1000",
            "--seating-buffer=11",
            "--seating-buffer-bytes=12000",
            "--player-write-limit=300000",
            "--log-interval=60",
            "--exempt=10.0.0.0/8",
            "--exempt=::1/128",
        )
        self.assertEqual(
            (
                config.upgradeTimeout,
                config.connectionsPerAddress,
                config.connectionRate,
                config.connectionBurst,
                config.authTimeout,
                config.loginsPerMinute,
                config.checkerQueue,
                config.checksPerAddress,
                config.maxSessions,
                config.sessionsPerAddress,
                config.writePause,
                config.writeLimit,
                config.queueBytes,
                config.seatingBuffer,
                config.seatingBufferBytes,
                config.playerWriteLimit,
                config.logInterval,
                config.exempt,
            ),
            (
                3.0,
                5,
                2.0,
                4,
                7.0,
                30.0,
                8,
                3,
                9,
                10,
                100_000,
                200_000,
                1000,
                11,
                12000,
                300_000,
                60.0,
                ("10.0.0.0/8", "::1/128"),
            ),
        )

    def test_badLimits(self) -> None:
        """
        Wrong limits are refused with a L{UsageError}.
        """
        for argv in (
            ["--upgrade-timeout", "0"],
            ["--connection-rate", "0"],
            ["--connection-burst", "0"],
            ["--logins-per-minute", "0"],
            ["--checker-queue", "0"],
            ["--write-pause", "1000"],
            ["--write-pause", "2000000", "--write-limit", "1000000"],
            ["--player-write-limit", "10"],
            ["--exempt", "not-a-network"],
            ["--auth-timeout", "-1"],
        ):
            self.assertRaises(UsageError, parse, *argv)

    def test_legacy(self) -> None:
        """
        C{--legacy} is the profile of the original Java client: path /, ack
        cap 127, no unacknowledged limit, game revisions up to 5, and the
        legacy results.
        """
        config = parse("--legacy")
        self.assertEqual(
            (config.path, config.ackCap, config.unackedLimit, config.legacy),
            ("/", 127, None, True),
        )
        self.assertEqual(config.revisions[AphelionProtocol.GAME], Revisions(1, 5))
        self.assertEqual(config.revisions[AphelionProtocol.PING], Revisions(1, 1))

    def test_pages(self) -> None:
        """
        The pages are served at C{/} by default, elsewhere with
        C{--pages-prefix}, not at all with C{--no-pages}; a prefix must be
        absolute.
        """
        self.assertEqual((parse().pagesPrefix, parse().pages), ("/", True))
        self.assertEqual(parse("--pages-prefix=/play").pagesPrefix, "/play")
        self.assertFalse(parse("--no-pages").pages)
        self.assertRaises(UsageError, parse, "--pages-prefix", "play")

    def test_legacyKeepsExplicitOptions(self) -> None:
        """
        An option given beside C{--legacy} keeps its value.
        """
        config = parse("--legacy", "--path=/game", "--ack-cap=100")
        self.assertEqual((config.path, config.ackCap), ("/game", 100))

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
