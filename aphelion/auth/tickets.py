# -*- test-case-name: tests.test_auth -*-
"""
Tickets: IDs signed by a login website with a secret it shares with the
AuthProxy, checked by L{TicketChecker}.

A ticket is three dot-separated parts::

    v1.<payload>.<mac>

    payload = base64url(UTF-8 JSON {"sub": PLAYERID, "name": DISPLAY_NAME,
                                    "exp": UNIX_SECONDS, "iat": UNIX_SECONDS,
                                    "jti": TICKET_ID, "attrs": {KEY: VALUE}})
    mac     = base64url(HMAC-SHA256(key=SECRET, message=ASCII("v1." + payload)))

base64url is RFC 4648 section 5; padding is optional on both parts (L{mintTicket}
writes none). C{sub} is required, and holds no control character; C{name}
defaults to C{sub}; C{attrs} (string values only) defaults to C{{}}; C{exp}
is required, and the ticket is good while the checker's clock reads less
than it. C{iat} (when it was issued) is optional. A ticket lives at most the
checker's maximum lifetime (24 hours unless configured), whatever it says: one
whose C{exp} is further than that from the checker's clock, or from its own
C{iat}, is refused. C{jti} (a unique id of the ticket, a non-empty string) is
optional, unless the checker takes one-time tickets: then a ticket without one
is refused, and each one is accepted once (it is remembered until its C{exp},
in an L{IReplayCache}). SECRET is the secret file's bytes with surrounding
whitespace removed, used as they are (a hex or base64 text is not decoded). A
login website in Node.js mints one with::

    const iat = Math.floor(Date.now() / 1000), exp = iat + ttl;
    const jti = crypto.randomBytes(16).toString("base64url");
    const payload = Buffer.from(JSON.stringify({sub, name, exp, iat, jti}))
                          .toString("base64url");
    const mac = crypto.createHmac("sha256", secret).update("v1." + payload)
                      .digest("base64url");
    const ticket = `v1.${payload}.${mac}`;
"""

from __future__ import annotations

import base64
import binascii
import heapq
import hmac
import json
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from aphelion.auth.credentials import (
    MAX_ID_BYTES,
    AvatarId,
    CheckerBusy,
    IPlayerIdCredentials,
    PlayerIdentity,
    ReactorNotBound,
    claimsOf,
    compactJson,
    encodeAvatarId,
    identityFromClaims,
    idOf,
)
from aphelion.interfaces import IReactorUser
from aphelion.limits import hasControlCharacters, safeText

__all__ = [
    "DEFAULT_MAX_REMEMBERED",
    "DEFAULT_MAX_TICKET_LIFETIME",
    "IReplayCache",
    "MemoryReplayCache",
    "TicketChecker",
    "mintTicket",
    "verifyTicket",
]

DEFAULT_MAX_TICKET_LIFETIME: Final = 86_400.0
"""
The longest a ticket may live, in seconds (Part 6: 24 hours), whatever its
C{exp} says.
"""

DEFAULT_MAX_REMEMBERED: Final = 100_000
"""
The most ticket ids a L{MemoryReplayCache} remembers at once.
"""

_TICKET_VERSION: Final = "v1"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _ticketMac(secret: bytes, signed: bytes) -> bytes:
    return _b64encode(hmac.digest(secret, signed, "sha256")).encode("ascii")


def mintTicket(
    secret: bytes,
    playerId: str,
    name: str,
    ttl: float,
    now: float,
    attributes: Mapping[str, str] | None = None,
    ticketId: str | None = None,
) -> str:
    """
    Make a ticket (format in the module docstring) that L{TicketChecker} accepts
    for C{ttl} seconds from the start of the current second: its C{iat} is
    C{now} rounded down to a whole second, and its C{exp} is C{iat} plus
    C{ttl} rounded up, so that its lifetime C{exp - iat} is C{ttl} rounded
    up and never more.

    :param ticketId: its C{jti}, for checkers of one-time tickets; 22 random
        characters when L{None}.
    :raises ValueError: for an empty secret, player id or ticket id, a player
        id with control characters, a C{ttl} that is not positive, or a
        ticket that would be longer than L{MAX_ID_BYTES}.
    """
    if not secret:
        raise ValueError("the ticket secret is empty")
    if not playerId:
        raise ValueError("the player id is empty")
    if hasControlCharacters(playerId):
        raise ValueError("the player id holds control characters")
    if not ttl > 0:
        raise ValueError("the time to live is positive")
    if ticketId is None:
        ticketId = secrets.token_urlsafe(16)
    elif not ticketId:
        raise ValueError("the ticket id is empty")
    claims = claimsOf(PlayerIdentity(playerId, name, attributes or {}))
    issued = math.floor(now)
    claims.update(iat=issued, exp=issued + math.ceil(ttl), jti=ticketId)
    signed = f"{_TICKET_VERSION}.{_b64encode(compactJson(claims).encode('utf-8'))}"
    ticket = f"{signed}.{_ticketMac(secret, signed.encode('ascii')).decode('ascii')}"
    if len(ticket) > MAX_ID_BYTES:
        raise ValueError(f"the ticket is longer than {MAX_ID_BYTES} bytes")
    return ticket


@dataclass(frozen=True)
class _Ticket:
    """
    What a good ticket says.

    :ivar identity: the player's identity.
    :ivar expires: its C{exp}.
    :ivar ticketId: its C{jti}, if it has one.
    """

    identity: PlayerIdentity
    expires: float
    ticketId: str | None


def _timeClaim(claims: Mapping[str, object], key: str) -> float | None:
    """
    :return: the claim C{key}, a time in Unix seconds, or L{None} if absent.
    :raises ValueError: if it is not a finite number.
    :raises OverflowError: if it is an integer too large for a float.
    """
    if key not in claims:
        return None
    value = claims[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} is not a number")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{key} is not finite")
    return seconds


def _readTicket(secret: bytes, ticket: str, now: float, maxLifetime: float) -> _Ticket:
    """
    Check a ticket's MAC (in constant time), then its claims, expiry and
    lifetime.

    :raises UnauthorizedLogin: for any ticket that is not good at C{now}.
    """
    if len(ticket) > MAX_ID_BYTES:
        raise UnauthorizedLogin("bad ticket")
    signed, _, mac = ticket.rpartition(".")
    version, _, payload = signed.partition(".")
    if version != _TICKET_VERSION or not payload:
        raise UnauthorizedLogin("bad ticket")
    try:
        signedBytes = signed.encode("ascii")
        macBytes = mac.rstrip("=").encode("ascii")
    except UnicodeEncodeError:
        raise UnauthorizedLogin("bad ticket") from None
    if not hmac.compare_digest(_ticketMac(secret, signedBytes), macBytes):
        raise UnauthorizedLogin("bad ticket")
    try:
        claims = json.loads(_b64decode(payload))
        identity = identityFromClaims(claims)
        expires = _timeClaim(claims, "exp")
        issued = _timeClaim(claims, "iat")
        ticketId = claims.get("jti")
        if expires is None:
            raise ValueError("no exp")
        if "jti" in claims and (not isinstance(ticketId, str) or not ticketId):
            raise ValueError("jti is not a non-empty string")
    except (ValueError, KeyError, binascii.Error, RecursionError, OverflowError):
        raise UnauthorizedLogin("bad ticket") from None
    if hasControlCharacters(identity.playerId):
        raise UnauthorizedLogin("control characters in the player id")
    if not now < expires:
        raise UnauthorizedLogin("ticket expired")
    if expires - now > maxLifetime or (
        issued is not None and expires - issued > maxLifetime
    ):
        raise UnauthorizedLogin("ticket lifetime too long")
    return _Ticket(identity, expires, ticketId)


def verifyTicket(
    secret: bytes,
    ticket: str,
    now: float,
    maxLifetime: float = DEFAULT_MAX_TICKET_LIFETIME,
) -> PlayerIdentity:
    """
    Check a ticket's MAC (in constant time), then its claims, its expiry and
    its lifetime: a ticket whose C{exp} is further than C{maxLifetime}
    seconds from C{now}, or from its own C{iat}, is refused. (Whether it was
    used before is for L{TicketChecker} to tell.)

    :return: the identity it carries.
    :raises UnauthorizedLogin: for any ticket that is not good at C{now}.
    """
    return _readTicket(secret, ticket, now, maxLifetime).identity


class IReplayCache(Interface):
    """
    The ids (C{jti}) of the one-time tickets used already, each remembered
    until its ticket expires. L{MemoryReplayCache} serves one process; a
    shared store serves a cluster of AuthProxies (in Redis, one C{SET jti 1
    NX EXAT exp} per use).
    """

    def markUsed(ticketId: str, expires: float) -> Deferred[bool]:
        """
        Record a use of the ticket C{ticketId}, which expires at C{expires}
        (Unix seconds), and remember it until then.

        :return: a L{Deferred} that fires with C{True} for the first use of
            C{ticketId}, C{False} for a later one; or fails with
            L{CheckerBusy} when it cannot be remembered now.
        """


@implementer(IReplayCache)
class MemoryReplayCache:
    """
    An L{IReplayCache} in memory, for one process. Its memory is bounded:
    expired ids are forgotten as time passes, and it remembers at most
    C{maxEntries} at once. When that many are unexpired, a new ticket is
    refused with L{CheckerBusy} (logged once until there is room again),
    rather than forgetting an id early and letting its ticket be used twice.

    :ivar maxEntries: the most ids remembered at once.
    """

    _log = Logger()

    def __init__(
        self, clock: IReactorTime, maxEntries: int = DEFAULT_MAX_REMEMBERED
    ) -> None:
        """
        :param clock: the clock whose C{seconds()} tell which ids expired.
        """
        if maxEntries < 1:
            raise ValueError("a replay cache remembers at least 1 id")
        self._clock = clock
        self.maxEntries = maxEntries
        self._expiries: dict[str, float] = {}
        # Each remembered id once, soonest expiry first.
        self._queue: list[tuple[float, str]] = []
        self._full = False

    def __len__(self) -> int:
        return len(self._expiries)

    def _forgetExpired(self, now: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, ticketId = heapq.heappop(queue)
            del self._expiries[ticketId]

    def markUsed(self, ticketId: str, expires: float) -> Deferred[bool]:
        """
        Record a use of C{ticketId} until C{expires}. A ticket expired
        already is not remembered: it cannot be used again anyway.

        :return: a L{Deferred} that has fired with C{True} for a first use,
            with C{False} for a later one, or failed with L{CheckerBusy} if
            C{maxEntries} unexpired ids are remembered.
        """
        now = self._clock.seconds()
        self._forgetExpired(now)
        if ticketId in self._expiries:
            return succeed(False)
        if expires <= now:
            return succeed(True)
        if len(self._expiries) >= self.maxEntries:
            if not self._full:
                self._full = True
                self._log.warn(
                    "{count} one-time tickets are remembered, the most allowed: "
                    "new ones are answered busy until some expire",
                    count=len(self._expiries),
                )
            return fail(CheckerBusy("too many one-time tickets remembered"))
        self._full = False
        self._expiries[ticketId] = expires
        heapq.heappush(self._queue, (expires, ticketId))
        return succeed(True)


_ReplayCacheSource = IReplayCache | Callable[[IReactorTime], IReplayCache]


@implementer(ICredentialsChecker, IReactorUser)
class TicketChecker:
    """
    Tickets signed with HMAC-SHA256 under a shared secret, with an expiry
    (format in the module docstring), living at most C{maxLifetime} seconds,
    and accepted once each when the checker has an L{IReplayCache}.

    :ivar maxLifetime: the longest a ticket may live, in seconds: one whose
        C{exp} is further than this from the clock, or from its C{iat}, is
        refused.
    """

    credentialInterfaces = (IPlayerIdCredentials,)
    _log = Logger()

    def __init__(
        self,
        secret: bytes,
        clock: IReactorTime | None = None,
        *,
        maxLifetime: float = DEFAULT_MAX_TICKET_LIFETIME,
        replayCache: _ReplayCacheSource | None = None,
    ) -> None:
        """
        :param secret: the HMAC key, shared with whatever mints tickets.
        :param clock: the clock whose C{seconds()} expiries are checked
            against; when L{None}, the reactor that L{bindReactor} gives.
        :param maxLifetime: the longest a ticket may live, in seconds.
        :param replayCache: for one-time tickets, where their ids are
            remembered, or a callable that makes it with the checker's clock
            on the first login (as C{functools.partial(MemoryReplayCache,
            maxEntries=N)} does); L{None} accepts a ticket until it expires.
        """
        if not secret:
            raise ValueError("the ticket secret is empty")
        if not (maxLifetime > 0 and math.isfinite(maxLifetime)):
            raise ValueError("the maximum lifetime is a positive number")
        self._secret = secret
        self._clock = clock
        self._boundClock: IReactorTime | None = None
        self.maxLifetime = maxLifetime
        self._replayCache: IReplayCache | None = None
        self._makeReplayCache: Callable[[IReactorTime], IReplayCache] | None = None
        if IReplayCache.providedBy(replayCache):
            self._replayCache = replayCache
        elif replayCache is not None:
            self._makeReplayCache = replayCache

    @property
    def oneTime(self) -> bool:
        """
        Whether each ticket is accepted once only (and a ticket without a
        C{jti} never).
        """
        return self._replayCache is not None or self._makeReplayCache is not None

    def bindReactor(self, reactor: IReactorTime) -> None:
        """
        Called by the service with the reactor before the first login: it is
        the clock expiries are checked against, unless one was given when
        the checker was made.
        """
        self._boundClock = reactor

    def _replayCacheOn(self, clock: IReactorTime) -> IReplayCache:
        if self._replayCache is None:
            assert self._makeReplayCache is not None
            self._replayCache = self._makeReplayCache(clock)
        return self._replayCache

    def requestAvatarId(self, credentials: IPlayerIdCredentials) -> Deferred[AvatarId]:
        """
        :return: a L{Deferred} that fires with the avatar id of the player
            the ticket names, or fails with L{UnauthorizedLogin}, with
            L{CheckerBusy} when a one-time ticket cannot be remembered now,
            or with L{ReactorNotBound} when it has no clock yet.
        """
        clock = self._clock if self._clock is not None else self._boundClock
        if clock is None:
            return fail(
                ReactorNotBound(
                    "TicketChecker.bindReactor was not called before the first login"
                )
            )
        try:
            ticket = _readTicket(
                self._secret, idOf(credentials), clock.seconds(), self.maxLifetime
            )
            if self.oneTime and ticket.ticketId is None:
                raise UnauthorizedLogin("one-time ticket without jti")
        except UnauthorizedLogin as e:
            self._log.info("ticket refused: {reason}", reason=str(e))
            return fail(e)
        if ticket.ticketId is None or not self.oneTime:
            return succeed(encodeAvatarId(ticket.identity))
        d = self._replayCacheOn(clock).markUsed(ticket.ticketId, ticket.expires)
        return d.addCallback(self._used, ticket.identity)

    def _used(self, first: bool, identity: PlayerIdentity) -> AvatarId:
        if not first:
            self._log.info(
                "ticket refused for {playerId}: ticket used already",
                playerId=safeText(identity.playerId),
            )
            raise UnauthorizedLogin("ticket used already")
        return encodeAvatarId(identity)
