# -*- test-case-name: tests.test_auth -*-
"""
The accounts tables, in SQL that SQLite and PostgreSQL both accept, and
their versions.

Both backends keep their tables in one schema, made and upgraded by
L{upgradeSchema} from one list of steps, L{SCHEMA_MIGRATIONS}: step I{n}
takes a database from version I{n} to I{n+1}. The table
C{accounts_schema_version} holds a row for every version applied (a database
from before versions were kept has only C{accounts}: it is version 0, and
step 0 leaves its accounts as they are). A database whose version is newer
than L{SCHEMA_VERSION} is refused with L{SchemaTooNew}: this code cannot
know what the newer one changed. The C{--auth} plugins upgrade the schema at
start-up, and so does each C{aphelion accounts} command.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred

from aphelion import __version__

__all__ = [
    "ACCOUNTS_SCHEMA",
    "SCHEMA_MIGRATIONS",
    "SCHEMA_VERSION",
    "SchemaTooNew",
    "ensureSchema",
    "schemaVersion",
    "sqlPlaceholder",
    "tableExists",
    "upgradeSchema",
]

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
_PLACEHOLDERS: Final = {"qmark": "?", "format": "%s", "pyformat": "%s"}


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


def tableExists(cursor: Any, dbapi: ModuleType, table: str) -> bool:
    """
    :param cursor: a DB-API cursor of the database (or an
        L{adbapi.Transaction<twisted.enterprise.adbapi.Transaction>}).
    :param dbapi: the DB-API module of the connection: C{sqlite3} or
        C{psycopg}.
    :return: whether the database has the table C{table}.
    :raises ValueError: for another DB-API module.
    """
    return _tableExists(cursor, _dialectOf(dbapi), table)


def _tableExists(cursor: Any, dialect: _Dialect, table: str) -> bool:
    cursor.execute(dialect.tableExists, (table,))
    row = cursor.fetchone()
    return row is not None and row[0] is not None


def schemaVersion(cursor: Any, dbapi: ModuleType) -> int:
    """
    Read the schema version of an accounts database; changes nothing.

    :param cursor: a DB-API cursor of the database (or an
        L{adbapi.Transaction<twisted.enterprise.adbapi.Transaction>}).
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
        L{adbapi.Transaction<twisted.enterprise.adbapi.Transaction>}).
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
