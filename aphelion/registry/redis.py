# -*- test-case-name: tests.test_registry_redis -*-
"""
The session registry of a cluster of AuthProxies, shared in Redis (Part 5).

A L{RedisSessionRegistry} keeps the sessions whose connections it holds in
memory, as L{MemorySessionRegistry} does (so relaying, acks and queues make
no Redis operation), and mirrors in Redis what the rest of the cluster
needs (Part 5.1):

- C{<prefix>node:<nodeId>}: a hash (its address, players, playing) that
  expires C{deadAfter} seconds after its last refresh; refreshed with the
  counts every C{countsInterval} seconds.
- C{<prefix>session:<sha256(token) hex>}: a hash (session id, owning node,
  player id, name, attributes, game-server id). It expires the session
  timeout after the last connection closed (or, when its node died,
  C{sessionTimeout + deadAfter} after the node's last refresh of it), so
  nothing needs sweeping.
- C{<prefix>player:<playerId>}: the session key the player is bound to,
  with the same life.
- the channel C{<prefix>node:<nodeId>}: messages to that node (a kick of
  a session whose player logged in elsewhere; a request to release a
  session that resumes elsewhere, and its answer with the queued packets).

A session is written to Redis once it is authenticated: unauthenticated
sessions never linger, so the rest of the cluster has nothing to resume.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from aphelion.auth.credentials import PlayerIdentity
from aphelion.codes import CloseCode
from aphelion.interfaces import IConnection, ISeat, ISessionRegistry
from aphelion.registry.client import RedisClient, RedisUnavailable
from aphelion.session import (
    MemorySessionRegistry,
    Session,
    SessionFull,
    TooManySessions,
)

__all__ = [
    "RedisSessionRegistry",
    "RegistryUnavailable",
    "newNodeId",
    "sessionKey",
]

# Bind a player to a session; answer the session it was bound to before
# (or, with refuse, leave it and answer that one while it lives).
_BIND = """
local old = redis.call('GET', KEYS[1])
if old == ARGV[1] then return false end
if old and ARGV[3] == '1' and redis.call('EXISTS', ARGV[4] .. old) == 1 then
  return {'refused', old, redis.call('HGET', ARGV[4] .. old, 'node') or ''}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], 'node', ARGV[5], 'sid', ARGV[6], 'player', ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if old then
  return {'replaced', old, redis.call('HGET', ARGV[4] .. old, 'node') or ''}
end
return false
"""

# Forget a session, and its player's binding if it still names it.
_FORGET = """
redis.call('DEL', KEYS[1])
if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
"""


def newNodeId() -> str:
    """
    :return: a fresh random node id (16 hex digits).
    """
    return os.urandom(8).hex()


def sessionKey(token: bytes) -> str:
    """
    :return: the name of a session in Redis: the SHA-256 of its token, in
        hex (never the token itself).
    """
    return hashlib.sha256(token).hexdigest()


class RegistryUnavailable(SessionFull):
    """
    The shared store cannot be reached: what needs it is refused with 1013
    (try again later).
    """


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")


def _hash(reply: Any) -> dict[str, str]:
    items = reply or []
    return {_text(items[i]): _text(items[i + 1]) for i in range(0, len(items), 2)}


@implementer(ISessionRegistry)
class RedisSessionRegistry(MemorySessionRegistry):
    """
    The sessions of one node of a cluster, shared through Redis.

    :ivar nodeId: this node's random id.
    :ivar address: this node's address for other nodes (informative).
    :ivar hooks: the gateway, which acts for the registry on a session
        that other nodes touch: C{kick(session, reason)},
        C{moved(session)}, C{resumed(session, serverId)}; set by the
        service.
    :ivar countsInterval: seconds between refreshes of this node's record
        and of the cluster's counts (its heartbeat).
    :ivar deadAfter: seconds after its last refresh at which a node is dead.
    :ivar handoverTimeout: seconds to wait for a node to release a session
        before taking it as dead.
    """

    _log = Logger()

    def __init__(
        self,
        *,
        clock: IReactorTime,
        client: RedisClient,
        nodeId: str | None = None,
        address: str = "",
        prefix: str = "aphelion:",
        countsInterval: float = 1.0,
        deadAfter: float = 15.0,
        handoverTimeout: float = 3.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, **kwargs)
        self.client = client
        self.nodeId = nodeId or newNodeId()
        self.address = address
        self.prefix = prefix
        self.countsInterval = countsInterval
        self.deadAfter = deadAfter
        self.handoverTimeout = handoverTimeout
        self.hooks: Any = None
        self._keys: dict[str, Session] = {}
        self._recorded: set[str] = set()
        self._moving: set[str] = set()
        self._resuming: dict[str, Deferred[Session | None]] = {}
        self._requests: dict[str, tuple[Deferred[Any], IDelayedCall]] = {}
        self._cluster: tuple[int, int] | None = None
        self._refreshCall: IDelayedCall | None = None
        self._ttlCall: IDelayedCall | None = None
        self._started = False

    # -- keys -----------------------------------------------------------------

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

    # -- life -----------------------------------------------------------------

    def start(self) -> None:
        """
        Connect to Redis, listen on this node's channel, and start the
        heartbeat.
        """
        if self._started:
            return
        self._started = True
        self.client.subscribe(self._node(self.nodeId).encode(), self._received)
        self.client.addStateObserver(self._stateChanged)
        self.client.start()
        self._refreshCall = self._clock.callLater(0, self._refresh)
        self._ttlCall = self._clock.callLater(
            max(self.sessionTimeout / 3, 0.1), self._refreshSessions
        )

    def _stateChanged(self, up: bool) -> None:
        if up:
            # Back (or there at last): be a node of the cluster at once, and
            # write again what a restarted Redis may have lost.
            self._republish()
            d = Deferred.fromCoroutine(self._refreshNow())
            d.addErrback(self._ignoreUnavailable, "refreshing the node record")

    def _republish(self) -> None:
        commands: list[list[Any]] = []
        for key in self._recorded:
            session = self._keys.get(key)
            if session is None or session.playerId is None:
                continue
            ttl = int(self.sessionTimeout * 1000) if session.lingering else self._ttl
            record = self._session(key)
            fields: list[Any] = [
                "node",
                self.nodeId,
                "sid",
                session.sessionId.hex(),
                "player",
                session.playerId,
                "server",
                getattr(getattr(session.seat, "server", None), "serverId", "") or "",
            ]
            identity = session.identity
            if identity is not None:
                fields += [
                    "name",
                    identity.name,
                    "attrs",
                    json.dumps(dict(identity.attributes), sort_keys=True),
                ]
            commands += [
                ["HSET", record, *fields],
                ["PEXPIRE", record, ttl],
                ["SET", self._player(session.playerId), key, "PX", ttl],
            ]
        if commands:
            self._write(commands, "writing the sessions again")

    def close(self) -> Deferred[None]:
        """
        Stop: forget the sessions held here, but leave their records in
        Redis to linger (a client may resume them on another node), drop
        this node's record and close the connections to Redis.
        """
        if self.client.up:
            # The sessions linger in Redis, resumable on the other nodes.
            ms = int(self.sessionTimeout * 1000)
            commands: list[list[Any]] = []
            for key in self._recorded:
                session = self._keys.get(key)
                commands.append(["PEXPIRE", self._session(key), ms])
                if session is not None and session.playerId is not None:
                    commands.append(["PEXPIRE", self._player(session.playerId), ms])
            self._write(commands, "leaving the sessions to the cluster")
        if self.hooks is not None:
            # Their game servers hold the seats (Disconnect{MOVED}) for the
            # node the clients resume on.
            for key in list(self._recorded):
                session = self._keys.get(key)
                if session is not None and session.seat is not None:
                    with self._log.failuresHandled("leaving a seat failed"):
                        self.hooks.moved(session)
        d = super().close()
        for call in (self._refreshCall, self._ttlCall):
            if call is not None and call.active():
                call.cancel()
        self._refreshCall = self._ttlCall = None
        for _waiting, timer in self._requests.values():
            if timer.active():
                timer.cancel()
        self._requests.clear()
        if self.client.up:
            done = self.client.execute("DEL", self._node(self.nodeId))
            done.addBoth(lambda _: self.client.stop())
        else:
            self.client.stop()
        return d

    # -- the heartbeat and the counts -----------------------------------------

    def _refresh(self) -> None:
        self._refreshCall = self._clock.callLater(self.countsInterval, self._refresh)
        if not self.client.up:
            return
        d = Deferred.fromCoroutine(self._refreshNow())
        d.addErrback(self._ignoreUnavailable, "refreshing the node record")

    async def _refreshNow(self) -> None:
        client = self.client
        node = self._node(self.nodeId)
        self._write(
            [
                [
                    "HSET",
                    node,
                    "address",
                    self.address,
                    "players",
                    len(self._players),
                    "playing",
                    self._playing,
                ],
                ["PEXPIRE", node, int(self.deadAfter * 1000)],
            ],
            "refreshing the node record",
        )
        nodes = await self._nodes()
        if not nodes:
            return
        waits = client.pipeline([["HMGET", n, "players", "playing"] for n in nodes])
        results = await DeferredList(waits, consumeErrors=True)
        players = playing = 0
        for ok, values in results:
            if not ok:
                raise RedisUnavailable("counts unavailable")
            players += int(values[0] or 0)
            playing += int(values[1] or 0)
        self._cluster = (players, playing)

    async def _nodes(self) -> list[str]:
        cursor = b"0"
        found: list[str] = []
        while True:
            reply = await self.client.execute(
                "SCAN", cursor, "MATCH", self._node("*"), "COUNT", 1000
            )
            cursor = reply[0]
            found += [_text(k) for k in reply[1]]
            if cursor in (b"0", 0):
                return sorted(set(found))

    def _refreshSessions(self) -> None:
        self._ttlCall = self._clock.callLater(
            max(self.sessionTimeout / 3, 0.1), self._refreshSessions
        )
        if not self.client.up:
            return
        commands: list[list[Any]] = []
        for key in self._recorded:
            session = self._keys.get(key)
            if session is None or session.lingering:
                continue
            commands.append(["PEXPIRE", self._session(key), self._ttl])
            if session.playerId is not None:
                commands.append(["PEXPIRE", self._player(session.playerId), self._ttl])
        for d in self.client.pipeline(commands):
            d.addErrback(self._ignoreUnavailable, "refreshing session records")

    def _ignoreUnavailable(self, failure: Failure, what: str) -> None:
        if failure.check(RedisUnavailable):
            return  # the client logs the state change once
        self._log.failure("registry: {what} failed", failure, what=what)

    @property
    def players(self) -> int:
        """
        Authenticated sessions of the whole cluster, as last refreshed (of
        this node alone until Redis first answered).
        """
        cluster = self._cluster
        return len(self._players) if cluster is None else cluster[0]

    @property
    def playing(self) -> int:
        """
        Seated sessions of the whole cluster, as last refreshed.
        """
        cluster = self._cluster
        return self._playing if cluster is None else cluster[1]

    def counts(self) -> Deferred[tuple[int, int]]:
        """
        Refresh and return the cluster's counts.
        """
        if not self.client.up:
            return succeed((self.players, self.playing))
        d = Deferred.fromCoroutine(self._refreshNow())
        return d.addCallback(lambda _: (self.players, self.playing))

    # -- sessions -------------------------------------------------------------

    def keyOf(self, session: Session) -> str:
        """
        :return: the session's name in Redis.
        """
        return sessionKey(session.token)

    def open(self, token: bytes | None, connection: IConnection) -> Deferred[Session]:
        if token is not None and token in self._sessions:
            return super().open(token, connection)
        if not self.client.up:
            return fail(
                RegistryUnavailable("session store unavailable, try again later")
            )
        if token is None:
            return super().open(None, connection)
        d = Deferred.fromCoroutine(self._openShared(token, connection))
        return d

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
            record = _hash(await self.client.execute("HGETALL", self._session(key)))
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

    def _write(self, commands: list[list[Any]], what: str) -> None:
        for d in self.client.pipeline(commands):
            d.addErrback(self._ignoreUnavailable, what)

    def detach(self, session: Session, connection: IConnection) -> Deferred[None]:
        d = super().detach(session, connection)
        key = self.keyOf(session)
        if session.lingering and key in self._recorded:
            ms = int(self.sessionTimeout * 1000)
            commands: list[list[Any]] = [["PEXPIRE", self._session(key), ms]]
            if session.playerId is not None:
                commands.append(["PEXPIRE", self._player(session.playerId), ms])
            self._write(commands, "marking a session lingering")
        return d

    def authenticate(
        self, session: Session, playerId: str, refuse: bool = False
    ) -> Deferred[Session | None]:
        if session.playerId == playerId and self.keyOf(session) in self._recorded:
            return succeed(None)
        d = Deferred.fromCoroutine(self._authenticate(session, playerId, refuse))
        return d

    async def _authenticate(
        self, session: Session, playerId: str, refuse: bool
    ) -> Session | None:
        key = self.keyOf(session)
        try:
            answer = await self.client.script(
                _BIND,
                [self._player(playerId), self._session(key)],
                [
                    key,
                    self._ttl,
                    "1" if refuse else "0",
                    self._session(""),
                    self.nodeId,
                    session.sessionId.hex(),
                    playerId,
                ],
            )
        except RedisUnavailable:
            raise RegistryUnavailable(
                "session store unavailable, try again later"
            ) from None
        if session.ended:
            self._forget(key, playerId)
            return None
        self._keys[key] = session
        self._recorded.add(key)
        other: Session | None = None
        if answer:
            verdict, oldKey, oldNode = (_text(a) for a in answer)
            local = self._keys.get(oldKey)
            if verdict == "refused":
                if local is not None:
                    return local
                return _RemoteSession(oldKey)  # type: ignore[return-value]
            if local is None and oldNode and oldNode != self.nodeId:
                self._send(
                    oldNode,
                    {"op": "kick", "key": oldKey, "reason": "logged in elsewhere"},
                )
        previous = await super().authenticate(session, playerId, refuse)
        other = previous
        return other

    def seat(self, session: Session, seat: ISeat | None) -> Deferred[None]:
        super().seat(session, seat)
        key = self.keyOf(session)
        if key not in self._recorded:
            return succeed(None)
        identity = session.identity
        server = getattr(getattr(seat, "server", None), "serverId", "") or ""
        fields: list[Any] = ["server", server]
        if identity is not None:
            fields += [
                "name",
                identity.name,
                "attrs",
                json.dumps(dict(identity.attributes), sort_keys=True),
            ]
        self._write([["HSET", self._session(key), *fields]], "recording a seat")
        return succeed(None)

    def unbind(self, session: Session) -> Deferred[None]:
        playerId = session.playerId
        d = super().unbind(session)
        key = self.keyOf(session)
        if key in self._recorded:
            self._recorded.discard(key)
            self._forget(key, playerId)
        return d

    def end(self, session: Session, code: int, reason: str) -> Deferred[None]:
        if session.ended:
            return succeed(None)
        key = self.keyOf(session)
        playerId = session.playerId
        moving = key in self._moving
        d = super().end(session, code, reason)
        self._keys.pop(key, None)
        self._moving.discard(key)
        if key in self._recorded:
            self._recorded.discard(key)
            # A node that stops leaves its sessions to the cluster.
            if not moving and not self._closed:
                self._forget(key, playerId)
        return d

    def _forget(self, key: str, playerId: str | None) -> None:
        d = self.client.script(
            _FORGET,
            [self._session(key), self._player(playerId) if playerId else ""],
            [key],
        )
        d.addErrback(self._ignoreUnavailable, "forgetting a session")

    # -- messages between nodes -----------------------------------------------

    def _send(self, nodeId: str, message: dict[str, Any]) -> Deferred[Any]:
        d = self.client.publish(
            self._node(nodeId).encode(), json.dumps(message).encode()
        )
        d.addErrback(self._ignoreUnavailable, "messaging a node")
        return d

    async def _askRelease(self, owner: str, key: str) -> dict[str, Any] | None:
        request = os.urandom(8).hex()
        waiting: Deferred[Any] = Deferred()
        timer = self._clock.callLater(self.handoverTimeout, self._noAnswer, request)
        self._requests[request] = (waiting, timer)
        self._send(
            owner, {"op": "release", "key": key, "from": self.nodeId, "req": request}
        )
        answer: dict[str, Any] | None = await waiting
        return answer

    def _noAnswer(self, request: str) -> None:
        entry = self._requests.pop(request, None)
        if entry is not None:
            self._log.warn("registry: a node did not release a session in time")
            entry[0].callback(None)

    def _received(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            op = message["op"]
        except (ValueError, KeyError, TypeError):
            self._log.warn("registry: an unreadable message from another node")
            return
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
        elif op == "released":
            entry = self._requests.pop(str(message.get("req")), None)
            if entry is not None:
                waiting, timer = entry
                if timer.active():
                    timer.cancel()
                waiting.callback(message)

    def _release(self, key: str, requester: str, request: str) -> None:
        session = self._keys.get(key)
        if session is None or session.ended:
            self._send(requester, {"op": "released", "req": request, "found": False})
            return
        queue = [base64.b64encode(p).decode("ascii") for p in session.queue]
        identity = session.identity
        record: dict[str, str] = {}
        if identity is not None:
            record = {
                "name": identity.name,
                "attrs": json.dumps(dict(identity.attributes), sort_keys=True),
            }
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


class _RemoteSession:
    """
    A session of another node that keeps a player ID (the newcomer is
    refused).
    """

    def __init__(self, key: str) -> None:
        self.key = key
