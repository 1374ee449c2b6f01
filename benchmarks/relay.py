"""
Run the relay suite: round trips through the full path (client → AuthProxy →
game server → AuthProxy → client) and seats per second, side by side with the
bare Autobahn echo, in one run, with each aphelion/bare ratio.

Aphelion runs with C{--auth dev --game aphelion.games.echo --game-servers 2}:
the echo game sends every game message back to its sender verbatim. Each
phase gets a freshly started server (for aphelion, once every game server
has logged "game server gsN ready"), so that the sessions a phase leaves
behind (they linger for the session timeout, seats included) do not weigh on
the next. The phases, in each of C{--rounds} rounds, the servers taking turns
in alternating order:

  - relay with each count of C{--players} (default 100 and 1,000): every
    player authenticates with its own dev ID and is seated (connected +
    game_config), then sends a C{--payload}-byte game message and waits for
    its echo, in a closed loop (the bare echo: the same loop right after the
    init, as it has no authentication);
  - the same with C{--latency-players} (default 10): latency at light load;
  - seats: C{--seat-concurrency} workers repeating open + init + authenticate
    + connected + close (the bare echo: open + init + one echo of the same
    authenticate packet + close).

The load generator marks the start and end of its measured window on
stderr, and the server CPU is read at those two moments: for aphelion, the
proxy process and its game-server children apart. The table shows the medians
over the rounds; the JSON in C{benchmarks/results/} has every round. With
C{--profile}, py-spy then records the proxy and the game servers under the
first relay load. See README.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from run import (
    HERE,
    RESULTS,
    VENV_BIN,
    CpuWindow,
    Loadgen,
    Server,
    log,
    median,
    number,
    raiseFileLimit,
    ratio,
    stopProcess,
    versions,
)

BARE_COMMAND = "{python} {here}/bare_echo.py --port 0 --port-file {portfile}"
APHELION_COMMAND = (
    "{venv}/twistd -n --pidfile= aphelion"
    " --listen tcp:{port}:interface=127.0.0.1 --path /aphelion"
    " --auth dev --game aphelion.games.echo --game-servers 2"
    # The load generator is a trusted tool on loopback: exempt from the
    # per-address limits of Part 6, as an operator would exempt it.
    " --exempt 127.0.0.0/8"
)
READY = re.compile(rb"game server (\S+) ready")


class RelayServer(Server):
    """
    A server under test that may spawn game servers: C{start} also waits for
    them, and the CPU is read for the process and its children apart.
    """

    def gameServers(self) -> int:
        """
        How many game servers the command asks for (C{--game-servers N}).
        """
        found = re.search(r"--game-servers[ =](\d+)", self.template)
        return int(found.group(1)) if found else 0

    @property
    def logPath(self) -> Path:
        """
        The log of the current start (as L{Server.start} names it).
        """
        return self.logDir / f"{self.name}-{self.starts}.log"

    def start(self, timeout: float = 60.0) -> None:
        """
        Start the server, wait until it listens and until every game server
        has logged that it is ready.
        """
        super().start(timeout)
        expected = self.gameServers()
        if not expected:
            return
        deadline = time.monotonic() + timeout
        ready: set[bytes] = set()
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.logPath}")
            ready = set(READY.findall(self.logPath.read_bytes()))
            if len(ready) >= expected:
                log(f"{self.name}: {len(ready)} game servers ready")
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name}: {len(ready)} of {expected} game servers ready"
            f" after {timeout} s; see {self.logPath}"
        )

    def cpuParts(self) -> tuple[float, dict[int, float]]:
        """
        User plus system CPU seconds of the server process, and of each of
        its (recursive) children by PID.
        """
        assert self.proc is not None
        proc = psutil.Process(self.proc.pid)
        times = proc.cpu_times()
        children: dict[int, float] = {}
        for child in proc.children(recursive=True):
            try:
                t = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            children[child.pid] = t.user + t.system
        return times.user + times.system, children


class Window:
    """
    CPU use over the load generator's measured window: the server's (the
    process and its children apart), and that of every process other than the
    server, the load generator and this runner ("outside").
    """

    def __init__(self, server: RelayServer, loadgenPid: int) -> None:
        self._server = server
        self._loadgen = psutil.Process(loadgenPid)
        self._start: tuple[Any, ...] | None = None
        self.figures: dict[str, Any] = {}

    def _snapshot(self) -> tuple[Any, ...]:
        me = psutil.Process().cpu_times()
        lg = self._loadgen.cpu_times()
        busy, steal = CpuWindow._busy()
        proxy, children = self._server.cpuParts()
        ours = me.user + me.system + lg.user + lg.system
        return time.monotonic(), busy, steal, ours, proxy, children

    def start(self) -> None:
        """
        The window starts: read everything.
        """
        self._start = self._snapshot()

    def stop(self) -> None:
        """
        The window ends: read everything again and work the figures out.
        """
        if self._start is None:
            return
        t0, busy0, steal0, ours0, proxy0, children0 = self._start
        t1, busy1, steal1, ours1, proxy1, children1 = self._snapshot()
        elapsed = max(t1 - t0, 1e-9)
        proxy = proxy1 - proxy0
        # A child that started inside the window counts from zero; one that
        # ended inside it is lost (and reported).
        childCpu = sum(v - children0.get(pid, 0.0) for pid, v in children1.items())
        server = proxy + childCpu
        outside = (busy1 - busy0) - (ours1 - ours0) - server
        self.figures = {
            "window_seconds": round(elapsed, 3),
            "server_cpu_s": round(server, 4),
            "proxy_cpu_s": round(proxy, 4),
            "game_servers_cpu_s": round(childCpu, 4) if children1 else None,
            "game_servers": len(children1),
            "game_servers_lost": len(set(children0) - set(children1)),
            "outside_load_cores": round(max(0.0, outside) / elapsed, 2),
            "steal_cores": round((steal1 - steal0) / elapsed, 2),
        }


def runLoadgen(
    node: str,
    server: RelayServer,
    mode: str,
    timeout: float,
    **options: Any,
) -> dict[str, Any]:
    """
    Run one bounded mode of loadgen.js against the server with
    C{--mark-window}, read the server's CPU when the window starts and ends,
    and return the JSON result with the CPU figures added.
    """
    argv = [node, str(HERE / "loadgen.js"), mode, "--url", server.url]
    for key, value in options.items():
        if value is True:
            argv.append("--" + key.replace("_", "-"))
        elif value is not False and value is not None:
            argv += ["--" + key.replace("_", "-"), str(value)]
    argv.append("--mark-window")
    log("loadgen " + " ".join(shlex.quote(a) for a in argv[2:]))
    proc = subprocess.Popen(
        argv, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    window = Window(server, proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    outFd, errFd = proc.stdout.fileno(), proc.stderr.fileno()
    out = {outFd: bytearray(), errFd: bytearray()}
    selector = selectors.DefaultSelector()
    for fd in out:
        selector.register(fd, selectors.EVENT_READ)
    seen = 0  # how much of stderr has been scanned for marks
    deadline = time.monotonic() + timeout
    try:
        while selector.get_map() and time.monotonic() < deadline:
            for ready, _ in selector.select(timeout=0.5):
                chunk = os.read(ready.fd, 65536)
                if chunk:
                    out[ready.fd] += chunk
                else:
                    selector.unregister(ready.fd)
            err = out[errFd]
            while (end := err.find(b"\n", seen)) >= 0:
                line = bytes(err[seen:end]).strip()
                seen = end + 1
                if line == b"window start":
                    window.start()
                elif line == b"window end":
                    window.stop()
        if selector.get_map():
            log(f"loadgen {mode} ran over {timeout} s; stopping it")
            stopProcess(proc, f"loadgen {mode}")
        proc.wait(timeout=30)
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    stderr = out[errFd].decode("utf-8", "replace")
    stderr = "\n".join(
        line for line in stderr.splitlines() if not line.startswith("window ")
    )
    result = Loadgen._parse(
        out[outFd].decode("utf-8", "replace"), stderr, proc.returncode
    )
    result.update(window.figures)
    return result


def perEvent(result: dict[str, Any], count: str, suffix: str) -> None:
    """
    Add CPU microseconds per counted event (round trip or seat) for the whole
    server, the proxy and the game servers.
    """
    total = result.get(count) or 0
    for part in ("server", "proxy", "game_servers"):
        seconds = result.get(f"{part}_cpu_s")
        result[f"{part}_cpu_us_per_{suffix}"] = (
            round(seconds / total * 1e6, 1) if total and seconds is not None else None
        )


def phases(args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any]]]:
    """
    The phases of one round: (name, loadgen mode, options).
    """
    out = []
    for players in args.players:
        out.append((f"relay_{players}", "relay", {"conns": players}))
    if args.latency_players:
        out.append(("relay_light", "relay", {"conns": args.latency_players}))
    if args.seat_concurrency:
        out.append(("seats", "seats", {"concurrency": args.seat_concurrency}))
    return out


def runPhase(
    node: str,
    server: RelayServer,
    mode: str,
    options: dict[str, Any],
    args: argparse.Namespace,
    prefix: str,
) -> dict[str, Any]:
    """
    One phase on a freshly started server.
    """
    server.start()
    try:
        common = {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "no_auth": server.name == "bare",
            "id_prefix": prefix,
        }
        if mode == "relay":
            result = runLoadgen(
                node,
                server,
                "relay",
                timeout=args.seconds + args.warmup + 300,
                payload=args.payload,
                open_timeout=240,
                **common,
                **options,
            )
            perEvent(result, "round_trips", "rt")
        else:
            result = runLoadgen(
                node,
                server,
                "seats",
                timeout=args.seconds + args.warmup + 90,
                **common,
                **options,
            )
            perEvent(result, "seats", "seat")
        if result.get("outside_load_cores", 0) > 0.15:
            log(
                f"warning: other processes used {result['outside_load_cores']:.2f}"
                " cores during this phase; its figures are unreliable"
            )
        return result
    finally:
        server.stop()


# label, phase (players filled in), key, digits, target
# A target is (what, op, bound): what is "ratio" (aphelion/bare) or
# "aphelion" (aphelion's own figure).
Target = tuple[str, str, float] | None


def rows(args: argparse.Namespace) -> list[tuple[str, str, str, int, Target]]:
    """
    The rows of the table.
    """
    out: list[tuple[str, str, str, int, Target]] = []
    for players in args.players:
        phase = f"relay_{players}"
        out += [
            (
                f"relay round trips/s, {players} players",
                phase,
                "rtt_per_s",
                0,
                ("ratio", ">=", 0.75 if players <= 100 else 0.7),
            ),
            ("  p50 ms", phase, "p50_ms", 3, None),
            ("  p99 ms", phase, "p99_ms", 3, None),
            ("  server CPU us per round trip", phase, "server_cpu_us_per_rt", 1, None),
            ("    proxy", phase, "proxy_cpu_us_per_rt", 1, None),
            ("    game servers", phase, "game_servers_cpu_us_per_rt", 1, None),
            (
                "  ack-only msgs per round trip",
                phase,
                "ack_only_per_rt",
                3,
                ("aphelion", "<=", 0.05),
            ),
        ]
    if args.latency_players:
        light = args.latency_players
        out += [
            (
                f"relay round trips/s, {light} players",
                "relay_light",
                "rtt_per_s",
                0,
                None,
            ),
            ("  p50 ms", "relay_light", "p50_ms", 3, None),
            ("  p99 ms", "relay_light", "p99_ms", 3, ("aphelion", "<", 5.0)),
        ]
    if args.seat_concurrency:
        out += [
            (
                f"seats/s, {args.seat_concurrency} concurrent",
                "seats",
                "seats_per_s",
                0,
                ("ratio", ">=", 0.7),
            ),
            ("  p50 ms to seated", "seats", "p50_ms", 3, None),
            ("  p99 ms to seated", "seats", "p99_ms", 3, ("ratio", "<=", 2.0)),
            ("  server CPU us per seat", "seats", "server_cpu_us_per_seat", 0, None),
            ("    proxy", "seats", "proxy_cpu_us_per_seat", 0, None),
            ("    game servers", "seats", "game_servers_cpu_us_per_seat", 0, None),
        ]
    if args.players:
        out.append(
            (
                "other processes' load, cores",
                f"relay_{args.players[0]}",
                "outside_load_cores",
                2,
                None,
            )
        )
    return out


def summarise(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """
    The median over the rounds of every numeric figure of every phase.
    """
    summary: dict[str, dict[str, float | None]] = {}
    names = {name for r in rounds for name in r}
    for phase in sorted(names):
        runs = [r[phase] for r in rounds if isinstance(r.get(phase), dict)]
        keys = {
            k
            for run in runs
            for k, v in run.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        summary[phase] = {k: median([run.get(k) for run in runs]) for k in keys}
    return summary


def table(
    results: dict[str, Any], args: argparse.Namespace
) -> tuple[str, dict[str, Any]]:
    """
    Format the side-by-side table and collect the ratios and verdicts.
    """
    header = (
        f"{'figure':38} {'bare echo':>10} {'aphelion':>10} {'aph/bare':>8}"
        f" {'per round':>11}  target"
    )
    lines = [header, "-" * (len(header) + 18)]
    verdicts: dict[str, Any] = {}
    bareRounds = results.get("bare", {}).get("rounds", [])
    aphRounds = results.get("aphelion", {}).get("rounds", [])
    for label, phase, key, digits, target in rows(args):
        b = results.get("bare", {}).get("summary", {}).get(phase, {}).get(key)
        a = results.get("aphelion", {}).get("summary", {}).get(phase, {}).get(key)
        if a is None and b is None:
            continue
        r = ratio(a, b)
        perRound = [
            x
            for x in (
                ratio((ar.get(phase) or {}).get(key), (br.get(phase) or {}).get(key))
                for br, ar in zip(bareRounds, aphRounds, strict=False)
            )
            if x is not None
        ]
        spread = f"{min(perRound):.2f}-{max(perRound):.2f}" if len(perRound) > 1 else ""
        entry: dict[str, Any] = {}
        if r is not None:
            entry["ratio"] = round(r, 3)
            if perRound:
                entry["per_round"] = [round(x, 3) for x in perRound]
        verdict = ""
        if target is not None:
            what, op, bound = target
            value = r if what == "ratio" else a
            text = f"{'ratio' if what == 'ratio' else 'aph'} {op} {bound:g}"
            if value is not None:
                ok = {
                    ">=": value >= bound,
                    "<=": value <= bound,
                    "<": value < bound,
                }[op]
                verdict = f"{text}  {'ok' if ok else 'MISSED'}"
                entry.update(target=text, met=ok)
        if entry:
            verdicts[f"{phase}.{key}"] = entry
        lines.append(
            f"{label:38} {number(b, digits):>10} {number(a, digits):>10} "
            f"{'-' if r is None else f'{r:.2f}':>8} {spread:>11}  {verdict}"
        )
    return "\n".join(lines), verdicts


# ---------------------------------------------------------------- profiling

APHELION_FILES = (
    "aphelion/websocket.py",
    "aphelion/gateway.py",
    "aphelion/session.py",
    "aphelion/ack.py",
    "aphelion/control/protocol.py",
    "aphelion/control/proxy.py",
    "aphelion/game/player.py",
    "aphelion/game/factory.py",
    "aphelion/game/router.py",
    "aphelion/envelope.py",
)


def hotSpots(path: Path, top: int = 15) -> dict[str, Any]:
    """
    Read py-spy's raw (collapsed) stacks: the share of samples in which each
    function of aphelion's own code is on the stack (inclusive), each
    function at the top of the stack (self, any code), and each file.
    """
    inclusive: collections.Counter[str] = collections.Counter()
    selfTime: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if frames:
            selfTime[frames[-1]] += n
        seen = set()
        for frame in frames:
            if any(f in frame for f in APHELION_FILES) and frame not in seen:
                seen.add(frame)
                inclusive[frame] += n
    if not total:
        return {}

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(top)]

    return {
        "samples": total,
        "aphelion_inclusive_pct": share(inclusive),
        "self_pct": share(selfTime),
    }


def profilePhase(
    node: str, server: RelayServer, args: argparse.Namespace, stamp: str
) -> dict[str, Any]:
    """
    Record py-spy (raw stacks) on the proxy and on each game server under
    the first relay load, on a fresh server. Not measured: sampling pauses
    the processes.
    """
    pyspy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not os.path.exists(pyspy):
        log("py-spy not found (pip install py-spy); skipping the profile")
        return {}
    players = args.players[0] if args.players else 100
    seconds = max(2, int(args.profile_seconds))
    server.start()
    spies: list[tuple[str, Path, subprocess.Popen[str]]] = []
    try:
        assert server.proc is not None
        proc = psutil.Process(server.proc.pid)
        targets = [("proxy", proc.pid)] + [
            (f"gameserver{i + 1}", child.pid)
            for i, child in enumerate(proc.children(recursive=True))
        ]
        for name, pid in targets:
            output = RESULTS / f"{stamp}-relay-{name}-profile.txt"
            spy = subprocess.Popen(
                [
                    pyspy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(seconds),
                    "--rate",
                    str(args.profile_rate),
                    "--format",
                    "raw",
                    "--output",
                    str(output),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            spies.append((name, output, spy))
        # py-spy starts sampling at once; the seating and the warm-up are in
        # the profile too, which is why it runs a little past the load.
        if args.profile_load == "seats":
            runLoadgen(
                node,
                server,
                "seats",
                timeout=seconds + args.warmup + 300,
                seconds=seconds + 1,
                warmup=args.warmup,
                concurrency=args.seat_concurrency,
                id_prefix="profseat",
            )
        else:
            runLoadgen(
                node,
                server,
                "relay",
                timeout=seconds + args.warmup + 300,
                conns=players,
                seconds=seconds + 1,
                warmup=args.warmup,
                payload=args.payload,
                id_prefix="prof",
            )
        found: dict[str, Any] = {}
        for name, output, spy in spies:
            spyOut, _ = spy.communicate(timeout=seconds + 60)
            if spy.returncode != 0:
                log(f"py-spy on {name} failed: {spyOut.strip()}")
                continue
            log(f"profile of {name}: {output}")
            found[name] = {"profile": str(output), **hotSpots(output)}
        return found
    finally:
        for name, _, spy in spies:
            if spy.poll() is None:
                stopProcess(spy, f"py-spy {name}")
        server.stop()


# ---------------------------------------------------------------- main


def playerCounts(text: str) -> list[int]:
    """
    Parse C{--players}: comma-separated counts.
    """
    counts = [int(x) for x in text.split(",") if x.strip()]
    if any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError("player counts must be positive")
    return counts


def parseArgs(argv: list[str] | None) -> argparse.Namespace:
    """
    The command line.
    """
    p = argparse.ArgumentParser(
        description="Benchmark aphelion's relay (proxy + echo game servers)"
        " against a bare Autobahn echo, side by side."
    )
    p.add_argument(
        "--seconds", type=float, default=10, help="measured seconds per phase"
    )
    p.add_argument(
        "--warmup", type=float, default=1, help="unmeasured seconds before each"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds, servers alternating; the table shows medians",
    )
    p.add_argument(
        "--players",
        type=playerCounts,
        default=[100, 1000],
        help="player counts of the relay phases, comma-separated (default 100,1000)",
    )
    p.add_argument(
        "--latency-players",
        type=int,
        default=10,
        help="players of the light-load relay phase (0 = skip)",
    )
    p.add_argument(
        "--seat-concurrency",
        type=int,
        default=20,
        help="seatings in flight in the seats phase (0 = skip)",
    )
    p.add_argument(
        "--payload",
        type=int,
        default=24,
        help="bytes of each relayed payload (11-138)",
    )
    p.add_argument("--only", choices=["bare", "aphelion"], help="run one server only")
    p.add_argument(
        "--aphelion-cmd",
        default=APHELION_COMMAND,
        help="aphelion's command template (default: %(default)r)",
    )
    p.add_argument(
        "--bare-cmd",
        default=BARE_COMMAND,
        help="the bare echo's command template (default: %(default)r)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, record py-spy on aphelion's proxy and game servers"
        " under the first relay load",
    )
    p.add_argument(
        "--profile-seconds", type=float, default=15, help="seconds of profile"
    )
    p.add_argument(
        "--profile-load",
        choices=["relay", "seats"],
        default="relay",
        help="the load under which --profile records (default: %(default)s)",
    )
    p.add_argument(
        "--profile-rate", type=int, default=200, help="py-spy samples per second"
    )
    p.add_argument(
        "--output", type=Path, help="JSON file (default: results/<time>-relay.json)"
    )
    args = p.parse_args(argv)
    if not 11 <= args.payload <= 138:
        p.error("--payload must be 11-138")
    return args


def main(argv: list[str] | None = None) -> int:
    """
    Run the suite and print the table.
    """
    args = parseArgs(argv)
    node = shutil.which("node")
    if node is None:
        log("node is not on PATH")
        return 2
    if not (HERE / "node_modules" / "ws").is_dir():
        log("the ws package is missing: npm install --prefix benchmarks")
        return 2
    # Each relayed player holds a descriptor in the load generator, two in
    # the proxy (client and game-server sockets) and one in a game server;
    # seated sessions linger after their close.
    raiseFileLimit(4 * max(args.players or [0]) + 10000)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    logDir = RESULTS / f"{stamp}-relay-logs"
    logDir.mkdir()
    servers = [
        RelayServer("bare", args.bare_cmd, logDir),
        RelayServer("aphelion", args.aphelion_cmd, logDir),
    ]
    if args.only:
        servers = [s for s in servers if s.name == args.only]
    results: dict[str, Any] = {
        s.name: {"command": s.template, "rounds": []} for s in servers
    }
    failures = 0

    for roundNumber in range(args.rounds):
        order = servers if roundNumber % 2 == 0 else servers[::-1]
        for server in order:
            log(f"round {roundNumber + 1}/{args.rounds}: {server.name}")
            got: dict[str, Any] = {}
            for name, mode, options in phases(args):
                prefix = f"r{roundNumber + 1}{name.replace('_', '')}-"
                try:
                    got[name] = runPhase(node, server, mode, options, args, prefix)
                except (
                    RuntimeError,
                    OSError,
                    subprocess.SubprocessError,
                    psutil.Error,
                ) as e:
                    log(f"{server.name} {name}: {e}")
                    results[server.name].setdefault("errors", []).append(
                        f"round {roundNumber + 1} {name}: {e}"
                    )
                    failures += 1
                    server.stop()
                    continue
                if not got[name].get("ok"):
                    failures += 1
            results[server.name]["rounds"].append(got)
    for server in servers:
        results[server.name]["summary"] = summarise(results[server.name]["rounds"])

    if args.profile:
        aphelion = [s for s in servers if s.name == "aphelion"]
        if aphelion:
            try:
                results["aphelion"]["profile"] = profilePhase(
                    node, aphelion[0], args, stamp
                )
            except (
                RuntimeError,
                OSError,
                subprocess.SubprocessError,
                psutil.Error,
            ) as e:
                log(f"profile: {e}")
                failures += 1

    for server in servers:
        shutil.rmtree(server.scratch, ignore_errors=True)
    text, verdicts = table(results, args)
    report = {
        "suite": "relay",
        "time": stamp,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        },
        "versions": versions(node),
        "results": results,
        "ratios": verdicts,
    }
    output = args.output or RESULTS / f"{stamp}-relay.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    print(f"\nresults: {output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
