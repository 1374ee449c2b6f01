# -*- test-case-name: tests.test_registry -*-
"""
What every L{ISessionRegistry} does, as one mixin of asynchronous tests that
each implementation's test case applies: L{MemorySessionRegistry} here,
L{aphelion.registry.redis.RedisSessionRegistry} against a real Redis in
L{tests.test_registry_redis}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.interfaces import ISessionRegistry
from aphelion.session import MemorySessionRegistry, Session, SessionFull
from aphelion.testing import RecordingConnection


class RegistryBehaviourMixin:
    """
    Behaviour every L{ISessionRegistry} has. Mix into a trial C{TestCase}
    whose C{setUp} sets C{self.clock} (the registry's L{Clock}) and
    C{self.registry} (made with a session timeout of 60 s and 8
    connections per session).
    """

    clock: Clock
    registry: Any

    async def open(
        self, token: bytes | None = None, conn: RecordingConnection | None = None
    ) -> Session:
        conn = conn if conn is not None else RecordingConnection()
        session: Session = await self.registry.open(token, conn)
        return session

    async def test_interface(self) -> None:
        """
        The registry provides L{ISessionRegistry}.
        """
        self.assertTrue(verifyObject(ISessionRegistry, self.registry))  # type: ignore[attr-defined]

    async def test_newSession(self) -> None:
        """
        No token, or an unknown one, makes a new session with a fresh
        32-byte token.
        """
        first = await self.open()
        second = await self.open(b"\x01" * 32)
        self.assertEqual(len(first.token), 32)  # type: ignore[attr-defined]
        self.assertNotEqual(first.token, second.token)  # type: ignore[attr-defined]
        self.assertNotEqual(second.token, b"\x01" * 32)  # type: ignore[attr-defined]

    async def test_join(self) -> None:
        """
        A live token joins its session; lookup finds it.
        """
        session = await self.open()
        self.assertIs(await self.open(session.token), session)  # type: ignore[attr-defined]
        self.assertEqual(len(session.connections), 2)  # type: ignore[attr-defined]
        self.assertIs(await self.registry.lookup(session.token), session)  # type: ignore[attr-defined]

    async def test_connectionLimit(self) -> None:
        """
        A session holds at most its limit of connections.
        """
        session = await self.open()
        for _ in range(7):
            await self.open(session.token)
        d = self.registry.open(session.token, RecordingConnection())
        await self.assertFailure(d, SessionFull)  # type: ignore[attr-defined]

    async def test_lingerAndResume(self) -> None:
        """
        A session whose last connection closed lingers for the session
        timeout and is resumed with its identity and seat.
        """
        conn = RecordingConnection()
        session = await self.open(None, conn)
        await self.registry.authenticate(session, "alice")
        await self.registry.seat(session, "seat-1")
        await self.registry.detach(session, conn)
        self.clock.advance(59)
        resumed = await self.open(session.token)
        self.assertIs(resumed, session)  # type: ignore[attr-defined]
        self.assertEqual((resumed.playerId, resumed.seat), ("alice", "seat-1"))  # type: ignore[attr-defined]
        self.clock.advance(120)
        self.assertFalse(session.ended)  # type: ignore[attr-defined]

    async def test_neverAuthenticatedEndsAtOnce(self) -> None:
        """
        A session that never authenticated (a ping session too) ends when
        its last connection closes.
        """
        for protocol in AphelionProtocol:
            conn = RecordingConnection(protocol)
            session = await self.open(None, conn)
            await self.registry.detach(session, conn)
            self.assertTrue(session.ended)  # type: ignore[attr-defined]
            self.assertIsNone(await self.registry.lookup(session.token))  # type: ignore[attr-defined]

    async def test_expiry(self) -> None:
        """
        After the session timeout the token is dead and the end observers
        are told with 4009; the counts drop.
        """
        conn = RecordingConnection()
        session = await self.open(None, conn)
        await self.registry.authenticate(session, "alice")
        await self.registry.seat(session, "seat")
        ended: list[tuple[int, str]] = []
        session.addEndObserver(lambda s, code, reason: ended.append((code, reason)))
        await self.registry.detach(session, conn)
        self.clock.advance(60)
        self.assertTrue(session.ended)  # type: ignore[attr-defined]
        self.assertEqual(ended, [(CloseCode.SESSION_ENDED, "session expired")])  # type: ignore[attr-defined]
        self.assertIsNone(await self.registry.lookup(session.token))  # type: ignore[attr-defined]
        self.assertEqual(await self.registry.counts(), (0, 0))  # type: ignore[attr-defined]
        self.assertNotEqual((await self.open(session.token)).token, session.token)  # type: ignore[attr-defined]

    async def test_counts(self) -> None:
        """
        Players are authenticated sessions; playing are seated sessions.
        """
        a, b, _ = await self.open(), await self.open(), await self.open()
        await self.registry.authenticate(a, "a")
        await self.registry.authenticate(b, "b")
        await self.registry.seat(a, "seat")
        self.assertEqual(await self.registry.counts(), (2, 1))  # type: ignore[attr-defined]
        self.assertEqual((self.registry.players, self.registry.playing), (2, 1))  # type: ignore[attr-defined]
        await self.registry.seat(a, None)
        await self.registry.seat(a, None)
        self.assertEqual(await self.registry.counts(), (2, 0))  # type: ignore[attr-defined]

    async def test_newestLoginWins(self) -> None:
        """
        Authenticating a player ID bound to another live session returns
        that session, so that the caller ends it.
        """
        first, second = await self.open(), await self.open()
        self.assertIsNone(await self.registry.authenticate(first, "p"))  # type: ignore[attr-defined]
        self.assertIs(await self.registry.authenticate(second, "p"), first)  # type: ignore[attr-defined]
        self.assertEqual(second.playerId, "p")  # type: ignore[attr-defined]

    async def test_refuseNewcomer(self) -> None:
        """
        With C{refuse}, the newcomer stays unbound and the holder is
        returned.
        """
        first, second = await self.open(), await self.open()
        await self.registry.authenticate(first, "p")
        self.assertIs(await self.registry.authenticate(second, "p", refuse=True), first)  # type: ignore[attr-defined]
        self.assertIsNone(second.playerId)  # type: ignore[attr-defined]
        self.assertEqual(first.playerId, "p")  # type: ignore[attr-defined]

    async def test_unbind(self) -> None:
        """
        An unbound player ID is free for another session.
        """
        first, second = await self.open(), await self.open()
        await self.registry.authenticate(first, "p")
        await self.registry.unbind(first)
        self.assertIsNone(first.playerId)  # type: ignore[attr-defined]
        self.assertIsNone(await self.registry.authenticate(second, "p"))  # type: ignore[attr-defined]

    async def test_endClosesConnections(self) -> None:
        """
        Ending a session closes its connections with the code and reason and
        kills its token; its player ID is free again.
        """
        conns = [RecordingConnection(), RecordingConnection(AphelionProtocol.PING)]
        session = await self.open(None, conns[0])
        await self.open(session.token, conns[1])
        await self.registry.authenticate(session, "p")
        await self.registry.end(session, CloseCode.SESSION_ENDED, "kicked")
        self.assertEqual([c.closed for c in conns], [(4009, "kicked")] * 2)  # type: ignore[attr-defined]
        self.assertIsNone(await self.registry.lookup(session.token))  # type: ignore[attr-defined]
        other = await self.open()
        self.assertIsNone(await self.registry.authenticate(other, "p"))  # type: ignore[attr-defined]

    async def test_queueKeptWhileLingering(self) -> None:
        """
        What is sent to a lingering session is queued and sent, in order,
        when it is resumed.
        """
        conn = RecordingConnection()
        session = await self.open(None, conn)
        await self.registry.authenticate(session, "q")
        await self.registry.detach(session, conn)
        session.send(b"one")
        session.send(b"two")
        again = RecordingConnection()
        self.assertIs(await self.open(session.token, again), session)  # type: ignore[attr-defined]
        session.flushQueue()
        self.assertEqual(again.sent, [b"one", b"two"])  # type: ignore[attr-defined]


class MemoryRegistryBehaviourTests(RegistryBehaviourMixin, TestCase):
    """
    L{MemorySessionRegistry} passes the shared tests.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = MemorySessionRegistry(clock=self.clock)
