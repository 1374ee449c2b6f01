# -*- test-case-name: tests.test_spawn -*-
"""
Spawning and supervising game servers (Part 2.3).

L{GameServerMonitor} is a service that spawns the configured number of local
game-server processes, opens the control connection of each (and of every
remote game server configured by address and token), restarts them with
back-off when they die (all this is L{GameServerSupervisor}'s, in
L{aphelion.control.supervise}), drains them with C{Shutdown}, restarts or
reconfigures them when an operator asks, and picks the server that seats
the next player.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from zope.interface import implementer

from aphelion.control.process import childCommand
from aphelion.control.servers import (
    GameServer,
    RemoteGameServer,
    ServerState,
    pickServer,
)
from aphelion.control.supervise import ControlFactoryMaker, GameServerSupervisor
from aphelion.interfaces import IGameServerPool, IPlayerLink
from aphelion.session import newToken

__all__ = [
    "ControlFactoryMaker",
    "GameServer",
    "GameServerMonitor",
    "RemoteGameServer",
    "ServerState",
    "childCommand",
]


@implementer(IGameServerPool)
class GameServerMonitor(GameServerSupervisor):
    """
    Spawns, connects, supervises and drains game servers; picks the one
    that seats the next player. See L{GameServerSupervisor} for its
    parameters and attributes.
    """

    # -- stopping ------------------------------------------------------------

    def stopService(self) -> Deferred[Any]:
        """
        Drain every game server, then wait for the local processes to exit
        (killing those that outlive the drain deadline).
        """
        super().stopService()
        waits: list[Deferred[None]] = []
        for server in self.servers.values():
            if server._restartCall is not None and server._restartCall.active():
                server._restartCall.cancel()
            server._restartCall = None
            self._cancelPortCall(server)
            if server.remote and self.sharedRemotes:
                self._letGo(server)
                continue
            if server.process is not None:
                done: Deferred[None] = Deferred()
                self._exits.setdefault(server.serverId, []).append(done)
                waits.append(done)
                server._killCall = self._reactor.callLater(
                    self.drainDeadline + 2.0, self._kill, server
                )
            self.drain(server.serverId, "the AuthProxy is shutting down")
        if not waits:
            return succeed(None)
        return DeferredList(waits)

    def _letGo(self, server: GameServer) -> None:
        """
        Close a remote game server's control connection without draining
        it, for another node of the cluster to take over.
        """
        self._setState(server, ServerState.STOPPED)
        transport = getattr(server.control, "transport", None)
        server.control = None
        if transport is not None:
            transport.loseConnection()
        if self.controlGate is not None:
            self.controlGate.released(server)

    # -- IGameServerPool -----------------------------------------------------

    def pick(
        self, exclude: GameServer | Collection[GameServer] | None = None
    ) -> GameServer | None:
        """
        The ready game server with room and the fewest players (L{seating}
        C{"spread"}, the default), or the most (C{"fill"}: players
        are packed together, a room filled before the next is opened). Ties
        go to the server configured first.
        """
        if exclude is None:
            skip: Collection[GameServer] = ()
        elif isinstance(exclude, GameServer):
            skip = (exclude,)
        else:
            skip = exclude
        return pickServer(self.servers.values(), skip, self.seating == "fill")

    def seatingStarted(self, server: GameServer) -> None:
        """
        A seat is being set up on C{server}: it counts in the server's load
        (its C{Status} does not show it yet) until L{seatingEnded}.
        """
        server.pending += 1

    def seatingEnded(self, server: GameServer) -> None:
        """
        A seat that L{seatingStarted} counted was made or given up.
        """
        server.pending = max(0, server.pending - 1)

    def linkAdded(self, server: GameServer, link: IPlayerLink) -> None:
        """
        C{link} seats a player on C{server}: it counts in the server's load.
        """
        server.links.add(link)

    def linkRemoved(self, server: GameServer, link: IPlayerLink) -> None:
        """
        C{link} no longer seats a player on C{server}.
        """
        server.links.discard(link)

    def linksOf(self, server: GameServer) -> Collection[IPlayerLink]:
        """
        The links that seat players on C{server}.
        """
        return server.links

    # -- operations ----------------------------------------------------------

    def drain(self, serverId: str, reason: str, deadline: float | None = None) -> None:
        """
        Ask a game server to stop taking players, disconnect the rest by the
        deadline and exit (C{Shutdown}). It is not restarted.
        """
        server = self.servers[serverId]
        if server.state in (ServerState.STOPPED, ServerState.DRAINING):
            return
        deadline = self.drainDeadline if deadline is None else deadline
        server.accepting = False
        self._setState(server, ServerState.DRAINING)
        if server._restartCall is not None and server._restartCall.active():
            server._restartCall.cancel()
            server._restartCall = None
        if server.control is not None:
            server.control.sendShutdown(int(deadline * 1000), reason)
        elif server.process is not None:
            self._kill(server)
        else:
            self._stopped(server, lost=False)

    def restart(
        self,
        serverId: str,
        reason: str = "restarted by an operator",
        deadline: float | None = None,
    ) -> None:
        """
        Drain a game server as L{drain} does, then start it again (a local
        one as a new process, a remote one by reconnecting its control
        connection). A stopped server is started at once; a draining one
        starts again when its drain is over.

        :raises KeyError: if there is no such server.
        """
        server = self.servers[serverId]
        if server.state is ServerState.STOPPED:
            if self.running:
                self._log.info(
                    "game server {serverId} starting again", serverId=serverId
                )
                self._start(server)
            return
        server.restartWhenStopped = True
        self.drain(serverId, reason, deadline)

    def setServers(
        self, count: int, remotes: Sequence[RemoteGameServer]
    ) -> tuple[list[str], list[str]]:
        """
        Change the configured game servers while players play (a reload):
        start the local ones up to C{count} and the remote ones not yet
        known, and drain the local ones beyond C{count} and the remote ones
        no longer listed (by host and port; a new token for a known one is
        used from its next connection on). A stopped server of the list is
        started again; one still draining is left to finish, and starts again
        once stopped if it is listed.

        :return: the ids of the servers started and of those drained.
        """
        started: list[str] = []
        drained: list[str] = []
        wanted: dict[tuple[str, int | None], RemoteGameServer] = {
            (r.host, r.port): r for r in remotes
        }
        for serverId, server in list(self.servers.items()):
            if server.state is ServerState.STOPPED:
                continue
            if server.remote:
                remote = wanted.get((server.host, server.port))
                keep = remote is not None
                if remote is not None:
                    server.token = remote.token
            else:
                keep = int(serverId[2:]) <= count
            if server.state is ServerState.DRAINING:
                # Listed again while it drains: it starts again once
                # stopped; no longer listed: it stays stopped, even when an
                # operator's restart was pending.
                if keep and not server.restartWhenStopped:
                    started.append(serverId)
                server.restartWhenStopped = keep
                continue
            if not keep:
                self.drain(serverId, "removed from the configuration")
                drained.append(serverId)
        for i in range(count):
            serverId = f"gs{i + 1}"
            known = self.servers.get(serverId)
            if known is None:
                known = self.servers[serverId] = GameServer(serverId, newToken())
            elif known.state is not ServerState.STOPPED or known.process:
                continue
            started.append(serverId)
            self._start(known)
        connected = {
            (s.host, s.port)
            for s in self.servers.values()
            if s.remote and s.state is not ServerState.STOPPED
        }
        number = sum(1 for s in self.servers.values() if s.remote)
        for (host, port), remote in wanted.items():
            if (host, port) in connected:
                continue
            number += 1
            serverId = f"remote{number}"
            self.servers[serverId] = GameServer(
                serverId, remote.token, remote=True, host=host, port=port
            )
            started.append(serverId)
            self._start(self.servers[serverId])
        return started, drained
