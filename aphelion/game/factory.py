# -*- test-case-name: tests.test_gameserver -*-
"""
L{GameServerFactory}: the game server of a game-server process. It builds a
L{GameServerRouter} for every connection, and the protocol each is handed to
by its first envelope; it keeps what they share (the seated players, the
control connection, C{Status}) and drains them on C{Shutdown}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from zope.interface import implementer

from aphelion.codes import DisconnectCode, EnvelopeType, RejectCode
from aphelion.control.protocol import EnvelopeFactory, gameDataEnvelope
from aphelion.game.control import GameControlProtocol
from aphelion.game.game import Game
from aphelion.game.interfaces import IGameServer, IGameServerConnection
from aphelion.game.player import GameServerProtocol
from aphelion.game.router import GameServerRouter, UnroutedProtocol
from aphelion.proto import control_pb2
from aphelion.proto.game_pb2 import GameConfig

__all__ = ["PLAYER_WRITE_LIMIT", "SEAT_HOLD", "GameServerFactory"]

SEAT_HOLD = 15.0
"""
The default of L{GameServerFactory.seatHold}, seconds (Part 5.2).
"""

PLAYER_WRITE_LIMIT = 4 * 1024 * 1024
"""
The default of L{GameServerFactory.playerWriteLimit}, bytes (Part 6).
"""


def _cancel(call: IDelayedCall | None) -> None:
    """
    Cancel a delayed call, unless it ran or is L{None}.
    """
    if call is not None and call.active():
        call.cancel()


@implementer(IGameServer)
class GameServerFactory(EnvelopeFactory, ServerFactory):
    """
    The game server: builds a L{GameServerRouter} for every connection, then
    the protocol its first envelope calls for (a L{GameControlProtocol}, or
    a L{GameServerProtocol} of the game's class for a player), and keeps
    what they share.

    :cvar defaultShutdownDeadline: seconds a drain takes at most when
        C{Shutdown} names no deadline.
    :ivar token: the control token, required of C{Control}, and of C{Type}
        while L{clientToken} is empty.
    :ivar clientToken: the client token (C{Control.client_token}) required
        of C{Type} when not empty (Part 5: it is published to every AuthProxy
        of a cluster, the control token is not).
    :ivar seatHold: seconds a player's seat is held after its connection
        went without a C{Disconnect}, or with C{Disconnect{MOVED}}; 0 holds
        none (see L{aphelion.game.player}).
    :ivar held: the held players by session id. Read it; do not change it.
    :ivar playerWriteLimit: bytes that may wait unsent on one player
        connection before its player is disconnected ("reads too slowly");
        L{None} for no limit.
    :ivar game: the L{Game}.
    :ivar playerProtocol: the game's L{GameServerProtocol} subclass, built
        for each player connection.
    :ivar serverId: this game server's id; from C{Control} when not given.
    :ivar players: the seated players by player ID. Read it; do not change it.
    :ivar control: the control connection, while one is open.
    :ivar accepting: whether new players are taken (not while draining).
    :ivar draining: whether a drain has begun.
    """

    _log = Logger()

    defaultShutdownDeadline = 10.0
    noisy = False  # its one factory starts once; the port's own log line says so

    def __init__(
        self,
        *,
        clock: IReactorTime,
        token: bytes,
        game: Game,
        serverId: str = "",
        playerWriteLimit: int | None = PLAYER_WRITE_LIMIT,
        logInterval: float = 10.0,
        seatHold: float = SEAT_HOLD,
    ) -> None:
        """
        :param clock: the clock of every timer (required).
        :param token: the control token (required).
        :param game: the game (required); its C{server} is set to this factory.
        :param serverId: the server's id, or empty to take it from C{Control}.
        :param playerWriteLimit: bytes that may wait unsent on one player
            connection (L{playerWriteLimit}).
        :param logInterval: seconds between the summary lines of one cause of
            the log lines connections cause.
        :param seatHold: seconds a seat is held (L{seatHold}).
        :raises ValueError: if C{seatHold} is negative.
        :raises TypeError: if the game has no C{protocol}.
        """
        super().__init__(clock=clock, logInterval=logInterval)
        protocol = getattr(game, "protocol", None)
        if not (
            isinstance(protocol, type) and issubclass(protocol, GameServerProtocol)
        ):
            raise TypeError(f"{game!r} has no GameServerProtocol subclass as protocol")
        self.playerProtocol: type[GameServerProtocol] = protocol
        if not seatHold >= 0:  # NaN too
            raise ValueError(f"seatHold must not be negative: {seatHold}")
        self.token = token
        self.clientToken = b""
        self.seatHold = seatHold
        self.held: dict[bytes, GameServerProtocol] = {}
        self.game = game
        self.serverId = serverId
        self.playerWriteLimit = playerWriteLimit
        game.server = self
        self.players: dict[str, GameServerProtocol] = {}
        self.control: GameControlProtocol | None = None
        self.accepting = True
        self.draining = False
        self._connections: set[IGameServerConnection] = set()
        self._statusCall: IDelayedCall | None = None
        self._lastStatus: tuple[int, int, bool] | None = None
        self._deadlineCall: IDelayedCall | None = None
        self._finished = False
        self._waiting: list[Deferred[None]] = []

    @property
    def capacity(self) -> int:
        """
        How many players the game seats, C{game.capacity}.
        """
        return self.game.capacity

    def startFactory(self) -> None:
        """
        Start the game (L{Game.start}).
        """
        with self._log.failuresHandled("starting the game failed"):
            self.game.start()

    def stopFactory(self) -> None:
        """
        Stop the game (L{Game.stop}) and the throttled log's timers; held
        seats end first (their players leave).
        """
        for player in list(self.held.values()):
            player.kick("the game server is stopping", DisconnectCode.SHUTTING_DOWN)
        with self._log.failuresHandled("stopping the game failed"):
            self.game.stop()
        super().stopFactory()

    def broadcast(
        self, payload: bytes, exclude: GameServerProtocol | None = None
    ) -> None:
        """
        Send a game message to every seated player (encoded once).

        :param payload: the bytes every client gets, verbatim.
        :param exclude: a player not to send it to, if any.
        :raises ValueError: if the payload is longer than 65535 bytes.
        """
        data = gameDataEnvelope(payload)
        for player in list(self.players.values()):
            if player is not exclude:
                player.deliver(data)

    def statusChanged(self) -> None:
        """
        Report C{Status} to the AuthProxy at the end of this reactor turn, if
        players, capacity or accepting differ from the last report. Games that
        change their capacity call it.
        """
        if self.control is not None and self._statusCall is None:
            self._statusCall = self.clock.callLater(0, self._sendStatus)

    def shutdown(self, reason: str, deadline: float | None = None) -> None:
        """
        Drain: stop accepting players, disconnect every player with
        C{Disconnect{SHUTTING_DOWN, reason}}, then close the control
        connection; L{whenShutDown} fires when all that is done, or at the
        deadline (when whatever is still open is aborted). A second call
        does nothing.

        :param reason: why, sent to each player.
        :param deadline: seconds it may take, or L{None} (or 0) for
            L{defaultShutdownDeadline}.
        """
        if self.draining:
            self._log.info("already draining; ignoring another shutdown")
            return
        deadline = deadline or self.defaultShutdownDeadline
        self._log.info(
            "draining {count} players within {deadline:g} s: {reason}",
            count=len(self.players),
            deadline=deadline,
            reason=reason,
        )
        self.draining = True
        self.accepting = False
        control = self.control
        self._sendStatus()
        self._deadlineCall = self.clock.callLater(deadline, self._deadlineReached)
        for player in list(self.players.values()):
            player.kick(reason, DisconnectCode.SHUTTING_DOWN)
        for connection in list(self._connections):
            if connection.connection is None or connection.connection is not control:
                connection.loseConnection()
        self._checkDrained()

    def whenShutDown(self) -> Deferred[None]:
        """
        :return: a L{Deferred} that fires when a drain (L{shutdown}) is done.
        """
        if self._finished:
            return succeed(None)
        d: Deferred[None] = Deferred(self._waiting.remove)
        self._waiting.append(d)
        return d

    # -- for the protocols ---------------------------------------------------

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """
        Called for each new connection: its L{GameServerRouter}.
        """
        router = GameServerRouter()
        router.factory = self
        return router

    def buildControlProtocol(self) -> GameControlProtocol:
        """
        Called when a connection's first envelope is C{Control}.
        """
        protocol = GameControlProtocol()
        protocol.factory = self
        return protocol

    def buildPlayerProtocol(self) -> GameServerProtocol:
        """
        Called when a connection's first envelope is C{Type}: the game's
        L{playerProtocol}.
        """
        protocol = self.playerProtocol()
        protocol.factory = self
        return protocol

    def buildUnroutedProtocol(self) -> UnroutedProtocol:
        """
        Called when a connection's first envelope is anything else, or none
        came in time.
        """
        protocol = UnroutedProtocol()
        protocol.factory = self
        return protocol

    def connectionOpened(self, connection: IGameServerConnection) -> None:
        """
        Called when a connection is made: count it.
        """
        self._connections.add(connection)

    def connectionClosed(self, connection: IGameServerConnection) -> None:
        """
        Called when a connection is lost: forget it.
        """
        self._connections.discard(connection)
        self._checkDrained()

    def connectionMoved(self, old: object, new: object) -> None:
        """
        Called when a resumed player adopts the connection that C{old} was
        handed to: pass its bytes and its loss to C{new} from now on.
        """
        for connection in self._connections:
            if connection.connection is old:
                connection.connection = new
                return

    def controlOpened(
        self,
        control: GameControlProtocol,
        options: dict[str, str],
        config: GameConfig | None,
        serverId: str,
    ) -> bool:
        """
        Called when C{Control} opens a control connection: configure the game
        and answer C{Ready} and C{Status}.

        :return: whether it worked; if not, the connection is closed.
        """
        if not self.serverId:
            self.serverId = serverId
        elif serverId and serverId != self.serverId:
            self._log.warn(
                "Control names server {given}, but this is {serverId}",
                given=serverId,
                serverId=self.serverId,
            )
        with self._log.failuresHandled("configuring the game failed") as op:
            self.game.configure(options, config)
        if op.failed:
            control.loseConnection()
            return False
        self.control = control
        self._log.info(
            "control connection open; server {serverId} runs {name}",
            serverId=self.serverId,
            name=self.game.name,
        )
        control.sendEnvelope(
            EnvelopeType.Ready,
            control_pb2.Ready(
                server_id=self.serverId, name=self.game.name, capacity=self.capacity
            ),
        )
        self._lastStatus = None
        self._sendStatus()
        return True

    def controlClosed(self, control: GameControlProtocol) -> None:
        """
        Called when a control connection is lost: forget it, if it was the
        one.
        """
        if control is not self.control:
            return
        self.control = None
        _cancel(self._statusCall)
        self._statusCall = None
        self._log.warn("control connection lost")

    def seat(self, player: GameServerProtocol, playerId: str) -> tuple[int, str] | None:
        """
        Called when C{ClientAuth} names a player: take the seat for it,
        replacing a player seated with the same ID (it gets
        C{Disconnect{REPLACED}}), unless the server is not accepting players
        or is full.

        :return: L{None}, or the code and reason of the C{Rejected}.
        """
        if not self.accepting:
            return (RejectCode.NOT_ACCEPTING, "server is not accepting players")
        previous = self.players.get(playerId)
        if previous is not None:
            previous.kick("replaced by a newer connection", DisconnectCode.REPLACED)
        if len(self.players) >= self.capacity:
            return (RejectCode.FULL, "server full")
        self.players[playerId] = player
        return None

    def unseat(self, player: GameServerProtocol) -> None:
        """
        Called when a player leaves, or is refused after L{seat}: free its
        seat if it is still its.
        """
        if self.players.get(player.playerId) is player:
            del self.players[player.playerId]

    # -- internals -----------------------------------------------------------

    def _sendStatus(self) -> None:
        """
        Send C{Status} now if it differs from the last one sent.
        """
        _cancel(self._statusCall)
        self._statusCall = None
        control = self.control
        if control is None:
            return
        status = (len(self.players), self.capacity, self.accepting)
        if status == self._lastStatus:
            return
        self._lastStatus = status
        players, capacity, accepting = status
        control.sendEnvelope(
            EnvelopeType.Status,
            control_pb2.Status(players=players, capacity=capacity, accepting=accepting),
        )

    def _checkDrained(self) -> None:
        """
        During a drain: once only the control connection is left, close it;
        once it is gone too, the drain is done.
        """
        if not self.draining or self._finished:
            return
        control = self.control
        if any(
            c.connection is None or c.connection is not control
            for c in self._connections
        ):
            return
        if control is not None:
            self._sendStatus()
            control.loseConnection()
            return
        self._finish()

    def _deadlineReached(self) -> None:
        """
        The drain's deadline: abort what is still open and finish.
        """
        self._deadlineCall = None
        if self._finished:
            return
        self._log.warn(
            "drain deadline reached; aborting {count} connections",
            count=len(self._connections),
        )
        for connection in list(self._connections):
            connection.abortConnection()
        self._finish()

    def _finish(self) -> None:
        """
        The drain is done: fire L{whenShutDown}.
        """
        if self._finished:
            return
        self._finished = True
        _cancel(self._deadlineCall)
        self._deadlineCall = None
        self._log.info("drained")
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
