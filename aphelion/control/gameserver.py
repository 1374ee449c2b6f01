# -*- test-case-name: tests.test_gameserver -*-
"""
The game-server end of Part 2: what runs inside a game-server process.

A game is a module that exposes a function C{makeGame()} returning a L{Game}.
The L{Game} names the game, says how many players it seats and which
L{GameServerProtocol} subclass plays each of them::

    # mygame.py
    from aphelion.control.gameserver import Game, GameServerProtocol

    class Arena(GameServerProtocol):
        def playerJoined(self, playerId: str, attributes: dict[str, str]) -> None:
            if attributes.get("banned"):
                self.reject(100, "banned")

        def messageReceived(self, payload: bytes) -> None:
            self.broadcast(payload)

    class ArenaGame(Game):
        name = "arena"
        capacity = 32
        protocol = Arena

    def makeGame() -> ArenaGame:
        return ArenaGame()

C{python -m aphelion.control.child --game mygame} runs it (that is what the
AuthProxy spawns for C{twistd aphelion --game mygame}); L{loadGame} is how the
module is found. C{aphelion.games.chat} and C{aphelion.games.echo} are small
examples.

One L{GameServerProtocol} is built (by L{GameServerFactory.buildProtocol}) for
every TCP connection to the game server. Its first envelope decides what it is
(Part 2.2): C{Control} makes it the control connection, which answers
C{Ready}, reports C{Status} and exchanges heartbeats; C{Type{CLIENT}} makes it
a player connection, which waits for C{ClientAuth} and then calls the game's
hooks. Anything else first is C{Error{4}}. So the game's subclass is built for
control connections too: games use L{GameServerProtocol.playerJoined} and
L{GameServerProtocol.playerLeft}, not C{connectionMade} and
C{connectionLost}, which are called for every connection.

Where the contract is silent:

- After C{Rejected} the game server closes the connection.
- C{Rejected} and C{Disconnect} codes of the game server are
  L{RejectCode} and L{DisconnectCode}; games use codes from 100 up for their
  own. C{Disconnect{SHUTTING_DOWN}} (1) means "seat this player elsewhere";
  any other C{Disconnect} from the game server is a kick.
- A second player connection with a player ID that is already seated
  replaces the first one, which gets C{Disconnect{REPLACED}} (the newest login
  wins, as in Part 1.4).
- An empty player ID is refused with C{Rejected{INVALID_PLAYER}}.
- C{ClientAuth} must follow C{Type{CLIENT}} within
  L{GameServerProtocol.clientAuthTimeout} seconds, else C{Error{7}}.
- C{Status} is sent right after every C{Ready}, and then at the end of each
  reactor turn in which players, capacity or accepting changed.
- C{Shutdown{deadline_ms = 0}} means the default deadline,
  L{GameServerFactory.defaultShutdownDeadline}. The drain sends
  C{Disconnect{SHUTTING_DOWN, reason}} to every player at once, closes the
  control connection once every other connection is closed, and finishes then
  or at the deadline (aborting whatever is still open), whichever is first.
- A player connection on which more than
  L{GameServerFactory.playerWriteLimit} bytes wait unsent (the AuthProxy
  stopped reading it: its player reads too slowly) gets
  C{Disconnect{KICKED, "reads too slowly"}} and is aborted, that one only;
  the player leaves (L{GameServerProtocol.playerLeft}). The C{Disconnect}
  joins the queue that is dropped, so the AuthProxy mostly sees the
  connection reset.
- An exception from a hook is logged with its traceback; from
  L{GameServerProtocol.playerJoined} the player gets
  C{Rejected{INTERNAL_ERROR}}, from L{GameServerProtocol.messageReceived} it
  is kicked with C{Disconnect{INTERNAL_ERROR}}.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.codes import DisconnectCode, EnvelopeType, ErrorCode, RejectCode
from aphelion.control.protocol import (
    EnvelopeFactory,
    EnvelopeProtocol,
    gameDataEnvelope,
    tokensMatch,
)
from aphelion.envelope import encodeEnvelope
from aphelion.limits import safeText
from aphelion.proto import control_pb2
from aphelion.proto.game_pb2 import GameConfig, GameDetails

__all__ = [
    "PLAYER_WRITE_LIMIT",
    "DisconnectCode",
    "Game",
    "GameServerFactory",
    "GameServerProtocol",
    "RejectCode",
    "loadGame",
]

_FIRST = frozenset({EnvelopeType.Type, EnvelopeType.Control})
_CONTROL = frozenset({EnvelopeType.Heartbeat, EnvelopeType.Shutdown})
_AUTH = frozenset({EnvelopeType.ClientAuth, EnvelopeType.Disconnect})
_PLAYING = frozenset({EnvelopeType.GameData, EnvelopeType.Disconnect})
_NOTHING: frozenset[EnvelopeType] = frozenset()

PLAYER_WRITE_LIMIT = 4 * 1024 * 1024
"""
The default of L{GameServerFactory.playerWriteLimit}, bytes (Part 6).
"""


class GameServerProtocol(EnvelopeProtocol):
    """
    One connection to the game server; for a seated player, the object the
    game talks to. Games subclass it and override the hooks L{playerJoined},
    L{messageReceived} (required) and L{playerLeft}.

    Built only by L{GameServerFactory.buildProtocol}.

    :cvar clientAuthTimeout: seconds within which C{ClientAuth} must follow
        C{Type{CLIENT}}, else C{Error{7}}.
    :ivar playerId: the identity the game knows the player by (from
        C{ClientAuth}); empty before.
    :ivar name: the player's display name.
    :ivar sessionId: the non-secret id of the player's session.
    :ivar remoteAddress: the client's address as the AuthProxy saw it.
    :ivar attributes: what the AuthProxy's realm knows of the player.
    :ivar factory: the L{GameServerFactory}; C{factory.game} is the L{Game}.
    """

    _log = Logger()
    factory: GameServerFactory

    clientAuthTimeout: float | None = 10.0

    allowedTypes = _FIRST
    playerId = ""
    name = ""
    sessionId = b""
    remoteAddress = ""
    attributes: dict[str, str]

    _seated = False
    _joining = False
    _rejection: tuple[int, str] | None = None
    _pending: list[bytes] | None = None

    # -- hooks for games -----------------------------------------------------

    def playerJoined(self, playerId: str, attributes: dict[str, str]) -> None:
        """
        Called when the AuthProxy seats a player here (C{ClientAuth}). Once it
        returns, the player gets C{Connected} and the game's config, unless it
        called L{reject}. What it L{send}s (or L{broadcast}s) reaches the
        player after those. The default accepts every player.

        :param playerId: the player's identity, also L{playerId}.
        :param attributes: what the AuthProxy's realm knows of the player.
        """

    def messageReceived(self, payload: bytes) -> None:
        """
        Called with each game message of the player: the raw bytes of one
        client packet (a C{C2S} of the game's protocol). Games must override
        it.

        :param payload: the bytes, verbatim from the client.
        """
        raise NotImplementedError()

    def playerLeft(self, reason: str) -> None:
        """
        Called once when a player that L{playerJoined} accepted is gone: the
        AuthProxy sent C{Disconnect}, the game kicked it, the connection was
        lost or the server is shutting down. It is no longer in
        C{factory.players}. The default does nothing.

        :param reason: why, for logs.
        """

    # -- what games call -------------------------------------------------------

    @property
    def game(self) -> Game:
        """
        The game this player plays, C{self.factory.game}.
        """
        return self.factory.game

    @property
    def seated(self) -> bool:
        """
        Whether the player has joined and not left.
        """
        return self._seated

    def send(self, payload: bytes) -> None:
        """
        Send a game message (an C{S2C} of the game's protocol) to this player.
        Does nothing once the player has left.

        :param payload: the bytes the client gets, verbatim.
        :raises ValueError: if the payload is longer than 65535 bytes.
        """
        if self._pending is not None:
            self._pending.append(gameDataEnvelope(payload))
        else:
            self.sendGameData(payload)

    def broadcast(self, payload: bytes) -> None:
        """
        Send a game message to every player of this game server, this one
        included.

        :param payload: the bytes every client gets, verbatim.
        :raises ValueError: if the payload is longer than 65535 bytes.
        """
        self.factory.broadcast(payload)

    def reject(self, code: int, reason: str) -> None:
        """
        Refuse the player: it gets C{Rejected{code, reason}} instead of
        C{Connected} and is not seated (L{playerLeft} is not called).

        :param code: a game-defined code, from 100 up.
        :param reason: a short text the player may be shown.
        :raises RuntimeError: unless called from L{playerJoined}; use L{kick}
            then.
        """
        if not self._joining:
            raise RuntimeError("reject() is only for playerJoined(); use kick()")
        self._rejection = (code, reason)

    def kick(self, reason: str, code: int = DisconnectCode.KICKED) -> None:
        """
        Make the player leave: send C{Disconnect{code, reason}}, call
        L{playerLeft} and close. The client's session ends with the reason.
        From L{playerJoined} it is the same as L{reject}. Does nothing if the
        player is not seated.

        :param reason: a short text the player may be shown.
        :param code: a L{DisconnectCode} or a game-defined code from 100 up.
        """
        if self._joining:
            self._rejection = (code, reason)
            return
        if not self._seated:
            return
        self._log.info(
            "disconnecting player {playerId}: {reason} ({code})",
            playerId=self.playerId,
            reason=reason,
            code=code,
        )
        self.sendEnvelope(
            EnvelopeType.Disconnect, control_pb2.Disconnect(code=code, reason=reason)
        )
        self._leave(reason)
        self.loseConnection()

    # -- Twisted callbacks ---------------------------------------------------

    def connectionMade(self) -> None:
        """
        Count the connection and wait for its first envelope.
        """
        super().connectionMade()
        self.attributes = {}
        self.factory._connectionOpened(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        A seated player leaves; a control connection is forgotten.
        """
        super().connectionLost(reason)
        self._leave("connection lost")
        self.factory._connectionClosed(self)

    def writeBufferOverflowed(self) -> None:
        """
        Called when more than L{writeBufferLimit} bytes wait unsent. On a
        seated player's connection (the AuthProxy stopped reading it because
        the player reads too slowly): C{Disconnect{KICKED, "reads too
        slowly"}}, the player leaves and this connection alone is aborted (the
        C{Disconnect} may never get through). On any other connection, as
        L{EnvelopeProtocol.writeBufferOverflowed}.
        """
        if not self._seated:
            super().writeBufferOverflowed()
            return
        reason = "reads too slowly"
        self.factory.throttle.warn(
            "player reads too slowly",
            "player {playerId} reads too slowly: more than {limit} bytes "
            "waiting; disconnecting it",
            playerId=safeText(self.playerId),
            limit=self.writeBufferLimit,
        )
        # Straight to the transport: through writeEnvelopes this write would
        # find the buffer over the limit again.
        transport: Any = self.transport
        transport.write(
            encodeEnvelope(
                EnvelopeType.Disconnect,
                control_pb2.Disconnect(
                    code=DisconnectCode.KICKED, reason=reason
                ).SerializeToString(),
            )
        )
        self.abortConnection()
        self._leave(reason)

    # -- envelopes -------------------------------------------------------------

    def envelope_Control(self, message: control_pb2.Control) -> None:
        """
        Called when the first envelope is C{Control}: with the right token,
        and no other control connection open, this becomes the control
        connection.
        """
        factory = self.factory
        if not tokensMatch(message.token, factory.token):
            self.sendError(ErrorCode.BAD_TOKEN, "bad control token")
            return
        if factory.control is not None and not factory.control.closing:
            self.sendError(
                ErrorCode.NOT_ALLOWED_NOW, "a control connection is already open"
            )
            return
        self.allowedTypes = _CONTROL
        if factory._controlOpened(self, message):
            self.startHeartbeats()

    def envelope_Type(self, message: control_pb2.Type) -> None:
        """
        Called when the first envelope is C{Type}: with C{CLIENT} and the
        right token, this becomes a player connection awaiting C{ClientAuth}.
        """
        if message.kind != control_pb2.Type.CLIENT:
            self.sendError(
                ErrorCode.NOT_ALLOWED_NOW,
                f"connection kind {message.kind} is not served",
            )
            return
        if not tokensMatch(message.token, self.factory.token):
            self.sendError(ErrorCode.BAD_TOKEN, "bad client token")
            return
        self.allowedTypes = _AUTH
        self.writeBufferLimit = self.factory.playerWriteLimit
        self.setEnvelopeTimeout(self.clientAuthTimeout)

    def envelope_ClientAuth(self, message: control_pb2.ClientAuth) -> None:
        """
        Called when the AuthProxy seats a player: refuse it when the server
        cannot take it, else ask the game (L{playerJoined}) and answer
        C{Connected} and C{GameConfig}, or C{Rejected}.
        """
        factory = self.factory
        self.allowedTypes = _NOTHING
        playerId = message.player_id
        if not playerId:
            self._refuse(RejectCode.INVALID_PLAYER, "empty player id")
            return
        if not factory.accepting:
            self._refuse(RejectCode.NOT_ACCEPTING, "server is not accepting players")
            return
        previous = factory.players.get(playerId)
        if previous is not None:
            previous.kick("replaced by a newer connection", DisconnectCode.REPLACED)
        if len(factory.players) >= factory.capacity:
            self._refuse(RejectCode.FULL, "server full")
            return

        self.playerId = playerId
        self.name = message.name
        self.sessionId = message.session_id
        self.remoteAddress = message.remote_address
        self.attributes = dict(message.attributes)
        factory.players[playerId] = self
        self._pending = []
        self._joining = True
        config: GameConfig | None = None
        with self._log.failuresHandled(
            "seating player {playerId} failed", playerId=playerId
        ) as op:
            self.playerJoined(playerId, dict(self.attributes))
            if self._rejection is None:
                config = factory.game.gameConfig()
        self._joining = False
        pending, self._pending = self._pending, None
        rejection = self._rejection
        if op.failed:
            rejection = (RejectCode.INTERNAL_ERROR, "internal error")
        if rejection is not None or config is None:
            if factory.players.get(playerId) is self:
                del factory.players[playerId]
            code, reason = rejection or (RejectCode.INTERNAL_ERROR, "internal error")
            self._refuse(code, reason)
            return

        self._seated = True
        self.allowedTypes = _PLAYING
        self.sendEnvelope(
            EnvelopeType.Connected,
            GameDetails(
                server_id=factory.serverId,
                name=factory.game.name,
                player_id=playerId,
                players=len(factory.players),
                capacity=factory.capacity,
            ),
        )
        self.sendEnvelope(EnvelopeType.GameConfig, config)
        if pending:
            self.writeEnvelopes(b"".join(pending))
        self._log.info(
            "player {playerId} joined ({players}/{capacity})",
            playerId=playerId,
            players=len(factory.players),
            capacity=factory.capacity,
        )
        factory.statusChanged()

    def envelope_GameData(self, payload: bytes) -> None:
        """
        Called with each game message the AuthProxy relays from the player:
        hands it to L{messageReceived}.
        """
        # try/except rather than failuresHandled: this is the hot path, and a
        # try block costs nothing until something raises.
        try:
            self.messageReceived(payload)
        except Exception:
            self._log.failure(
                "messageReceived of player {playerId} failed", playerId=self.playerId
            )
            self.kick("internal error", DisconnectCode.INTERNAL_ERROR)

    def envelope_Disconnect(self, message: control_pb2.Disconnect) -> None:
        """
        Called when the AuthProxy ends the player's stay: the player leaves
        and the connection closes.
        """
        reason = message.reason or "disconnected by the AuthProxy"
        self._log.info(
            "player {playerId} disconnected: {reason}",
            playerId=self.playerId or "-",
            reason=reason,
        )
        self._leave(reason)
        self.loseConnection()

    def envelope_Shutdown(self, message: control_pb2.Shutdown) -> None:
        """
        Called when the AuthProxy asks the game server to drain and exit.
        """
        self.factory.shutdown(
            message.reason or "shutdown requested",
            message.deadline_ms / 1000 if message.deadline_ms else None,
        )

    # -- internals -----------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        """
        Write an encoded C{GameData} envelope, or queue it while joining.
        """
        if self._pending is not None:
            self._pending.append(data)
        else:
            self.writeEnvelopes(data)

    def _refuse(self, code: int, reason: str) -> None:
        """
        Answer C{Rejected} and close.
        """
        self._log.info(
            "refusing player {playerId}: {reason} ({code})",
            playerId=self.playerId or "-",
            reason=reason,
            code=code,
        )
        self.sendEnvelope(
            EnvelopeType.Rejected, control_pb2.Rejected(code=code, reason=reason)
        )
        self.loseConnection()

    def _leave(self, reason: str) -> None:
        """
        Unseat the player and call L{playerLeft}, once.
        """
        if not self._seated:
            return
        self._seated = False
        factory = self.factory
        if factory.players.get(self.playerId) is self:
            del factory.players[self.playerId]
        with self._log.failuresHandled(
            "playerLeft of player {playerId} failed", playerId=self.playerId
        ):
            self.playerLeft(reason)
        factory.statusChanged()


class Game:
    """
    One game, as a game-server process runs it: its name, its capacity, its
    L{GameServerProtocol} subclass and its config. A game module's
    C{makeGame()} returns one; the process makes one per run.

    :cvar name: the game's (or arena's) name, sent in C{Ready} and
        C{Connected}.
    :cvar capacity: how many players it seats. A game that changes it calls
        C{self.server.statusChanged()}.
    :cvar protocol: the L{GameServerProtocol} subclass built for each
        connection. Required.
    :ivar server: the L{GameServerFactory} running the game, once there is
        one: C{server.players}, C{server.broadcast}, C{server.clock}.
    :ivar options: the options of the last C{Control}.
    :ivar config: the config of the last C{Control}, if it had one.
    """

    _log = Logger()

    name = "game"
    capacity = 16
    protocol: ClassVar[type[GameServerProtocol]]

    server: GameServerFactory | None = None
    options: Mapping[str, str] = {}
    config: GameConfig | None = None

    def configure(self, options: Mapping[str, str], config: GameConfig | None) -> None:
        """
        Called when a control connection opens, with the options and config of
        its C{Control}, before C{Ready} is sent. The default stores them in
        L{options} and L{config}. An override that changes L{capacity} needs no
        more: C{Ready} reports it.

        :param options: the operator's options for this game server.
        :param config: the operator's config for the players, or L{None}.
        """
        self.options = dict(options)
        if config is not None:
            self.config = config

    def gameConfig(self) -> GameConfig:
        """
        Called for each player who joins: the config sent to it after
        C{Connected}. The default is the config of C{Control}, or an empty
        one.
        """
        return self.config if self.config is not None else GameConfig()

    def start(self) -> None:
        """
        Called when the game server starts listening (a good place to start a
        game loop on C{self.server.clock}). The default does nothing.
        """

    def stop(self) -> None:
        """
        Called when the game server stops listening. The default does nothing.
        """


def loadGame(moduleName: str) -> Game:
    """
    Import a game module and make its game.

    :param moduleName: a dotted module name, such as C{aphelion.games.chat}.
    :return: what the module's C{makeGame()} returns.
    :raises ImportError: if the module cannot be imported.
    :raises TypeError: if it has no C{makeGame()} or that returns no L{Game}.
    """
    module = importlib.import_module(moduleName)
    makeGame = getattr(module, "makeGame", None)
    if not callable(makeGame):
        raise TypeError(f"game module {moduleName} has no makeGame()")
    game = makeGame()
    if not isinstance(game, Game):
        raise TypeError(f"{moduleName}.makeGame() returned {game!r}, not a Game")
    return game


class GameServerFactory(EnvelopeFactory, ServerFactory):
    """
    The game server: builds a L{GameServerProtocol} of the game's class for
    every connection and keeps what they share.

    :cvar defaultShutdownDeadline: seconds a drain takes at most when
        C{Shutdown} names no deadline.
    :ivar token: the control token, required of C{Control} and C{Type}.
    :ivar playerWriteLimit: bytes that may wait unsent on one player
        connection before its player is disconnected ("reads too slowly");
        L{None} for no limit.
    :ivar game: the L{Game}.
    :ivar serverId: this game server's id; from C{Control} when not given.
    :ivar players: the seated players by player ID. Read it; do not change it.
    :ivar control: the control connection, while one is open.
    :ivar accepting: whether new players are taken (not while draining).
    :ivar draining: whether a drain has begun.
    """

    _log = Logger()
    protocol: type[GameServerProtocol]  # type: ignore[assignment]

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
        :raises TypeError: if the game has no C{protocol}.
        """
        super().__init__(clock=clock, logInterval=logInterval)
        protocol = getattr(game, "protocol", None)
        if not (
            isinstance(protocol, type) and issubclass(protocol, GameServerProtocol)
        ):
            raise TypeError(f"{game!r} has no GameServerProtocol subclass as protocol")
        self.protocol = protocol
        self.token = token
        self.game = game
        self.serverId = serverId
        self.playerWriteLimit = playerWriteLimit
        game.server = self
        self.players: dict[str, GameServerProtocol] = {}
        self.control: GameServerProtocol | None = None
        self.accepting = True
        self.draining = False
        self._connections: set[GameServerProtocol] = set()
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
        Stop the game (L{Game.stop}) and the throttled log's timers.
        """
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
                player._deliver(data)

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
        self._sendStatus()
        self._deadlineCall = self.clock.callLater(deadline, self._deadlineReached)
        for connection in list(self._connections):
            if connection is self.control:
                continue
            if connection.seated:
                connection.kick(reason, DisconnectCode.SHUTTING_DOWN)
            else:
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

    # -- for GameServerProtocol --------------------------------------------

    def _connectionOpened(self, connection: GameServerProtocol) -> None:
        """
        Count an open connection.
        """
        self._connections.add(connection)

    def _connectionClosed(self, connection: GameServerProtocol) -> None:
        """
        Forget a closed connection.
        """
        self._connections.discard(connection)
        if connection is self.control:
            self.control = None
            if self._statusCall is not None and self._statusCall.active():
                self._statusCall.cancel()
            self._statusCall = None
            self._log.warn("control connection lost")
        self._checkDrained()

    def _controlOpened(
        self, connection: GameServerProtocol, message: control_pb2.Control
    ) -> bool:
        """
        Configure the game for a new control connection and answer C{Ready}
        and C{Status}.

        :return: whether it worked; if not, the connection is closed.
        """
        if not self.serverId:
            self.serverId = message.server_id
        elif message.server_id and message.server_id != self.serverId:
            self._log.warn(
                "Control names server {given}, but this is {serverId}",
                given=message.server_id,
                serverId=self.serverId,
            )
        config = message.config if message.HasField("config") else None
        with self._log.failuresHandled("configuring the game failed") as op:
            self.game.configure(dict(message.options), config)
        if op.failed:
            connection.loseConnection()
            return False
        self.control = connection
        self._log.info(
            "control connection open; server {serverId} runs {name}",
            serverId=self.serverId,
            name=self.game.name,
        )
        connection.sendEnvelope(
            EnvelopeType.Ready,
            control_pb2.Ready(
                server_id=self.serverId, name=self.game.name, capacity=self.capacity
            ),
        )
        self._lastStatus = None
        self._sendStatus()
        return True

    # -- internals -----------------------------------------------------------

    def _sendStatus(self) -> None:
        """
        Send C{Status} now if it differs from the last one sent.
        """
        if self._statusCall is not None:
            if self._statusCall.active():
                self._statusCall.cancel()
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
        if any(c is not self.control for c in self._connections):
            return
        control = self.control
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
        if self._deadlineCall is not None and self._deadlineCall.active():
            self._deadlineCall.cancel()
        self._deadlineCall = None
        self._log.info("drained")
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
