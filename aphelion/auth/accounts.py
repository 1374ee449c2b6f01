# -*- test-case-name: tests.test_accounts -*-
"""
Adding, removing and listing accounts, through a DB-API connection of
either backend (sqlite3 or psycopg 3), from a console command: these block,
so they are not for the reactor's thread. L{addAccount} makes or upgrades
the schema (L{upgradeSchema<aphelion.auth.schema.upgradeSchema>}) first.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from aphelion.auth.credentials import MAX_ID_BYTES, checkPlayerId
from aphelion.auth.passwords import DEFAULT_ITERATIONS, hashSecret
from aphelion.auth.schema import sqlPlaceholder, upgradeSchema
from aphelion.limits import hasControlCharacters

__all__ = [
    "Account",
    "DBAPIConnection",
    "addAccount",
    "listAccounts",
    "removeAccount",
]


class DBAPIConnection(Protocol):
    """
    The part of a DB-API 2.0 connection that these functions use.
    """

    def cursor(self) -> Any:
        """
        :return: a new cursor.
        """

    def commit(self) -> None:
        """
        Commit the current transaction.
        """

    def close(self) -> None:
        """
        Close the connection.
        """


@dataclass(frozen=True)
class Account:
    """
    An account as L{listAccounts} shows it: everything but the secret.

    :ivar playerId: the player id.
    :ivar name: the display name.
    :ivar attributes: game-defined facts about the player.
    :ivar created: when it was added, in Unix seconds.
    """

    playerId: str
    name: str
    attributes: Mapping[str, str]
    created: float


def addAccount(
    connection: DBAPIConnection,
    playerId: str,
    name: str,
    secret: str,
    now: float,
    attributes: Mapping[str, str] | None = None,
    dbapi: ModuleType = sqlite3,
    iterations: int = DEFAULT_ITERATIONS,
) -> None:
    """
    Add an account, making or upgrading the schema if need be, and commit.

    :param now: the time of creation, in Unix seconds.
    :param dbapi: the DB-API module of C{connection}: C{sqlite3} or
        C{psycopg}.
    :raises ValueError: if the player id, name or secret is not acceptable
        (see L{checkPlayerId}; none of them may hold a control character),
        or C{dbapi} is another module.
    :raises SchemaTooNew: if the database's schema is newer than this code.
    :raises Exception: the DB-API module's C{IntegrityError} if the player id
        is taken.
    """
    checkPlayerId(playerId)
    if not name:
        raise ValueError("the name may not be empty")
    if hasControlCharacters(name):
        raise ValueError("the name may not hold control characters")
    if not secret:
        raise ValueError("the secret may not be empty")
    if hasControlCharacters(secret):
        # The checkers refuse every ID with one: it could never log in.
        raise ValueError("the secret may not hold control characters")
    if len(f"{playerId}:{secret}".encode()) > MAX_ID_BYTES:
        raise ValueError(f"PLAYERID:SECRET is longer than {MAX_ID_BYTES} bytes")
    mark = sqlPlaceholder(dbapi.paramstyle)
    cursor = connection.cursor()
    upgradeSchema(cursor, dbapi)
    cursor.execute(
        "INSERT INTO accounts (player_id, name, secret_hash, attributes, created)"
        f" VALUES ({mark}, {mark}, {mark}, {mark}, {mark})",
        (
            playerId,
            name,
            hashSecret(secret, iterations),
            json.dumps(dict(attributes or {}), sort_keys=True),
            now,
        ),
    )
    connection.commit()


def removeAccount(
    connection: DBAPIConnection, playerId: str, dbapi: ModuleType = sqlite3
) -> bool:
    """
    Remove an account and commit.

    :param dbapi: the DB-API module of C{connection}.
    :return: whether there was one.
    """
    cursor = connection.cursor()
    cursor.execute(
        f"DELETE FROM accounts WHERE player_id = {sqlPlaceholder(dbapi.paramstyle)}",
        (playerId,),
    )
    removed: bool = cursor.rowcount > 0
    connection.commit()
    return removed


def listAccounts(connection: DBAPIConnection) -> list[Account]:
    """
    :return: every account, by player id, without secrets.
    """
    cursor = connection.cursor()
    cursor.execute(
        "SELECT player_id, name, attributes, created FROM accounts ORDER BY player_id"
    )
    return [
        Account(playerId, name, json.loads(attributes), created)
        for playerId, name, attributes, created in cursor.fetchall()
    ]
