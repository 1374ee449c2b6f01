# -*- test-case-name: tests.test_limits -*-
"""
Tests of L{aphelion.limits} and L{aphelion.logthrottle}.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import Logger, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from aphelion.limits import (
    AddressCounter,
    Exemptions,
    KeyedRateLimiter,
    TokenBucket,
    hasControlCharacters,
    safeText,
)
from aphelion.logthrottle import ThrottledLog


class TokenBucketTests(SynchronousTestCase):
    """
    Tests of L{TokenBucket}.
    """

    def test_burstThenRate(self) -> None:
        """
        A full bucket allows its burst at once, then one token per
        C{1/rate} seconds.
        """
        bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
        self.assertEqual([bucket.take(0.0) for _ in range(4)], [True] * 3 + [False])
        self.assertFalse(bucket.take(0.4))
        self.assertTrue(bucket.take(0.5))
        self.assertFalse(bucket.take(0.5))

    def test_neverAboveBurst(self) -> None:
        """
        A long idle time refills the bucket to its burst, no more.
        """
        bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
        self.assertEqual([bucket.take(1000.0) for _ in range(3)], [True, True, False])

    def test_full(self) -> None:
        """
        A bucket is full again once it has refilled.
        """
        bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
        bucket.take(0.0)
        self.assertFalse(bucket.full(0.5))
        self.assertTrue(bucket.full(1.0))

    @settings(max_examples=200, deadline=None)
    @given(
        st.floats(0.1, 100),
        st.integers(1, 50),
        st.lists(st.floats(0, 10), min_size=1, max_size=60),
    )
    def test_neverMoreThanAllowed(
        self, rate: float, burst: int, gaps: list[float]
    ) -> None:
        """
        Over any sequence of tries, the tokens taken never exceed the burst
        plus the rate times the time elapsed.
        """
        bucket = TokenBucket(rate, burst, now=0.0)
        now = 0.0
        taken = 0
        for gap in gaps:
            now += gap
            taken += bucket.take(now)
        self.assertLessEqual(taken, burst + rate * now + 1e-6)


class KeyedRateLimiterTests(SynchronousTestCase):
    """
    Tests of L{KeyedRateLimiter}.
    """

    def test_perKey(self) -> None:
        """
        Each key has its own bucket.
        """
        limiter: KeyedRateLimiter[str] = KeyedRateLimiter(rate=1.0, burst=1)
        self.assertTrue(limiter.allow("a", 0.0))
        self.assertFalse(limiter.allow("a", 0.0))
        self.assertTrue(limiter.allow("b", 0.0))

    def test_boundedKeys(self) -> None:
        """
        However many keys come, at most C{maxKeys} are remembered; buckets
        that are full again go first.
        """
        limiter: KeyedRateLimiter[int] = KeyedRateLimiter(
            rate=1.0, burst=2, maxKeys=100
        )
        for key in range(10_000):
            limiter.allow(key, key / 1000)
        self.assertLessEqual(len(limiter), 100)

    def test_busyKeyKeptWhenPruning(self) -> None:
        """
        When pruning, keys whose buckets are full again go and a key whose
        bucket is not is kept, so a flood of new keys does not reset an
        attacker's bucket.
        """
        limiter: KeyedRateLimiter[str] = KeyedRateLimiter(rate=1.0, burst=1, maxKeys=3)
        limiter.allow("a", 0.0)
        limiter.allow("b", 0.0)
        limiter.allow("busy", 5.0)
        limiter.allow("c", 5.5)
        self.assertEqual(len(limiter), 2)
        self.assertFalse(limiter.allow("busy", 5.5))


class AddressCounterTests(SynchronousTestCase):
    """
    Tests of L{AddressCounter}.
    """

    def test_limit(self) -> None:
        """
        A key holds at most the limit; a release frees a place; a key at
        zero is forgotten.
        """
        counter: AddressCounter[str] = AddressCounter(2)
        self.assertEqual([counter.acquire("a") for _ in range(3)], [True, True, False])
        counter.release("a")
        self.assertTrue(counter.acquire("a"))
        counter.release("a")
        counter.release("a")
        self.assertEqual((counter["a"], len(counter)), (0, 0))

    def test_noLimit(self) -> None:
        """
        A limit of 0 counts without limiting.
        """
        counter: AddressCounter[str] = AddressCounter(0)
        for _ in range(1000):
            self.assertTrue(counter.acquire("a"))
        self.assertEqual(counter["a"], 1000)

    def test_releaseUnknown(self) -> None:
        """
        Releasing a key never acquired leaves nothing behind.
        """
        counter: AddressCounter[str] = AddressCounter(1)
        counter.release("x")
        self.assertEqual(len(counter), 0)


class ExemptionsTests(SynchronousTestCase):
    """
    Tests of L{Exemptions}.
    """

    def test_networks(self) -> None:
        """
        Addresses in a listed network are exempt, others are not; IPv4
        addresses mapped into IPv6 count as IPv4.
        """
        exempt = Exemptions(["127.0.0.0/8", "2001:db8::/32"])
        self.assertIn("127.1.2.3", exempt)
        self.assertIn("::ffff:127.0.0.1", exempt)
        self.assertIn("2001:db8::1", exempt)
        self.assertNotIn("10.0.0.1", exempt)
        self.assertNotIn("not an address", exempt)
        self.assertTrue(exempt)

    def test_empty(self) -> None:
        """
        The default list exempts nothing.
        """
        self.assertNotIn("127.0.0.1", Exemptions())
        self.assertFalse(Exemptions())

    def test_badNetwork(self) -> None:
        """
        A string that is not a network raises L{ValueError}.
        """
        self.assertRaises(ValueError, Exemptions, ["nonsense"])


class TextTests(SynchronousTestCase):
    """
    Tests of L{hasControlCharacters} and L{safeText}.
    """

    def test_controlCharacters(self) -> None:
        """
        C0, DEL and C1 are control characters; printable text, spaces and
        non-Latin letters are not.
        """
        for bad in ("a\nb", "\x00", "\x1f", "\x7f", "\x80", "\x9f"):
            self.assertTrue(hasControlCharacters(bad), bad)
        for good in ("alice", "a b", "élodie", "名前", "\xa0"):
            self.assertFalse(hasControlCharacters(good), good)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=300))
    def test_safeTextOneLine(self, text: str) -> None:
        """
        Whatever the text, its safe form is one printable line of bounded
        length.
        """
        safe = safeText(text)
        self.assertTrue(safe.isprintable(), repr(safe))
        self.assertLessEqual(len(safe), 201 * 10)

    def test_safeTextForgedLine(self) -> None:
        """
        A newline meant to forge a log line is escaped.
        """
        self.assertEqual(safeText("x\n[gs1] FAKE"), "x\\n[gs1] FAKE")
        self.assertEqual(safeText("alice"), "alice")


class ThrottledLogTests(SynchronousTestCase):
    """
    Tests of L{ThrottledLog}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.log = ThrottledLog(Logger(), clock=self.clock, interval=10.0)

    def test_firstThenSummary(self) -> None:
        """
        The first event of a cause is written; the rest of its interval are
        counted and summed up once per interval while they keep coming;
        after a quiet interval the next event is written again.
        """
        with capturedLogs() as events:
            for i in range(5):
                self.log.warn("bad init", "bad init from {peer}", peer=f"p{i}")
            self.clock.advance(10)
            self.log.warn("bad init", "bad init from {peer}", peer="late")
            self.clock.advance(10)
            self.clock.advance(10)
            self.log.warn("bad init", "bad init from {peer}", peer="again")
        lines = [(e.get("peer"), e.get("count")) for e in events]
        self.assertEqual(lines, [("p0", None), (None, 4), (None, 1), ("again", None)])

    def test_loneEventLeavesNoTimer(self) -> None:
        """
        One event of a cause is written and schedules nothing.
        """
        self.log.warn("bad init", "bad init")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_causesApart(self) -> None:
        """
        Each cause has its own count.
        """
        with capturedLogs() as events:
            self.log.info("a", "a")
            self.log.info("b", "b")
            self.log.info("a", "a")
        self.assertEqual(len(events), 2)
        self.log.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
