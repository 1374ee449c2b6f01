# -*- test-case-name: tests.test_limits -*-
"""
Sans-IO pieces of the limits against abuse (Part 6): token buckets, counters
per client address, the exempt list and safe text for logs.

Nothing here reads a clock or imports Twisted: callers pass C{now} (from
their injected clock's C{seconds()}).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from typing import Generic, TypeVar

__all__ = [
    "AddressCounter",
    "Exemptions",
    "KeyedRateLimiter",
    "TokenBucket",
    "hasControlCharacters",
    "normalAddress",
    "safeText",
]

K = TypeVar("K")


class TokenBucket:
    """
    A token bucket: C{burst} tokens at most, refilled at C{rate} per second.

    :ivar rate: tokens added per second.
    :ivar burst: the most tokens the bucket holds (and its starting level).
    """

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._stamp = now

    def take(self, now: float, tokens: float = 1.0) -> bool:
        """
        Take C{tokens} if the bucket has them.

        :return: whether they were taken (C{False}: the rate is exceeded).
        """
        self._refill(now)
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def full(self, now: float) -> bool:
        """
        :return: whether the bucket is full again at C{now} (it can be
            forgotten: a new one would be the same).
        """
        self._refill(now)
        return self._tokens >= self.burst


class KeyedRateLimiter(Generic[K]):
    """
    One L{TokenBucket} per key (a client address, a player ID), with the
    number of keys remembered bounded: buckets that are full again are
    forgotten first, then the least recently used.

    :ivar rate: tokens per second of each bucket.
    :ivar burst: the size of each bucket.
    :ivar maxKeys: the most keys remembered at once.
    """

    def __init__(self, rate: float, burst: float, maxKeys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.maxKeys = maxKeys
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: K, now: float) -> bool:
        """
        Take one token from C{key}'s bucket.

        :return: whether C{key} is within its rate.
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.maxKeys:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        while len(self._buckets) >= self.maxKeys:
            self._buckets.popitem(last=False)


class AddressCounter(Generic[K]):
    """
    Counts what each key holds (open connections, sessions) against a limit.
    A key whose count drops to zero is forgotten, so memory follows what is
    open.

    :ivar limit: the most one key may hold, or 0 for no limit.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def __getitem__(self, key: K) -> int:
        return self._counts.get(key, 0)

    def acquire(self, key: K) -> bool:
        """
        Count one more for C{key}, unless it holds its limit already.

        :return: whether it was counted.
        """
        count = self._counts.get(key, 0)
        if self.limit and count >= self.limit:
            return False
        self._counts[key] = count + 1
        return True

    def release(self, key: K) -> None:
        """
        Count one less for C{key} (what L{acquire} counted has closed).
        """
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)


class Exemptions:
    """
    The exempt list (C{--exempt CIDR}): addresses the per-address limits do
    not apply to.
    """

    def __init__(self, networks: Iterable[str] = ()) -> None:
        """
        :param networks: CIDR strings such as C{127.0.0.0/8} or C{::1/128}.
        :raises ValueError: for a string that is not a network.
        """
        self.networks = tuple(
            ipaddress.ip_network(n.strip(), strict=False) for n in networks
        )
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        if not self.networks or not isinstance(address, str):
            return False
        known = self._cache.get(address)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            exempt = False
        else:
            mapped = getattr(ip, "ipv4_mapped", None)
            if mapped is not None:
                ip = mapped
            exempt = any(ip in network for network in self.networks)
        if len(self._cache) < 4096:
            self._cache[address] = exempt
        return exempt


def normalAddress(text: str) -> str:
    """
    :return: C{text} as one spelling of its IP address (an IPv4-mapped IPv6
        address as IPv4, brackets removed), or cut to a bounded length if it
        is none: the key of every per-address limit.
    """
    # Every connection and every login asks, mostly for the same few
    # addresses: short ones are remembered (a bounded cache).
    if len(text) <= 64:
        return _normalShortAddress(text)
    return _normalAddress(text)


def _normalAddress(text: str) -> str:
    text = text.strip()
    try:
        ip = ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return text[:64]
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


_normalShortAddress = lru_cache(maxsize=4096)(_normalAddress)


def hasControlCharacters(text: str) -> bool:
    """
    :return: whether C{text} holds a C0 or C1 control character or DEL
        (such an ID is refused: Part 6).
    """
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)


def safeText(text: str, limit: int = 200) -> str:
    """
    A form of untrusted text (a player ID, a reason) safe to put in a log
    line: control characters, backslashes and quotes escaped as Python
    would, cut to C{limit} characters with an ellipsis.
    """
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable() and "\\" not in text:
        return text
    return text.encode("unicode_escape").decode("ascii")
