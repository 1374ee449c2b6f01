# -*- test-case-name: tests.test_auth -*-
"""
Accounts in a database, checked at run time: L{DatabaseChecker} on an
L{AccountsPool}.

The ID is C{PLAYERID:SECRET}, split at the first colon (so player ids hold
no colon, and secrets may): C{"alice:hunter2"}. The lookup and the slow hash
(L{verifySecret<aphelion.auth.passwords.verifySecret>}) run in the pool's
thread, never in the reactor's.

A database that fails mid-run
=============================

When the database cannot answer (PostgreSQL restarting or out of reach), a
login fails with L{DatabaseUnavailable}, a
L{CheckerBusy<aphelion.auth.credentials.CheckerBusy>}: the client is told to
try again later, and it does not count as a try. L{DatabaseChecker} logs one
line when the database stops answering and one when it answers again, not
one per login. The plugins' pools are L{AccountsPool}s: a connection that
broke is discarded quietly, and the next login connects anew, so the
AuthProxy needs no restart; a login whose pooled connection died while it
waited (the server restarted) is tried once more on a new connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.enterprise.adbapi import (
    Connection,
    ConnectionLost,
    ConnectionPool,
    Transaction,
)
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from aphelion.auth.credentials import (
    AvatarId,
    CheckerBusy,
    IPlayerIdCredentials,
    PlayerIdentity,
    ReactorNotBound,
    attributesFrom,
    encodeAvatarId,
    idOf,
)
from aphelion.auth.passwords import DEFAULT_ITERATIONS, HASH_ALGORITHM, verifySecret
from aphelion.auth.schema import sqlPlaceholder
from aphelion.interfaces import IReactorUser
from aphelion.limits import safeText

__all__ = [
    "AccountsPool",
    "DatabaseChecker",
    "DatabaseUnavailable",
]

_T = TypeVar("_T")


class DatabaseUnavailable(CheckerBusy):
    """
    The accounts database could not answer (it is restarting, out of reach,
    or its tables are gone); the database's error is the C{__cause__}. A
    L{CheckerBusy}, so the client is told to try again later and the try is
    not counted.
    """


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
            playerId, name, attributesFrom(json.loads(attributes))
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


@implementer(ICredentialsChecker, IReactorUser)
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
    unknownHash = f"{HASH_ALGORITHM}${DEFAULT_ITERATIONS}$unknownplayer$"
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
            playerId, colon, secret = idOf(credentials).partition(":")
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
