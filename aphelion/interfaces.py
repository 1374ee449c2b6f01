# -*- test-case-name: tests.test_session -*-
"""
Contracts between the parts of aphelion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from aphelion.session import Session

__all__ = ["IConnection", "ISessionRegistry"]


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

    Every method returns a L{Deferred} so that an implementation on a shared
    store (several AuthProxies behind one load balancer) can replace the
    in-memory one.
    """

    def open(token: bytes | None, connection: IConnection) -> Deferred[Session]:
        """
        Attach a connection to the live session the token names, or to a new
        session when the token is L{None}, unknown or expired.

        :return: a L{Deferred} that fires with the L{aphelion.session.Session}
            or fails with L{aphelion.session.SessionFull} when the session
            already holds its limit of connections.
        """

    def detach(session: Session, connection: IConnection) -> Deferred[None]:
        """
        Take a closed connection off its session. The session lingers for the
        session timeout once its last connection is gone.

        :return: a L{Deferred} that fires with L{None}.
        """

    def lookup(token: bytes) -> Deferred[Session | None]:
        """
        :return: a L{Deferred} that fires with the live session the token
            names, or L{None}.
        """

    def authenticate(
        session: Session, playerId: str, refuse: bool = False
    ) -> Deferred[Session | None]:
        """
        Bind an authenticated player ID to the session.

        :param refuse: leave the session unbound when another live session
            holds the player ID.
        :return: a L{Deferred} that fires with the other live session the same
            player ID was bound to (which the caller ends: the newest login
            wins), or L{None}.
        """

    def unbind(session: Session) -> Deferred[None]:
        """
        Forget the session's player ID (it authenticated, but was not seated).

        :return: a L{Deferred} that fires with L{None}.
        """

    def seat(session: Session, seat: object | None) -> Deferred[None]:
        """
        Record the session's game-server seat, or that it has none.

        :return: a L{Deferred} that fires with L{None}.
        """

    def end(session: Session, code: int, reason: str) -> Deferred[None]:
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
