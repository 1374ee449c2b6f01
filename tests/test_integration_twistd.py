# -*- test-case-name: tests.test_integration_twistd -*-
"""
Integration tests that run C{twistd -n aphelion} as a real process and talk
to it over loopback sockets.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from aphelion.client import ping

reactor: Any = _reactor

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
_PORT = re.compile(rb"AphelionSite starting on (\d+)")


class TwistdProcess(ProcessProtocol):
    """
    A C{twistd} child: its output, the port it listens on, and its end.
    """

    def __init__(self) -> None:
        self.output = b""
        self.port: Deferred[int] = Deferred()
        self.ended: Deferred[list[Failure]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        """
        Collect the log and look for the listening port.
        """
        self.output += data
        if not self.port.called:
            match = _PORT.search(self.output)
            if match:
                self.port.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        Fire L{ended}; fail L{port} if it never listened.
        """
        if not self.port.called:
            self.port.errback(
                RuntimeError(
                    "twistd ended first:\n" + self.output.decode("utf-8", "replace")
                )
            )
        self.ended.callback([reason])


def startTwistd(
    test: TestCase,
    *args: str,
    twistdArguments: Sequence[str] = (),
    listen: str = "tcp:0:interface=127.0.0.1",
    process: TwistdProcess | None = None,
    stopSignal: str = "TERM",
) -> TwistdProcess:
    """
    Start C{twistd [TWISTD_ARGUMENTS] -n aphelion --listen LISTEN ARGS} (on
    an ephemeral loopback port by default); stop it in cleanup, by its pid,
    with C{stopSignal} (then SIGKILL if it outlives 20 s).

    :param process: the protocol of the child (a new L{TwistdProcess} by
        default).
    """
    process = TwistdProcess() if process is None else process
    argv = [
        TWISTD,
        *twistdArguments,
        "-n",
        "--pidfile=",
        "aphelion",
        "--listen",
        listen,
        *args,
    ]
    transport = reactor.spawnProcess(process, TWISTD, argv, env=dict(os.environ))
    ended = process.ended

    async def stop() -> None:
        if ended.called:
            return
        try:
            transport.signalProcess(stopSignal)
        except ProcessExitedAlready:
            pass
        try:
            await timeout(ended, 20)
        except Exception:
            transport.signalProcess("KILL")
            await timeout(ended, 5)

    test.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return process


def timeout(d: Deferred[Any], seconds: float) -> Deferred[Any]:
    """
    Fail C{d} if it has not fired within C{seconds}.
    """
    return d.addTimeout(seconds, reactor)


class TwistdTests(TestCase):
    """
    C{twistd aphelion} as a real process.
    """

    async def test_pingTwistd(self) -> None:
        """
        A freshly started C{twistd -n aphelion} answers C{aphelion ping} with
        its player counts; SIGTERM stops it cleanly.
        """
        process = startTwistd(self, "--game-servers", "0")
        port = await timeout(process.port, 30)
        result = await timeout(ping(reactor, f"ws://127.0.0.1:{port}/aphelion"), 10)
        self.assertEqual((result.players, result.playing), (0, 0))
        self.assertGreater(result.rtt, 0)
        os.kill(process.transport.pid, signal.SIGTERM)  # type: ignore[union-attr]
        [reason] = await timeout(process.ended, 20)
        # twistd stops cleanly, then ends itself with the signal it got.
        exited = reason.value
        self.assertTrue(
            reason.check(ProcessDone)
            or getattr(exited, "signal", None) == signal.SIGTERM,
            process.output.decode(),
        )
        self.assertIn(b"Server Shut Down.", process.output)
