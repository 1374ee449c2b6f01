# -*- test-case-name: tests.test_interfaces -*-
"""
Contracts between the parts of aphelion.

Each part sees the others only through these interfaces, so this module
imports no other module of aphelion: what a method takes or returns is named
in its docstring, not imported.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

__all__ = [
    "IConnection",
    "IGameServerPool",
    "IPlayer",
    "IPlayerLink",
    "IPooledServer",
    "IReactorUser",
    "ISeat",
    "ISessionRegistry",
]


class IConnection(Interface):
    """
    One client connection, as a session sees it.
    """

    protocol = Attribute("The L{aphelion.codes.AphelionProtocol} it speaks.")
    unacknowledged = Attribute(
        "How many of the packets sent on it the peer has not acknowledged."
    )
    lastUsed = Attribute(
        "A number that grows each time a game packet is sent on it (for LRU)."
    )
    isOpen = Attribute("Whether it is open: not closing, not closed.")
    remoteAddress = Attribute(
        "The client's address (the forwarded one behind a trusted proxy), "
        "which the per-address limits of Part 6 count."
    )

    def sendPayload(payload: bytes) -> None:
        """
        Send one payload in a ProtobufPacket, with the pending ack.
        """

    def closeWith(code: int, reason: str) -> None:
        """
        Close the connection with a WebSocket close code and reason.
        """

    def pauseReading(cause: str) -> None:
        """
        Stop reading from the client for C{cause} (a short constant such as
        C{"link"}: the game server reads too slowly). Reading resumes when
        every cause that paused it has called L{resumeReading}.
        """

    def resumeReading(cause: str) -> None:
        """
        Take back a L{pauseReading} of the same C{cause}; does nothing if that
        cause did not pause it.
        """


class ISessionRegistry(Interface):
    """
    Maps session tokens to sessions (Part 1.4).

    The sessions it makes and takes are L{aphelion.session.Session}s. Every
    method returns a L{Deferred} so that an implementation on a shared store
    (several AuthProxies behind one load balancer) can replace the in-memory
    one.
    """

    def open(token: bytes | None, connection: IConnection) -> Deferred[Any]:
        """
        Attach a connection to the live session the token names, or to a new
        session when the token is L{None}, unknown or expired.

        :return: a L{Deferred} that fires with the L{aphelion.session.Session}
            or fails with L{aphelion.session.SessionFull} when the session
            already holds its limit of connections.
        """

    def detach(session: Any, connection: IConnection) -> Deferred[None]:
        """
        Take a closed connection off its session. The session lingers for the
        session timeout once its last connection is gone.

        :return: a L{Deferred} that fires with L{None}.
        """

    def lookup(token: bytes) -> Deferred[Any]:
        """
        :return: a L{Deferred} that fires with the live session the token
            names, or L{None}.
        """

    def authenticate(
        session: Any, playerId: str, refuse: bool = False
    ) -> Deferred[Any]:
        """
        Bind an authenticated player ID to the session.

        :param refuse: leave the session unbound when another live session
            holds the player ID.
        :return: a L{Deferred} that fires with the other live session the same
            player ID was bound to (which the caller ends: the newest login
            wins), or L{None}.
        """

    def unbind(session: Any) -> Deferred[None]:
        """
        Forget the session's player ID (it authenticated, but was not seated).

        :return: a L{Deferred} that fires with L{None}.
        """

    def seat(session: Any, seat: ISeat | None) -> Deferred[None]:
        """
        Record the session's game-server seat, or that it has none.

        :return: a L{Deferred} that fires with L{None}.
        """

    def end(session: Any, code: int, reason: str) -> Deferred[None]:
        """
        End a session: close its connections with C{code} and C{reason}, kill
        its token and tell its end observers.

        :return: a L{Deferred} that fires with L{None}.
        """

    def close() -> Deferred[None]:
        """
        Called when the AuthProxy stops. An in-memory registry forgets its
        sessions and their timers; one on a shared store keeps them for the
        other AuthProxies.

        :return: a L{Deferred} that fires with L{None}.
        """

    players = Attribute(
        "The number of authenticated sessions, as last known: exact in memory, "
        "refreshed now and then from a shared store. Pings read it."
    )
    playing = Attribute("The number of seated sessions, as last known.")

    def counts() -> Deferred[tuple[int, int]]:
        """
        :return: a L{Deferred} that fires with C{(players, playing)}: the
            number of authenticated sessions and of seated sessions.
        """


class IPlayer(Interface):
    """
    An authenticated player, as the realm yields it (Part 2.4's
    C{ClientAuth} carries it to the game server).
    """

    playerId = Attribute("The identity the game knows the player by (L{str}).")
    name = Attribute("The display name (L{str}).")
    attributes = Attribute("An immutable mapping of L{str} to L{str}.")


class IPlayerLink(Interface):
    """
    A seated player's connection to a game server (Part 2.4), as the gateway
    drives it.
    """

    seat = Attribute("The L{ISeat} it reports to.")

    def sendGameData(payload: bytes) -> None:
        """
        Send one of the client's payloads to the game server (C{GameData}).
        """

    def disconnect(code: int, reason: str) -> None:
        """
        Tell the game server the player is gone (C{Disconnect}) and close; a
        link told so reports nothing more to its seat.
        """

    def pauseReading() -> None:
        """
        Stop reading from the game server: the player's connection is full.
        """

    def resumeReading() -> None:
        """
        Read from the game server again.
        """


class ISeat(Interface):
    """
    A session's place on a game server: what its L{IPlayerLink} reports to.
    """

    session = Attribute(
        "The session being seated; its C{connections} stop reading while the "
        "game server reads too slowly."
    )

    def linkMade(link: IPlayerLink) -> None:
        """
        Called when the player connection is open.
        """

    def accepted(details: Any) -> None:
        """
        Called when the game server answered C{Connected} with its
        C{GameDetails}.
        """

    def gameConfig(config: Any) -> None:
        """
        Called when the game server sent its C{GameConfig}.
        """

    def rejected(code: int, reason: str) -> None:
        """
        Called when the game server answered C{Rejected}.
        """

    def gameData(payload: bytes) -> None:
        """
        Called with each C{GameData} payload from the game server.
        """

    def disconnected(code: int, reason: str) -> None:
        """
        Called when the game server sent C{Disconnect}.
        """

    def lost(reason: str) -> None:
        """
        Called when the player connection closed or never opened.
        """


class IPooledServer(Interface):
    """
    One game server of an L{IGameServerPool}, as the gateway and the player
    links see it (not to be confused with L{aphelion.game.interfaces}, the
    game side's own view).
    """

    serverId = Attribute("The id the AuthProxy gave it (L{str}).")
    host = Attribute("The address its player connections go to.")
    port = Attribute("Its TCP port, once known, else L{None}.")
    token = Attribute(
        "Its control token (never logged); player connections present it "
        "while clientToken is empty."
    )
    clientToken = Attribute(
        "The token its player connections present (Control.client_token), or "
        "empty for the control token (never logged)."
    )
    draining = Attribute("Whether it is being drained: it takes no new players.")


class IGameServerPool(Interface):
    """
    The game servers, as the gateway needs them: where to seat a player, and
    which servers went away. The servers it takes are the L{IPooledServer}s
    it gave.
    """

    def pick(exclude: Collection[Any]) -> IPooledServer | None:
        """
        :return: a ready game server with room that is not in C{exclude},
            or L{None}.
        """

    def seatingStarted(server: Any) -> None:
        """
        A seat is being set up on C{server}: count it in its load until
        L{seatingEnded}.
        """

    def seatingEnded(server: Any) -> None:
        """
        A seat that L{seatingStarted} counted was made or given up.
        """

    def linkAdded(server: Any, link: IPlayerLink) -> None:
        """
        C{link} seats a player on C{server}.
        """

    def linkRemoved(server: Any, link: IPlayerLink) -> None:
        """
        C{link} no longer seats a player on C{server}; nothing if it did not.
        """

    def linksOf(server: Any) -> Collection[IPlayerLink]:
        """
        :return: the links that L{linkAdded} added to C{server} and were not
            removed.
        """

    def addLostObserver(observer: Callable[[Any], object]) -> None:
        """
        Call C{observer(server)} when a game server crashes or stops.
        """


class IControlConnection(Interface):
    """
    The AuthProxy's control connection to one game server (Part 2.3), as the
    game-server pool drives it.
    """

    def sendShutdown(deadlineMs: int, reason: str) -> None:
        """
        Ask the game server to drain and exit (C{Shutdown}).
        """


class IReactorUser(Interface):
    """
    A component made before the reactor is known (as C{--auth} plugins make
    checkers) that needs it before its first use.
    """

    def bindReactor(reactor: Any) -> None:
        """
        Called once with the reactor, before the first use.
        """
