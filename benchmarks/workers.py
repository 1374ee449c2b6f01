"""
The workers benchmark: ping round trips/s and relayed round trips/s through
one AuthProxy process (C{--workers 1}) and through two workers sharing the
listening socket (C{--workers 2}), in one run, with the ratio.

Each phase gets a freshly started server (benchmarks/workers_server.py, the
C{twistd aphelion} options: C{--auth dev --game aphelion.games.echo
--game-servers 2}, plus C{--registry} with one redis-server for both when
C{twistd aphelion} has that option and C{redis-server} is installed), once
its game servers are ready. Phases, in each of C{--rounds} rounds, the two
setups taking turns in alternating order:

  - ping: C{--conns} connections of the ping protocol, each a closed loop of
    C{PingRequest}s (loadgen.js rtt);
  - relay: C{--conns} players of the game protocol, authenticated and
    seated, each a closed loop of echoes through the echo game (loadgen.js
    relay).

The table shows the medians over the rounds and the 2/1 ratio; the JSON in
C{benchmarks/results/} has every round. On a 2-core machine the load
generator, the game servers and the workers share the cores: the ratio is
what a second worker adds there, not a per-core figure.

    .venv/bin/python benchmarks/workers.py [--rounds 2] [--seconds 10] [--conns 200]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from run import HERE, RESULTS, Loadgen, Server, freePort, log, median, stopProcess

sys.path.insert(0, str(HERE.parent))

from aphelion.tap import Options
from tests.redisserver import redisArguments

SERVER = (
    "{python} {here}/workers_server.py --workers %d "
    "--listen tcp:{port}:interface=127.0.0.1 --auth dev "
    "--game aphelion.games.echo --game-servers 2 --exempt 127.0.0.0/8 "
    "--max-connections 0 --no-pages%s"
)


def parseArgs(argv: list[str] | None) -> argparse.Namespace:
    """
    The command line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--conns", type=int, default=200)
    parser.add_argument("--output", default=None)
    return parser.parse_args(argv)


def startRedis(scratch: str) -> tuple[subprocess.Popen[bytes] | None, str]:
    """
    A redis-server on a free port, if C{twistd aphelion} takes C{--registry}
    and the binary is there.

    :return: the process (or L{None}) and the C{--registry} option text.
    """
    binary = shutil.which("redis-server")
    if "registry" not in Options().keys() or binary is None:
        log("no --registry option (or no redis-server): the workers run without Redis")
        return None, ""
    port = freePort()
    proc = subprocess.Popen(
        redisArguments(binary, port, scratch),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc, f" --registry redis://127.0.0.1:{port}"


def waitReady(server: Server, count: int, timeout: float = 60.0) -> None:
    """
    Wait until the server's log says both game servers are ready and, with
    workers, that every worker has them (its pool logs each "published").
    """
    path = server.logDir / f"{server.name}-{server.starts}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        # With a Redis registry the ids carry the node's id (abcd1234-gs1).
        ready = all(re.search(rf"game server (\S+-)?gs{i} ready", text) for i in (1, 2))
        if count > 1:
            lines = [line for line in text.splitlines() if "published" in line]
            ready = ready and all(
                sum(f"[worker {i}]" in line for line in lines) >= 2
                for i in range(1, count + 1)
            )
        if ready:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready in {timeout} s")


def main(argv: list[str] | None = None) -> int:
    """
    Run the rounds and print the table.
    """
    args = parseArgs(argv)
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "ws").is_dir():
        log("needs node and `npm install --prefix benchmarks`")
        return 1
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    logDir = RESULTS / f"{stamp}-workers-logs"
    logDir.mkdir()
    redis, registry = startRedis(str(logDir))
    loadgen = Loadgen(node, args)
    servers = {n: Server(f"workers{n}", SERVER % (n, registry), logDir) for n in (1, 2)}
    rounds: list[dict[str, Any]] = []
    load = os.getloadavg()
    try:
        for r in range(args.rounds):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            result: dict[str, Any] = {}
            for n in order:
                for phase in ("ping", "relay"):
                    server = servers[n]
                    server.start()
                    try:
                        waitReady(server, n)
                        if phase == "ping":
                            out = loadgen.rtt(server.url, args.conns, args.seconds)
                        else:
                            out = loadgen.run(
                                "relay",
                                server.url,
                                timeout=args.seconds + args.warmup + 300,
                                conns=args.conns,
                                seconds=args.seconds,
                                warmup=args.warmup,
                                id_prefix=f"r{r}w{n}",
                                open_timeout=240,
                            )
                    finally:
                        server.stop()
                    result[f"{phase}_{n}"] = out
                    rate = out.get("rtt_per_s")
                    log(f"round {r + 1} {phase} workers={n}: {rate} rt/s")
            rounds.append(result)
    finally:
        if redis is not None:
            stopProcess(redis, "redis-server")
    table = {}
    for phase in ("ping", "relay"):
        one = median([x[f"{phase}_1"].get("rtt_per_s") or 0 for x in rounds])
        two = median([x[f"{phase}_2"].get("rtt_per_s") or 0 for x in rounds])
        table[phase] = {
            "workers_1": one,
            "workers_2": two,
            "ratio": round(two / one, 2) if one and two else None,
            "ratios": [
                round(x[f"{phase}_2"]["rtt_per_s"] / x[f"{phase}_1"]["rtt_per_s"], 2)
                for x in rounds
                if x[f"{phase}_1"].get("rtt_per_s") and x[f"{phase}_2"].get("rtt_per_s")
            ],
        }
    print(
        f"| phase ({args.conns} conns) | --workers 1 rt/s | --workers 2 rt/s "
        "| ratio | per round |"
    )
    print("|---|---|---|---|---|")
    for phase, row in table.items():
        print(
            f"| {phase} | {row['workers_1']} | {row['workers_2']} | {row['ratio']} "
            f"| {row['ratios']} |"
        )
    print(f"load average before the run: {load}; cores: {os.cpu_count()}")
    output = Path(args.output) if args.output else RESULTS / f"{stamp}-workers.json"
    output.write_text(
        json.dumps(
            {
                "suite": "workers",
                "args": vars(args),
                "load": load,
                "registry": bool(registry),
                "rounds": rounds,
                "table": table,
            },
            indent=2,
        )
    )
    log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
