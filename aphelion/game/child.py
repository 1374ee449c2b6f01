# -*- test-case-name: tests.test_integration_child -*-
"""
The game-server process (Part 2.3, step 1)::

    python -m aphelion.game.child --game aphelion.games.chat \\
        [--port 0] [--interface 127.0.0.1] [--server-id ID] [--log-json] \\
        [--player-write-limit BYTES] [--log-interval SECONDS] \\
        [--seat-hold SECONDS] [--gc-threshold N]

The protocol with the parent process that spawns it:

- The parent writes the 32-byte control token to the child's standard input
  as one line of 64 hex digits and a newline. The token is never in the
  command line or the environment. Standard input then stays open.
- The child listens on the interface (loopback unless told otherwise), on an
  ephemeral port unless C{--port} names one, and writes exactly one line to
  its standard output, C{PORT <n>\\n}. Nothing else is written there: the logs
  go to standard error (text, or with C{--log-json} one JSON event per
  record, as C{twisted.logger.jsonFileLogObserver} writes them), and the
  game's own C{print}s are logged too.
- After a C{Shutdown} drain the child exits with status 0.
- When its standard input closes (the parent died, or closed it on purpose)
  it drains for at most L{PARENT_GONE_DEADLINE} seconds and exits with
  status 0. On SIGTERM or SIGINT it drains for at most L{STOP_DEADLINE}
  seconds and exits.
- A bad command line exits with status 2; a game module that does not load,
  a missing or malformed token line (within L{TOKEN_TIMEOUT} seconds), or a
  port it cannot listen on, with status 1.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from twisted.internet import error
from twisted.internet.defer import Deferred, race
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
    jsonFileLogObserver,
)
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python import usage
from twisted.python.failure import Failure

from aphelion.game.factory import PLAYER_WRITE_LIMIT, SEAT_HOLD, GameServerFactory
from aphelion.game.game import Game, loadGame
from aphelion.gctune import DEFAULT_THRESHOLD, tuneCollector
from aphelion.session import tokenHint

__all__ = [
    "PARENT_GONE_DEADLINE",
    "STOP_DEADLINE",
    "TOKEN_TIMEOUT",
    "Options",
    "ParentPipe",
    "main",
    "readTokenFile",
    "run",
]

_log = Logger(namespace="aphelion.game.child")

TOKEN_TIMEOUT = 10.0
"""
Seconds the child waits for the token line before it gives up.
"""

PARENT_GONE_DEADLINE = 1.0
"""
Seconds the drain may take when standard input closes.
"""

STOP_DEADLINE = 2.0
"""
Seconds the drain may take when the process is told to stop (SIGTERM).
"""


class Options(usage.Options):
    """
    The command line of the game-server process.
    """

    synopsis = "python -m aphelion.game.child --game MODULE [options]"

    optParameters = [
        ["game", "g", None, "The game module, such as aphelion.games.chat."],
        ["port", "p", 0, "The TCP port to listen on; 0 for an ephemeral one.", int],
        ["interface", "i", "127.0.0.1", "The address to listen on."],
        ["server-id", None, "", "This game server's id (default: from Control)."],
        [
            "token-file",
            None,
            None,
            "Read the control token (64 hex digits) from this file instead of "
            "standard input, and do not stop when standard input closes: for "
            "a game server started by the operator.",
        ],
        [
            "player-write-limit",
            None,
            PLAYER_WRITE_LIMIT,
            "Bytes that may wait unsent on one player connection before that "
            "player is disconnected (reads too slowly).",
            int,
        ],
        [
            "log-interval",
            None,
            10.0,
            "Seconds between the summary lines of a log line that connections "
            "cause (a bad token, a timeout): the first is logged, then a count.",
            float,
        ],
        [
            "gc-threshold",
            None,
            DEFAULT_THRESHOLD,
            "The garbage collector's young-generation threshold, set once the "
            "game server has started (with what it made frozen): full "
            "collections over many players stall every connection; 0 keeps "
            "Python's.",
            int,
        ],
        [
            "seat-hold",
            None,
            SEAT_HOLD,
            "Seconds a player's seat is held after its connection went without "
            "a Disconnect (or with Disconnect MOVED), for it to resume; 0 holds "
            "none.",
            float,
        ],
    ]
    optFlags = [
        ["log-json", None, "Log JSON events to standard error instead of text."],
    ]

    def postOptions(self) -> None:
        """
        Check the values.

        :raises usage.UsageError: if one is wrong.
        """
        if not self["game"]:
            raise usage.UsageError("--game is required")
        if not 0 <= self["port"] <= 65535:
            raise usage.UsageError("--port must be in 0-65535")
        if self["player-write-limit"] <= 0:
            raise usage.UsageError("--player-write-limit must be positive")
        if self["log-interval"] <= 0:
            raise usage.UsageError("--log-interval must be positive")
        if not self["seat-hold"] >= 0:  # NaN too
            raise usage.UsageError("--seat-hold must not be negative")
        if self["gc-threshold"] < 0:
            raise usage.UsageError("--gc-threshold must not be negative")


class ParentPipe(LineOnlyReceiver):
    """
    Standard input and output, the pipes to the parent process: the token
    comes in on the first line, the port line goes out, and the end of
    standard input means the parent is gone.

    :ivar token: fires with the 32 token bytes, or fails with L{ValueError}
        when the first line is not 64 hex digits or input ends before it.
    :ivar closed: fires when standard input is closed.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1024

    def __init__(self) -> None:
        """
        Nothing received yet.
        """
        self.token: Deferred[bytes] = Deferred()
        self.closed: Deferred[None] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        """
        Called with each line of standard input: the first is the token; the
        rest are ignored.
        """
        if self.token.called:
            return
        try:
            token = bytes.fromhex(line.strip().decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            token = b""
        if len(token) != 32:
            self.token.errback(ValueError("the token line is not 64 hex digits"))
            return
        self.token.callback(token)

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        Called when a line is too long: it is not a token.
        """
        if not self.token.called:
            self.token.errback(ValueError("the token line is too long"))

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Called when standard input is closed.
        """
        if not self.token.called:
            self.token.errback(ValueError("standard input closed before the token"))
        if not self.closed.called:
            self.closed.callback(None)


def _drainOnStop(factory: GameServerFactory) -> Deferred[None]:
    """
    Before the reactor stops: drain, unless that is done.
    """
    if not factory.draining:
        factory.shutdown("the game server is stopping", STOP_DEADLINE)
    return factory.whenShutDown()


def readTokenFile(path: str) -> bytes:
    """
    Read a control token written as 64 hex digits (surrounding white space
    is ignored), at start-up.

    :raises ValueError: if the file does not hold one.
    :raises OSError: if it cannot be read.
    """
    with open(path, "rb") as f:
        text = f.read().strip()
    try:
        token = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        token = b""
    if len(token) != 32:
        raise ValueError(f"{path} does not hold 64 hex digits")
    return token


async def main(reactor: Any, options: Options, game: Game) -> None:
    """
    Read the token, listen, report the port and serve until a drain is done
    or the parent is gone.

    :param reactor: provides C{IReactorTCP}, C{IReactorTime} and
        C{IReactorCore}.
    :param options: the parsed command line.
    :param game: the game to serve.
    :raises SystemExit: with status 1 on a bad token or port.
    """
    pipe = ParentPipe()
    StandardIO(pipe, reactor=reactor)
    tokenFile = options["token-file"]
    try:
        if tokenFile is not None:
            token = readTokenFile(tokenFile)
        else:
            token = await pipe.token.addTimeout(TOKEN_TIMEOUT, reactor)
    except (OSError, ValueError, error.TimeoutError) as e:
        _log.critical("no control token: {why}", why=str(e) or type(e).__name__)
        raise SystemExit(1) from e
    # Started by the operator, the game server does not watch its stdin.
    parentGone: Deferred[None] = Deferred() if tokenFile is not None else pipe.closed

    factory = GameServerFactory(
        clock=reactor,
        token=token,
        game=game,
        serverId=options["server-id"],
        playerWriteLimit=options["player-write-limit"],
        logInterval=options["log-interval"],
        seatHold=options["seat-hold"],
    )
    try:
        port = reactor.listenTCP(
            options["port"], factory, interface=options["interface"]
        )
    except error.CannotListenError as e:
        _log.critical("cannot listen: {why}", why=str(e))
        raise SystemExit(1) from e
    number = port.getHost().port
    _log.info(
        "game server {serverId} runs {game} on {interface} port {port} (token {hint})",
        serverId=options["server-id"] or "-",
        game=game.name,
        interface=options["interface"],
        port=number,
        hint=tokenHint(token),
    )
    assert pipe.transport is not None
    # Started: what exists now lives as long as the process.
    tuneCollector(options["gc-threshold"])
    pipe.transport.write(b"PORT %d\n" % number)
    reactor.addSystemEventTrigger("before", "shutdown", _drainOnStop, factory)

    which, _ = await race([factory.whenShutDown(), parentGone])
    if which == 1:
        _log.warn("standard input closed: the parent is gone; stopping")
        factory.shutdown("the AuthProxy is gone", PARENT_GONE_DEADLINE)
        await factory.whenShutDown()
    await port.stopListening()


def _untimedText(event: LogEvent) -> str | None:
    """
    One log line without a time stamp: the AuthProxy that reads the child's
    standard error stamps each line itself.
    """
    text = formatEvent(event)
    if not text:
        return None
    namespace = event.get("log_namespace", "-")
    level = event.get("log_level")
    levelName = level.name if level is not None else "-"
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    return f"[{namespace}#{levelName}] {text}\n"


def run(argv: list[str] | None = None) -> NoReturn:
    """
    The process's entry point: parse the command line, start logging to
    standard error, load the game and run L{main} under C{react}.

    :param argv: the arguments, without the program name; default
        C{sys.argv[1:]}.
    """
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nerror: {e}\n")
        sys.exit(2)
    observer: ILogObserver = (
        jsonFileLogObserver(sys.stderr)
        if options["log-json"]
        else FileLogObserver(sys.stderr, _untimedText)
    )
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(observer, [LogLevelFilterPredicate(LogLevel.info)])]
    )
    try:
        game = loadGame(options["game"])
    except (ImportError, TypeError) as e:
        _log.critical(
            "cannot load the game {game}: {why}", game=options["game"], why=str(e)
        )
        sys.exit(1)
    react(main, [options, game])


if __name__ == "__main__":
    run()
