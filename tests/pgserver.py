# -*- test-case-name: tests.test_integration_postgres -*-
"""
A throwaway PostgreSQL server for tests and benchmarks: a new cluster in a
temporary directory, listening on 127.0.0.1 only, on a free port, with its
unix socket in that directory. Run as the C{postgres} user when this process
is root (the server refuses to run as root).

The cluster has a superuser C{postgres}, reached through the unix socket
without a password, and a role C{aphelion} with a random password that owns
the database C{aphelion}, reached over TCP with that password (SCRAM): the
way an AuthProxy reaches its accounts database.

L{sharedServer} gives every test of a process the same server, started by the
first one and destroyed when the process exits, so that a test module pays
for C{initdb} once.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from typing import Any

from twisted.internet.utils import getProcessOutputAndValue

__all__ = ["PostgreSQLServer", "findBinaries", "missing", "sharedServer"]

_BINARIES = ("initdb", "pg_ctl", "postgres")


def findBinaries() -> str | None:
    """
    :return: the directory of PostgreSQL's server binaries: the
        C{APHELION_PG_BINDIR} environment variable, else Debian's newest
        C{/usr/lib/postgresql/*/bin}, else the directory of C{pg_ctl} on the
        C{PATH}; L{None} if none holds them all.
    """
    candidates = [os.environ.get("APHELION_PG_BINDIR", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: [int(p) for p in d.split("/")[-2].split(".") if p.isdigit()],
        reverse=True,
    )
    onPath = shutil.which("pg_ctl")
    if onPath:
        candidates.append(os.path.dirname(onPath))
    for directory in candidates:
        if directory and all(
            os.access(os.path.join(directory, name), os.X_OK) for name in _BINARIES
        ):
            return directory
    return None


def missing() -> str | None:
    """
    :return: why a real PostgreSQL server cannot be used here, for a skip
        message; L{None} if it can.
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg 3 is not installed (pip install -e '.[postgresql]')"
    if findBinaries() is None:
        return (
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not"
            " installed (Debian: apt-get install postgresql; or set"
            " APHELION_PG_BINDIR)"
        )
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root without runuser to start PostgreSQL as postgres"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no 'postgres' user to run PostgreSQL"
    return None


def _freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgreSQLServer:
    """
    A PostgreSQL cluster of one's own. Call L{create} once, then L{stop} and
    L{start} as a test needs, and L{destroy} at the end.

    :ivar directory: the temporary directory: the cluster in C{data}, the
        server's log in C{server.log}, its unix socket.
    :ivar port: its TCP port on 127.0.0.1.
    :ivar user: the role that owns L{database}.
    :ivar password: L{user}'s password.
    :ivar database: the database of the tests.
    """

    user = "aphelion"
    database = "aphelion"

    def __init__(self, reactor: Any) -> None:
        binaries = findBinaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL's server binaries are not installed")
        self._reactor = reactor
        self._binaries = binaries
        self.directory = tempfile.mkdtemp(prefix="aphelion-pg-")
        self.data = os.path.join(self.directory, "data")
        self.port = _freePort()
        self.password = secrets.token_urlsafe(18)
        self.running = False
        self._asUser: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            runuser = shutil.which("runuser")
            assert runuser is not None
            self._asUser = [runuser, "-u", "postgres", "--"]

    @property
    def dsn(self) -> str:
        """
        The URL an AuthProxy would be given: L{user} over TCP, no password.
        """
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _command(self, name: str, *args: str) -> list[str]:
        return [*self._asUser, os.path.join(self._binaries, name), *args]

    async def _run(self, name: str, *args: str) -> None:
        command = self._command(name, *args)
        out, err, code = await getProcessOutputAndValue(
            command[0], command[1:], env=dict(os.environ), reactor=self._reactor
        )
        if code != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {code}:\n"
                f"{out.decode(errors='replace')}{err.decode(errors='replace')}"
            )

    async def create(self) -> None:
        """
        Make the cluster, start it, and make L{user} and L{database}.
        """
        await self._run(
            "initdb",
            "--pgdata",
            self.data,
            "--username",
            "postgres",
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.directory}'\n"
                # A throwaway cluster: durability buys nothing.
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "shared_buffers = 16MB\n"
                "max_connections = 40\n"
            )
        await self.start()
        with self.admin("postgres") as connection:
            connection.execute(
                f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'"
            )
            connection.execute(f"CREATE DATABASE {self.database} OWNER {self.user}")

    async def start(self) -> None:
        """
        Start the server, on the same port and data as before; return once
        it accepts connections.
        """
        await self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            self.data,
            "--log",
            os.path.join(self.directory, "server.log"),
            "--wait",
            "--timeout",
            "60",
            "--silent",
        )
        self.running = True

    async def stop(self) -> None:
        """
        Stop the server as an operator would for a restart (C{fast}: its
        sessions are ended), and return once it is down.
        """
        await self._run("pg_ctl", "stop", "--pgdata", self.data, "--mode", "fast")
        self.running = False

    def admin(self, database: str | None = None) -> Any:
        """
        :return: a new psycopg connection, in autocommit, of the superuser
            through the unix socket, to C{database} (L{database} when
            L{None}).
        """
        import psycopg

        return psycopg.connect(
            host=self.directory,
            port=self.port,
            user="postgres",
            dbname=database or self.database,
            autocommit=True,
        )

    def owner(self) -> Any:
        """
        :return: a new psycopg connection, in autocommit, of L{user} over
            TCP to L{database}: the tables it makes are the role's, as
            aphelion's are.
        """
        import psycopg

        return psycopg.connect(self.dsn, password=self.password, autocommit=True)

    def destroy(self) -> None:
        """
        Stop the server now, if it runs, and remove its directory. Blocks:
        for the end of the process, when no reactor runs.
        """
        if self.running and os.path.exists(self.data):
            subprocess.run(
                self._command(
                    "pg_ctl", "stop", "--pgdata", self.data, "--mode", "immediate"
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            self.running = False
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: PostgreSQLServer | None = None
_sharedError: BaseException | None = None


async def sharedServer(reactor: Any) -> PostgreSQLServer:
    """
    :return: the one server of this process, made and started by the first
        call and destroyed when the process exits. A test that stops it
        starts it again before it ends.
    :raises RuntimeError: if it could not be made (again, for every later
        call: one C{initdb} that fails is enough).
    """
    global _shared, _sharedError
    if _sharedError is not None:
        raise RuntimeError("the shared PostgreSQL server could not be made") from (
            _sharedError
        )
    if _shared is None:
        server = PostgreSQLServer(reactor)
        atexit.register(server.destroy)
        try:
            await server.create()
        except BaseException as e:
            _sharedError = e
            raise
        _shared = server
    if not _shared.running:
        await _shared.start()
    return _shared
