# -*- test-case-name: tests.test_configfile -*-
"""
Tests of L{aphelion.configfile}: C{twistd aphelion --config FILE}.
"""

from __future__ import annotations

import os
import re

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from aphelion.auth import DevChecker
from aphelion.configfile import ConfigFileOptions
from aphelion.tap import Options

EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "docs",
    "aphelion.example.toml",
)


class ConfigFileTests(SynchronousTestCase):
    """
    C{--config} of L{Options}.
    """

    def write(self, text: str) -> str:
        """
        Write a config file for one test.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def parse(self, text: str, *arguments: str) -> Options:
        """
        Parse a command line with C{--config} naming a file of C{text}.
        """
        options = Options()
        options.parseOptions(["--config", self.write(text), *arguments])
        return options

    def refused(self, text: str, *arguments: str) -> str:
        """
        :return: the message of the L{usage.UsageError} the file causes.
        """
        error = self.assertRaises(usage.UsageError, self.parse, text, *arguments)
        return str(error)

    def test_values(self) -> None:
        """
        Parameters, flags and repeatable options come from the file,
        coerced as on the command line.
        """
        options = self.parse(
            "game-servers = 2\n"
            "legacy = true\n"
            "refuse-newcomer = false\n"
            'exempt = ["10.0.0.0/8", "127.0.0.0/8"]\n'
            'game-option = ["tick_hz=20"]\n'
            'listen = "tcp:8080"\n'
            "session-timeout = 30\n"
            'auth = "dev"\n'
        )
        config = options.toConfig()
        self.assertEqual(config.gameServers, 2)
        self.assertTrue(config.legacy)
        self.assertFalse(config.refuseNewcomer)
        self.assertEqual(config.exempt, ("10.0.0.0/8", "127.0.0.0/8"))
        self.assertEqual(config.gameOptions, (("tick_hz", "20"),))
        self.assertEqual(config.listen, ("tcp:8080",))
        self.assertEqual(config.sessionTimeout, 30.0)
        self.assertIsInstance(config.sessionTimeout, float)
        [checker] = config.checkers
        self.assertIsInstance(checker, DevChecker)

    def test_commandLineWins(self) -> None:
        """
        An option on the command line replaces the file's value, and for a
        repeatable option all of the file's values.
        """
        options = self.parse(
            'game-servers = 2\nexempt = ["10.0.0.0/8"]\n',
            "--game-servers",
            "3",
            "--exempt",
            "192.168.0.0/16",
        )
        self.assertEqual(options["game-servers"], 3)
        self.assertEqual(options["exempt"], ["192.168.0.0/16"])

    def test_withoutFile(self) -> None:
        """
        Without C{--config}, the options are the command line's alone.
        """
        options = Options()
        options.parseOptions(["--game-servers", "4"])
        self.assertIsNone(options.configFile)
        self.assertEqual(options["game-servers"], 4)

    def test_unknownKey(self) -> None:
        """
        An unknown key stops the start, naming the file, the key and the
        keys there are.
        """
        path = self.write("game-serverz = 2\n")
        error = self.assertRaises(
            usage.UsageError, Options().parseOptions, ["--config", path]
        )
        message = str(error)
        self.assertTrue(message.startswith(f"{path}: unknown key 'game-serverz'"))
        self.assertIn("game-servers", message)

    def test_wrongType(self) -> None:
        """
        A value of the wrong TOML type names the file, the key and what the
        key takes.
        """
        cases = {
            'game-servers = "two"\n': "game-servers takes an integer",
            "session-timeout = true\n": "session-timeout takes a number",
            "legacy = 1\n": "legacy takes true or false",
            "exempt = [1]\n": "exempt takes a string or an array of strings",
            "path = 5\n": "path takes a string",
            "ack-cap = 2.5\n": "ack-cap takes an integer",
        }
        for text, expected in cases.items():
            path = self.write(text)
            error = self.assertRaises(
                usage.UsageError, Options().parseOptions, ["--config", path]
            )
            self.assertIn(f"{path}: {expected}", str(error))

    def test_refusedValue(self) -> None:
        """
        A value its option refuses, at once or in the final checks, names
        the file and the key with the option's own message.
        """
        message = self.refused('exempt = ["not a network"]\n')
        self.assertIn(": exempt: --exempt is a CIDR network", message)
        message = self.refused("ack-cap = 300\n")
        self.assertIn(": ack-cap: --ack-cap must be 1 to 254", message)

    def test_authNotQuoted(self) -> None:
        """
        A wrong value of C{auth} is not quoted in the error: it may hold a
        password.
        """
        message = self.refused('auth = ["memory:alice:hunter2"]\n')
        self.assertIn("auth takes a string, not a value (list)", message)
        self.assertNotIn("hunter2", message)

    def test_notANumber(self) -> None:
        """
        TOML's C{nan}, which passes any comparison with a bound, is refused
        as the command line's C{nan} is.
        """
        message = self.refused("seat-hold = nan\n")
        self.assertIn("seat-hold", message)
        for name in ("drain-deadline", "dead-after", "restart-max"):
            self.assertRaises(
                usage.UsageError, Options().parseOptions, [f"--{name}", "nan"]
            )

    def test_commandLineErrorNotBlamedOnFile(self) -> None:
        """
        A wrong value given on the command line is not reported as the
        file's.
        """
        message = self.refused("game-servers = 2\n", "--ack-cap", "300")
        self.assertEqual(message, "--ack-cap must be 1 to 254")

    def test_notToml(self) -> None:
        """
        A file that is not TOML, or is missing, stops the start naming it.
        """
        self.assertIn("not valid TOML", self.refused("game-servers = \n"))
        error = self.assertRaises(
            usage.UsageError,
            Options().parseOptions,
            ["--config", "/nonexistent/aphelion.toml"],
        )
        self.assertIn("/nonexistent/aphelion.toml", str(error))

    def test_newOptionsCovered(self) -> None:
        """
        An option declared by a subclass (as other parts add theirs) is a
        key of the file with no more code: parameter, flag and handler.
        """

        class More(ConfigFileOptions):
            optParameters = [["workers", None, 1, "Workers.", int]]
            optFlags = [["admin-open", None, "Open."]]

            def __init__(self) -> None:
                super().__init__()
                self["registry"] = []

            def opt_registry(self, value: str) -> None:
                """
                A registry (repeatable).
                """
                self["registry"].append(value)

        options = More()
        keys = options.fileKeys()
        self.assertEqual(keys["workers"], "an integer")
        self.assertEqual(keys["admin-open"], "true or false")
        self.assertEqual(keys["registry"], "a string or an array of strings")
        self.assertNotIn("help", keys)
        self.assertNotIn("config", keys)
        path = self.write('workers = 4\nadmin-open = true\nregistry = ["a", "b"]\n')
        options.parseOptions(["--config", path])
        self.assertEqual(
            (options["workers"], options["admin-open"], options["registry"]),
            (4, 1, ["a", "b"]),
        )

    def test_everyOptionIsAKey(self) -> None:
        """
        Every long option of C{twistd aphelion}, but those that print and
        exit and C{--worker} (the parent of C{--workers} sets it on its
        workers' command lines), is a key of the file.
        """
        options = Options()
        names = {spelled.rstrip("=") for spelled in options.longOpt}
        names -= {"help", "version", "help-auth", "help-auth-type", "config", "worker"}
        self.assertEqual(set(options.fileKeys()), names)

    def test_example(self) -> None:
        """
        The example file of the documentation parses, and sets what it says.
        """
        options = Options()
        options.parseOptions(["--config", EXAMPLE])
        config = options.toConfig()
        self.assertEqual(config.gameServers, 2)
        self.assertEqual(config.exempt, ("10.0.0.0/8",))
        self.assertEqual(config.gameOptions, (("tick_hz", "20"),))
        self.assertTrue(config.trustForwardedFor)

    def test_exampleComplete(self) -> None:
        """
        The example file shows every key there is, set or commented out
        (C{# key = ...}): an option added without its line fails here.
        """
        with open(EXAMPLE) as f:
            shown = set(re.findall(r"^#? ?([a-z][a-z-]*) = ", f.read(), re.M))
        self.assertEqual(set(Options().fileKeys()) - shown, set())
        self.assertEqual(shown - set(Options().fileKeys()), set())
