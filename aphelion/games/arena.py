# -*- test-case-name: tests.test_arena -*-
"""
The arena: a small real-time game, and the example of a game with a fixed
tick.

Each player steers a dot on a square field. Its messages are in
C{aphelion/proto/arena.proto}: a player sends C{C2S{input: Input{seq, dx,
dy}}}, a direction that holds until its next input. The game runs a fixed
tick on the game server's clock (C{--game-option tick_hz=20}); at every tick
it applies the latest input that arrived from each player, moves everyone,
and sends each player one C{S2C} with

  - C{snapshot}: the tick number and the players near it, and
  - C{you}: its own number and position, and the C{seq} of the last input
    applied (C{ack}), so that a client can reconcile its prediction.

Interest is a grid: the field is cut into square cells of C{interest} units,
and a player sees the players of its own cell and of the eight around it
(everyone within C{interest} units, some up to twice as far), at most
C{max_visible} of them, its own cell first. Every player of a cell sees the
same players, so the C{snapshot} part is encoded once per cell and tick and
only the few bytes of C{you} once per player: protobuf messages concatenate,
and the concatenation of C{S2C{snapshot}} and C{S2C{you}} is one C{S2C} with
both.

A player whose connection to the AuthProxy is backed up
(L{GameServerProtocol.writePaused}) skips the snapshot of that tick: the next
one replaces it. A tick that comes late (the process was busy) counts the
ticks it missed: their movement is applied, and one snapshot carries the new
tick number, so clients see the gap.

The options (C{--game-option KEY=VALUE}):

  - C{tick_hz} (20): ticks per second;
  - C{size} (1000): the field's side, in units;
  - C{interest} (100): the side of an interest cell, in units;
  - C{max_visible} (32): the most entities in one snapshot;
  - C{speed} (200): units a dot moves per second;
  - C{capacity} (1000): players one game server seats;
  - C{seed}: seeds where players appear, for tests.

The config each player gets after joining is JSON with C{size},
C{interest}, C{tick_hz}, C{speed} and C{max_visible}.

Run it with C{twistd -n aphelion --auth dev --game aphelion.games.arena}.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import TypeVar, cast

from google.protobuf.message import DecodeError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from aphelion.game import DisconnectCode, Game, GameServerProtocol
from aphelion.proto.arena_pb2 import C2S, S2C, Entity, Snapshot, You
from aphelion.proto.game_pb2 import GameConfig

__all__ = ["ArenaGame", "ArenaPlayer", "encodeVarint", "makeGame"]

# The eight cells around a cell, those that share an edge first: when a
# snapshot is full, the nearer neighbours are the ones it keeps.
_NEIGHBOURS = (
    (-1, 0),
    (1, 0),
    (0, -1),
    (0, 1),
    (-1, -1),
    (1, -1),
    (-1, 1),
    (1, 1),
)
_DIAGONAL = 0.5**0.5
# S2C.snapshot is field 1, length-delimited: (1 << 3) | 2.
_SNAPSHOT_TAG = b"\x0a"


def encodeVarint(value: int) -> bytes:
    """
    Encode a non-negative integer as a protobuf varint (a length prefix).

    :raises ValueError: for a negative value.
    """
    if value < 0:
        raise ValueError("a varint here is never negative")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class ArenaPlayer(GameServerProtocol):
    """
    One player in the arena: its dot, the direction it steers and the inputs
    that arrived since the last tick.

    :ivar entityId: its number in the arena (C{Entity.id}, C{You.id}).
    :ivar x: its position, in field units.
    :ivar y: its position, in field units.
    :ivar dx: the direction it moves in now: -1, 0 or 1.
    :ivar dy: the direction it moves in now: -1, 0 or 1.
    :ivar ack: the C{seq} of the last input applied; 0 before any.
    :ivar pending: the latest input not applied yet, as C{(seq, dx, dy)}, or
        L{None}.
    """

    entityId = 0
    x = 0.0
    y = 0.0
    dx = 0
    dy = 0
    ack = 0
    pending: tuple[int, int, int] | None = None
    # The encoded parts of the current tick (ArenaGame.tick writes them).
    entityField = b""
    youField = b""

    @property
    def arena(self) -> ArenaGame:
        """
        The game, as the L{ArenaGame} it is.
        """
        return cast(ArenaGame, self.game)

    def playerJoined(self, playerId: str, attributes: dict[str, str]) -> None:
        """
        Called when the AuthProxy seats a player: give it a number and a
        place on the field. It appears in the next tick's snapshots.
        """
        self.arena.place(self)

    def messageReceived(self, payload: bytes) -> None:
        """
        Called with each C{C2S} of the player: an C{input} with a C{seq}
        newer than the last one becomes the input the next tick applies
        (only the latest counts). A payload that does not parse gets the
        player kicked; anything else is ignored.
        """
        try:
            message = C2S.FromString(payload)
        except DecodeError:
            self.kick("malformed C2S", DisconnectCode.MALFORMED_MESSAGE)
            return
        if not message.HasField("input"):
            return
        steer = message.input
        newest = self.pending[0] if self.pending is not None else self.ack
        if steer.seq <= newest:
            return
        self.pending = (steer.seq, _sign(steer.dx), _sign(steer.dy))

    def playerLeft(self, reason: str) -> None:
        """
        Called when the player is gone: it is missing from the next
        snapshots. Nothing else needs telling.
        """


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


class ArenaGame(Game):
    """
    The arena's settings and its tick.

    :ivar tick: the number of the last tick (the first is 1).
    :ivar missedTicks: ticks that came too late and were folded into a
        later one.
    :ivar skippedSnapshots: snapshots not sent because the player's
        connection was backed up.
    """

    _log = Logger()

    name = "arena"
    capacity = 1000
    protocol = ArenaPlayer

    tickHz = 20.0
    size = 1000
    interest = 100
    maxVisible = 32
    speed = 200.0
    lateWarningInterval = 10.0

    def __init__(self) -> None:
        self.tick = 0
        self.missedTicks = 0
        self.skippedSnapshots = 0
        self._random = random.Random()
        self._nextId = 1
        self._loop: LoopingCall | None = None
        self._running = False
        self._lastWarning: float | None = None

    # -- Game ----------------------------------------------------------------

    def configure(self, options: Mapping[str, str], config: GameConfig | None) -> None:
        """
        Called with the operator's C{--game-option} values: read the
        arena's options and restart the tick if its rate changed.

        :raises ValueError: for an option that is not a number or out of
            range.
        """
        super().configure(options, config)
        tickHz = _number(options, "tick_hz", float, self.tickHz, 0.1, 1000.0)
        self.size = _number(options, "size", int, self.size, 1, 1_000_000)
        self.interest = _number(options, "interest", int, self.interest, 1, 1_000_000)
        self.maxVisible = _number(options, "max_visible", int, self.maxVisible, 1, 1000)
        self.speed = _number(options, "speed", float, self.speed, 0.0, 1_000_000.0)
        self.capacity = _number(options, "capacity", int, self.capacity, 1, 1_000_000)
        if "seed" in options:
            self._random.seed(options["seed"])
        if tickHz != self.tickHz:
            self.tickHz = tickHz
            if self._running:
                self._stopLoop()
                self._startLoop()

    def gameConfig(self) -> GameConfig:
        """
        Called for each player who joins: the field and the tick, as JSON.
        """
        content = {
            "size": self.size,
            "interest": self.interest,
            "tick_hz": self.tickHz,
            "speed": self.speed,
            "max_visible": self.maxVisible,
        }
        return GameConfig(
            content_type="application/json",
            content=json.dumps(content).encode("utf-8"),
        )

    def start(self) -> None:
        """
        Called when the game server starts listening: start ticking.
        """
        self._running = True
        self._startLoop()

    def stop(self) -> None:
        """
        Called when the game server stops listening: stop ticking.
        """
        self._running = False
        self._stopLoop()

    # -- the arena -----------------------------------------------------------

    def place(self, player: ArenaPlayer) -> None:
        """
        Give a joining player the next number and a random place.
        """
        player.entityId = self._nextId
        self._nextId += 1
        player.x = float(self._random.randrange(self.size))
        player.y = float(self._random.randrange(self.size))

    def advance(self, count: int = 1) -> None:
        """
        Run C{count} ticks' worth of the game and send one round of
        snapshots: every player's latest input is applied, every dot moves
        C{count} ticks' distance, and each player gets the tick number, the
        players near it and its own state.

        :param count: how many ticks are due (more than 1 when the tick is
            late: the ones it missed are counted, not sent).
        """
        self.tick += count
        if count > 1:
            self._late(count - 1)
        server = self.server
        if server is None:
            return
        distance = self.speed / self.tickHz * count
        last = float(self.size - 1)
        cellSize = self.interest
        cells: dict[tuple[int, int], list[ArenaPlayer]] = {}
        for protocol in server.players.values():
            player = cast(ArenaPlayer, protocol)
            pending = player.pending
            if pending is not None:
                player.ack, player.dx, player.dy = pending
                player.pending = None
            dx, dy = player.dx, player.dy
            if dx or dy:
                step = distance * _DIAGONAL if dx and dy else distance
                player.x = min(last, max(0.0, player.x + dx * step))
                player.y = min(last, max(0.0, player.y + dy * step))
            x, y = round(player.x), round(player.y)
            # A Snapshot with one entity and no tick is exactly that entity as
            # a field of Snapshot: the bytes the snapshots below concatenate.
            player.entityField = Snapshot(
                entities=[Entity(id=player.entityId, x=x, y=y)]
            ).SerializeToString()
            player.youField = S2C(
                you=You(id=player.entityId, ack=player.ack, x=x, y=y)
            ).SerializeToString()
            key = (x // cellSize, y // cellSize)
            members = cells.get(key)
            if members is None:
                cells[key] = [player]
            else:
                members.append(player)
        header = Snapshot(tick=self.tick).SerializeToString()
        for key, members in cells.items():
            shared = self._snapshot(header, key, members, cells)
            for player in members:
                if player.writePaused:
                    self.skippedSnapshots += 1
                else:
                    player.send(shared + player.youField)

    # -- internals -----------------------------------------------------------

    def _snapshot(
        self,
        header: bytes,
        key: tuple[int, int],
        members: list[ArenaPlayer],
        cells: dict[tuple[int, int], list[ArenaPlayer]],
    ) -> bytes:
        """
        The C{S2C{snapshot}} of one cell: its own players, then its
        neighbours', up to L{maxVisible}.
        """
        room = self.maxVisible
        visible = members[:room]
        if len(visible) < room:
            cx, cy = key
            for ox, oy in _NEIGHBOURS:
                others = cells.get((cx + ox, cy + oy))
                if others:
                    visible = visible + others[: room - len(visible)]
                    if len(visible) >= room:
                        break
        body = header + b"".join([player.entityField for player in visible])
        return _SNAPSHOT_TAG + encodeVarint(len(body)) + body

    def _due(self, count: int) -> None:
        """
        Called by the tick's loop: run the ticks that are due. A failure is
        logged, and the loop goes on.
        """
        with self._log.failuresHandled("arena tick {tick} failed", tick=self.tick + 1):
            self.advance(count)

    def _startLoop(self) -> None:
        server = self.server
        if server is None or self._loop is not None:
            return
        loop = LoopingCall.withCount(self._due)
        loop.clock = server.clock
        self._loop = loop
        done = loop.start(1.0 / self.tickHz, now=False)
        done.addErrback(lambda failure: self._log.failure("the tick failed", failure))

    def _stopLoop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def _late(self, missed: int) -> None:
        """
        Count ticks that came too late, and say so now and then.
        """
        self.missedTicks += missed
        server = self.server
        now = server.clock.seconds() if server is not None else 0.0
        if (
            self._lastWarning is None
            or now - self._lastWarning >= self.lateWarningInterval
        ):
            self._lastWarning = now
            self._log.warn(
                "arena tick {tick} late: {missed} ticks missed ({total} so far)",
                tick=self.tick,
                missed=missed,
                total=self.missedTicks,
            )


_N = TypeVar("_N", int, float)


def _number(
    options: Mapping[str, str],
    name: str,
    kind: type[_N],
    default: _N,
    low: float,
    high: float,
) -> _N:
    """
    One numeric option, checked.

    :raises ValueError: when it is not a number of C{kind} between C{low}
        and C{high}.
    """
    if name not in options:
        return default
    value = kind(options[name])
    if not low <= value <= high:
        raise ValueError(f"arena option {name} must be in {low:g}..{high:g}")
    return value


def makeGame() -> ArenaGame:
    """
    Make the arena.
    """
    return ArenaGame()
