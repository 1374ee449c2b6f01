# -*- test-case-name: tests.test_workers -*-
"""
Tests of L{aphelion.workers}: shared listeners, the published game servers
and their pool, the worker's reader of them, and the parent's supervision of
its workers (on a fake process reactor and a L{Clock}).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.error import ProcessTerminated
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from aphelion.config import Config
from aphelion.control.servers import ServerState
from aphelion.interfaces import IGameServerPool, IPooledServer
from aphelion.testing import RecordingPlayerLink
from aphelion.web.proxied import ProxiedSiteFactory
from aphelion.workers import (
    GameServerRecord,
    PublishedPool,
    RecordsReader,
    WorkersService,
    bindListening,
    makeWorkerService,
    parseListen,
    workerCommand,
)
from aphelion.workers.pool import decodeRecords, encodeRecords
from tests.test_spawn import FakeProcessReactor, RecordingControl


def record(serverId: str = "gs1", **changes: Any) -> GameServerRecord:
    """
    A record of a game server with room for 10, no players.
    """
    fields: dict[str, Any] = {
        "serverId": serverId,
        "host": "127.0.0.1",
        "port": 7001,
        "clientToken": b"\x01" * 32,
        "name": "chat",
        "capacity": 10,
        "players": 0,
        "accepting": True,
    }
    fields.update(changes)
    return GameServerRecord(**fields)


class ParseListenTests(SynchronousTestCase):
    """
    Tests of L{parseListen}.
    """

    def test_tcp(self) -> None:
        """
        C{tcp:PORT} with C{interface=} and C{backlog=}.
        """
        spec = parseListen("tcp:8080:interface=127.0.0.1:backlog=100")
        self.assertEqual(
            (spec.proxied, spec.family, spec.port, spec.interface, spec.backlog),
            (False, socket.AF_INET, 8080, "127.0.0.1", 100),
        )

    def test_haproxyAndIPv6(self) -> None:
        """
        The C{haproxy:} prefix, C{tcp6:} and an escaped IPv6 interface.
        """
        spec = parseListen(r"haproxy:tcp6:port=0:interface=\:\:1")
        self.assertEqual(
            (spec.proxied, spec.family, spec.port, spec.interface),
            (True, socket.AF_INET6, 0, "::1"),
        )

    def test_refused(self) -> None:
        """
        What workers cannot share is a L{ValueError}.
        """
        for description in (
            "ssl:443:privateKey=k.pem",
            "unix:/tmp/s",
            "tcp:",
            "tcp:80:reuse=1",
            "tcp:80:81",
            "tcp:99999",
            "haproxy:ssl:443",
        ):
            self.assertRaises(ValueError, parseListen, description)

    def test_bind(self) -> None:
        """
        The parent's socket listens, non-blocking, on the interface.
        """
        sock = bindListening(parseListen("tcp:0:interface=127.0.0.1"))
        self.addCleanup(sock.close)
        self.assertEqual(sock.getsockname()[0], "127.0.0.1")
        self.assertNotEqual(sock.getsockname()[1], 0)
        self.assertFalse(sock.getblocking())
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), 1)


class RecordsTests(SynchronousTestCase):
    """
    Tests of the records' line format.
    """

    # The machine is shared: a slow first draw is no fault of the code.
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.builds(
                GameServerRecord,
                st.text(max_size=20),
                st.sampled_from(["127.0.0.1", "::1", "10.0.0.7"]),
                st.integers(1, 65535),
                st.binary(min_size=32, max_size=32),
                st.text(max_size=20),
                st.integers(0, 10000),
                st.integers(0, 10000),
                st.booleans(),
            ),
            max_size=5,
        )
    )
    def test_roundTrip(self, records: list[GameServerRecord]) -> None:
        """
        A line of records decodes to the same records, on one line.
        """
        line = encodeRecords(records)
        self.assertEqual(line.count(b"\n"), 1)
        self.assertEqual(decodeRecords(line), records)

    def test_bad(self) -> None:
        """
        A line that is not records is a L{ValueError}.
        """
        for line in (b"{}", b"[]", b'{"servers": [{"id": 1}]}', b"nope"):
            self.assertRaises(ValueError, decodeRecords, line)

    def test_noControlToken(self) -> None:
        """
        The record of a game server carries its client token, never its
        control token.
        """
        from aphelion.control.servers import GameServer

        server = GameServer("gs1", b"\x02" * 32, clientToken=b"\x03" * 32, port=9)
        line = encodeRecords([GameServerRecord.fromServer(server)])
        self.assertIn((b"\x03" * 32).hex().encode(), line)
        self.assertNotIn((b"\x02" * 32).hex().encode(), line)


class PublishedPoolTests(SynchronousTestCase):
    """
    Tests of L{PublishedPool}.
    """

    def setUp(self) -> None:
        """
        An empty pool that records lost servers.
        """
        self.pool = PublishedPool()
        self.lost: list[Any] = []
        self.pool.addLostObserver(self.lost.append)

    def test_interfaces(self) -> None:
        """
        The pool and its servers provide the gateway's interfaces.
        """
        self.pool.update([record()])
        verifyObject(IGameServerPool, self.pool)
        verifyObject(IPooledServer, self.pool.servers["gs1"])
        self.assertEqual(self.pool.servers["gs1"].token, b"")

    def test_pickSpread(self) -> None:
        """
        C{spread} picks the server with the fewest players and room; a full
        or not accepting one is never picked; C{exclude} is honoured.
        """
        self.pool.update(
            [
                record("gs1", players=5),
                record("gs2", players=2),
                record("gs3", players=0, accepting=False),
                record("gs4", players=10),
            ]
        )
        gs1, gs2 = self.pool.servers["gs1"], self.pool.servers["gs2"]
        self.assertIs(self.pool.pick(), gs2)
        self.assertIs(self.pool.pick([gs2]), gs1)
        self.assertIsNone(self.pool.pick([gs1, gs2]))

    def test_pickFill(self) -> None:
        """
        C{fill} picks the fullest server that has room.
        """
        pool = PublishedPool("fill")
        pool.update([record("gs1", players=5), record("gs2", players=9)])
        self.assertIs(pool.pick(), pool.servers["gs2"])

    def test_pendingAndLinks(self) -> None:
        """
        Seats being set up and this worker's links count in the load.
        """
        self.pool.update([record("gs1", players=1), record("gs2", players=1)])
        gs1 = self.pool.servers["gs1"]
        self.pool.seatingStarted(gs1)
        self.assertIs(self.pool.pick(), self.pool.servers["gs2"])
        self.pool.seatingEnded(gs1)
        link = RecordingPlayerLink(None)  # type: ignore[arg-type]
        self.pool.linkAdded(gs1, link)
        self.pool.linkAdded(gs1, RecordingPlayerLink(None))  # type: ignore[arg-type]
        self.assertEqual(gs1.load(), 2)
        self.assertIn(link, self.pool.linksOf(gs1))
        self.pool.linkRemoved(gs1, link)
        self.assertEqual(gs1.load(), 1)

    def test_updateKeepsServer(self) -> None:
        """
        A record with the same client token updates the same server object
        (its links stay).
        """
        self.pool.update([record(players=1)])
        server = self.pool.servers["gs1"]
        self.pool.update([record(players=4, capacity=20)])
        self.assertIs(self.pool.servers["gs1"], server)
        self.assertEqual((server.players, server.capacity), (4, 20))
        self.assertEqual(self.lost, [])

    def test_restartedServerLost(self) -> None:
        """
        A record with a new client token (the game server restarted) makes
        a new server; the old one is reported lost.
        """
        self.pool.update([record()])
        old = self.pool.servers["gs1"]
        self.pool.update([record(clientToken=b"\x09" * 32)])
        self.assertEqual(self.lost, [old])
        self.assertIsNot(self.pool.servers["gs1"], old)
        self.assertFalse(old.accepting)

    def test_goneServerLost(self) -> None:
        """
        A server missing from the records is reported lost.
        """
        self.pool.update([record("gs1"), record("gs2")])
        gs2 = self.pool.servers["gs2"]
        self.pool.update([record("gs1")])
        self.assertEqual(self.lost, [gs2])
        self.assertEqual(list(self.pool.servers), ["gs1"])


class RecordsReaderTests(SynchronousTestCase):
    """
    Tests of L{RecordsReader}, the worker's standard input.
    """

    def test_lines(self) -> None:
        """
        Each line updates the pool; a bad one is ignored; the end of input
        calls C{parentGone}.
        """
        pool = PublishedPool()
        gone: list[bool] = []
        reader = RecordsReader(pool, lambda: gone.append(True))
        reader.makeConnection(StringTransport())
        line = encodeRecords([record("gs1"), record("gs2")])
        reader.dataReceived(line[:10])
        self.assertEqual(pool.servers, {})
        reader.dataReceived(line[10:] + b"garbage\n")
        self.assertEqual(sorted(pool.servers), ["gs1", "gs2"])
        reader.connectionLost(None)
        self.assertEqual(gone, [True])

    def test_updateFailureLogged(self) -> None:
        """
        A failure while taking the records is logged; the input stays open
        (its end would stop the worker) and the next line is taken.
        """
        pool = PublishedPool()
        failures = [ZeroDivisionError()]
        realUpdate = pool.update

        def update(records: Any) -> None:
            if failures:
                raise failures.pop()
            realUpdate(records)

        pool.update = update  # type: ignore[method-assign]
        transport = StringTransport()
        reader = RecordsReader(pool, lambda: None)
        reader.makeConnection(transport)
        reader.dataReceived(encodeRecords([record("gs1")]))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertFalse(transport.disconnecting)
        reader.dataReceived(encodeRecords([record("gs2")]))
        self.assertEqual(sorted(pool.servers), ["gs2"])


class WorkersServiceTests(SynchronousTestCase):
    """
    Tests of L{WorkersService}: the parent spawns, feeds and supervises its
    workers.
    """

    def setUp(self) -> None:
        """
        A parent of two workers with no game servers of its own, on a fake
        process reactor.
        """
        self.reactor = FakeProcessReactor()
        self.config = Config(
            listen=("tcp:0:interface=127.0.0.1",),
            gameServers=0,
            workers=2,
            restartInitial=1.0,
            restartMax=4.0,
            drainDeadline=1.0,
        )
        self.argv = ["--listen", "tcp:0:interface=127.0.0.1", "--workers", "2"]
        self.service = WorkersService(
            self.config, self.reactor, self.argv, python="/py", stableAfter=30.0
        )
        self.service.startService()
        self.addCleanup(self.stop)

    def stop(self) -> None:
        """
        Stop the service, making the workers exit.
        """
        if not self.service.running:
            return
        d = self.service.stopService()
        for process in self.reactor.processes:
            if process.pid is not None:
                process.exit()
        self.successResultOf(d)

    def test_spawnsWorkers(self) -> None:
        """
        Each worker runs C{twist aphelion} with the parent's options and its
        number, with the listening socket as descriptor 3.
        """
        self.assertEqual(len(self.reactor.processes), 2)
        for i, process in enumerate(self.reactor.processes):
            self.assertEqual(process.args, workerCommand("/py", self.argv, i + 1))
            self.assertEqual(process.args[-2:], ["--worker", str(i + 1)])
        fds = self.reactor.childFDs[0]
        assert fds is not None
        self.assertEqual(fds[3], self.service.sockets[0].fileno())
        self.assertEqual((fds[0], fds[1], fds[2]), ("w", "r", "r"))

    def test_publishes(self) -> None:
        """
        Every worker gets the records of the ready game servers at once,
        and again only when they change.
        """
        from aphelion.control.servers import GameServer

        monitor = self.service.node.monitor
        server = GameServer("gs1", b"\x02" * 32, clientToken=b"\x03" * 32, port=7001)
        server.state = ServerState.READY
        server.control = RecordingControl()
        server.capacity = 10
        monitor.servers["gs1"] = server
        self.reactor.advance(0.25)
        process = self.reactor.processes[0]
        self.assertEqual(
            [decodeRecords(line) for line in process.stdin][-1],
            [GameServerRecord.fromServer(server)],
        )
        count = len(process.stdin)
        self.reactor.advance(0.25)
        self.assertEqual(len(process.stdin), count)
        server.players = 3
        self.reactor.advance(0.25)
        self.assertEqual(decodeRecords(process.stdin[-1])[0].players, 3)

    def test_publishFailureLogged(self) -> None:
        """
        A failure while publishing is logged, and publishing goes on at the
        next look.
        """
        from aphelion.control.servers import GameServer

        monitor = self.service.node.monitor
        server = GameServer("gs1", b"\x02" * 32, clientToken=b"\x03" * 32, port=7001)
        server.state = ServerState.READY
        server.control = RecordingControl()
        monitor.servers["gs1"] = server
        realRecords = self.service.records
        failures = [ZeroDivisionError()]

        def records() -> list[GameServerRecord]:
            if failures:
                raise failures.pop()
            return realRecords()

        self.service.records = records  # type: ignore[method-assign]
        process = self.reactor.processes[0]
        count = len(process.stdin)
        self.reactor.advance(0.25)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(len(process.stdin), count)
        self.reactor.advance(0.25)
        self.assertEqual(
            decodeRecords(process.stdin[-1]), [GameServerRecord.fromServer(server)]
        )

    def test_restartWithBackOff(self) -> None:
        """
        A worker that dies is restarted after 1 s, then 2 s, then 4 s (at
        most C{restartMax}); one that lived longer than C{stableAfter} is
        restarted after 1 s again.
        """
        for delay in (1.0, 2.0, 4.0, 4.0):
            count = len(self.reactor.processes)
            self.reactor.processes[-1].exit(ProcessTerminated(signal=9))
            self.reactor.advance(delay - 0.01)
            self.assertEqual(len(self.reactor.processes), count)
            self.reactor.advance(0.01)
            self.assertEqual(len(self.reactor.processes), count + 1)
            self.assertEqual(self.reactor.processes[-1].args[-1], "2")
        self.reactor.advance(30)
        count = len(self.reactor.processes)
        self.reactor.processes[-1].exit(ProcessTerminated(signal=9))
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.processes), count + 1)

    def test_stopTerminates(self) -> None:
        """
        Stopping sends SIGTERM to every worker, restarts none, kills those
        that outlive the deadline, and closes the listening sockets once
        they are gone.
        """
        d = self.service.stopService()
        first, second = self.reactor.processes
        self.assertEqual((first.signals, second.signals), (["TERM"], ["TERM"]))
        first.exit()
        self.assertNoResult(d)
        self.reactor.advance(self.service.stopDeadline)
        self.assertEqual(second.signals, ["TERM", "KILL"])
        second.exit(ProcessTerminated(signal=9))
        self.successResultOf(d)
        self.reactor.advance(10)
        self.assertEqual(len(self.reactor.processes), 2)
        self.assertEqual(self.service.sockets, [])


class MakeWorkerServiceTests(SynchronousTestCase):
    """
    Tests of L{makeWorkerService}.
    """

    def test_hangupIgnored(self) -> None:
        """
        With C{handleSignals}, a worker handles C{SIGHUP} while it runs: the
        handler logs, on the reactor's thread, that it is ignored; stopping
        puts the previous handler back.
        """
        reactor = MemoryReactorClock()
        calls: list[Callable[[], object]] = []
        reactor.callFromThread = calls.append  # type: ignore[method-assign]
        handlers: dict[int, Any] = {signal.SIGHUP: "previous"}

        def installSignal(number: int, handler: Any) -> Any:
            previous = handlers.get(number)
            handlers[number] = handler
            return previous

        service = makeWorkerService(
            Config(listen=(), workers=2),
            reactor,
            pool=PublishedPool(),
            readParent=False,
            handleSignals=True,
            installSignal=installSignal,
        )
        service.startService()
        handler = handlers[signal.SIGHUP]
        self.assertTrue(callable(handler))
        handler(signal.SIGHUP, None)
        self.assertEqual(len(calls), 1)
        with capturedLogs() as events:
            calls[0]()
        self.assertEqual(
            [formatEvent(e) for e in events],
            ["SIGHUP ignored: a worker does not reload"],
        )
        self.successResultOf(defer.maybeDeferred(service.stopService))
        self.assertEqual(handlers[signal.SIGHUP], "previous")

    def test_adoptsSockets(self) -> None:
        """
        A worker adopts descriptors 3, 4, ... in the order of C{--listen},
        a C{haproxy:} one behind the PROXY wrapper and L{ProxiedSiteFactory};
        it has no game servers of its own and seats on its pool.
        """
        reactor = MemoryReactorClock()
        pool = PublishedPool()
        config = Config(
            listen=("tcp:0", "haproxy:tcp:0:interface=127.0.0.1"),
            gameServers=3,
            workers=2,
        )
        service = makeWorkerService(config, reactor, pool=pool, readParent=False)
        self.assertIs(service.pool, pool)
        self.assertIs(service.gateway._monitor, pool)
        self.assertEqual(service.monitor.servers, {})
        adopted: list[tuple[int, int, Any]] = []

        def adoptStreamPort(fd: int, family: int, factory: Any) -> Any:
            adopted.append((fd, family, factory))
            return reactor.listenTCP(0, factory)

        reactor.adoptStreamPort = adoptStreamPort  # type: ignore[method-assign]
        closed: list[int] = []
        self.patch(
            __import__("aphelion.workers.worker", fromlist=["os"]).os,
            "close",
            closed.append,
        )
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(
            [(fd, family) for fd, family, _ in adopted],
            [
                (3, socket.AF_INET),
                (4, socket.AF_INET),
            ],
        )
        self.assertIs(adopted[0][2], service.site)
        self.assertIsInstance(adopted[1][2].wrappedFactory, ProxiedSiteFactory)
        self.assertEqual(closed, [3, 4])


class OneAcceptPortTests(SynchronousTestCase):
    """
    Tests of the worker's listening port.
    """

    def test_oneAcceptPerWakeUp(self) -> None:
        """
        A worker's port accepts one connection per wake-up, whatever Twisted
        sets after one, so that a burst spreads over the workers.
        """
        from twisted.internet import tcp
        from twisted.internet.protocol import Factory

        from aphelion.workers.worker import _OneAcceptPort

        port = tcp.Port(0, Factory())
        port.__class__ = _OneAcceptPort
        self.assertEqual(port.numberAccepts, 1)
        port.numberAccepts = 120
        self.assertEqual(port.numberAccepts, 1)


class WorkerLogTests(WorkersServiceTests):
    """
    The parent logs its workers' log events again.
    """

    def test_eventsLoggedAgain(self) -> None:
        """
        A worker's JSON event is logged again with its level, namespace and
        fields, the field C{worker} and its text prefixed C{[worker I]};
        a line that is no event is logged as it is.
        """
        from twisted.logger import LogLevel, capturedLogs, eventAsJSON, formatEvent

        event = {
            "log_format": "session {hint} seated on {serverId}",
            "log_level": LogLevel.warn,
            "log_namespace": "aphelion.gateway.Gateway",
            "log_time": 1000.0,
            "hint": "ab12",
            "serverId": "gs1",
            "warning": "a Python warning's keys are not kept",
            "filename": "x.py",
        }
        line = "\x1e" + eventAsJSON(event) + "\n"
        with capturedLogs() as events:
            self.reactor.processes[1].stdout(line.encode()[:20])
            self.reactor.processes[1].stdout(line.encode()[20:] + b"Traceback!\n")
        [again, plain] = events
        self.assertEqual(formatEvent(again), "[worker 2] session ab12 seated on gs1")
        self.assertEqual(again["log_level"], LogLevel.warn)
        self.assertEqual(again["log_namespace"], "aphelion.gateway.Gateway")
        self.assertEqual((again["worker"], again["serverId"]), (2, "gs1"))
        self.assertNotIn("warning", again)
        self.assertNotIn("filename", again)
        self.assertEqual(formatEvent(plain), "[worker 2] Traceback!")


class WorkersSignalTests(SynchronousTestCase):
    """
    C{SIGHUP} to the parent of C{--workers}.
    """

    def test_sighupIgnored(self) -> None:
        """
        With C{handleSignals}, C{SIGHUP} is handled (logged, not fatal) while
        the service runs, and the previous handler is put back when it
        stops.
        """
        import signal

        from twisted.logger import capturedLogs

        installed: dict[int, Any] = {}

        def installSignal(number: int, handler: Any) -> Any:
            previous = installed.get(number, "default")
            installed[number] = handler
            return previous

        reactor = FakeProcessReactor()
        reactor.callFromThread = lambda f, *a: f(*a)  # type: ignore[method-assign]
        service = WorkersService(
            Config(listen=("tcp:0:interface=127.0.0.1",), gameServers=0, workers=2),
            reactor,
            [],
            handleSignals=True,
            installSignal=installSignal,
        )
        service.startService()
        with capturedLogs() as events:
            installed[signal.SIGHUP](signal.SIGHUP, None)
        self.assertIn("not supported with --workers", str(events))
        d = service.stopService()
        for process in reactor.processes:
            process.exit()
        self.successResultOf(d)
        self.assertEqual(installed[signal.SIGHUP], "default")
