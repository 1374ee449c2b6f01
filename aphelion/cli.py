# -*- test-case-name: tests.test_cli -*-
"""
The C{aphelion} console command: client tools for an AuthProxy.

Each subcommand is one L{Command}: its L{CommandOptions} subclass and the
coroutine that runs it. To add one, write both and append it to L{COMMANDS}.

This is the only module that prints: a command's output is its interface.
"""

from __future__ import annotations

import getopt
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TextIO

from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.error import ConnectError
from twisted.internet.task import deferLater, react
from twisted.python import usage

from aphelion import __version__
from aphelion.accounts import AccountsOptions, TicketOptions
from aphelion.chatclient import ChatTerminal, LineInput
from aphelion.client import ClosedError, ping
from aphelion.codes import CloseCode

__all__ = [
    "COMMANDS",
    "BotsOptions",
    "Command",
    "CommandOptions",
    "Options",
    "PingOptions",
    "main",
    "run",
    "runPing",
]

#: What a command returns: the process's exit status.
Runner = Callable[[Any, usage.Options, TextIO, TextIO], Awaitable[int]]


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def coerce(value: str) -> int | float:
        number = kind(value)
        if number <= 0:
            raise ValueError(f"must be positive, not {value}")
        return number

    coerce.coerceDoc = "Must be positive."  # type: ignore[attr-defined]
    return coerce


def _notNegative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"must not be negative, not {value}")
    return number


def _checkURL(url: str) -> str:
    if not url.startswith(("ws://", "wss://")):
        raise usage.UsageError(f"not a ws:// or wss:// URL: {url}")
    return url


def _printVersion() -> NoReturn:
    print(f"aphelion {__version__}")
    sys.exit(0)


class CommandOptions(usage.Options):
    """
    The base of every subcommand's options: options may come after the
    positional arguments (C{aphelion ping URL --count 3}).
    """

    def opt_version(self) -> NoReturn:
        """
        Print the version and exit.
        """
        _printVersion()

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Move the options in front of the positional arguments, then parse as
        usual (Twisted's parser stops at the first positional argument).

        :raises usage.UsageError: for an unknown option or a missing value.
        """
        try:
            opts, args = getopt.gnu_getopt(
                list(sys.argv[1:] if options is None else options),
                self.shortOpt,
                self.longOpt,
            )
        except getopt.GetoptError as e:
            raise usage.UsageError(str(e)) from None
        ordered: list[str] = []
        for name, value in opts:
            if name.startswith("--"):
                takesValue = f"{name[2:]}=" in self.longOpt
                ordered.append(f"{name}={value}" if takesValue else name)
            else:
                takesValue = f"{name[1]}:" in self.shortOpt
                ordered.append(name + value if takesValue else name)
        super().parseOptions([*ordered, "--", *args])


class PingOptions(CommandOptions):
    """
    Options of C{aphelion ping}.
    """

    synopsis = "ws://HOST:PORT/PATH [options]"
    longdesc = (
        "Open a ping connection (aphelion_protocol 1), send one PingRequest, "
        "print the round trip and the server's player counts, and close. "
        "Exits 1 at the first ping that fails."
    )

    optParameters = [
        ["count", "c", 1, "Number of pings.", _positive(int)],
        ["timeout", "t", 10.0, "Seconds to wait for each ping.", _positive(float)],
        ["interval", "i", 1.0, "Seconds between pings.", _notNegative],
        [
            "protocol-version",
            None,
            0,
            "Revision of the ping protocol; 0 skips the check.",
            int,
        ],
    ]

    def parseArgs(self, url: str) -> None:  # type: ignore[override]
        """
        Take the server's WebSocket URL.
        """
        self["url"] = _checkURL(url)


async def runPing(
    reactor: Any, options: usage.Options, out: TextIO, err: TextIO
) -> int:
    """
    Run C{aphelion ping}: one line on C{out} per ping, or the error on
    C{err}.

    :return: 0 when every ping was answered, else 1.
    """
    url: str = options["url"]
    timeout: float = options["timeout"]
    for number in range(options["count"]):
        if number:
            await deferLater(reactor, options["interval"], lambda: None)
        try:
            result = await ping(reactor, url, options["protocol-version"]).addTimeout(
                timeout, reactor
            )
        except ClosedError as e:
            print(f"{url}: closed with {e.code}: {e.reason}", file=err)
            return 1
        except DeferredTimeoutError:
            print(f"{url}: no answer within {timeout:g} s", file=err)
            return 1
        except ConnectError as e:
            print(f"{url}: {e}", file=err)
            return 1
        print(
            f"{url}: rtt {result.rtt * 1000:.2f} ms, "
            f"{result.players} players, {result.playing} playing",
            file=out,
        )
        out.flush()
    return 0


@dataclass(frozen=True)
class Command:
    """
    One subcommand of C{aphelion}.

    :ivar name: what the user types.
    :ivar options: its options class.
    :ivar runner: C{runner(reactor, options, out, err)} runs it and returns the
        exit status.
    :ivar description: one line for C{--help}.
    """

    name: str
    options: type[usage.Options]
    runner: Runner
    description: str


#: Every subcommand, in the order C{--help} lists them.
class ChatOptions(CommandOptions):
    """
    Options of C{aphelion chat}.
    """

    synopsis = "ws://HOST:PORT/PATH --id ID"
    longdesc = (
        "Join the chat game through an AuthProxy: authenticate with --id, then "
        "every line typed is said to the room, and what the room says is shown."
    )
    optParameters = [["id", None, None, "The ID to authenticate with."]]

    def parseArgs(self, url: str) -> None:  # type: ignore[override]
        """
        Take the server's WebSocket URL.
        """
        self["url"] = _checkURL(url)

    def postOptions(self) -> None:
        """
        Require --id.
        """
        if not self["id"]:
            raise usage.UsageError("--id is required")


async def runChat(
    reactor: Any, options: usage.Options, out: TextIO, err: TextIO
) -> int:
    """
    Run C{aphelion chat} on standard input and output until the connection
    closes or standard input ends.

    :return: 0 after a normal close, else 1.
    """
    from twisted.internet.stdio import StandardIO

    def write(line: str) -> None:
        print(line, file=out)
        out.flush()

    terminal = ChatTerminal(reactor, options["url"], options["id"], write)

    def leave() -> None:
        if terminal.connection is not None:
            terminal.connection.closeWith(CloseCode.NORMAL, "bye")

    try:
        running = Deferred.fromCoroutine(terminal.run())
        StandardIO(LineInput(terminal, leave), reactor=reactor)
        code, _ = await running
    except ClosedError as e:
        print(f"{options['url']}: closed with {e.code}: {e.reason}", file=err)
        return 1
    except ConnectError as e:
        print(f"{options['url']}: {e}", file=err)
        return 1
    ok = (CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.SESSION_MOVED)
    return 0 if code in ok else 1


class BotsOptions(CommandOptions):
    """
    Options of C{aphelion bots}.
    """

    synopsis = "ws://HOST:PORT/PATH --count N [--game arena] [options]"
    longdesc = (
        "Run bots that play a game through an AuthProxy (dev auth: IDs "
        "bot-1, bot-2, ...): each logs in, steers at random, and records "
        "what a player feels. After --warmup seconds they record for "
        "--seconds, then print the snapshot interval and its jitter, the "
        "input-to-snapshot latency (p50, p99), missing ticks and reconnects. "
        "Exits 1 if a bot was not seated."
    )
    optFlags = [["json", None, "Print the report as one JSON line."]]
    optParameters = [
        ["count", "n", 10, "Number of bots.", _positive(int)],
        ["game", "g", "arena", "The game they play: arena."],
        ["seconds", "s", 10.0, "Seconds to record.", _positive(float)],
        ["warmup", "w", 2.0, "Seconds of play before recording.", _notNegative],
        ["input-hz", None, 10.0, "Inputs each bot sends per second.", _positive(float)],
        ["id-prefix", None, "bot-", "The bots' IDs: this and a number."],
        ["first-id", None, 1, "The number of the first bot.", _positive(int)],
        ["concurrency", None, 50, "Logins in flight.", _positive(int)],
        [
            "ack-delay",
            None,
            0.1,
            "Seconds before an ack-only packet (acks ride on inputs within it).",
            _notNegative,
        ],
        ["seed", None, None, "Seed of the bots' steering.", int],
    ]

    def parseArgs(self, url: str) -> None:  # type: ignore[override]
        """
        Take the server's WebSocket URL.
        """
        self["url"] = _checkURL(url)

    def postOptions(self) -> None:
        """
        Check the game.
        """
        from aphelion.bots import GAMES

        if self["game"] not in GAMES:
            raise usage.UsageError(
                f"--game must be one of {', '.join(GAMES)}, not {self['game']}"
            )


async def runBotsCommand(
    reactor: Any, options: usage.Options, out: TextIO, err: TextIO
) -> int:
    """
    Run C{aphelion bots}: progress on C{err}, the report on C{out}.

    :return: 0 when every bot was seated, else 1.
    """
    import json

    from aphelion.bots import runBots

    def progress(line: str) -> None:
        print(f"bots: {line}", file=err)
        err.flush()

    report = await runBots(
        reactor,
        options["url"],
        options["count"],
        seconds=options["seconds"],
        warmup=options["warmup"],
        inputHz=options["input-hz"],
        idPrefix=options["id-prefix"],
        firstId=options["first-id"],
        concurrency=options["concurrency"],
        ackDelay=options["ack-delay"],
        seed=options["seed"],
        progress=progress,
    )
    if options["json"]:
        print(json.dumps(report.toDict()), file=out)
    else:
        figures = report.summary()

        def ms(name: str) -> str:
            value = figures[name]
            return "-" if value is None else f"{value:.1f} ms"

        rate = figures["snapshots_per_player_s"]
        print(
            f"{report.joined} of {report.players} bots seated; recorded "
            f"{report.seconds:.1f} s at {options['input-hz']:g} inputs/s each",
            file=out,
        )
        print(
            f"snapshots: {report.snapshots} "
            f"({'-' if rate is None else f'{rate:.1f}'}/s per bot); interval "
            f"p50 {ms('interval_p50_ms')}, p99 {ms('interval_p99_ms')}, "
            f"jitter (stdev) {ms('jitter_ms')}",
            file=out,
        )
        print(
            f"input-to-snapshot latency: p50 {ms('latency_p50_ms')}, "
            f"p99 {ms('latency_p99_ms')} ({report.acknowledged} of "
            f"{report.inputs} inputs seen applied)",
            file=out,
        )
        print(
            f"missing ticks: {report.missingTicks}; reconnects: "
            f"{report.reconnects}; fewest snapshots of one bot: "
            f"{report.fewestSnapshots}",
            file=out,
        )
    out.flush()
    return 0 if report.joined == report.players else 1


async def runOffline(
    reactor: Any, options: usage.Options, out: TextIO, err: TextIO
) -> int:
    """
    Run a command that needs no network: its options' C{run(out, err)}.
    """
    result: int = options.run(out, err)  # type: ignore[attr-defined]
    return result


COMMANDS: tuple[Command, ...] = (
    Command("ping", PingOptions, runPing, "Ping an AuthProxy and print the answer."),
    Command("chat", ChatOptions, runChat, "Join the chat game and talk."),
    Command("accounts", AccountsOptions, runOffline, "Manage the accounts database."),
    Command("ticket", TicketOptions, runOffline, "Mint a login ticket."),
    Command("bots", BotsOptions, runBotsCommand, "Run bots that play a game."),
)


class Options(usage.Options):
    """
    The options of C{aphelion}: one subcommand and its options.
    """

    synopsis = "Usage: aphelion [options]"
    subCommands = [[c.name, None, c.options, c.description] for c in COMMANDS]

    def opt_version(self) -> NoReturn:
        """
        Print the version and exit.
        """
        _printVersion()

    def postOptions(self) -> None:
        """
        Insist on a subcommand.
        """
        if self.subCommand is None:
            raise usage.UsageError("choose a command")


async def run(
    reactor: Any,
    argv: Sequence[str],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """
    Parse C{argv} (without the program name) and run the subcommand.

    :param reactor: the reactor the command connects with.
    :param out: where results go; standard output by default.
    :param err: where errors go; standard error by default.
    :return: the exit status: 0 on success, 1 on failure, 2 for bad usage.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    options = Options()
    try:
        options.parseOptions(list(argv))
    except usage.UsageError as e:
        print(getattr(options, "subOptions", options), file=err)
        print(f"aphelion: {e}", file=err)
        return 2
    command = next(c for c in COMMANDS if c.name == options.subCommand)
    return await command.runner(reactor, options.subOptions, out, err)


async def _main(reactor: Any, argv: Sequence[str]) -> None:
    status = await run(reactor, argv)
    if status:
        raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The console entry point C{aphelion}: run a subcommand on the global
    reactor and exit with its status.
    """
    react(_main, (sys.argv[1:] if argv is None else argv,))
