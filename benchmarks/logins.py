"""
Logins per second and login time of the accounts checker, SQLite against
PostgreSQL, in one run.

For each backend this script makes the checker that C{--auth} makes
(C{sqlite:PATH}, C{postgresql:DSN:password-file=PATH}), on the real reactor,
with its pool of 3 threads, and drives it through a C{Portal} with
C{aphelion.auth.authenticate}: C{--concurrency} logins in flight at once
(each a right C{PLAYERID:SECRET} of its own account, hashed with
C{--iterations} PBKDF2 iterations, the default of C{aphelion accounts}),
until C{--logins} have been answered. The backends take turns over
C{--rounds} rounds, and each one's figures are over all its rounds.

PBKDF2 runs in the pool's threads and dominates a login, so the two backends
should be within 20 % of each other.

Without C{--postgresql DSN}, a throwaway PostgreSQL server is made with
C{tests/pgserver.py} (Debian's C{postgresql} package and psycopg 3 needed),
and destroyed at the end. Results go to stdout and to
C{benchmarks/results/<UTC time>-logins.json}.

    .venv/bin/python benchmarks/logins.py
    .venv/bin/python benchmarks/logins.py --logins 100 --iterations 100000
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(REPO))

from twisted.cred.portal import Portal  # noqa: E402
from twisted.internet.defer import Deferred, gatherResults  # noqa: E402
from twisted.internet.task import react  # noqa: E402

from aphelion.auth import (  # noqa: E402
    DEFAULT_ITERATIONS,
    DatabaseChecker,
    PlayerRealm,
    PostgreSQLCheckerFactory,
    SQLiteCheckerFactory,
    authenticate,
    hashSecret,
    upgradeSchema,
)

SECRET = "correct-horse-battery-staple"


def addAccounts(connection: Any, dbapi: Any, count: int, iterations: int) -> None:
    """
    Make the schema and C{count} accounts, C{player0}... all with the
    secret L{SECRET}, hashed once (the hash is slow by design, and the
    checker does not care that they share it).
    """
    cursor = connection.cursor()
    upgradeSchema(cursor, dbapi)
    mark = "?" if dbapi.paramstyle == "qmark" else "%s"
    stored = hashSecret(SECRET, iterations)
    cursor.executemany(
        "INSERT INTO accounts (player_id, name, secret_hash, attributes, created)"
        f" VALUES ({mark}, {mark}, {mark}, '{{}}', 0)",
        [(f"player{i}", f"Player {i}", stored) for i in range(count)],
    )
    connection.commit()


async def drive(
    reactor: Any, checker: DatabaseChecker, logins: int, concurrency: int
) -> tuple[float, list[float]]:
    """
    Run C{logins} logins, C{concurrency} at a time.

    :return: the wall time, and each login's time, in seconds.
    """
    portal = Portal(PlayerRealm(), [checker])
    times: list[float] = []
    remaining = [logins]

    async def worker(index: int) -> None:
        idString = f"player{index}:{SECRET}"
        while remaining[0] > 0:
            remaining[0] -= 1
            began = reactor.seconds()
            await authenticate(portal, idString)
            times.append(reactor.seconds() - began)

    began = reactor.seconds()
    await gatherResults(
        [Deferred.fromCoroutine(worker(i)) for i in range(concurrency)],
        consumeErrors=True,
    )
    return reactor.seconds() - began, times


def percentile(values: list[float], fraction: float) -> float:
    """
    :return: the nearest-rank percentile of C{values}.
    """
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def main(reactor: Any, argv: list[str]) -> None:
    """
    Measure both backends and print the table.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=200, help="per backend")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    parser.add_argument(
        "--postgresql",
        metavar="DSN",
        help="an existing database (password from PGPASSWORD); default: a"
        " throwaway server",
    )
    parser.add_argument("--output", type=Path)
    options = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="aphelion-logins-")
    sqlitePath = os.path.join(workdir, "accounts.sqlite3")
    connection = sqlite3.connect(sqlitePath)
    addAccounts(connection, sqlite3, options.concurrency, options.iterations)
    connection.close()

    server = None
    import psycopg

    if options.postgresql:
        dsn = options.postgresql
        argument = dsn
    else:
        from tests.pgserver import PostgreSQLServer

        server = PostgreSQLServer(reactor)
        await server.create()
        dsn = server.dsn
        passwordFile = os.path.join(workdir, "password")
        Path(passwordFile).write_text(server.password)
        argument = f"{dsn}:password-file={passwordFile}"
    try:
        password = {"password": server.password} if server else {}
        with psycopg.connect(dsn, **password) as pg:
            with pg.cursor() as cursor:
                cursor.execute("DROP TABLE IF EXISTS accounts, accounts_schema_version")
            addAccounts(pg, psycopg, options.concurrency, options.iterations)

        checkers = {
            "sqlite": SQLiteCheckerFactory(reactor).generateChecker(sqlitePath),
            "postgresql": PostgreSQLCheckerFactory(reactor).generateChecker(argument),
        }
        for checker in checkers.values():
            checker.unknownHash = hashSecret("x", options.iterations, "unknown")
            # Warm up: the pool's threads and connections.
            await drive(reactor, checker, options.concurrency, options.concurrency)

        wall = dict.fromkeys(checkers, 0.0)
        times: dict[str, list[float]] = {name: [] for name in checkers}
        perRound = max(1, options.logins // options.rounds)
        for round in range(options.rounds):
            order = list(checkers) if round % 2 == 0 else list(reversed(checkers))
            for name in order:
                seconds, each = await drive(
                    reactor, checkers[name], perRound, options.concurrency
                )
                wall[name] += seconds
                times[name] += each
                print(
                    f"round {round + 1} {name:>10}: {perRound / seconds:6.2f} logins/s",
                    flush=True,
                )
        for checker in checkers.values():
            checker.close()
    finally:
        if server is not None:
            await server.stop()
            server.destroy()
        shutil.rmtree(workdir, ignore_errors=True)

    figures = {
        name: {
            "logins": len(times[name]),
            "logins_per_second": len(times[name]) / wall[name],
            "p50_ms": 1000 * percentile(times[name], 0.50),
            "p99_ms": 1000 * percentile(times[name], 0.99),
        }
        for name in checkers
    }
    sqliteFigures, pgFigures = figures["sqlite"], figures["postgresql"]
    ratio = {
        "logins_per_second": pgFigures["logins_per_second"]
        / sqliteFigures["logins_per_second"],
        "p99": pgFigures["p99_ms"] / sqliteFigures["p99_ms"],
    }
    print()
    print(
        f"{options.concurrency} concurrent logins, PBKDF2-SHA256 x"
        f" {options.iterations}, pool of 3 threads, {os.cpu_count()} CPUs"
    )
    print(f"{'backend':>12} {'logins':>7} {'logins/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, f in figures.items():
        print(
            f"{name:>12} {f['logins']:>7} {f['logins_per_second']:>9.2f}"
            f" {f['p50_ms']:>8.0f} {f['p99_ms']:>8.0f}"
        )
    print(
        f"{'pg / sqlite':>12} {'':>7} {ratio['logins_per_second']:>9.3f}"
        f" {'':>8} {ratio['p99']:>8.3f}"
    )
    RESULTS.mkdir(exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    output = options.output or RESULTS / f"{now:%Y%m%dT%H%M%SZ}-logins.json"
    output.write_text(
        json.dumps(
            {
                "time": now.isoformat(),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "options": {k: str(v) for k, v in vars(options).items()},
                "figures": figures,
                "ratio_postgresql_to_sqlite": ratio,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {output}")


if __name__ == "__main__":
    react(main, (sys.argv[1:],))
