# -*- test-case-name: tests.test_redisserver -*-
"""
Tests for L{tests.redisserver}, the throwaway Redis server of the tests.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from tests.redisserver import missing, startRedis


class _Ping(Protocol):
    def __init__(self) -> None:
        from twisted.internet.defer import Deferred

        self.reply: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"PING\r\n")

    def dataReceived(self, data: bytes) -> None:
        if not self.reply.called:
            self.reply.callback(data)
            assert self.transport is not None
            self.transport.loseConnection()


async def _ping(port: int) -> bytes:
    protocol = _Ping()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
    return await protocol.reply


class RedisServerTests(TestCase):
    """
    The helper starts, kills and restarts a real server.
    """

    if missing():
        skip = missing()

    async def test_startKillRestart(self) -> None:
        """
        The server answers PING once started and again after a restart on
        the same port; it is not running after L{kill}.
        """
        redis = await startRedis(self)
        self.assertEqual(redis.url, f"redis://127.0.0.1:{redis.port}/0")
        self.assertEqual(await _ping(redis.port), b"+PONG\r\n")
        await redis.kill()
        self.assertFalse(redis.running)
        await redis.restart()
        self.assertTrue(redis.running)
        self.assertEqual(await _ping(redis.port), b"+PONG\r\n")
