# -*- test-case-name: tests.test_integration_workers -*-
"""
C{--workers 2} over loopback: a parent in this process that binds the
listening socket and runs two chat game servers, two real worker processes
(C{python -m twisted aphelion ... --worker I}) that accept on that socket and
seat players on the parent's game servers with their client tokens, and
real WebSocket clients that ping and chat. A worker killed with SIGKILL is
restarted, and new connections work.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, TestCase

from aphelion.auth import DevChecker
from aphelion.client import AphelionClientProtocol, connect
from aphelion.codes import AphelionProtocol
from aphelion.config import Config
from aphelion.control.spawn import ServerState
from aphelion.proto import chat_pb2
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate, AuthenticateResponse
from aphelion.proto.ping_pb2 import PingRequest, PingResponse
from aphelion.tap import Options
from aphelion.workers import WorkersService
from tests.test_integration_system import waitFor, within

reactor: Any = _reactor


class WorkersTests(TestCase):
    """
    Two workers behind one listening socket, game servers in the parent.
    """

    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        """
        Start the parent and wait until its game servers are published and
        a player can be seated.
        """
        listen = "tcp:0:interface=127.0.0.1"
        argv = [
            "--listen",
            listen,
            "--auth",
            "dev",
            "--workers",
            "2",
            "--restart-initial",
            "0.2",
            "--drain-deadline",
            "2",
            "--no-pages",
        ]
        config = Config(
            listen=(listen,),
            gameServers=2,
            checkers=(DevChecker(),),
            restartInitial=0.2,
            drainDeadline=2,
            workers=2,
        )
        # Each worker logs, through the parent, every game server it takes
        # from the parent's records: it can seat players once it has both.
        self.published: dict[int, int] = {}
        globalLogPublisher.addObserver(self.observe)
        self.addCleanup(globalLogPublisher.removeObserver, self.observe)
        self.service = WorkersService(config, reactor, argv, publishInterval=0.1)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        port = self.service.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/aphelion"
        await waitFor(self.ready, 30)

    def observe(self, event: LogEvent) -> None:
        """
        Count the game servers each worker has taken from the records.
        """
        worker = event.get("worker")
        if worker is not None and str(event.get("line", "")).endswith(" published"):
            self.published[worker] = self.published.get(worker, 0) + 1

    def ready(self) -> bool:
        """
        Whether both game servers are ready, both workers running, and each
        worker has taken both game servers from the records (its pool is
        empty before: players would get C{NO_SERVER}).
        """
        servers = self.service.node.monitor.servers.values()
        return (
            all(s.state is ServerState.READY for s in servers)
            and all(w.process is not None for w in self.service.workers)
            and all(self.published.get(w.index, 0) >= 2 for w in self.service.workers)
        )

    async def player(self, playerId: str) -> AphelionClientProtocol:
        """
        A client, authenticated (dev auth) and seated on a game server of
        the parent; closed in cleanup.
        """
        client = await within(connect(reactor, self.url, AphelionProtocol.GAME), 30)
        self.addCleanup(self.close, client)
        client.sendPayload(
            C2S(authenticate=Authenticate(id=playerId)).SerializeToString()
        )
        answer = S2C.FromString(await within(client.nextPayload(), 30))
        self.assertEqual(
            answer.authenticate_response.result, AuthenticateResponse.OK, answer
        )
        config = S2C.FromString(await within(client.nextPayload(), 30))
        self.assertTrue(config.HasField("game_config"), config)
        return client

    async def close(self, client: AphelionClientProtocol) -> None:
        """
        Close a client (if still open) and wait for the close.
        """
        closed = client.whenClosed()
        client.closeWith(1000, "bye")
        await within(closed, 10)

    async def chat(self, clients: list[AphelionClientProtocol]) -> None:
        """
        Each client speaks in turn; every one hears itself (a chat room is
        one game server; the players may sit on either).
        """
        for i, client in enumerate(clients):
            text = f"hello {i}"
            client.sendPayload(
                chat_pb2.C2S(say=chat_pb2.Say(text=text)).SerializeToString()
            )
            while True:
                said = chat_pb2.S2C.FromString(await within(client.nextPayload()))
                if said.said.text == text:
                    break

    async def ping(self) -> PingResponse:
        """
        One ping round trip on a new connection.
        """
        client = await within(connect(reactor, self.url, AphelionProtocol.PING), 30)
        self.addCleanup(self.close, client)
        client.sendPayload(PingRequest(client_time=7).SerializeToString())
        return PingResponse.FromString(await within(client.nextPayload()))

    async def test_serves(self) -> None:
        """
        Players ping and chat through the workers, on the parent's game
        servers.
        """
        response = await self.ping()
        self.assertEqual(response.client_time, 7)
        clients = [await self.player(f"p{i}") for i in range(4)]
        await self.chat(clients)
        # The game servers' own Status counts the players of both workers.
        await waitFor(
            lambda: (
                sum(s.players for s in self.service.node.monitor.servers.values()) == 4
            )
        )

    async def test_killedWorkerRestarts(self) -> None:
        """
        A worker killed with SIGKILL is restarted by the parent, and new
        connections are served.
        """
        await self.player("before")
        worker = self.service.workers[0]
        pid = worker.process.pid
        os.kill(pid, signal.SIGKILL)
        await waitFor(
            lambda: worker.process is not None and worker.process.pid != pid, 30
        )
        # The new process takes both game servers again.
        await waitFor(lambda: self.published.get(worker.index, 0) >= 4, 30)
        clients = [await self.player(f"after{i}") for i in range(4)]
        await self.chat(clients)
        response = await self.ping()
        self.assertEqual(response.client_time, 7)


class WorkersCommandTests(TestCase):
    """
    C{--workers 2} as one command, C{python -m twisted aphelion --workers 2
    --registry redis://...}: refused without a Redis registry; with one (a
    real redis-server), it serves and survives a killed worker.
    """

    timeout = 120

    def test_refusedWithoutRedis(self) -> None:
        """
        C{--workers 2} without C{--registry redis://...} is a usage error
        that says what is missing.
        """
        options = Options()
        error = self.assertRaises(
            UsageError, options.parseOptions, ["--workers", "2", "--auth", "dev"]
        )
        self.assertIn("Redis registry", str(error))

    async def test_oneCommand(self) -> None:
        """
        The command serves players on its workers, and a worker killed with
        SIGKILL is restarted (the parent logs its new pid) while new players
        are served.
        """
        if "registry" not in Options().keys():
            raise SkipTest(
                "needs --registry (the Redis registry of aphelion/registry/, "
                "issue 8's cluster part), not merged yet"
            )
        try:
            from tests.redisserver import (  # type: ignore[import-not-found]
                missing,
                startRedis,
            )
        except ImportError:
            raise SkipTest("needs tests/redisserver.py (the cluster part)") from None
        if missing():
            raise SkipTest(missing())
        redis = await startRedis(self)
        port = await freePort()
        self.url = f"ws://127.0.0.1:{port}/aphelion"
        self.output = _Output()
        process = reactor.spawnProcess(
            self.output,
            sys.executable,
            [
                sys.executable,
                "-m",
                "twisted",
                "--log-format",
                "text",
                "aphelion",
                "--workers",
                "2",
                "--registry",
                redis.url,
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
                "--auth",
                "dev",
                "--game-servers",
                "2",
                "--restart-initial",
                "0.2",
                "--drain-deadline",
                "2",
                "--no-pages",
            ],
            env=dict(os.environ),
        )
        self.addCleanup(self.output.stop, process)
        await waitFor(lambda: len(self.output.workerPids(1)) >= 1, 60)
        # A worker serves once it has reached Redis (it logs so, through the
        # parent); until then the connections wait in the listening queue,
        # maybe longer than a client's opening handshake timeout.
        await waitFor(lambda: self.output.workersReady() >= 2, 60)
        clients = [await self.player(f"p{i}") for i in range(4)]
        await self.chat(clients)
        [pid] = self.output.workerPids(1)
        os.kill(pid, signal.SIGKILL)
        await waitFor(lambda: len(self.output.workerPids(1)) >= 2, 30)
        await waitFor(lambda: self.output.workersReady() >= 3, 60)
        clients = [await self.player(f"q{i}") for i in range(4)]
        await self.chat(clients)

    player = WorkersTests.player
    close = WorkersTests.close
    chat = WorkersTests.chat


class _Output(ProcessProtocol):
    """
    The output of a C{twist aphelion} process, and its end.
    """

    def __init__(self) -> None:
        self.text = ""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        """
        Keep the output.
        """
        self.text += data.decode("utf-8", "replace")

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        It exited.
        """
        self.ended.callback(None)

    def workersReady(self) -> int:
        """
        How many times a worker said it reached Redis (its first log line
        once it serves).
        """
        return len(re.findall(r"\[worker \d+\][^\n]*is reachable", self.text))

    def workerPids(self, index: int) -> list[int]:
        """
        The pids the parent logged for worker C{index}, in order.
        """
        return [
            int(pid)
            for pid in re.findall(rf"spawned worker {index} \(pid (\d+)\)", self.text)
        ]

    async def stop(self, process: Any) -> None:
        """
        SIGTERM, then wait for the exit (SIGKILL after 20 s).
        """
        if self.ended.called:
            return
        process.signalProcess("TERM")
        try:
            await self.ended.addTimeout(20, reactor)
        except Exception:
            process.signalProcess("KILL")
            raise


async def freePort() -> int:
    """
    A TCP port on 127.0.0.1 that was free a moment ago.
    """
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    number: int = port.getHost().port
    await port.stopListening()
    return number
