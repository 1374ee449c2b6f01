# -*- test-case-name: tests.test_gameserver -*-
"""
The contracts inside a game server, as zope interfaces: what a game and the
protocols of its connections use of the game server (L{IGameServer}), and
what the game server uses of each connection (L{IGameServerConnection}).

They live here, below every other module of L{aphelion.game}, so that the
router, the control and player protocols and L{aphelion.game.game.Game} can
name the game server without importing the factory that builds them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

__all__ = ["IGameServer", "IGameServerConnection"]


class IGameServerConnection(Interface):
    """
    One TCP connection to the game server, for its whole life: what a drain
    closes.
    """

    connection = Attribute(
        "The protocol its first envelope handed it to (control, player or "
        "refusal), or None before."
    )

    def loseConnection() -> None:
        """
        Close once what is written has been sent.
        """

    def abortConnection() -> None:
        """
        Close now, dropping what is not sent yet.
        """


class IGameServer(Interface):
    """
    A game server: the factory of every connection of a game-server process,
    and what a game reaches as C{game.server} and a game's protocol as
    C{self.factory}.
    """

    # What a game uses.

    clock = Attribute("The IReactorTime of every timer of the game server.")
    game = Attribute("The Game it runs.")
    serverId = Attribute("This game server's id (from Control when not given).")
    capacity = Attribute("How many players the game seats.")
    players = Attribute(
        "The seated players (GameServerProtocol) by player ID. Read it; do "
        "not change it."
    )

    def broadcast(payload: bytes, exclude: Any = None) -> None:
        """
        Send a game message to every seated player (but C{exclude}).
        """

    def statusChanged() -> None:
        """
        Report C{Status} at the end of this reactor turn, if it changed.
        """

    # What its connections use.

    playerWriteLimit = Attribute(
        "Bytes that may wait unsent on one player connection before its "
        "player is disconnected, or None."
    )
    throttle = Attribute("The ThrottledLog of the log lines peers cause.")
    token = Attribute(
        "The control token, required of Control, and of Type while clientToken "
        "is empty."
    )
    clientToken = Attribute(
        "The client token from Control (bytes), required of Type when not empty."
    )
    seatHold = Attribute("Seconds a seat is held for a player that may resume.")
    held = Attribute("The held players by session id.")
    control = Attribute("The control connection's protocol, while one is open.")
    accepting = Attribute("Whether new players are taken (not while draining).")
    draining = Attribute("Whether a drain has begun.")

    def shutdown(reason: str, deadline: float | None = None) -> None:
        """
        Drain: disconnect every player, then close the control connection.
        """

    def whenShutDown() -> Deferred[None]:
        """
        A L{Deferred} that fires when a drain is done.
        """

    def buildControlProtocol() -> Any:
        """
        Called when a connection's first envelope is C{Control}: the
        protocol to hand it to.
        """

    def buildPlayerProtocol() -> Any:
        """
        Called when a connection's first envelope is C{Type}: the game's
        player protocol to hand it to.
        """

    def buildUnroutedProtocol() -> Any:
        """
        Called when a connection's first envelope is anything else, or comes
        too late: the protocol that answers it with C{Error}.
        """

    def connectionOpened(connection: IGameServerConnection) -> None:
        """
        Called when a connection is made.
        """

    def connectionClosed(connection: IGameServerConnection) -> None:
        """
        Called when a connection is lost.
        """

    def connectionMoved(old: Any, new: Any) -> None:
        """
        Called when a resumed player adopts the connection that C{old} was
        handed to: its bytes and its loss go to C{new} from now on.
        """

    def controlOpened(
        control: Any, options: dict[str, str], config: Any, serverId: str
    ) -> bool:
        """
        Called when C{Control} with the right token arrives and no other
        control connection is open: configure the game with the options and
        config (or L{None}) of C{Control} and answer C{Ready} and C{Status}.
        C{serverId} is the one C{Control} names.

        :return: whether it worked; if not, the connection is closed.
        """

    def controlClosed(control: Any) -> None:
        """
        Called when a control connection is lost.
        """

    def seat(player: Any, playerId: str) -> tuple[int, str] | None:
        """
        Called when C{ClientAuth} names a player: take the seat for it
        (replacing a player seated with the same ID), or say why not.

        :return: L{None}, or the code and reason of the C{Rejected}.
        """

    def unseat(player: Any) -> None:
        """
        Called when a player leaves or is refused after L{seat}: free its
        seat, if it is still its.
        """
