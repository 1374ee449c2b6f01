# -*- test-case-name: tests.test_testing -*-
"""
A game server and fake players, for games' own tests: L{GameHarness} runs a
game (its L{GameServerProtocol} subclass) against L{FakePlayer}s, without
sockets.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test.iosim import FakeAddress

from aphelion.codes import DisconnectCode, EnvelopeType
from aphelion.envelope import (
    ENCODINGS,
    PAYLOAD_TYPES,
    EnvelopeDecoder,
    decodePayload,
    encodeEnvelope,
)
from aphelion.game import Game, GameServerFactory, GameServerProtocol
from aphelion.game.factory import SEAT_HOLD
from aphelion.game.router import GameServerRouter
from aphelion.proto import control_pb2
from aphelion.proto.game_pb2 import GameConfig, GameDetails

__all__ = ["FakePlayer", "GameHarness"]


def _envelopesFrom(transport: StringTransport, decoder: EnvelopeDecoder) -> list[Any]:
    """
    Decode and clear what the game server wrote on one connection.

    :return: the messages, parsed; C{GameData} payloads as raw bytes.
    """
    data = transport.value()
    transport.clear()
    messages: list[Any] = []
    for item in decoder.feed(data):
        messageClass = PAYLOAD_TYPES.get(EnvelopeType(item.type))
        messages.append(
            (
                item.type,
                item.payload
                if messageClass is None
                else decodePayload(item, messageClass),
            )
        )
    return messages


class _Connection:
    """
    One connection to the harness's game server, over a L{StringTransport},
    the way the AuthProxy opens it.
    """

    def __init__(self, factory: GameServerFactory) -> None:
        router = factory.buildProtocol(FakeAddress())
        assert isinstance(router, GameServerRouter)
        self.router = router
        self.transport = StringTransport()
        self.decoder = EnvelopeDecoder()
        self.lost = False
        router.makeConnection(self.transport)

    def send(self, envelopeType: EnvelopeType, message: Message | bytes) -> None:
        """
        Send one envelope to the game server.
        """
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        self.router.dataReceived(
            encodeEnvelope(envelopeType, payload, ENCODINGS[envelopeType])
        )

    def read(self) -> list[tuple[int, Any]]:
        """
        What the game server sent since the last read; once it closed the
        connection, deliver the loss as a reactor would.
        """
        messages = _envelopesFrom(self.transport, self.decoder)
        if self.transport.disconnecting:
            self.lose()
        return messages

    def lose(self) -> None:
        """
        Deliver the end of the connection, once.
        """
        if not self.lost:
            self.lost = True
            self.router.connectionLost(Failure(ConnectionDone()))


class FakePlayer:
    """
    A player of a L{GameHarness}: it holds what the game server sent it.
    Made only by L{GameHarness.join}.

    :ivar playerId: its player ID.
    """

    def __init__(self, harness: GameHarness, playerId: str) -> None:
        self.playerId = playerId
        self._harness = harness
        self._connection = _Connection(harness.factory)
        self._received: list[bytes] = []
        self._details: GameDetails | None = None
        self._config: GameConfig | None = None
        self._rejected: tuple[int, str] | None = None
        self._kicked: tuple[int, str] | None = None
        self._attributes: dict[str, str] = {}
        self._name = playerId

    @property
    def protocol(self) -> GameServerProtocol | None:
        """
        The game's L{GameServerProtocol} instance that plays this player.
        """
        protocol = self._connection.router.connection
        return protocol if isinstance(protocol, GameServerProtocol) else None

    @property
    def received(self) -> list[bytes]:
        """
        The game messages the player got, in order (C{send}s and
        C{broadcast}s of the game).
        """
        self._harness.settle()
        return self._received

    @property
    def connected(self) -> GameDetails | None:
        """
        The C{Connected} the player got when it was seated, if it was.
        """
        self._harness.settle()
        return self._details

    @property
    def config(self) -> GameConfig | None:
        """
        The game's config the player got after C{Connected}.
        """
        self._harness.settle()
        return self._config

    @property
    def rejected(self) -> tuple[int, str] | None:
        """
        C{(code, reason)} of the C{Rejected} the player got instead of a
        seat, if any.
        """
        self._harness.settle()
        return self._rejected

    @property
    def kicked(self) -> tuple[int, str] | None:
        """
        C{(code, reason)} of the C{Disconnect} the game server sent the
        player (a kick, or a drain's C{SHUTTING_DOWN}), if any.
        """
        self._harness.settle()
        return self._kicked

    @property
    def seated(self) -> bool:
        """
        Whether the player is seated now (a held seat is still seated).
        """
        self._harness.settle()
        protocol = self.protocol
        return protocol is not None and protocol.seated

    @property
    def held(self) -> bool:
        """
        Whether the player's seat is held for it now (after L{drop} or
        L{move}, until L{resume} or the end of the seat hold).
        """
        self._harness.settle()
        protocol = self.protocol
        return protocol is not None and protocol.held

    def drop(self) -> None:
        """
        Lose the player's connection without a C{Disconnect}, as when its
        AuthProxy dies: the game server holds its seat for C{seatHold}
        seconds (the game's C{playerHeld} is called).
        """
        self._connection.lose()
        self._harness.settle()

    def move(self, reason: str = "session moved") -> None:
        """
        End the player's connection with C{Disconnect{MOVED}}, as an
        AuthProxy does when the player's session moves to another one: the
        game server holds its seat.
        """
        self._connection.send(
            EnvelopeType.Disconnect,
            control_pb2.Disconnect(code=DisconnectCode.MOVED, reason=reason),
        )
        self._harness.settle()

    def resume(self) -> None:
        """
        Open a new connection for the player with C{ClientAuth{resumed}}, as
        the AuthProxy its session moved to does: within the seat hold, the
        game's C{playerResumed} is called on the same protocol object and
        the player gets C{Connected}, the config, then what was queued for
        it (in L{received}); after it, the player joins anew.
        """
        self._harness.settle()
        self._connection = _Connection(self._harness.factory)
        self._details = self._config = None
        self._rejected = self._kicked = None
        self._connect(self._attributes, self._name, resumed=True)
        self._harness.settle()

    def send(self, payload: bytes) -> None:
        """
        Send one game message (a C{C2S} of the game's protocol), as the
        AuthProxy relays it.
        """
        self._connection.send(EnvelopeType.GameData, payload)
        self._harness.settle()

    def leave(self, reason: str = "client left") -> None:
        """
        End the player's stay, as the AuthProxy does when the client leaves:
        C{Disconnect}, then the connection closes.
        """
        self._connection.send(
            EnvelopeType.Disconnect, control_pb2.Disconnect(reason=reason)
        )
        self._harness.settle()

    def _connect(
        self, attributes: Mapping[str, str], name: str, resumed: bool = False
    ) -> None:
        """
        Send C{Type{CLIENT}} (with the client token) and C{ClientAuth}.
        """
        self._attributes = dict(attributes)
        self._name = name
        factory = self._harness.factory
        token = factory.clientToken or factory.token
        self._connection.send(
            EnvelopeType.Type,
            control_pb2.Type(kind=control_pb2.Type.CLIENT, token=token),
        )
        self._connection.send(
            EnvelopeType.ClientAuth,
            control_pb2.ClientAuth(
                player_id=self.playerId,
                name=name,
                session_id=b"harness-" + self.playerId.encode("utf-8"),
                remote_address="192.0.2.1",
                attributes=dict(attributes),
                resumed=resumed,
            ),
        )

    def _read(self) -> None:
        """
        Sort what the game server sent into the player's record.
        """
        for kind, message in self._connection.read():
            if kind == EnvelopeType.GameData:
                self._received.append(message)
            elif kind == EnvelopeType.Connected:
                self._details = message
            elif kind == EnvelopeType.GameConfig:
                self._config = message
            elif kind == EnvelopeType.Rejected:
                self._rejected = (message.code, message.reason)
            elif kind == EnvelopeType.Disconnect:
                self._kicked = (message.code, message.reason)


class GameHarness:
    """
    A game's server, run against fake players without sockets, for a game's
    own tests (as C{treq.testing} runs a resource against fake requests).

    It is the real L{GameServerFactory}, its router and protocols over
    L{StringTransport}s, with a L{Clock} for every timer of the game. A
    control connection is open, as the AuthProxy keeps one, so the game is
    configured with C{options} and C{config}, and its heartbeats are
    answered::

        from aphelion.testing import GameHarness
        from mygame import makeGame

        class ArenaTests(SynchronousTestCase):
            def test_hello(self) -> None:
                harness = GameHarness(makeGame(), options={"map": "dust"})
                alice = harness.join("alice", {"team": "red"})
                bob = harness.join("bob")
                alice.send(b"hello")
                self.assertEqual(bob.received, [b"alice: hello"])
                harness.advance(30)  # the game's timers run on harness.clock
                bob.leave()
                self.assertEqual(list(harness.players), ["alice"])

    A player whose session moves to another AuthProxy (or whose AuthProxy
    dies) keeps its seat for C{seatHold} seconds: L{FakePlayer.move} or
    L{FakePlayer.drop}, then L{FakePlayer.resume} within the hold, calls the
    game's C{playerHeld} and then C{playerResumed} instead of C{playerLeft}
    and C{playerJoined}::

                alice.move()
                self.assertTrue(alice.held)
                alice.resume()
                self.assertTrue(alice.seated)

    :ivar clock: the clock of the game server and the game.
    :ivar factory: the L{GameServerFactory}.
    :ivar game: the game.
    :ivar statuses: every C{Status} the game server reported, as
        C{(players, capacity, accepting)}.
    """

    def __init__(
        self,
        game: Game,
        options: Mapping[str, str] | None = None,
        config: GameConfig | None = None,
        serverId: str = "harness",
        seatHold: float = SEAT_HOLD,
    ) -> None:
        """
        Start the game server (L{Game.start}) and open its control
        connection (L{Game.configure}).

        :param game: the game to serve.
        :param options: the options of C{Control}.
        :param config: the config of C{Control}, if any.
        :param serverId: the server's id.
        :param seatHold: seconds a dropped or moved player's seat is held.
        """
        self.clock = Clock()
        self.game = game
        self.factory = GameServerFactory(
            clock=self.clock,
            token=secrets.token_bytes(32),
            game=game,
            serverId=serverId,
            seatHold=seatHold,
        )
        self.statuses: list[tuple[int, int, bool]] = []
        self._players: list[FakePlayer] = []
        self.factory.doStart()
        self._control = _Connection(self.factory)
        self._control.send(
            EnvelopeType.Control,
            control_pb2.Control(
                token=self.factory.token,
                client_token=secrets.token_bytes(32),
                server_id=serverId,
                options=dict(options or {}),
                config=config,
            ),
        )
        self.settle()

    @property
    def players(self) -> dict[str, GameServerProtocol]:
        """
        The seated players by player ID, C{factory.players}.
        """
        return self.factory.players

    def join(
        self,
        playerId: str,
        attributes: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> FakePlayer:
        """
        Seat a player, as the AuthProxy does: C{Type{CLIENT}} and
        C{ClientAuth}. The game may refuse it: see L{FakePlayer.rejected}.

        :param playerId: the player's ID.
        :param attributes: what the AuthProxy's realm knows of it.
        :param name: its display name; by default its ID.
        """
        player = FakePlayer(self, playerId)
        self._players.append(player)
        player._connect(attributes or {}, playerId if name is None else name)
        self.settle()
        return player

    def advance(self, seconds: float) -> None:
        """
        Move time on by C{seconds}, a second at a time, running the game's
        timers; the control connection's heartbeats are answered.
        """
        while seconds > 0:
            step = min(seconds, 1.0)
            self.clock.advance(step)
            self.settle()
            seconds -= step

    def shutdown(self, reason: str = "shutting down") -> None:
        """
        Drain the game server, as C{Shutdown} from the AuthProxy does: every
        player gets C{Disconnect{SHUTTING_DOWN}}.
        """
        self._control.send(EnvelopeType.Shutdown, control_pb2.Shutdown(reason=reason))
        self.settle()

    def stop(self) -> None:
        """
        Stop the game server as its process does: every connection is lost,
        then L{Game.stop}.
        """
        for connection in [self._control, *(p._connection for p in self._players)]:
            connection.lose()
        self.factory.doStop()

    def settle(self) -> None:
        """
        End the reactor turn (C{clock.advance(0)}: C{Status} is sent then),
        read what the game server sent on every connection and deliver the
        end of the connections it closed. Every method of the harness and
        its players calls it.
        """
        self.clock.advance(0)
        for kind, message in self._control.read():
            if kind == EnvelopeType.Heartbeat:
                self._control.send(EnvelopeType.Heartbeat, message)
            elif kind == EnvelopeType.Status:
                self.statuses.append(
                    (message.players, message.capacity, message.accepting)
                )
        for player in self._players:
            player._read()
