# -*- test-case-name: tests.test_registry_redis -*-
"""
The session registry of a cluster of AuthProxies, shared in Redis (Part 5).

A L{RedisSessionRegistry} keeps the sessions whose connections it holds in
memory, as L{MemorySessionRegistry} does (so relaying, acks and queues make
no Redis operation), and mirrors in Redis what the rest of the cluster
needs (Part 5.1): this node's record, refreshed with the counts every
C{countsInterval} seconds, and the records of its sessions and of their
players (their keys and scripts are in L{aphelion.registry.records}). It
speaks with the other nodes through L{NodeChannel}: a kick of a session
whose player logged in elsewhere; a request to release a session that
resumes elsewhere, and its answer with the queued packets (the moves of
sessions between nodes are L{SessionHandover}'s, in
L{aphelion.registry.handover}).

A session is written to Redis once it is authenticated: unauthenticated
sessions never linger, so the rest of the cluster has nothing to resume.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from aphelion.interfaces import IConnection, ISeat, ISessionRegistry
from aphelion.registry.channel import NodeChannel
from aphelion.registry.client import RedisClient, RedisUnavailable
from aphelion.registry.handover import RegistryUnavailable, SessionHandover
from aphelion.registry.heartbeat import NodeRecord
from aphelion.registry.records import (
    BIND,
    FORGET,
    identityFields,
    newNodeId,
    sessionKey,
    text,
)
from aphelion.session import Session

__all__ = [
    "RedisSessionRegistry",
    "RegistryUnavailable",
    "newNodeId",
    "sessionKey",
]


@implementer(ISessionRegistry)
class RedisSessionRegistry(SessionHandover):
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
        self._channel = NodeChannel(
            clock=clock,
            client=client,
            nodeId=self.nodeId,
            name=self._node,
            received=self._received,
            ignore=self._ignoreUnavailable,
        )
        self._record = NodeRecord(
            clock=clock,
            client=client,
            nodeId=self.nodeId,
            name=self._node,
            address=address,
            interval=countsInterval,
            deadAfter=deadAfter,
            local=lambda: (len(self._players), self._playing),
            write=self._write,
            ignore=self._ignoreUnavailable,
        )
        self._ttlCall: IDelayedCall | None = None
        self._started = False

    # -- life -----------------------------------------------------------------

    def start(self) -> None:
        """
        Connect to Redis, listen on this node's channel, and start the
        heartbeat.
        """
        if self._started:
            return
        self._started = True
        self._channel.start()
        self.client.addStateObserver(self._stateChanged)
        self.client.start()
        self._record.start()
        self._ttlCall = self._clock.callLater(
            max(self.sessionTimeout / 3, 0.1), self._refreshSessions
        )

    def _stateChanged(self, up: bool) -> None:
        if up:
            # Back (or there at last): be a node of the cluster at once, and
            # write again what a restarted Redis may have lost.
            self._republish()
            d = Deferred.fromCoroutine(self._record.refresh())
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
                *identityFields(session.identity),
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
        self._record.stop()
        if self._ttlCall is not None and self._ttlCall.active():
            self._ttlCall.cancel()
        self._ttlCall = None
        self._channel.close()
        if self.client.up:
            done = self.client.execute("DEL", self._node(self.nodeId))
            done.addBoth(lambda _: self.client.stop())
        else:
            self.client.stop()
        return d

    # -- the heartbeat, the counts and the sessions' expiry -------------------

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

    @property
    def players(self) -> int:
        """
        Authenticated sessions of the whole cluster, as last refreshed (of
        this node alone until Redis first answered).
        """
        cluster = self._record.cluster
        return len(self._players) if cluster is None else cluster[0]

    @property
    def playing(self) -> int:
        """
        Seated sessions of the whole cluster, as last refreshed.
        """
        cluster = self._record.cluster
        return self._playing if cluster is None else cluster[1]

    def counts(self) -> Deferred[tuple[int, int]]:
        """
        Refresh and return the cluster's counts.
        """
        if not self.client.up:
            return succeed((self.players, self.playing))
        d = Deferred.fromCoroutine(self._record.refresh())
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
                BIND,
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
            verdict, oldKey, oldNode = (text(a) for a in answer)
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
        server = getattr(getattr(seat, "server", None), "serverId", "") or ""
        fields: list[Any] = ["server", server, *identityFields(session.identity)]
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
            FORGET,
            [self._session(key), self._player(playerId) if playerId else ""],
            [key],
        )
        d.addErrback(self._ignoreUnavailable, "forgetting a session")


class _RemoteSession:
    """
    A session of another node that keeps a player ID (the newcomer is
    refused).
    """

    def __init__(self, key: str) -> None:
        self.key = key
