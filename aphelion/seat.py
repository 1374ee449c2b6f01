# -*- test-case-name: tests.test_gateway -*-
"""
A session's place on a game server: what its player link reports to.
"""

from __future__ import annotations

from collections.abc import Callable

from zope.interface import implementer

from aphelion.actions import Action
from aphelion.codes import DisconnectCode
from aphelion.interfaces import IConnection, IPlayerLink, IPooledServer, ISeat
from aphelion.proto.game_pb2 import S2C, GameConfig, GameDetails
from aphelion.seating import SeatingMachine
from aphelion.session import Session

__all__ = ["Seat"]


@implementer(ISeat)
class Seat:
    """
    A session's place on a game server, and the relay between the two.

    The player connection (the I{link}) reports to its seat; the seat feeds
    the reports to the session's L{SeatingMachine} and hands the actions to
    the gateway.

    :ivar session: the seated session.
    :ivar server: the game server.
    :ivar link: the player connection, once open.
    :ivar details: the game server's C{Connected} details, once seated.
    :ivar resumed: whether the seat is taken back after a handover.
    """

    __slots__ = (
        "_carryOut",
        "_machine",
        "_paused",
        "details",
        "link",
        "resumed",
        "server",
        "session",
    )

    def __init__(
        self,
        carryOut: Callable[[Session, list[Action[Seat]]], object],
        session: Session,
        machine: SeatingMachine[Seat],
        server: IPooledServer,
        resumed: bool = False,
    ) -> None:
        """
        :param carryOut: carries out the machine's actions for the session.
        :param resumed: the seat is one the game server holds for a session
            handed over from another node of the cluster: its player
            connection asks for it back (C{ClientAuth{resumed}}), and the
            client, still seated as far as it knows, hears neither its
            C{connected} nor its C{game_config}.
        """
        self.resumed = resumed
        self._carryOut = carryOut
        self._machine = machine
        self.session = session
        self.server = server
        self.link: IPlayerLink | None = None
        self.details: GameDetails | None = None
        self._paused: set[IConnection] = set()

    def __repr__(self) -> str:
        return f"<Seat {self.session.hint} on {self.server.serverId}>"

    def _feed(self, actions: list[Action[Seat]]) -> None:
        self._carryOut(self.session, actions)

    # -- reports from the link ----------------------------------------------

    def linkMade(self, link: IPlayerLink) -> None:
        """
        Called when the player connection is open.
        """
        self.link = link
        self._feed(self._machine.linkMade(self))

    def accepted(self, details: GameDetails) -> None:
        """
        Called when the game server answered C{Connected}.
        """
        self.details = details
        self._feed(self._machine.accepted(self))

    def gameConfig(self, config: GameConfig) -> None:
        """
        Called when the game server sent its C{GameConfig}.
        """
        if self._machine.current(self):
            if not self.resumed:
                self.session.send(S2C(game_config=config).SerializeToString())
            self._feed(self._machine.gameConfig(self))

    def rejected(self, code: int, reason: str) -> None:
        """
        Called when the game server answered C{Rejected}.
        """
        self._feed(self._machine.rejected(self, code, reason))

    def gameData(self, payload: bytes) -> None:
        """
        Called with each C{GameData} payload from the game server, relayed
        verbatim to the client. A link the session has moved away from is
        not listened to.
        """
        if self._machine.seat is self:
            session = self.session
            # The hot path of the relay, kept out of the machine: game data
            # means the game has begun, so no game_config is coming and the
            # session's packets need not stay on one connection.
            session.pinned = False
            session.send(payload)

    def disconnected(self, code: int, reason: str) -> None:
        """
        Called when the game server sent C{Disconnect}: a kick, or a server
        going away.
        """
        draining = code == DisconnectCode.SHUTTING_DOWN or self.server.draining
        self._feed(self._machine.disconnected(self, code, reason, draining))

    def lost(self, reason: str) -> None:
        """
        Called when the player connection closed or never opened.
        """
        self._feed(self._machine.lost(self, reason))

    # -- flow control ----------------------------------------------------------

    def clientPaused(self, connection: IConnection) -> None:
        """
        Called when a client connection of the session cannot take more
        data: stop reading from the game server.
        """
        if not self._paused and self.link is not None:
            self.link.pauseReading()
        self._paused.add(connection)

    def clientResumed(self, connection: IConnection) -> None:
        """
        Called when a client connection can take data again.
        """
        self._paused.discard(connection)
        if not self._paused and self.link is not None:
            self.link.resumeReading()
