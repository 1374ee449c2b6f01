# -*- test-case-name: tests.test_auth -*-
"""
Validating the ID (contract Part 3) with C{twisted.cred}.

The client sends "the ID" in C{C2S.authenticate.id}: a string of at most 1024
bytes of UTF-8. It is presented to a L{Portal} as L{PlayerIdCredentials}; a
checker decides whether it is good, and L{PlayerRealm} yields the player's
L{PlayerIdentity} (player id, display name, attributes) for L{IPlayer}.
L{authenticate} does all of this in one call.

Three checkers, each published as an C{ICheckerFactory} plugin so that the
operator chooses one with C{--auth}:

    - C{dev} (L{DevChecker}): any non-empty ID is accepted and is the player id
      and the display name. For development only, and logged loudly as such.
    - C{sqlite:PATH} (L{DatabaseChecker}): accounts in a database reached
      through an L{adbapi.ConnectionPool<twisted.enterprise.adbapi.ConnectionPool>}.
      The ID is C{PLAYERID:SECRET}, split at the first colon (so player ids
      hold no colon, and secrets may): C{"alice:hunter2"}.
    - C{postgresql:DSN[:password-file=PATH]} (the same L{DatabaseChecker},
      through psycopg 3): accounts in PostgreSQL, which several AuthProxies
      can share. DSN is a libpq connection string, such as
      C{postgresql://aphelion@db.example:5432/aphelion}; the password comes
      from C{PGPASSWORD}, C{~/.pgpass} or the file of C{password-file=}.
    - C{ticket:SECRET_FILE[:OPTION]...} (L{TicketChecker}): the ID is a
      ticket signed with HMAC-SHA256 under a secret shared with a login
      website (format below). Options: C{max-lifetime=SECONDS}, C{one-time},
      C{max-remembered=N} (see L{TicketCheckerFactory}).

Every checker refuses an ID that holds a control character (C0, C1 or DEL:
contract Part 6), and IDs are escaped with L{safeText<aphelion.limits.safeText>}
wherever this module logs them. L{BoundedAuthenticator} bounds the checks in
flight at once: one more fails at once with L{CheckerBusy}.

Avatar ids
==========

A checker fires with an avatar id in C{bytes}, as C{twisted.cred} expects,
and the avatar id carries the whole identity so that one stateless realm
serves every checker: it is the UTF-8 of the compact JSON object
C{{"attrs": {...}, "name": ..., "sub": PLAYERID}} (see L{encodeAvatarId} and
L{decodeAvatarId}).

Tickets
=======

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
is refused, and each one is accepted once (it is remembered until its C{exp}).
SECRET is the secret file's bytes with surrounding whitespace removed, used as
they are (a hex or base64 text is not decoded). A login website in Node.js
mints one with::

    const iat = Math.floor(Date.now() / 1000), exp = iat + ttl;
    const jti = crypto.randomBytes(16).toString("base64url");
    const payload = Buffer.from(JSON.stringify({sub, name, exp, iat, jti}))
                          .toString("base64url");
    const mac = crypto.createHmac("sha256", secret).update("v1." + payload)
                      .digest("base64url");
    const ticket = `v1.${payload}.${mac}`;

Schema versions
===============

Both backends keep their tables in one schema, made and upgraded by
L{upgradeSchema} from one list of steps, L{SCHEMA_MIGRATIONS}: step I{n}
takes a database from version I{n} to I{n+1}. The table
C{accounts_schema_version} holds a row for every version applied (a database
from before versions were kept has only C{accounts}: it is version 0, and
step 0 leaves its accounts as they are). A database whose version is newer
than L{SCHEMA_VERSION} is refused with L{SchemaTooNew}: this code cannot
know what the newer one changed. The C{--auth} plugins upgrade the schema at
start-up, and so does each C{aphelion accounts} command.

A database that fails mid-run
=============================

When the database cannot answer (PostgreSQL restarting or out of reach), a
login fails with L{DatabaseUnavailable}, a L{CheckerBusy}: the client is told
to try again later, and it does not count as a try. L{DatabaseChecker} logs
one line when the database stops answering and one when it answers again,
not one per login. The plugins' pools are L{AccountsPool}s: a connection
that broke is discarded quietly, and the next login connects anew, so the
AuthProxy needs no restart; a login whose pooled connection died while it
waited (the server restarted) is tried once more on a new connection.

Stored secrets
==============

Account secrets are stored as C{pbkdf2_sha256$ITERATIONS$SALT$HASH}, where
HASH is the standard base64 of PBKDF2-HMAC-SHA256(secret, SALT, ITERATIONS):
the format of Django's default password hasher, so accounts can be shared with
a Django login website. Hashing is slow by design, so L{DatabaseChecker} does
it inside the pool's thread, never in the reactor's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import math
import os
import re
import secrets
import sqlite3
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType, ModuleType
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.cred.strcred import ICheckerFactory, InvalidAuthArgumentString
from twisted.enterprise.adbapi import (
    Connection,
    ConnectionLost,
    ConnectionPool,
    Transaction,
)
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from aphelion import __version__
from aphelion.limits import hasControlCharacters, safeText

__all__ = [
    "ACCOUNTS_SCHEMA",
    "DEFAULT_CHECKER_LIMIT",
    "DEFAULT_ITERATIONS",
    "DEFAULT_MAX_REMEMBERED",
    "DEFAULT_MAX_TICKET_LIFETIME",
    "DEV_WARNING",
    "MAX_ID_BYTES",
    "SCHEMA_MIGRATIONS",
    "SCHEMA_VERSION",
    "AccountsPool",
    "BoundedAuthenticator",
    "CheckerBusy",
    "DatabaseChecker",
    "DatabaseUnavailable",
    "DevChecker",
    "DevCheckerFactory",
    "IPlayer",
    "IPlayerIdCredentials",
    "IReplayCache",
    "MemoryReplayCache",
    "PlayerIdCredentials",
    "PlayerIdentity",
    "PlayerRealm",
    "PostgreSQLCheckerFactory",
    "ReactorNotBound",
    "SQLiteCheckerFactory",
    "SchemaTooNew",
    "TicketChecker",
    "TicketCheckerFactory",
    "authenticate",
    "checkPlayerId",
    "decodeAvatarId",
    "encodeAvatarId",
    "ensureSchema",
    "hashSecret",
    "mintTicket",
    "postgresqlConnectArguments",
    "readSecretFile",
    "redactDsn",
    "schemaVersion",
    "sqlPlaceholder",
    "upgradeSchema",
    "verifySecret",
    "verifyTicket",
]

MAX_ID_BYTES: Final = 1024
"""
The longest ID, in bytes of UTF-8, that any checker accepts (Part 1.6).
"""

DEFAULT_ITERATIONS: Final = 600_000
"""
PBKDF2 iterations for new account secrets (OWASP's 2023 figure for SHA-256).
"""

DEFAULT_MAX_TICKET_LIFETIME: Final = 86_400.0
"""
The longest a ticket may live, in seconds (Part 6: 24 hours), whatever its
C{exp} says.
"""

DEFAULT_MAX_REMEMBERED: Final = 100_000
"""
The most ticket ids a L{MemoryReplayCache} remembers at once.
"""

DEFAULT_CHECKER_LIMIT: Final = 64
"""
The most credential checks that L{BoundedAuthenticator} lets run at once
(Part 6).
"""

DEV_WARNING: Final = "authentication in DEVELOPMENT mode: any ID is accepted"

ACCOUNTS_SCHEMA: Final = """\
CREATE TABLE IF NOT EXISTS accounts (
    player_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}',
    created DOUBLE PRECISION NOT NULL
)"""
"""
The accounts table, in SQL that SQLite and PostgreSQL both accept.
C{attributes} is a JSON object of strings; C{created} is in Unix seconds.
"""

SCHEMA_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: the accounts table. A database made before versions were kept
    # has it already, and keeps its rows.
    (ACCOUNTS_SCHEMA,),
)
"""
The steps of the accounts schema: C{SCHEMA_MIGRATIONS[n]} holds the SQL
statements, in SQL that SQLite and PostgreSQL both accept, that take a
database from version C{n} to C{n + 1}. A change of schema is a new step at
the end; a step that has shipped never changes.
"""

SCHEMA_VERSION: Final = len(SCHEMA_MIGRATIONS)
"""
The version of the accounts schema that this code reads and writes.
"""

_VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS accounts_schema_version (version INTEGER PRIMARY KEY)"
)

_HASH_ALGORITHM: Final = "pbkdf2_sha256"
_MAX_ITERATIONS: Final = 10_000_000
_SALT_ALPHABET: Final = string.ascii_letters + string.digits
_TICKET_VERSION: Final = "v1"
_PLACEHOLDERS: Final = {"qmark": "?", "format": "%s", "pyformat": "%s"}

AvatarId = bytes | tuple[()]
LoginResult = tuple[type[Interface], object, Callable[[], None]]
_T = TypeVar("_T")


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


class DatabaseUnavailable(CheckerBusy):
    """
    The accounts database could not answer (it is restarting, out of reach,
    or its tables are gone); the database's error is the C{__cause__}. A
    L{CheckerBusy}, so the client is told to try again later and the try is
    not counted.
    """


class SchemaTooNew(Exception):
    """
    The accounts database has a schema newer than this code knows: a newer
    aphelion upgraded it. This code would misread it, so it refuses it.

    :ivar version: the database's schema version.
    """

    def __init__(self, version: int) -> None:
        super().__init__(
            f"the accounts database has schema version {version}, but aphelion"
            f" {__version__} knows versions up to {SCHEMA_VERSION}: run a newer"
            " aphelion, or give it a database of its own version"
        )
        self.version = version


class IPlayerIdCredentials(ICredentials):
    """
    The ID a client sent in C{C2S.authenticate.id}: an account's
    C{PLAYERID:SECRET}, a ticket, or (in development) a bare name.
    """

    id = Attribute("The ID, a L{str}, as the client sent it.")


class IPlayer(Interface):
    """
    An authenticated player, as the realm yields it.
    """

    playerId = Attribute("The identity the game knows the player by (L{str}).")
    name = Attribute("The display name (L{str}).")
    attributes = Attribute("An immutable mapping of L{str} to L{str}.")


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
    return _compactJson(_claimsOf(identity)).encode("utf-8")


def decodeAvatarId(avatarId: bytes) -> PlayerIdentity:
    """
    :return: the identity that L{encodeAvatarId} encoded.
    :raises ValueError: if C{avatarId} is not such an encoding.
    """
    return _identityFromClaims(json.loads(avatarId))


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


def _compactJson(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _claimsOf(identity: PlayerIdentity) -> dict[str, Any]:
    return {
        "sub": identity.playerId,
        "name": identity.name,
        "attrs": dict(identity.attributes),
    }


def _attributesFrom(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("attributes are an object of strings")
    return value


def _identityFromClaims(claims: object) -> PlayerIdentity:
    if not isinstance(claims, dict):
        raise ValueError("not an object")
    playerId = claims.get("sub")
    if not isinstance(playerId, str) or not playerId:
        raise ValueError("no player id")
    name = claims.get("name", playerId)
    if not isinstance(name, str):
        raise ValueError("the name is not a string")
    return PlayerIdentity(playerId, name, _attributesFrom(claims.get("attrs", {})))


def _idOf(credentials: IPlayerIdCredentials) -> str:
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


def hashSecret(
    secret: str, iterations: int = DEFAULT_ITERATIONS, salt: str | None = None
) -> str:
    """
    Hash an account secret for storage. Slow by design: do not call it in the
    reactor thread.

    :param salt: letters and digits; 22 random ones when L{None}.
    :return: C{pbkdf2_sha256$ITERATIONS$SALT$HASH}.
    """
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise ValueError(f"iterations are between 1 and {_MAX_ITERATIONS}")
    if salt is None:
        salt = "".join(secrets.choice(_SALT_ALPHABET) for _ in range(22))
    elif not salt or "$" in salt:
        raise ValueError("a salt is non-empty and holds no '$'")
    digest = hashlib.pbkdf2_hmac(
        "sha256", secret.encode("utf-8"), salt.encode("utf-8"), iterations
    )
    encoded = base64.b64encode(digest).decode("ascii")
    return f"{_HASH_ALGORITHM}${iterations}${salt}${encoded}"


def verifySecret(secret: str, stored: str) -> bool:
    """
    Check a secret against a L{hashSecret} hash, in constant time. Slow by
    design: do not call it in the reactor thread.

    :raises ValueError: if C{stored} is not a hash this module can read.
    """
    algorithm, iterations, salt, _ = stored.split("$", 3)
    if algorithm != _HASH_ALGORITHM or not iterations.isdigit():
        raise ValueError("not a pbkdf2_sha256 hash")
    computed = hashSecret(secret, int(iterations), salt)
    return hmac.compare_digest(computed.encode("utf-8"), stored.encode("utf-8"))


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
            idString = _idOf(credentials)
        except UnauthorizedLogin as e:
            return fail(e)
        return succeed(encodeAvatarId(PlayerIdentity(idString, idString)))


def sqlPlaceholder(paramstyle: str) -> str:
    """
    :return: the placeholder of a query parameter for a DB-API module of
        C{paramstyle}: C{?} for C{qmark} (sqlite3), C{%s} for C{format} and
        C{pyformat} (psycopg).
    :raises ValueError: for another paramstyle.
    """
    try:
        return _PLACEHOLDERS[paramstyle]
    except KeyError:
        raise ValueError(f"unsupported DB-API paramstyle {paramstyle!r}") from None


@dataclass(frozen=True)
class _Dialect:
    """
    What the schema's upgrade says differently to each database.

    :ivar begin: the statement that starts an upgrade: it serializes
        upgrades by several processes at once.
    :ivar end: the statement that ends it, if any.
    :ivar tableExists: a query of one parameter, a table's name, whose first
        row's first column is not L{None} when the table exists.
    """

    begin: str
    end: str | None
    tableExists: str


_SQLITE: Final = _Dialect(
    # A savepoint outside a transaction opens one, even before DDL (which
    # sqlite3 would otherwise run in autocommit): the upgrade is atomic.
    "SAVEPOINT aphelion_schema",
    "RELEASE aphelion_schema",
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
)
_POSTGRESQL: Final = _Dialect(
    # Several AuthProxies may start at once against a new database;
    # CREATE TABLE IF NOT EXISTS is not safe against a concurrent one. The
    # lock (its key spells "aphelion" in ASCII) ends with the transaction.
    "SELECT pg_advisory_xact_lock(7021206570636876910)",
    None,
    # Found through the search_path, as the queries find it.
    "SELECT to_regclass(%s)",
)
_DIALECTS: Final = {"sqlite3": _SQLITE, "psycopg": _POSTGRESQL, "psycopg2": _POSTGRESQL}


def _dialectOf(dbapi: ModuleType) -> _Dialect:
    try:
        return _DIALECTS[dbapi.__name__]
    except KeyError:
        raise ValueError(
            f"no accounts schema for the DB-API module {dbapi.__name__!r};"
            " use sqlite3 or psycopg"
        ) from None


def _tableExists(cursor: Any, dialect: _Dialect, table: str) -> bool:
    cursor.execute(dialect.tableExists, (table,))
    row = cursor.fetchone()
    return row is not None and row[0] is not None


def schemaVersion(cursor: Any, dbapi: ModuleType) -> int:
    """
    Read the schema version of an accounts database; changes nothing.

    :param cursor: a DB-API cursor of the database (or an
        L{adbapi.Transaction<Transaction>}).
    :param dbapi: the DB-API module of the connection: C{sqlite3} or
        C{psycopg}.
    :return: the version; 0 for a database without a version table, new or
        made before versions were kept.
    """
    dialect = _dialectOf(dbapi)
    if not _tableExists(cursor, dialect, "accounts_schema_version"):
        return 0
    cursor.execute("SELECT MAX(version) FROM accounts_schema_version")
    row = cursor.fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def upgradeSchema(cursor: Any, dbapi: ModuleType) -> int:
    """
    Make the accounts tables, or bring them up to L{SCHEMA_VERSION}, by the
    steps of L{SCHEMA_MIGRATIONS} the database lacks; a database of the
    current version is only read. The caller commits (an L{adbapi} pool's
    C{runInteraction} does), or rolls back if this raises.

    :param cursor: a DB-API cursor of the database (or an
        L{adbapi.Transaction<Transaction>}).
    :param dbapi: the DB-API module of the connection: C{sqlite3} or
        C{psycopg}.
    :return: L{SCHEMA_VERSION}.
    :raises SchemaTooNew: if the database's version is newer.
    :raises ValueError: for another DB-API module.
    """
    dialect = _dialectOf(dbapi)
    mark = sqlPlaceholder(dbapi.paramstyle)
    cursor.execute(dialect.begin)
    current = schemaVersion(cursor, dbapi)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(current)
    if current < SCHEMA_VERSION:
        cursor.execute(_VERSION_TABLE)
    for version in range(current, SCHEMA_VERSION):
        for statement in SCHEMA_MIGRATIONS[version]:
            cursor.execute(statement)
        cursor.execute(
            f"INSERT INTO accounts_schema_version (version) VALUES ({mark})",
            (version + 1,),
        )
    if dialect.end is not None:
        cursor.execute(dialect.end)
    return SCHEMA_VERSION


def ensureSchema(pool: ConnectionPool) -> Deferred[int]:
    """
    Make or upgrade the accounts tables of C{pool}'s database (see
    L{upgradeSchema}), in the pool's thread.

    :return: a L{Deferred} that fires with L{SCHEMA_VERSION}, or fails with
        L{SchemaTooNew} or the database's error.
    """
    d: Deferred[int] = pool.runInteraction(upgradeSchema, pool.dbapi)
    return d


_Verdict = tuple[PlayerIdentity | None, str]


def _checkAccount(
    transaction: Transaction,
    query: str,
    playerId: str,
    secret: str,
    unknownHash: str,
) -> _Verdict:
    """
    Look an account up and check its secret. Runs in the pool's thread, so it
    neither logs nor touches the reactor.

    :return: the identity, or L{None} and why not.
    """
    transaction.execute(query, (playerId,))
    row = transaction.fetchone()
    if row is None:
        # Hash anyway, so that an unknown player takes as long as a known one.
        verifySecret(secret, unknownHash)
        return None, "unknown player"
    name, storedHash, attributes = row
    try:
        if not isinstance(name, str):
            raise TypeError("the name is not text")
        if isinstance(storedHash, bytes | memoryview):
            storedHash = bytes(storedHash).decode("ascii")
        if not verifySecret(secret, storedHash):
            return None, "wrong secret"
        return PlayerIdentity(
            playerId, name, _attributesFrom(json.loads(attributes))
        ), ""
    except (ValueError, TypeError):
        return None, "unreadable account record"


def _retriedOnce(
    transaction: Transaction,
    retryOn: tuple[type[BaseException], ...],
    interaction: Callable[..., _T],
    *args: object,
) -> _T:
    """
    Run C{interaction}; if it fails with one of C{retryOn}, run it once more
    on a new connection. Runs in the pool's thread.

    A pooled connection may have died while it waited (the server restarted
    since): the first query on it fails, and a new connection answers. When
    the database is down, making the new connection fails, and that error is
    the answer.
    """
    try:
        return interaction(transaction, *args)
    except retryOn:
        transaction.reconnect()
        transaction.reopen()
        return interaction(transaction, *args)


class _DiscardingConnection(Connection):
    """
    A pooled connection whose check after a failed interaction (rollback,
    then the pool's C{good_sql}) discards it quietly when it fails: the next
    interaction in its thread connects anew. adbapi's own logs an error for
    each failure, so a database that is down would log one per login.
    """

    def rollback(self) -> None:
        """
        Roll back and check the connection; discard it if either fails.
        """
        connection = self._connection
        assert connection is not None
        try:
            connection.rollback()
            cursor = connection.cursor()
            cursor.execute(self._pool.good_sql)
            cursor.close()
            connection.commit()
        except Exception:
            # Not swallowed: the interaction's own error, which led here, is
            # what the pool raises. This one only says the connection broke.
            pool = self._pool
            if pool.connections.get(pool.threadID()) is connection:
                pool.disconnect(connection)


class _ReconnectingTransaction(Transaction):
    """
    A transaction that connects anew, quietly, when its pooled connection
    cannot make a cursor (it was closed since its last use).
    """

    def reopen(self) -> None:
        """
        Open a cursor, on a new connection if the pooled one is closed.
        """
        if self._cursor is not None:
            self.close()
        try:
            self._cursor = self._connection.cursor()
        except Exception:
            # Closed: the database's error says only that. A new connection
            # works, or fails with the error worth reporting.
            self.reconnect()
            self._cursor = self._connection.cursor()


class AccountsPool(ConnectionPool):
    """
    An L{adbapi.ConnectionPool<ConnectionPool>} that survives its database's
    restarts: C{cp_reconnect} is on, and a connection that fails the check
    after a failed interaction, or is found closed, is discarded without a
    log line and replaced on its thread's next use. The C{--auth} plugins
    make their L{DatabaseChecker}s on one; it takes the same arguments.
    """

    connectionFactory = _DiscardingConnection
    transactionFactory = _ReconnectingTransaction
    reconnect = True


@implementer(ICredentialsChecker)
class DatabaseChecker:
    """
    Accounts in the C{accounts} table (L{ACCOUNTS_SCHEMA}) of a database
    reached through an L{adbapi.ConnectionPool<ConnectionPool>}. The ID is
    C{PLAYERID:SECRET}, split at the first colon. The lookup and the slow hash
    run in the pool's thread.

    The C{--auth} plugins make one on an L{AccountsPool}: C{sqlite:PATH}
    with sqlite3 (paramstyle C{qmark}), C{postgresql:DSN} with psycopg 3
    (C{pyformat}); both are tested against real databases. Made by hand::

        pool = AccountsPool("psycopg", "dbname=aphelion", cp_reactor=reactor)
        await ensureSchema(pool)
        checker = DatabaseChecker(pool, name="dbname=aphelion")

    For SQLite, make the pool with C{check_same_thread=False}: the pool
    closes its connections from the reactor thread at shutdown.

    Given a callable rather than a pool, the checker makes the pool on the
    first login, on the reactor that L{bindReactor} gave it.

    When the database cannot answer, a login fails with
    L{DatabaseUnavailable}; the first such failure is logged, and so is the
    first answer after it.

    :ivar unknownHash: the hash that a secret is checked against when the
        player is unknown, so that refusals take the same time either way.
        Its iteration count should match that of the stored hashes.
    :ivar name: how the logs name the database: a path, or a DSN without
        its password.
    """

    credentialInterfaces = (IPlayerIdCredentials,)
    unknownHash = f"{_HASH_ALGORITHM}${DEFAULT_ITERATIONS}$unknownplayer$"
    _log = Logger()

    def __init__(
        self,
        pool: ConnectionPool | Callable[[IReactorCore], ConnectionPool],
        paramstyle: str | None = None,
        name: str = "",
    ) -> None:
        """
        :param pool: the pool, or a callable that makes it on the first
            login with the reactor given to L{bindReactor} (so that nothing
            touches a reactor before it runs).
        :param paramstyle: the DB-API module's paramstyle; read from the
            pool's module when L{None}.
        :param name: how the logs name the database; never give a password.
        """
        self._pool: ConnectionPool | None = None
        self._makePool: Callable[[IReactorCore], ConnectionPool] | None = None
        self._reactor: IReactorCore | None = None
        self._ownsPool = False
        self._query: str | None = None
        self._answering = True
        self.name = name or "(unnamed)"
        if isinstance(pool, ConnectionPool):
            self._pool = pool
        else:
            self._makePool = pool
        if paramstyle is not None:
            self._query = self._queryFor(paramstyle)

    @staticmethod
    def _queryFor(paramstyle: str) -> str:
        return (
            "SELECT name, secret_hash, attributes FROM accounts"
            f" WHERE player_id = {sqlPlaceholder(paramstyle)}"
        )

    def bindReactor(self, reactor: IReactorCore) -> None:
        """
        Called by the service with the reactor before the first login: the
        pool, if this checker is to make it, is made on C{reactor}. A pool
        given to the checker keeps its own reactor.
        """
        self._reactor = reactor

    @property
    def pool(self) -> ConnectionPool:
        """
        The connection pool, made now if it was to be made on first use.

        :raises ReactorNotBound: if it is to be made but L{bindReactor} has
            not been called.
        """
        if self._pool is None:
            assert self._makePool is not None
            if self._reactor is None:
                raise ReactorNotBound(
                    "DatabaseChecker.bindReactor was not called before the first login"
                )
            self._pool = self._makePool(self._reactor)
            self._ownsPool = True
        if self._query is None:
            self._query = self._queryFor(self._pool.dbapi.paramstyle)
        return self._pool

    def close(self) -> None:
        """
        Close the pool if this checker made it; a pool that was given to it
        belongs to the caller.
        """
        if self._ownsPool and self._pool is not None:
            self._pool.close()
            self._pool = None

    def requestAvatarId(self, credentials: IPlayerIdCredentials) -> Deferred[AvatarId]:
        """
        :return: a L{Deferred} that fires with the account's avatar id, or
            fails with L{UnauthorizedLogin} for a bad ID, with
            L{DatabaseUnavailable} when the database cannot answer, or with
            L{ReactorNotBound} when the pool cannot be made yet.
        """
        try:
            playerId, colon, secret = _idOf(credentials).partition(":")
            if not (playerId and colon and secret):
                raise UnauthorizedLogin("the ID is PLAYERID:SECRET")
            pool = self.pool
        except (UnauthorizedLogin, ReactorNotBound) as e:
            return fail(e)
        dbapi = pool.dbapi
        d: Deferred[_Verdict] = pool.runInteraction(
            _retriedOnce,
            (dbapi.OperationalError, dbapi.InterfaceError),
            _checkAccount,
            self._query,
            playerId,
            secret,
            self.unknownHash,
        )
        return d.addCallbacks(
            self._verdictReached,
            self._databaseFailed,
            callbackArgs=(playerId,),
            errbackArgs=(dbapi.Error,),
        )

    def _databaseFailed(
        self, failure: Failure, databaseError: type[Exception]
    ) -> Failure:
        error = failure.value
        if not isinstance(error, databaseError | ConnectionLost):
            return failure
        if self._answering:
            self._answering = False
            self._log.warn(
                "accounts database {database} unreachable: {error}; logins are"
                " answered OTHER 'try again later' until it answers",
                database=self.name,
                error=safeText(str(error) or type(error).__name__),
            )
        unavailable = DatabaseUnavailable("the accounts database cannot answer")
        unavailable.__cause__ = error
        return Failure(unavailable)

    def _verdictReached(self, verdict: _Verdict, playerId: str) -> AvatarId:
        if not self._answering:
            self._answering = True
            self._log.info(
                "accounts database {database} reachable again", database=self.name
            )
        identity, reason = verdict
        if identity is not None:
            return encodeAvatarId(identity)
        if reason == "unknown player":
            # The client chose this text: it may be a mistyped secret, so it is
            # not logged.
            self._log.info("ID refused: unknown player")
        elif reason == "wrong secret":
            self._log.info(
                "ID refused for {playerId}: wrong secret", playerId=safeText(playerId)
            )
        else:
            self._log.error(
                "ID refused for {playerId}: {reason}",
                playerId=safeText(playerId),
                reason=reason,
            )
        raise UnauthorizedLogin("unknown player or wrong secret")


_URL_SCHEMES: Final = ("postgresql://", "postgres://")
_KEYWORD_PASSWORD: Final = re.compile(
    r"""(?:^|(?<=\s))password\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S*)\s*"""
)


def redactDsn(dsn: str) -> str:
    """
    :return: the libpq connection string C{dsn} without its password, for
        logs and messages: C{postgresql://aphelion:pw@db/aphelion} becomes
        C{postgresql://aphelion@db/aphelion}, and a C{password} parameter of
        the URL's query or of a C{keyword=value} string is left out.
    """
    if not dsn.startswith(_URL_SCHEMES):
        return _KEYWORD_PASSWORD.sub("", dsn).strip()
    parts = urlsplit(dsn)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}@{hosts}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key == "password" for key, _ in pairs):
        query = urlencode([(k, v) for k, v in pairs if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


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
    Make a ticket (see the module docstring) that L{TicketChecker} accepts
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
    claims = _claimsOf(PlayerIdentity(playerId, name, attributes or {}))
    issued = math.floor(now)
    claims.update(iat=issued, exp=issued + math.ceil(ttl), jti=ticketId)
    signed = f"{_TICKET_VERSION}.{_b64encode(_compactJson(claims).encode('utf-8'))}"
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
        identity = _identityFromClaims(claims)
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


@implementer(ICredentialsChecker)
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
                self._secret, _idOf(credentials), clock.seconds(), self.maxLifetime
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


@implementer(IRealm)
class PlayerRealm:
    """
    Yields the L{PlayerIdentity} that an avatar id from any of this module's
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
        _idOf(credentials)
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


def readSecretFile(path: str, kind: str = "ticket secret") -> bytes:
    """
    Read a secret at start-up: the file's bytes with surrounding whitespace
    removed.

    :param kind: what the secret is, for the messages.
    :raises ValueError: with a message for the operator, if the file cannot
        be read or holds only whitespace.
    """
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as e:
        raise ValueError(
            f"cannot read the {kind} file {path!r}: {e.strerror}"
        ) from None
    if not secret:
        raise ValueError(f"the {kind} file {path!r} is empty")
    return secret


@implementer(ICheckerFactory, IPlugin)
class DevCheckerFactory:
    """
    C{--auth dev}: makes a L{DevChecker}.
    """

    authType = "dev"
    authHelp = (
        "Development mode: any non-empty ID without control characters is\n"
        "accepted and is the player id and the display name. Never use it\n"
        "where players are real; it is logged as a warning at start-up."
    )
    argStringFormat = "No argument."
    credentialInterfaces = (IPlayerIdCredentials,)

    def generateChecker(self, argstring: str = "") -> DevChecker:
        """
        :return: a L{DevChecker}.
        """
        if argstring:
            raise InvalidAuthArgumentString("--auth dev takes no argument")
        return DevChecker()


@implementer(ICheckerFactory, IPlugin)
class SQLiteCheckerFactory:
    """
    C{--auth sqlite:PATH}: makes a L{DatabaseChecker} on an existing SQLite
    accounts database, after upgrading its schema (L{upgradeSchema}). The
    pool, an L{AccountsPool}, is made on the first login, on the reactor
    given to the checker's C{bindReactor}.
    """

    authType = "sqlite"
    authHelp = (
        "Accounts in an SQLite database, managed with 'aphelion accounts'.\n"
        "Clients send PLAYERID:SECRET as their ID. The database must exist\n"
        "(create it with 'aphelion accounts add --db PATH PLAYERID'); its\n"
        "tables are upgraded at start-up."
    )
    argStringFormat = "The path of the SQLite accounts database."
    credentialInterfaces = (IPlayerIdCredentials,)
    poolSize = 3
    _log = Logger()

    def __init__(self, reactor: IReactorCore | None = None) -> None:
        """
        :param reactor: the pool's reactor, bound to every checker made
            (for tests); when L{None}, the service binds its own.
        """
        self._reactor = reactor

    def generateChecker(self, argstring: str = "") -> DatabaseChecker:
        """
        Check at start-up that C{argstring} names an SQLite accounts
        database, and bring its schema up to date.

        :return: a L{DatabaseChecker} that makes its pool on first use.
        :raises InvalidAuthArgumentString: if it does not, or if its schema
            is newer than this code.
        """
        if not argstring:
            raise InvalidAuthArgumentString("--auth sqlite needs a PATH")
        path = os.path.abspath(argstring)
        if not os.path.isfile(path):
            raise InvalidAuthArgumentString(
                f"no accounts database at {path!r}; create one with "
                f"'aphelion accounts add --db {argstring} PLAYERID'"
            )
        try:
            # Read-only when the file is; then only a current schema passes.
            connection = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True)
            try:
                cursor = connection.cursor()
                if not any(
                    _tableExists(cursor, _SQLITE, table)
                    for table in ("accounts", "accounts_schema_version")
                ):
                    raise sqlite3.DatabaseError("it has no accounts table")
                version = upgradeSchema(cursor, sqlite3)
                connection.commit()
            finally:
                connection.close()
        except SchemaTooNew as e:
            raise InvalidAuthArgumentString(f"{path!r}: {e}") from None
        except sqlite3.Error as e:
            raise InvalidAuthArgumentString(
                f"{path!r} is not an accounts database: {e}"
            ) from None
        self._log.info(
            "accounts in SQLite at {path}, schema version {version}",
            path=path,
            version=version,
        )
        poolSize = self.poolSize

        def makePool(reactor: IReactorCore) -> ConnectionPool:
            return AccountsPool(
                "sqlite3",
                path,
                check_same_thread=False,
                cp_min=1,
                cp_max=poolSize,
                cp_reconnect=True,
                cp_reactor=reactor,
            )

        checker = DatabaseChecker(makePool, "qmark", name=path)
        if self._reactor is not None:
            checker.bindReactor(self._reactor)
        return checker


_PASSWORD_FILE_OPTION: Final = ":password-file="


def _splitPostgreSQLArgument(argstring: str) -> tuple[str, str | None]:
    """
    Split the argument of C{--auth postgresql:} into the DSN and the path of
    the option C{:password-file=PATH} that may end it.

    :raises InvalidAuthArgumentString: for an empty DSN or path.
    """
    dsn, option, path = argstring.rpartition(_PASSWORD_FILE_OPTION)
    if not option:
        dsn, path = argstring, ""
    elif not path:
        raise InvalidAuthArgumentString(
            "--auth postgresql: password-file= needs a PATH"
        )
    if not dsn.strip():
        raise InvalidAuthArgumentString(
            "--auth postgresql needs a DSN, such as"
            " postgresql://aphelion@localhost/aphelion"
        )
    return dsn, path or None


def postgresqlConnectArguments(
    dsn: str, passwordFile: str | None = None
) -> dict[str, str | int]:
    """
    Check a libpq connection string, and read the password file, at
    start-up; used by C{--auth postgresql} and C{aphelion accounts}.

    :param passwordFile: a file whose content, without surrounding
        whitespace, is the password; else libpq finds one in C{PGPASSWORD}
        or C{~/.pgpass}, or in the DSN.
    :return: the keyword arguments of C{psycopg.connect} besides the DSN:
        the password of the file, and time limits (a connection is given up
        after 5 s, and a query whose packets go unanswered for 10 s fails)
        unless the DSN or C{PGCONNECT_TIMEOUT} sets them.
    :raises ValueError: with a message for the operator (and without the
        password), if psycopg is not installed, the DSN cannot be parsed or
        the file cannot be read.
    """
    try:
        from psycopg import Error as PsycopgError
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ValueError(
            "PostgreSQL needs psycopg 3: pip install 'aphelion[postgresql]'"
        ) from None
    try:
        parameters = conninfo_to_dict(dsn)
    except PsycopgError as e:
        raise ValueError(f"not a PostgreSQL DSN ({e})") from None
    arguments: dict[str, str | int] = {}
    if "connect_timeout" not in parameters and "PGCONNECT_TIMEOUT" not in os.environ:
        arguments["connect_timeout"] = 5
    if "tcp_user_timeout" not in parameters:
        arguments["tcp_user_timeout"] = 10_000
    if passwordFile is not None:
        try:
            password = readSecretFile(passwordFile, "password").decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"the password file {passwordFile!r} is not UTF-8"
            ) from None
        arguments["password"] = password
    return arguments


@implementer(ICheckerFactory, IPlugin)
class PostgreSQLCheckerFactory:
    """
    C{--auth postgresql:DSN[:password-file=PATH]}: makes a L{DatabaseChecker}
    on a PostgreSQL database through psycopg 3, after making or upgrading its
    schema (L{upgradeSchema}) at start-up. The pool, an L{AccountsPool}, is
    made on the first login, on the reactor given to the checker's
    C{bindReactor}.

    The password is never needed on the command line: libpq reads
    C{PGPASSWORD} or C{~/.pgpass}, or C{password-file=} names a file. A
    password in the DSN works, with a warning; it is left out of every log
    line and message (L{redactDsn}).
    """

    authType = "postgresql"
    authHelp = (
        "Accounts in a PostgreSQL database, which several AuthProxies can\n"
        "share, managed with 'aphelion accounts --db postgresql://...'.\n"
        "Clients send PLAYERID:SECRET as their ID. DSN is a libpq connection\n"
        "string: postgresql://USER@HOST:PORT/DBNAME or 'host=H dbname=D ...'.\n"
        "The password comes from PGPASSWORD, ~/.pgpass, or the file named by\n"
        "a final :password-file=PATH; not from the DSN, which the process list\n"
        "shows to every user of the host. The tables are made or upgraded at\n"
        "start-up, which fails if the database cannot be reached. Needs\n"
        "psycopg 3: pip install 'aphelion[postgresql]'.\n"
        "Example: postgresql:postgresql://aphelion@db.example/aphelion"
        ":password-file=/etc/aphelion/db.password"
    )
    argStringFormat = (
        "DSN[:password-file=PATH]: a libpq connection string, then the file"
        " that holds the password."
    )
    credentialInterfaces = (IPlayerIdCredentials,)
    poolSize = 3
    _log = Logger()

    def __init__(self, reactor: IReactorCore | None = None) -> None:
        """
        :param reactor: the pool's reactor, bound to every checker made
            (for tests); when L{None}, the service binds its own.
        """
        self._reactor = reactor

    def generateChecker(self, argstring: str = "") -> DatabaseChecker:
        """
        Connect at start-up, and make or upgrade the schema.

        :return: a L{DatabaseChecker} that makes its pool on first use.
        :raises InvalidAuthArgumentString: with the DSN without its password,
            if psycopg is missing, the DSN or password file is wrong, the
            database cannot be reached, or its schema is newer than this
            code.
        """
        dsn, passwordFile = _splitPostgreSQLArgument(argstring)
        shown = redactDsn(dsn)
        try:
            arguments = postgresqlConnectArguments(dsn, passwordFile)
        except ValueError as e:
            raise InvalidAuthArgumentString(f"--auth postgresql: {e}") from None
        if shown != dsn:
            self._log.warn(
                "the DSN {dsn} holds a password, which every user of this host"
                " can read in the process list; use PGPASSWORD, ~/.pgpass or"
                " password-file= instead",
                dsn=shown,
            )
        import psycopg
        from psycopg.conninfo import make_conninfo

        try:
            with psycopg.connect(make_conninfo(dsn, **arguments)) as connection:
                with connection.cursor() as cursor:
                    version = upgradeSchema(cursor, psycopg)
        except SchemaTooNew as e:
            raise InvalidAuthArgumentString(f"{shown}: {e}") from None
        except psycopg.Error as e:
            raise InvalidAuthArgumentString(
                f"cannot use the accounts database {shown}: {safeText(str(e))}"
            ) from None
        self._log.info(
            "accounts in PostgreSQL at {dsn}, schema version {version}",
            dsn=shown,
            version=version,
        )
        poolSize = self.poolSize

        def makePool(reactor: IReactorCore) -> ConnectionPool:
            return AccountsPool(
                "psycopg",
                dsn,
                cp_min=1,
                cp_max=poolSize,
                cp_reconnect=True,
                cp_reactor=reactor,
                **arguments,
            )

        checker = DatabaseChecker(makePool, "pyformat", name=shown)
        if self._reactor is not None:
            checker.bindReactor(self._reactor)
        return checker


_TICKET_OPTIONS: Final = frozenset({"max-lifetime", "one-time", "max-remembered"})
_OPTION_NAME_CHARACTERS: Final = frozenset(string.ascii_lowercase + "-")


def _splitTicketArgument(argstring: str) -> tuple[str, dict[str, str]]:
    """
    Split the argument of C{--auth ticket:} into the secret file's path and
    the options that end it, each after a colon: C{max-lifetime=SECONDS},
    C{one-time} and C{max-remembered=N}. Options are read from the end, so
    that a path may hold colons.

    :return: the path and the options, by name (C{""} for C{one-time}).
    :raises InvalidAuthArgumentString: for an unknown C{name=value} option,
        an option given twice, C{one-time} with a value or another option
        without one.
    """
    parts = argstring.split(":")
    options: dict[str, str] = {}
    while len(parts) > 1:
        name, equals, value = parts[-1].partition("=")
        if name not in _TICKET_OPTIONS:
            if equals and name and set(name) <= _OPTION_NAME_CHARACTERS:
                raise InvalidAuthArgumentString(
                    f"unknown --auth ticket option {name!r}; the options are "
                    "max-lifetime=SECONDS, one-time and max-remembered=N"
                )
            break
        if name in options:
            raise InvalidAuthArgumentString(f"--auth ticket: {name} given twice")
        if (name == "one-time") == bool(equals):
            raise InvalidAuthArgumentString(
                "--auth ticket: one-time takes no value"
                if equals
                else f"--auth ticket: {name} needs a value ({name}=...)"
            )
        options[name] = value
        parts.pop()
    return ":".join(parts), options


@implementer(ICheckerFactory, IPlugin)
class TicketCheckerFactory:
    """
    C{--auth ticket:SECRET_FILE[:OPTION]...}: makes a L{TicketChecker} with
    the secret read from the file at start-up. The options: C{max-lifetime=
    SECONDS} (default L{DEFAULT_MAX_TICKET_LIFETIME}), C{one-time} (each
    ticket accepted once, its C{jti} remembered in a L{MemoryReplayCache})
    and, with it, C{max-remembered=N} (default L{DEFAULT_MAX_REMEMBERED}).
    """

    authType = "ticket"
    authHelp = (
        "Tickets signed with HMAC-SHA256 by a login website:\n"
        "v1.<base64url(JSON {sub, name, exp, iat, jti, attrs})>.<base64url(HMAC)>.\n"
        "The secret is the file's content without surrounding whitespace.\n"
        "Options may follow the path, each after a colon:\n"
        "  max-lifetime=SECONDS  refuse a ticket whose exp is further than\n"
        "      this from now or from its iat (default 86400: 24 hours)\n"
        "  one-time  accept each ticket once: its jti is remembered until\n"
        "      it expires, and a ticket without jti is refused\n"
        "  max-remembered=N  with one-time, the most jti remembered at once\n"
        "      (default 100000); beyond, logins are answered busy\n"
        "Example: ticket:/etc/aphelion/ticket.secret:max-lifetime=3600:one-time"
    )
    argStringFormat = (
        "SECRET_FILE[:max-lifetime=SECONDS][:one-time][:max-remembered=N]: the"
        " path of the file that holds the shared secret, then options."
    )
    credentialInterfaces = (IPlayerIdCredentials,)
    _log = Logger()

    def __init__(self, clock: IReactorTime | None = None) -> None:
        """
        :param clock: the clock expiries are checked against, given to every
            checker made (for tests); when L{None}, the service binds its
            reactor.
        """
        self._clock = clock

    def generateChecker(self, argstring: str = "") -> TicketChecker:
        """
        :return: a L{TicketChecker}.
        :raises InvalidAuthArgumentString: if the secret file is missing,
            unreadable or empty, or an option is wrong.
        """
        path, options = _splitTicketArgument(argstring)
        if not path:
            raise InvalidAuthArgumentString("--auth ticket needs a SECRET_FILE")
        maxLifetime = DEFAULT_MAX_TICKET_LIFETIME
        if "max-lifetime" in options:
            try:
                maxLifetime = float(options["max-lifetime"])
            except ValueError:
                maxLifetime = math.nan
            if not (maxLifetime > 0 and math.isfinite(maxLifetime)):
                raise InvalidAuthArgumentString(
                    "--auth ticket: max-lifetime is a positive number of seconds,"
                    f" not {options['max-lifetime']!r}"
                )
        maxRemembered = DEFAULT_MAX_REMEMBERED
        if "max-remembered" in options:
            if "one-time" not in options:
                raise InvalidAuthArgumentString(
                    "--auth ticket: max-remembered goes with one-time"
                )
            text = options["max-remembered"]
            if not (text.isdigit() and text.isascii() and int(text) >= 1):
                raise InvalidAuthArgumentString(
                    f"--auth ticket: max-remembered is a whole number of at least"
                    f" 1, not {text!r}"
                )
            maxRemembered = int(text)
        try:
            secret = readSecretFile(path)
        except ValueError as e:
            raise InvalidAuthArgumentString(str(e)) from None
        if len(secret) < 32:
            self._log.warn(
                "the ticket secret in {path} is only {length} bytes; "
                "use at least 32 random ones",
                path=path,
                length=len(secret),
            )
        replayCache = None
        if "one-time" in options:
            replayCache = partial(MemoryReplayCache, maxEntries=maxRemembered)
        return TicketChecker(
            secret, self._clock, maxLifetime=maxLifetime, replayCache=replayCache
        )
