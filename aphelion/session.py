# -*- test-case-name: tests.test_session -*-
"""
Sessions and the in-memory session-token registry (Part 1.4).

The tokens themselves (L{newToken}, L{tokenHint}) live in the sans-IO
L{aphelion.tokens}, and are re-exported here.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from aphelion.ack import pickConnection
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.interfaces import IConnection, IPlayer, ISeat, ISessionRegistry
from aphelion.limits import AddressCounter, Exemptions
from aphelion.seating import Held, SeatingMachine, SessionState
from aphelion.tokens import newToken, tokenHint

__all__ = [
    "MemorySessionRegistry",
    "Session",
    "SessionFull",
    "TooManySessions",
    "newToken",
    "tokenHint",
]


class SessionFull(Exception):
    """
    The session already holds its limit of connections (close 1013).
    """


class TooManySessions(SessionFull):
    """
    No new session can be made: the AuthProxy holds its limit of sessions in
    all, or the client address holds its limit (close 1013, Part 6).
    """


EndObserver = Callable[["Session", int, str], object]


class Session:
    """
    One player's stay: its connections, identity, seat and outbound queue.

    Sessions are made by a registry; other code reads them and calls L{send}.

    :ivar token: the secret 32-byte token; log only L{hint}.
    :ivar sessionId: a non-secret id derived from the token, safe to hand to a
        game server.
    :ivar connections: the open connections, in the order they joined.
    :ivar playerId: the authenticated player ID, or L{None}.
    :ivar identity: what the realm said of the player, or L{None}.
    :ivar seat: the game-server seat the registry recorded, or L{None}.
    :ivar seating: the gateway's L{SeatingMachine} of the session, from its
        first game payload on, else L{None}.
    :ivar ended: whether the session is over.
    :ivar address: the client address of the connection that made it.
    :ivar pinned: while set, the session's packets keep going on the
        connection of its last send, from one reactor turn to the next (the
        gateway pins a seating's replies, which come from the game server in
        several reads: Part 1.4).
    """

    __slots__ = (
        "_endObservers",
        "_lingerCall",
        "_queue",
        "_queueBytes",
        "_queueLimit",
        "_queued",
        "_registry",
        "_sessionId",
        "_tick",
        "_turn",
        "_turnConnection",
        "address",
        "connections",
        "ended",
        "hint",
        "identity",
        "pinned",
        "playerId",
        "seat",
        "seating",
        "token",
    )

    def __init__(
        self,
        registry: MemorySessionRegistry,
        token: bytes,
        queueLimit: int = 256,
        queueBytes: int = 1024 * 1024,
        address: str = "",
    ) -> None:
        self._registry = registry
        self.token = token
        self.hint = tokenHint(token)
        self.address = address
        self._sessionId: bytes | None = None
        self.connections: list[IConnection] = []
        self.playerId: str | None = None
        self.identity: IPlayer | None = None
        self.seat: ISeat | None = None
        self.seating: SeatingMachine[Any] | None = None
        # Made when the first payload is queued: an empty deque is about
        # 600 bytes, and most sessions never queue anything.
        self._queue: deque[bytes] | None = None
        self._queued = 0
        self._queueLimit = queueLimit
        self._queueBytes = queueBytes
        self._turn = -1
        self._turnConnection: IConnection | None = None
        self.pinned = False
        self._lingerCall: IDelayedCall | None = None
        self._endObservers: list[EndObserver] = []
        self._tick = 0
        self.ended = False

    def __repr__(self) -> str:
        return f"<Session {self.hint} connections={len(self.connections)}>"

    @property
    def state(self) -> SessionState:
        """
        Where the session is in the game protocol (Part 1.6).
        """
        seating = self.seating
        return SessionState.UNAUTHENTICATED if seating is None else seating.state

    @property
    def held(self) -> Held | None:
        """
        What the client sent while being seated or moved, to be relayed once
        seated (Part 6), or L{None}.
        """
        seating = self.seating
        return None if seating is None else seating.held

    @property
    def sessionId(self) -> bytes:
        """
        A non-secret id of the session, derived from the token (the first 16
        bytes of a SHA-256), safe to hand to a game server.
        """
        if self._sessionId is None:
            self._sessionId = hashlib.sha256(
                b"aphelion-session-id\0" + self.token
            ).digest()[:16]
        return self._sessionId

    @property
    def lingering(self) -> bool:
        """
        Whether the session has no connection and waits to be resumed.
        """
        return self._lingerCall is not None

    def gameConnection(self) -> IConnection | None:
        """
        Choose the game connection for the next outbound message: the one with
        the fewest unacknowledged packets; on a tie, the one used least
        recently. Connections that are closing are passed over.

        :return: the connection, or L{None} when no game connection is open.
        """
        connections = self.connections
        if len(connections) == 1:
            # Most sessions hold one connection: nothing to choose between.
            conn = connections[0]
            if conn.protocol is AphelionProtocol.GAME and conn.isOpen:
                return conn
            return None
        return pickConnection(
            conn
            for conn in self.connections
            if conn.protocol is AphelionProtocol.GAME and conn.isOpen
        )

    def send(self, payload: bytes) -> None:
        """
        Send one outbound game payload on the chosen game connection, or queue
        it while the session has none. A queue overflow (in packets or bytes)
        ends the session.

        The packets sent in one reactor turn go on the connection chosen for
        the first of them, in order (Part 1.4), so that related messages such
        as C{connected} and C{game_config} arrive in order.

        :param payload: a non-empty C{S2C} payload.
        """
        if self.ended:
            return
        registry = self._registry
        conn = self._turnConnection
        if (
            (self._turn != registry.turn and not self.pinned)
            or conn is None
            or not conn.isOpen
        ):
            conn = self.gameConnection()
            if conn is None:
                self._enqueue(payload)
                return
            self._turnConnection = conn
            self._turn = registry.turn
            registry.turnUsed()
        self._sendOn(conn, payload)

    @property
    def queue(self) -> deque[bytes]:
        """
        The payloads queued while no game connection is open, oldest first.
        """
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        return queue

    def _enqueue(self, payload: bytes) -> None:
        queue = self.queue
        if (
            len(queue) >= self._queueLimit
            or self._queued + len(payload) > self._queueBytes
        ):
            self._registry.end(self, CloseCode.SESSION_ENDED, "queue overflow")
            return
        queue.append(payload)
        self._queued += len(payload)

    def _sendOn(self, conn: IConnection, payload: bytes) -> None:
        self._tick += 1
        conn.lastUsed = self._tick
        conn.sendPayload(payload)

    def flushQueue(self) -> None:
        """
        Send the queued payloads, in order, now that a game connection is open.
        """
        queue = self._queue
        while queue and not self.ended:
            conn = self.gameConnection()
            if conn is None:
                return
            payload = queue.popleft()
            self._queued -= len(payload)
            self._sendOn(conn, payload)

    def addEndObserver(self, observer: EndObserver) -> None:
        """
        Call C{observer(session, code, reason)} when the session ends (its seat
        is released then).
        """
        self._endObservers.append(observer)


@implementer(ISessionRegistry)
class MemorySessionRegistry:
    """
    The in-memory session registry, the default.

    :ivar sessionTimeout: seconds a session lingers after its last connection.
    :ivar maxConnections: connections per session.
    :ivar queueLimit: packets queued while a session has no game connection.
    :ivar queueBytes: bytes queued while a session has no game connection.
    :ivar maxSessions: sessions in all, or 0 for no limit.
    :ivar turn: grows at the end of each reactor turn in which a session
        chose a connection (Part 1.4: one connection per session per turn).
    """

    _log = Logger()

    def __init__(
        self,
        *,
        clock: IReactorTime,
        sessionTimeout: float = 60.0,
        maxConnections: int = 8,
        queueLimit: int = 256,
        queueBytes: int = 1024 * 1024,
        maxSessions: int = 0,
        sessionsPerAddress: int = 0,
        exempt: Exemptions | None = None,
        tokenFactory: Callable[[], bytes] = newToken,
    ) -> None:
        """
        :param sessionsPerAddress: sessions one client address may hold, or
            0 for no limit; addresses in C{exempt} have no limit.
        """
        self._clock = clock
        self.sessionTimeout = sessionTimeout
        self.maxConnections = maxConnections
        self.queueLimit = queueLimit
        self.queueBytes = queueBytes
        self.maxSessions = maxSessions
        self._perAddress: AddressCounter[str] = AddressCounter(sessionsPerAddress)
        self._exempt = exempt or Exemptions()
        self._newToken = tokenFactory
        self._sessions: dict[bytes, Session] = {}
        self._players: dict[str, Session] = {}
        self._playing = 0
        self._closed = False
        self.turn = 0
        self._turnCall: IDelayedCall | None = None

    @property
    def sessionsPerAddress(self) -> int:
        """
        Sessions one client address may hold, 0 for no limit; set by a
        reload, for the sessions opened from then on.
        """
        return self._perAddress.limit

    @sessionsPerAddress.setter
    def sessionsPerAddress(self, limit: int) -> None:
        self._perAddress.limit = limit

    def __len__(self) -> int:
        return len(self._sessions)

    def turnUsed(self) -> None:
        """
        Called when a session chose a connection for this reactor turn: the
        turn ends (and L{turn} grows) at the end of the reactor turn.
        """
        if self._turnCall is None and not self._closed:
            self._turnCall = self._clock.callLater(0, self._turnEnded)

    def _turnEnded(self) -> None:
        self._turnCall = None
        self.turn += 1

    def open(self, token: bytes | None, connection: IConnection) -> Deferred[Session]:
        session = self._sessions.get(token) if token is not None else None
        if session is None:
            address = str(getattr(connection, "remoteAddress", "") or "")
            if self.maxSessions and len(self._sessions) >= self.maxSessions:
                return fail(TooManySessions("too many sessions"))
            if address not in self._exempt and not self._perAddress.acquire(address):
                return fail(TooManySessions("too many sessions from this address"))
            token = self._newToken()
            while token in self._sessions:  # pragma: no cover - 2**-256
                token = self._newToken()
            session = Session(
                self, token, self.queueLimit, self.queueBytes, address=address
            )
            self._sessions[token] = session
        elif len(session.connections) >= self.maxConnections:
            return fail(SessionFull("too many connections in this session"))
        elif session._lingerCall is not None:
            session._lingerCall.cancel()
            session._lingerCall = None
            self._log.info("session {hint} resumed", hint=session.hint)
        session.connections.append(connection)
        return succeed(session)

    def detach(self, session: Session, connection: IConnection) -> Deferred[None]:
        try:
            session.connections.remove(connection)
        except ValueError:
            return succeed(None)
        if session.connections or session.ended:
            return succeed(None)
        if self._closed:
            return self.end(session, CloseCode.GOING_AWAY, "server shutting down")
        if session.playerId is None:
            # Never authenticated (ping-only, or a game connection that never
            # logged in): nothing to resume, so it need not linger, and a
            # flood of such sessions cannot pile up (Part 6).
            return self.end(session, CloseCode.NORMAL, "never authenticated")
        session._lingerCall = self._clock.callLater(
            self.sessionTimeout, self._expire, session
        )
        return succeed(None)

    def _expire(self, session: Session) -> None:
        session._lingerCall = None
        self._log.info("session {hint} expired", hint=session.hint)
        self.end(session, CloseCode.SESSION_ENDED, "session expired")

    def lookup(self, token: bytes) -> Deferred[Session | None]:
        return succeed(self._sessions.get(token))

    def authenticate(
        self, session: Session, playerId: str, refuse: bool = False
    ) -> Deferred[Session | None]:
        previous = self._players.get(playerId)
        if previous is session:
            return succeed(None)
        if previous is not None and refuse:
            return succeed(previous)
        if session.playerId is not None:
            self._players.pop(session.playerId, None)
        session.playerId = playerId
        self._players[playerId] = session
        return succeed(previous)

    def unbind(self, session: Session) -> Deferred[None]:
        playerId, session.playerId = session.playerId, None
        if playerId is not None and self._players.get(playerId) is session:
            del self._players[playerId]
        return succeed(None)

    def seat(self, session: Session, seat: ISeat | None) -> Deferred[None]:
        if (session.seat is None) != (seat is None):
            self._playing += 1 if seat is not None else -1
        session.seat = seat
        return succeed(None)

    def end(self, session: Session, code: int, reason: str) -> Deferred[None]:
        if session.ended:
            return succeed(None)
        session.ended = True
        if session._lingerCall is not None:
            session._lingerCall.cancel()
            session._lingerCall = None
        del self._sessions[session.token]
        if session.address not in self._exempt:
            self._perAddress.release(session.address)
        if (
            session.playerId is not None
            and self._players.get(session.playerId) is session
        ):
            del self._players[session.playerId]
        if session.seat is not None:
            self._playing -= 1
        session._queue = None
        session._queued = 0
        session._turnConnection = None
        if session.playerId is not None:
            self._log.info(
                "session {hint} ended: {code} {reason}",
                hint=session.hint,
                code=code,
                reason=reason,
            )
        for conn in list(session.connections):
            conn.closeWith(code, reason)
        for observer in session._endObservers:
            try:
                observer(session, code, reason)
            except Exception:
                self._log.failure("session end observer failed")
        return succeed(None)

    def close(self) -> Deferred[None]:
        """
        Forget every session: a lingering one ends now, and one whose last
        connection closes from now on ends instead of lingering.
        """
        self._closed = True
        if self._turnCall is not None and self._turnCall.active():
            self._turnCall.cancel()
        self._turnCall = None
        for session in list(self._sessions.values()):
            if session.lingering:
                self.end(session, CloseCode.GOING_AWAY, "server shutting down")
        return succeed(None)

    @property
    def players(self) -> int:
        """
        The number of authenticated sessions now.
        """
        return len(self._players)

    @property
    def playing(self) -> int:
        """
        The number of seated sessions now.
        """
        return self._playing

    def counts(self) -> Deferred[tuple[int, int]]:
        return succeed((len(self._players), self._playing))
