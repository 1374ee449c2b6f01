# -*- test-case-name: tests.test_integration_cluster -*-
"""
Every game server of a cluster, as one node seats players on them (Part 5.2).

L{ClusterPool} is the L{IGameServerPool} of a node of a cluster. It wraps
the node's own L{GameServerMonitor}, publishes the game servers whose
control connection the node holds (C{<prefix>gs:<serverId>}: a hash of the
owning node, address, client token, capacity, players, accepting; it
expires C{deadAfter} seconds after the owner's last refresh), and reads the
other nodes' records every C{refreshInterval} seconds, so that it picks
among all of them by their real load (the players of each game server's
own C{Status}).

Two nodes seating at once must not seat a game server past its capacity:
L{ClusterLinkConnector} reserves a place before opening a player
connection, in one Lua script that counts the server's players and the
places reserved by any node for seatings in progress
(C{<prefix>gs:<id>:seats}, a sorted set of reservations by expiry). A
reservation ends with its seating; the game server's next C{Status} then
counts the player. In the moment between the two another node may count one
player too few: the game server's own C{Rejected{FULL}} is the backstop, and
the session is then seated elsewhere.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from aphelion.codes import RejectCode
from aphelion.control.servers import GameServer, ServerState, pickServer
from aphelion.interfaces import IGameServerPool, IPlayerLink, IPooledServer, ISeat
from aphelion.registry.client import RedisClient, RedisUnavailable
from aphelion.registry.records import (
    CLAIM,
    DELETE_MINE,
    LOOPBACK,
    PUBLISH,
    RESERVE,
    SharedGameServer,
    hashReply,
    text,
)

__all__ = ["ClusterLinkConnector", "ClusterPool", "SharedGameServer"]


@implementer(IGameServerPool)
class ClusterPool:
    """
    The game servers of the whole cluster, for one node's gateway.

    :ivar monitor: the node's own L{GameServerMonitor}.
    :ivar shared: the other nodes' game servers, by id, as last read.
    :ivar reserveFor: milliseconds a reservation of a place lives at most
        (a node that dies while seating leaves it to expire).
    """

    _log = Logger()

    reserveFor = 15000

    def __init__(
        self,
        *,
        clock: IReactorTime,
        client: RedisClient,
        monitor: Any,
        nodeId: str,
        prefix: str = "aphelion:",
        refreshInterval: float = 1.0,
        deadAfter: float = 15.0,
    ) -> None:
        self._clock = clock
        self.client = client
        self.monitor = monitor
        self.nodeId = nodeId
        self.prefix = prefix
        self.refreshInterval = refreshInterval
        self.deadAfter = deadAfter
        self.shared: dict[str, SharedGameServer] = {}
        #: Names this host in the records: a game server on loopback is
        #: seated on only by the nodes of its own host.
        self.machine = socket.gethostname()
        self._reservations: dict[str, list[str]] = {}
        self._refreshCall: IDelayedCall | None = None
        self._lostObservers: list[Callable[[Any], object]] = []
        self._controlling: dict[str, bool] = {}
        monitor.controlGate = self
        monitor.addChangeObserver(self._publish)
        monitor.addLostObserver(self._lost)

    def _key(self, serverId: str) -> str:
        return f"{self.prefix}gs:{serverId}"

    # -- life -----------------------------------------------------------------

    def start(self) -> None:
        """
        Start reading the other nodes' game servers and refreshing ours.
        """
        self._refreshCall = self._clock.callLater(0, self._refresh)
        self.client.addStateObserver(self._stateChanged)

    def stop(self) -> None:
        """
        Stop refreshing; our records expire by themselves.
        """
        if self._refreshCall is not None and self._refreshCall.active():
            self._refreshCall.cancel()
        self._refreshCall = None

    def _stateChanged(self, up: bool) -> None:
        if up:
            for server in list(self.monitor.servers.values()):
                self._publish(server)

    def _refresh(self) -> None:
        self._refreshCall = self._clock.callLater(self.refreshInterval, self._refresh)
        if not self.client.up:
            return
        for server in self.monitor.servers.values():
            if server.remote and self.monitor.sharedRemotes:
                self._claim(server)
            if server.state is ServerState.READY:
                self._write(
                    [["PEXPIRE", self._key(server.serverId), self._ttl]], "refreshing"
                )
        d = Deferred.fromCoroutine(self.readShared())
        d.addErrback(self._ignore, "reading the cluster's game servers")

    @property
    def _ttl(self) -> int:
        return int(self.deadAfter * 1000)

    def _write(self, commands: list[list[Any]], what: str) -> None:
        for d in self.client.pipeline(commands):
            d.addErrback(self._ignore, what)

    def _ignore(self, failure: Failure, what: str) -> None:
        if not failure.check(RedisUnavailable):
            self._log.failure("cluster: {what} failed", failure, what=what)

    # -- our game servers -----------------------------------------------------

    def _publish(self, server: GameServer) -> None:
        if not self.client.up:
            return
        key = self._key(server.serverId)
        if server.state not in (ServerState.READY, ServerState.DRAINING):
            # Only our own record: another node may control a shared one.
            self._deleteMine(key)
            return
        accepting = server.accepting and server.state is ServerState.READY
        # One operation per Status: the fields and the expiry together.
        d = self.client.script(
            PUBLISH,
            [key],
            [
                self._ttl,
                "node",
                self.nodeId,
                "host",
                server.host,
                "port",
                server.port or "",
                "ctoken",
                (server.clientToken or b"").hex(),
                "name",
                server.name,
                "capacity",
                server.capacity,
                "players",
                server.players,
                "accepting",
                "1" if accepting else "0",
                "machine",
                self.machine,
            ],
        )
        d.addErrback(self._ignore, "publishing a game server")

    # -- the control of shared remote game servers (one node at a time) ------

    def _claim(self, server: GameServer) -> None:
        d = self.client.script(
            CLAIM,
            [self._key(server.serverId) + ":control"],
            [self.nodeId, self._ttl],
        )

        def claimed(answer: Any) -> None:
            held = answer == 1
            if held != self._controlling.get(server.serverId, False):
                self._log.info(
                    "cluster: this node {verb} the control of {serverId}",
                    verb="takes" if held else "does not hold",
                    serverId=server.serverId,
                )
            self._controlling[server.serverId] = held

        d.addCallbacks(claimed, self._ignore, errbackArgs=("claiming control",))

    def mayControl(self, server: GameServer) -> bool:
        """
        Whether this node holds the control of the shared remote game
        server C{server} (as last claimed in Redis).
        """
        return self._controlling.get(server.serverId, False)

    def released(self, server: GameServer) -> None:
        """
        This node let go of the control of C{server}: another node may
        take it at once.
        """
        if self._controlling.pop(server.serverId, False):
            self._deleteMine(self._key(server.serverId) + ":control")
            self._deleteMine(self._key(server.serverId))

    def _deleteMine(self, key: str) -> None:
        d = self.client.script(DELETE_MINE, [key], [self.nodeId])
        d.addErrback(self._ignore, "withdrawing a record")

    def _lost(self, server: Any) -> None:
        for observer in self._lostObservers:
            observer(server)

    # -- the others' ----------------------------------------------------------

    async def readShared(self) -> None:
        """
        Read every game server record of the other nodes.
        """
        cursor: Any = b"0"
        keys: list[str] = []
        while True:
            reply = await self.client.execute(
                "SCAN", cursor, "MATCH", self._key("*"), "COUNT", 1000
            )
            cursor = reply[0]
            keys += [text(k) for k in reply[1] if not text(k).endswith(":seats")]
            if cursor in (b"0", 0):
                break
        results = await DeferredList(
            self.client.pipeline([["HGETALL", k] for k in keys]), consumeErrors=True
        )
        seen = set()
        for key, (ok, reply) in zip(keys, results, strict=True):
            if not ok:
                continue
            record = hashReply(reply)
            if not record or record.get("node") == self.nodeId:
                continue
            if record.get("host") in LOOPBACK and record.get("machine") != self.machine:
                # Listening on another machine's loopback: out of reach.
                continue
            serverId = key[len(self._key("")) :]
            seen.add(serverId)
            self._update(serverId, record)
        for serverId, server in list(self.shared.items()):
            if serverId not in seen:
                server.accepting = False
                if not server.links and not server.pending:
                    del self.shared[serverId]

    def _update(self, serverId: str, record: dict[str, str]) -> SharedGameServer:
        server = self.shared.get(serverId)
        if server is None:
            server = self.shared[serverId] = SharedGameServer(serverId)
        server.update(record)
        return server

    def find(self, serverId: str) -> Deferred[IPooledServer | None]:
        """
        :return: a L{Deferred} that fires with the game server named
            C{serverId}, ours or another node's (read from Redis when not
            known yet), or L{None}.
        """
        own = self.monitor.servers.get(serverId)
        if own is not None and own.control is not None:
            return succeed(own)
        return Deferred.fromCoroutine(self._find(serverId))

    async def _find(self, serverId: str) -> IPooledServer | None:
        if not self.client.up:
            return self.shared.get(serverId)
        try:
            record = hashReply(
                await self.client.execute("HGETALL", self._key(serverId))
            )
        except RedisUnavailable:
            return self.shared.get(serverId)
        if not record:
            return None
        return self._update(serverId, record)

    # -- IGameServerPool ------------------------------------------------------

    def pick(self, exclude: Collection[Any]) -> Any:
        """
        The game server of the cluster with room and the fewest players
        (C{spread}) or the most (C{fill}); ours first on a tie.
        """
        candidates = [*self.monitor.servers.values(), *self.shared.values()]
        return pickServer(candidates, exclude, self.monitor.seating == "fill")

    def _isOwn(self, server: Any) -> bool:
        return isinstance(server, GameServer)

    def seatingStarted(self, server: Any) -> None:
        if self._isOwn(server):
            self.monitor.seatingStarted(server)
        else:
            server.pending += 1

    def seatingEnded(self, server: Any) -> None:
        if self._isOwn(server):
            self.monitor.seatingEnded(server)
        else:
            server.pending = max(0, server.pending - 1)
        reservations = self._reservations.get(server.serverId)
        if reservations:
            member = reservations.pop(0)
            if not reservations:
                del self._reservations[server.serverId]
            # Made or given up: the game server's next Status counts the
            # player, if seated.
            self._write(
                [["ZREM", self._key(server.serverId) + ":seats", member]],
                "ending a reservation",
            )

    def linkAdded(self, server: Any, link: IPlayerLink) -> None:
        if self._isOwn(server):
            self.monitor.linkAdded(server, link)
        else:
            server.links.add(link)

    def linkRemoved(self, server: Any, link: IPlayerLink) -> None:
        if self._isOwn(server):
            self.monitor.linkRemoved(server, link)
        else:
            server.links.discard(link)

    def linksOf(self, server: Any) -> Collection[IPlayerLink]:
        if self._isOwn(server):
            links: Collection[IPlayerLink] = self.monitor.linksOf(server)
            return links
        return server.links  # type: ignore[no-any-return]

    def addLostObserver(self, observer: Callable[[Any], object]) -> None:
        self._lostObservers.append(observer)

    # -- reservations ---------------------------------------------------------

    def reserve(self, server: IPooledServer) -> Deferred[bool]:
        """
        Reserve a place on C{server} for a seat being set up.

        :return: a L{Deferred} that fires with whether there was room (with
            Redis unreachable: whether the server is ours, whose own
            C{Rejected{FULL}} is then the only check).
        """
        member = os.urandom(8).hex()
        d = self.client.script(
            RESERVE,
            [self._key(server.serverId), self._key(server.serverId) + ":seats"],
            [member, self.reserveFor],
        )

        def reserved(answer: Any) -> bool:
            if answer == 1:
                self._reservations.setdefault(server.serverId, []).append(member)
                return True
            return False

        def unreachable(failure: Failure) -> bool:
            failure.trap(RedisUnavailable)
            return self._isOwn(server)

        return d.addCallbacks(reserved, unreachable)


class ClusterLinkConnector:
    """
    Opens the player connection of a seat once the cluster has reserved a
    place for it on the game server; a server without room refuses the
    seat as the game server would (C{Rejected{FULL}}), and the session is
    seated elsewhere.
    """

    _log = Logger()

    def __init__(self, pool: ClusterPool, connect: Callable[[Any, Any], None]) -> None:
        self._pool = pool
        self._connect = connect

    def __call__(self, server: IPooledServer, seat: ISeat) -> None:
        """
        Reserve, then connect.
        """
        d = self._pool.reserve(server)

        def reserved(ok: bool) -> None:
            if ok:
                self._connect(server, seat)
            else:
                seat.rejected(RejectCode.FULL, "game server full")

        d.addCallback(reserved)
        d.addErrback(self._failed, server, seat)

    def _failed(self, failure: Failure, server: IPooledServer, seat: ISeat) -> None:
        self._log.failure(
            "seating on {serverId} failed", failure, serverId=server.serverId
        )
        seat.lost("seating failed")
