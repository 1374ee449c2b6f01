# -*- test-case-name: tests.test_spawn -*-
"""
A local game-server process: its command line (L{childCommand}) and the
protocol that talks to it over its standard streams (L{ChildProtocol}): the
control token in, the port out, its log lines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from twisted.internet.protocol import ProcessProtocol
from twisted.logger import LogEvent, Logger
from twisted.python.failure import Failure

from aphelion.control.servers import GameServer
from aphelion.game.factory import PLAYER_WRITE_LIMIT, SEAT_HOLD
from aphelion.gctune import DEFAULT_THRESHOLD
from aphelion.logs import childLines, relayedEvent

__all__ = ["ChildProtocol", "childCommand"]


def childCommand(
    game: str,
    serverId: str,
    python: str = sys.executable,
    *,
    playerWriteLimit: int = PLAYER_WRITE_LIMIT,
    logInterval: float = 10.0,
    seatHold: float = SEAT_HOLD,
    gcThreshold: int = DEFAULT_THRESHOLD,
) -> list[str]:
    """
    The command line of a local game-server process. It carries no secret:
    the control token goes over the child's standard input.

    :param game: the game module.
    :param serverId: the server's id.
    :param python: the Python that runs it.
    :param playerWriteLimit: bytes that may wait unsent on one of its player
        connections (C{--player-write-limit}).
    :param logInterval: seconds between its summary log lines
        (C{--log-interval}).
    :param seatHold: seconds it holds the seat of a player whose connection
        went (C{--seat-hold}).
    :param gcThreshold: its garbage collector's young threshold
        (C{--gc-threshold}; 0 keeps Python's).
    """
    return [
        python,
        "-m",
        "aphelion.game.child",
        "--game",
        game,
        "--server-id",
        serverId,
        "--interface",
        "127.0.0.1",
        "--player-write-limit",
        str(playerWriteLimit),
        "--log-interval",
        repr(float(logInterval)),
        "--seat-hold",
        repr(float(seatHold)),
        "--gc-threshold",
        str(gcThreshold),
        # Its events come back whole, fields and all (ChildProtocol).
        "--log-json",
    ]


class ChildProtocol(ProcessProtocol):
    """
    Talks to one game-server process: the token in, the port out, the logs.
    """

    _log = Logger()

    def __init__(
        self,
        server: GameServer,
        *,
        listening: Callable[[GameServer, int], object],
        failed: Callable[[GameServer], object],
        exited: Callable[[GameServer, Failure], object],
    ) -> None:
        """
        :param server: the game server the process runs.
        :param listening: called with the server and its port once the
            process said the port it listens on.
        :param failed: called with the server when the process broke the
            start-up contract (no port line, or a bad one).
        :param exited: called with the server and the reason when the
            process has exited.
        """
        self._server = server
        self._listening = listening
        self._failed = failed
        self._exited = exited
        self._out = b""
        self._err = b""
        self._portSeen = False

    def connectionMade(self) -> None:
        """
        Called when the child is spawned: write the token line to its stdin.
        """
        super().connectionMade()
        # The token goes over stdin, never argv or the environment. Stdin
        # stays open: the child exits when it closes (when we die).
        assert self.transport is not None
        self.transport.write(self._server.token.hex().encode("ascii") + b"\n")

    def outReceived(self, data: bytes) -> None:
        """
        Called with the child's standard output: its C{PORT n} line.
        """
        if self._portSeen:
            return
        self._out += data
        if b"\n" not in self._out:
            if len(self._out) > 256:
                self._fail("no port line from the game server")
            return
        line = self._out.split(b"\n", 1)[0].strip()
        self._portSeen = True
        self._out = b""
        word, _, number = line.partition(b" ")
        if word != b"PORT" or not number.isdigit() or not 0 < int(number) < 65536:
            self._fail("bad port line from the game server")
            return
        self._listening(self._server, int(number))

    def errReceived(self, data: bytes) -> None:
        """
        Called with the child's standard error: each of its JSON events is
        logged again with its C{serverId} (L{childEventReceived}); any other
        line (a traceback before logging began) as C{[serverId] line}.
        """
        found, self._err = childLines(self._err, data)
        for item in found:
            if isinstance(item, dict):
                self.childEventReceived(item)
            else:
                self._log.info(
                    "[{serverId}] {line}", serverId=self._server.serverId, line=item
                )

    def childEventReceived(self, event: LogEvent) -> None:
        """
        Called with each log event of the child: log it again, with its own
        namespace, level, time and fields, its text prefixed with
        C{[serverId]}, and the field C{serverId}.
        """
        self._log.observer(
            relayedEvent(
                event,
                "serverId",
                self._server.serverId,
                "[{serverId}]",
                "aphelion.game.child",
            )
        )

    def _fail(self, why: str) -> None:
        self._log.error(
            "game server {serverId}: {why}", serverId=self._server.serverId, why=why
        )
        self._failed(self._server)

    def processEnded(self, reason: Failure) -> None:
        """
        Called when the child has exited.
        """
        self._exited(self._server, reason)
