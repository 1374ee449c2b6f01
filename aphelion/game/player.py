# -*- test-case-name: tests.test_gameserver -*-
"""
The player connection of a game server (Part 2.4): L{GameServerProtocol},
the class games subclass. The AuthProxy opens one connection per seated
player; its first envelope is C{Type{CLIENT}}, then C{ClientAuth} seats the
player and C{GameData} carries its messages both ways.

A seat whose connection goes can be held for the player to resume it
(Part 5.2): L{aphelion.game.hold}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.codes import DisconnectCode, EnvelopeType, ErrorCode, RejectCode
from aphelion.control.protocol import EnvelopeProtocol, gameDataEnvelope, tokensMatch
from aphelion.envelope import Envelope, encodeEnvelope
from aphelion.game.game import Game
from aphelion.game.hold import HOLD_QUEUE_BYTES, HOLD_QUEUE_PACKETS, SeatHold
from aphelion.game.interfaces import IGameServer
from aphelion.limits import safeText
from aphelion.proto import control_pb2
from aphelion.proto.game_pb2 import GameConfig, GameDetails
from aphelion.session import tokenHint

__all__ = ["HOLD_QUEUE_BYTES", "HOLD_QUEUE_PACKETS", "GameServerProtocol"]

_AUTH = frozenset({EnvelopeType.ClientAuth, EnvelopeType.Disconnect})
_PLAYING = frozenset({EnvelopeType.GameData, EnvelopeType.Disconnect})
_NOTHING: frozenset[EnvelopeType] = frozenset()


class GameServerProtocol(SeatHold, EnvelopeProtocol):
    """
    A player's connection to the game server, the object the game talks to.
    Games subclass it and override the hooks L{playerJoined},
    L{messageReceived} (required) and L{playerLeft}.

    Built only by L{IGameServer.buildPlayerProtocol}, for a connection whose
    first envelope is C{Type}.

    :cvar clientAuthTimeout: seconds within which C{ClientAuth} must follow
        C{Type{CLIENT}}, else C{Error{7}}.
    :ivar playerId: the identity the game knows the player by (from
        C{ClientAuth}); empty before.
    :ivar name: the player's display name.
    :ivar sessionId: the non-secret id of the player's session.
    :ivar remoteAddress: the client's address as the AuthProxy saw it.
    :ivar attributes: what the AuthProxy's realm knows of the player.
    :ivar factory: the L{IGameServer}; C{factory.game} is the L{Game}.
    """

    _log = Logger()
    factory: IGameServer  # type: ignore[assignment]

    clientAuthTimeout: float | None = 10.0

    allowedTypes = frozenset({EnvelopeType.Type})
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

    def playerHeld(self, reason: str) -> None:
        """
        Called when a seated player's connection is gone but its seat is
        held (see the module's docstring): the player is still in
        C{factory.players} and may come back (L{playerResumed}); if it does
        not within the seat hold, L{playerLeft} follows. What the game
        L{send}s meanwhile is queued, and L{writePaused} is true. The default
        does nothing.

        :param reason: why the connection went, for logs.
        """

    def playerResumed(self) -> None:
        """
        Called when a held player takes its seat back (C{ClientAuth} with
        C{resumed}, say after its session moved to another AuthProxy),
        instead of L{playerLeft} and L{playerJoined}: this same object now
        speaks over the new connection, and what the game stored on it is
        still there. L{remoteAddress}, L{name} and L{attributes} are those of
        the new C{ClientAuth}. Once it returns, the player gets C{Connected},
        the game's config, what was queued during the hold, then what this
        hook L{send}s. It may L{kick}. The default does nothing.
        """

    # -- what games call -------------------------------------------------------

    @property
    def game(self) -> Game:
        """
        The game this player plays, C{self.factory.game}.
        """
        game: Game = self.factory.game
        return game

    @property
    def seated(self) -> bool:
        """
        Whether the player has joined and not left (a held player has not
        left).
        """
        return self._seated

    @property
    def held(self) -> bool:
        """
        Whether the player's connection is gone and its seat is held for it.
        """
        return self._held

    def send(self, payload: bytes) -> None:
        """
        Send a game message (an C{S2C} of the game's protocol) to this player.
        Does nothing once the player has left.

        :param payload: the bytes the client gets, verbatim.
        :raises ValueError: if the payload is longer than 65535 bytes.
        """
        if self._pending is not None:
            self._queue(gameDataEnvelope(payload))
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
        Wait for C{Type}.
        """
        super().connectionMade()
        self.attributes = {}

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        A seated player's seat is held (see the module's docstring), or,
        when it cannot be, the player leaves.
        """
        super().connectionLost(reason)
        if self._held:
            return
        if self._seated and self._holdable():
            self._hold("connection lost")
        else:
            self._leave("connection lost")

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

    def envelope_Type(self, message: control_pb2.Type) -> None:
        """
        Called when the first envelope is C{Type}: with C{CLIENT} and the
        right token, the connection awaits C{ClientAuth}.
        """
        if message.kind != control_pb2.Type.CLIENT:
            self.sendError(
                ErrorCode.NOT_ALLOWED_NOW,
                f"connection kind {message.kind} is not served",
            )
            return
        factory = self.factory
        if not tokensMatch(message.token, factory.clientToken or factory.token):
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
        if message.resumed:
            held = factory.held.get(message.session_id) if message.session_id else None
            if held is not None and held.playerId == playerId:
                held._resume(self, message)
                return
            self._log.info(
                "no seat held for player {playerId} (session {hint}); seating "
                "it as a new player",
                playerId=playerId,
                hint=tokenHint(message.session_id),
            )
        refusal = factory.seat(self, playerId)
        if refusal is not None:
            self._refuse(*refusal)
            return

        self.playerId = playerId
        self.name = message.name
        self.sessionId = message.session_id
        self.remoteAddress = message.remote_address
        self.attributes = dict(message.attributes)
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
            factory.unseat(self)
            code, reason = rejection or (RejectCode.INTERNAL_ERROR, "internal error")
            self._refuse(code, reason)
            return

        self._seated = True
        self.allowedTypes = _PLAYING
        # (No log line: the AuthProxy logs every seat.)
        self._welcome(config, pending)
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
        and the connection closes; with code C{MOVED} (its session moved to
        another AuthProxy) its seat is held instead.
        """
        reason = message.reason or "disconnected by the AuthProxy"
        self._log.debug(
            "player {playerId} disconnected: {reason} ({code})",
            playerId=self.playerId or "-",
            reason=reason,
            code=message.code,
        )
        if message.code == DisconnectCode.MOVED and self._seated and self._holdable():
            self._hold(reason)
        else:
            self._leave(reason)
        self.loseConnection()

    # -- for the game server ---------------------------------------------------

    def deliver(self, data: bytes) -> None:
        """
        Write encoded C{GameData} envelopes (say, one broadcast encoded once
        for every player), or queue them while the player is joining or
        held.

        :param data: whole envelopes.
        """
        if self._pending is not None:
            self._queue(data)
        else:
            self.writeEnvelopes(data)

    # -- internals -----------------------------------------------------------

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

    def _dispatch(self, envelope: Envelope) -> None:
        """
        Dispatch one envelope, or, once a resume handed this connection to a
        held player (the rest of the bytes that brought C{ClientAuth}), pass
        it to that player.
        """
        target = self._movedTo
        if target is None:
            super()._dispatch(envelope)
        elif not target.closing:
            target._dispatch(envelope)

    def _welcome(self, config: GameConfig, pending: list[bytes] | None) -> None:
        """
        Send a player just seated (or resumed) C{Connected}, the game's
        config and what was queued for it meanwhile, in that order.
        """
        factory = self.factory
        # One write for all: each write on loopback costs a system call and
        # a wake-up of the AuthProxy.
        welcome = encodeEnvelope(
            EnvelopeType.Connected,
            GameDetails(
                server_id=factory.serverId,
                name=factory.game.name,
                player_id=self.playerId,
                players=len(factory.players),
                capacity=factory.capacity,
            ).SerializeToString(),
        ) + encodeEnvelope(EnvelopeType.GameConfig, config.SerializeToString())
        if pending:
            welcome += b"".join(pending)
        self.writeEnvelopes(welcome)

    def _leave(self, reason: str) -> None:
        """
        Unseat the player and call L{playerLeft}, once.
        """
        if not self._seated:
            return
        if self._held:
            self._endHold()
            self._pending = None
        self._seated = False
        factory = self.factory
        factory.unseat(self)
        with self._log.failuresHandled(
            "playerLeft of player {playerId} failed", playerId=self.playerId
        ):
            self.playerLeft(reason)
        factory.statusChanged()
