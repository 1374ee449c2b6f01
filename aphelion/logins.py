# -*- test-case-name: tests.test_gateway -*-
"""
The limits of Part 6 on logins, decided before the checker runs: credential
checks of one client address at once, and login tries per minute per client
address and per account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from aphelion.limits import AddressCounter, Exemptions, KeyedRateLimiter, safeText

__all__ = ["BUSY", "THROTTLED", "LoginThrottle", "accountOf"]

#: L{LoginThrottle.begin}: the address's earlier checks still run.
BUSY = "busy"
#: L{LoginThrottle.begin}: too many tries from the address or for the account.
THROTTLED = "throttled"


def accountOf(playerId: str) -> str:
    """
    The part of an ID that names the account, for the per-ID login throttle
    and for logs: what comes before the first colon (C{alice} of
    C{alice:SECRET}), or the whole ID.
    """
    return playerId.partition(":")[0]


class LoginThrottle:
    """
    Lets a login reach the checker, or says why not.

    :param clock: the clock of the token buckets; without one, tries are not
        limited (checks at once still are).
    :param loginsPerMinute: tries per minute per client address (outside
        C{exempt}) and per account.
    :param checksPerAddress: checks of one client address (outside C{exempt})
        running at once; 0 is no limit.
    :param warn: C{warn(cause, format, **fields)}, the throttled log.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime | None,
        loginsPerMinute: float,
        checksPerAddress: int,
        exempt: Exemptions,
        warn: Callable[..., None],
    ) -> None:
        self._clock = clock
        self._exempt = exempt
        self._warn = warn
        self._checking: AddressCounter[str] = AddressCounter(checksPerAddress)
        rate = loginsPerMinute / 60.0
        self._addressLogins: KeyedRateLimiter[str] = KeyedRateLimiter(
            rate, loginsPerMinute
        )
        self._accountLogins: KeyedRateLimiter[int] = KeyedRateLimiter(
            rate, loginsPerMinute
        )

    @property
    def loginsPerMinute(self) -> float:
        """
        Tries per minute per client address and per account; set by a
        reload, for the addresses and accounts first seen from then on.
        """
        return self._addressLogins.burst

    @loginsPerMinute.setter
    def loginsPerMinute(self, loginsPerMinute: float) -> None:
        for limiter in (self._addressLogins, self._accountLogins):
            limiter.rate = loginsPerMinute / 60.0
            limiter.burst = loginsPerMinute

    @property
    def checksPerAddress(self) -> int:
        """
        Checks of one client address running at once, 0 for no limit;
        set by a reload.
        """
        return self._checking.limit

    @checksPerAddress.setter
    def checksPerAddress(self, limit: int) -> None:
        self._checking.limit = limit

    def begin(self, address: str, playerId: str, hint: str) -> str | None:
        """
        A login of C{playerId} from C{address} (for the session C{hint})
        wants the checker.

        :return: L{None} when it may run (call L{end} when it is over),
            L{BUSY} or L{THROTTLED}.
        """
        counted = address not in self._exempt
        if counted and not self._checking.acquire(address):
            # Its earlier checks still run: one address must not fill the
            # checker's pool and make everyone else wait (Part 6).
            return BUSY
        if not self._allowed(address, playerId, hint):
            if counted:
                self._checking.release(address)
            return THROTTLED
        return None

    def end(self, result: Any, address: str) -> Any:
        """
        A check that L{begin} let run is over: free its place; returns
        C{result}, to sit in a L{Deferred}'s callbacks.
        """
        if address not in self._exempt:
            self._checking.release(address)
        return result

    def _allowed(self, address: str, playerId: str, hint: str) -> bool:
        """
        Take a login try from the client address's and the account's token
        buckets (Part 6).
        """
        if self._clock is None:
            return True
        now = self._clock.seconds()
        account = accountOf(playerId)
        if address not in self._exempt and not self._addressLogins.allow(address, now):
            throttled = "address"
        elif not self._accountLogins.allow(hash(account), now):
            throttled = "account"
        else:
            return True
        self._warn(
            "login throttled",
            "session {hint}: too many logins from {peer} or for {account} "
            "(throttled by {throttled}); if a reverse proxy is in front, it "
            "needs --trust-forwarded-for or the PROXY protocol, or --exempt",
            hint=hint,
            peer=address,
            account=safeText(account, 64),
            throttled=throttled,
        )
        return False
