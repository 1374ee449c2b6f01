# -*- test-case-name: tests.test_registry_client -*-
"""
A small Redis client on Twisted, without threads: commands answered in
order over one connection, a second connection for pub/sub, and
reconnection with back-off on an injected clock.

Why not a library: the cluster needs to know at every moment whether Redis
is reachable (a new session that needs it is closed with 1013 while it is
not, Part 5.2), to log once per change of that state, to count the
operations it sends (the benchmarks report them) and to take the reactor as
a parameter. The codec (L{aphelion.registry.resp}) is sans-IO and small.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.registry.resp import (
    Reply,
    ReplyError,
    RespParser,
    RespProtocolError,
    encodeCommand,
)

__all__ = ["RedisClient", "RedisURL", "RedisUnavailable", "parseURL"]

Arg = bytes | str | int | float


class RedisUnavailable(Exception):
    """
    Redis cannot be reached now (the client reconnects by itself).
    """


@dataclass(frozen=True)
class RedisURL:
    """
    Where Redis is: C{redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]}, or
    C{rediss://} for TLS.
    """

    host: str
    port: int = 6379
    db: int = 0
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = "***@" if self.password else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"


def parseURL(url: str) -> RedisURL:
    """
    :raises ValueError: if C{url} is not a C{redis://} or C{rediss://} URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// or rediss:// URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    path = parts.path.strip("/")
    try:
        db = int(path) if path else 0
        port = parts.port or 6379
    except ValueError:
        raise ValueError(f"bad port or database number in {url!r}") from None
    return RedisURL(
        host=parts.hostname,
        port=port,
        db=db,
        password=unquote(parts.password) if parts.password else None,
        username=unquote(parts.username) if parts.username else None,
        tls=parts.scheme == "rediss",
    )


class _RedisProtocol(Protocol):
    """
    One connection: commands out, replies matched to them in order; in
    pub/sub mode, pushed messages to the client's subscribers.
    """

    def __init__(self, client: RedisClient, subscriber: bool) -> None:
        self._client = client
        self._parser = RespParser()
        self._waiting: deque[Deferred[Reply]] = deque()
        self.subscriber = subscriber

    def connectionMade(self) -> None:
        self._client._connected(self)

    def send(self, commands: Sequence[Sequence[Arg]]) -> list[Deferred[Reply]]:
        waits = []
        for _ in commands:
            d: Deferred[Reply] = Deferred()
            self._waiting.append(d)
            waits.append(d)
        assert self.transport is not None
        self.transport.write(b"".join(encodeCommand(*c) for c in commands))
        self._client.operations += len(commands)
        return waits

    def dataReceived(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except RespProtocolError as e:
            self._client._log.error("Redis sent what is not RESP: {e}", e=e)
            assert self.transport is not None
            self.transport.loseConnection()
            return
        for reply in replies:
            if (
                self.subscriber
                and isinstance(reply, list)
                and reply
                and reply[0] == b"message"
            ):
                channel, message = reply[1], reply[2]
                assert isinstance(channel, bytes) and isinstance(message, bytes)
                self._client._message(channel, message)
                continue
            if not self._waiting:
                continue
            d = self._waiting.popleft()
            if isinstance(reply, ReplyError):
                d.errback(reply)
            else:
                d.callback(reply)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        waiting, self._waiting = self._waiting, deque()
        for d in waiting:
            d.errback(RedisUnavailable(reason.getErrorMessage()))
        self._client._lost(self)


class RedisClient:
    """
    A connection to Redis that comes back by itself, and a second one for
    pub/sub when something subscribes.

    :ivar up: whether commands can be sent now (connected, authenticated,
        database selected).
    :ivar operations: the commands sent so far (for the benchmarks).
    :ivar retryInitial: the first reconnection delay, doubling to
        L{retryMax}.
    """

    _log = Logger()

    retryInitial = 0.2
    retryMax = 5.0

    def __init__(
        self, *, reactor: Any, url: RedisURL | str, connectTimeout: float = 5.0
    ) -> None:
        self._reactor = reactor
        self.url = parseURL(url) if isinstance(url, str) else url
        self.connectTimeout = connectTimeout
        self.up = False
        self.operations = 0
        self._main: _RedisProtocol | None = None
        self._sub: _RedisProtocol | None = None
        self._subReady = False
        self._subConnecting = False
        self._channels: dict[bytes, Callable[[bytes], object]] = {}
        self._stateObservers: list[Callable[[bool], object]] = []
        self._retry: dict[bool, IDelayedCall] = {}
        self._delay: dict[bool, float] = {
            False: self.retryInitial,
            True: self.retryInitial,
        }
        self._stopped = True
        self._scripts: dict[str, bytes] = {}
        self._upWaiters: list[Deferred[None]] = []
        self._attempts: dict[bool, Deferred[Any]] = {}

    # -- life -----------------------------------------------------------------

    def start(self) -> None:
        """
        Connect (and reconnect, with back-off, until L{stop}).
        """
        self._stopped = False
        self._connect(False)
        if self._channels:
            self._connect(True)

    def stop(self) -> None:
        """
        Close the connections and stop reconnecting.
        """
        self._stopped = True
        for call in self._retry.values():
            if call.active():
                call.cancel()
        self._retry.clear()
        for attempt in list(self._attempts.values()):
            attempt.cancel()
        for protocol in (self._main, self._sub):
            if protocol is not None and protocol.transport is not None:
                protocol.transport.loseConnection()
        self._setUp(False)

    def whenUp(self) -> Deferred[None]:
        """
        :return: a L{Deferred} that fires once L{up} (at once if it is).
        """
        if self.up:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._upWaiters.append(d)
        return d

    def addStateObserver(self, observer: Callable[[bool], object]) -> None:
        """
        Call C{observer(up)} each time L{up} changes.
        """
        self._stateObservers.append(observer)

    def _endpoint(self) -> Any:
        url = self.url
        endpoint: Any = HostnameEndpoint(
            self._reactor, url.host, url.port, timeout=self.connectTimeout
        )
        if url.tls:
            endpoint = wrapClientTLS(optionsForClientTLS(url.host), endpoint)
        return endpoint

    def _connect(self, subscriber: bool) -> None:
        self._retry.pop(subscriber, None)
        if self._stopped:
            return
        if subscriber:
            self._subConnecting = True
        factory = Factory.forProtocol(lambda: _RedisProtocol(self, subscriber))
        d = self._endpoint().connect(factory)
        self._attempts[subscriber] = d
        d.addBoth(self._attempted, subscriber)
        d.addErrback(self._failed, subscriber)

    def _attempted(self, result: Any, subscriber: bool) -> Any:
        self._attempts.pop(subscriber, None)
        return result

    def _failed(self, failure: Failure, subscriber: bool) -> None:
        if self._stopped:
            return
        if subscriber:
            self._subConnecting = False
        else:
            self._setUp(False, failure.getErrorMessage())
        self._again(subscriber)

    def _again(self, subscriber: bool) -> None:
        if self._stopped or subscriber in self._retry:
            return
        delay = self._delay[subscriber]
        self._delay[subscriber] = min(delay * 2, self.retryMax)
        self._retry[subscriber] = self._reactor.callLater(
            delay, self._connect, subscriber
        )

    def _connected(self, protocol: _RedisProtocol) -> None:
        subscriber = protocol.subscriber
        if subscriber:
            self._sub = protocol
            self._subConnecting = False
        else:
            self._main = protocol
        url = self.url
        commands: list[list[Arg]] = []
        if url.password is not None:
            commands.append(
                ["AUTH", url.username, url.password]
                if url.username
                else ["AUTH", url.password]
            )
        if url.db and not subscriber:
            commands.append(["SELECT", url.db])
        if subscriber and self._channels:
            commands.append(["SUBSCRIBE", *self._channels])
        if not commands:
            self._ready(protocol)
            return
        waits = protocol.send(commands)
        done = Deferred.fromCoroutine(self._gather(waits))
        done.addCallbacks(
            lambda _: self._ready(protocol),
            lambda f: self._handshakeFailed(protocol, f),
        )

    async def _gather(self, waits: list[Deferred[Reply]]) -> None:
        for d in waits:
            await d

    def _handshakeFailed(self, protocol: _RedisProtocol, failure: Failure) -> None:
        self._log.error(
            "Redis at {url} refused the connection's set-up: {why}",
            url=self.url,
            why=failure.getErrorMessage(),
        )
        if protocol.transport is not None:
            protocol.transport.loseConnection()

    def _ready(self, protocol: _RedisProtocol) -> None:
        self._delay[protocol.subscriber] = self.retryInitial
        if protocol.subscriber:
            self._subReady = True
        else:
            self._setUp(True)

    def _lost(self, protocol: _RedisProtocol) -> None:
        if protocol.subscriber:
            if self._sub is protocol:
                self._sub = None
                self._subReady = False
        elif self._main is protocol:
            self._main = None
            self._setUp(False, "connection lost")
        self._again(protocol.subscriber)

    def _setUp(self, up: bool, why: str = "") -> None:
        if up == self.up:
            return
        self.up = up
        if up:
            self._log.info("Redis at {url} is reachable", url=self.url)
        elif not self._stopped:
            self._log.warn(
                "Redis at {url} is unreachable ({why}); retrying with back-off",
                url=self.url,
                why=why,
            )
        for observer in self._stateObservers:
            try:
                observer(up)
            except Exception:
                self._log.failure("Redis state observer failed")
        if up:
            waiters, self._upWaiters = self._upWaiters, []
            for d in waiters:
                d.callback(None)

    # -- commands -------------------------------------------------------------

    def execute(self, *args: Arg) -> Deferred[Any]:
        """
        Send one command.

        :return: a L{Deferred} that fires with the reply, or fails with
            L{ReplyError} or L{RedisUnavailable}.
        """
        main = self._main
        if not self.up or main is None:
            return fail(RedisUnavailable("Redis is unreachable"))
        return main.send([args])[0]

    def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Deferred[Any]]:
        """
        Send several commands in one write.

        :return: a L{Deferred} per command.
        """
        main = self._main
        if not self.up or main is None:
            return [fail(RedisUnavailable("Redis is unreachable")) for _ in commands]
        return main.send(commands)

    def script(
        self, source: str, keys: Sequence[Arg], args: Sequence[Arg]
    ) -> Deferred[Any]:
        """
        Run a Lua script (C{EVALSHA}, loading it with C{EVAL} the first
        time a server does not know it).
        """
        sha = self._scripts.get(source)
        if sha is None:
            sha = self._scripts[source] = (
                hashlib.sha1(source.encode()).hexdigest().encode()
            )
        d = self.execute("EVALSHA", sha, len(keys), *keys, *args)

        def noScript(failure: Failure) -> Deferred[Any]:
            failure.trap(ReplyError)
            if not str(failure.value).startswith("NOSCRIPT"):
                return failure  # type: ignore[return-value]
            return self.execute("EVAL", source, len(keys), *keys, *args)

        return d.addErrback(noScript)

    # -- pub/sub --------------------------------------------------------------

    def subscribe(self, channel: bytes, callback: Callable[[bytes], object]) -> None:
        """
        Call C{callback(message)} with each message published on C{channel},
        from now on and across reconnections.
        """
        self._channels[channel] = callback
        sub = self._sub
        if sub is not None and self._subReady:
            sub.send([["SUBSCRIBE", channel]])
        elif not self._stopped and sub is None and not self._subConnecting:
            self._connect(True)

    def publish(self, channel: bytes, message: bytes) -> Deferred[Any]:
        """
        Publish C{message} on C{channel}.

        :return: a L{Deferred} that fires with the number of receivers.
        """
        return self.execute("PUBLISH", channel, message)

    def _message(self, channel: bytes, message: bytes) -> None:
        callback = self._channels.get(channel)
        if callback is not None:
            try:
                callback(message)
            except Exception:
                self._log.failure(
                    "Redis subscriber of {channel} failed", channel=channel
                )
