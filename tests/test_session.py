# -*- test-case-name: tests.test_session -*-
"""
Tests of L{aphelion.session}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.interfaces import ISessionRegistry
from aphelion.limits import Exemptions
from aphelion.session import (
    MemorySessionRegistry,
    Session,
    SessionFull,
    TooManySessions,
    newToken,
    tokenHint,
)
from aphelion.testing import RecordingConnection


class TokenTests(SynchronousTestCase):
    """
    Tests of L{newToken} and L{tokenHint}.
    """

    def test_newToken(self) -> None:
        """
        Tokens are 32 bytes and differ.
        """
        tokens = {newToken() for _ in range(100)}
        self.assertEqual(len(tokens), 100)
        self.assertEqual({len(t) for t in tokens}, {32})

    def test_hint(self) -> None:
        """
        The hint is the first four hex digits and nothing more.
        """
        self.assertEqual(tokenHint(b"\xab\xcd" + b"\xff" * 30), "abcd")
        self.assertEqual(tokenHint(None), "-")


class SessionRegistryTestsMixin:
    """
    Behaviour that every L{ISessionRegistry} implementation has. Mix into a
    L{SynchronousTestCase} that sets C{self.clock} and C{self.registry}.
    """

    clock: Clock
    registry: ISessionRegistry

    def open(
        self, token: bytes | None = None, conn: RecordingConnection | None = None
    ) -> Session:
        """
        Open a session synchronously.
        """
        conn = conn if conn is not None else RecordingConnection()
        session: Session = self.successResultOf(self.registry.open(token, conn))  # type: ignore[attr-defined]
        return session

    def test_interface(self) -> None:
        """
        The registry provides L{ISessionRegistry}.
        """
        self.assertTrue(verifyObject(ISessionRegistry, self.registry))  # type: ignore[attr-defined]

    def test_newSession(self) -> None:
        """
        No token, or an unknown one, makes a new session with a fresh token.
        """
        first = self.open()
        second = self.open(b"\x01" * 32)
        self.assertNotEqual(first.token, second.token)  # type: ignore[attr-defined]
        self.assertNotEqual(second.token, b"\x01" * 32)  # type: ignore[attr-defined]

    def test_join(self) -> None:
        """
        A live token joins its session.
        """
        session = self.open()
        conn = RecordingConnection()
        self.assertIs(self.open(session.token, conn), session)  # type: ignore[attr-defined]
        self.assertEqual(len(session.connections), 2)  # type: ignore[attr-defined]

    def test_connectionLimit(self) -> None:
        """
        A session holds at most its limit of connections; the next fails
        with L{SessionFull}.
        """
        session = self.open()
        for _ in range(7):
            self.open(session.token)
        self.failureResultOf(  # type: ignore[attr-defined]
            self.registry.open(session.token, RecordingConnection()), SessionFull
        )

    def test_lingerAndResume(self) -> None:
        """
        A session whose last connection closed lingers for the session
        timeout and can be resumed with its identity and seat.
        """
        conn = RecordingConnection()
        session = self.open(None, conn)
        self.successResultOf(self.registry.authenticate(session, "alice"))  # type: ignore[attr-defined]
        self.successResultOf(self.registry.seat(session, "seat-1"))  # type: ignore[attr-defined]
        self.registry.detach(session, conn)
        self.clock.advance(59)
        resumed = self.open(session.token)
        self.assertIs(resumed, session)  # type: ignore[attr-defined]
        self.assertEqual((resumed.playerId, resumed.seat), ("alice", "seat-1"))  # type: ignore[attr-defined]
        self.clock.advance(120)
        self.assertFalse(session.ended)  # type: ignore[attr-defined]

    def test_pingSessionEndsAtOnce(self) -> None:
        """
        A session that only ever held ping connections, and no player, ends
        when its last connection closes: there is nothing to resume.
        """
        conn = RecordingConnection(AphelionProtocol.PING)
        session = self.open(None, conn)
        self.registry.detach(session, conn)
        self.assertTrue(session.ended)  # type: ignore[attr-defined]
        self.assertIsNone(self.successResultOf(self.registry.lookup(session.token)))  # type: ignore[attr-defined]

    def test_neverAuthenticatedEndsAtOnce(self) -> None:
        """
        A game session that never authenticated ends when its last
        connection closes instead of lingering (Part 6): nothing to resume.
        """
        conn = RecordingConnection()
        session = self.open(None, conn)
        self.registry.detach(session, conn)
        self.assertTrue(session.ended)  # type: ignore[attr-defined]
        self.assertIsNone(self.successResultOf(self.registry.lookup(session.token)))  # type: ignore[attr-defined]

    def test_expiry(self) -> None:
        """
        After the session timeout the token is dead, the seat released and
        the end observers told with 4009.
        """
        conn = RecordingConnection()
        session = self.open(None, conn)
        self.successResultOf(self.registry.authenticate(session, "alice"))  # type: ignore[attr-defined]
        self.successResultOf(self.registry.seat(session, "seat"))  # type: ignore[attr-defined]
        ended: list[tuple[int, str]] = []
        session.addEndObserver(lambda s, code, reason: ended.append((code, reason)))
        self.registry.detach(session, conn)
        self.clock.advance(60)
        self.assertTrue(session.ended)  # type: ignore[attr-defined]
        self.assertEqual(ended, [(CloseCode.SESSION_ENDED, "session expired")])  # type: ignore[attr-defined]
        self.assertIsNone(self.successResultOf(self.registry.lookup(session.token)))  # type: ignore[attr-defined]
        self.assertEqual(self.successResultOf(self.registry.counts()), (0, 0))  # type: ignore[attr-defined]
        self.assertNotEqual(self.open(session.token).token, session.token)  # type: ignore[attr-defined]

    def test_counts(self) -> None:
        """
        Players are authenticated sessions; playing are seated sessions.
        """
        a, b, _ = self.open(), self.open(), self.open()
        self.registry.authenticate(a, "a")
        self.registry.authenticate(b, "b")
        self.registry.seat(a, "seat")
        self.assertEqual(self.successResultOf(self.registry.counts()), (2, 1))  # type: ignore[attr-defined]
        self.registry.seat(a, None)
        self.registry.seat(a, None)
        self.assertEqual(self.successResultOf(self.registry.counts()), (2, 0))  # type: ignore[attr-defined]

    def test_newestLoginWins(self) -> None:
        """
        Authenticating a player ID bound to another live session returns that
        session, so the caller can end it.
        """
        first, second = self.open(), self.open()
        self.assertIsNone(self.successResultOf(self.registry.authenticate(first, "p")))  # type: ignore[attr-defined]
        self.assertIs(
            self.successResultOf(self.registry.authenticate(second, "p")), first
        )  # type: ignore[attr-defined]

    def test_endClosesConnections(self) -> None:
        """
        Ending a session closes its connections with the code and reason.
        """
        conns = [RecordingConnection(), RecordingConnection(AphelionProtocol.PING)]
        session = self.open(None, conns[0])
        self.open(session.token, conns[1])
        self.registry.end(session, CloseCode.SESSION_ENDED, "kicked")
        self.assertEqual([c.closed for c in conns], [(4009, "kicked")] * 2)  # type: ignore[attr-defined]


class MemorySessionRegistryTests(SessionRegistryTestsMixin, SynchronousTestCase):
    """
    L{MemorySessionRegistry} behaves as every registry does, and more.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = MemorySessionRegistry(clock=self.clock)

    def test_tokenNeverLoggedWhole(self) -> None:
        """
        Resume and expiry log the token's hint, never the token.
        """
        conn = RecordingConnection()
        with capturedLogs() as events:
            session = self.open(None, conn)
            self.registry.authenticate(session, "alice")
            self.registry.detach(session, conn)
            self.open(session.token)
            self.registry.end(session, 4009, "bye")
        text = repr(events)
        self.assertNotIn(session.token.hex(), text)
        self.assertNotIn(repr(session.token), text)
        self.assertIn(session.hint, text)


class SessionSendTests(SynchronousTestCase):
    """
    Tests of L{Session.send}: outbound choice and the queue.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = MemorySessionRegistry(clock=self.clock, queueLimit=3)

    def open(self, *conns: RecordingConnection) -> Session:
        """
        Open one session holding C{conns}.
        """
        session: Session = self.successResultOf(self.registry.open(None, conns[0]))
        for conn in conns[1:]:
            self.registry.open(session.token, conn)
        return session

    def test_leastUnacknowledged(self) -> None:
        """
        Outbound messages go on the game connection with the fewest
        unacknowledged packets.
        """
        busy, idle = (
            RecordingConnection(unacknowledged=5),
            RecordingConnection(unacknowledged=1),
        )
        session = self.open(busy, idle)
        session.send(b"m")
        self.assertEqual((busy.sent, idle.sent), ([], [b"m"]))

    def test_leastRecentlyUsedOnTie(self) -> None:
        """
        On a tie the connection used least recently is chosen, so equal
        connections take turns.
        """
        a, b = RecordingConnection(), RecordingConnection()
        session = self.open(a, b)
        for i in range(4):
            session.send(bytes([i]))
            a.unacknowledged = b.unacknowledged = 0
            self.clock.advance(0)
        self.assertEqual((a.sent, b.sent), ([b"\0", b"\2"], [b"\1", b"\3"]))

    def test_closingConnectionsNotUsed(self) -> None:
        """
        A connection that is closing is passed over; with no open game
        connection left, messages are queued rather than lost.
        """
        closing, open_ = RecordingConnection(), RecordingConnection(unacknowledged=9)
        session = self.open(closing, open_)
        closing.closeWith(4006, "bad")
        session.send(b"m")
        self.assertEqual((closing.sent, open_.sent), ([], [b"m"]))
        open_.closeWith(4006, "bad")
        session.send(b"n")
        self.assertEqual(list(session.queue), [b"n"])

    def test_pingConnectionsNotUsed(self) -> None:
        """
        Game messages never go out on a ping connection; with only ping
        connections they are queued.
        """
        ping = RecordingConnection(AphelionProtocol.PING)
        session = self.open(ping)
        session.send(b"m")
        self.assertEqual(ping.sent, [])
        self.assertEqual(list(session.queue), [b"m"])

    def test_queueMadeWhenNeeded(self) -> None:
        """
        A session that never queues holds no queue (an empty deque is about
        600 bytes); the first queued payload makes it.
        """
        conn = RecordingConnection()
        session = self.open(conn)
        self.assertIsNone(session._queue)
        self.registry.authenticate(session, "alice")
        self.registry.detach(session, conn)
        session.send(b"q")
        self.assertEqual(list(session.queue), [b"q"])

    def test_queueFlushedInOrder(self) -> None:
        """
        Messages queued while disconnected are sent in order on resume.
        """
        conn = RecordingConnection()
        session = self.open(conn)
        self.registry.authenticate(session, "alice")
        self.registry.detach(session, conn)
        session.send(b"1")
        session.send(b"2")
        again = RecordingConnection()
        self.registry.open(session.token, again)
        session.flushQueue()
        self.assertEqual(again.sent, [b"1", b"2"])
        self.assertEqual(len(session.queue), 0)

    def test_queueOverflowEndsSession(self) -> None:
        """
        One message more than the queue limit ends the session with 4009.
        """
        ping = RecordingConnection(AphelionProtocol.PING)
        session = self.open(ping)
        for i in range(4):
            session.send(bytes([i]))
        self.assertTrue(session.ended)
        self.assertEqual(ping.closed, (CloseCode.SESSION_ENDED, "queue overflow"))

    def test_queueBytesOverflowEndsSession(self) -> None:
        """
        Queued packets are bounded in bytes too: one that would pass the
        byte limit ends the session.
        """
        registry = MemorySessionRegistry(clock=self.clock, queueBytes=10)
        ping = RecordingConnection(AphelionProtocol.PING)
        session: Session = self.successResultOf(registry.open(None, ping))
        session.send(b"x" * 6)
        self.assertFalse(session.ended)
        session.send(b"y" * 5)
        self.assertTrue(session.ended)
        self.assertEqual(ping.closed, (CloseCode.SESSION_ENDED, "queue overflow"))

    def test_queueBytesFreedOnFlush(self) -> None:
        """
        Flushing the queue frees its bytes, so a session that resumes can
        queue again up to the limit.
        """
        registry = MemorySessionRegistry(clock=self.clock, queueBytes=10)
        conn = RecordingConnection()
        session: Session = self.successResultOf(registry.open(None, conn))
        registry.authenticate(session, "alice")
        registry.detach(session, conn)
        session.send(b"x" * 10)
        again = RecordingConnection()
        registry.open(session.token, again)
        session.flushQueue()
        registry.detach(session, again)
        session.send(b"y" * 10)
        self.assertFalse(session.ended)
        self.assertEqual(list(session.queue), [b"y" * 10])

    def test_oneConnectionPerTurn(self) -> None:
        """
        The packets a session sends in one reactor turn go on the connection
        chosen for the first of them, in order, even when another connection
        has fewer unacknowledged packets by then (Part 1.4); the next turn
        chooses again.
        """
        a, b = RecordingConnection(), RecordingConnection()
        session = self.open(a, b)
        for payload in (b"connected", b"config", b"more"):
            session.send(payload)
        self.assertEqual((a.sent, b.sent), ([b"connected", b"config", b"more"], []))
        self.clock.advance(0)
        session.send(b"next")
        self.assertEqual(b.sent, [b"next"])

    def test_turnConnectionClosing(self) -> None:
        """
        When the connection of this turn closes, the rest of the turn's
        packets go on another open one rather than being lost.
        """
        a, b = RecordingConnection(), RecordingConnection()
        session = self.open(a, b)
        session.send(b"1")
        a.closeWith(1000, "bye")
        session.send(b"2")
        self.assertEqual((a.sent, b.sent), ([b"1"], [b"2"]))

    def test_sendAfterEnd(self) -> None:
        """
        Sending on an ended session does nothing.
        """
        conn = RecordingConnection()
        session = self.open(conn)
        self.registry.end(session, 4009, "x")
        session.send(b"m")
        self.assertEqual(conn.sent, [])

    def test_sessionIdNotToken(self) -> None:
        """
        The session id for game servers is 16 bytes and reveals no token bytes.
        """
        session = self.open(RecordingConnection())
        self.assertEqual(len(session.sessionId), 16)
        self.assertNotIn(session.sessionId, session.token)
        self.assertNotIn(session.token[:8], session.sessionId)


class SessionLimitTests(SynchronousTestCase):
    """
    The session caps of Part 6: in all and per client address.
    """

    def setUp(self) -> None:
        self.clock = Clock()

    def test_maxSessions(self) -> None:
        """
        Past the limit of sessions in all, a new session fails with
        L{TooManySessions}; joining an existing one still works, and a
        session that ends frees its place.
        """
        registry = MemorySessionRegistry(clock=self.clock, maxSessions=2)
        first = self.successResultOf(registry.open(None, RecordingConnection()))
        self.successResultOf(registry.open(None, RecordingConnection()))
        failure = self.failureResultOf(
            registry.open(None, RecordingConnection()), TooManySessions
        )
        self.assertEqual(str(failure.value), "too many sessions")
        self.assertIs(
            self.successResultOf(registry.open(first.token, RecordingConnection())),
            first,
        )
        registry.end(first, CloseCode.SESSION_ENDED, "bye")
        self.successResultOf(registry.open(None, RecordingConnection()))

    def test_sessionsPerAddress(self) -> None:
        """
        One client address holds at most its limit of sessions; another
        address is not affected, and an ended session frees its place.
        """
        registry = MemorySessionRegistry(clock=self.clock, sessionsPerAddress=2)
        here = [
            self.successResultOf(
                registry.open(None, RecordingConnection(remoteAddress="10.0.0.1"))
            )
            for _ in range(2)
        ]
        self.failureResultOf(
            registry.open(None, RecordingConnection(remoteAddress="10.0.0.1")),
            TooManySessions,
        )
        self.successResultOf(
            registry.open(None, RecordingConnection(remoteAddress="10.0.0.2"))
        )
        registry.end(here[0], CloseCode.SESSION_ENDED, "bye")
        self.successResultOf(
            registry.open(None, RecordingConnection(remoteAddress="10.0.0.1"))
        )

    def test_exemptAddress(self) -> None:
        """
        Addresses in the exempt list have no per-address session limit.
        """
        registry = MemorySessionRegistry(
            clock=self.clock,
            sessionsPerAddress=1,
            exempt=Exemptions(["10.0.0.0/8"]),
        )
        for _ in range(5):
            self.successResultOf(
                registry.open(None, RecordingConnection(remoteAddress="10.1.2.3"))
            )

    def test_neverAuthenticatedFreesAddress(self) -> None:
        """
        Sessions opened and closed without logging in leave nothing behind:
        the address's count goes back to zero, so a flood of them neither
        lingers nor locks the address out.
        """
        registry = MemorySessionRegistry(clock=self.clock, sessionsPerAddress=3)
        for _ in range(100):
            conn = RecordingConnection(remoteAddress="10.0.0.1")
            session = self.successResultOf(registry.open(None, conn))
            registry.detach(session, conn)
        self.assertEqual(len(registry), 0)
