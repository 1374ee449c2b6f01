# -*- test-case-name: tests.test_workers -*-
"""
The parent of C{--workers} (L{WorkersService}): it binds the listening
sockets, runs the game servers, publishes them to the workers, and spawns
and supervises the workers.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import LogEvent, Logger
from twisted.python.failure import Failure

from aphelion.config import Config
from aphelion.control.servers import ServerState, restartDelay
from aphelion.lifecycle import SignalHandlers
from aphelion.logs import childLines, relayedEvent
from aphelion.service import AuthProxyService, build
from aphelion.workers.listen import ListenSpec, bindListening, parseListen
from aphelion.workers.pool import GameServerRecord, encodeRecords
from aphelion.workers.worker import FIRST_FD

__all__ = ["WorkersService", "workerCommand"]


def workerCommand(python: str, argv: Sequence[str], index: int) -> list[str]:
    """
    The command line of worker C{index}: C{twist aphelion} with the parent's
    own options and C{--worker INDEX}, logging JSON events (which the parent
    logs again, fields and all).

    :param python: the Python that runs it.
    :param argv: the options of the parent's C{aphelion} command.
    :param index: the worker's number, from 1.
    """
    return [
        python,
        "-m",
        "twisted",
        "--log-format",
        "json",
        "aphelion",
        *argv,
        "--worker",
        str(index),
    ]


@dataclass(eq=False)
class _Worker:
    """
    One worker process as the parent sees it.
    """

    index: int
    process: Any = None
    failures: int = 0
    startedAt: float | None = None
    restartCall: IDelayedCall | None = None
    sent: bytes = b""
    exited: list[Deferred[None]] | None = None


class _WorkerProtocol(ProcessProtocol):
    """
    A worker's standard streams: its log lines out, the records in.
    """

    _log = Logger()

    def __init__(self, service: WorkersService, worker: _Worker) -> None:
        self._service = service
        self._worker = worker
        self._buffer = b""

    def connectionMade(self) -> None:
        """
        Send it the current records at once.
        """
        super().connectionMade()
        self._service._publishTo(self._worker)

    def outReceived(self, data: bytes) -> None:
        """
        Log its log events again (L{workerEventReceived}); a line that is no
        event (a traceback before logging began) as C{[worker I] line}.
        """
        found, self._buffer = childLines(self._buffer, data)
        for item in found:
            if isinstance(item, dict):
                self.workerEventReceived(item)
            elif item:
                self._log.info(
                    "[worker {index}] {line}", index=self._worker.index, line=item
                )

    def workerEventReceived(self, event: LogEvent) -> None:
        """
        Called with each log event of the worker: log it again with its own
        namespace, level, time and fields, its text prefixed with
        C{[worker I]}, and the field C{worker}.
        """
        self._log.observer(
            relayedEvent(
                event,
                "worker",
                self._worker.index,
                "[worker {worker}]",
                "aphelion.workers",
            )
        )

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        Called when it exited.
        """
        self._service._workerExited(self._worker, reason)


class WorkersService(MultiService):
    """
    The parent of C{--workers N}: the game servers (a node without players),
    the shared listening sockets, and N supervised workers.

    :ivar node: the parent's own AuthProxy service tree, without listeners:
        its C{monitor} runs the game servers.
    :ivar specs: the shared listeners, as parsed.
    :ivar sockets: the bound sockets, once started.
    :ivar workers: the workers.
    :ivar restartInitial: the first restart delay of a worker.
    :ivar restartMax: the longest.
    :ivar stableAfter: seconds of life after which a worker's back-off resets.
    :ivar stopDeadline: seconds a stopping worker has before it is killed.
    """

    _log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: Any,
        argv: Sequence[str],
        *,
        python: str = sys.executable,
        publishInterval: float = 0.25,
        stableAfter: float = 60.0,
        handleSignals: bool = False,
        installSignal: Any = signal.signal,
    ) -> None:
        """
        :param config: the settings; C{workers} is the number of workers.
        :param reactor: provides C{IReactorProcess}, C{IReactorTime} and what
            L{build} needs.
        :param argv: the options of the C{aphelion} command, passed on to
            every worker.
        :param python: the Python that runs the workers.
        :param publishInterval: seconds between looks at the game servers;
            the workers are told only of changes.
        :param stableAfter: L{stableAfter}.
        :param handleSignals: handle C{SIGHUP} (as C{twistd} runs it): a
            reload is not supported with workers, so it is logged and
            ignored rather than ending the whole process tree.
        :param installSignal: L{signal.signal}, or a fake in tests.
        :raises ValueError: if a listener cannot be shared.
        """
        super().__init__()
        self._reactor = reactor
        self.config = config
        self._argv = list(argv)
        self._python = python
        self.specs: list[ListenSpec] = [parseListen(d) for d in config.listen]
        self.sockets: list[socket.socket] = []
        self.restartInitial = config.restartInitial
        self.restartMax = config.restartMax
        self.stableAfter = stableAfter
        self.stopDeadline = config.drainDeadline + 5.0
        self.workers = [_Worker(i + 1) for i in range(config.workers)]
        self.node: AuthProxyService = build(replace(config, listen=()), reactor)
        self.node.setServiceParent(self)
        self._signals = (
            SignalHandlers(reactor, {signal.SIGHUP: self._noReload}, installSignal)
            if handleSignals
            else None
        )
        self._stopping = False
        self._publish = LoopingCall(self._publishAll)
        self._publish.clock = reactor
        self._publishInterval = publishInterval

    # -- the service ---------------------------------------------------------

    def privilegedStartService(self) -> None:
        """
        Bind the listening sockets (before twistd drops privileges).
        """
        self._bind()
        super().privilegedStartService()

    def startService(self) -> None:
        """
        Start the game servers, then the workers.
        """
        self._bind()
        super().startService()
        if self._signals is not None:
            self._signals.install()
        for worker in self.workers:
            self._spawn(worker)
        published = self._publish.start(self._publishInterval, now=False)
        published.addErrback(
            lambda f: self._log.failure("publishing to the workers stopped", f)
        )

    def stopService(self) -> Deferred[Any]:
        """
        Stop the workers (SIGTERM: they close their connections with 1001;
        SIGKILL after L{stopDeadline}), then the game servers.
        """
        self._stopping = True  # no restarts from here on
        if self._signals is not None:
            self._signals.uninstall()
        if self._publish.running:
            self._publish.stop()
        waits: list[Deferred[None]] = []
        for worker in self.workers:
            if worker.restartCall is not None and worker.restartCall.active():
                worker.restartCall.cancel()
            worker.restartCall = None
            if worker.process is not None:
                done: Deferred[None] = Deferred()
                worker.exited = (worker.exited or []) + [done]
                waits.append(done)
                self._signal(worker, "TERM")
        killCall = self._reactor.callLater(self.stopDeadline, self._killAll)

        def workersGone(_: object) -> Deferred[Any]:
            if killCall.active():
                killCall.cancel()
            for sock in self.sockets:
                sock.close()
            self.sockets = []
            return MultiService.stopService(self)  # type: ignore[no-any-return]

        gone: Deferred[Any] = DeferredList(waits) if waits else succeed(None)
        return gone.addCallback(workersGone)

    def _noReload(self) -> None:
        self._log.warn(
            "SIGHUP: a reload is not supported with --workers; restart the "
            "AuthProxy to apply new settings"
        )

    # -- workers -------------------------------------------------------------

    def _bind(self) -> None:
        if self.sockets:
            return
        for spec in self.specs:
            sock = bindListening(spec)
            self.sockets.append(sock)
            host, port = sock.getsockname()[:2]
            self._log.info(
                "listening on {host} port {port} for {count} workers ({description})",
                host=host,
                port=port,
                count=len(self.workers),
                description=spec.description,
            )

    def _spawn(self, worker: _Worker) -> None:
        worker.restartCall = None
        if self._stopping or not self.running:
            return
        childFDs: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
        for i, sock in enumerate(self.sockets):
            childFDs[FIRST_FD + i] = sock.fileno()
        worker.sent = b""
        worker.process = self._reactor.spawnProcess(
            _WorkerProtocol(self, worker),
            self._python,
            workerCommand(self._python, self._argv, worker.index),
            env=dict(os.environ),
            childFDs=childFDs,
        )
        worker.startedAt = self._reactor.seconds()
        self._log.info(
            "spawned worker {index} (pid {pid})",
            index=worker.index,
            pid=getattr(worker.process, "pid", None),
        )

    def _workerExited(self, worker: _Worker, reason: Failure) -> None:
        worker.process = None
        waiting, worker.exited = worker.exited or [], None
        for d in waiting:
            d.callback(None)
        if self._stopping or not self.running:
            self._log.info("worker {index} stopped", index=worker.index)
            return
        now = self._reactor.seconds()
        if worker.startedAt is not None and now - worker.startedAt >= self.stableAfter:
            worker.failures = 0
        delay = restartDelay(worker.failures, self.restartInitial, self.restartMax)
        worker.failures += 1
        self._log.warn(
            "worker {index} exited ({why}); restarting in {delay:.1f}s",
            index=worker.index,
            why=reason.getErrorMessage(),
            delay=delay,
        )
        worker.restartCall = self._reactor.callLater(delay, self._spawn, worker)

    def _signal(self, worker: _Worker, signal: str) -> None:
        try:
            worker.process.signalProcess(signal)
        except (ProcessExitedAlready, OSError):
            pass

    def _killAll(self) -> None:
        for worker in self.workers:
            if worker.process is not None:
                self._log.warn(
                    "worker {index} outlived the stop deadline; killing it",
                    index=worker.index,
                )
                self._signal(worker, "KILL")

    # -- publishing ------------------------------------------------------------

    def records(self) -> list[GameServerRecord]:
        """
        The game servers the workers may seat players on: the ready ones.
        """
        return [
            GameServerRecord.fromServer(server)
            for server in self.node.monitor.servers.values()
            if server.state is ServerState.READY
            and server.control is not None
            and server.port is not None
        ]

    def _publishAll(self) -> None:
        # One failure must not end the loop: the workers would never hear
        # of a game server again.
        for worker in self.workers:
            with self._log.failuresHandled(
                "publishing to worker {index} failed", index=worker.index
            ):
                self._publishTo(worker)

    def _publishTo(self, worker: _Worker) -> None:
        process = worker.process
        if process is None:
            return
        line = encodeRecords(self.records())
        if line != worker.sent:
            worker.sent = line
            process.write(line)
