# -*- test-case-name: tests.test_js -*-
"""
The JavaScript client library's own tests (C{clients/js/test/}, Node's test
runner) against a real aphelion started here, and the check that the copy
of the library the players' site serves is the library.

L{startAphelion} and L{runProcess} are shared with
L{tests.test_integration_browser}.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from aphelion.web import PAGES

reactor: Any = _reactor
_log = Logger()

REPOSITORY = Path(__file__).resolve().parent.parent
CLIENTS_JS = REPOSITORY / "clients" / "js"
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
NODE = shutil.which("node")
_PORT = re.compile(rb"AphelionSite starting on (\d+)")
_READY = re.compile(rb"game server gs\d+ ready")


class OutputProcess(ProcessProtocol):
    """
    A child process: its output (standard output and error together), and
    C{ended}, which fires with its exit code. C{watch} fires once the
    output matches every pattern given, with the output.
    """

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[int] = Deferred()
        self._watches: list[tuple[list[re.Pattern[bytes]], Deferred[bytes]]] = []

    def watch(self, *patterns: re.Pattern[bytes]) -> Deferred[bytes]:
        """
        :return: a L{Deferred} that fires with the output once it matches
            every one of C{patterns}, or fails if the process ends first.
        """
        d: Deferred[bytes] = Deferred()
        self._watches.append((list(patterns), d))
        self._check()
        return d

    def _check(self) -> None:
        for patterns, d in list(self._watches):
            if all(pattern.search(self.output) for pattern in patterns):
                self._watches.remove((patterns, d))
                d.callback(self.output)

    def outReceived(self, data: bytes) -> None:
        """
        Collect output.
        """
        self.output += data
        self._check()

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        Fire C{ended} with the exit code; fail the watches still waiting.
        """
        code = getattr(reason.value, "exitCode", None)
        watches, self._watches = self._watches, []
        for _, d in watches:
            d.errback(
                RuntimeError(
                    "the process ended first:\n"
                    + self.output.decode("utf-8", "replace")[-4000:]
                )
            )
        self.ended.callback(1 if code is None else int(code))


async def startAphelion(test: TestCase, *args: str, gameServers: int = 1) -> int:
    """
    Run C{twistd -n aphelion} on 127.0.0.1, port 0, with C{--auth dev}, the
    chat game and C{args}; stop it by its PID after the test.

    :return: its port, once it listens and its game servers are ready.
    """
    process = OutputProcess()
    argv = [
        TWISTD,
        "-n",
        "--pidfile=",
        "aphelion",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--auth",
        "dev",
        "--exempt",
        "127.0.0.0/8",
        "--game-servers",
        str(gameServers),
        *args,
    ]
    transport = reactor.spawnProcess(
        process, TWISTD, argv, env=dict(os.environ), path=str(REPOSITORY)
    )

    async def stop() -> None:
        if not process.ended.called:
            transport.signalProcess(signal.SIGTERM)
            kill = reactor.callLater(10, transport.signalProcess, signal.SIGKILL)
            await process.ended
            if kill.active():
                kill.cancel()

    test.addCleanup(stop)
    patterns = [_PORT] + [_READY] * (1 if gameServers else 0)
    output = await process.watch(*patterns)
    match = _PORT.search(output)
    assert match is not None
    return int(match.group(1))


async def runProcess(
    executable: str, args: list[str], env: dict[str, str], seconds: float
) -> tuple[int, str]:
    """
    Run C{executable} with C{args} from the repository's root and C{env}
    added to this process's environment; stop it (SIGTERM, then SIGKILL)
    if it runs longer than C{seconds}.

    :return: its exit code and its output.
    """
    process = OutputProcess()
    transport = reactor.spawnProcess(
        process,
        executable,
        [executable, *args],
        env={**os.environ, **env},
        path=str(REPOSITORY),
    )

    def overtime() -> None:
        process.output += f"\n(stopped after {seconds:g} s)\n".encode()
        transport.signalProcess(signal.SIGTERM)
        reactor.callLater(5, _kill, transport, process)

    timer = reactor.callLater(seconds, overtime)
    code = await process.ended
    if timer.active():
        timer.cancel()
    return code, process.output.decode("utf-8", "replace")


def _kill(transport: Any, process: OutputProcess) -> None:
    if not process.ended.called:
        transport.signalProcess(signal.SIGKILL)


class NodeSuiteTests(TestCase):
    """
    C{node --test clients/js/test/} against a real aphelion.
    """

    timeout = 240

    async def test_nodeSuite(self) -> None:
        """
        The library's Node tests pass: the handshake and every close code
        they can provoke, acks, sessions of several sockets, reconnect and
        resume, ping and the game protocol, against this aphelion (and the
        servers with other options they start themselves).
        """
        if NODE is None:
            raise self.skipTest("node is not installed: the JavaScript tests need it")
        if not (CLIENTS_JS / "node_modules" / "ws").is_dir():
            self.fail(
                "clients/js has no node_modules: run `npm ci --prefix clients/js` "
                "(the tests need the ws package)"
            )
        port = await startAphelion(self, "--seating", "fill")
        start = reactor.seconds()
        code, output = await runProcess(
            NODE,
            ["--test", "--test-timeout=60000", "clients/js/test/"],
            {
                "APHELION_URL": f"ws://127.0.0.1:{port}/aphelion",
                "APHELION_TWISTD": TWISTD,
            },
            seconds=200,
        )
        lines = output.splitlines()
        summary = "\n".join(x for x in lines if re.match(r"^(not ok|# \w+ \d)", x))
        _log.info(
            "node --test clients/js/test/: exit {code} in {elapsed:.1f} s\n{summary}",
            code=code,
            elapsed=reactor.seconds() - start,
            summary=summary,
        )
        if code != 0:
            self.fail(f"node --test failed ({code}):\n{output[-20000:]}")


class LibraryCopyTests(SynchronousTestCase):
    """
    The players' site serves C{aphelion/pages/aphelion.js}, a copy of
    C{clients/js/aphelion.js} that ships in the Python package.
    """

    def test_copyIsCurrent(self) -> None:
        """
        The served copy is byte for byte the library in C{clients/js}.
        """
        library = CLIENTS_JS / "aphelion.js"
        if not library.exists():
            raise self.skipTest("no clients/js here (an installed aphelion)")
        served = Path(PAGES.child("aphelion.js").path)
        self.assertEqual(
            served.read_bytes(),
            library.read_bytes(),
            "aphelion/pages/aphelion.js differs from clients/js/aphelion.js: "
            "cp clients/js/aphelion.js aphelion/pages/aphelion.js",
        )
