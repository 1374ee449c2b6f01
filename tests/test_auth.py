# -*- test-case-name: tests.test_auth -*-
"""
Tests of L{aphelion.auth} and of the C{--auth} plugins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.cred.checkers import ANONYMOUS, ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import IRealm, Portal
from twisted.cred.strcred import (
    AuthOptionMixin,
    ICheckerFactory,
    InvalidAuthArgumentString,
    findCheckerFactory,
    makeChecker,
)
from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorCore
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent
from twisted.plugin import IPlugin
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import Interface, implementer
from zope.interface.verify import verifyObject

from aphelion.accounts import addAccount
from aphelion.auth import (
    ACCOUNTS_SCHEMA,
    DEFAULT_CHECKER_LIMIT,
    DEFAULT_MAX_REMEMBERED,
    DEFAULT_MAX_TICKET_LIFETIME,
    DEV_WARNING,
    MAX_ID_BYTES,
    SCHEMA_VERSION,
    AccountsPool,
    BoundedAuthenticator,
    CheckerBusy,
    DatabaseChecker,
    DatabaseUnavailable,
    DevChecker,
    DevCheckerFactory,
    IPlayer,
    IPlayerIdCredentials,
    IReplayCache,
    MemoryReplayCache,
    PlayerIdCredentials,
    PlayerIdentity,
    PlayerRealm,
    PostgreSQLCheckerFactory,
    ReactorNotBound,
    SchemaTooNew,
    SQLiteCheckerFactory,
    TicketChecker,
    TicketCheckerFactory,
    authenticate,
    decodeAvatarId,
    encodeAvatarId,
    ensureSchema,
    hashSecret,
    mintTicket,
    readSecretFile,
    redactDsn,
    schemaVersion,
    sqlPlaceholder,
    upgradeSchema,
    verifySecret,
    verifyTicket,
)

if TYPE_CHECKING:
    _TestCaseBase = SynchronousTestCase
else:
    _TestCaseBase = object

SECRET = b"0123456789abcdef0123456789abcdef"
ITERATIONS = 1000

controlCharacters = st.one_of(
    st.integers(0x00, 0x1F), st.just(0x7F), st.integers(0x80, 0x9F)
).map(chr)
"""
Every control character of Part 6: C0, DEL and C1.
"""


def idOf(idString: str) -> PlayerIdCredentials:
    """
    :return: credentials for C{idString}.
    """
    return PlayerIdCredentials(idString)


@contextmanager
def noSecretsLogged(
    case: SynchronousTestCase, *secrets: str
) -> Iterator[Sequence[LogEvent]]:
    """
    Capture the log events of the block and fail C{case} if any of them, in
    its text or its fields, holds one of C{secrets}.
    """
    with capturedLogs() as events:
        yield events
    for event in events:
        text = formatEvent(event) + repr(
            {k: v for k, v in event.items() if k != "log_logger"}
        )
        for secret in secrets:
            case.assertNotIn(secret, text)


def addTestAccounts(connection: Any, dbapi: ModuleType = sqlite3) -> None:
    """
    Add C{alice} (display name C{Alice}, attribute C{team=red}), whose
    secret C{hunter2:with:colons} holds colons, and C{bob} (C{Bob},
    C{builder}), with cheap hashes, making the schema if need be.

    :param connection: a DB-API connection, or an adbapi one.
    :param dbapi: its DB-API module.
    """
    addAccount(
        connection,
        "alice",
        "Alice",
        "hunter2:with:colons",
        1000.0,
        {"team": "red"},
        dbapi=dbapi,
        iterations=ITERATIONS,
    )
    addAccount(
        connection, "bob", "Bob", "builder", 1000.0, dbapi=dbapi, iterations=ITERATIONS
    )


def createAccounts(path: str) -> None:
    """
    Create an SQLite accounts database at C{path} with the accounts of
    L{addTestAccounts}.
    """
    connection = sqlite3.connect(path)
    try:
        addTestAccounts(connection)
    finally:
        connection.close()


def writeFile(case: SynchronousTestCase, content: bytes) -> str:
    """
    :return: the path of a new file that holds C{content}.
    """
    path: str = case.mktemp()
    with open(path, "wb") as f:
        f.write(content)
    return path


class CheckerTestsMixin:
    """
    Behaviour of every checker of this module on IDs that no checker may
    accept. Mix into a test case that sets C{self.checker}.
    """

    checker: ICredentialsChecker
    validId: str

    def refused(self, idString: str) -> UnauthorizedLogin:
        """
        :return: the L{UnauthorizedLogin} that C{idString} is refused with,
            synchronously.
        """
        d = self.checker.requestAvatarId(idOf(idString))
        failure = self.failureResultOf(d, UnauthorizedLogin)  # type: ignore[attr-defined]
        error: UnauthorizedLogin = failure.value
        return error

    def test_interface(self) -> None:
        """
        The checker provides L{ICredentialsChecker} for L{IPlayerIdCredentials}.
        """
        self.assertTrue(verifyObject(ICredentialsChecker, self.checker))  # type: ignore[attr-defined]
        self.assertIn(IPlayerIdCredentials, self.checker.credentialInterfaces)  # type: ignore[attr-defined]

    def test_empty(self) -> None:
        """
        An empty ID is refused.
        """
        self.refused("")

    def test_tooLong(self) -> None:
        """
        An ID longer than 1024 bytes of UTF-8 is refused, whether it is long in
        characters or only in bytes.
        """
        self.refused("a:" + "x" * MAX_ID_BYTES)
        self.refused("a:" + "\N{EURO SIGN}" * 400)

    def test_notText(self) -> None:
        """
        An ID that cannot be encoded in UTF-8 is refused.
        """
        self.refused("a:\udc80")

    # One test for every checker class: what one class's run saves in the
    # example database (a position, a character) is valid for the others.
    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.differing_executors],
    )
    @given(st.data())
    def test_controlCharacters(self, data: st.DataObject) -> None:
        """
        A good ID with a control character (C0, C1 or DEL) inserted anywhere
        is refused, for holding it, and the ID is not logged.
        """
        position = data.draw(st.integers(0, len(self.validId)), "position")
        character = data.draw(controlCharacters, "character")
        idString = self.validId[:position] + character + self.validId[position:]
        with capturedLogs() as events:
            error = self.refused(idString)
        self.assertEqual(str(error), "the ID holds control characters")  # type: ignore[attr-defined]
        for event in events:
            self.assertNotIn(character, formatEvent(event))  # type: ignore[attr-defined]


class CredentialsTests(SynchronousTestCase):
    """
    Tests of L{PlayerIdCredentials}.
    """

    def test_interface(self) -> None:
        """
        The credentials provide L{IPlayerIdCredentials} and carry the ID.
        """
        credentials = PlayerIdCredentials("alice:hunter2")
        self.assertTrue(verifyObject(IPlayerIdCredentials, credentials))
        self.assertEqual(credentials.id, "alice:hunter2")

    def test_reprHidesId(self) -> None:
        """
        The C{repr} of the credentials shows the ID's length, not the ID.
        """
        self.assertEqual(
            repr(PlayerIdCredentials("alice:hunter2")),
            "<PlayerIdCredentials of 13 characters>",
        )


class PlayerIdentityTests(SynchronousTestCase):
    """
    Tests of L{PlayerIdentity} and of avatar ids.
    """

    def test_interface(self) -> None:
        """
        An identity provides L{IPlayer}.
        """
        self.assertTrue(verifyObject(IPlayer, PlayerIdentity("alice", "Alice")))

    def test_attributesImmutable(self) -> None:
        """
        The attributes are a read-only copy of the mapping given.
        """
        given = {"team": "red"}
        identity = PlayerIdentity("alice", "Alice", given)
        given["team"] = "blue"
        self.assertEqual(identity.attributes, {"team": "red"})
        with self.assertRaises(TypeError):
            identity.attributes["team"] = "green"  # type: ignore[index]

    def test_valueObject(self) -> None:
        """
        Identities are equal and hash alike when their fields are equal.
        """
        one = PlayerIdentity("alice", "Alice", {"team": "red"})
        two = PlayerIdentity("alice", "Alice", {"team": "red"})
        self.assertEqual(one, two)
        self.assertEqual(hash(one), hash(two))
        self.assertNotEqual(one, PlayerIdentity("alice", "Alice"))

    def test_avatarIdRoundTrip(self) -> None:
        """
        An avatar id is compact JSON and decodes to the identity it encodes.
        """
        identity = PlayerIdentity("al\N{EURO SIGN}ce", "Alice", {"team": "red"})
        avatarId = encodeAvatarId(identity)
        self.assertEqual(
            json.loads(avatarId),
            {"sub": "al\N{EURO SIGN}ce", "name": "Alice", "attrs": {"team": "red"}},
        )
        self.assertEqual(decodeAvatarId(avatarId), identity)

    def test_badAvatarId(self) -> None:
        """
        Decoding what is not an avatar id raises L{ValueError}.
        """
        for bad in [b"alice", b"[]", b'{"name": "x"}', b'{"sub": "a", "attrs": [1]}']:
            with self.assertRaises(ValueError):
                decodeAvatarId(bad)


class SecretHashTests(SynchronousTestCase):
    """
    Tests of L{hashSecret} and L{verifySecret}.
    """

    def test_format(self) -> None:
        """
        A hash is C{pbkdf2_sha256$ITERATIONS$SALT$base64(PBKDF2-HMAC-SHA256)},
        the format of Django's default hasher.
        """
        digest = hashlib.pbkdf2_hmac("sha256", b"hunter2", b"seasalt", ITERATIONS)
        self.assertEqual(
            hashSecret("hunter2", ITERATIONS, "seasalt"),
            f"pbkdf2_sha256${ITERATIONS}$seasalt${base64.b64encode(digest).decode()}",
        )

    def test_saltedAndVerified(self) -> None:
        """
        Two hashes of one secret differ by their random salt, and both verify;
        another secret does not.
        """
        one, two = hashSecret("hunter2", ITERATIONS), hashSecret("hunter2", ITERATIONS)
        self.assertNotEqual(one, two)
        self.assertTrue(verifySecret("hunter2", one))
        self.assertTrue(verifySecret("hunter2", two))
        self.assertFalse(verifySecret("hunter3", one))

    def test_unreadable(self) -> None:
        """
        Verifying against what is not such a hash raises L{ValueError}.
        """
        for bad in ["", "hunter2", "md5$1$s$h", "pbkdf2_sha256$x$s$h"]:
            with self.assertRaises(ValueError):
                verifySecret("hunter2", bad)
        with self.assertRaises(ValueError):
            verifySecret("hunter2", "pbkdf2_sha256$0$s$h")


class DevCheckerTests(CheckerTestsMixin, SynchronousTestCase):
    """
    Tests of L{DevChecker}.
    """

    validId = "alice"

    def setUp(self) -> None:
        with capturedLogs():
            self.checker = DevChecker()

    def test_anyId(self) -> None:
        """
        Any non-empty ID is accepted, and is the player id and the name.
        """
        for idString in ["bob", "alice:hunter2", " ", "x" * MAX_ID_BYTES]:
            avatarId = self.successResultOf(
                self.checker.requestAvatarId(idOf(idString))
            )
            assert isinstance(avatarId, bytes)
            self.assertEqual(
                decodeAvatarId(avatarId), PlayerIdentity(idString, idString)
            )

    def test_longestInBytes(self) -> None:
        """
        An ID of exactly 1024 bytes of UTF-8 is accepted; one of 1025 is not.
        """
        self.successResultOf(
            self.checker.requestAvatarId(
                idOf("\N{LATIN SMALL LETTER E WITH ACUTE}" * 512)
            )
        )
        self.refused("x" + "\N{LATIN SMALL LETTER E WITH ACUTE}" * 512)

    def test_loudWarning(self) -> None:
        """
        Making a L{DevChecker} logs a warning that any ID is accepted.
        """
        with capturedLogs() as events:
            DevChecker()
        self.assertEqual([formatEvent(e) for e in events], [DEV_WARNING])
        self.assertEqual(events[0]["log_level"].name, "warn")


class TicketCheckerTests(CheckerTestsMixin, SynchronousTestCase):
    """
    Tests of L{TicketChecker}, L{mintTicket} and the ticket format.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.checker = TicketChecker(SECRET, self.clock)
        self.validId = self.mint()

    def mint(self, ttl: float = 60, secret: bytes = SECRET, **kw: Any) -> str:
        """
        :return: a ticket for alice minted now.
        """
        return mintTicket(secret, "alice", "Alice", ttl, self.clock.seconds(), **kw)

    def accepted(self, ticket: str) -> PlayerIdentity:
        """
        :return: the identity the checker accepts C{ticket} for.
        """
        avatarId = self.successResultOf(self.checker.requestAvatarId(idOf(ticket)))
        assert isinstance(avatarId, bytes)
        return decodeAvatarId(avatarId)

    def signed(self, payload: bytes, version: str = "v1") -> str:
        """
        :return: a ticket of C{payload}, correctly signed, made by hand as the
            module docstring tells a login website to.
        """
        encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        signed = f"{version}.{encoded}"
        mac = hmac.new(SECRET, signed.encode(), "sha256").digest()
        return f"{signed}.{base64.urlsafe_b64encode(mac).decode()}"

    def assertAcceptedOrRefused(self, d: Deferred[bytes | tuple[()]]) -> None:
        """
        Assert that C{d} has fired with an avatar id of an identity, or failed
        with L{UnauthorizedLogin}.
        """
        outcome: list[object] = []
        d.addBoth(outcome.append)
        [result] = outcome
        if isinstance(result, Failure):
            self.assertIsInstance(result.value, UnauthorizedLogin)
        else:
            assert isinstance(result, bytes)
            decodeAvatarId(result)

    def test_valid(self) -> None:
        """
        A minted ticket is accepted for its player, name and attributes.
        """
        identity = self.accepted(self.mint(attributes={"team": "red"}))
        self.assertEqual(identity, PlayerIdentity("alice", "Alice", {"team": "red"}))

    def test_format(self) -> None:
        """
        A minted ticket is C{v1.<base64url JSON>.<base64url HMAC-SHA256>},
        without padding; its issue time is rounded down to a whole second,
        its expiry is that plus the time to live rounded up, and it carries
        the ticket id given.
        """
        ticket = mintTicket(SECRET, "alice", "Alice", 0.5, 1000.25, ticketId="t-1")
        version, payload, mac = ticket.split(".")
        self.assertEqual(version, "v1")
        self.assertNotIn("=", payload + mac)
        claims = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
        self.assertEqual(
            claims,
            {
                "sub": "alice",
                "name": "Alice",
                "iat": 1000,
                "exp": 1001,
                "jti": "t-1",
                "attrs": {},
            },
        )
        expected = hmac.new(SECRET, f"v1.{payload}".encode(), "sha256").digest()
        self.assertEqual(base64.urlsafe_b64decode(mac + "="), expected)

    def test_handMade(self) -> None:
        """
        A ticket made by hand as documented, with padding and without the
        optional claims, is accepted; the name defaults to the player id.
        """
        exp = int(self.clock.seconds()) + 10
        ticket = self.signed(json.dumps({"sub": "bob", "exp": exp}).encode())
        self.assertTrue(ticket.endswith("="))
        self.assertEqual(self.accepted(ticket), PlayerIdentity("bob", "bob"))

    def test_expired(self) -> None:
        """
        A ticket is good until the clock reaches its expiry, not after.
        """
        ticket = self.mint(ttl=60)
        self.clock.advance(59.9)
        self.accepted(ticket)
        self.clock.advance(0.1)
        self.assertEqual(str(self.refused(ticket)), "ticket expired")

    def test_tamperedMac(self) -> None:
        """
        A ticket whose MAC was changed is refused, even in its last character,
        which carries only padding bits.
        """
        ticket = self.mint()
        for index in (ticket.rindex(".") + 1, -10, -1):
            character = ticket[index]
            other = "A" if character != "A" else "B"
            tampered = ticket[:index] + other + ticket[index:][1:]
            self.assertEqual(str(self.refused(tampered)), "bad ticket")
        self.refused(ticket.rpartition(".")[0] + ".")
        self.refused(ticket.rpartition(".")[0])

    def test_tamperedPayload(self) -> None:
        """
        A ticket whose payload was replaced, with the MAC kept, is refused.
        """
        ticket = self.mint()
        _, payload, mac = ticket.split(".")
        claims = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
        claims["sub"] = "mallory"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
        self.refused(f"v1.{forged.rstrip('=')}.{mac}")

    def test_wrongSecret(self) -> None:
        """
        A ticket signed with another secret is refused.
        """
        self.refused(self.mint(secret=b"another secret"))

    def test_garbage(self) -> None:
        """
        Strings that are not tickets are refused.
        """
        for garbage in [
            "bob",
            "v1",
            "v1.",
            "v1..",
            "...",
            "v2.e30.e30",
            "v1.\N{SNOWMAN}.x",
            self.mint().replace("v1.", "v2.", 1),
        ]:
            self.assertEqual(str(self.refused(garbage)), "bad ticket")

    def test_signedButBad(self) -> None:
        """
        Correctly signed payloads that are not good claims are refused: not
        JSON, no player id, no expiry, an expiry that is not a number,
        attributes that are not strings, another version.
        """
        exp = int(self.clock.seconds()) + 10
        for payload in [
            b"\xff\xfe",
            b"not json",
            b"[]",
            json.dumps({"exp": exp}).encode(),
            json.dumps({"sub": "", "exp": exp}).encode(),
            json.dumps({"sub": "bob"}).encode(),
            json.dumps({"sub": "bob", "exp": True}).encode(),
            json.dumps({"sub": "bob", "exp": "soon"}).encode(),
            json.dumps({"sub": "bob", "exp": exp, "name": 1}).encode(),
            json.dumps({"sub": "bob", "exp": exp, "attrs": {"rank": 1}}).encode(),
            b"[" * 5000 + b"]" * 5000,
        ]:
            self.refused(self.signed(payload))
        self.refused(self.signed(json.dumps({"sub": "bob", "exp": exp}).encode(), "v0"))

    def test_mintLimits(self) -> None:
        """
        L{mintTicket} refuses an empty secret or player id, a time to live that
        is not positive, and a ticket longer than 1024 bytes.
        """
        with self.assertRaises(ValueError):
            mintTicket(b"", "alice", "Alice", 60, 0)
        with self.assertRaises(ValueError):
            mintTicket(SECRET, "", "Alice", 60, 0)
        with self.assertRaises(ValueError):
            mintTicket(SECRET, "alice", "Alice", 0, 0)
        with self.assertRaises(ValueError):
            mintTicket(SECRET, "alice", "Alice", 60, 0, {"bio": "x" * MAX_ID_BYTES})

    def test_emptySecret(self) -> None:
        """
        A L{TicketChecker} cannot be made with an empty secret.
        """
        with self.assertRaises(ValueError):
            TicketChecker(b"", self.clock)

    def test_noSecretsLogged(self) -> None:
        """
        Neither tickets nor the secret appear in the log, whether the ticket is
        accepted, expired or forged.
        """
        good = self.mint(ttl=10)
        expired = self.mint(ttl=1)
        forged = self.mint(secret=b"another secret")
        with noSecretsLogged(self, good, expired, forged, SECRET.decode()) as events:
            self.accepted(good)
            self.clock.advance(5)
            self.refused(expired)
            self.refused(forged)
        self.assertEqual(
            [formatEvent(e) for e in events],
            ["ticket refused: ticket expired", "ticket refused: bad ticket"],
        )

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.text(max_size=1100),
            st.builds(
                lambda a, b: f"v1.{a}.{b}",
                st.text(max_size=60),
                st.text(max_size=60),
            ),
        )
    )
    def test_arbitraryStrings(self, idString: str) -> None:
        """
        Any string is either accepted or refused with L{UnauthorizedLogin};
        nothing else is raised.
        """
        with capturedLogs():
            self.assertAcceptedOrRefused(self.checker.requestAvatarId(idOf(idString)))

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=200),
            st.recursive(
                st.none()
                | st.booleans()
                | st.floats()
                | st.integers()
                | st.text(max_size=10),
                lambda children: (
                    st.lists(children, max_size=4)
                    | st.dictionaries(
                        st.sampled_from(["sub", "name", "exp", "attrs", "x"]),
                        children,
                        max_size=5,
                    )
                ),
                max_leaves=10,
            ).map(lambda value: json.dumps(value).encode()),
        )
    )
    def test_arbitrarySignedPayloads(self, payload: bytes) -> None:
        """
        Any correctly signed payload is either accepted or refused with
        L{UnauthorizedLogin}; nothing else is raised.
        """
        with capturedLogs():
            d = self.checker.requestAvatarId(idOf(self.signed(payload)))
            self.assertAcceptedOrRefused(d)


class DatabaseCheckerTestsMixin(CheckerTestsMixin, _TestCaseBase):
    """
    Behaviour of L{DatabaseChecker} on a real database through a real
    L{AccountsPool}, whatever the database. Mix into a L{TestCase} that
    implements L{makePool}; C{setUp} gives the test C{alice} and C{bob}
    (see L{addTestAccounts}).

    :ivar pool: the pool of the test's database.
    :ivar checker: a checker on L{pool}, named C{"test-db"} in the logs.
    """

    checker: DatabaseChecker
    pool: ConnectionPool
    validId = "bob:builder"

    async def makePool(self) -> ConnectionPool:
        """
        :return: a new L{AccountsPool} (closed by the mixin), of one
            connection, on an empty database of this test's own.
        """
        raise NotImplementedError()

    async def setUp(self) -> None:
        """
        Make the pool, the schema, the accounts and the checker.
        """
        self.pool = await self.makePool()
        self.addCleanup(self.pool.close)
        self.assertEqual(await ensureSchema(self.pool), SCHEMA_VERSION)
        await self.pool.runWithConnection(addTestAccounts, self.pool.dbapi)
        self.checker = DatabaseChecker(self.pool, name="test-db")
        self.checker.unknownHash = f"pbkdf2_sha256${ITERATIONS}$unknownplayer$"

    async def execute(self, sql: str, *parameters: object) -> None:
        """
        Run a statement of SQL whose placeholders are written C{?}, through
        the pool.
        """
        mark = sqlPlaceholder(self.pool.dbapi.paramstyle)
        await self.pool.runOperation(sql.replace("?", mark), parameters)

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """
        :return: the rows of a query, as tuples, through the pool.
        """
        rows = await self.pool.runQuery(sql)
        return [tuple(row) for row in rows]

    async def login(self, idString: str) -> PlayerIdentity:
        """
        :return: the identity the checker accepts C{idString} for.
        """
        avatarId = await self.checker.requestAvatarId(idOf(idString))
        assert isinstance(avatarId, bytes)
        return decodeAvatarId(avatarId)

    async def assertRefused(self, idString: str) -> None:
        """
        Assert that the checker refuses C{idString}.
        """
        d = self.checker.requestAvatarId(idOf(idString))
        error = await self.assertFailure(d, UnauthorizedLogin)
        self.assertEqual(str(error), "unknown player or wrong secret")

    async def test_rightSecret(self) -> None:
        """
        C{PLAYERID:SECRET} with the account's secret is accepted for the
        account's identity; the secret may hold colons.
        """
        self.assertEqual(
            await self.login("alice:hunter2:with:colons"),
            PlayerIdentity("alice", "Alice", {"team": "red"}),
        )
        self.assertEqual(await self.login("bob:builder"), PlayerIdentity("bob", "Bob"))

    async def test_wrongSecret(self) -> None:
        """
        A wrong secret, or another player's, is refused.
        """
        await self.assertRefused("alice:hunter2")
        await self.assertRefused("alice:builder")
        await self.assertRefused("bob:Builder")

    async def test_unknownPlayer(self) -> None:
        """
        An unknown player is refused, with the same message as a wrong secret.
        """
        await self.assertRefused("carol:builder")
        await self.assertRefused("Bob:builder")

    async def test_unknownPlayerHashed(self) -> None:
        """
        The secret of an unknown player is checked all the same, against the
        checker's C{unknownHash}, so that a refusal takes as long either way:
        with an unreadable one, the check fails instead of refusing at once.
        A known player's check does not touch it.
        """
        self.checker.unknownHash = "pbkdf2_sha256$x$unreadable$"
        d = self.checker.requestAvatarId(idOf("carol:builder"))
        await self.assertFailure(d, ValueError)
        await self.login("bob:builder")

    def test_notPlayerIdAndSecret(self) -> None:
        """
        An ID without a colon, player id or secret is refused without a query.
        """
        for idString in ["bob", "bob:", ":builder", ":"]:
            self.assertEqual(str(self.refused(idString)), "the ID is PLAYERID:SECRET")

    async def test_unreadableRecord(self) -> None:
        """
        An account whose stored hash or attributes cannot be read is refused,
        and the refusal is logged as an error.
        """
        await self.execute(
            "UPDATE accounts SET secret_hash = 'x' WHERE player_id = ?", "bob"
        )
        await self.execute(
            "UPDATE accounts SET attributes = '[' WHERE player_id = ?", "alice"
        )
        with capturedLogs() as events:
            await self.assertRefused("bob:builder")
            await self.assertRefused("alice:hunter2:with:colons")
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "ID refused for bob: unreadable account record",
                "ID refused for alice: unreadable account record",
            ],
        )

    async def test_noSecretsLogged(self) -> None:
        """
        Refusals are logged with the player id of a known account only, and
        never with a secret.
        """
        with noSecretsLogged(self, "hunter2", "builder", "guess") as events:
            await self.login("bob:builder")
            await self.assertRefused("bob:guess")
            await self.assertRefused("hunter2:builder")
        self.assertEqual(
            [formatEvent(e) for e in events],
            ["ID refused for bob: wrong secret", "ID refused: unknown player"],
        )

    async def test_playerIdEscapedInLog(self) -> None:
        """
        A player id is logged escaped, and cut to 200 characters.
        """
        for playerId in ["back\\slash", "x" * 300]:
            await self.pool.runWithConnection(
                addAccount,
                playerId,
                "X",
                "s",
                0.0,
                dbapi=self.pool.dbapi,
                iterations=ITERATIONS,
            )
        with capturedLogs() as events:
            await self.assertRefused("back\\slash:wrong")
            await self.assertRefused("x" * 300 + ":wrong")
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "ID refused for back\\\\slash: wrong secret",
                "ID refused for " + "x" * 200 + "\N{HORIZONTAL ELLIPSIS}: wrong secret",
            ],
        )

    async def test_unavailableThenBack(self) -> None:
        """
        While the database cannot answer (here, its accounts table is gone),
        every login fails with L{DatabaseUnavailable}, a L{CheckerBusy} whose
        cause is the database's error, not with L{UnauthorizedLogin}; one
        line is logged when it stops answering and one when it answers again,
        not one per login.
        """
        await self.execute("ALTER TABLE accounts RENAME TO accounts_away")
        with capturedLogs() as events:
            for _ in range(3):
                d = self.checker.requestAvatarId(idOf("bob:builder"))
                error = await self.assertFailure(d, DatabaseUnavailable)
                self.assertIsInstance(error, CheckerBusy)
                self.assertIsInstance(error.__cause__, self.pool.dbapi.Error)
            await self.execute("ALTER TABLE accounts_away RENAME TO accounts")
            await self.login("bob:builder")
            await self.assertRefused("bob:wrong")
            await self.login("alice:hunter2:with:colons")
        lines = [(e["log_level"], formatEvent(e)) for e in events]
        self.assertEqual(len(lines), 3, lines)
        self.assertEqual(lines[0][0], LogLevel.warn)
        self.assertTrue(
            lines[0][1].startswith("accounts database test-db unreachable: "), lines
        )
        self.assertTrue(
            lines[0][1].endswith(
                "; logins are answered OTHER 'try again later' until it answers"
            ),
            lines,
        )
        self.assertIn("accounts", lines[0][1].partition("unreachable: ")[2])
        self.assertEqual(
            lines[1:],
            [
                (LogLevel.info, "accounts database test-db reachable again"),
                (LogLevel.info, "ID refused for bob: wrong secret"),
            ],
        )

    async def test_brokenConnectionReplaced(self) -> None:
        """
        A pooled connection that was closed since its last use is replaced
        by a new one at the next login, which succeeds, without a log line.
        """
        await self.login("bob:builder")
        [connection] = self.pool.connections.values()
        connection.close()
        with capturedLogs() as events:
            await self.login("bob:builder")
        self.assertEqual([formatEvent(e) for e in events], [])
        [replacement] = self.pool.connections.values()
        self.assertIsNot(replacement, connection)

    async def test_schemaVersioned(self) -> None:
        """
        The schema is made at L{SCHEMA_VERSION}, with one row per version in
        C{accounts_schema_version}; upgrading it again changes nothing.
        """
        expected = [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        versions = "SELECT version FROM accounts_schema_version ORDER BY version"
        self.assertEqual(await self.query(versions), expected)
        self.assertEqual(await ensureSchema(self.pool), SCHEMA_VERSION)
        self.assertEqual(await self.query(versions), expected)
        version = await self.pool.runInteraction(schemaVersion, self.pool.dbapi)
        self.assertEqual(version, SCHEMA_VERSION)

    async def test_unversionedSchemaUpgraded(self) -> None:
        """
        A database made before versions were kept (an C{accounts} table
        only) is version 0, and is upgraded with its accounts kept.
        """
        await self.execute("DROP TABLE accounts_schema_version")
        self.assertEqual(
            await self.pool.runInteraction(schemaVersion, self.pool.dbapi), 0
        )
        self.assertEqual(await ensureSchema(self.pool), SCHEMA_VERSION)
        await self.login("bob:builder")

    async def test_schemaTooNew(self) -> None:
        """
        A database whose schema is newer than this code is refused with
        L{SchemaTooNew}, whose message gives both versions, and left as it
        is.
        """
        newer = SCHEMA_VERSION + 1
        await self.execute("INSERT INTO accounts_schema_version VALUES (?)", newer)
        error = await self.assertFailure(ensureSchema(self.pool), SchemaTooNew)
        self.assertEqual(error.version, newer)
        self.assertIn(f"schema version {newer}", str(error))
        self.assertIn(f"knows versions up to {SCHEMA_VERSION}", str(error))
        self.assertEqual(
            await self.query("SELECT MAX(version) FROM accounts_schema_version"),
            [(newer,)],
        )


class SQLiteDatabaseCheckerTests(DatabaseCheckerTestsMixin, TestCase):
    """
    Tests of L{DatabaseChecker} on a real SQLite file through a real
    L{AccountsPool}, and of what is particular to SQLite or to pools given
    to the checker.
    """

    async def makePool(self) -> ConnectionPool:
        """
        :return: an L{AccountsPool} on a new SQLite file, at C{self.path}.
        """
        self.path = self.mktemp()
        return AccountsPool(
            "sqlite3", self.path, check_same_thread=False, cp_min=1, cp_max=1
        )

    async def test_databaseError(self) -> None:
        """
        When the database cannot answer, the checker fails with
        L{DatabaseUnavailable} caused by the database's error, not with
        L{UnauthorizedLogin}; so it does with a plain L{ConnectionPool}.
        """
        empty = ConnectionPool(
            "sqlite3", self.mktemp(), check_same_thread=False, cp_min=1, cp_max=1
        )
        self.addCleanup(empty.close)
        with capturedLogs():
            d = DatabaseChecker(empty).requestAvatarId(idOf("bob:builder"))
            error = await self.assertFailure(d, DatabaseUnavailable)
        self.assertIsInstance(error.__cause__, sqlite3.OperationalError)

    async def test_paramstyles(self) -> None:
        """
        The paramstyle is read from the pool's module unless given: qmark
        works with sqlite3, and format or pyformat (psycopg's) puts C{%s} in
        the query, which sqlite3 does not understand. Others are unsupported.
        """
        await DatabaseChecker(self.pool, "qmark").requestAvatarId(idOf("bob:builder"))
        for paramstyle in ["format", "pyformat"]:
            with capturedLogs():
                d = DatabaseChecker(self.pool, paramstyle).requestAvatarId(
                    idOf("bob:builder")
                )
                error = await self.assertFailure(d, DatabaseUnavailable)
            self.assertIsInstance(error.__cause__, sqlite3.OperationalError)
        with self.assertRaises(ValueError):
            DatabaseChecker(self.pool, "named")

    async def test_poolOnFirstUse(self) -> None:
        """
        A checker given a callable makes its pool on the first login only,
        with the reactor bound to it, and closes the pool it made.
        """
        made: list[ConnectionPool] = []

        def makePool(poolReactor: IReactorCore) -> ConnectionPool:
            made.append(
                ConnectionPool(
                    "sqlite3",
                    self.path,
                    check_same_thread=False,
                    cp_min=1,
                    cp_max=1,
                    cp_reactor=poolReactor,
                )
            )
            return made[-1]

        checker = DatabaseChecker(makePool)
        self.addCleanup(checker.close)
        checker.bindReactor(reactor)
        self.assertEqual(made, [])
        await checker.requestAvatarId(idOf("bob:builder"))
        await checker.requestAvatarId(idOf("bob:builder"))
        self.assertEqual(len(made), 1)
        checker.close()
        self.assertFalse(made[0].running)

    def test_givenPoolNotClosed(self) -> None:
        """
        Closing a checker leaves a pool that was given to it open.
        """
        self.checker.close()
        self.assertIs(self.checker.pool, self.pool)

    async def test_givenPoolNeedsNoBinding(self) -> None:
        """
        A checker given a pool logs in without L{DatabaseChecker.bindReactor},
        and binding one later leaves the pool as it was.
        """
        await self.login("bob:builder")
        self.checker.bindReactor(MemoryReactor())
        self.assertIs(self.checker.pool, self.pool)
        await self.login("bob:builder")

    def test_notBound(self) -> None:
        """
        A checker that is to make its pool fails a login with
        L{ReactorNotBound}, as a failed L{Deferred}, until it is given a
        reactor; it makes no pool meanwhile.
        """
        made: list[IReactorCore] = []

        def makePool(poolReactor: IReactorCore) -> ConnectionPool:
            made.append(poolReactor)
            return self.pool

        checker = DatabaseChecker(makePool, "qmark")
        d = checker.requestAvatarId(idOf("bob:builder"))
        error = self.failureResultOf(d, ReactorNotBound).value
        self.assertIsInstance(error, RuntimeError)
        self.assertIn("bindReactor", str(error))
        self.assertEqual(made, [])
        self.assertRaises(ReactorNotBound, lambda: checker.pool)

    def test_unsupportedModule(self) -> None:
        """
        The schema is written for sqlite3 and psycopg: L{upgradeSchema}
        refuses another DB-API module with L{ValueError}.
        """
        other = ModuleType("otherdb")
        other.paramstyle = "format"  # type: ignore[attr-defined]
        connection = sqlite3.connect(":memory:")
        self.addCleanup(connection.close)
        error = self.assertRaises(ValueError, upgradeSchema, connection.cursor(), other)
        self.assertIn("'otherdb'", str(error))


class RealmTests(SynchronousTestCase):
    """
    Tests of L{PlayerRealm}.
    """

    def test_interface(self) -> None:
        """
        The realm provides L{IRealm}.
        """
        self.assertTrue(verifyObject(IRealm, PlayerRealm()))

    def test_identity(self) -> None:
        """
        The realm yields the identity the avatar id carries, for L{IPlayer},
        and a logout that does nothing.
        """
        identity = PlayerIdentity("alice", "Alice", {"team": "red"})
        interface, avatar, logout = PlayerRealm().requestAvatar(
            encodeAvatarId(identity), None, Interface, IPlayer
        )
        self.assertIs(interface, IPlayer)
        self.assertEqual(avatar, identity)
        logout()

    def test_otherInterfaces(self) -> None:
        """
        The realm provides nothing but L{IPlayer}.
        """
        with self.assertRaises(NotImplementedError):
            PlayerRealm().requestAvatar(b"{}", None, Interface)

    def test_anonymous(self) -> None:
        """
        The anonymous avatar id is refused.
        """
        with self.assertRaises(UnauthorizedLogin):
            PlayerRealm().requestAvatar(ANONYMOUS, None, IPlayer)


@implementer(IPlayer)
class OtherPlayer:
    """
    An L{IPlayer} that is not a L{PlayerIdentity}.
    """

    playerId = "carol"
    name = "Carol"
    attributes: Mapping[str, str] = {"rank": "1"}


@implementer(IRealm)
class OtherRealm:
    """
    A realm that yields an L{OtherPlayer} and records logouts.
    """

    def __init__(self) -> None:
        self.logouts = 0

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        """
        :return: an L{OtherPlayer}.
        """

        def logout() -> None:
            self.logouts += 1

        return IPlayer, OtherPlayer(), logout


@implementer(ICredentialsChecker)
class RecordingChecker:
    """
    A checker that accepts any ID and records it.

    :ivar seen: the IDs checked.
    """

    credentialInterfaces = (IPlayerIdCredentials,)

    def __init__(self) -> None:
        self.seen: list[str] = []

    def requestAvatarId(
        self, credentials: IPlayerIdCredentials
    ) -> Deferred[bytes | tuple[()]]:
        """
        :return: a L{Deferred} that has fired with the ID's avatar id.
        """
        self.seen.append(credentials.id)
        avatarId: bytes | tuple[()] = encodeAvatarId(
            PlayerIdentity(credentials.id, "X")
        )
        return succeed(avatarId)


class AuthenticateTests(SynchronousTestCase):
    """
    Tests of L{authenticate}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.portal = Portal(PlayerRealm(), [TicketChecker(SECRET, self.clock)])

    def test_identity(self) -> None:
        """
        A good ID gives the player's identity.
        """
        ticket = mintTicket(SECRET, "alice", "Alice", 60, 0, {"team": "red"})
        self.assertEqual(
            self.successResultOf(authenticate(self.portal, ticket)),
            PlayerIdentity("alice", "Alice", {"team": "red"}),
        )

    def test_refused(self) -> None:
        """
        A bad ID fails with L{UnauthorizedLogin}, and so does one that is too
        long, before any checker sees it.
        """
        with capturedLogs() as events:
            self.failureResultOf(authenticate(self.portal, "nope"), UnauthorizedLogin)
            self.failureResultOf(
                authenticate(self.portal, "x" * (MAX_ID_BYTES + 1)), UnauthorizedLogin
            )
        self.assertEqual(len(events), 1)

    def test_controlCharacters(self) -> None:
        """
        An ID with a control character is refused before any checker sees
        it, and nothing is logged.
        """
        checker = RecordingChecker()
        portal = Portal(PlayerRealm(), [checker])
        with capturedLogs() as events:
            for idString in ["alice\nforged", "\x00", "bob\x7f", "\x9bcarol"]:
                error = self.failureResultOf(
                    authenticate(portal, idString), UnauthorizedLogin
                ).value
                self.assertEqual(str(error), "the ID holds control characters")
        self.assertEqual((checker.seen, list(events)), ([], []))
        self.successResultOf(authenticate(portal, "alice"))
        self.assertEqual(checker.seen, ["alice"])

    def test_noChecker(self) -> None:
        """
        A portal with no checker for IDs fails with L{UnhandledCredentials}.
        """
        portal = Portal(PlayerRealm())
        self.failureResultOf(authenticate(portal, "alice"), UnhandledCredentials)

    def test_otherRealm(self) -> None:
        """
        Any L{IPlayer} a realm yields becomes a L{PlayerIdentity}, and the
        login is logged out at once.
        """
        with capturedLogs():
            realm = OtherRealm()
            portal = Portal(realm, [DevChecker()])
        identity: Deferred[PlayerIdentity] = authenticate(portal, "x")
        self.assertEqual(
            self.successResultOf(identity),
            PlayerIdentity("carol", "Carol", {"rank": "1"}),
        )
        self.assertEqual(realm.logouts, 1)


class AuthOptions(AuthOptionMixin, usage.Options):
    """
    Options with C{--auth} that support IDs only, as C{aphelion.tap}'s will.
    """

    supportedInterfaces = [IPlayerIdCredentials]


class PluginTests(SynchronousTestCase):
    """
    Tests of the C{--auth} plugins and their factories.
    """

    def test_found(self) -> None:
        """
        strcred finds a plugin for C{dev}, C{sqlite}, C{postgresql} and
        C{ticket}, and each supports L{IPlayerIdCredentials}.
        """
        for authType, factoryClass in [
            ("dev", DevCheckerFactory),
            ("sqlite", SQLiteCheckerFactory),
            ("postgresql", PostgreSQLCheckerFactory),
            ("ticket", TicketCheckerFactory),
        ]:
            factory = findCheckerFactory(authType)
            self.assertIsInstance(factory, factoryClass)
            self.assertTrue(verifyObject(ICheckerFactory, factory))
            self.assertTrue(IPlugin.providedBy(factory))
            self.assertIn(IPlayerIdCredentials, factory.credentialInterfaces)

    def test_dev(self) -> None:
        """
        C{dev} makes a L{DevChecker}, with its warning, and takes no argument.
        """
        with capturedLogs() as events:
            self.assertIsInstance(makeChecker("dev"), DevChecker)
        self.assertEqual([formatEvent(e) for e in events], [DEV_WARNING])
        with self.assertRaises(InvalidAuthArgumentString):
            makeChecker("dev:anything")

    def test_sqlite(self) -> None:
        """
        C{sqlite:PATH} makes a L{DatabaseChecker} that makes no pool until it
        is used.
        """
        path = self.mktemp()
        createAccounts(path)
        checker = makeChecker(f"sqlite:{path}")
        self.assertIsInstance(checker, DatabaseChecker)
        self.assertIsNone(checker._pool)

    def test_sqliteRefused(self) -> None:
        """
        C{sqlite} refuses, with the path in the message, a missing PATH, a
        missing file, and a file that is not an accounts database.
        """
        with self.assertRaises(InvalidAuthArgumentString):
            makeChecker("sqlite")
        missing = self.mktemp()
        error = self.assertRaises(
            InvalidAuthArgumentString, makeChecker, f"sqlite:{missing}"
        )
        self.assertIn(os.path.abspath(missing), str(error))
        self.assertIn("aphelion accounts add", str(error))
        self.assertFalse(os.path.exists(missing))
        for content in [b"", b"not a database at all, is it?" * 100]:
            path = writeFile(self, content)
            error = self.assertRaises(
                InvalidAuthArgumentString, makeChecker, f"sqlite:{path}"
            )
            self.assertIn("is not an accounts database", str(error))

    def test_sqliteUpgradesSchema(self) -> None:
        """
        C{sqlite} upgrades a database made before schema versions were kept,
        keeping its accounts, and logs the path and the version.
        """
        path = os.path.abspath(self.mktemp())
        connection = sqlite3.connect(path)
        connection.execute(ACCOUNTS_SCHEMA)
        connection.commit()
        connection.close()
        with capturedLogs() as events:
            makeChecker(f"sqlite:{path}")
        self.assertEqual(
            [formatEvent(e) for e in events],
            [f"accounts in SQLite at {path}, schema version {SCHEMA_VERSION}"],
        )
        connection = sqlite3.connect(path)
        self.addCleanup(connection.close)
        self.assertEqual(schemaVersion(connection.cursor(), sqlite3), SCHEMA_VERSION)

    def test_sqliteSchemaTooNew(self) -> None:
        """
        C{sqlite} refuses a database whose schema is newer than this code,
        saying so.
        """
        path = self.mktemp()
        createAccounts(path)
        connection = sqlite3.connect(path)
        connection.execute(
            "INSERT INTO accounts_schema_version VALUES (?)", (SCHEMA_VERSION + 7,)
        )
        connection.commit()
        connection.close()
        error = self.assertRaises(
            InvalidAuthArgumentString, makeChecker, f"sqlite:{path}"
        )
        self.assertIn(f"schema version {SCHEMA_VERSION + 7}", str(error))
        self.assertIn("run a newer aphelion", str(error))

    def test_ticket(self) -> None:
        """
        C{ticket:SECRET_FILE} makes a L{TicketChecker} with the file's
        content, stripped of surrounding whitespace, as its secret.
        """
        path = writeFile(self, b"  \n" + SECRET + b"\n\n")
        clock = Clock()
        checker = TicketCheckerFactory(clock).generateChecker(path)
        ticket = mintTicket(SECRET, "alice", "Alice", 60, 0)
        self.successResultOf(checker.requestAvatarId(idOf(ticket)))
        self.assertIsInstance(makeChecker(f"ticket:{path}"), TicketChecker)

    def test_ticketBoundClock(self) -> None:
        """
        The plugin's L{TicketChecker} checks expiries against the reactor
        given to its C{bindReactor}.
        """
        checker = makeChecker(f"ticket:{writeFile(self, SECRET)}")
        assert isinstance(checker, TicketChecker)
        clock = Clock()
        clock.advance(1000)
        checker.bindReactor(clock)
        ticket = mintTicket(SECRET, "alice", "Alice", 60, 1000)
        portal = Portal(PlayerRealm(), [checker])
        self.assertEqual(
            self.successResultOf(authenticate(portal, ticket)),
            PlayerIdentity("alice", "Alice"),
        )
        clock.advance(59)
        self.successResultOf(checker.requestAvatarId(idOf(ticket)))
        clock.advance(1)
        with capturedLogs():
            error = self.failureResultOf(
                checker.requestAvatarId(idOf(ticket)), UnauthorizedLogin
            ).value
        self.assertEqual(str(error), "ticket expired")

    def test_ticketNotBound(self) -> None:
        """
        The plugin's L{TicketChecker} fails a login before C{bindReactor}
        with L{ReactorNotBound}, a L{RuntimeError}, as a failed L{Deferred}.
        """
        checker = makeChecker(f"ticket:{writeFile(self, SECRET)}")
        ticket = mintTicket(SECRET, "alice", "Alice", 60, 0)
        d = checker.requestAvatarId(idOf(ticket))
        error = self.failureResultOf(d, ReactorNotBound).value
        self.assertIsInstance(error, RuntimeError)
        self.assertEqual(
            str(error),
            "TicketChecker.bindReactor was not called before the first login",
        )
        portal = Portal(PlayerRealm(), [checker])
        self.failureResultOf(authenticate(portal, ticket), ReactorNotBound)

    def test_ticketGivenClockKept(self) -> None:
        """
        A clock given when the checker is made is kept when a reactor is
        bound.
        """
        clock = Clock()
        checker = TicketCheckerFactory(clock).generateChecker(writeFile(self, SECRET))
        checker.bindReactor(Clock())
        clock.advance(100)
        ticket = mintTicket(SECRET, "alice", "Alice", 60, 0)
        with capturedLogs():
            self.failureResultOf(
                checker.requestAvatarId(idOf(ticket)), UnauthorizedLogin
            )

    def test_sqliteBoundReactor(self) -> None:
        """
        The plugin's L{DatabaseChecker} makes its pool on the reactor given to
        its C{bindReactor}; so does one made by a factory given a reactor.
        """
        path = self.mktemp()
        createAccounts(path)
        bound = MemoryReactor()
        checker = makeChecker(f"sqlite:{path}")
        assert isinstance(checker, DatabaseChecker)
        self.addCleanup(checker.close)
        checker.bindReactor(bound)
        pool = checker.pool
        self.assertIs(pool._reactor, bound)
        self.assertEqual(pool.min, 1)
        self.assertEqual(pool.max, SQLiteCheckerFactory.poolSize)
        self.assertEqual(len(bound.whenRunningHooks), 1)
        given = MemoryReactor()
        other = SQLiteCheckerFactory(given).generateChecker(path)
        self.addCleanup(other.close)
        self.assertIs(other.pool._reactor, given)

    def test_sqliteNotBound(self) -> None:
        """
        The plugin's L{DatabaseChecker} fails a login before C{bindReactor}
        with L{ReactorNotBound}, as a failed L{Deferred}.
        """
        path = self.mktemp()
        createAccounts(path)
        checker = makeChecker(f"sqlite:{path}")
        d = checker.requestAvatarId(idOf("bob:builder"))
        error = self.failureResultOf(d, ReactorNotBound).value
        self.assertIsInstance(error, RuntimeError)
        self.assertIn("bindReactor", str(error))
        self.assertIsNone(checker._pool)

    def test_ticketRefused(self) -> None:
        """
        C{ticket} refuses a missing argument, a missing file and a file that
        holds only whitespace, with clear messages.
        """
        with self.assertRaises(InvalidAuthArgumentString):
            makeChecker("ticket")
        missing = self.mktemp()
        error = self.assertRaises(
            InvalidAuthArgumentString, makeChecker, f"ticket:{missing}"
        )
        self.assertIn(f"cannot read the ticket secret file {missing!r}", str(error))
        path = writeFile(self, b" \n\t\n")
        error = self.assertRaises(
            InvalidAuthArgumentString, makeChecker, f"ticket:{path}"
        )
        self.assertEqual(str(error), f"the ticket secret file {path!r} is empty")

    def test_shortSecret(self) -> None:
        """
        A secret shorter than 32 bytes is accepted with a warning that gives
        its length, not its content.
        """
        path = writeFile(self, b"tiny-secret")
        with noSecretsLogged(self, "tiny-secret") as events:
            makeChecker(f"ticket:{path}")
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                f"the ticket secret in {path} is only 11 bytes; "
                "use at least 32 random ones"
            ],
        )

    def test_readSecretFile(self) -> None:
        """
        L{readSecretFile} strips whitespace and raises L{ValueError} for a
        missing or blank file.
        """
        self.assertEqual(readSecretFile(writeFile(self, b"\tabc \r\n")), b"abc")
        with self.assertRaises(ValueError):
            readSecretFile(self.mktemp())
        with self.assertRaises(ValueError):
            readSecretFile(writeFile(self, b"\n"))

    def test_authOption(self) -> None:
        """
        C{--auth} of L{AuthOptionMixin} accepts these checkers for
        L{IPlayerIdCredentials}, and refuses checkers of other credentials.
        """
        options = AuthOptions()
        options.parseOptions(["--auth", f"ticket:{writeFile(self, SECRET)}"])
        [checker] = options["credCheckers"]
        self.assertIsInstance(checker, TicketChecker)
        self.assertEqual(options["credInterfaces"], {IPlayerIdCredentials: [checker]})
        # Twisted's opt_auth raises TypeError rather than UsageError for a
        # refused checker of several interfaces (memory); anonymous has one.
        with self.assertRaises(usage.UsageError):
            AuthOptions().parseOptions(["--auth", "anonymous"])
        self.assertFalse(
            AuthOptions().supportsCheckerFactory(findCheckerFactory("memory"))
        )
        error = self.assertRaises(
            usage.UsageError,
            AuthOptions().parseOptions,
            ["--auth", "ticket:/nonexistent"],
        )
        self.assertIn("/nonexistent", str(error))


class SQLitePluginTests(TestCase):
    """
    Tests of the checker that C{--auth sqlite:PATH} makes, bound to the
    reactor that trial runs.
    """

    async def test_login(self) -> None:
        """
        The checker makes its pool on the bound reactor on the first login,
        accepts a right secret, and refuses a wrong one.
        """
        path = self.mktemp()
        createAccounts(path)
        checker = makeChecker(f"sqlite:{path}")
        assert isinstance(checker, DatabaseChecker)
        self.addCleanup(checker.close)
        checker.bindReactor(reactor)
        checker.unknownHash = f"pbkdf2_sha256${ITERATIONS}$unknownplayer$"
        portal = Portal(PlayerRealm(), [checker])
        self.assertEqual(
            await authenticate(portal, "bob:builder"), PlayerIdentity("bob", "Bob")
        )
        with capturedLogs():
            await self.assertFailure(authenticate(portal, "bob:x"), UnauthorizedLogin)


def _psycopgMissing() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg 3 is not installed (pip install -e '.[postgresql]')"
    return None


def closedPort() -> int:
    """
    :return: a port of 127.0.0.1 that nothing listens on: bound to port 0,
        and closed, a moment ago.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class PostgreSQLPluginArgumentTests(SynchronousTestCase):
    """
    Tests of C{--auth postgresql:DSN[:password-file=PATH]} that need no
    server; those that do are in L{tests.test_integration_postgres}.
    """

    skip = _psycopgMissing()

    def refused(self, argument: str) -> str:
        """
        :return: the message C{--auth postgresql:ARGUMENT} is refused with.
        """
        error = self.assertRaises(
            InvalidAuthArgumentString, makeChecker, f"postgresql:{argument}"
        )
        return str(error)

    def test_help(self) -> None:
        """
        The help names the DSN forms, where the password comes from, and the
        option.
        """
        factory = findCheckerFactory("postgresql")
        for text in ["postgresql://", "PGPASSWORD", ":password-file=PATH"]:
            self.assertIn(text, factory.authHelp)
        self.assertIn("password-file", factory.argStringFormat)

    def test_badArguments(self) -> None:
        """
        No DSN, an empty password file option, a DSN libpq cannot parse and a
        missing password file are refused with messages that say so.
        """
        self.assertIn("needs a DSN", self.refused(""))
        self.assertIn("needs a DSN", self.refused(":password-file=/x"))
        self.assertIn(
            "password-file= needs a PATH",
            self.refused("postgresql://a@localhost/db:password-file="),
        )
        self.assertIn("not a PostgreSQL DSN", self.refused("no equals sign"))
        missing = self.mktemp()
        self.assertIn(
            f"cannot read the password file {missing!r}",
            self.refused(f"postgresql://a@localhost/db:password-file={missing}"),
        )

    def test_unreachable(self) -> None:
        """
        A database that cannot be reached at start-up is refused with the
        DSN, its password left out, and libpq's reason.
        """
        port = closedPort()
        with noSecretsLogged(self, "sesame") as events:
            message = self.refused(
                f"postgresql://aphelion:sesame@127.0.0.1:{port}/aphelion"
                "?connect_timeout=5"
            )
        self.assertIn(
            f"cannot use the accounts database postgresql://aphelion@127.0.0.1:{port}"
            "/aphelion?connect_timeout=5: ",
            message,
        )
        self.assertNotIn("sesame", message)
        self.assertIn("refused", message)
        [warning] = [formatEvent(e) for e in events]
        self.assertIn("holds a password", warning)


class RedactDsnTests(SynchronousTestCase):
    """
    Tests of L{redactDsn}.
    """

    def test_url(self) -> None:
        """
        The password of a URL's user information or query is left out; the
        rest stays as it was written.
        """
        for dsn, shown in [
            ("postgresql://a@h/db", "postgresql://a@h/db"),
            ("postgresql://a:pw@h:5432/db", "postgresql://a@h:5432/db"),
            ("postgres://a:p%40ss@h1,h2:5433/db", "postgres://a@h1,h2:5433/db"),
            (
                "postgresql://a:pw@[::1]/db?sslmode=require",
                "postgresql://a@[::1]/db?sslmode=require",
            ),
            (
                "postgresql://h/db?password=pw&sslmode=verify-full",
                "postgresql://h/db?sslmode=verify-full",
            ),
            (
                "postgresql://h/db?connect_timeout=5%20",
                "postgresql://h/db?connect_timeout=5%20",
            ),
        ]:
            self.assertEqual(redactDsn(dsn), shown)

    def test_keywords(self) -> None:
        """
        The C{password} of a C{keyword=value} string is left out, quoted or
        not.
        """
        for dsn, shown in [
            ("host=h dbname=db", "host=h dbname=db"),
            ("host=h password=pw dbname=db", "host=h dbname=db"),
            ("password = 'p w\\' x' host=h", "host=h"),
            ("host=h passfile=/p password=", "host=h passfile=/p"),
        ]:
            self.assertEqual(redactDsn(dsn), shown)


def signedTicket(claims: Mapping[str, object], secret: bytes = SECRET) -> str:
    """
    :return: a ticket of C{claims}, correctly signed, made by hand as the
        module docstring tells a login website to.
    """
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
    signed = f"v1.{payload.rstrip('=')}"
    mac = hmac.new(secret, signed.encode(), "sha256").digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


class TicketClaimTests(SynchronousTestCase):
    """
    Tests of the claims that L{TicketChecker} checks beyond the MAC: the
    player id, C{iat}, C{jti}, and the lifetime cap.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.now = int(self.clock.seconds())

    def check(self, ticket: str, **kw: Any) -> Failure | PlayerIdentity:
        """
        :return: the identity a L{TicketChecker} on C{self.clock}, made with
            C{kw}, accepts C{ticket} for, or the failure it refuses it with.
        """
        checker = TicketChecker(SECRET, self.clock, **kw)
        outcome: list[Failure | bytes | tuple[()]] = []
        with capturedLogs():
            checker.requestAvatarId(idOf(ticket)).addBoth(outcome.append)
        [result] = outcome
        if isinstance(result, Failure):
            return result
        assert isinstance(result, bytes)
        return decodeAvatarId(result)

    def assertRefused(self, ticket: str, reason: str, **kw: Any) -> None:
        """
        Assert that C{ticket} is refused with L{UnauthorizedLogin} and
        C{reason}.
        """
        result = self.check(ticket, **kw)
        assert isinstance(result, Failure), result
        result.trap(UnauthorizedLogin)
        self.assertEqual(str(result.value), reason)

    def assertAccepted(self, ticket: str, **kw: Any) -> None:
        """
        Assert that C{ticket} is accepted.
        """
        self.assertIsInstance(self.check(ticket, **kw), PlayerIdentity)

    def test_defaultMaxLifetime(self) -> None:
        """
        By default a ticket lives at most 24 hours: one that expires 24 hours
        from now is accepted, one that expires later is refused, whatever it
        says, with or without C{iat}.
        """
        self.assertEqual(DEFAULT_MAX_TICKET_LIFETIME, 24 * 3600)
        day = 86_400
        self.assertAccepted(signedTicket({"sub": "a", "exp": self.now + day}))
        self.assertAccepted(mintTicket(SECRET, "a", "A", day, self.now + 0.5))
        for ticket in [
            signedTicket({"sub": "a", "exp": self.now + day + 1}),
            signedTicket({"sub": "a", "exp": self.now + 10 * 365 * day}),
            signedTicket({"sub": "a", "exp": self.now + day + 1, "iat": self.now}),
            mintTicket(SECRET, "a", "A", day + 1, self.now),
        ]:
            self.assertRefused(ticket, "ticket lifetime too long")

    def test_lifetimeFromIssue(self) -> None:
        """
        A ticket whose C{exp - iat} is longer than the maximum lifetime is
        refused even when it expires soon; one of exactly the maximum is
        accepted.
        """
        day = 86_400
        self.assertRefused(
            signedTicket({"sub": "a", "iat": self.now - day, "exp": self.now + 1}),
            "ticket lifetime too long",
        )
        self.assertAccepted(
            signedTicket({"sub": "a", "iat": self.now - day + 1, "exp": self.now + 1})
        )

    def test_configuredMaxLifetime(self) -> None:
        """
        The maximum lifetime is the checker's C{maxLifetime}. A ticket with
        an C{iat} and too long a life stays refused as the clock moves on;
        one without C{iat} is accepted once its expiry is near enough.
        """
        self.assertAccepted(self.mint(60), maxLifetime=60)
        self.assertRefused(self.mint(61), "ticket lifetime too long", maxLifetime=60)
        long = self.mint(120)
        noIssue = signedTicket({"sub": "a", "exp": self.now + 120})
        self.assertRefused(noIssue, "ticket lifetime too long", maxLifetime=60)
        self.clock.advance(60)
        self.assertRefused(long, "ticket lifetime too long", maxLifetime=60)
        self.assertAccepted(noIssue, maxLifetime=60)
        self.assertAccepted(long, maxLifetime=120)

    def test_badMaxLifetime(self) -> None:
        """
        A L{TicketChecker} cannot be made with a maximum lifetime that is not
        a positive finite number.
        """
        for bad in [0, -1, float("nan"), float("inf")]:
            with self.assertRaises(ValueError):
                TicketChecker(SECRET, self.clock, maxLifetime=bad)

    def test_verifyTicket(self) -> None:
        """
        L{verifyTicket} applies the maximum lifetime too, 24 hours unless
        given.
        """
        ticket = self.mint(3600)
        identity = verifyTicket(SECRET, ticket, self.now)
        self.assertEqual(identity, PlayerIdentity("alice", "Alice"))
        with self.assertRaises(UnauthorizedLogin):
            verifyTicket(SECRET, ticket, self.now, maxLifetime=60)
        with self.assertRaises(UnauthorizedLogin):
            verifyTicket(SECRET, self.mint(86_401), self.now)

    def mint(self, ttl: float) -> str:
        """
        :return: a ticket for alice minted now with C{ttl}.
        """
        return mintTicket(SECRET, "alice", "Alice", ttl, self.now)

    def test_badTimes(self) -> None:
        """
        An C{exp} or C{iat} that is not a finite number is a bad ticket (an
        infinite C{exp} would otherwise never expire).
        """
        exp = self.now + 10
        for claims in [
            {"sub": "a", "exp": float("inf")},
            {"sub": "a", "exp": float("nan")},
            {"sub": "a", "exp": 10**400},
            {"sub": "a", "exp": exp, "iat": "now"},
            {"sub": "a", "exp": exp, "iat": None},
            {"sub": "a", "exp": exp, "iat": True},
            {"sub": "a", "exp": exp, "iat": float("-inf")},
            {"sub": "a", "exp": exp, "iat": float("nan")},
        ]:
            self.assertRefused(signedTicket(claims), "bad ticket")

    def test_badTicketId(self) -> None:
        """
        A C{jti} that is not a non-empty string is a bad ticket.
        """
        for jti in ["", 1, None, ["x"]]:
            self.assertRefused(
                signedTicket({"sub": "a", "exp": self.now + 10, "jti": jti}),
                "bad ticket",
            )

    @settings(max_examples=100, deadline=None)
    @given(st.text(max_size=5), controlCharacters, st.text(max_size=5))
    def test_controlCharactersInPlayerId(
        self, before: str, character: str, after: str
    ) -> None:
        """
        A correctly signed ticket whose player id holds a control character
        is refused.
        """
        ticket = signedTicket({"sub": before + character + after, "exp": self.now + 10})
        self.assertRefused(ticket, "control characters in the player id")

    @settings(max_examples=50, deadline=None)
    @given(st.text(max_size=5), controlCharacters, st.text(max_size=5))
    def test_mintControlCharacters(
        self, before: str, character: str, after: str
    ) -> None:
        """
        L{mintTicket} refuses a player id that holds a control character.
        """
        with self.assertRaises(ValueError):
            mintTicket(SECRET, before + character + after, "A", 60, self.now)

    def test_mintTicketId(self) -> None:
        """
        L{mintTicket} writes a random C{jti} of 22 characters unless given
        one, and refuses an empty one.
        """

        def claimsOf(ticket: str) -> dict[str, Any]:
            payload = ticket.split(".")[1]
            loaded: dict[str, Any] = json.loads(
                base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            )
            return loaded

        one, two = (claimsOf(self.mint(60))["jti"] for _ in range(2))
        self.assertNotEqual(one, two)
        self.assertEqual(len(one), 22)
        ticket = mintTicket(SECRET, "a", "A", 60, self.now, ticketId="mine")
        self.assertEqual(claimsOf(ticket)["jti"], "mine")
        with self.assertRaises(ValueError):
            mintTicket(SECRET, "a", "A", 60, self.now, ticketId="")


class OneTimeTicketTests(SynchronousTestCase):
    """
    Tests of a L{TicketChecker} of one-time tickets.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.cache = MemoryReplayCache(self.clock)
        self.checker = TicketChecker(SECRET, self.clock, replayCache=self.cache)

    def mint(self, ttl: float = 60, playerId: str = "alice") -> str:
        """
        :return: a ticket for C{playerId} minted now.
        """
        return mintTicket(SECRET, playerId, "Alice", ttl, self.clock.seconds())

    def test_once(self) -> None:
        """
        A ticket is accepted once; its second use is refused, and logged with
        the player id; another ticket of the same player is accepted.
        """
        self.assertTrue(self.checker.oneTime)
        ticket = self.mint()
        self.successResultOf(self.checker.requestAvatarId(idOf(ticket)))
        with noSecretsLogged(self, ticket) as events:
            error = self.failureResultOf(
                self.checker.requestAvatarId(idOf(ticket)), UnauthorizedLogin
            ).value
        self.assertEqual(str(error), "ticket used already")
        self.assertEqual(
            [formatEvent(e) for e in events],
            ["ticket refused for alice: ticket used already"],
        )
        self.successResultOf(self.checker.requestAvatarId(idOf(self.mint())))

    def test_rememberedUntilExpiry(self) -> None:
        """
        A used ticket is remembered until it expires, and is then refused as
        expired; the cache has forgotten it by the next use.
        """
        ticket = self.mint(ttl=60)
        self.successResultOf(self.checker.requestAvatarId(idOf(ticket)))
        self.clock.advance(59.9)
        with capturedLogs():
            self.failureResultOf(
                self.checker.requestAvatarId(idOf(ticket)), UnauthorizedLogin
            )
        self.assertEqual(len(self.cache), 1)
        self.clock.advance(0.1)
        with capturedLogs():
            error = self.failureResultOf(
                self.checker.requestAvatarId(idOf(ticket)), UnauthorizedLogin
            ).value
        self.assertEqual(str(error), "ticket expired")
        self.successResultOf(self.checker.requestAvatarId(idOf(self.mint())))
        self.assertEqual(len(self.cache), 1)

    def test_noTicketId(self) -> None:
        """
        A ticket without C{jti} is refused by a one-time checker, and
        accepted, as often as it comes, by one that is not.
        """
        ticket = signedTicket({"sub": "a", "exp": self.clock.seconds() + 60})
        with capturedLogs() as events:
            error = self.failureResultOf(
                self.checker.requestAvatarId(idOf(ticket)), UnauthorizedLogin
            ).value
        self.assertEqual(str(error), "one-time ticket without jti")
        self.assertEqual(
            [formatEvent(e) for e in events],
            ["ticket refused: one-time ticket without jti"],
        )
        reusable = TicketChecker(SECRET, self.clock)
        self.assertFalse(reusable.oneTime)
        for t in [ticket, ticket, self.mint(), self.mint()]:
            self.successResultOf(reusable.requestAvatarId(idOf(t)))

    def test_busy(self) -> None:
        """
        When the cache cannot remember one more ticket, the checker fails
        with L{CheckerBusy}, not L{UnauthorizedLogin}, through a portal too.
        """
        checker = TicketChecker(
            SECRET, self.clock, replayCache=MemoryReplayCache(self.clock, 1)
        )
        self.successResultOf(checker.requestAvatarId(idOf(self.mint())))
        with capturedLogs():
            self.failureResultOf(
                checker.requestAvatarId(idOf(self.mint())), CheckerBusy
            )
            portal = Portal(PlayerRealm(), [checker])
            self.failureResultOf(authenticate(portal, self.mint()), CheckerBusy)
        self.assertFalse(issubclass(CheckerBusy, UnauthorizedLogin))

    def test_cacheMadeOnBoundClock(self) -> None:
        """
        Given a callable, the checker makes its cache with its clock (the
        one bound by C{bindReactor} when none was given) on the first login
        of a ticket with a C{jti}.
        """
        made: list[MemoryReplayCache] = []

        def makeCache(clock: Any) -> MemoryReplayCache:
            made.append(MemoryReplayCache(clock, 5))
            return made[-1]

        checker = TicketChecker(SECRET, replayCache=makeCache)
        self.assertTrue(checker.oneTime)
        checker.bindReactor(self.clock)
        self.assertEqual(made, [])
        ticket = self.mint()
        self.successResultOf(checker.requestAvatarId(idOf(ticket)))
        with capturedLogs():
            self.failureResultOf(
                checker.requestAvatarId(idOf(ticket)), UnauthorizedLogin
            )
        [cache] = made
        self.assertIs(cache._clock, self.clock)
        self.assertEqual(len(cache), 1)


class ReplayCacheTestsMixin(_TestCaseBase):
    """
    Behaviour of every L{IReplayCache}. Mix into a test case that sets
    C{self.clock} and C{self.cache}, a cache on that clock that remembers at
    least 10 ids.
    """

    clock: Clock
    cache: IReplayCache

    def used(self, ticketId: str, ttl: float = 60) -> bool:
        """
        :return: whether the cache says C{ticketId}, expiring C{ttl} seconds
            from now, is used for the first time.
        """
        d = self.cache.markUsed(ticketId, self.clock.seconds() + ttl)
        first: bool = self.successResultOf(d)
        return first

    def test_interface(self) -> None:
        """
        The cache provides L{IReplayCache}.
        """
        self.assertTrue(verifyObject(IReplayCache, self.cache))

    def test_firstUseOnly(self) -> None:
        """
        The first use of an id is C{True}; later ones are C{False}; other ids
        are not affected.
        """
        self.assertTrue(self.used("a"))
        self.assertFalse(self.used("a"))
        self.assertFalse(self.used("a"))
        self.assertTrue(self.used("b"))

    def test_untilExpiry(self) -> None:
        """
        An id is remembered until its expiry, and forgotten then.
        """
        self.assertTrue(self.used("a", ttl=10))
        self.clock.advance(9.9)
        self.assertFalse(self.used("a", ttl=0.2))
        self.clock.advance(0.1)
        self.assertTrue(self.used("a", ttl=10))


class MemoryReplayCacheTests(ReplayCacheTestsMixin, SynchronousTestCase):
    """
    Tests of L{MemoryReplayCache}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.cache = self.memory = MemoryReplayCache(self.clock, 10)

    def test_default(self) -> None:
        """
        By default the cache remembers L{DEFAULT_MAX_REMEMBERED} ids, and it
        remembers at least one.
        """
        self.assertEqual(MemoryReplayCache(self.clock).maxEntries, 100_000)
        self.assertEqual(DEFAULT_MAX_REMEMBERED, 100_000)
        with self.assertRaises(ValueError):
            MemoryReplayCache(self.clock, 0)

    def test_forgetsExpired(self) -> None:
        """
        Expired ids are forgotten at the next use, so memory follows the
        tickets that are still good; an id that expired already is not
        remembered at all.
        """
        for n in range(10):
            self.assertTrue(self.used(str(n), ttl=n + 1))
        self.assertEqual(len(self.memory), 10)
        self.clock.advance(5)
        self.assertTrue(self.used("x", ttl=100))
        self.assertEqual(len(self.memory), 6)
        self.assertTrue(self.used("late", ttl=0))
        self.assertTrue(self.used("late", ttl=0))
        self.assertEqual(len(self.memory), 6)

    def test_capped(self) -> None:
        """
        When as many unexpired ids as the cap are remembered, a new id fails
        with L{CheckerBusy}, and a warning is logged once; a known id is
        still told apart; once one expires there is room again, and the
        warning is logged again when the cache is next full.
        """
        for n in range(10):
            self.assertTrue(self.used(str(n), ttl=10 + n))
        with capturedLogs() as events:
            for _ in range(3):
                d = self.memory.markUsed("new", self.clock.seconds() + 60)
                self.failureResultOf(d, CheckerBusy)
            self.assertFalse(self.used("0"))
        self.assertEqual(len(self.memory), 10)
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "10 one-time tickets are remembered, the most allowed: new ones"
                " are answered busy until some expire"
            ],
        )
        self.assertEqual(events[0]["log_level"].name, "warn")
        self.clock.advance(10)
        self.assertTrue(self.used("new"))
        with capturedLogs() as events:
            self.failureResultOf(self.memory.markUsed("newer", 1e10), CheckerBusy)
        self.assertEqual(len(events), 1)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.integers(0, 14),
                st.floats(0, 100, allow_nan=False),
                st.floats(0, 50, allow_nan=False),
            ),
            max_size=60,
        )
    )
    def test_neverTwiceNeverBeyondCap(
        self, uses: list[tuple[int, float, float]]
    ) -> None:
        """
        Whatever the uses and the passing of time, no id is accepted twice
        before its expiry, and no more than the cap are remembered.
        """
        clock = Clock()
        cache = MemoryReplayCache(clock, 5)
        accepted: dict[str, float] = {}
        with capturedLogs():
            for number, ttl, wait in uses:
                clock.advance(wait)
                now, ticketId = clock.seconds(), str(number)
                outcome: list[object] = []
                cache.markUsed(ticketId, now + ttl).addBoth(outcome.append)
                [result] = outcome
                stillGood = accepted.get(ticketId, now) > now
                if isinstance(result, Failure):
                    result.trap(CheckerBusy)
                    self.assertFalse(stillGood)
                elif result:
                    self.assertFalse(stillGood)
                    accepted[ticketId] = now + ttl
                else:
                    self.assertTrue(stillGood)
                self.assertLessEqual(len(cache), 5)


class BoundedAuthenticatorTests(SynchronousTestCase):
    """
    Tests of L{BoundedAuthenticator}.
    """

    def setUp(self) -> None:
        self.calls: list[tuple[str, Deferred[PlayerIdentity]]] = []
        self.bounded = BoundedAuthenticator(self.authenticate, limit=2)

    def authenticate(self, idString: str) -> Deferred[PlayerIdentity]:
        """
        The wrapped authenticator: records the call and returns a
        L{Deferred} that the test fires.
        """
        d: Deferred[PlayerIdentity] = Deferred()
        self.calls.append((idString, d))
        return d

    def test_default(self) -> None:
        """
        By default 64 checks may be in flight, and at least one must be.
        """
        self.assertEqual(BoundedAuthenticator(self.authenticate).limit, 64)
        self.assertEqual(DEFAULT_CHECKER_LIMIT, 64)
        with self.assertRaises(ValueError):
            BoundedAuthenticator(self.authenticate, 0)

    def test_busyAtLimit(self) -> None:
        """
        Beyond the limit, a check fails at once with L{CheckerBusy}, which is
        not L{UnauthorizedLogin}, without calling the wrapped authenticator.
        """
        first, second = self.bounded("a"), self.bounded("b")
        self.assertEqual(self.bounded.inFlight, 2)
        failure = self.failureResultOf(self.bounded("c"), CheckerBusy)
        self.assertNotIsInstance(failure.value, UnauthorizedLogin)
        self.assertEqual([idString for idString, _ in self.calls], ["a", "b"])
        self.assertEqual(self.bounded.inFlight, 2)
        self.assertNoResult(first)
        self.assertNoResult(second)

    def test_freedOnSuccess(self) -> None:
        """
        A check that succeeds frees its slot before the caller's callbacks
        run, and its result reaches the caller.
        """
        identity = PlayerIdentity("a", "A")
        results: list[tuple[PlayerIdentity, int]] = []
        self.bounded("a").addCallback(
            lambda i: results.append((i, self.bounded.inFlight))
        )
        self.bounded("b")
        self.calls[0][1].callback(identity)
        self.assertEqual(results, [(identity, 1)])
        self.assertNoResult(self.bounded("c"))
        self.assertEqual(self.bounded.inFlight, 2)

    def test_freedOnFailure(self) -> None:
        """
        A check that fails (a refused ID, a checker that broke) frees its
        slot, and its failure reaches the caller.
        """
        refused, broken = self.bounded("a"), self.bounded("b")
        self.calls[0][1].errback(UnauthorizedLogin("no"))
        self.failureResultOf(refused, UnauthorizedLogin)
        self.assertEqual(self.bounded.inFlight, 1)
        self.calls[1][1].errback(RuntimeError("database down"))
        self.failureResultOf(broken, RuntimeError)
        self.assertEqual(self.bounded.inFlight, 0)

    def test_freedOnCancel(self) -> None:
        """
        A check that the caller cancels frees its slot.
        """
        d = self.bounded("a")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.bounded.inFlight, 0)

    def test_synchronousError(self) -> None:
        """
        A wrapped authenticator that raises instead of returning a
        L{Deferred} gives a failed one, and frees the slot.
        """

        def broken(idString: str) -> Deferred[PlayerIdentity]:
            raise RuntimeError("bug")

        bounded = BoundedAuthenticator(broken, 1)
        self.failureResultOf(bounded("a"), RuntimeError)
        self.assertEqual(bounded.inFlight, 0)

    def test_aroundAuthenticate(self) -> None:
        """
        Wrapped around L{authenticate}, it gives the identity, and refuses an
        ID with control characters, like L{authenticate} itself.
        """
        with capturedLogs():
            portal = Portal(PlayerRealm(), [DevChecker()])
        bounded = BoundedAuthenticator(partial(authenticate, portal))
        self.assertEqual(
            self.successResultOf(bounded("alice")), PlayerIdentity("alice", "alice")
        )
        self.failureResultOf(bounded("alice\nforged line"), UnauthorizedLogin)
        self.assertEqual(bounded.inFlight, 0)


class TicketPluginOptionTests(SynchronousTestCase):
    """
    Tests of the options of C{--auth ticket:SECRET_FILE[:OPTION]...}.
    """

    def setUp(self) -> None:
        self.path = writeFile(self, SECRET)

    def make(self, options: str = "", path: str | None = None) -> TicketChecker:
        """
        :return: the checker C{--auth ticket:PATH:OPTIONS} makes.
        """
        argument = self.path if path is None else path
        checker = makeChecker(f"ticket:{argument}{options}")
        assert isinstance(checker, TicketChecker)
        return checker

    def refused(self, options: str) -> str:
        """
        :return: the message C{--auth ticket:PATH:OPTIONS} is refused with.
        """
        error = self.assertRaises(
            InvalidAuthArgumentString, makeChecker, f"ticket:{self.path}{options}"
        )
        return str(error)

    def test_defaults(self) -> None:
        """
        Without options, tickets live at most 24 hours and may be used again
        until they expire.
        """
        checker = self.make()
        self.assertEqual(checker.maxLifetime, 86_400)
        self.assertFalse(checker.oneTime)

    def test_options(self) -> None:
        """
        C{max-lifetime=SECONDS}, C{one-time} and C{max-remembered=N} follow
        the path in any order; the checker's cache is made on the bound
        clock with that cap.
        """
        checker = self.make(":max-lifetime=3600:one-time")
        self.assertEqual(checker.maxLifetime, 3600)
        self.assertTrue(checker.oneTime)
        checker = self.make(":one-time:max-remembered=2:max-lifetime=90.5")
        self.assertEqual(checker.maxLifetime, 90.5)
        clock = Clock()
        checker.bindReactor(clock)
        with capturedLogs():
            self.failureResultOf(
                checker.requestAvatarId(idOf(mintTicket(SECRET, "a", "A", 91, 0))),
                UnauthorizedLogin,
            )
        ticket = mintTicket(SECRET, "alice", "Alice", 90, 0)
        self.successResultOf(checker.requestAvatarId(idOf(ticket)))
        cache = checker._replayCache
        assert isinstance(cache, MemoryReplayCache)
        self.assertEqual(cache.maxEntries, 2)
        self.assertIs(cache._clock, clock)
        with capturedLogs():
            self.failureResultOf(
                checker.requestAvatarId(idOf(ticket)), UnauthorizedLogin
            )

    def test_pathWithColons(self) -> None:
        """
        A path that holds colons still names the secret file, with or
        without options after it.
        """
        path = self.mktemp() + ":with:colons"
        with open(path, "wb") as f:
            f.write(SECRET)
        self.assertFalse(self.make(path=path).oneTime)
        self.assertTrue(self.make(":one-time", path=path).oneTime)

    def test_badOptions(self) -> None:
        """
        Unknown, repeated and malformed options are refused with a message
        that names them.
        """
        self.assertIn(
            "unknown --auth ticket option 'max-life'", self.refused(":max-life=5")
        )
        for value in ["0", "-1", "soon", "nan", "inf", ""]:
            self.assertIn(
                "max-lifetime is a positive number",
                self.refused(f":max-lifetime={value}"),
            )
        self.assertIn("needs a value", self.refused(":max-lifetime"))
        self.assertIn("takes no value", self.refused(":one-time=yes"))
        self.assertIn("given twice", self.refused(":one-time:one-time"))
        self.assertIn("goes with one-time", self.refused(":max-remembered=5"))
        for value in ["0", "-1", "many", "1.5", "\N{DEVANAGARI DIGIT ONE}"]:
            self.assertIn(
                "max-remembered is a whole number",
                self.refused(f":one-time:max-remembered={value}"),
            )
        error = self.assertRaises(
            InvalidAuthArgumentString, makeChecker, "ticket::one-time"
        )
        self.assertEqual(str(error), "--auth ticket needs a SECRET_FILE")

    def test_help(self) -> None:
        """
        The plugin's help documents every option and its default.
        """
        factory = findCheckerFactory("ticket")
        for text in ["max-lifetime=SECONDS", "86400", "one-time", "max-remembered=N"]:
            self.assertIn(text, factory.authHelp)
        for text in ["SECRET_FILE", "max-lifetime=", "one-time", "max-remembered="]:
            self.assertIn(text, factory.argStringFormat)
