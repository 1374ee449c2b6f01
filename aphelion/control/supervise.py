# -*- test-case-name: tests.test_spawn -*-
"""
Keeping game servers running (Part 2.3): the supervision half of
L{GameServerMonitor<aphelion.control.spawn.GameServerMonitor>}.

L{GameServerSupervisor} spawns the configured number of local game-server
processes, opens the control connection of each (and of every remote game
server configured by address and token), follows their states through the
control connection's C{Ready} and C{Status}, and restarts them with
back-off when they die. What is asked of the game servers (picking one,
draining, restarting, reconfiguring, stopping) is
L{aphelion.control.spawn}'s.

It keeps a L{GameServer} record of each (L{aphelion.control.servers}); a
local one runs as a process of L{childCommand}, spoken to by a
L{ChildProtocol} (L{aphelion.control.process}).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.control.process import ChildProtocol, childCommand
from aphelion.control.servers import (
    GameServer,
    RemoteGameServer,
    ServerState,
    restartDelay,
)
from aphelion.game.factory import PLAYER_WRITE_LIMIT, SEAT_HOLD
from aphelion.gctune import DEFAULT_THRESHOLD
from aphelion.interfaces import IControlConnection
from aphelion.session import newToken, tokenHint

__all__ = ["ControlFactoryMaker", "GameServerSupervisor"]

ControlFactoryMaker = Callable[["GameServerSupervisor", GameServer], Any]


class GameServerSupervisor(Service):
    """
    Spawns, connects and supervises game servers: keeps each running.

    :ivar servers: every game server, by id.
    :ivar restartInitial: the first restart delay, in seconds.
    :ivar restartMax: the longest restart delay.
    :ivar stableAfter: seconds of readiness after which the back-off resets.
    :ivar drainDeadline: seconds a drained server has to disconnect its players.
    :ivar gameConfig: the C{GameConfig} sent in every C{Control}, or
        L{None}.
    :ivar seating: C{"spread"} seats a player on the server with the fewest
        players; C{"fill"} on the one with the most that still has room.
    :ivar playerWriteLimit: bytes a spawned game server lets wait unsent on
        one player connection before it disconnects that player ("reads too
        slowly"); passed on its command line.
    :ivar logInterval: seconds between the summary lines of a spawned game
        server's rate-limited log lines; passed on its command line.
    :ivar gcThreshold: the young threshold of a spawned game server's
        garbage collector (C{--gc-threshold}).
    :ivar seatHold: seconds a spawned game server holds the seat of a player
        whose connection went (Part 5.2); passed on its command line.
    """

    _log = Logger()

    def __init__(
        self,
        *,
        reactor: Any,
        game: str,
        count: int,
        remotes: Sequence[RemoteGameServer] = (),
        makeControlFactory: ControlFactoryMaker,
        restartInitial: float = 1.0,
        restartMax: float = 60.0,
        stableAfter: float = 60.0,
        drainDeadline: float = 10.0,
        connectTimeout: float = 10.0,
        python: str = sys.executable,
        options: dict[str, str] | None = None,
        seating: str = "spread",
        gameConfig: Any = None,
        playerWriteLimit: int = PLAYER_WRITE_LIMIT,
        logInterval: float = 10.0,
        seatHold: float = SEAT_HOLD,
        gcThreshold: int = DEFAULT_THRESHOLD,
        idPrefix: str = "",
        sharedRemotes: bool = False,
    ) -> None:
        """
        :param idPrefix: put before each spawned server's id (C{gs1}), so
            that the ids of a cluster's nodes differ.
        :param sharedRemotes: the remote game servers are shared by the
            nodes of a cluster (Part 5.2): each is named by its address, the
            same on every node; one node at a time holds its control
            connection, as L{controlGate} decides; and a node that stops
            lets go of it without draining it, for another node to take
            over.
        """
        self.sharedRemotes = sharedRemotes
        #: In a cluster (set by the cluster's pool): C{mayControl(server)}
        #: is asked before each start of a shared remote server (a node that
        #: may not asks again every L{claimInterval} seconds), and
        #: C{released(server)} is told when this node lets go of it.
        self.controlGate: Any = None
        if seating not in ("spread", "fill"):
            raise ValueError(f"seating is spread or fill, not {seating!r}")
        if playerWriteLimit <= 0:
            raise ValueError(f"playerWriteLimit must be positive: {playerWriteLimit}")
        if logInterval <= 0:
            raise ValueError(f"logInterval must be positive: {logInterval}")
        if not seatHold >= 0:  # NaN too
            raise ValueError(f"seatHold must not be negative: {seatHold}")
        self.seatHold = seatHold
        self.gcThreshold = gcThreshold
        self.playerWriteLimit = playerWriteLimit
        self.logInterval = logInterval
        self.seating = seating
        self._reactor = reactor
        self.clock = reactor
        self.game = game
        self.restartInitial = restartInitial
        self.restartMax = restartMax
        self.stableAfter = stableAfter
        self.drainDeadline = drainDeadline
        self.connectTimeout = connectTimeout
        self.options = dict(options or {})
        self.gameConfig = gameConfig
        self._python = python
        self._makeControlFactory = makeControlFactory
        self._lostObservers: list[Callable[[GameServer], object]] = []
        self._changeObservers: list[Callable[[GameServer], object]] = []
        self._exits: dict[str, list[Deferred[None]]] = {}
        self.servers: dict[str, GameServer] = {}
        for i in range(count):
            serverId = f"{idPrefix}gs{i + 1}"
            self.servers[serverId] = GameServer(serverId, newToken())
        for i, remote in enumerate(remotes):
            serverId = (
                f"remote-{remote.host}-{remote.port}"
                if sharedRemotes
                else f"remote{i + 1}"
            )
            self.servers[serverId] = GameServer(
                serverId, remote.token, remote=True, host=remote.host, port=remote.port
            )

    # -- life cycle ----------------------------------------------------------

    def startService(self) -> None:
        """
        Called when the service starts: start every game server.
        """
        super().startService()
        for server in self.servers.values():
            self._start(server)

    def _setState(self, server: GameServer, state: ServerState) -> None:
        if server.state is not state:
            server.state = state
            self._log.info(
                "game server {serverId} {state}",
                serverId=server.serverId,
                state=state.value,
            )
            self._changed(server)

    def addChangeObserver(self, observer: Callable[[GameServer], object]) -> None:
        """
        Call C{observer(server)} whenever a game server's state, load,
        capacity or readiness to take players changes (a cluster publishes
        them).
        """
        self._changeObservers.append(observer)

    def _changed(self, server: GameServer) -> None:
        for observer in self._changeObservers:
            try:
                observer(server)
            except Exception:
                self._log.failure("game server change observer failed")

    claimInterval = 1.0

    def _start(self, server: GameServer) -> None:
        server._restartCall = None
        if not self.running:
            return
        gate = self.controlGate
        if server.remote and gate is not None and not gate.mayControl(server):
            # Another node of the cluster holds its control connection.
            server._restartCall = self._reactor.callLater(
                self.claimInterval, self._start, server
            )
            return
        server.generation += 1
        # A new client token per start, sent in Control: player connections
        # present it, and a cluster publishes it (never the control token).
        server.clientToken = newToken()
        self._setState(server, ServerState.STARTING)
        if server.remote:
            self._connectControl(server)
            return
        server.token = newToken()  # a new token per spawn
        server.port = None
        server.process = self._reactor.spawnProcess(
            ChildProtocol(
                server,
                listening=self.childListening,
                failed=self.childFailed,
                exited=self.childExited,
            ),
            self._python,
            childCommand(
                self.game,
                server.serverId,
                self._python,
                playerWriteLimit=self.playerWriteLimit,
                logInterval=self.logInterval,
                seatHold=self.seatHold,
                gcThreshold=self.gcThreshold,
            ),
            env=dict(os.environ),
        )
        # A child that never says its port (a game that hangs while loading)
        # is killed, and so restarted.
        server._portCall = self._reactor.callLater(
            self.connectTimeout, self._portTimedOut, server
        )
        self._log.info(
            "spawned game server {serverId} (pid {pid}, token {hint})",
            serverId=server.serverId,
            pid=getattr(server.process, "pid", None),
            hint=tokenHint(server.token),
        )

    def _portTimedOut(self, server: GameServer) -> None:
        server._portCall = None
        self._log.warn(
            "game server {serverId} did not report its port in {timeout:g}s; "
            "killing it",
            serverId=server.serverId,
            timeout=self.connectTimeout,
        )
        self._kill(server)

    def _cancelPortCall(self, server: GameServer) -> None:
        if server._portCall is not None and server._portCall.active():
            server._portCall.cancel()
        server._portCall = None

    def childListening(self, server: GameServer, port: int) -> None:
        """
        Called when a spawned game server said the port it listens on: open
        its control connection.
        """
        self._cancelPortCall(server)
        server.port = port
        self._connectControl(server)

    def _connectControl(self, server: GameServer) -> None:
        assert server.port is not None
        factory = self._makeControlFactory(self, server)
        factory.generation = server.generation
        self._reactor.connectTCP(
            server.host, server.port, factory, timeout=self.connectTimeout
        )

    def childFailed(self, server: GameServer) -> None:
        """
        Called when a spawned game server broke the start-up contract (no
        port line, or a bad one): kill it, and so restart it.
        """
        self._kill(server)

    def _kill(self, server: GameServer) -> None:
        process = server.process
        if process is None:
            return
        try:
            process.signalProcess("KILL")
        except ProcessExitedAlready:
            pass

    def childExited(self, server: GameServer, reason: Failure) -> None:
        """
        Called when a spawned game server's process has exited.
        """
        server.process = None
        self._cancelPortCall(server)
        if server._killCall is not None and server._killCall.active():
            server._killCall.cancel()
        server._killCall = None
        waiting = self._exits.pop(server.serverId, [])
        for d in waiting:
            d.callback(None)
        clean = reason.check(ProcessDone) is not None
        if server.state is ServerState.DRAINING or not self.running:
            self._stopped(server)
            return
        self._log.warn(
            "game server {serverId} exited: {why}",
            serverId=server.serverId,
            why="cleanly" if clean else reason.getErrorMessage(),
        )
        self._crashed(server)

    def controlReady(
        self,
        server: GameServer,
        control: IControlConnection,
        name: str,
        capacity: int,
    ) -> None:
        """
        Called by the control connection when the game server said C{Ready}.
        A server told to stop meanwhile is told again instead.
        """
        if self._stale(server, control):
            return
        if server.state in (ServerState.DRAINING, ServerState.STOPPED):
            server.control = control
            control.sendShutdown(int(self.drainDeadline * 1000), "stopping")
            return
        server.control = control
        server.name = name
        server.capacity = capacity
        server.accepting = True
        server._readySince = self._reactor.seconds()
        self._setState(server, ServerState.READY)

    def controlStatus(
        self, server: GameServer, players: int, capacity: int, accepting: bool
    ) -> None:
        """
        Called by the control connection on each C{Status}.
        """
        server.players = players
        server.capacity = capacity
        server.accepting = accepting
        self._changed(server)

    def controlLost(
        self,
        server: GameServer,
        control: object | None,
    ) -> None:
        """
        Called when a control connection closed or failed to open.
        """
        if self._stale(server, control):
            return
        if server.control is not None and server.control is not control:
            return
        server.control = None
        if server.state in (ServerState.STOPPED, ServerState.CRASHED):
            return
        if server.state is ServerState.DRAINING:
            if server.remote:
                self._stopped(server)
            return
        if not self.running:
            return
        if server.process is not None:
            # A dead control connection means a dead server: kill it, and
            # processEnded restarts it.
            self._log.warn(
                "game server {serverId}: control connection lost; killing it",
                serverId=server.serverId,
            )
            self._kill(server)
            return
        self._crashed(server)

    def _stale(self, server: GameServer, control: Any) -> bool:
        """
        Whether C{control} (a protocol, or the factory of a connection that
        failed) belongs to an earlier start of the server, or was retired.
        """
        if control is not None and control is server._retired:
            return True
        factory = getattr(control, "factory", control)
        generation = getattr(factory, "generation", None)
        return generation is not None and generation != server.generation

    def _crashed(self, server: GameServer) -> None:
        if (
            server._readySince is not None
            and self._reactor.seconds() - server._readySince >= self.stableAfter
        ):
            server.failures = 0
        server._readySince = None
        server._retired = server.control
        server.control = None
        server.accepting = False
        server.players = server.pending = 0
        self._setState(server, ServerState.CRASHED)
        delay = restartDelay(server.failures, self.restartInitial, self.restartMax)
        server.failures += 1
        self._log.warn(
            "game server {serverId} crashed; restarting in {delay:.1f}s",
            serverId=server.serverId,
            delay=delay,
        )
        self._serverLost(server)
        if self.running:
            server._restartCall = self._reactor.callLater(delay, self._start, server)

    def addLostObserver(self, observer: Callable[[GameServer], object]) -> None:
        """
        Call C{observer(server)} when a game server crashes or stops, after
        its links are gone or going.
        """
        self._lostObservers.append(observer)

    def _serverLost(self, server: GameServer) -> None:
        for observer in self._lostObservers:
            try:
                observer(server)
            except Exception:
                self._log.failure("game server lost observer failed")

    def _stopped(self, server: GameServer, lost: bool = True) -> None:
        """
        A game server is stopped: tell the lost observers (when it may have
        had players), and start it again if L{restart} asked for it.
        """
        self._setState(server, ServerState.STOPPED)
        if lost:
            self._serverLost(server)
        if server.restartWhenStopped:
            server.restartWhenStopped = False
            if self.running:
                self._log.info(
                    "game server {serverId} starting again", serverId=server.serverId
                )
                self._start(server)
