# -*- test-case-name: tests.test_auth -*-
"""
The C{--auth} plugins: L{ICheckerFactory} plugins, published by
C{twisted/plugins/aphelion_cred.py}, so that the operator chooses a checker
with C{--auth}:

    - C{dev} (L{DevCheckerFactory}): any non-empty ID is accepted and is the
      player id and the display name. For development only, and logged
      loudly as such.
    - C{sqlite:PATH} (L{SQLiteCheckerFactory}): accounts in an SQLite
      database. The ID is C{PLAYERID:SECRET}: C{"alice:hunter2"}.
    - C{postgresql:DSN[:password-file=PATH]} (L{PostgreSQLCheckerFactory}):
      accounts in PostgreSQL, which several AuthProxies can share, through
      psycopg 3. DSN is a libpq connection string, such as
      C{postgresql://aphelion@db.example:5432/aphelion}; the password comes
      from C{PGPASSWORD}, C{~/.pgpass} or the file of C{password-file=}.
    - C{ticket:SECRET_FILE[:OPTION]...} (L{TicketCheckerFactory}): the ID is
      a ticket signed with HMAC-SHA256 under a secret shared with a login
      website (L{aphelion.auth.tickets}). Options: C{max-lifetime=SECONDS},
      C{one-time}, C{max-remembered=N}.

Each reads its files and checks its database at start-up, and raises
L{InvalidAuthArgumentString} with a message for the operator when it cannot.
"""

from __future__ import annotations

import math
import os
import sqlite3
import string
from collections.abc import Callable, Mapping
from functools import partial
from typing import Final
from urllib.parse import quote

from twisted.cred.strcred import ICheckerFactory, InvalidAuthArgumentString
from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from aphelion.auth.credentials import DevChecker, IPlayerIdCredentials
from aphelion.auth.database import AccountsPool, DatabaseChecker
from aphelion.auth.passwords import readSecretFile
from aphelion.auth.postgresql import postgresqlConnectArguments, redactDsn
from aphelion.auth.schema import SchemaTooNew, tableExists, upgradeSchema
from aphelion.auth.tickets import (
    DEFAULT_MAX_REMEMBERED,
    DEFAULT_MAX_TICKET_LIFETIME,
    MemoryReplayCache,
    TicketChecker,
)
from aphelion.limits import safeText

__all__ = [
    "DevCheckerFactory",
    "PostgreSQLCheckerFactory",
    "SQLiteCheckerFactory",
    "TicketCheckerFactory",
]


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


class _DatabaseCheckerFactory:
    """
    What the factories of L{DatabaseChecker}s share: each checker makes its
    pool, an L{AccountsPool} of at most L{poolSize} connections, on the
    first login.

    :ivar poolSize: the most connections of each checker's pool.
    """

    credentialInterfaces = (IPlayerIdCredentials,)
    poolSize = 3
    _log = Logger()

    def __init__(self, reactor: IReactorCore | None = None) -> None:
        """
        :param reactor: the pool's reactor, bound to every checker made
            (for tests); when L{None}, the service binds its own.
        """
        self._reactor = reactor

    def _upgradeAtStart(
        self,
        upgrade: Callable[[], None],
        shown: str,
        databaseError: type[Exception],
        refusal: Callable[[Exception], str],
    ) -> None:
        """
        Make or upgrade the schema at start-up.

        :param upgrade: connects, and makes or upgrades the schema.
        :param shown: how messages name the database.
        :param databaseError: the DB-API module's C{Error}.
        :param refusal: the message for such an error.
        :raises InvalidAuthArgumentString: if the schema is newer than this
            code, or the database cannot be used.
        """
        try:
            upgrade()
        except SchemaTooNew as e:
            raise InvalidAuthArgumentString(f"{shown}: {e}") from None
        except databaseError as e:
            raise InvalidAuthArgumentString(refusal(e)) from None

    def _checker(
        self,
        paramstyle: str,
        name: str,
        dbapiName: str,
        *connectArgs: object,
        **connectKeywords: object,
    ) -> DatabaseChecker:
        """
        :param paramstyle: the paramstyle of the DB-API module.
        :param name: how the logs name the database; never give a password.
        :param dbapiName: the name of the DB-API module, and then the
            arguments of its C{connect}.
        :return: a L{DatabaseChecker} that makes its pool on first use, on
            the reactor given to this factory or else to its C{bindReactor}.
        """
        poolSize = self.poolSize

        def makePool(reactor: IReactorCore) -> ConnectionPool:
            return AccountsPool(
                dbapiName,
                *connectArgs,
                cp_min=1,
                cp_max=poolSize,
                cp_reconnect=True,
                cp_reactor=reactor,
                **connectKeywords,
            )

        checker = DatabaseChecker(makePool, paramstyle, name=name)
        if self._reactor is not None:
            checker.bindReactor(self._reactor)
        return checker


@implementer(ICheckerFactory, IPlugin)
class SQLiteCheckerFactory(_DatabaseCheckerFactory):
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
        self._upgradeAtStart(
            partial(self._upgrade, path),
            repr(path),
            sqlite3.Error,
            lambda e: f"{path!r} is not an accounts database: {e}",
        )
        return self._checker("qmark", path, "sqlite3", path, check_same_thread=False)

    def _upgrade(self, path: str) -> None:
        """
        Upgrade the schema of the SQLite accounts database at C{path}.

        :raises sqlite3.Error: if it is not an accounts database.
        """
        # Read-only when the file is; then only a current schema passes.
        connection = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True)
        try:
            cursor = connection.cursor()
            if not any(
                tableExists(cursor, sqlite3, table)
                for table in ("accounts", "accounts_schema_version")
            ):
                raise sqlite3.DatabaseError("it has no accounts table")
            version = upgradeSchema(cursor, sqlite3)
            connection.commit()
        finally:
            connection.close()
        self._log.info(
            "accounts in SQLite at {path}, schema version {version}",
            path=path,
            version=version,
        )


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


@implementer(ICheckerFactory, IPlugin)
class PostgreSQLCheckerFactory(_DatabaseCheckerFactory):
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

        self._upgradeAtStart(
            partial(self._upgrade, dsn, arguments),
            shown,
            psycopg.Error,
            lambda e: f"cannot use the accounts database {shown}: {safeText(str(e))}",
        )
        return self._checker("pyformat", shown, "psycopg", dsn, **arguments)

    def _upgrade(self, dsn: str, arguments: Mapping[str, str | int]) -> None:
        """
        Make or upgrade the schema of the PostgreSQL accounts database of
        C{dsn}.

        :param arguments: the other arguments of C{psycopg.connect}.
        :raises psycopg.Error: if it cannot be reached or used.
        """
        import psycopg
        from psycopg.conninfo import make_conninfo

        with psycopg.connect(make_conninfo(dsn, **arguments)) as connection:
            with connection.cursor() as cursor:
                version = upgradeSchema(cursor, psycopg)
        self._log.info(
            "accounts in PostgreSQL at {dsn}, schema version {version}",
            dsn=redactDsn(dsn),
            version=version,
        )


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
