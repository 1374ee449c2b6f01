# -*- test-case-name: tests.test_auth -*-
"""
Validating the ID (contract Part 3) with C{twisted.cred}: L{PlayerRealm}
yields the identity a checker's avatar id carries, and L{authenticate}
presents an ID to a L{Portal} and fires with the player's identity.
L{BoundedAuthenticator} bounds the checks in flight at once: one more fails
at once with L{CheckerBusy<aphelion.auth.credentials.CheckerBusy>}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail, maybeDeferred
from zope.interface import Interface, implementer

from aphelion.auth.credentials import (
    AvatarId,
    CheckerBusy,
    PlayerIdCredentials,
    PlayerIdentity,
    decodeAvatarId,
    idOf,
)
from aphelion.interfaces import IPlayer

__all__ = [
    "DEFAULT_CHECKER_LIMIT",
    "BoundedAuthenticator",
    "LoginResult",
    "PlayerRealm",
    "authenticate",
]

DEFAULT_CHECKER_LIMIT: Final = 64
"""
The most credential checks that L{BoundedAuthenticator} lets run at once
(Part 6).
"""

LoginResult = tuple[type[Interface], object, Callable[[], None]]
"""
What a realm returns: the interface, the avatar and the logout callable.
"""
_T = TypeVar("_T")


@implementer(IRealm)
class PlayerRealm:
    """
    Yields the L{PlayerIdentity} that an avatar id from any of L{aphelion.auth}'s
    checkers carries, for L{IPlayer}.
    """

    def requestAvatar(
        self, avatarId: AvatarId, mind: object, *interfaces: type[Interface]
    ) -> LoginResult:
        """
        :return: C{(IPlayer, identity, logout)}; logging out does nothing.
        :raises NotImplementedError: if L{IPlayer} is not asked for.
        :raises UnauthorizedLogin: for the anonymous avatar id.
        """
        if IPlayer not in interfaces:
            raise NotImplementedError("PlayerRealm only provides IPlayer")
        if not isinstance(avatarId, bytes):
            raise UnauthorizedLogin("anonymous players are not supported")
        return IPlayer, decodeAvatarId(avatarId), _noLogout


def _noLogout() -> None:
    pass


def authenticate(portal: Portal, idString: str) -> Deferred[PlayerIdentity]:
    """
    Validate the ID a client sent (Part 3).

    :return: a L{Deferred} that fires with the player's identity, or fails
        with L{UnauthorizedLogin} for a bad ID, with
        L{UnhandledCredentials<twisted.cred.error.UnhandledCredentials>} when
        the portal has no checker for IDs, or with another error when a
        checker cannot decide (a database that is down).
    """
    credentials = PlayerIdCredentials(idString)
    try:
        idOf(credentials)
    except UnauthorizedLogin as e:
        return fail(e)
    d = portal.login(credentials, None, IPlayer)
    return d.addCallback(_loggedIn)


def _loggedIn(result: LoginResult) -> PlayerIdentity:
    _, avatar, logout = result
    # An identity is a value: nothing stays attached to it.
    logout()
    if isinstance(avatar, PlayerIdentity):
        return avatar
    player = IPlayer(avatar)
    return PlayerIdentity(player.playerId, player.name, player.attributes)


class BoundedAuthenticator:
    """
    Bounds the credential checks in flight at once (contract Part 6: 64).
    Wraps an authenticator, such as C{functools.partial(authenticate,
    portal)}, and is called the same way; a call beyond the limit fails at
    once with L{CheckerBusy}, without calling the wrapped authenticator. A
    check's slot is free again as soon as it ends, however it ends, before
    the caller's callbacks run.

    :ivar limit: the most checks in flight at once.
    """

    def __init__(
        self,
        authenticator: Callable[[str], Deferred[PlayerIdentity]],
        limit: int = DEFAULT_CHECKER_LIMIT,
    ) -> None:
        if limit < 1:
            raise ValueError("the limit is at least 1")
        self._authenticator = authenticator
        self.limit = limit
        self._inFlight = 0

    @property
    def inFlight(self) -> int:
        """
        The checks begun and not ended.
        """
        return self._inFlight

    def __call__(self, idString: str) -> Deferred[PlayerIdentity]:
        """
        Validate an ID, if fewer than L{limit} checks are in flight.

        :return: what the wrapped authenticator returns, or a L{Deferred}
            failed with L{CheckerBusy}.
        """
        if self._inFlight >= self.limit:
            return fail(CheckerBusy(f"{self.limit} credential checks in flight"))
        self._inFlight += 1
        d: Deferred[PlayerIdentity] = maybeDeferred(self._authenticator, idString)
        return d.addBoth(self._ended)

    def _ended(self, result: _T) -> _T:
        self._inFlight -= 1
        return result
