# -*- test-case-name: tests.test_integration_postgres -*-
"""
Accounts in a real PostgreSQL server: the checker behaviour that SQLite has
(L{DatabaseCheckerTestsMixin}), C{--auth postgresql:DSN} and its password
handling, C{aphelion accounts --db postgresql://...}, and a server restart
under a running AuthProxy.

The tests of a process share one server (L{tests.pgserver.sharedServer}),
made by the first one in a temporary directory, on a free port of 127.0.0.1,
and destroyed when the process exits; each test empties the database first.
They are skipped, with the reason, when psycopg or PostgreSQL's server
binaries are not installed (C{.ci/run} installs both).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from io import StringIO
from typing import Any

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.cred.strcred import InvalidAuthArgumentString, makeChecker
from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from aphelion.accounts import AccountsOptions
from aphelion.auth import (
    SCHEMA_VERSION,
    AccountsPool,
    DatabaseChecker,
    PlayerIdentity,
    PlayerRealm,
    authenticate,
)
from aphelion.cli import run
from aphelion.client import AphelionClientProtocol, connect
from aphelion.codes import AphelionProtocol
from aphelion.config import Config
from aphelion.control.spawn import ServerState
from aphelion.proto import chat_pb2
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate, AuthenticateResponse
from aphelion.service import build
from tests.pgserver import PostgreSQLServer, missing, sharedServer
from tests.test_auth import ITERATIONS, DatabaseCheckerTestsMixin

reactor: Any = _reactor
R = AuthenticateResponse
SKIP = missing()


def emptyDatabase(server: PostgreSQLServer) -> None:
    """
    Drop every table of the tests' database.
    """
    with server.admin() as connection:
        connection.execute(
            "DROP TABLE IF EXISTS accounts, accounts_away, accounts_schema_version"
        )


def within(d: Deferred[Any], seconds: float = 20.0) -> Deferred[Any]:
    """
    Fail C{d} if it has not fired within C{seconds}.
    """
    return d.addTimeout(seconds, reactor)


async def waitFor(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    """
    Poll C{predicate} on the reactor until it holds, or fail after C{seconds}.
    """
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"timed out waiting for {predicate}")


def checkerLines(events: list[LogEvent]) -> list[tuple[LogLevel, str]]:
    """
    :return: the level and text of the events that L{DatabaseChecker}
        logged.
    """
    return [
        (e["log_level"], formatEvent(e))
        for e in events
        if e.get("log_namespace") == "aphelion.auth.DatabaseChecker"
    ]


class PostgreSQLDatabaseCheckerTests(DatabaseCheckerTestsMixin, TestCase):
    """
    L{DatabaseChecker} on a real PostgreSQL server through a real
    L{AccountsPool} of psycopg: the same tests as on SQLite, and what only a
    server does.
    """

    skip = SKIP
    timeout = 120

    async def makePool(self) -> ConnectionPool:
        """
        :return: an L{AccountsPool} of the tests' role over TCP, on the
            emptied database.
        """
        self.server = await sharedServer(reactor)
        emptyDatabase(self.server)
        return AccountsPool(
            "psycopg",
            self.server.dsn,
            password=self.server.password,
            cp_min=1,
            cp_max=1,
            cp_reconnect=True,
        )

    async def test_staleConnectionRetried(self) -> None:
        """
        A login whose pooled connection the server ended while it waited
        (as a restart does) is tried once more on a new connection, and
        succeeds, without a log line.
        """
        await self.login("bob:builder")
        [connection] = self.pool.connections.values()
        with self.server.admin() as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE usename = %s",
                (self.server.user,),
            ).fetchall()
        self.assertEqual(ended, [(True,)])
        with capturedLogs() as events:
            await self.login("bob:builder")
        self.assertEqual([formatEvent(e) for e in events], [])
        [replacement] = self.pool.connections.values()
        self.assertIsNot(replacement, connection)


class PostgreSQLTestCase(TestCase):
    """
    A test on the shared server, its database emptied.

    :ivar server: the server.
    """

    skip = SKIP
    timeout = 120

    async def setUp(self) -> None:
        """
        Get the server and empty its database.
        """
        self.server = await sharedServer(reactor)
        emptyDatabase(self.server)

    def passwordFile(self, password: str | None = None) -> str:
        """
        :return: the path of a new file that holds C{password} (the role's
            when L{None}) and a newline.
        """
        path: str = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write((password or self.server.password) + "\n")
        return path

    def environment(self, name: str, value: str) -> None:
        """
        Set the environment variable C{name} to C{value} for this test.
        """
        old = os.environ.get(name)
        os.environ[name] = value
        if old is None:
            self.addCleanup(os.environ.pop, name, None)
        else:
            self.addCleanup(os.environ.__setitem__, name, old)

    def checker(self, argument: str) -> DatabaseChecker:
        """
        :return: the checker of C{--auth postgresql:ARGUMENT}, bound to the
            reactor, closed in cleanup.
        """
        checker = makeChecker(f"postgresql:{argument}")
        assert isinstance(checker, DatabaseChecker)
        checker.bindReactor(reactor)
        checker.unknownHash = f"pbkdf2_sha256${ITERATIONS}$unknownplayer$"
        self.addCleanup(checker.close)
        return checker

    def accounts(self, *argv: str) -> tuple[int, str, str]:
        """
        Run C{aphelion accounts ARGV} at a fixed time.

        :return: its exit status, standard output and standard error.
        """
        options = AccountsOptions()
        options.parseOptions(list(argv))
        options.subOptions.seconds = lambda: 1_700_000_000.0
        out, err = StringIO(), StringIO()
        status = options.run(out, err)
        return status, out.getvalue(), err.getvalue()


class PostgreSQLPluginTests(PostgreSQLTestCase):
    """
    C{--auth postgresql:DSN[:password-file=PATH]} against a real server.
    """

    async def test_passwordFile(self) -> None:
        """
        With C{password-file=}, the checker makes the schema in an empty
        database at start-up, logs the DSN and the version, and accepts an
        account added by C{aphelion accounts}; it refuses a wrong secret.
        """
        path = self.passwordFile()
        with capturedLogs() as events:
            checker = self.checker(f"{self.server.dsn}:password-file={path}")
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                f"accounts in PostgreSQL at {self.server.dsn}, schema version"
                f" {SCHEMA_VERSION}"
            ],
        )
        self.assertEqual(checker.name, self.server.dsn)
        secret = self.passwordFile("s3cret")
        status, out, err = self.accounts(
            "add", "--db", self.server.dsn, "--password-file", path,
            "--iterations", "1000", "--secret-file", secret, "--name", "Alice",
            "alice",
        )  # fmt: skip
        self.assertEqual((status, out, err), (0, "added player 'alice'\n", ""))
        portal = Portal(PlayerRealm(), [checker])
        self.assertEqual(
            await authenticate(portal, "alice:s3cret"),
            PlayerIdentity("alice", "Alice"),
        )
        with capturedLogs():
            await self.assertFailure(
                authenticate(portal, "alice:wrong"), UnauthorizedLogin
            )

    async def test_passwordFromEnvironment(self) -> None:
        """
        Without C{password-file=}, libpq takes the password from
        C{PGPASSWORD}.
        """
        self.environment("PGPASSWORD", self.server.password)
        with capturedLogs():
            checker = self.checker(self.server.dsn)
            d = authenticate(Portal(PlayerRealm(), [checker]), "nobody:x")
            error = await self.assertFailure(d, UnauthorizedLogin)
        self.assertEqual(str(error), "unknown player or wrong secret")

    async def test_passwordInDsn(self) -> None:
        """
        A password in the DSN works, with a warning; neither the warning, nor
        the start-up line, nor the checker's name holds it.
        """
        dsn = self.server.dsn.replace(
            f"{self.server.user}@", f"{self.server.user}:{self.server.password}@"
        )
        with capturedLogs() as events:
            checker = self.checker(dsn)
        texts = [formatEvent(e) for e in events]
        self.assertEqual(len(texts), 2, texts)
        self.assertIn(f"the DSN {self.server.dsn} holds a password", texts[0])
        for text in [*texts, checker.name]:
            self.assertNotIn(self.server.password, text)
        with capturedLogs():
            await self.assertFailure(
                authenticate(Portal(PlayerRealm(), [checker]), "nobody:x"),
                UnauthorizedLogin,
            )

    def test_wrongPassword(self) -> None:
        """
        A wrong password is refused at start-up, with the DSN, without the
        password, and with the server's reason.
        """
        error = self.assertRaises(
            InvalidAuthArgumentString,
            makeChecker,
            f"postgresql:{self.server.dsn}:password-file={self.passwordFile('nope')}",
        )
        self.assertIn(
            f"cannot use the accounts database {self.server.dsn}: ", str(error)
        )
        self.assertIn("password authentication failed", str(error))
        self.assertNotIn("nope", str(error))

    def test_schemaTooNew(self) -> None:
        """
        A database whose schema is newer than this code is refused at
        start-up, saying so.
        """
        with self.server.owner() as owner:
            owner.execute(
                "CREATE TABLE accounts_schema_version (version INTEGER PRIMARY KEY)"
            )
            owner.execute(
                "INSERT INTO accounts_schema_version VALUES (%s)",
                (SCHEMA_VERSION + 1,),
            )
        self.environment("PGPASSWORD", self.server.password)
        error = self.assertRaises(
            InvalidAuthArgumentString, makeChecker, f"postgresql:{self.server.dsn}"
        )
        self.assertIn(
            f"{self.server.dsn}: the accounts database has schema version"
            f" {SCHEMA_VERSION + 1}",
            str(error),
        )


class PostgreSQLAccountsToolTests(PostgreSQLTestCase):
    """
    C{aphelion accounts --db postgresql://...} against a real server.
    """

    def test_sameAsSQLite(self) -> None:
        """
        Each command prints and returns the same on PostgreSQL as on SQLite,
        successes and failures alike.
        """
        self.environment("PGPASSWORD", self.server.password)
        secret = self.passwordFile("builder")
        commands: list[list[str]] = [
            ["add", "--iterations", "1000", "--secret-file", secret, "bob"],
            ["add", "--iterations", "1000", "--secret-file", secret,
             "--name", "Alice Liddell", "-a", "team=red", "-a", "b=1", "alice"],
            ["add", "--iterations", "1000", "--secret-file", secret, "alice"],
            ["list"],
            ["remove", "alice"],
            ["remove", "alice"],
            ["list"],
        ]  # fmt: skip
        outputs: dict[str, list[tuple[int, str, str]]] = {}
        for db in [os.path.abspath(self.mktemp()), self.server.dsn]:
            outputs[db] = [
                self.accounts(command[0], "--db", db, *command[1:])
                for command in commands
            ]
        sqlite, postgresql = outputs.values()
        self.assertEqual(postgresql, sqlite)
        self.assertEqual(
            postgresql[3],
            (
                0,
                "alice\tAlice Liddell\t2023-11-14T22:13:20+00:00\t"
                '{"b": "1", "team": "red"}\n'
                "bob\tbob\t2023-11-14T22:13:20+00:00\t{}\n",
                "",
            ),
        )
        self.assertEqual(
            postgresql[2], (1, "", "error: player 'alice' already exists\n")
        )
        self.assertEqual(postgresql[5], (1, "", "error: no player 'alice'\n"))

    async def test_generatedSecretLogsIn(self) -> None:
        """
        The ID that C{aphelion accounts add} prints, run as the console
        command does, is accepted by the checker of C{--auth postgresql}.
        """
        path = self.passwordFile()
        out, err = StringIO(), StringIO()
        status = await run(
            reactor,
            ["accounts", "add", "--db", self.server.dsn, "--password-file", path,
             "--iterations", "1000", "carol"],
            out,
            err,
        )  # fmt: skip
        self.assertEqual((status, err.getvalue()), (0, ""))
        idString = out.getvalue().splitlines()[2].removeprefix("ID to send: ")
        with capturedLogs():
            checker = self.checker(f"{self.server.dsn}:password-file={path}")
        identity = await authenticate(Portal(PlayerRealm(), [checker]), idString)
        self.assertEqual(identity, PlayerIdentity("carol", "carol"))

    def test_wrongPassword(self) -> None:
        """
        A wrong password fails the command with the URL, without the
        password.
        """
        status, out, err = self.accounts(
            "list", "--db", self.server.dsn,
            "--password-file", self.passwordFile("nope"),
        )  # fmt: skip
        self.assertEqual((status, out), (1, ""))
        self.assertTrue(
            err.startswith(f"error: cannot connect to {self.server.dsn}: "), err
        )
        self.assertIn("password authentication failed", err)
        self.assertNotIn("nope", err)


def say(text: str) -> bytes:
    """
    A chat C{Say}.
    """
    return chat_pb2.C2S(say=chat_pb2.Say(text=text)).SerializeToString()


class PostgreSQLRestartTests(PostgreSQLTestCase):
    """
    An AuthProxy with C{--auth postgresql} while PostgreSQL restarts.
    """

    async def startProxy(self, checker: DatabaseChecker) -> str:
        """
        Start an AuthProxy with C{checker} and one spawned chat game server.

        :return: its URL.
        """
        config = Config(
            listen=(),
            gameServers=1,
            checkers=(checker,),
            restartInitial=0.2,
            sessionTimeout=30,
            drainDeadline=2,
        )
        service = build(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = reactor.listenTCP(0, service.site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        monitor = service.monitor
        await waitFor(
            lambda: all(s.state is ServerState.READY for s in monitor.servers.values())
        )
        return f"ws://127.0.0.1:{port.getHost().port}/aphelion"

    async def player(self, url: str) -> AphelionClientProtocol:
        """
        Connect a game client; close it in cleanup.
        """
        client: AphelionClientProtocol = await within(
            connect(reactor, url, AphelionProtocol.GAME)
        )

        async def close() -> None:
            client.closeWith(1000, "bye")
            await within(client.whenClosed())

        self.addCleanup(close)
        return client

    async def login(self, client: AphelionClientProtocol, idString: str) -> S2C:
        """
        Send C{authenticate} and return the first answer.
        """
        client.sendPayload(
            C2S(authenticate=Authenticate(id=idString)).SerializeToString()
        )
        answer: S2C = S2C.FromString(await within(client.nextPayload()))
        return answer

    async def test_restart(self) -> None:
        """
        While PostgreSQL is down, logins are answered C{OTHER} "try again
        later" and not counted as tries, the checker logs one line for it
        however many logins fail, and a seated player keeps playing. Once it
        is up again, on the same port and data, the same AuthProxy logs in
        players again, and logs one line for that. No failure is logged (as
        adbapi's own pool logs one per broken connection).
        """
        self.environment("PGPASSWORD", self.server.password)
        for playerId in ["alice", "bob"]:
            self.accounts(
                "add", "--db", self.server.dsn, "--iterations", "1000",
                "--secret-file", self.passwordFile(f"{playerId}-secret"), playerId,
            )  # fmt: skip
        with capturedLogs():
            checker = self.checker(self.server.dsn)
        url = await self.startProxy(checker)
        alice = await self.player(url)
        answer = await self.login(alice, "alice:alice-secret")
        self.assertEqual(answer.authenticate_response.result, R.OK, answer)
        await within(alice.nextPayload())  # its game_config

        self.addCleanup(self.startAgain)
        with capturedLogs() as events:
            await self.server.stop()
            bob = await self.player(url)
            for _ in range(4):
                answer = await self.login(bob, "bob:bob-secret")
                self.assertEqual(
                    (
                        answer.authenticate_response.result,
                        answer.authenticate_response.description,
                    ),
                    (R.OTHER, "busy, try again later"),
                )
            alice.sendPayload(say("still here"))
            said = chat_pb2.S2C.FromString(await within(alice.nextPayload())).said
            self.assertEqual((said.player_id, said.text), ("alice", "still here"))
            down = checkerLines(events)

            await self.server.start()
            answer = await self.login(bob, "bob:bob-secret")
            self.assertEqual(answer.authenticate_response.result, R.OK, answer)
            self.assertEqual(answer.connected.player_id, "bob")
        self.assertEqual([e for e in events if "log_failure" in e], [])
        self.assertEqual(len(down), 1, down)
        level, text = down[0]
        self.assertEqual(level, LogLevel.warn)
        self.assertTrue(
            text.startswith(f"accounts database {self.server.dsn} unreachable: "),
            text,
        )
        self.assertEqual(
            checkerLines(events)[1:],
            [(LogLevel.info, f"accounts database {self.server.dsn} reachable again")],
        )

    async def startAgain(self) -> None:
        """
        Start the server if a test left it stopped.
        """
        if not self.server.running:
            await self.server.start()
