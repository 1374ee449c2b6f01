# -*- test-case-name: tests.test_accounts -*-
"""
Tests of L{aphelion.accounts}: the console commands C{aphelion accounts} and
C{aphelion ticket}.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from io import StringIO
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.cred.error import UnauthorizedLogin
from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from aphelion.accounts import (
    Account,
    AccountsOptions,
    TicketOptions,
    addAccount,
    listAccounts,
    removeAccount,
)
from aphelion.auth import (
    MAX_ID_BYTES,
    SCHEMA_VERSION,
    DatabaseChecker,
    MemoryReplayCache,
    PlayerIdCredentials,
    PlayerIdentity,
    TicketChecker,
    decodeAvatarId,
    schemaVersion,
    verifySecret,
)

SECRET = b"0123456789abcdef0123456789abcdef"

controlCharacters = st.one_of(
    st.integers(0x00, 0x1F), st.just(0x7F), st.integers(0x80, 0x9F)
).map(chr)
"""
Every control character of Part 6: C0, DEL and C1.
"""


class Result:
    """
    What a command printed and returned.

    :ivar status: the exit status.
    :ivar out: what it printed on stdout.
    :ivar err: what it printed on stderr.
    """

    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err


def accounts(*argv: str, now: float = 1_700_000_000.0) -> Result:
    """
    Parse and run C{aphelion accounts ARGV} at C{now}.
    """
    options = AccountsOptions()
    options.parseOptions(list(argv))
    options.subOptions.seconds = lambda: now
    out, err = StringIO(), StringIO()
    status = options.run(out, err)
    return Result(status, out.getvalue(), err.getvalue())


def writeFile(case: SynchronousTestCase, content: bytes) -> str:
    """
    :return: the path of a new file that holds C{content}.
    """
    path: str = case.mktemp()
    with open(path, "wb") as f:
        f.write(content)
    return path


def storedHash(path: str, playerId: str) -> str:
    """
    :return: the stored secret hash of C{playerId}.
    """
    connection = sqlite3.connect(path)
    try:
        [(stored,)] = connection.execute(
            "SELECT secret_hash FROM accounts WHERE player_id = ?", (playerId,)
        ).fetchall()
    finally:
        connection.close()
    return str(stored)


class AccountsCommandTests(SynchronousTestCase):
    """
    Tests of C{aphelion accounts add|remove|list}.
    """

    def setUp(self) -> None:
        self.db = self.mktemp()

    def add(self, playerId: str, *options: str) -> Result:
        """
        Run C{accounts add} for C{playerId} with cheap hashing.
        """
        return accounts(
            "add", "--db", self.db, "--iterations", "1000", *options, playerId
        )

    def test_addGenerated(self) -> None:
        """
        C{add} without C{--secret-file} creates the database, readable by its
        owner only, generates a secret, stores only its hash, and prints it
        with the ID to send.
        """
        result = self.add("alice", "--name", "Alice", "-a", "team=red")
        self.assertEqual((result.status, result.err), (0, ""))
        lines = result.out.splitlines()
        self.assertEqual(lines[0], "added player 'alice'")
        secret = lines[1].removeprefix("secret: ")
        self.assertGreaterEqual(len(secret), 32)
        self.assertEqual(lines[2], f"ID to send: alice:{secret}")
        self.assertEqual(os.stat(self.db).st_mode & 0o777, 0o600)
        stored = storedHash(self.db, "alice")
        self.assertNotIn(secret, stored)
        self.assertTrue(stored.startswith("pbkdf2_sha256$1000$"))
        self.assertTrue(verifySecret(secret, stored))

    def test_addSecretFile(self) -> None:
        """
        C{add --secret-file} stores the file's stripped content as the secret,
        and prints no secret.
        """
        path = writeFile(self, b"  hunter2:with:colons\n")
        result = self.add("alice", "--secret-file", path)
        self.assertEqual((result.status, result.out), (0, "added player 'alice'\n"))
        self.assertTrue(
            verifySecret("hunter2:with:colons", storedHash(self.db, "alice"))
        )

    def test_addBadSecretFile(self) -> None:
        """
        C{add} with a missing or blank secret file fails with a message and
        adds nothing.
        """
        for path in [self.mktemp(), writeFile(self, b"\n")]:
            result = self.add("alice", "--secret-file", path)
            self.assertEqual(result.status, 1)
            self.assertIn(repr(path), result.err)
        self.assertFalse(os.path.exists(self.db))

    def test_addTwice(self) -> None:
        """
        Adding a player id that exists fails with a message.
        """
        self.assertEqual(self.add("alice").status, 0)
        result = self.add("alice")
        self.assertEqual(
            (result.status, result.out, result.err),
            (1, "", "error: player 'alice' already exists\n"),
        )

    def test_addBadPlayerId(self) -> None:
        """
        A player id that is empty, holds a colon or is not printable is a
        usage error.
        """
        for playerId in ["", "a:b", "tab\there", " alice"]:
            with self.assertRaises(usage.UsageError):
                self.add(playerId)

    @settings(max_examples=50, deadline=None)
    @given(st.integers(0, 5), controlCharacters)
    def test_addControlCharacters(self, position: int, character: str) -> None:
        """
        A player id with a control character anywhere is a usage error that
        says so, and no database is created.
        """
        playerId = "alice"[:position] + character + "alice"[position:]
        error = self.assertRaises(usage.UsageError, self.add, playerId)
        self.assertEqual(str(error), "a player id may not hold control characters")
        self.assertFalse(os.path.exists(self.db))

    def test_addBadAttribute(self) -> None:
        """
        An attribute that is not C{KEY=VALUE} is a usage error.
        """
        with self.assertRaises(usage.UsageError):
            self.add("alice", "--attribute", "team")

    def test_databaseRequired(self) -> None:
        """
        Every subcommand requires C{--db}, and a subcommand is required.
        """
        for argv in [["add", "alice"], ["remove", "alice"], ["list"], []]:
            with self.assertRaises(usage.UsageError):
                accounts(*argv)

    def test_list(self) -> None:
        """
        C{list} prints one tab-separated line per account, by player id: id,
        name, creation time in UTC and attributes; never a secret or hash.
        """
        self.add("bob", "--secret-file", writeFile(self, b"builder"))
        self.add("alice", "--name", "Alice Liddell", "-a", "team=red", "-a", "b=1")
        result = accounts("list", "--db", self.db)
        self.assertEqual(result.status, 0)
        self.assertEqual(
            result.out,
            "alice\tAlice Liddell\t2023-11-14T22:13:20+00:00\t"
            '{"b": "1", "team": "red"}\n'
            "bob\tbob\t2023-11-14T22:13:20+00:00\t{}\n",
        )
        self.assertNotIn("pbkdf2", result.out)

    def test_remove(self) -> None:
        """
        C{remove} removes an account; removing an unknown one fails.
        """
        self.add("alice")
        self.add("bob")
        result = accounts("remove", "--db", self.db, "alice")
        self.assertEqual((result.status, result.out), (0, "removed player 'alice'\n"))
        self.assertEqual(accounts("list", "--db", self.db).out.count("\n"), 1)
        result = accounts("remove", "--db", self.db, "alice")
        self.assertEqual((result.status, result.err), (1, "error: no player 'alice'\n"))

    def test_passwordFileNeedsPostgreSQL(self) -> None:
        """
        C{--password-file} goes with a PostgreSQL URL only.
        """
        error = self.assertRaises(
            usage.UsageError,
            accounts,
            "list",
            "--db",
            self.db,
            "--password-file",
            "/x",
        )
        self.assertIn("postgresql://", str(error))

    def test_schemaUpgraded(self) -> None:
        """
        Every command upgrades a database made before schema versions were
        kept, and keeps its accounts.
        """
        self.add("alice")
        for argv in [["list"], ["remove", "alice"]]:
            connection = sqlite3.connect(self.db)
            connection.execute("DROP TABLE accounts_schema_version")
            connection.commit()
            connection.close()
            result = accounts(argv[0], "--db", self.db, *argv[1:])
            self.assertEqual(result.status, 0, result.err)
            self.assertIn("alice", result.out)
            connection = sqlite3.connect(self.db)
            self.assertEqual(
                schemaVersion(connection.cursor(), sqlite3), SCHEMA_VERSION
            )
            connection.close()

    def test_schemaTooNew(self) -> None:
        """
        Every command refuses a database whose schema is newer than this code,
        and changes nothing.
        """
        self.add("alice")
        connection = sqlite3.connect(self.db)
        connection.execute("INSERT INTO accounts_schema_version VALUES (99)")
        connection.commit()
        connection.close()
        for argv in [
            ["add", "--db", self.db, "--iterations", "1000", "bob"],
            ["remove", "--db", self.db, "alice"],
            ["list", "--db", self.db],
        ]:
            result = accounts(*argv)
            self.assertEqual((result.status, result.out), (1, ""))
            self.assertTrue(
                result.err.startswith(
                    "error: the accounts database has schema version 99, but"
                ),
                result.err,
            )
        connection = sqlite3.connect(self.db)
        self.assertEqual(
            connection.execute("SELECT player_id FROM accounts").fetchall(),
            [("alice",)],
        )
        connection.close()

    def test_missingDatabase(self) -> None:
        """
        C{remove} and C{list} on a missing database fail without creating it.
        """
        for argv in [["remove", "--db", self.db, "alice"], ["list", "--db", self.db]]:
            result = accounts(*argv)
            self.assertEqual(result.status, 1)
            self.assertEqual(
                result.err, f"error: no accounts database at {self.db!r}\n"
            )
        self.assertFalse(os.path.exists(self.db))


class AccountFunctionTests(SynchronousTestCase):
    """
    Tests of L{addAccount}, L{removeAccount} and L{listAccounts}.
    """

    def setUp(self) -> None:
        self.connection = sqlite3.connect(":memory:")
        self.addCleanup(self.connection.close)

    def test_roundTrip(self) -> None:
        """
        Accounts added are listed without secrets, and removed.
        """
        addAccount(self.connection, "bob", "Bob", "builder", 5.0, iterations=1000)
        addAccount(
            self.connection, "al", "Al", "x", 6.0, {"team": "red"}, iterations=1000
        )
        self.assertEqual(
            listAccounts(self.connection),
            [Account("al", "Al", {"team": "red"}, 6.0), Account("bob", "Bob", {}, 5.0)],
        )
        self.assertTrue(removeAccount(self.connection, "al"))
        self.assertFalse(removeAccount(self.connection, "al"))
        self.assertEqual([a.playerId for a in listAccounts(self.connection)], ["bob"])

    def test_refused(self) -> None:
        """
        A bad player id, an empty name or secret, an ID longer than 1024 bytes
        or a DB-API module without an accounts schema is refused with
        L{ValueError}.
        """
        for playerId, name, secret in [
            ("a:b", "A", "s"),
            ("a", "", "s"),
            ("a", "A", ""),
            ("a", "A", "s" * MAX_ID_BYTES),
        ]:
            with self.assertRaises(ValueError):
                addAccount(self.connection, playerId, name, secret, 0.0, iterations=1)
        other = ModuleType("otherdb")
        other.paramstyle = "numeric"  # type: ignore[attr-defined]
        with self.assertRaises(ValueError):
            addAccount(self.connection, "a", "A", "s", 0.0, dbapi=other, iterations=1)
        with self.assertRaises(ValueError):
            removeAccount(self.connection, "a", dbapi=other)

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from(["playerId", "name", "secret"]), controlCharacters)
    def test_controlCharacters(self, field: str, character: str) -> None:
        """
        A player id, name or secret that holds a control character (C0, C1
        or DEL) is refused with L{ValueError}, and nothing is added: the
        checkers would refuse the ID, and the name could forge log lines.
        """
        values = {"playerId": "alice", "name": "Alice", "secret": "hunter2"}
        values[field] = values[field][:2] + character + values[field][2:]
        error = self.assertRaises(
            ValueError,
            addAccount,
            self.connection,
            values["playerId"],
            values["name"],
            values["secret"],
            0.0,
            iterations=1,
        )
        self.assertIn("control characters", str(error))
        tables = self.connection.execute("SELECT name FROM sqlite_master")
        self.assertEqual(tables.fetchall(), [])


class AddedAccountLoginTests(TestCase):
    """
    An account added by the command is accepted by L{DatabaseChecker}.
    """

    async def test_login(self) -> None:
        """
        The printed ID is accepted through a real pool; a wrong one is not.
        """
        db = self.mktemp()
        result = accounts("add", "--db", db, "--iterations", "1000", "alice")
        idString = result.out.splitlines()[2].removeprefix("ID to send: ")
        pool = ConnectionPool(
            "sqlite3", db, check_same_thread=False, cp_min=1, cp_max=1
        )
        self.addCleanup(pool.close)
        checker = DatabaseChecker(pool)
        avatarId = await checker.requestAvatarId(PlayerIdCredentials(idString))
        assert isinstance(avatarId, bytes)
        self.assertEqual(decodeAvatarId(avatarId), PlayerIdentity("alice", "alice"))
        with capturedLogs():
            d = checker.requestAvatarId(PlayerIdCredentials(idString + "x"))
            await self.assertFailure(d, UnauthorizedLogin)


class TicketCommandTests(SynchronousTestCase):
    """
    Tests of C{aphelion ticket}.
    """

    def setUp(self) -> None:
        self.secretFile = writeFile(self, SECRET + b"\n")

    def ticket(self, *argv: str, now: float = 1000.0) -> Result:
        """
        Parse and run C{aphelion ticket ARGV} at C{now}.
        """
        options = TicketOptions()
        options.parseOptions(list(argv))
        options.seconds = lambda: now
        out, err = StringIO(), StringIO()
        status = options.run(out, err)
        return Result(status, out.getvalue(), err.getvalue())

    def test_mintedTicketAccepted(self) -> None:
        """
        The printed ticket is accepted by a L{TicketChecker} with the same
        secret until C{--ttl} seconds have passed.
        """
        result = self.ticket(
            "--secret-file",
            self.secretFile,
            "--player",
            "alice",
            "--name",
            "Alice",
            "--ttl",
            "60",
            "-a",
            "team=red",
        )
        self.assertEqual((result.status, result.err), (0, ""))
        ticket = result.out.strip()
        self.assertEqual(result.out, ticket + "\n")
        clock = Clock()
        clock.advance(1059)
        checker = TicketChecker(SECRET, clock)
        avatarId = self.successResultOf(
            checker.requestAvatarId(PlayerIdCredentials(ticket))
        )
        assert isinstance(avatarId, bytes)
        self.assertEqual(
            decodeAvatarId(avatarId), PlayerIdentity("alice", "Alice", {"team": "red"})
        )
        clock.advance(1)
        with capturedLogs():
            self.failureResultOf(
                checker.requestAvatarId(PlayerIdCredentials(ticket)), UnauthorizedLogin
            )

    def test_defaults(self) -> None:
        """
        The name defaults to the player id and the time to live to an hour.
        """
        result = self.ticket("--secret-file", self.secretFile, "--player", "bob")
        clock = Clock()
        clock.advance(1000 + 3599)
        avatarId = self.successResultOf(
            TicketChecker(SECRET, clock).requestAvatarId(
                PlayerIdCredentials(result.out.strip())
            )
        )
        assert isinstance(avatarId, bytes)
        self.assertEqual(decodeAvatarId(avatarId), PlayerIdentity("bob", "bob"))

    def test_issuedAndTicketId(self) -> None:
        """
        The ticket carries C{iat}, the time it was minted, and a random
        C{jti}, so that a checker of one-time tickets accepts it once; two
        tickets minted alike differ.
        """
        argv = ["--secret-file", self.secretFile, "--player", "bob"]
        one, two = (self.ticket(*argv, now=1000.5).out.strip() for _ in range(2))
        self.assertNotEqual(one, two)
        payload = one.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
        self.assertEqual((claims["iat"], claims["exp"]), (1000, 4600))
        self.assertEqual(len(claims["jti"]), 22)
        clock = Clock()
        clock.advance(1001)
        checker = TicketChecker(SECRET, clock, replayCache=MemoryReplayCache(clock))
        self.successResultOf(checker.requestAvatarId(PlayerIdCredentials(one)))
        self.successResultOf(checker.requestAvatarId(PlayerIdCredentials(two)))
        with capturedLogs():
            self.failureResultOf(
                checker.requestAvatarId(PlayerIdCredentials(one)), UnauthorizedLogin
            )

    def test_usage(self) -> None:
        """
        C{--secret-file} and C{--player} are required, C{--player} holds no
        control character and C{--ttl} is positive.
        """
        for argv in [
            ["--secret-file", self.secretFile, "--player", "bob\nforged"],
            ["--secret-file", self.secretFile, "--player", "\x9b"],
            ["--player", "bob"],
            ["--secret-file", self.secretFile],
            ["--secret-file", self.secretFile, "--player", "bob", "--ttl", "0"],
            ["--secret-file", self.secretFile, "--player", "bob", "--ttl", "soon"],
        ]:
            with self.assertRaises(usage.UsageError):
                self.ticket(*argv)

    def test_badSecretFile(self) -> None:
        """
        A missing or blank secret file fails with a message and prints no
        ticket.
        """
        for path in [self.mktemp(), writeFile(self, b" \n")]:
            result = self.ticket("--secret-file", path, "--player", "bob")
            self.assertEqual((result.status, result.out), (1, ""))
            self.assertIn(repr(path), result.err)

    def test_tooLong(self) -> None:
        """
        A ticket that would be longer than 1024 bytes fails with a message.
        """
        result = self.ticket(
            "--secret-file", self.secretFile, "--player", "bob", "-a", "x=" + "y" * 800
        )
        self.assertEqual(
            (result.status, result.err),
            (1, "error: the ticket is longer than 1024 bytes\n"),
        )
