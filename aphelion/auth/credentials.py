# -*- test-case-name: tests.test_auth -*-
"""
The ID as credentials, the identity it names, and the avatar ids that carry
an identity from a checker to the realm.

The client sends "the ID" in C{C2S.authenticate.id}: a string of at most
L{MAX_ID_BYTES} bytes of UTF-8, presented to a L{Portal<twisted.cred.portal.Portal>}
as L{PlayerIdCredentials}. Every checker reads it with L{idOf}, which refuses
an ID that holds a control character (C0, C1 or DEL: contract Part 6).

A checker fires with an avatar id in C{bytes}, as C{twisted.cred} expects,
and the avatar id carries the whole identity so that one stateless realm
serves every checker: it is the UTF-8 of the compact JSON object
C{{"attrs": {...}, "name": ..., "sub": PLAYERID}} (see L{encodeAvatarId} and
L{decodeAvatarId}).

Also here: the errors a checker fails with when it cannot decide
(L{CheckerBusy}, L{ReactorNotBound}), and L{DevChecker}, the checker of
development mode.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import Attribute, implementer

from aphelion.interfaces import IPlayer
from aphelion.limits import hasControlCharacters

__all__ = [
    "DEV_WARNING",
    "MAX_ID_BYTES",
    "AvatarId",
    "CheckerBusy",
    "DevChecker",
    "IPlayerIdCredentials",
    "PlayerIdCredentials",
    "PlayerIdentity",
    "ReactorNotBound",
    "attributesFrom",
    "checkPlayerId",
    "claimsOf",
    "compactJson",
    "decodeAvatarId",
    "encodeAvatarId",
    "idOf",
    "identityFromClaims",
]

MAX_ID_BYTES: Final = 1024
"""
The longest ID, in bytes of UTF-8, that any checker accepts (Part 1.6).
"""

DEV_WARNING: Final = "authentication in DEVELOPMENT mode: any ID is accepted"


AvatarId = bytes | tuple[()]
"""
What a checker fires with: an avatar id from L{encodeAvatarId}, or the
anonymous one.
"""


class ReactorNotBound(RuntimeError):
    """
    A checker that was made without a clock or a pool (as the C{--auth}
    plugins make them) was asked to check an ID before C{bindReactor} gave it
    a reactor. A mistake in the program, not a refused ID.
    """


class CheckerBusy(Exception):
    """
    The credential check was not run because too many are running already,
    or because a one-time ticket cannot be remembered now. Not a refused ID:
    the client is told to try again later, and it does not count as a try.
    """


class IPlayerIdCredentials(ICredentials):
    """
    The ID a client sent in C{C2S.authenticate.id}: an account's
    C{PLAYERID:SECRET}, a ticket, or (in development) a bare name.
    """

    id = Attribute("The ID, a L{str}, as the client sent it.")


@implementer(IPlayerIdCredentials)
class PlayerIdCredentials:
    """
    The ID a client sent, as credentials.

    Its C{repr} shows the ID's length only, so that it never reaches a log.

    :ivar id: the ID.
    """

    def __init__(self, id: str) -> None:
        self.id = id

    def __repr__(self) -> str:
        return f"<PlayerIdCredentials of {len(self.id)} characters>"


@implementer(IPlayer)
@dataclass(frozen=True)
class PlayerIdentity:
    """
    Who an authenticated player is.

    :ivar playerId: the identity the game knows the player by.
    :ivar name: the display name.
    :ivar attributes: game-defined facts about the player (team, rank...);
        a read-only copy of the mapping given.
    """

    playerId: str
    name: str
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))


def encodeAvatarId(identity: PlayerIdentity) -> bytes:
    """
    :return: the avatar id that carries C{identity} from a checker to
        L{PlayerRealm}: UTF-8 compact JSON with sorted keys.
    """
    return compactJson(claimsOf(identity)).encode("utf-8")


def decodeAvatarId(avatarId: bytes) -> PlayerIdentity:
    """
    :return: the identity that L{encodeAvatarId} encoded.
    :raises ValueError: if C{avatarId} is not such an encoding.
    """
    return identityFromClaims(json.loads(avatarId))


def checkPlayerId(playerId: str) -> None:
    """
    Check that C{playerId} can name an account: it is not empty, holds no
    colon (which ends the player id in C{PLAYERID:SECRET}) and no control
    character, and is printable.

    :raises ValueError: if it cannot.
    """
    if not playerId:
        raise ValueError("a player id may not be empty")
    if ":" in playerId:
        raise ValueError("a player id may not contain ':'")
    if hasControlCharacters(playerId):
        raise ValueError("a player id may not hold control characters")
    if not playerId.isprintable() or playerId.strip() != playerId:
        raise ValueError("a player id is printable, without surrounding spaces")
    if len(playerId.encode("utf-8")) > MAX_ID_BYTES // 2:
        raise ValueError(f"a player id is at most {MAX_ID_BYTES // 2} bytes")


def compactJson(value: object) -> str:
    """
    :return: C{value} as the compact JSON of avatar ids and tickets: sorted
        keys, no spaces, non-ASCII characters as they are.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def claimsOf(identity: PlayerIdentity) -> dict[str, Any]:
    """
    :return: the JSON object of C{identity}, as avatar ids and tickets carry
        it: C{sub}, C{name} and C{attrs}.
    """
    return {
        "sub": identity.playerId,
        "name": identity.name,
        "attrs": dict(identity.attributes),
    }


def attributesFrom(value: object) -> dict[str, str]:
    """
    :return: C{value}, a player's attributes read from JSON.
    :raises ValueError: if it is not an object of strings.
    """
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("attributes are an object of strings")
    return value


def identityFromClaims(claims: object) -> PlayerIdentity:
    """
    :return: the identity that the JSON object C{claims} (L{claimsOf})
        carries; C{name} defaults to C{sub}, C{attrs} to C{{}}.
    :raises ValueError: if C{claims} is not such an object.
    """
    if not isinstance(claims, dict):
        raise ValueError("not an object")
    playerId = claims.get("sub")
    if not isinstance(playerId, str) or not playerId:
        raise ValueError("no player id")
    name = claims.get("name", playerId)
    if not isinstance(name, str):
        raise ValueError("the name is not a string")
    return PlayerIdentity(playerId, name, attributesFrom(claims.get("attrs", {})))


def idOf(credentials: IPlayerIdCredentials) -> str:
    """
    :return: the ID of C{credentials}.
    :raises UnauthorizedLogin: if it is empty, not text, too long, or holds
        a control character.
    """
    idString = credentials.id
    if not isinstance(idString, str) or not idString:
        raise UnauthorizedLogin("empty ID")
    if hasControlCharacters(idString):
        # Such an ID could forge lines in a log or a terminal (Part 6).
        raise UnauthorizedLogin("the ID holds control characters")
    try:
        tooLong = (
            len(idString) > MAX_ID_BYTES or len(idString.encode("utf-8")) > MAX_ID_BYTES
        )
    except UnicodeEncodeError:
        raise UnauthorizedLogin("the ID is not valid text") from None
    if tooLong:
        raise UnauthorizedLogin(f"the ID is longer than {MAX_ID_BYTES} bytes")
    return idString


@implementer(ICredentialsChecker)
class DevChecker:
    """
    Development mode: any non-empty ID of at most 1024 bytes without control
    characters is accepted, and is both the player id and the display name.
    Logs L{DEV_WARNING} when made.
    """

    credentialInterfaces = (IPlayerIdCredentials,)
    _log = Logger()

    def __init__(self) -> None:
        self._log.warn(DEV_WARNING)

    def requestAvatarId(self, credentials: IPlayerIdCredentials) -> Deferred[AvatarId]:
        """
        :return: a L{Deferred} that fires with the avatar id of the player
            named by the ID, or fails with L{UnauthorizedLogin}.
        """
        try:
            idString = idOf(credentials)
        except UnauthorizedLogin as e:
            return fail(e)
        return succeed(encodeAvatarId(PlayerIdentity(idString, idString)))
