# -*- test-case-name: tests.test_lifecycle -*-
"""
Tests of L{aphelion.lifecycle} and of the reload and ordered stop of
L{aphelion.service.AuthProxyService}.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ReactorNotRunning
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from aphelion.auth import BoundedAuthenticator, DevChecker
from aphelion.config import Config
from aphelion.control.servers import RemoteGameServer, ServerState
from aphelion.lifecycle import (
    RELOADABLE,
    Change,
    SignalHandlers,
    configChanges,
    describeChange,
)
from aphelion.proto.game_pb2 import S2C
from aphelion.service import AuthProxyService, build
from tests.test_spawn import FakeProcessReactor, serverIdOf

SECRET = "s3cr3t-do-not-log"


class SecretChecker(DevChecker):
    """
    A checker whose text would give a secret away if it were logged.
    """

    def __init__(self) -> None:
        self.closed = 0

    def __repr__(self) -> str:
        return f"<SecretChecker {SECRET}>"

    def close(self) -> None:
        """
        Count the closes.
        """
        self.closed += 1


class ChangesTests(SynchronousTestCase):
    """
    L{configChanges} and L{describeChange}.
    """

    def test_changes(self) -> None:
        """
        Only the fields that differ are changes, in L{Config}'s order.
        """
        old = Config(sessionTimeout=60.0, path="/a")
        new = Config(sessionTimeout=30.0, path="/b")
        changes = configChanges(old, new)
        self.assertEqual(
            changes,
            [Change("path", "/a", "/b"), Change("sessionTimeout", 60.0, 30.0)],
        )
        self.assertEqual([c.reloadable for c in changes], [False, True])
        self.assertEqual(configChanges(old, old), [])

    def test_describe(self) -> None:
        """
        A change reads C{field: old -> new}; checkers, the game config,
        remote servers' tokens and game options' values are never shown.
        """
        self.assertEqual(
            describeChange(Change("sessionTimeout", 60.0, 30.0)),
            "sessionTimeout: 60.0 -> 30.0",
        )
        checkers = describeChange(Change("checkers", (), (SecretChecker(),)))
        self.assertNotIn(SECRET, checkers)
        config = describeChange(Change("gameConfig", None, ("a/b", b"s3cr3t")))
        self.assertEqual(config, "gameConfig: changed")
        token = bytes(range(32))
        remote = describeChange(
            Change("remoteGameServers", (), (RemoteGameServer("h", 7, token),))
        )
        self.assertEqual(remote, "remoteGameServers: [] -> [h:7]")
        options = describeChange(
            Change("gameOptions", (("mode", "ffa"),), (("apiKey", SECRET),))
        )
        self.assertEqual(options, "gameOptions: [mode] -> [apiKey]")
        registry = describeChange(
            Change("registry", "memory", f"redis://:{SECRET}@10.0.0.5:6379/0")
        )
        self.assertEqual(
            registry, "registry: 'memory' -> 'redis://:***@10.0.0.5:6379/0'"
        )

    def test_reloadableFieldsExist(self) -> None:
        """
        Every reloadable field is a field of L{Config}.
        """
        self.assertLessEqual(RELOADABLE, set(Config.__dataclass_fields__))


class FakeSignalReactor:
    """
    Records C{callFromThread}.
    """

    def __init__(self) -> None:
        self.calls: list[Callable[[], object]] = []

    def callFromThread(self, f: Callable[[], object]) -> None:
        """
        Record C{f}.
        """
        self.calls.append(f)


class SignalHandlersTests(SynchronousTestCase):
    """
    L{SignalHandlers}.
    """

    def test_installRunUninstall(self) -> None:
        """
        The installed handler only hands its work to the reactor's thread;
        uninstalling puts the previous handler back.
        """
        installed: dict[int, Any] = {signal.SIGHUP: "previous"}

        def install(number: int, handler: Any) -> Any:
            previous = installed.get(number)
            installed[number] = handler
            return previous

        reactor = FakeSignalReactor()
        work: list[str] = []
        handlers = SignalHandlers(
            reactor, {signal.SIGHUP: lambda: work.append("hup")}, install
        )
        handlers.install()
        installed[signal.SIGHUP](signal.SIGHUP, None)
        self.assertEqual(work, [])
        [call] = reactor.calls
        call()
        self.assertEqual(work, ["hup"])
        handlers.uninstall()
        self.assertEqual(installed[signal.SIGHUP], "previous")
        self.assertFalse(handlers.installed)


def messages(events: list[Any]) -> str:
    """
    Every event's text, one per line.
    """
    return "\n".join(formatEvent(event) for event in events)


class ReloadTests(SynchronousTestCase):
    """
    L{AuthProxyService.reload}: the reloadable fields reach the running
    objects; the rest are logged as needing a restart.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.checker = SecretChecker()
        self.config = Config(listen=(), gameServers=0, checkers=(self.checker,))
        self.service = build(self.config, self.reactor)

    def test_applied(self) -> None:
        """
        Limits reach the registry, the gate, the gateway's rules and the
        factory's config; each is logged as old -> new.
        """
        new = Config(
            listen=(),
            gameServers=0,
            checkers=self.config.checkers,
            sessionTimeout=5.0,
            maxConnections=7,
            authTries=2,
            upgradeTimeout=3.0,
            maxSessions=9,
            drainDeadline=4.0,
        )
        with capturedLogs() as events:
            self.service.reload(new)
        service = self.service
        registry: Any = service.factory.registry
        self.assertEqual(registry.sessionTimeout, 5.0)
        self.assertEqual(registry.maxSessions, 9)
        self.assertEqual(service.factory.config.maxConnections, 7)
        self.assertEqual(service.gateway.rules.authTries, 2)
        self.assertEqual(service.site.gate.upgradeTimeout, 3.0)  # type: ignore[attr-defined]
        self.assertEqual(service.monitor.drainDeadline, 4.0)
        self.assertIs(service.config, service.factory.config)
        text = messages(events)
        self.assertIn("reload: sessionTimeout: 60.0 -> 5.0", text)
        self.assertIn("reload: maxConnections: 10000 -> 7", text)
        self.assertNotIn(SECRET, text)

    def test_perAddressLimits(self) -> None:
        """
        The per-address limits reach the gate, the login throttles and the
        registry, and act on what comes next.
        """
        new = Config(
            listen=(),
            gameServers=0,
            checkers=self.config.checkers,
            connectionsPerAddress=1,
            connectionRate=2.0,
            connectionBurst=3,
            loginsPerMinute=6.0,
            checksPerAddress=1,
            sessionsPerAddress=5,
        )
        self.service.reload(new)
        gate: Any = self.service.site.gate  # type: ignore[attr-defined]
        self.assertEqual(
            (gate.connectionsPerAddress, gate.connectionRate, gate.connectionBurst),
            (1, 2.0, 3),
        )
        logins = self.service.gateway.logins
        self.assertEqual((logins.loginsPerMinute, logins.checksPerAddress), (6.0, 1))
        registry: Any = self.service.factory.registry
        self.assertEqual(registry.sessionsPerAddress, 5)
        self.assertIsNotNone(gate.admit(IPv4Address("TCP", "192.0.2.1", 1)))
        self.assertIsNone(gate.admit(IPv4Address("TCP", "192.0.2.1", 2)))
        self.assertIsNone(logins.begin("192.0.2.1", "alice", "h1"))
        self.assertIsNotNone(logins.begin("192.0.2.1", "bob", "h2"))

    def test_needsRestart(self) -> None:
        """
        A field that cannot change while running is logged as needing a
        restart and stays as it was; the others of the same reload apply.
        """
        new = Config(
            listen=(),
            gameServers=0,
            checkers=self.config.checkers,
            path="/elsewhere",
            queueLimit=3,
        )
        with capturedLogs() as events:
            self.service.reload(new)
        self.assertEqual(self.service.config.path, "/aphelion")
        self.assertEqual(self.service.factory.registry.queueLimit, 3)  # type: ignore[attr-defined]
        self.assertIn(
            "reload: path: '/aphelion' -> '/elsewhere' needs a restart; not applied",
            messages(events),
        )

    def test_applyFails(self) -> None:
        """
        A change whose application raises is logged as a failure and left
        out of the service's config; the other changes of the reload apply.
        """
        monitor: Any = self.service.monitor

        def setServers(*args: object) -> object:
            raise RuntimeError("no")

        monitor.setServers = setServers
        new = Config(
            listen=(),
            gameServers=2,
            checkers=self.config.checkers,
            queueLimit=3,
        )
        with capturedLogs() as events:
            self.service.reload(new)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.service.config.gameServers, 0)
        self.assertEqual(self.service.config.queueLimit, 3)
        self.assertIn(
            "reload: applying gameServers failed; not applied", messages(events)
        )

    def test_checkers(self) -> None:
        """
        The checkers are made anew: the gateway checks with a new
        authenticator of the new queue size, the old checkers are closed
        later, and no secret is logged.
        """
        before = self.service.gateway._authenticate  # type: ignore[attr-defined]
        newChecker = SecretChecker()
        new = Config(listen=(), gameServers=0, checkers=(newChecker,), checkerQueue=3)
        with capturedLogs() as events:
            self.service.reload(new)
        after = self.service.gateway._authenticate  # type: ignore[attr-defined]
        self.assertIsNot(after, before)
        self.assertIsInstance(after, BoundedAuthenticator)
        self.assertEqual(after.limit, 3)
        self.assertEqual(self.service.config.checkers, (newChecker,))
        self.assertEqual(self.checker.closed, 0)
        self.reactor.advance(AuthProxyService.checkerCloseDelay)
        self.assertEqual(self.checker.closed, 1)
        self.assertNotIn(SECRET, messages(events))
        self.assertIn("checkers: read again", messages(events))

    def test_checkerCloseFails(self) -> None:
        """
        A replaced checker whose C{close} raises is logged as a failure,
        not left to the reactor.
        """

        def close() -> None:
            raise OSError("pool already gone")

        self.checker.close = close  # type: ignore[method-assign]
        self.service.reload(
            Config(listen=(), gameServers=0, checkers=(SecretChecker(),))
        )
        self.reactor.advance(AuthProxyService.checkerCloseDelay)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_reloadConfigRefused(self) -> None:
        """
        A configuration that does not parse is logged and changes nothing.
        """

        def bad() -> Config:
            raise usage.UsageError("aphelion.toml: ack-cap: --ack-cap must be 1 to 254")

        self.service.loadConfig = bad
        with capturedLogs() as events:
            self.assertEqual(self.service.reloadConfig(), [])
        self.assertIs(self.service.config, self.config)
        self.assertIn(
            "reload refused, nothing changed: aphelion.toml", messages(events)
        )

    def test_reloadConfigUnexpectedError(self) -> None:
        """
        An unexpected exception while reading or applying a configuration
        (run from a signal handler) is logged as a failure and does not
        reach the reactor.
        """

        def broken() -> Config:
            raise RuntimeError("plugin blew up")

        self.service.loadConfig = broken
        self.assertEqual(self.service.reloadConfig(), [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIs(self.service.config, self.config)

        def applyFails(new: Config) -> list[Change]:
            raise ValueError("apply blew up")

        self.service.loadConfig = lambda: Config(listen=(), gameServers=0)
        self.service.reload = applyFails  # type: ignore[method-assign]
        self.assertEqual(self.service.reloadConfig(), [])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_noReloadWhileStopping(self) -> None:
        """
        A reload that arrives while the AuthProxy drains changes nothing.
        """
        self.service.loadConfig = lambda: Config(listen=(), gameServers=0, queueBytes=1)
        self.service.startDraining("test")
        with capturedLogs() as events:
            self.assertEqual(self.service.reloadConfig(), [])
        self.assertIn("reload ignored", messages(events))
        self.assertNotEqual(self.service.factory.registry.queueBytes, 1)  # type: ignore[attr-defined]

    def test_reloadConfigReads(self) -> None:
        """
        L{AuthProxyService.reloadConfig} applies what C{loadConfig} reads.
        """
        self.service.loadConfig = lambda: Config(
            listen=(), gameServers=0, checkers=(), queueBytes=100
        )
        changes = self.service.reloadConfig()
        self.assertIn("queueBytes", [c.field for c in changes])
        self.assertEqual(self.service.factory.registry.queueBytes, 100)  # type: ignore[attr-defined]


class GameServerReloadTests(SynchronousTestCase):
    """
    A reload of the game-server list starts the new ones and drains the
    removed ones.
    """

    def test_moreAndFewer(self) -> None:
        """
        More local servers are spawned; fewer drains those beyond the count,
        which are not restarted; remote servers come and go by address.
        """
        reactor = FakeProcessReactor()
        config = Config(listen=(), gameServers=1)
        service = build(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        monitor = service.monitor
        self.assertEqual([serverIdOf(p) for p in reactor.processes], ["gs1"])
        token = bytes(32)
        more = Config(
            listen=(),
            gameServers=3,
            remoteGameServers=(RemoteGameServer("127.0.0.1", 7001, token),),
        )
        service.reload(more)
        self.assertEqual(
            [serverIdOf(p) for p in reactor.processes], ["gs1", "gs2", "gs3"]
        )
        self.assertEqual(monitor.servers["remote1"].port, 7001)
        service.reload(Config(listen=(), gameServers=1))
        for serverId in ("gs2", "gs3", "remote1"):
            self.assertIn(
                monitor.servers[serverId].state,
                (ServerState.DRAINING, ServerState.STOPPED),
            )
        self.assertIs(monitor.servers["gs1"].state, ServerState.STARTING)
        process = reactor.processes[1]
        process.exit()
        self.assertIs(monitor.servers["gs2"].state, ServerState.STOPPED)
        reactor.advance(120)
        self.assertEqual(len(reactor.processes), 3)  # no restart of gs2
        service.reload(Config(listen=(), gameServers=2))
        self.assertEqual(serverIdOf(reactor.processes[-1]), "gs2")


class RecordingConnection:
    """
    A client connection of the factory, recording what it is sent.
    """

    def __init__(self, log: list[str], session: Any = None) -> None:
        self.log = log
        self.session = session

    def closeWith(self, code: int, reason: str) -> None:
        """
        Record the close.
        """
        self.log.append(f"close {code}")


class RecordingSession:
    """
    A session recording its payloads.
    """

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def send(self, payload: bytes) -> None:
        """
        Record an S2C.
        """
        message = S2C.FromString(payload)
        self.log.append(f"disconnect {message.disconnect.code}")


class StopOrderTests(SynchronousTestCase):
    """
    The ordered stop of L{AuthProxyService}.
    """

    def test_order(self) -> None:
        """
        Stopping tells the drain observers first, then stops listening,
        then tells every player S2C{disconnect{1001}} before its 1001 close,
        then drains the game servers.
        """
        reactor = MemoryReactorClock()
        service = build(Config(listen=("tcp:8080",), gameServers=0), reactor)
        service.startService()
        log: list[str] = []
        service.addDrainObserver(lambda reason: log.append(f"drain {reason}"))
        session = RecordingSession(log)
        connections: Any = service.factory.connections
        connections.add(RecordingConnection(log, session))
        connections.add(RecordingConnection(log, session))
        self.assertEqual(len(reactor.tcpServers), 1)
        realStop = service.monitor.stopService

        def monitorStop() -> Any:
            log.append("drain game servers")
            return realStop()

        service.monitor.stopService = monitorStop  # type: ignore[method-assign]
        listener = service.getServiceNamed("listen:tcp:8080")
        realListenerStop = listener.stopService

        def listenerStop() -> Any:
            log.append("stop listening")
            return realListenerStop()

        listener.stopService = listenerStop  # type: ignore[method-assign]
        service.stopService()
        self.assertEqual(
            log,
            [
                "drain stopping",
                "stop listening",
                "disconnect 1001",
                "close 1001",
                "close 1001",
                "drain game servers",
            ],
        )
        self.assertTrue(service.draining)

    def test_terminate(self) -> None:
        """
        L{AuthProxyService.terminate} (SIGTERM) starts draining and stops
        the reactor, once.
        """
        reactor = MemoryReactorClock()
        reactor.running = True
        service = build(Config(listen=(), gameServers=0), reactor)
        reasons: list[str] = []
        service.addDrainObserver(reasons.append)
        service.terminate()
        service.terminate()
        self.assertEqual(reasons, ["SIGTERM"])
        self.assertTrue(reactor.hasStopped)

    def test_terminateAfterStopAskedFor(self) -> None:
        """
        A SIGTERM that arrives after a stop was asked for (say by SIGINT)
        but before the services stop raises nothing.
        """

        class StoppingReactor(MemoryReactorClock):
            """
            A memory reactor that, as a real one, refuses a second stop.
            """

            def stop(self) -> None:
                # As a real reactor: a second stop raises.
                if self.hasStopped:
                    raise ReactorNotRunning()
                super().stop()

        reactor = StoppingReactor()
        reactor.running = True
        service = build(Config(listen=(), gameServers=0), reactor)
        reactor.stop()
        service.terminate()
        self.assertTrue(service.draining)

    def test_signalsInstalledWhenRunning(self) -> None:
        """
        With C{handleSignals}, the handlers are installed once the reactor
        runs and removed when the service stops.
        """
        reactor = MemoryReactorClock()
        service = build(Config(listen=(), gameServers=0), reactor, handleSignals=True)
        before = signal.getsignal(signal.SIGHUP)
        service.startService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)
        reactor.run()  # MemoryReactor runs the when-running calls
        self.addCleanup(signal.signal, signal.SIGHUP, before)
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), before)
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)
