# -*- test-case-name: tests.test_registry_redis -*-
"""
A throwaway Redis server for tests and benchmarks: C{redis-server} on
127.0.0.1 only, on a free port, with no persistence, in a temporary
directory, killed (by its PID) when the test ends.

Usage in a trial test::

    from tests.redisserver import missing, startRedis

    class T(TestCase):
        if missing():
            skip = missing()

        async def test_x(self) -> None:
            redis = await startRedis(self)
            ... redis.url ...          # "redis://127.0.0.1:PORT/0"
            await redis.kill()         # SIGKILL, as a crash
            await redis.restart()      # same port, empty data

The API (L{startRedis}, L{RedisServer.url}, L{RedisServer.port},
L{RedisServer.kill}, L{RedisServer.restart}) is kept stable for other test
modules.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

__all__ = ["RedisServer", "missing", "redisArguments", "startRedis"]

BINARY = os.environ.get("APHELION_REDIS_SERVER", "/usr/bin/redis-server")


def missing() -> str | None:
    """
    :return: why a real Redis server cannot be used here, for a skip
        message; L{None} if it can.
    """
    if os.access(BINARY, os.X_OK) or shutil.which("redis-server"):
        return None
    return (
        "redis-server is not installed (Debian: apt-get install redis-server;"
        " or set APHELION_REDIS_SERVER)"
    )


def _binary() -> str:
    if os.access(BINARY, os.X_OK):
        return BINARY
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(missing())
    return found


def freePort() -> int:
    """
    :return: a TCP port on 127.0.0.1 that was free a moment ago.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redisArguments(binary: str, port: int, directory: str) -> list[str]:
    """
    :return: the command line of C{redis-server} (at C{binary}) on
        127.0.0.1 only, on C{port}, with no persistence, in C{directory}.
    """
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        directory,
    ]


class _Watcher(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ready: Deferred[None] = Deferred()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if not self.ready.called and b"Ready to accept connections" in self.output:
            self.ready.callback(None)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if not self.ready.called:
            self.ready.errback(
                RuntimeError(
                    "redis-server ended before it was ready:\n"
                    + self.output.decode(errors="replace")
                )
            )
        self.ended.callback(None)


class RedisServer:
    """
    One C{redis-server} process of a test.

    :ivar port: its TCP port on 127.0.0.1 (the same across L{restart}).
    :ivar url: the C{--registry} value that reaches it.
    :ivar directory: its working directory.
    """

    def __init__(self, reactor: Any, password: str | None = None) -> None:
        self._reactor = reactor
        self.port = freePort()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.directory = tempfile.mkdtemp(prefix="aphelion-redis-")
        self._watcher: _Watcher | None = None
        self._transport: Any = None

    @property
    def running(self) -> bool:
        """
        Whether the process runs.
        """
        return self._watcher is not None and not self._watcher.ended.called

    async def start(self) -> None:
        """
        Start the server and return once it accepts connections.
        """
        args = [
            *redisArguments(_binary(), self.port, self.directory),
            "--logfile",
            "",
            "--daemonize",
            "no",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        watcher = _Watcher()
        self._watcher = watcher
        self._transport = self._reactor.spawnProcess(
            watcher, args[0], args, env=dict(os.environ), path=self.directory
        )
        await watcher.ready

    async def kill(self) -> None:
        """
        SIGKILL the server (as a crash) and return once it is gone.
        """
        watcher = self._watcher
        if watcher is None or watcher.ended.called:
            return
        try:
            self._transport.signalProcess(signal.SIGKILL)
        except ProcessExitedAlready:
            pass
        await watcher.ended

    async def restart(self) -> None:
        """
        Start the server again on the same port (with no data: nothing is
        saved), killing it first if it runs.
        """
        await self.kill()
        await self.start()

    async def cleanup(self) -> None:
        """
        Kill the server and remove its directory.
        """
        await self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


async def startRedis(testCase: Any, password: str | None = None) -> RedisServer:
    """
    Start a Redis server for C{testCase}, killed when the test ends.

    :param testCase: a trial C{TestCase} (its C{addCleanup} is used).
    :param password: C{requirepass}, if any (then L{RedisServer.url} has it).
    """
    from twisted.internet import reactor

    server = RedisServer(reactor, password)
    testCase.addCleanup(lambda: Deferred.fromCoroutine(server.cleanup()))
    await server.start()
    return server
