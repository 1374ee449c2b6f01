# -*- test-case-name: tests.test_spawn -*-
"""
Tests of L{aphelion.control.spawn}: L{GameServerMonitor} on a fake reactor
that records the processes it spawns and the connections it opens, in the
manner of Twisted's C{DummyProcessReactor} (C{twisted.runner.test.test_procmon}).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.error import (
    ProcessDone,
    ProcessExitedAlready,
    ProcessTerminated,
)
from twisted.internet.interfaces import (
    IProcessProtocol,
    IProcessTransport,
    IReactorProcess,
)
from twisted.internet.protocol import ClientFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from aphelion.control.servers import restartDelay
from aphelion.control.spawn import (
    GameServer,
    GameServerMonitor,
    RemoteGameServer,
    ServerState,
    childCommand,
)
from aphelion.session import tokenHint

PYTHON = "/opt/aphelion/bin/python3"
GAME = "aphelion.games.echo"


@implementer(IProcessTransport)
class FakeProcess:
    """
    A process that L{FakeProcessReactor} pretends to have spawned. It records
    what is written to its standard input and the signals sent to it; the test
    makes it write to its standard output and error, and exit.

    :ivar protocol: its process protocol.
    :ivar executable: the executable it was spawned with.
    :ivar args: its command line.
    :ivar env: its environment.
    :ivar pid: its process id, or L{None} once it has exited.
    :ivar stdin: the bytes written to its standard input, one item a write.
    :ivar signals: the signals sent to it, in order.
    :ivar stdinClosed: whether its standard input was closed.
    """

    def __init__(
        self,
        protocol: IProcessProtocol,
        executable: str,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        pid: int,
    ) -> None:
        self.protocol = protocol
        self.executable = executable
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        self.pid: int | None = pid
        self.stdin: list[bytes] = []
        self.signals: list[str | int] = []
        self.stdinClosed = False

    def write(self, data: bytes) -> None:
        """
        Record bytes written to the standard input.
        """
        self.stdin.append(data)

    def closeStdin(self) -> None:
        """
        Record that the standard input was closed.
        """
        self.stdinClosed = True

    def signalProcess(self, signalID: str | int) -> None:
        """
        Record a signal, or raise L{ProcessExitedAlready} as a real process
        transport does once the process has exited.
        """
        if self.pid is None:
            raise ProcessExitedAlready()
        self.signals.append(signalID)

    def stdout(self, data: bytes) -> None:
        """
        Pretend the process wrote C{data} to its standard output.
        """
        self.protocol.childDataReceived(1, data)

    def stderr(self, data: bytes) -> None:
        """
        Pretend the process wrote C{data} to its standard error.
        """
        self.protocol.childDataReceived(2, data)

    def exit(self, reason: Exception | None = None) -> None:
        """
        Pretend the process ended, with C{reason} (by default, a clean exit).
        """
        self.pid = None
        self.protocol.processEnded(
            Failure(reason if reason is not None else ProcessDone(0))
        )


@implementer(IReactorProcess)
class FakeProcessReactor(MemoryReactorClock):
    """
    A reactor that provides L{IReactorTime} and L{IReactorTCP} (as
    L{MemoryReactorClock}, which records C{connectTCP} calls in
    C{tcpClients}) and L{IReactorProcess}, whose C{spawnProcess} records a
    L{FakeProcess} and connects it to its protocol.

    :ivar processes: every process spawned, in order.
    :ivar childFDs: the C{childFDs} of each spawn, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.processes: list[FakeProcess] = []
        self.childFDs: list[Mapping[int, int | str] | None] = []

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        path: str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Mapping[int, int | str] | None = None,
    ) -> FakeProcess:
        """
        Record a new L{FakeProcess} and connect it to C{processProtocol}.
        """
        self.childFDs.append(childFDs)
        process = FakeProcess(
            processProtocol, executable, args, env, 1000 + len(self.processes)
        )
        self.processes.append(process)
        processProtocol.makeConnection(process)
        return process


class ControlFactories:
    """
    A C{makeControlFactory} that records each call and returns a new factory,
    so that tests can tell which factory a connection was opened with.

    :ivar made: C{(monitor, server, factory)} for each call.
    """

    def __init__(self) -> None:
        self.made: list[tuple[GameServerMonitor, GameServer, ClientFactory]] = []

    def __call__(self, monitor: GameServerMonitor, server: GameServer) -> Any:
        """
        Make and record a factory.
        """
        factory = ClientFactory()
        self.made.append((monitor, server, factory))
        return factory


class RecordingControl:
    """
    A stand-in for a game server's control connection that records the
    C{Shutdown}s it is asked to send.

    :ivar shutdowns: C{(deadlineMs, reason)} of each.
    """

    def __init__(self) -> None:
        self.shutdowns: list[tuple[int, str]] = []

    def sendShutdown(self, deadlineMs: int, reason: str) -> None:
        """
        Record a C{Shutdown}.
        """
        self.shutdowns.append((deadlineMs, reason))


def crash(process: FakeProcess) -> None:
    """
    Make C{process} exit with status 1.
    """
    process.exit(ProcessTerminated(exitCode=1))


def serverIdOf(process: Any) -> str:
    """
    The C{--server-id} of a spawned process's command line.
    """
    args: list[str] = process.args
    return args[args.index("--server-id") + 1]


def messages(events: Sequence[LogEvent]) -> list[str]:
    """
    The formatted text of each log event.
    """
    return [formatEvent(event) for event in events]


class MonitorTestCase(SynchronousTestCase):
    """
    The fake reactor and helpers shared by the tests of L{GameServerMonitor}.
    """

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.factories = ControlFactories()
        self.lost: list[GameServer] = []

    def makeMonitor(
        self,
        count: int = 1,
        remotes: Sequence[RemoteGameServer] = (),
        **kwargs: Any,
    ) -> GameServerMonitor:
        """
        A monitor on the fake reactor whose lost game servers are recorded in
        C{self.lost}; not started.
        """
        kwargs.setdefault("python", PYTHON)
        monitor = GameServerMonitor(
            reactor=self.reactor,
            game=GAME,
            count=count,
            remotes=remotes,
            makeControlFactory=self.factories,
            **kwargs,
        )
        monitor.addLostObserver(self.lost.append)
        return monitor

    def startMonitor(self, count: int = 1, **kwargs: Any) -> GameServerMonitor:
        """
        A started monitor; see L{makeMonitor}.
        """
        monitor = self.makeMonitor(count, **kwargs)
        monitor.startService()
        return monitor

    def ready(
        self,
        monitor: GameServerMonitor,
        serverId: str = "gs1",
        capacity: int = 10,
    ) -> RecordingControl:
        """
        Report C{Ready} for a game server through a recording control.
        """
        control = RecordingControl()
        monitor.controlReady(monitor.servers[serverId], control, "echo", capacity)  # type: ignore[arg-type]
        return control

    def assertRestartsAfter(self, delay: float, step: float = 0.5) -> FakeProcess:
        """
        Assert that a new process is spawned exactly C{delay} seconds from now,
        and not one C{step} before.

        :return: the new process.
        """
        count = len(self.reactor.processes)
        self.reactor.advance(delay - step)
        self.assertEqual(
            len(self.reactor.processes), count, f"restarted before {delay} s"
        )
        self.reactor.advance(step)
        self.assertEqual(
            len(self.reactor.processes), count + 1, f"not restarted after {delay} s"
        )
        return self.reactor.processes[-1]

    def assertReconnectsAfter(self, delay: float, step: float = 0.5) -> None:
        """
        Assert that a new control connection is opened exactly C{delay}
        seconds from now, and not one C{step} before.
        """
        count = len(self.reactor.tcpClients)
        self.reactor.advance(delay - step)
        self.assertEqual(
            len(self.reactor.tcpClients), count, f"reconnected before {delay} s"
        )
        self.reactor.advance(step)
        self.assertEqual(
            len(self.reactor.tcpClients),
            count + 1,
            f"not reconnected after {delay} s",
        )


class SpawnTests(MonitorTestCase):
    """
    Tests of how L{GameServerMonitor} spawns local game servers and hands them
    their control token.
    """

    def test_nothingBeforeStart(self) -> None:
        """
        A monitor that is not started spawns nothing and connects nowhere, but
        already knows its game servers, each C{STARTING}.
        """
        monitor = self.makeMonitor(count=2)
        self.assertEqual(self.reactor.processes, [])
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(list(monitor.servers), ["gs1", "gs2"])
        for server in monitor.servers.values():
            self.assertIs(server.state, ServerState.STARTING)
            self.assertFalse(server.remote)

    def test_spawnsCount(self) -> None:
        """
        C{startService} spawns C{count} processes, each with the command line
        of L{childCommand}: the configured Python running
        C{aphelion.game.child} with C{--game} and its C{--server-id}.
        """
        self.startMonitor(count=3)
        self.assertEqual(len(self.reactor.processes), 3)
        for i, process in enumerate(self.reactor.processes):
            serverId = f"gs{i + 1}"
            self.assertEqual(process.executable, PYTHON)
            self.assertEqual(process.args, childCommand(GAME, serverId, PYTHON))
            self.assertEqual(process.args[:3], [PYTHON, "-m", "aphelion.game.child"])
            self.assertEqual(process.args[process.args.index("--game") + 1], GAME)
            self.assertEqual(
                process.args[process.args.index("--server-id") + 1], serverId
            )

    def test_playerWriteLimitPassed(self) -> None:
        """
        The monitor's C{playerWriteLimit} and C{logInterval} reach each child
        as C{--player-write-limit} and C{--log-interval}; by default 4 MiB
        and 10 s.
        """
        self.startMonitor(count=1)
        args = self.reactor.processes[0].args
        self.assertEqual(args[args.index("--player-write-limit") + 1], "4194304")
        self.assertEqual(args[args.index("--log-interval") + 1], "10.0")
        self.startMonitor(count=1, playerWriteLimit=262144, logInterval=2.5)
        args = self.reactor.processes[-1].args
        self.assertEqual(args[args.index("--player-write-limit") + 1], "262144")
        self.assertEqual(args[args.index("--log-interval") + 1], "2.5")
        self.assertEqual(
            args,
            childCommand(GAME, "gs1", PYTHON, playerWriteLimit=262144, logInterval=2.5),
        )

    def test_seatHoldPassed(self) -> None:
        """
        The monitor's C{seatHold} reaches each child as C{--seat-hold}; by
        default 15 s. A negative one is refused.
        """
        self.startMonitor(count=1)
        args = self.reactor.processes[0].args
        self.assertEqual(args[args.index("--seat-hold") + 1], "15.0")
        self.startMonitor(count=1, seatHold=0.5)
        args = self.reactor.processes[-1].args
        self.assertEqual(args[args.index("--seat-hold") + 1], "0.5")
        for bad in (-1, float("nan")):
            self.assertRaises(ValueError, self.makeMonitor, seatHold=bad)

    def test_newClientTokenPerSpawn(self) -> None:
        """
        Every start gives a game server a new client token, apart from its
        control token; the child never gets it on its standard input (it
        comes in C{Control}).
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        first = server.clientToken
        self.assertEqual(len(first), 32)
        self.assertNotEqual(first, server.token)
        crash(self.reactor.processes[0])
        process = self.assertRestartsAfter(1)
        self.assertNotEqual(server.clientToken, first)
        self.assertNotIn(
            server.clientToken.hex().encode("ascii"), b"".join(process.stdin)
        )

    def test_badPlayerWriteLimit(self) -> None:
        """
        A player write limit or log interval that is not positive is refused
        when the monitor is made.
        """
        self.assertRaises(ValueError, self.makeMonitor, playerWriteLimit=0)
        self.assertRaises(ValueError, self.makeMonitor, logInterval=0)

    def test_spawnsWithCurrentPython(self) -> None:
        """
        By default the children run on the Python that runs the AuthProxy.
        """
        self.startMonitor(python=sys.executable)
        self.assertEqual(self.reactor.processes[0].executable, sys.executable)
        self.assertEqual(self.reactor.processes[0].args[0], sys.executable)

    def test_serverRecordsProcess(self) -> None:
        """
        Each game server holds its process once spawned.
        """
        monitor = self.startMonitor(count=2)
        self.assertEqual(
            [server.process for server in monitor.servers.values()],
            self.reactor.processes,
        )

    def test_tokenOnStdinOnly(self) -> None:
        """
        The 32-byte control token reaches the child as one hex line on its
        standard input, which stays open; it is in no element of the command
        line and in no name or value of the environment.
        """
        monitor = self.startMonitor()
        token = monitor.servers["gs1"].token
        process = self.reactor.processes[0]
        self.assertEqual(len(token), 32)
        self.assertEqual(process.stdin, [token.hex().encode("ascii") + b"\n"])
        self.assertFalse(process.stdinClosed)
        for secret in (token.hex(), token.hex().upper(), token.decode("latin-1")):
            for arg in process.args:
                self.assertNotIn(secret, arg)
            assert process.env is not None
            for name, value in process.env.items():
                self.assertNotIn(secret, name)
                self.assertNotIn(secret, value)

    def test_environmentInherited(self) -> None:
        """
        The child inherits the AuthProxy's environment, and nothing is added
        to it.
        """
        self.startMonitor()
        self.assertEqual(self.reactor.processes[0].env, dict(os.environ))

    def test_tokensDiffer(self) -> None:
        """
        Every game server gets its own token.
        """
        monitor = self.startMonitor(count=3)
        tokens = {server.token for server in monitor.servers.values()}
        self.assertEqual(len(tokens), 3)

    def test_newTokenPerSpawn(self) -> None:
        """
        A restarted game server gets a new token, and its new process gets the
        new one.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        first = server.token
        crash(self.reactor.processes[0])
        process = self.assertRestartsAfter(1)
        self.assertNotEqual(server.token, first)
        self.assertEqual(len(server.token), 32)
        self.assertEqual(process.stdin, [server.token.hex().encode("ascii") + b"\n"])

    def test_reprHidesToken(self) -> None:
        """
        The token is not in the C{repr} of a L{GameServer} or a
        L{RemoteGameServer}, so that logging one cannot leak it.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        self.assertNotIn(repr(server.token), repr(server))
        self.assertNotIn(server.token.hex(), repr(server))
        remote = RemoteGameServer("192.0.2.7", 7000, b"\x01" * 32)
        self.assertNotIn(repr(remote.token), repr(remote))


class PortLineTests(MonitorTestCase):
    """
    Tests of the C{PORT n} line a child writes to its standard output.
    """

    def test_portLineConnects(self) -> None:
        """
        C{PORT n} on the child's standard output opens the control connection
        to 127.0.0.1:n with a factory from C{makeControlFactory}, made for this
        monitor and game server.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.processes[0].stdout(b"PORT 4321\n")
        self.assertEqual(server.port, 4321)
        [(made, madeServer, factory)] = self.factories.made
        self.assertIs(made, monitor)
        self.assertIs(madeServer, server)
        [(host, port, connected, timeout, _)] = self.reactor.tcpClients
        self.assertEqual((host, port, timeout), ("127.0.0.1", 4321, 10.0))
        self.assertIs(connected, factory)

    def test_connectTimeout(self) -> None:
        """
        The control connection is opened with the configured connect timeout.
        """
        self.startMonitor(connectTimeout=2.5)
        self.reactor.processes[0].stdout(b"PORT 4321\n")
        self.assertEqual(self.reactor.tcpClients[0][3], 2.5)

    def test_portLineInPieces(self) -> None:
        """
        The port line may arrive in pieces and end with CRLF.
        """
        monitor = self.startMonitor()
        process = self.reactor.processes[0]
        process.stdout(b"PO")
        process.stdout(b"RT 43")
        self.assertEqual(self.reactor.tcpClients, [])
        process.stdout(b"21\r\n")
        self.assertEqual(monitor.servers["gs1"].port, 4321)
        self.assertEqual(self.reactor.tcpClients[0][:2], ("127.0.0.1", 4321))
        self.assertEqual(process.signals, [])

    def test_laterOutputIgnored(self) -> None:
        """
        Only the first line counts: what the child writes to its standard
        output afterwards opens nothing and kills nothing.
        """
        self.startMonitor()
        process = self.reactor.processes[0]
        process.stdout(b"PORT 4321\nPORT 1234\n")
        process.stdout(b"garbage\n")
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.assertEqual(process.signals, [])

    def test_malformedPortLine(self) -> None:
        """
        A first line that is not C{PORT n} kills the process and logs an
        error with the server id; no connection is opened.
        """
        for line in (b"HELLO\n", b"PORT abc\n", b"PORT \n", b"PORT 12 34\n"):
            reactor = self.reactor = FakeProcessReactor()
            self.startMonitor()
            with capturedLogs() as events:
                reactor.processes[0].stdout(line)
            self.assertEqual(reactor.processes[0].signals, ["KILL"], line)
            self.assertEqual(reactor.tcpClients, [], line)
            [event] = [e for e in events if e["log_level"] is LogLevel.error]
            self.assertEqual(
                formatEvent(event),
                "game server gs1: bad port line from the game server",
            )

    def test_portOutOfRange(self) -> None:
        """
        A port that is not a TCP port (0, or above 65535) is a malformed port
        line: the process is killed and nothing is connected.
        """
        for line in (b"PORT 0\n", b"PORT 65536\n"):
            reactor = self.reactor = FakeProcessReactor()
            self.startMonitor()
            reactor.processes[0].stdout(line)
            self.assertEqual(reactor.processes[0].signals, ["KILL"], line)
            self.assertEqual(reactor.tcpClients, [], line)

    def test_noNewline(self) -> None:
        """
        More than 256 bytes of standard output without a newline kill the
        process.
        """
        self.startMonitor()
        process = self.reactor.processes[0]
        process.stdout(b"x" * 256)
        self.assertEqual(process.signals, [])
        process.stdout(b"x")
        self.assertEqual(process.signals, ["KILL"])
        self.assertEqual(self.reactor.tcpClients, [])

    def test_malformedThenRestart(self) -> None:
        """
        A process killed for a bad port line is restarted like any other that
        died.
        """
        monitor = self.startMonitor()
        process = self.reactor.processes[0]
        process.stdout(b"nonsense\n")
        process.exit(ProcessTerminated(signal=9))
        self.assertIs(monitor.servers["gs1"].state, ServerState.CRASHED)
        self.assertRestartsAfter(1)


class StderrTests(MonitorTestCase):
    """
    Tests of the child's standard error, which is its log.
    """

    def test_linesLogged(self) -> None:
        """
        Each line of the child's standard error is logged with its server id,
        once complete.
        """
        self.startMonitor(count=2)
        process = self.reactor.processes[1]
        with capturedLogs() as events:
            process.stderr(b"hello\nwor")
            self.assertEqual(messages(events), ["[gs2] hello"])
            process.stderr(b"ld\n")
        self.assertEqual(messages(events), ["[gs2] hello", "[gs2] world"])
        self.assertEqual([e["serverId"] for e in events], ["gs2", "gs2"])
        self.assertEqual([e["line"] for e in events], ["hello", "world"])

    def test_undecodableBytes(self) -> None:
        """
        Bytes that are not UTF-8 are logged with replacement characters.
        """
        self.startMonitor()
        with capturedLogs() as events:
            self.reactor.processes[0].stderr(b"caf\xe9\n")
        self.assertEqual(messages(events), ["[gs1] caf\ufffd"])


class CrashTests(MonitorTestCase):
    """
    Tests of what happens when a game server process exits, and of the
    restart back-off.
    """

    def test_exitCrashes(self) -> None:
        """
        A process that exits leaves its server C{CRASHED}, its lost observers
        called, and is restarted after 1 s.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        crash(self.reactor.processes[0])
        self.assertIs(server.state, ServerState.CRASHED)
        self.assertIsNone(server.process)
        self.assertEqual(self.lost, [server])
        process = self.assertRestartsAfter(1)
        self.assertIs(server.state, ServerState.STARTING)
        self.assertIs(server.process, process)
        self.assertEqual(process.args, childCommand(GAME, "gs1", PYTHON))

    def test_cleanExitRestarts(self) -> None:
        """
        A process that exits with status 0 without being drained is restarted
        too.
        """
        monitor = self.startMonitor()
        self.reactor.processes[0].exit()
        self.assertIs(monitor.servers["gs1"].state, ServerState.CRASHED)
        self.assertRestartsAfter(1)

    def test_crashForgetsPlayers(self) -> None:
        """
        A crashed server no longer counts its players, pending seats or
        readiness, and has no room.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        self.ready(monitor)
        monitor.controlStatus(server, 4, 10, True)
        server.pending = 2
        crash(self.reactor.processes[0])
        self.assertEqual((server.players, server.pending), (0, 0))
        self.assertIsNone(server.control)
        self.assertFalse(server.accepting)
        self.assertFalse(server.hasRoom())
        self.assertIsNone(monitor.pick())

    def test_backoffDoubles(self) -> None:
        """
        Restarts back off: 1 s, then 2, 4, 8, 16, 32, then at most
        C{restartMax} (60 s).
        """
        self.startMonitor()
        for delay in (1, 2, 4, 8, 16, 32, 60, 60, 60):
            crash(self.reactor.processes[-1])
            self.assertRestartsAfter(delay)

    def test_backoffConfigured(self) -> None:
        """
        C{restartInitial} and C{restartMax} set the first and the longest
        delay.
        """
        self.startMonitor(restartInitial=0.5, restartMax=3.0)
        for delay in (0.5, 1, 2, 3, 3):
            crash(self.reactor.processes[-1])
            self.assertRestartsAfter(delay, step=0.25)

    def test_backoffAfterManyFailures(self) -> None:
        """
        A server that keeps dying is restarted every C{restartMax} seconds for
        as long as it keeps dying: the back-off does not break after 1024
        failures.
        """
        self.startMonitor()
        for delay in (1, 2, 4, 8, 16, 32):
            crash(self.reactor.processes[-1])
            self.assertRestartsAfter(delay)
        for _ in range(1100):
            crash(self.reactor.processes[-1])
            self.assertRestartsAfter(60)

    def test_backoffResetsWhenStable(self) -> None:
        """
        A server that was C{READY} for C{stableAfter} seconds before it died
        is restarted after C{restartInitial} again, and the doubling starts
        over.
        """
        monitor = self.startMonitor()
        for delay in (1, 2, 4):
            crash(self.reactor.processes[-1])
            self.assertRestartsAfter(delay)
        self.ready(monitor)
        self.reactor.advance(60)
        crash(self.reactor.processes[-1])
        self.assertRestartsAfter(1)
        crash(self.reactor.processes[-1])
        self.assertRestartsAfter(2)

    def test_backoffStableAfterConfigured(self) -> None:
        """
        C{stableAfter} sets how long a server must have been ready for the
        back-off to reset.
        """
        monitor = self.startMonitor(stableAfter=10.0)
        for delay in (1, 2):
            crash(self.reactor.processes[-1])
            self.assertRestartsAfter(delay)
        self.ready(monitor)
        self.reactor.advance(10)
        crash(self.reactor.processes[-1])
        self.assertRestartsAfter(1)

    def test_backoffKeptWhenBrieflyReady(self) -> None:
        """
        A server that was C{READY} for less than C{stableAfter} keeps backing
        off.
        """
        monitor = self.startMonitor()
        for delay in (1, 2, 4):
            crash(self.reactor.processes[-1])
            self.assertRestartsAfter(delay)
        self.ready(monitor)
        self.reactor.advance(59)
        crash(self.reactor.processes[-1])
        self.assertRestartsAfter(8)

    def test_backoffPerServer(self) -> None:
        """
        Each server backs off on its own.
        """
        monitor = self.startMonitor(count=2)
        gs1, gs2 = self.reactor.processes
        crash(gs1)
        self.assertRestartsAfter(1)
        crash(self.reactor.processes[-1])
        crash(gs2)
        self.assertEqual(monitor.servers["gs1"].failures, 2)
        self.assertEqual(monitor.servers["gs2"].failures, 1)
        self.assertRestartsAfter(1)
        self.assertEqual(serverIdOf(self.reactor.processes[-1]), "gs2")
        self.assertRestartsAfter(1)
        self.assertEqual(serverIdOf(self.reactor.processes[-1]), "gs1")

    def test_lostObserverFailure(self) -> None:
        """
        An observer that raises is logged, and the others are still called.
        """
        monitor = self.makeMonitor()

        def broken(server: GameServer) -> None:
            raise RuntimeError("observer broke")

        later: list[GameServer] = []
        monitor.addLostObserver(broken)
        monitor.addLostObserver(later.append)
        monitor.startService()
        crash(self.reactor.processes[0])
        server = monitor.servers["gs1"]
        self.assertEqual(self.lost, [server])
        self.assertEqual(later, [server])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertRestartsAfter(1)


class ControlTests(MonitorTestCase):
    """
    Tests of the reports of a game server's control connection.
    """

    def test_controlReady(self) -> None:
        """
        C{controlReady} makes the server C{READY} with the name and capacity of
        C{Ready}, accepting players, through that control connection.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        control = self.ready(monitor, capacity=16)
        self.assertIs(server.state, ServerState.READY)
        self.assertIs(server.control, control)
        self.assertEqual((server.name, server.capacity), ("echo", 16))
        self.assertTrue(server.accepting)
        self.assertTrue(server.hasRoom())
        self.assertIs(monitor.pick(), server)

    def test_controlStatus(self) -> None:
        """
        C{controlStatus} updates the players, capacity and whether the server
        accepts players.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        self.ready(monitor)
        monitor.controlStatus(server, 7, 12, False)
        self.assertEqual(
            (server.players, server.capacity, server.accepting), (7, 12, False)
        )
        self.assertIs(server.state, ServerState.READY)
        self.assertFalse(server.hasRoom())
        monitor.controlStatus(server, 12, 12, True)
        self.assertFalse(server.hasRoom())
        monitor.controlStatus(server, 11, 12, True)
        self.assertTrue(server.hasRoom())

    def test_controlLostKillsProcess(self) -> None:
        """
        When the control connection of a local server is lost, its process is
        killed; it is restarted only once it has exited.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        process = self.reactor.processes[0]
        control = self.ready(monitor)
        monitor.controlLost(server, control)  # type: ignore[arg-type]
        self.assertEqual(process.signals, ["KILL"])
        self.assertIsNone(server.control)
        self.assertFalse(server.hasRoom())
        self.reactor.advance(120)
        self.assertEqual(len(self.reactor.processes), 1)
        self.assertEqual(self.lost, [])
        process.exit(ProcessTerminated(signal=9))
        self.assertIs(server.state, ServerState.CRASHED)
        self.assertEqual(self.lost, [server])
        self.assertRestartsAfter(1)

    def test_controlFailedKillsProcess(self) -> None:
        """
        A control connection that could not be opened (no control object)
        kills the process too.
        """
        monitor = self.startMonitor()
        process = self.reactor.processes[0]
        process.stdout(b"PORT 4321\n")
        monitor.controlLost(monitor.servers["gs1"], None)
        self.assertEqual(process.signals, ["KILL"])

    def test_controlLostAfterExitIgnored(self) -> None:
        """
        The loss of the control connection of a process that has already
        exited restarts nothing more.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        control = self.ready(monitor)
        crash(self.reactor.processes[0])
        monitor.controlLost(server, control)  # type: ignore[arg-type]
        self.assertIs(server.state, ServerState.CRASHED)
        self.assertEqual(self.lost, [server])
        process = self.assertRestartsAfter(1)
        process.stdout(b"PORT 4321\n")
        self.reactor.advance(120)
        self.assertEqual(len(self.reactor.processes), 2)
        self.assertEqual(process.signals, [])

    def test_noPortLineKilled(self) -> None:
        """
        A child that does not report its port within the connect timeout is
        killed (and so restarted); one that does is left alone.
        """
        monitor = self.startMonitor()
        self.reactor.advance(monitor.connectTimeout - 0.1)
        self.assertEqual(self.reactor.processes[0].signals, [])
        self.reactor.advance(0.1)
        self.assertEqual(self.reactor.processes[0].signals, ["KILL"])

    def test_staleControlLostIgnored(self) -> None:
        """
        The loss of a control connection that is not the server's current one
        is ignored.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        process = self.reactor.processes[0]
        control = self.ready(monitor)
        monitor.controlLost(server, RecordingControl())  # type: ignore[arg-type]
        monitor.controlLost(server, None)
        self.assertEqual(process.signals, [])
        self.assertIs(server.control, control)
        self.assertIs(server.state, ServerState.READY)

    def test_staleControlLostAfterRestart(self) -> None:
        """
        The loss of the control connection of an earlier process, reported
        after the server was restarted, does not kill the new process.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        old = self.ready(monitor)
        crash(self.reactor.processes[0])
        process = self.assertRestartsAfter(1)
        monitor.controlLost(server, old)  # type: ignore[arg-type]
        self.assertEqual(process.signals, [])
        self.assertIs(server.state, ServerState.STARTING)

    def test_staleConnectFailureAfterRestart(self) -> None:
        """
        A control connection attempt of an earlier start that fails after
        the server was restarted kills nothing: each attempt's factory
        carries the generation of the start it belongs to.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        self.reactor.processes[0].stdout(b"PORT 4321\n")
        [(_, _, oldFactory)] = self.factories.made
        crash(self.reactor.processes[0])
        process = self.assertRestartsAfter(1)
        self.assertEqual(oldFactory.generation, server.generation - 1)  # type: ignore[attr-defined]
        monitor.controlLost(server, oldFactory)  # type: ignore[arg-type]
        self.assertEqual(process.signals, [])
        self.assertIs(server.state, ServerState.STARTING)

    def test_controlLostWhenStopped(self) -> None:
        """
        Once the monitor is stopped, a lost control connection restarts and
        kills nothing.
        """
        monitor = self.makeMonitor()
        server = monitor.servers["gs1"]
        control = self.ready(monitor)
        monitor.controlLost(server, control)  # type: ignore[arg-type]
        self.assertIsNone(server.control)
        self.reactor.advance(120)
        self.assertEqual(self.reactor.processes, [])
        self.assertEqual(self.reactor.tcpClients, [])


class RecordingGate:
    """
    A control gate that allows what L{allowed} says and records releases.
    """

    def __init__(self) -> None:
        self.allowed = False
        self.releasedServers: list[GameServer] = []

    def mayControl(self, server: GameServer) -> bool:
        """
        Whether this node may hold C{server}'s control connection.
        """
        return self.allowed

    def released(self, server: GameServer) -> None:
        """
        Record the release.
        """
        self.releasedServers.append(server)


class RemoteTests(MonitorTestCase):
    """
    Tests of game servers that run elsewhere.
    """

    remote = RemoteGameServer("192.0.2.7", 7000, b"\x07" * 32)

    def startRemote(self, **kwargs: Any) -> GameServerMonitor:
        """
        A started monitor with one remote game server and no local ones.
        """
        monitor = self.makeMonitor(count=0, remotes=[self.remote], **kwargs)
        monitor.startService()
        return monitor

    def test_connectedDirectly(self) -> None:
        """
        A remote game server is not spawned: its control connection is opened
        to its address at start, with a factory from C{makeControlFactory}.
        """
        monitor = self.startRemote()
        self.assertEqual(self.reactor.processes, [])
        server = monitor.servers["remote1"]
        self.assertTrue(server.remote)
        self.assertEqual(server.token, self.remote.token)
        self.assertEqual((server.host, server.port), ("192.0.2.7", 7000))
        [(host, port, factory, timeout, _)] = self.reactor.tcpClients
        self.assertEqual((host, port, timeout), ("192.0.2.7", 7000, 10.0))
        self.assertEqual(self.factories.made, [(monitor, server, factory)])

    def test_sharedRemoteWaitsForControl(self) -> None:
        """
        A remote game server shared by a cluster is named by its address,
        and its control connection is opened only once the control gate
        lets this node hold it (asked again every C{claimInterval}).
        """
        gate = RecordingGate()
        monitor = self.makeMonitor(count=0, remotes=[self.remote], sharedRemotes=True)
        monitor.controlGate = gate
        monitor.startService()
        [serverId] = monitor.servers
        self.assertEqual(serverId, "remote-192.0.2.7-7000")
        self.assertEqual(self.reactor.tcpClients, [])
        gate.allowed = True
        self.reactor.advance(monitor.claimInterval)
        [(host, port, _, _, _)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("192.0.2.7", 7000))

    def test_sharedRemoteLetGo(self) -> None:
        """
        A node that stops lets go of a shared remote game server: no
        Shutdown (another node takes it over), the gate is told.
        """
        gate = RecordingGate()
        gate.allowed = True
        monitor = self.makeMonitor(count=0, remotes=[self.remote], sharedRemotes=True)
        monitor.controlGate = gate
        monitor.startService()
        server = monitor.servers["remote-192.0.2.7-7000"]
        control = RecordingControl()
        monitor.controlReady(server, control, "chat", 10)
        self.successResultOf(monitor.stopService())
        self.assertEqual(control.shutdowns, [])
        self.assertEqual(gate.releasedServers, [server])
        self.assertIs(server.state, ServerState.STOPPED)

    def test_localAndRemote(self) -> None:
        """
        Local servers are numbered C{gs1}… and remote ones C{remote1}…, in
        the order configured.
        """
        other = RemoteGameServer("192.0.2.8", 7001, b"\x08" * 32)
        monitor = self.makeMonitor(count=2, remotes=[self.remote, other])
        monitor.startService()
        self.assertEqual(list(monitor.servers), ["gs1", "gs2", "remote1", "remote2"])
        self.assertEqual(monitor.servers["remote2"].host, "192.0.2.8")
        self.assertEqual(len(self.reactor.processes), 2)
        self.assertEqual(
            [client[:2] for client in self.reactor.tcpClients],
            [("192.0.2.7", 7000), ("192.0.2.8", 7001)],
        )

    def test_reconnectBackoff(self) -> None:
        """
        A remote server whose control connection fails is C{CRASHED}, its lost
        observers are called, and it is reconnected after 1 s, then 2, 4, …
        at most C{restartMax}; its token stays the configured one.
        """
        monitor = self.startRemote(restartMax=8.0)
        server = monitor.servers["remote1"]
        for delay in (1, 2, 4, 8, 8):
            monitor.controlLost(server, None)
            self.assertIs(server.state, ServerState.CRASHED)
            self.assertReconnectsAfter(delay)
            self.assertIs(server.state, ServerState.STARTING)
        self.assertEqual(len(self.lost), 5)
        self.assertEqual(server.token, self.remote.token)
        self.assertEqual(
            {client[:2] for client in self.reactor.tcpClients},
            {("192.0.2.7", 7000)},
        )

    def test_reconnectAfterReady(self) -> None:
        """
        A ready remote server whose control connection is lost is reconnected
        after 1 s, and the back-off resets once it was ready for long.
        """
        monitor = self.startRemote()
        server = monitor.servers["remote1"]
        monitor.controlLost(server, None)
        self.assertReconnectsAfter(1)
        control = self.ready(monitor, "remote1")
        self.reactor.advance(60)
        monitor.controlLost(server, control)  # type: ignore[arg-type]
        self.assertIs(server.state, ServerState.CRASHED)
        self.assertIsNone(server.control)
        self.assertEqual(self.lost, [server, server])
        self.assertReconnectsAfter(1)

    def test_drainRemote(self) -> None:
        """
        A drained remote server is sent C{Shutdown}; when its control
        connection closes it is C{STOPPED}, lost, and not reconnected.
        """
        monitor = self.startRemote()
        server = monitor.servers["remote1"]
        control = self.ready(monitor, "remote1")
        monitor.drain("remote1", "maintenance")
        self.assertEqual(control.shutdowns, [(10000, "maintenance")])
        self.assertIs(server.state, ServerState.DRAINING)
        monitor.controlLost(server, control)  # type: ignore[arg-type]
        self.assertIs(server.state, ServerState.STOPPED)
        self.assertEqual(self.lost, [server])
        self.reactor.advance(120)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_readyAfterStopStaysStopped(self) -> None:
        """
        A remote server stopped before its control connection said C{Ready}
        does not become C{READY} when it does, and is not picked.
        """
        monitor = self.startRemote()
        server = monitor.servers["remote1"]
        d = monitor.stopService()
        self.successResultOf(d)
        self.assertIs(server.state, ServerState.STOPPED)
        self.ready(monitor, "remote1")
        self.assertIs(server.state, ServerState.STOPPED)
        self.assertIsNone(monitor.pick())


class PickTests(MonitorTestCase):
    """
    Tests of L{GameServerMonitor.pick}, which chooses the server that seats
    the next player.
    """

    def readyMonitor(self, seating: str = "spread") -> GameServerMonitor:
        """
        A monitor with three ready servers of capacity 10 and no players.
        """
        monitor = self.makeMonitor(count=3, seating=seating)
        for serverId in monitor.servers:
            self.ready(monitor, serverId, capacity=10)
        return monitor

    def load(self, monitor: GameServerMonitor, **players: tuple[int, int]) -> None:
        """
        Set C{(players, pending)} of servers by id.
        """
        for serverId, (count, pending) in players.items():
            server = monitor.servers[serverId]
            server.players, server.pending = count, pending

    def test_spreadFewest(self) -> None:
        """
        "spread" seats on the server with the fewest players, counting seats
        in progress.
        """
        monitor = self.readyMonitor()
        self.load(monitor, gs1=(5, 0), gs2=(2, 2), gs3=(3, 0))
        self.assertIs(monitor.pick(), monitor.servers["gs3"])
        self.load(monitor, gs3=(3, 2))
        self.assertIs(monitor.pick(), monitor.servers["gs2"])

    def test_spreadIsDefault(self) -> None:
        """
        The default seating is "spread".
        """
        monitor = self.makeMonitor()
        self.assertEqual(monitor.seating, "spread")

    def test_linksCount(self) -> None:
        """
        A server's load counts the players this AuthProxy linked to it even
        when its last C{Status} does not show them yet.
        """
        monitor = self.readyMonitor()
        self.load(monitor, gs1=(1, 0), gs2=(2, 0), gs3=(3, 0))
        monitor.servers["gs1"].links.update(object() for _ in range(3))  # type: ignore[misc]
        self.assertEqual(monitor.servers["gs1"].load(), 3)
        self.assertIs(monitor.pick(), monitor.servers["gs2"])
        monitor.servers["gs1"].links.update(object() for _ in range(7))  # type: ignore[misc]
        self.assertFalse(monitor.servers["gs1"].hasRoom())

    def test_tiesToFirst(self) -> None:
        """
        Ties go to the server configured first, with either seating.
        """
        for seating in ("spread", "fill"):
            monitor = self.readyMonitor(seating)
            self.assertIs(monitor.pick(), monitor.servers["gs1"], seating)
        monitor = self.readyMonitor("spread")
        self.load(monitor, gs1=(4, 0), gs2=(2, 0), gs3=(1, 1))
        self.assertIs(monitor.pick(), monitor.servers["gs2"])
        monitor = self.readyMonitor("fill")
        self.load(monitor, gs1=(2, 0), gs2=(5, 0), gs3=(4, 1))
        self.assertIs(monitor.pick(), monitor.servers["gs2"])

    def test_skipsNotReady(self) -> None:
        """
        A server that is not C{READY} is not picked.
        """
        monitor = self.makeMonitor(count=3)
        self.ready(monitor, "gs2")
        self.ready(monitor, "gs3")
        self.load(monitor, gs2=(5, 0), gs3=(6, 0))
        self.assertIs(monitor.pick(), monitor.servers["gs2"])

    def test_skipsNotAccepting(self) -> None:
        """
        A server whose C{Status} says it does not accept players is not
        picked.
        """
        monitor = self.readyMonitor()
        monitor.controlStatus(monitor.servers["gs1"], 0, 10, False)
        monitor.controlStatus(monitor.servers["gs2"], 4, 10, True)
        monitor.controlStatus(monitor.servers["gs3"], 6, 10, True)
        self.assertIs(monitor.pick(), monitor.servers["gs2"])

    def test_skipsFull(self) -> None:
        """
        A server whose players and seats in progress reach its capacity is not
        picked.
        """
        monitor = self.readyMonitor()
        self.load(monitor, gs1=(10, 0), gs2=(9, 1), gs3=(9, 0))
        self.assertIs(monitor.pick(), monitor.servers["gs3"])
        self.load(monitor, gs3=(9, 1))
        self.assertIsNone(monitor.pick())

    def test_skipsWithoutControl(self) -> None:
        """
        A server whose control connection is gone is not picked.
        """
        monitor = self.readyMonitor()
        self.load(monitor, gs2=(5, 0), gs3=(5, 0))
        monitor.servers["gs1"].control = None
        self.assertIs(monitor.pick(), monitor.servers["gs2"])

    def test_skipsDraining(self) -> None:
        """
        A draining server is not picked.
        """
        monitor = self.readyMonitor()
        self.load(monitor, gs2=(5, 0), gs3=(6, 0))
        monitor.drain("gs1", "maintenance")
        self.assertIs(monitor.pick(), monitor.servers["gs2"])

    def test_exclude(self) -> None:
        """
        The server passed as C{exclude} is not picked.
        """
        monitor = self.readyMonitor()
        self.load(monitor, gs1=(1, 0), gs2=(5, 0), gs3=(3, 0))
        self.assertIs(
            monitor.pick(exclude=monitor.servers["gs1"]), monitor.servers["gs3"]
        )

    def test_noneWithRoom(self) -> None:
        """
        With no server that has room, nothing is picked.
        """
        self.assertIsNone(self.makeMonitor(count=0).pick())
        self.assertIsNone(self.makeMonitor(count=2).pick())
        for seating in ("spread", "fill"):
            monitor = self.readyMonitor(seating)
            self.load(monitor, gs2=(10, 0), gs3=(8, 2))
            self.assertIsNone(monitor.pick(exclude=monitor.servers["gs1"]), seating)

    def test_fillMost(self) -> None:
        """
        "fill" seats on the server with the most players, counting seats in
        progress, that still has room.
        """
        monitor = self.readyMonitor("fill")
        self.load(monitor, gs1=(2, 0), gs2=(5, 2), gs3=(10, 0))
        self.assertIs(monitor.pick(), monitor.servers["gs2"])
        self.load(monitor, gs2=(5, 5))
        self.assertIs(monitor.pick(), monitor.servers["gs1"])

    def test_fillExclude(self) -> None:
        """
        "fill" skips the C{exclude} server and those that do not accept
        players.
        """
        monitor = self.readyMonitor("fill")
        self.load(monitor, gs1=(8, 0), gs2=(6, 0), gs3=(4, 0))
        monitor.controlStatus(monitor.servers["gs2"], 6, 10, False)
        self.assertIs(
            monitor.pick(exclude=monitor.servers["gs1"]), monitor.servers["gs3"]
        )

    def test_badSeating(self) -> None:
        """
        A seating other than "spread" or "fill" is refused.
        """
        self.assertRaises(ValueError, self.makeMonitor, seating="random")


class DrainTests(MonitorTestCase):
    """
    Tests of L{GameServerMonitor.drain}.
    """

    def test_drainSendsShutdown(self) -> None:
        """
        Draining a ready server sends C{Shutdown} with the drain deadline in
        milliseconds and the reason; it is C{DRAINING} and takes no players.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        control = self.ready(monitor)
        monitor.drain("gs1", "maintenance")
        self.assertEqual(control.shutdowns, [(10000, "maintenance")])
        self.assertIs(server.state, ServerState.DRAINING)
        self.assertFalse(server.accepting)
        self.assertIsNone(monitor.pick())
        self.assertEqual(self.reactor.processes[0].signals, [])

    def test_drainDeadline(self) -> None:
        """
        The deadline is C{drainDeadline} unless given.
        """
        monitor = self.startMonitor(count=2, drainDeadline=4.0)
        first = self.ready(monitor, "gs1")
        second = self.ready(monitor, "gs2")
        monitor.drain("gs1", "soon")
        monitor.drain("gs2", "now", deadline=0.25)
        self.assertEqual(first.shutdowns, [(4000, "soon")])
        self.assertEqual(second.shutdowns, [(250, "now")])

    def test_drainedNotRestarted(self) -> None:
        """
        A drained server whose process exits is C{STOPPED}, lost, and not
        restarted; a later control loss changes nothing.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        control = self.ready(monitor)
        monitor.drain("gs1", "maintenance")
        monitor.controlLost(server, control)  # type: ignore[arg-type]
        self.assertEqual(self.reactor.processes[0].signals, [])
        self.reactor.processes[0].exit()
        self.assertIs(server.state, ServerState.STOPPED)
        self.assertIsNone(server.process)
        self.assertEqual(self.lost, [server])
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.processes), 1)
        self.assertEqual(len(control.shutdowns), 1)

    def test_drainTwice(self) -> None:
        """
        Draining a server that is already draining does nothing more.
        """
        monitor = self.startMonitor()
        control = self.ready(monitor)
        monitor.drain("gs1", "first")
        monitor.drain("gs1", "second")
        self.assertEqual(control.shutdowns, [(10000, "first")])

    def test_drainWithoutControl(self) -> None:
        """
        A server that has no control connection yet cannot be asked: its
        process is killed, and it is C{STOPPED} once it exits.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        process = self.reactor.processes[0]
        monitor.drain("gs1", "maintenance")
        self.assertEqual(process.signals, ["KILL"])
        self.assertIs(server.state, ServerState.DRAINING)
        process.exit(ProcessTerminated(signal=9))
        self.assertIs(server.state, ServerState.STOPPED)
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.processes), 1)

    def test_readyWhileDraining(self) -> None:
        """
        A server drained before its C{Ready} arrived stays C{DRAINING} when it
        does, is not picked, and is not restarted when its process exits.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        process = self.reactor.processes[0]
        monitor.drain("gs1", "maintenance")
        self.ready(monitor)  # the Ready was already on its way
        self.assertIs(server.state, ServerState.DRAINING)
        self.assertIsNone(monitor.pick())
        process.exit(ProcessTerminated(signal=9))
        self.assertIs(server.state, ServerState.STOPPED)
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.processes), 1)

    def test_drainCrashed(self) -> None:
        """
        Draining a crashed server cancels its restart: it is C{STOPPED} at
        once.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        crash(self.reactor.processes[0])
        monitor.drain("gs1", "maintenance")
        self.assertIs(server.state, ServerState.STOPPED)
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.processes), 1)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_drainUnknown(self) -> None:
        """
        Draining a server id that does not exist raises L{KeyError}.
        """
        monitor = self.startMonitor()
        self.assertRaises(KeyError, monitor.drain, "gs9", "no such server")


class StopServiceTests(MonitorTestCase):
    """
    Tests of L{GameServerMonitor.stopService}.
    """

    def test_drainsAll(self) -> None:
        """
        C{stopService} drains every server, and its L{Deferred} fires once
        every process has exited; nothing is restarted.
        """
        monitor = self.startMonitor(count=2)
        first = self.ready(monitor, "gs1")
        second = self.ready(monitor, "gs2")
        d = monitor.stopService()
        self.assertFalse(monitor.running)
        reason = "the AuthProxy is shutting down"
        self.assertEqual(first.shutdowns, [(10000, reason)])
        self.assertEqual(second.shutdowns, [(10000, reason)])
        for server in monitor.servers.values():
            self.assertIs(server.state, ServerState.DRAINING)
        self.assertNoResult(d)
        self.reactor.processes[0].exit()
        self.assertNoResult(d)
        self.reactor.processes[1].exit()
        self.successResultOf(d)
        for server in monitor.servers.values():
            self.assertIs(server.state, ServerState.STOPPED)
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.processes), 2)
        self.assertEqual([p.signals for p in self.reactor.processes], [[], []])

    def test_killsAfterDeadline(self) -> None:
        """
        Processes still alive C{drainDeadline} + 2 s after C{stopService} are
        killed; a server with no control connection is killed at once.
        """
        monitor = self.startMonitor(count=2, drainDeadline=5.0)
        self.ready(monitor, "gs1")
        first, second = self.reactor.processes
        d = monitor.stopService()
        self.assertEqual(first.signals, [])
        self.assertEqual(second.signals, ["KILL"])
        self.reactor.advance(6.5)
        self.assertEqual(first.signals, [])
        self.reactor.advance(0.5)
        self.assertEqual(first.signals, ["KILL"])
        self.assertEqual(second.signals, ["KILL", "KILL"])
        self.assertNoResult(d)
        first.exit(ProcessTerminated(signal=9))
        second.exit(ProcessTerminated(signal=9))
        self.successResultOf(d)

    def test_exitedNotKilled(self) -> None:
        """
        A process that exited before the deadline is not signalled at it.
        """
        monitor = self.startMonitor(drainDeadline=5.0)
        self.ready(monitor)
        process = self.reactor.processes[0]
        d = monitor.stopService()
        process.exit()
        self.successResultOf(d)
        self.reactor.advance(60)
        self.assertEqual(process.signals, [])

    def test_noProcesses(self) -> None:
        """
        With no process to wait for (only remote servers), the L{Deferred}
        has already fired; the remote servers are sent C{Shutdown}.
        """
        remote = RemoteGameServer("192.0.2.7", 7000, b"\x07" * 32)
        monitor = self.makeMonitor(count=0, remotes=[remote])
        monitor.startService()
        control = self.ready(monitor, "remote1")
        self.successResultOf(monitor.stopService())
        self.assertEqual(control.shutdowns, [(10000, "the AuthProxy is shutting down")])
        self.assertIs(monitor.servers["remote1"].state, ServerState.DRAINING)

    def test_cancelsRestart(self) -> None:
        """
        A crashed server waiting to be restarted is not restarted once the
        monitor stops; it is C{STOPPED}.
        """
        monitor = self.startMonitor()
        crash(self.reactor.processes[0])
        self.successResultOf(monitor.stopService())
        self.assertIs(monitor.servers["gs1"].state, ServerState.STOPPED)
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.processes), 1)

    def test_noTimerLeft(self) -> None:
        """
        Once every process has exited, C{stopService} leaves no delayed call
        behind: a monitor started again does not have its new processes
        killed by the old deadline.
        """
        monitor = self.startMonitor(drainDeadline=5.0)
        self.ready(monitor)
        d = monitor.stopService()
        self.reactor.processes[0].exit()
        self.successResultOf(d)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        monitor.startService()
        self.reactor.advance(9)
        self.assertEqual(self.reactor.processes[1].signals, [])


class LoggingTests(MonitorTestCase):
    """
    Tests of what L{GameServerMonitor} logs.
    """

    def test_stateChangesLogged(self) -> None:
        """
        Every change of state is logged with the server id.
        """
        with capturedLogs() as events:
            monitor = self.startMonitor()
            self.ready(monitor)
            crash(self.reactor.processes[0])
            self.reactor.advance(1)
            self.ready(monitor)
            monitor.drain("gs1", "maintenance")
            self.reactor.processes[1].exit()
        states = [
            formatEvent(e)
            for e in events
            if e["log_format"] == "game server {serverId} {state}"
        ]
        self.assertEqual(
            states,
            [
                "game server gs1 ready",
                "game server gs1 crashed",
                "game server gs1 starting",
                "game server gs1 ready",
                "game server gs1 draining",
                "game server gs1 stopped",
            ],
        )
        self.assertIn("game server gs1 crashed; restarting in 1.0s", messages(events))
        why = Failure(ProcessTerminated(exitCode=1)).getErrorMessage()
        self.assertIn(f"game server gs1 exited: {why}", messages(events))

    def test_spawnLogged(self) -> None:
        """
        A spawn is logged with the pid and the token's hint, four hex digits.
        """
        with capturedLogs() as events:
            monitor = self.startMonitor()
        token = monitor.servers["gs1"].token
        [event] = [e for e in events if e["log_format"].startswith("spawned")]
        self.assertEqual(event["hint"], tokenHint(token))
        self.assertEqual(len(event["hint"]), 4)
        self.assertEqual(
            formatEvent(event),
            f"spawned game server gs1 (pid 1000, token {tokenHint(token)})",
        )

    def test_tokenNeverLogged(self) -> None:
        """
        Through a whole life (spawn, port, logs, ready, control loss, crash,
        restart, bad port line, drain, stop) no log event holds a whole token,
        in its text or in any of its fields.
        """
        tokens: list[bytes] = []
        with capturedLogs() as events:
            monitor = self.startMonitor()
            server = monitor.servers["gs1"]
            tokens.append(server.token)
            process = self.reactor.processes[0]
            process.stdout(b"PORT 4321\n")
            process.stderr(b"listening\n")
            control = self.ready(monitor)
            monitor.controlLost(server, control)  # type: ignore[arg-type]
            crash(process)
            self.reactor.advance(1)
            tokens.append(server.token)
            self.reactor.processes[1].stdout(b"what\n")
            crash(self.reactor.processes[1])
            self.reactor.advance(2)
            tokens.append(server.token)
            self.ready(monitor)
            d = monitor.stopService()
            self.reactor.advance(12)
            self.reactor.processes[2].exit()
            self.successResultOf(d)
        self.assertEqual(len(set(tokens)), 3)
        self.assertTrue(events)
        for event in events:
            text = formatEvent(event) + repr(event)
            for token in tokens:
                self.assertNotIn(token.hex(), text)
                self.assertNotIn(token.hex().upper(), text)
                self.assertNotIn(repr(token), text)
                for value in event.values():
                    self.assertNotEqual(value, token)


class RestartTests(MonitorTestCase):
    """
    L{GameServerMonitor.restart}: drain a game server, then start it again.
    """

    def test_restartReady(self) -> None:
        """
        A ready server is drained with the reason; once its process exits it
        is spawned again at once (a new process, a new generation), and the
        lost observers hear of the stop.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        control = self.ready(monitor)
        monitor.restart("gs1", "new build")
        self.assertEqual(control.shutdowns, [(10000, "new build")])
        self.assertIs(server.state, ServerState.DRAINING)
        self.assertEqual(len(self.reactor.processes), 1)
        self.reactor.processes[0].exit()
        self.assertEqual(self.lost, [server])
        self.assertEqual(len(self.reactor.processes), 2)
        self.assertIs(server.state, ServerState.STARTING)
        self.assertEqual(server.generation, 2)
        self.assertFalse(server.restartWhenStopped)

    def test_restartStopped(self) -> None:
        """
        A drained (stopped) server is started again at once.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        self.ready(monitor)
        monitor.drain("gs1", "maintenance")
        self.reactor.processes[0].exit()
        self.assertIs(server.state, ServerState.STOPPED)
        monitor.restart("gs1")
        self.assertEqual(len(self.reactor.processes), 2)
        self.assertIs(server.state, ServerState.STARTING)

    def test_restartDraining(self) -> None:
        """
        A server already draining is not told twice; it starts again when
        its drain is over.
        """
        monitor = self.startMonitor()
        control = self.ready(monitor)
        monitor.drain("gs1", "first")
        monitor.restart("gs1", "second")
        self.assertEqual(control.shutdowns, [(10000, "first")])
        self.reactor.processes[0].exit()
        self.assertEqual(len(self.reactor.processes), 2)

    def test_restartCrashed(self) -> None:
        """
        A crashed server waiting out its back-off is started at once.
        """
        monitor = self.startMonitor(restartInitial=30.0, restartMax=60.0)
        server = monitor.servers["gs1"]
        self.ready(monitor)
        crash(self.reactor.processes[0])
        self.assertIs(server.state, ServerState.CRASHED)
        monitor.restart("gs1")
        self.assertEqual(len(self.reactor.processes), 2)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.processes), 2)

    def test_notWhileStopping(self) -> None:
        """
        A server that stops because the monitor stops is not started again,
        even when a restart was asked for.
        """
        monitor = self.startMonitor()
        self.ready(monitor)
        monitor.restart("gs1")
        monitor.stopService()
        self.reactor.processes[0].exit()
        self.assertEqual(len(self.reactor.processes), 1)

    def test_unknown(self) -> None:
        """
        Restarting a server that does not exist raises L{KeyError}.
        """
        monitor = self.startMonitor()
        self.assertRaises(KeyError, monitor.restart, "gs9")


class ChildCommandTests(SynchronousTestCase):
    """
    L{childCommand}: a spawned game server's command line.
    """

    def test_gcThreshold(self) -> None:
        """
        The garbage collector's threshold goes to the child as
        C{--gc-threshold}, 50,000 by default.
        """
        command = childCommand(GAME, "gs1", PYTHON)
        self.assertEqual(command[command.index("--gc-threshold") + 1], "50000")
        command = childCommand(GAME, "gs1", PYTHON, gcThreshold=0)
        self.assertEqual(command[command.index("--gc-threshold") + 1], "0")


class SetServersTests(MonitorTestCase):
    """
    L{GameServerMonitor.setServers}: the configured game servers changed by
    a reload.
    """

    def test_addAndRemove(self) -> None:
        """
        More local servers start the new ones; fewer drain those beyond the
        count.
        """
        monitor = self.startMonitor()
        self.ready(monitor)
        self.assertEqual(monitor.setServers(2, ()), (["gs2"], []))
        self.assertEqual(len(self.reactor.processes), 2)
        self.assertEqual(monitor.setServers(1, ()), ([], ["gs2"]))
        self.assertIs(monitor.servers["gs2"].state, ServerState.DRAINING)

    def test_listedAgainWhileDraining(self) -> None:
        """
        A server removed by one reload and listed again by the next while it
        still drains starts again once its drain is over.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        self.ready(monitor)
        self.assertEqual(monitor.setServers(0, ()), ([], ["gs1"]))
        self.assertIs(server.state, ServerState.DRAINING)
        self.assertEqual(monitor.setServers(1, ()), (["gs1"], []))
        self.assertEqual(len(self.reactor.processes), 1)
        self.reactor.processes[0].exit()
        self.assertEqual(len(self.reactor.processes), 2)
        self.assertIs(server.state, ServerState.STARTING)

    def test_removedWhileRestarting(self) -> None:
        """
        A server that an operator's restart is draining, and that a reload
        then removes, stays stopped once drained.
        """
        monitor = self.startMonitor()
        server = monitor.servers["gs1"]
        self.ready(monitor)
        monitor.restart("gs1", "new build")
        self.assertEqual(monitor.setServers(0, ()), ([], []))
        self.reactor.processes[0].exit()
        self.assertEqual(len(self.reactor.processes), 1)
        self.assertIs(server.state, ServerState.STOPPED)


class RestartDelayTests(SynchronousTestCase):
    """
    L{restartDelay}: the back-off of game servers and workers.
    """

    def test_doublesToMaximum(self) -> None:
        """
        The first restart waits C{initial}; each failure doubles it, up to
        C{maximum}, however many failures there were.
        """
        self.assertEqual(
            [restartDelay(n, 1.0, 60.0) for n in range(8)],
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0],
        )
        self.assertEqual(restartDelay(10**6, 1.0, 60.0), 60.0)
