# -*- test-case-name: tests.test_seathold -*-
"""
The seat hold of a game server's player connection (Part 5.2), a mixin of
L{aphelion.game.player.GameServerProtocol}.

A seated player whose connection closes without a
C{Disconnect}, or with C{Disconnect{MOVED}} (its session moved to another
AuthProxy), keeps its seat for the game server's C{seatHold} seconds. The
game does not see it leave: L{GameServerProtocol.playerHeld} is called, what
the game sends it meanwhile is queued (at most C{holdQueuePackets} packets
and C{holdQueueBytes} bytes, by default L{HOLD_QUEUE_PACKETS} and
L{HOLD_QUEUE_BYTES}; more ends the hold, and the player leaves),
and L{GameServerProtocol.writePaused} is true so that a game may skip state
updates the next one replaces. A C{ClientAuth{resumed}} with the same
C{session_id} and player id within the hold takes the seat back: the same
protocol object (with whatever the game stored on it) adopts the new
connection, L{GameServerProtocol.playerResumed} is called, the player gets
C{Connected}, C{GameConfig} and then the queued packets, in order. When the
hold ends unclaimed, L{GameServerProtocol.playerLeft} is called as usual. A
C{ClientAuth{resumed}} that finds no held seat (it expired, or this game
server restarted) seats the player as a new one:
L{GameServerProtocol.playerJoined} is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from aphelion.codes import DisconnectCode, EnvelopeType
from aphelion.proto import control_pb2
from aphelion.proto.game_pb2 import GameConfig

if TYPE_CHECKING:
    from aphelion.envelope import Envelope, EnvelopeDecoder
    from aphelion.game.interfaces import IGameServer

__all__ = ["HOLD_QUEUE_BYTES", "HOLD_QUEUE_PACKETS", "SeatHold"]

HOLD_QUEUE_PACKETS = 256
"""
Game messages queued for a held player (as the AuthProxy queues for a client
without a connection); one more ends the hold.
"""

HOLD_QUEUE_BYTES = 1024 * 1024
"""
Bytes of envelopes queued for a held player; more ends the hold.
"""


_PLAYING = frozenset({EnvelopeType.GameData, EnvelopeType.Disconnect})


class SeatHold:
    """
    Holding a player's seat while it has no connection, and giving it back
    over a new one. The protocol it is mixed into calls L{_holdable} and
    L{_hold} when its connection goes, L{_queue} for what the game sends
    while the player joins or is held, L{_endHold} when the player leaves,
    and L{_resume} on the held player for a C{ClientAuth{resumed}}.

    :cvar holdQueuePackets: game messages queued for a held player; one
        more ends the hold.
    :cvar holdQueueBytes: bytes of envelopes queued for a held player; more
        ends the hold.
    """

    holdQueuePackets = HOLD_QUEUE_PACKETS
    holdQueueBytes = HOLD_QUEUE_BYTES

    _held = False
    _holdCall: IDelayedCall | None = None
    _heldBytes = 0
    _movedTo: Any = None

    if TYPE_CHECKING:
        # What the protocol it is mixed into provides.
        _log: Logger
        factory: IGameServer
        transport: Any
        connected: int
        playerId: str
        name: str
        sessionId: bytes
        remoteAddress: str
        attributes: dict[str, str]
        allowedTypes: frozenset[EnvelopeType] | None
        writeBufferLimit: int | None
        writePaused: bool
        _pending: list[bytes] | None
        _seated: bool
        _closing: bool
        _producing: bool
        _pausedBytes: int
        _decoder: EnvelopeDecoder

        def playerHeld(self, reason: str) -> None: ...
        def playerResumed(self) -> None: ...
        def kick(self, reason: str, code: int = ...) -> None: ...
        def sendEnvelope(self, envelopeType: EnvelopeType, message: Any) -> None: ...
        def writeEnvelopes(self, data: bytes) -> None: ...
        def _leave(self, reason: str) -> None: ...
        def _unregister(self) -> None: ...
        def _watchWrites(self, transport: Any) -> None: ...
        def _dispatch(self, envelope: Envelope) -> None: ...
        def _welcome(self, config: GameConfig, pending: list[bytes] | None) -> None: ...

    def _queue(self, data: bytes) -> None:
        """
        Queue envelopes for a joining or held player; a held player's queue
        is bounded, and a full one ends the hold.
        """
        pending = self._pending
        assert pending is not None
        pending.append(data)
        if not self._held:
            return
        self._heldBytes += len(data)
        if (
            len(pending) > self.holdQueuePackets
            or self._heldBytes > self.holdQueueBytes
        ):
            self._log.info(
                "too much queued for held player {playerId}; it leaves",
                playerId=self.playerId,
            )
            self._leave("too much queued while its seat was held")

    def _holdable(self) -> bool:
        """
        Whether this player's seat can be held: holds are on, the player has
        a session id to resume with, and the server is not draining.
        """
        factory = self.factory
        return bool(factory.seatHold > 0 and self.sessionId and not factory.draining)

    def _hold(self, reason: str) -> None:
        """
        Hold the seat: queue what the game sends, and leave when the hold
        ends unclaimed.
        """
        factory = self.factory
        self._held = True
        self._pending = []
        self._heldBytes = 0
        self.writePaused = True
        previous = factory.held.get(self.sessionId)
        factory.held[self.sessionId] = self
        if previous is not None and previous is not self:
            previous._leave("replaced by a newer held seat")
        self._holdCall = factory.clock.callLater(factory.seatHold, self._holdExpired)
        self._log.info(
            "holding the seat of player {playerId} for {seconds:g} s: {reason}",
            playerId=self.playerId,
            seconds=factory.seatHold,
            reason=reason,
        )
        with self._log.failuresHandled(
            "playerHeld of player {playerId} failed", playerId=self.playerId
        ):
            self.playerHeld(reason)

    def _holdExpired(self) -> None:
        """
        Nobody claimed the held seat in time: the player leaves.
        """
        self._holdCall = None
        self._log.info(
            "the held seat of player {playerId} was not claimed; it leaves",
            playerId=self.playerId,
        )
        self._leave("seat hold expired")

    def _endHold(self) -> None:
        """
        Stop holding the seat (taken back or given up); the queue stays.
        """
        if not self._held:
            return
        self._held = False
        self.writePaused = False
        call, self._holdCall = self._holdCall, None
        if call is not None and call.active():
            call.cancel()
        held = self.factory.held
        if held.get(self.sessionId) is self:
            del held[self.sessionId]

    def _resume(self, fresh: Any, message: control_pb2.ClientAuth) -> None:
        """
        Take the held seat back over C{fresh}'s connection: this object
        adopts the transport (and what C{fresh} has not decoded yet), the
        game's L{playerResumed} is called, then C{Connected}, C{GameConfig}
        and the queued packets go out.

        :param fresh: the protocol the new connection was handed to, which
            got the C{ClientAuth{resumed}}.
        :param message: that C{ClientAuth}.
        """
        factory = self.factory
        self._endHold()
        transport: Any = fresh.transport
        fresh._unregister()
        fresh._movedTo = self
        factory.connectionMoved(fresh, self)
        self.transport = transport
        self.connected = 1
        self._closing = False
        self._producing = False
        self._pausedBytes = 0
        self._decoder = fresh._decoder
        self._watchWrites(transport)
        self.writeBufferLimit = factory.playerWriteLimit
        self.allowedTypes = _PLAYING
        self.name = message.name
        self.remoteAddress = message.remote_address
        self.attributes = dict(message.attributes)
        if self._pending is None:
            self._pending = []
        config: GameConfig | None = None
        with self._log.failuresHandled(
            "playerResumed of player {playerId} failed", playerId=self.playerId
        ) as op:
            self.playerResumed()
            config = factory.game.gameConfig()
        if op.failed or config is None:
            self._pending = None
            self.kick("internal error", DisconnectCode.INTERNAL_ERROR)
            return
        pending, self._pending = self._pending, None
        if not self._seated:
            return  # kicked from playerResumed
        self._welcome(config, pending)
        self._log.info(
            "player {playerId} took its held seat back ({count} packets queued)",
            playerId=self.playerId,
            count=len(pending or ()),
        )
