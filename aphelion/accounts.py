# -*- test-case-name: tests.test_accounts -*-
"""
The console commands C{aphelion accounts add|remove|list} and C{aphelion
ticket}, as L{usage.Options} subclasses with a C{run(stdout, stderr)} method
that returns the exit status.

These run in a console command, not in a reactor, so they use DB-API
directly and may block: sqlite3 for C{--db PATH}, psycopg 3 for C{--db
postgresql://...}, through L{addAccount}, L{removeAccount} and
L{listAccounts} (whose home is L{aphelion.auth.accounts}). Every command
makes or upgrades the schema first
(L{upgradeSchema<aphelion.auth.upgradeSchema>}), and refuses a database
whose schema is newer than this code.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import IO, Any

from twisted.python import usage

from aphelion.auth import (
    DEFAULT_ITERATIONS,
    SchemaTooNew,
    checkPlayerId,
    mintTicket,
    postgresqlConnectArguments,
    readSecretFile,
    redactDsn,
    upgradeSchema,
)
from aphelion.auth.accounts import (
    Account,
    DBAPIConnection,
    addAccount,
    listAccounts,
    removeAccount,
)
from aphelion.auth.postgresql import POSTGRESQL_URL_SCHEMES
from aphelion.limits import hasControlCharacters

__all__ = [
    "Account",
    "AccountsOptions",
    "AddAccountOptions",
    "ListAccountsOptions",
    "RemoveAccountOptions",
    "TicketOptions",
    "addAccount",
    "listAccounts",
    "removeAccount",
]


def _attribute(value: str) -> tuple[str, str]:
    key, equals, text = value.partition("=")
    if not key or not equals:
        raise usage.UsageError(f"attributes are KEY=VALUE, not {value!r}")
    return key, text


class _CommandOptions(usage.Options):
    """
    Options of a console command that L{run}s.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: Callable[[], float] = time.time

    def run(self, stdout: IO[str], stderr: IO[str] | None = None) -> int:
        """
        Carry out the command.

        :param stdout: where results go.
        :param stderr: where errors go; L{sys.stderr} when L{None}.
        :return: the exit status.
        """
        try:
            self.execute(stdout)
        except _CommandFailed as e:
            (stderr if stderr is not None else sys.stderr).write(f"error: {e}\n")
            return 1
        return 0

    def execute(self, stdout: IO[str]) -> None:
        """
        Carry out the command; called by L{run}.

        :raises _CommandFailed: with a message for the operator.
        """
        raise NotImplementedError()


class _CommandFailed(Exception):
    """
    The command could not be carried out; the message says why.
    """


class _AttributeOptions(usage.Options):
    """
    The C{-a/--attribute KEY=VALUE} option, for commands that describe a
    player.
    """

    def __init__(self) -> None:
        super().__init__()
        self["attributes"] = {}

    def opt_attribute(self, value: str) -> None:
        """
        An attribute KEY=VALUE of the player; may be repeated.
        """
        key, text = _attribute(value)
        self["attributes"][key] = text

    opt_a = opt_attribute


class _DatabaseOptions(_CommandOptions):
    """
    A command on the accounts database named by C{--db}: the path of an
    SQLite file, or a PostgreSQL URL.

    :ivar dbapi: the DB-API module of the database, once C{--db} is parsed.
    """

    optParameters: list[list[Any]] = [
        [
            "db",
            None,
            None,
            "The accounts database: the path of an SQLite file, or a PostgreSQL"
            " URL, postgresql://USER@HOST:PORT/DBNAME.",
        ],
        [
            "password-file",
            None,
            None,
            "With a PostgreSQL URL: the file that holds the password (else"
            " PGPASSWORD or ~/.pgpass).",
        ],
    ]
    createDatabase = False
    dbapi: ModuleType = sqlite3

    def postOptions(self) -> None:
        """
        Require C{--db}; take C{--password-file} with a PostgreSQL URL only.
        """
        if not self["db"]:
            raise usage.UsageError("--db PATH or --db postgresql://... is required")
        if self["password-file"] and not self.isPostgreSQL():
            raise usage.UsageError("--password-file goes with --db postgresql://...")

    def isPostgreSQL(self) -> bool:
        """
        :return: whether C{--db} is a PostgreSQL URL.
        """
        db: str = self["db"]
        return db.startswith(POSTGRESQL_URL_SCHEMES)

    def connect(self) -> DBAPIConnection:
        """
        Connect, and make or upgrade the schema; sets L{dbapi}.

        :return: a connection to the database.
        :raises _CommandFailed: if the database cannot be reached, an SQLite
            one does not exist and the command does not create it, or its
            schema is newer than this code.
        """
        if self.isPostgreSQL():
            connection, shown = self._connectPostgreSQL(), redactDsn(self["db"])
        else:
            connection, shown = self._connectSQLite(), repr(self["db"])
        try:
            upgradeSchema(connection.cursor(), self.dbapi)
            connection.commit()
        except SchemaTooNew as e:
            connection.close()
            raise _CommandFailed(str(e)) from None
        except self.dbapi.Error as e:
            connection.close()
            raise _CommandFailed(f"cannot use {shown}: {e}") from None
        return connection

    def _connectSQLite(self) -> DBAPIConnection:
        path = self["db"]
        self.dbapi = sqlite3
        try:
            if not os.path.isfile(path):
                if not self.createDatabase:
                    raise _CommandFailed(f"no accounts database at {path!r}")
                # Hashes can be attacked offline: readable by the owner only.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return sqlite3.connect(path)
        except (OSError, sqlite3.Error) as e:
            raise _CommandFailed(f"cannot open {path!r}: {e}") from None

    def _connectPostgreSQL(self) -> DBAPIConnection:
        dsn = self["db"]
        try:
            arguments = postgresqlConnectArguments(dsn, self["password-file"])
        except ValueError as e:
            raise _CommandFailed(str(e)) from None
        import psycopg
        from psycopg.conninfo import make_conninfo

        self.dbapi = psycopg
        try:
            return psycopg.connect(make_conninfo(dsn, **arguments))
        except psycopg.Error as e:
            raise _CommandFailed(f"cannot connect to {redactDsn(dsn)}: {e}") from None


class AddAccountOptions(_AttributeOptions, _DatabaseOptions):
    """
    C{aphelion accounts add}: add an account, creating the database if need
    be. Without C{--secret-file}, a secret is generated and printed.
    """

    synopsis = (
        "--db PATH|URL [--name NAME] [--secret-file FILE] [--attribute KEY=VALUE]..."
        " PLAYERID"
    )
    optParameters: list[list[Any]] = [
        *_DatabaseOptions.optParameters,
        ["name", None, None, "Display name (default: the player id)."],
        [
            "secret-file",
            None,
            None,
            "File that holds the secret (surrounding whitespace is removed);"
            " without it a secret is generated and printed.",
        ],
        [
            "iterations",
            None,
            DEFAULT_ITERATIONS,
            "PBKDF2-HMAC-SHA256 iterations of the stored hash.",
            int,
        ],
    ]
    createDatabase = True

    def parseArgs(self, playerId: str) -> None:  # type: ignore[override]
        """
        Take the player id.
        """
        self["playerId"] = playerId

    def postOptions(self) -> None:
        """
        Check the player id and iterations.
        """
        super().postOptions()
        try:
            checkPlayerId(self["playerId"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if self["iterations"] < 1:
            raise usage.UsageError("--iterations is at least 1")

    def execute(self, stdout: IO[str]) -> None:
        """
        Add the account; print the secret if it was generated.
        """
        playerId = self["playerId"]
        if self["secret-file"]:
            try:
                secret = readSecretFile(self["secret-file"], "secret").decode("utf-8")
            except (ValueError, UnicodeDecodeError) as e:
                raise _CommandFailed(str(e)) from None
            generated = False
        else:
            secret, generated = secrets.token_urlsafe(24), True
        connection = self.connect()
        try:
            addAccount(
                connection,
                playerId,
                self["name"] or playerId,
                secret,
                self.seconds(),
                self["attributes"],
                dbapi=self.dbapi,
                iterations=self["iterations"],
            )
        except (ValueError, SchemaTooNew) as e:
            raise _CommandFailed(str(e)) from None
        except self.dbapi.IntegrityError:
            raise _CommandFailed(f"player {playerId!r} already exists") from None
        except self.dbapi.Error as e:
            raise _CommandFailed(f"cannot add {playerId!r}: {e}") from None
        finally:
            connection.close()
        stdout.write(f"added player {playerId!r}\n")
        if generated:
            stdout.write(f"secret: {secret}\n")
            stdout.write(f"ID to send: {playerId}:{secret}\n")


class RemoveAccountOptions(_DatabaseOptions):
    """
    C{aphelion accounts remove}: remove an account.
    """

    synopsis = "--db PATH|URL PLAYERID"

    def parseArgs(self, playerId: str) -> None:  # type: ignore[override]
        """
        Take the player id.
        """
        self["playerId"] = playerId

    def execute(self, stdout: IO[str]) -> None:
        """
        Remove the account; fail if there is none.
        """
        playerId = self["playerId"]
        connection = self.connect()
        try:
            removed = removeAccount(connection, playerId, self.dbapi)
        except self.dbapi.Error as e:
            raise _CommandFailed(f"cannot remove {playerId!r}: {e}") from None
        finally:
            connection.close()
        if not removed:
            raise _CommandFailed(f"no player {playerId!r}")
        stdout.write(f"removed player {playerId!r}\n")


class ListAccountsOptions(_DatabaseOptions):
    """
    C{aphelion accounts list}: one line per account, tab-separated: player
    id, name, creation time (UTC, ISO 8601), attributes (JSON).
    """

    synopsis = "--db PATH|URL"

    def execute(self, stdout: IO[str]) -> None:
        """
        List the accounts.
        """
        connection = self.connect()
        try:
            accounts = listAccounts(connection)
        except (self.dbapi.Error, ValueError) as e:
            raise _CommandFailed(f"cannot list accounts: {e}") from None
        finally:
            connection.close()
        for account in accounts:
            created = datetime.fromtimestamp(account.created, UTC)
            fields = (
                account.playerId,
                account.name,
                created.isoformat(timespec="seconds"),
                json.dumps(dict(account.attributes), sort_keys=True),
            )
            stdout.write("\t".join(fields) + "\n")


class AccountsOptions(usage.Options):
    """
    C{aphelion accounts add|remove|list}: manage the accounts of
    C{--auth sqlite:PATH} or C{--auth postgresql:DSN}.
    """

    synopsis = "add|remove|list --db PATH|URL ..."
    subCommands = [
        ["add", None, AddAccountOptions, "Add an account."],
        ["remove", None, RemoveAccountOptions, "Remove an account."],
        ["list", None, ListAccountsOptions, "List the accounts."],
    ]

    def postOptions(self) -> None:
        """
        Require a subcommand.
        """
        if self.subCommand is None:
            raise usage.UsageError("choose add, remove or list")

    def run(self, stdout: IO[str], stderr: IO[str] | None = None) -> int:
        """
        Carry out the subcommand.

        :return: the exit status.
        """
        subOptions: _CommandOptions = self.subOptions
        return subOptions.run(stdout, stderr)


class TicketOptions(_AttributeOptions, _CommandOptions):
    """
    C{aphelion ticket}: mint a ticket for C{--auth ticket:SECRET_FILE} and
    print it. The ticket carries C{iat} (now, rounded down) and a random
    C{jti}, so that it serves a checker of one-time tickets too.
    """

    synopsis = (
        "--secret-file FILE --player PLAYERID [--name NAME] [--ttl SECONDS]"
        " [--attribute KEY=VALUE]..."
    )
    optParameters: list[list[Any]] = [
        ["secret-file", None, None, "File that holds the shared secret."],
        ["player", None, None, "The player id."],
        ["name", None, None, "Display name (default: the player id)."],
        ["ttl", None, 3600.0, "Seconds until the ticket expires.", float],
    ]

    def postOptions(self) -> None:
        """
        Require the secret file and the player id; check the time to live.
        """
        if not self["secret-file"]:
            raise usage.UsageError("--secret-file FILE is required")
        if not self["player"]:
            raise usage.UsageError("--player PLAYERID is required")
        if hasControlCharacters(self["player"]):
            raise usage.UsageError("--player may not hold control characters")
        if not self["ttl"] > 0:
            raise usage.UsageError("--ttl is positive")

    def execute(self, stdout: IO[str]) -> None:
        """
        Print the ticket.
        """
        try:
            secret = readSecretFile(self["secret-file"])
            ticket = mintTicket(
                secret,
                self["player"],
                self["name"] or self["player"],
                self["ttl"],
                self.seconds(),
                self["attributes"],
            )
        except ValueError as e:
            raise _CommandFailed(str(e)) from None
        stdout.write(ticket + "\n")
