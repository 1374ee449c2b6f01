# -*- test-case-name: tests.test_configfile -*-
"""
C{--config FILE}: the options of a L{usage.Options} read from a TOML file.

The keys are the long options (C{game-servers = 2}); a flag is a boolean
(C{legacy = true}); a repeatable option is an array, or one string
(C{exempt = ["10.0.0.0/8"]}). The file is read before the command line, and
an option given on the command line replaces the file's value for it (for a
repeatable option, all of the file's values). The options are found from the
class's own C{optFlags}, C{optParameters} and C{opt_} methods, so an option
added there is a key of the file without more code.

An unknown key, a value of the wrong type, or a value that the option itself
refuses stops the start with a L{usage.UsageError} naming the file, the key
and what is allowed.
"""

from __future__ import annotations

import getopt
import sys
import tomllib
from collections.abc import Sequence
from typing import Any

from twisted.python import usage

__all__ = ["ConfigFileOptions", "readConfigFile"]

# --worker is set by the parent of --workers on its workers' command lines.
_NOT_IN_FILE = frozenset(
    {"config", "help", "version", "help-auth", "help-auth-type", "worker"}
)


def readConfigFile(path: str) -> dict[str, Any]:
    """
    Read a TOML file.

    :raises usage.UsageError: naming the file, when it cannot be read or is
        not TOML.
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise usage.UsageError(f"cannot read --config {path!r}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise usage.UsageError(f"{path}: not valid TOML: {e}") from e


class ConfigFileOptions(usage.Options):
    """
    A L{usage.Options} with C{--config FILE}: mix it in before
    L{usage.Options}.

    :ivar arguments: the command line last parsed, to parse again (with the
        file read again) on a reload.
    :ivar configFile: the file read, or L{None}.
    :cvar secretKeys: the keys whose values may hold a secret (C{--auth}
        may carry a password): a wrong one is not quoted in the error.
    """

    arguments: list[str]
    configFile: str | None = None
    secretKeys: frozenset[str] = frozenset()

    def opt_config(self, path: str) -> None:
        """
        A TOML file of options, keys spelled as the long options; those
        given on the command line override it.
        """
        # Read before the command line, by parseOptions.
        self.configFile = path

    def fileKeys(self) -> dict[str, str]:
        """
        :return: what each key of a config file takes, by key: every long
            option but those that only print (C{--help}).
        """
        takes: dict[str, str] = {}
        for spelled in self.longOpt:
            name = spelled.rstrip("=")
            if name in _NOT_IN_FILE or self.synonyms.get(name, name) != name:
                continue
            takes[name] = self._allowed(name, spelled.endswith("="))
        return takes

    def _repeatable(self, name: str) -> bool:
        return isinstance(self.get(name), list)

    def _allowed(self, name: str, takesValue: bool) -> str:
        if not takesValue:
            return "true or false"
        if self._repeatable(name):
            return "a string or an array of strings"
        handler = self._dispatch.get(name)
        coerce = getattr(handler, "coerce", str)
        if coerce is int:
            return "an integer"
        if coerce is float:
            return "a number"
        return "a string"

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Read the file of C{--config}, if given, then parse the command line.
        """
        if options is None:
            options = sys.argv[1:]
        self.arguments = list(options)
        given = self._givenOnCommandLine(self.arguments)
        path = next(
            (value for name, value in reversed(given) if name == "config"), None
        )
        fromFile: set[str] = set()
        if path is not None:
            self.configFile = path
            names = {name for name, _ in given}
            fromFile = self._applyFile(path, readConfigFile(path), names)
        try:
            super().parseOptions(self.arguments)
        except usage.UsageError as e:
            # A check of postOptions about a value the file gave: say where.
            for name in sorted(fromFile, key=len, reverse=True):
                if f"--{name}" in str(e):
                    raise usage.UsageError(f"{path}: {name}: {e}") from e
            raise

    def _givenOnCommandLine(self, arguments: Sequence[str]) -> list[tuple[str, str]]:
        """
        :return: C{(name, value)} of each option of the command line, by the
            name it is known under (a short or abbreviated one resolved); none
            when it does not parse (the parse proper then says why).
        """
        try:
            pairs, _ = getopt.getopt(list(arguments), self.shortOpt, self.longOpt)
        except getopt.error:
            return []
        given = []
        for opt, value in pairs:
            spelled = opt.lstrip("-")
            name = self.synonyms.get(
                spelled, self.synonyms.get(spelled.replace("-", "_"))
            )
            if isinstance(name, str):
                given.append((name, value))
        return given

    def _applyFile(self, path: str, table: dict[str, Any], given: set[str]) -> set[str]:
        """
        Set the options of a parsed file, but those given on the command line.

        :return: the keys applied.
        """
        keys = self.fileKeys()
        applied = set()
        for key, value in table.items():
            if key not in keys:
                raise usage.UsageError(
                    f"{path}: unknown key {key!r}; the keys are the long options: "
                    + ", ".join(sorted(keys))
                )
            if key in given:
                continue
            allowed = keys[key]
            for item in self._values(path, key, value, allowed):
                handler = self._dispatch[key]
                try:
                    if isinstance(handler, usage.CoerceParameter):
                        handler.dispatch(key, item)
                    else:
                        handler(key, item)
                except usage.UsageError as e:
                    raise usage.UsageError(
                        f"{path}: {key}: {e} (it takes {allowed})"
                    ) from e
            applied.add(key)
        return applied

    def _values(
        self, path: str, key: str, value: object, allowed: str
    ) -> list[str | None]:
        """
        The command-line values of one key of the file: none for a false
        flag, one for most, any number for a repeatable option.

        :raises usage.UsageError: when C{value} is not what C{key} takes.
        """

        def wrong() -> usage.UsageError:
            shown = "a value" if key in self.secretKeys else repr(value)
            return usage.UsageError(
                f"{path}: {key} takes {allowed}, not {shown} ({type(value).__name__})"
            )

        if allowed == "true or false":
            if not isinstance(value, bool):
                raise wrong()
            return [None] if value else []
        if allowed == "a string or an array of strings":
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(item, str) for item in items):
                raise wrong()
            return list(items)
        if isinstance(value, bool):
            raise wrong()
        if allowed == "an integer" and isinstance(value, int):
            return [str(value)]
        if allowed == "a number" and isinstance(value, (int, float)):
            return [repr(value)]
        if allowed == "a string" and isinstance(value, str):
            return [value]
        raise wrong()
