# -*- test-case-name: tests.test_registry_redis -*-
"""
A session that moves between the nodes of a cluster (Part 5.1): the half of
L{RedisSessionRegistry<aphelion.registry.redis.RedisSessionRegistry>} that
takes over a session whose client resumes here while another node holds
it (asking that node to release it, with its queued packets, over the
L{NodeChannel}), and that releases a session of this node to another.

L{SessionHandover} also names the registry's keys in Redis and writes to
it; L{aphelion.registry.redis} adds the node's life, its heartbeat and the
sessions' own records.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.auth.credentials import PlayerIdentity
from aphelion.codes import CloseCode
from aphelion.interfaces import IConnection
from aphelion.registry.channel import NodeChannel
from aphelion.registry.client import RedisClient, RedisUnavailable
from aphelion.registry.records import hashReply, identityFields, sessionKey
from aphelion.session import (
    MemorySessionRegistry,
    Session,
    SessionFull,
    TooManySessions,
)

__all__ = ["RegistryUnavailable", "SessionHandover"]


class RegistryUnavailable(SessionFull):
    """
    The shared store cannot be reached: what needs it is refused with 1013
    (try again later).
    """


class SessionHandover(MemorySessionRegistry):
    """
    The sessions of one node that move to and from the other nodes; the
    base of L{RedisSessionRegistry<aphelion.registry.redis.RedisSessionRegistry>},
    which sets the attributes below.

    :ivar client: the Redis client.
    :ivar nodeId: this node's id.
    :ivar prefix: what the names of the keys start with.
    :ivar deadAfter: seconds after its last refresh at which a node is dead.
    :ivar handoverTimeout: seconds to wait for a node to release a session
        before taking it as dead.
    :ivar hooks: the gateway, which acts on a session that other nodes
        touch.
    """

    _log = Logger()

    client: RedisClient
    nodeId: str
    prefix: str
    deadAfter: float
    handoverTimeout: float
    hooks: Any
    _keys: dict[str, Session]
    _recorded: set[str]
    _moving: set[str]
    _resuming: dict[str, Deferred[Session | None]]
    _channel: NodeChannel

    # -- keys and writes ------------------------------------------------------

    def _node(self, nodeId: str) -> str:
        return f"{self.prefix}node:{nodeId}"

    def _session(self, key: str) -> str:
        return f"{self.prefix}session:{key}"

    def _player(self, playerId: str) -> str:
        return f"{self.prefix}player:{playerId}"

    @property
    def _ttl(self) -> int:
        """
        Milliseconds a connected session's records live without a refresh.
        """
        return int((self.sessionTimeout + self.deadAfter) * 1000)

    def _write(self, commands: list[list[Any]], what: str) -> None:
        for d in self.client.pipeline(commands):
            d.addErrback(self._ignoreUnavailable, what)

    def _ignoreUnavailable(self, failure: Failure, what: str) -> None:
        if failure.check(RedisUnavailable):
            return  # the client logs the state change once
        self._log.failure("registry: {what} failed", failure, what=what)

    # -- taking a session over ------------------------------------------------

    async def _openShared(self, token: bytes, connection: IConnection) -> Session:
        key = sessionKey(token)
        waiting = self._resuming.get(key)
        if waiting is None:
            waiting = self._resuming[key] = Deferred.fromCoroutine(
                self._takeOver(token, key, connection)
            ).addErrback(self._unavailable)
            try:
                session = await waiting
            finally:
                del self._resuming[key]
            if session is None:
                return await super().open(None, connection)
            return session
        # Another connection of the client is taking the session over.
        await waiting
        return await super().open(token, connection)

    async def _takeOver(
        self, token: bytes, key: str, connection: IConnection
    ) -> Session | None:
        try:
            record = hashReply(await self.client.execute("HGETALL", self._session(key)))
        except RedisUnavailable:
            raise RegistryUnavailable(
                "session store unavailable, try again later"
            ) from None
        owner = record.get("node", "")
        if not record.get("player") or owner == self.nodeId:
            return None
        queue: list[bytes] = []
        if owner and await self.client.execute("EXISTS", self._node(owner)):
            answer = await self._askRelease(owner, key)
            if answer is not None:
                if not answer.get("found"):
                    return None
                queue = [base64.b64decode(p) for p in answer.get("queue", [])]
                record.update(answer.get("record", {}))
        if self.maxSessions and len(self._sessions) >= self.maxSessions:
            raise TooManySessions("too many sessions")
        if token in self._sessions:  # pragma: no cover - guarded by _resuming
            return await super().open(token, connection)
        session = self._adopt(token, key, connection, record, queue)
        self._log.info(
            "session {hint} taken over from node {node} ({queued} queued)",
            hint=session.hint,
            node=owner[:8],
            queued=len(queue),
        )
        serverId = record.get("server", "")
        if self.hooks is not None:
            self.hooks.resumed(session, serverId)
        return session

    def _unavailable(self, failure: Failure) -> Failure:
        # Redis went away in the middle of a takeover: try again later.
        if failure.check(RedisUnavailable):
            return Failure(
                RegistryUnavailable("session store unavailable, try again later")
            )
        return failure

    def _adopt(
        self,
        token: bytes,
        key: str,
        connection: IConnection,
        record: dict[str, str],
        queue: list[bytes],
    ) -> Session:
        address = str(getattr(connection, "remoteAddress", "") or "")
        if address not in self._exempt:
            self._perAddress.acquire(address)
        session = Session(
            self, token, self.queueLimit, self.queueBytes, address=address
        )
        self._sessions[token] = session
        self._keys[key] = session
        playerId = record["player"]
        try:
            attributes = json.loads(record.get("attrs") or "{}")
        except ValueError:
            attributes = {}
        session.playerId = playerId
        session.identity = PlayerIdentity(
            playerId, record.get("name", playerId), attributes
        )
        local = self._players.get(playerId)
        self._players[playerId] = session
        if local is not None and local is not session and self.hooks is not None:
            self.hooks.kick(local, "logged in elsewhere")
        for payload in queue:
            session.queue.append(payload)
            session._queued += len(payload)
        session.connections.append(connection)
        self._recorded.add(key)
        self._write(
            [
                [
                    "HSET",
                    self._session(key),
                    "node",
                    self.nodeId,
                    "sid",
                    session.sessionId.hex(),
                    "player",
                    playerId,
                ],
                ["PEXPIRE", self._session(key), self._ttl],
                ["SET", self._player(playerId), key, "PX", self._ttl],
            ],
            "taking a session over",
        )
        return session

    # -- messages between nodes -----------------------------------------------

    def _send(self, nodeId: str, message: dict[str, Any]) -> Deferred[Any]:
        return self._channel.send(nodeId, message)

    async def _askRelease(self, owner: str, key: str) -> dict[str, Any] | None:
        return await self._channel.ask(
            owner, {"op": "release", "key": key}, self.handoverTimeout
        )

    def _received(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "kick":
            session = self._keys.get(str(message.get("key")))
            if session is not None and not session.ended and self.hooks is not None:
                self.hooks.kick(
                    session, str(message.get("reason") or "logged in elsewhere")
                )
        elif op == "release":
            self._release(
                str(message.get("key")),
                str(message.get("from")),
                str(message.get("req")),
            )

    def _release(self, key: str, requester: str, request: str) -> None:
        session = self._keys.get(key)
        if session is None or session.ended:
            self._send(requester, {"op": "released", "req": request, "found": False})
            return
        queue = [base64.b64encode(p).decode("ascii") for p in session.queue]
        fields = identityFields(session.identity)
        record: dict[str, str] = dict(zip(fields[::2], fields[1::2], strict=True))
        seat = session.seat
        server = getattr(getattr(seat, "server", None), "serverId", "") if seat else ""
        record["server"] = server or ""
        if self.hooks is not None:
            with self._log.failuresHandled(
                "moving session {hint} failed", hint=session.hint
            ):
                self.hooks.moved(session)
        self._moving.add(key)
        self._log.info(
            "session {hint} moved to node {node}", hint=session.hint, node=requester[:8]
        )
        self.end(session, CloseCode.SESSION_MOVED, "session moved to another server")
        self._send(
            requester,
            {
                "op": "released",
                "req": request,
                "found": True,
                "queue": queue,
                "record": record,
            },
        )
