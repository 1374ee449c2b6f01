# -*- test-case-name: tests.test_registry_client -*-
"""
Tests for L{aphelion.registry.client}: URLs, and the client against a real
C{redis-server}.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from aphelion.registry.client import RedisClient, RedisUnavailable, RedisURL, parseURL
from aphelion.registry.resp import ReplyError
from tests.redisserver import missing, startRedis
from tests.test_registry_redis import _until


async def sleep(seconds: float) -> None:
    """
    Let the reactor run for C{seconds}.
    """
    await deferLater(reactor, seconds, lambda: None)


class URLTests(SynchronousTestCase):
    """
    L{parseURL} reads C{redis://} and C{rediss://} URLs.
    """

    def test_full(self) -> None:
        """
        User, password, host, port, database and TLS.
        """
        self.assertEqual(
            parseURL("rediss://app:p%40ss@redis.example:6380/3"),
            RedisURL("redis.example", 6380, 3, "p@ss", "app", True),
        )

    def test_defaults(self) -> None:
        """
        Port 6379, database 0, no password, no TLS.
        """
        self.assertEqual(parseURL("redis://localhost"), RedisURL("localhost"))
        self.assertEqual(parseURL("redis://:secret@h/").password, "secret")

    def test_bad(self) -> None:
        """
        Other schemes, no host, a bad port or database: L{ValueError}.
        """
        for url in ("http://h", "redis://", "redis://h:x/0", "redis://h/db"):
            self.assertRaises(ValueError, parseURL, url)

    def test_passwordNotShown(self) -> None:
        """
        The password never appears in the URL's text (logs show it).
        """
        self.assertNotIn("secret", str(parseURL("redis://:secret@h:1/2")))


class ClientTests(TestCase):
    """
    L{RedisClient} against a real server.
    """

    if missing():
        skip = missing()

    async def client(self, url: str) -> RedisClient:
        client = RedisClient(reactor=reactor, url=url)
        client.retryInitial = 0.05
        client.start()
        self.addCleanup(client.stop)
        await client.whenUp().addTimeout(10, reactor)
        return client

    async def test_password(self) -> None:
        """
        With a password in the URL the client authenticates; commands,
        pipelines and scripts work and count as operations.
        """
        redis = await startRedis(self, password="s3cret")
        client = await self.client(redis.url)
        before = client.operations
        self.assertEqual(await client.execute("SET", "k", "v"), b"OK")
        first, second = client.pipeline([["GET", "k"], ["INCR", "n"]])
        self.assertEqual((await first, await second), (b"v", 1))
        self.assertEqual(await client.script("return ARGV[1]", [], ["x"]), b"x")
        self.assertEqual(await client.script("return ARGV[1]", [], ["y"]), b"y")
        self.assertGreaterEqual(client.operations - before, 5)
        await self.assertFailure(client.execute("NOSUCHCOMMAND"), ReplyError)

    async def test_pubsub(self) -> None:
        """
        Messages published on a subscribed channel reach the callback.
        """
        redis = await startRedis(self)
        client = await self.client(redis.url)
        got: Deferred[bytes] = Deferred()
        client.subscribe(b"ch", got.callback)
        for _ in range(100):
            if await client.publish(b"ch", b"hello"):
                break
            await sleep(0.05)
        self.assertEqual(await got.addTimeout(5, reactor), b"hello")

    async def test_lostAndBack(self) -> None:
        """
        When Redis goes, commands fail at once with L{RedisUnavailable} and
        one line is logged however many reconnections fail; one more when
        it is back.
        """
        redis = await startRedis(self)
        client = await self.client(redis.url)
        states: list[bool] = []
        client.addStateObserver(states.append)
        with capturedLogs() as events:
            await redis.kill()
            await _until(lambda: not client.up)
            await self.assertFailure(client.execute("PING"), RedisUnavailable)
            # Several reconnections fail meanwhile.
            await sleep(0.5)
            await redis.restart()
            await client.whenUp().addTimeout(10, reactor)
        self.assertEqual(states, [False, True])
        lines = [e.get("log_format", "") for e in events]
        self.assertEqual(sum("unreachable" in line for line in lines), 1, lines)
        self.assertEqual(sum("is reachable" in line for line in lines), 1, lines)
        self.assertEqual(await client.execute("PING"), b"PONG")
