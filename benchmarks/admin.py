"""
What the admin endpoint costs the relay: aphelion with C{--admin} on and
C{/metrics} scraped every second, against the same build with C{--admin} off,
in one run, and the on/off ratio of each figure (target: at least 0.97 for
the round trips per second).

In each of C{--rounds} rounds, the two servers taking turns in alternating
order, a fresh aphelion (C{--auth dev --game aphelion.games.echo
--game-servers 2}, as C{relay.py} runs it) gets, one after the other:

  - ping round trips with C{--conns} connections (loadgen.js C{rtt});
  - relayed round trips with C{--players} players (loadgen.js C{relay}):
    each player authenticated, seated, and echoing a C{--payload}-byte
    game message in a closed loop.

While the admin server is up, a scraper process fetches C{/metrics} every
C{--scrape-interval} seconds (it also reports how long a scrape took). The
table shows the medians over the rounds; the JSON in C{benchmarks/results/}
has every round.

    .venv/bin/python benchmarks/admin.py --rounds 3 --seconds 10
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from relay import APHELION_COMMAND, RelayServer, perEvent, runLoadgen
from run import RESULTS, freePort, log, median, number, raiseFileLimit, versions

TOKEN = "benchmark-admin-token-0123456789"

# A separate process, so that scraping costs the server under test only what
# answering costs it.
SCRAPER = r"""
import json, signal, sys, time, urllib.request
url, interval = sys.argv[1], float(sys.argv[2])
took = []
failures = 0
size = 0
def done(*_):
    took.sort()
    print(json.dumps({
        "scrapes": len(took), "failures": failures, "bytes": size,
        "p50_ms": round(took[len(took) // 2] * 1000, 2) if took else None,
        "max_ms": round(took[-1] * 1000, 2) if took else None,
    }), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    start = time.monotonic()
    try:
        size = len(urllib.request.urlopen(url, timeout=5).read())
        took.append(time.monotonic() - start)
    except Exception:
        failures += 1
    time.sleep(max(0.0, interval - (time.monotonic() - start)))
"""


class Scraper:
    """
    Fetches C{/metrics} every interval in a child process.
    """

    def __init__(self, url: str, interval: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, url, str(interval)],
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> dict[str, Any]:
        """
        Stop it (by its PID) and return what it measured.
        """
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}


def runServer(
    node: str, server: RelayServer, args: argparse.Namespace, prefix: str
) -> dict[str, Any]:
    """
    Start C{server}, scrape it if it has an admin endpoint, run the ping and
    the relay phases, stop it.
    """
    server.start()
    scraper = None
    adminPort = getattr(server, "adminPort", None)
    if adminPort:
        scraper = Scraper(f"http://127.0.0.1:{adminPort}/metrics", args.scrape_interval)
    got: dict[str, Any] = {}
    try:
        common = {"seconds": args.seconds, "warmup": args.warmup}
        got["ping"] = runLoadgen(
            node,
            server,
            "rtt",
            timeout=args.seconds + args.warmup + 180,
            conns=args.conns,
            **common,
        )
        perEvent(got["ping"], "round_trips", "rt")
        got["relay"] = runLoadgen(
            node,
            server,
            "relay",
            timeout=args.seconds + args.warmup + 300,
            conns=args.players,
            payload=args.payload,
            open_timeout=240,
            id_prefix=prefix,
            **common,
        )
        perEvent(got["relay"], "round_trips", "rt")
    finally:
        if scraper is not None:
            got["scraper"] = scraper.stop()
        server.stop()
    return got


ROWS = [
    ("ping round trips/s", "ping", "rtt_per_s", 0),
    ("  p50 ms", "ping", "p50_ms", 3),
    ("  proxy CPU us per round trip", "ping", "proxy_cpu_us_per_rt", 1),
    ("  cores used by other processes", "ping", "outside_load_cores", 2),
    ("relayed round trips/s", "relay", "rtt_per_s", 0),
    ("  p50 ms", "relay", "p50_ms", 3),
    ("  proxy CPU us per round trip", "relay", "proxy_cpu_us_per_rt", 1),
    ("  cores used by other processes", "relay", "outside_load_cores", 2),
]


def parseArgs(argv: list[str] | None) -> argparse.Namespace:
    """
    The command line.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--seconds", type=float, default=10, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2, help="unmeasured seconds")
    p.add_argument("--conns", type=int, default=100, help="ping connections")
    p.add_argument("--players", type=int, default=100, help="relayed players")
    p.add_argument("--payload", type=int, default=24, help="relayed payload bytes")
    p.add_argument(
        "--scrape-interval", type=float, default=1.0, help="seconds between scrapes"
    )
    p.add_argument("--output", type=Path, help="JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """
    Run both servers in alternating order and print the table.
    """
    args = parseArgs(argv)
    node = shutil.which("node")
    if node is None:
        log("node is not on PATH")
        return 2
    raiseFileLimit(4 * args.players + 10000)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    logDir = RESULTS / f"{stamp}-admin-logs"
    logDir.mkdir()
    tokenFile = logDir / "admin.token"
    tokenFile.write_text(TOKEN + "\n")
    adminPort = freePort()
    off = RelayServer("admin-off", APHELION_COMMAND, logDir)
    on = RelayServer(
        "admin-on",
        APHELION_COMMAND
        + f" --admin tcp:{adminPort}:interface=127.0.0.1"
        + f" --admin-token-file {tokenFile}",
        logDir,
    )
    on.adminPort = adminPort  # type: ignore[attr-defined]
    servers = [off, on]
    results: dict[str, Any] = {
        s.name: {"command": s.template, "rounds": []} for s in servers
    }
    for roundNumber in range(args.rounds):
        order = servers if roundNumber % 2 == 0 else servers[::-1]
        for server in order:
            log(f"round {roundNumber + 1}/{args.rounds}: {server.name}")
            prefix = f"r{roundNumber + 1}{server.name.replace('-', '')}-"
            results[server.name]["rounds"].append(runServer(node, server, args, prefix))

    def figures(name: str, phase: str, key: str) -> list[float]:
        return [
            r[phase][key]
            for r in results[name]["rounds"]
            if r.get(phase, {}).get(key) is not None
        ]

    print()
    print(f"{'figure':34} {'--admin off':>12} {'on + scrapes':>13} {'on/off':>7}")
    summary = {}
    for label, phase, key, digits in ROWS:
        a = median(figures("admin-off", phase, key))
        b = median(figures("admin-on", phase, key))
        perRound = [
            round(y / x, 3)
            for x, y in zip(
                figures("admin-off", phase, key),
                figures("admin-on", phase, key),
                strict=False,
            )
            if x
        ]
        r = round(b / a, 3) if a and b is not None else None
        summary[label.strip()] = {"off": a, "on": b, "ratio": r, "rounds": perRound}
        print(
            f"{label:34} {number(a, digits):>12} {number(b, digits):>13}"
            f" {number(r, 3):>7}  rounds {perRound}"
        )
    scrapes = [r.get("scraper", {}) for r in results["admin-on"]["rounds"]]
    print(f"scrapes: {scrapes}")
    out = args.output or RESULTS / f"{stamp}-admin.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args) | {"output": str(out)},
                "versions": versions(node),
                "summary": summary,
                "results": results,
            },
            indent=2,
            default=str,
        )
    )
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
