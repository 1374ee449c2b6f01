"""
The capacity benchmark: how many arena players one AuthProxy process carries
at a fixed tick rate.

For each player count of C{--steps} (default 100, 200, 400, 600, 800, 1000,
1200, 1500), a fresh AuthProxy is started with
C{--auth dev --game aphelion.games.arena --game-servers 2 --exempt 127.0.0.0/8}
on 127.0.0.1, port 0, and C{aphelion bots} (L{aphelion.bots}) play it from
C{--processes} processes, so that the load generator is not the bottleneck:
each bot logs in, sends C{--input-hz} inputs a second and records the
snapshot intervals, the input-to-snapshot latency and the missing ticks over
the same C{--seconds} window. A step holds when every bot was seated, the
p99 input-to-snapshot latency is at most C{--latency-limit} ms (default 100)
and no tick went missing; the stepping stops at the first step that does not
hold. The CPU of the proxy, of its game servers, of the bots and of every
other process on the machine is read (psutil) over the window: the proxy's
CPU per player per second is the headline cost.

With C{--profile}, the largest count that held runs once more with py-spy
recording the proxy (raw collapsed stacks, non-blocking) during the window;
the functions where its time went are printed and kept beside the JSON.

Everything listens on and connects to 127.0.0.1. Every wait is bounded. See
README.md ("The capacity benchmark").
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from relay import RelayServer
from run import RESULTS, VENV_BIN, log, raiseFileLimit, stopProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aphelion.bots import Report

APHELION_COMMAND = (
    "{venv}/twistd -n --pidfile= aphelion"
    " --listen tcp:{port}:interface=127.0.0.1 --path /aphelion"
    " --auth dev --game aphelion.games.arena --game-servers 2"
    " --exempt 127.0.0.0/8"
)


def cpuOf(pids: list[int]) -> float:
    """
    User plus system CPU seconds of the live processes among C{pids}.
    """
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def busySeconds() -> float:
    """
    CPU seconds the whole machine has been busy (all cores).
    """
    t = psutil.cpu_times()
    return float(
        t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    )


class BotProcesses:
    """
    C{aphelion bots} in several processes, their output in files.
    """

    def __init__(
        self,
        url: str,
        count: int,
        processes: int,
        args: argparse.Namespace,
        logDir: Path,
        tag: str,
    ) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outputs: list[tuple[Path, Path]] = []
        shares = [
            count // processes + (1 if n < count % processes else 0)
            for n in range(processes)
        ]
        first = 1
        for n, share in enumerate(shares):
            if not share:
                continue
            out = logDir / f"{tag}-bots{n}.out"
            err = logDir / f"{tag}-bots{n}.err"
            command = [
                str(VENV_BIN / "aphelion"),
                "bots",
                url,
                "--count",
                str(share),
                "--first-id",
                str(first),
                "--seconds",
                str(args.seconds),
                "--warmup",
                str(args.warmup),
                "--input-hz",
                str(args.input_hz),
                "--ack-delay",
                str(args.ack_delay),
                "--concurrency",
                str(args.login_concurrency),
                "--json",
            ]
            first += share
            with open(out, "wb") as stdout, open(err, "wb") as stderr:
                self.procs.append(
                    subprocess.Popen(
                        command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
                    )
                )
            self.outputs.append((out, err))

    @property
    def pids(self) -> list[int]:
        """
        The bot processes' PIDs.
        """
        return [proc.pid for proc in self.procs]

    def allSay(self, text: str) -> bool:
        """
        Whether every process has written C{text} on its standard error.
        """
        return all(text in err.read_text(errors="replace") for _, err in self.outputs)

    def anySay(self, text: str) -> bool:
        """
        Whether any process has written C{text} on its standard error.
        """
        return any(text in err.read_text(errors="replace") for _, err in self.outputs)

    def exited(self) -> bool:
        """
        Whether any of them has exited.
        """
        return any(proc.poll() is not None for proc in self.procs)

    def wait(self, timeout: float) -> Report:
        """
        Wait for every process (stopping those still running after
        C{timeout} seconds) and merge their reports.

        :raises RuntimeError: if one wrote no report.
        """
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stopProcess(proc, "bots")
        merged: Report | None = None
        for out, err in self.outputs:
            lines = [
                line for line in out.read_text().splitlines() if line.startswith("{")
            ]
            if not lines:
                raise RuntimeError(f"no report from the bots; see {err}")
            report = Report.fromDict(json.loads(lines[-1]))
            if merged is None:
                merged = report
            else:
                merged.merge(report)
        assert merged is not None
        return merged

    def stop(self) -> None:
        """
        Stop every process still running, by its PID.
        """
        for proc in self.procs:
            stopProcess(proc, "bots", grace=5.0)


def untilTrue(what: str, check: Any, timeout: float, alive: Any) -> None:
    """
    Poll C{check} every 0.1 s until it is true.

    :raises RuntimeError: after C{timeout} seconds, or when C{alive()} is
        false.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise RuntimeError(f"gave up waiting for {what}: a process exited")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout:g} s")


def runStep(
    count: int, args: argparse.Namespace, logDir: Path, profile: bool = False
) -> dict[str, Any]:
    """
    One step: a fresh proxy, C{count} bots, one measured window.

    :return: the step's figures.
    """
    command = f"{args.aphelion_cmd} {args.proxy_args}".strip()
    server = RelayServer(f"capacity-{count}", command, logDir)
    server.start()
    bots: BotProcesses | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        assert server.proc is not None
        proxy = psutil.Process(server.proc.pid)
        gameServers = [child.pid for child in proxy.children()]
        tag = f"step-{count}" + ("-profile" if profile else "")
        bots = BotProcesses(server.url, count, args.processes, args, logDir, tag)
        started = bots

        def alive() -> bool:
            running = server.proc is not None and server.proc.poll() is None
            return running and not started.exited()

        untilTrue(
            "the bots recording",
            lambda: started.allSay("recording for"),
            args.login_timeout,
            alive,
        )
        spyFile = logDir / f"{tag}-py-spy.txt"
        if profile:
            spy = subprocess.Popen(
                [
                    args.py_spy,
                    "record",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--rate",
                    str(args.profile_rate),
                    "--duration",
                    str(max(1, int(args.seconds - 1))),
                    "--pid",
                    str(server.proc.pid),
                    "-o",
                    str(spyFile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        # The window: from the moment every process records until just
        # before the first one stops.
        t0 = time.monotonic()
        proxy0 = cpuOf([server.proc.pid])
        games0 = cpuOf(gameServers)
        bots0 = cpuOf(bots.pids)
        busy0 = busySeconds()
        me0 = cpuOf([os.getpid()])
        window = max(1.0, args.seconds - 1.0)
        time.sleep(window)
        elapsed = time.monotonic() - t0
        proxyCpu = cpuOf([server.proc.pid]) - proxy0
        gamesCpu = cpuOf(gameServers) - games0
        botsCpu = cpuOf(bots.pids) - bots0
        busy = busySeconds() - busy0
        me = cpuOf([os.getpid()]) - me0
        report = bots.wait(args.seconds + 60)
        profileSummary = None
        if spy is not None:
            _, spyErr = spy.communicate(timeout=60)
            if spy.returncode != 0 or not spyFile.exists():
                why = spyErr.decode(errors="replace")[-500:]
                log(f"py-spy failed ({spy.returncode}): {why}")
            else:
                profileSummary = summariseProfile(spyFile)
    finally:
        if spy is not None and spy.poll() is None:
            stopProcess(spy, "py-spy")
        if bots is not None:
            bots.stop()
        server.stop()
    summary = report.summary()
    ours = proxyCpu + gamesCpu + botsCpu + me
    holds = (
        report.joined == count
        and summary["latency_p99_ms"] is not None
        and summary["latency_p99_ms"] <= args.latency_limit
        and report.missingTicks == 0
    )
    return {
        "players": count,
        "holds": holds,
        "window_s": elapsed,
        "bots": report.toDict(),
        "summary": summary,
        "proxy_cores": proxyCpu / elapsed,
        "proxy_us_per_player_s": proxyCpu / elapsed / count * 1e6,
        "game_servers_cores": gamesCpu / elapsed,
        "bots_cores": botsCpu / elapsed,
        "other_cores": max(0.0, busy - ours) / elapsed,
        "machine_busy_cores": busy / elapsed,
        "profile": profileSummary,
    }


#: The leaf frame of a reactor waiting for events: idle, not work.
IDLE_LEAF = "EPollReactor.doPoll (twisted/internet/epollreactor.py)"


def summariseProfile(path: Path, top: int = 25) -> dict[str, Any]:
    """
    Where the sampled time went, from py-spy's raw collapsed stacks: the
    share of the busy samples (those not waiting in C{epoll}) by leaf
    function ("self") and by any function on the stack ("total"), and by
    source file; and the share of idle samples.
    """
    selfCounts: collections.Counter[str] = collections.Counter()
    totalCounts: collections.Counter[str] = collections.Counter()
    fileCounts: collections.Counter[str] = collections.Counter()
    samples = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        n = int(number)
        samples += n
        frames = [frame.strip() for frame in stack.split(";") if frame.strip()]
        if not frames:
            continue
        if _short(frames[-1]) == IDLE_LEAF:
            idle += n
            continue
        selfCounts[_short(frames[-1])] += n
        for frame in set(_short(f) for f in frames):
            totalCounts[frame] += n
        fileCounts[_file(frames[-1])] += n

    busy = max(1, samples - idle)

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [
            (name, round(100.0 * n / busy, 1)) for name, n in counter.most_common(top)
        ]

    return {
        "samples": samples,
        "idle_percent": round(100.0 * idle / max(1, samples), 1),
        "self_percent": shares(selfCounts),
        "total_percent": shares(totalCounts),
        "file_self_percent": shares(fileCounts),
    }


def _short(frame: str) -> str:
    """
    C{function (path/to/module.py:123)} -> C{function (module.py)}.
    """
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    fileName = where.rsplit(":", 1)[0]
    return f"{name} ({_tail(fileName)})"


def _file(frame: str) -> str:
    where = frame.partition(" (")[2].rstrip(")")
    return _tail(where.rsplit(":", 1)[0])


def _tail(fileName: str) -> str:
    parts = fileName.split("/")
    for anchor in ("site-packages", "aphelion", "twisted", "autobahn"):
        if anchor in parts:
            return "/".join(
                parts[parts.index(anchor) + (1 if anchor == "site-packages" else 0) :]
            )
    return "/".join(parts[-2:])


def number(value: float | None, digits: int = 1) -> str:
    """
    A figure for the table, or a dash.
    """
    return "-" if value is None else f"{value:.{digits}f}"


def printTable(steps: list[dict[str, Any]]) -> None:
    """
    One line per step, on stdout.
    """
    header = (
        "players  holds  snap/s  p50 ms  p99 ms  jitter ms  missing  reconn  "
        "proxy cores  proxy µs/player/s  game srv cores  bots cores  other cores"
    )
    print(header)
    for step in steps:
        s = step["summary"]
        print(
            f"{step['players']:>7}  {'yes' if step['holds'] else 'NO':>5}  "
            f"{number(s['snapshots_per_player_s']):>6}  "
            f"{number(s['latency_p50_ms']):>6}  "
            f"{number(s['latency_p99_ms']):>6}  {number(s['jitter_ms']):>9}  "
            f"{s['missing_ticks']:>7}  {s['reconnects']:>6}  "
            f"{step['proxy_cores']:>11.2f}  {step['proxy_us_per_player_s']:>17.0f}  "
            f"{step['game_servers_cores']:>14.2f}  {step['bots_cores']:>10.2f}  "
            f"{step['other_cores']:>11.2f}"
        )


def parseArgs(argv: list[str] | None) -> argparse.Namespace:
    """
    The command line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="100,200,400,600,800,1000,1200,1500")
    parser.add_argument("--processes", type=int, default=2, help="bot processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--input-hz", type=float, default=10.0)
    parser.add_argument(
        "--ack-delay", type=float, default=0.1, help="the bots' ack delay, s"
    )
    parser.add_argument(
        "--login-concurrency", type=int, default=25, help="per bot process"
    )
    parser.add_argument("--login-timeout", type=float, default=180.0)
    parser.add_argument("--latency-limit", type=float, default=100.0, help="p99 ms")
    parser.add_argument("--aphelion-cmd", default=APHELION_COMMAND)
    parser.add_argument(
        "--proxy-args",
        default="",
        help="more options of twistd aphelion, such as '--ack-delay 0.05'",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the best step")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every step, also after one that does not hold (for the costs)",
    )
    parser.add_argument("--profile-rate", type=int, default=100)
    parser.add_argument(
        "--py-spy", default=shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    )
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """
    Step the player count up until a step does not hold; print the table
    and the headline; write the JSON.
    """
    args = parseArgs(argv)
    counts = [int(n) for n in args.steps.split(",") if n.strip()]
    raiseFileLimit(4 * max(counts) + 1000)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    logDir = RESULTS / f"{stamp}-capacity-logs"
    logDir.mkdir()
    output = args.output or RESULTS / f"{stamp}-capacity.json"
    steps: list[dict[str, Any]] = []
    for count in counts:
        log(f"step: {count} players")
        step = runStep(count, args, logDir)
        steps.append(step)
        s = step["summary"]
        log(
            f"{count} players: {'holds' if step['holds'] else 'does NOT hold'}; "
            f"p99 {number(s['latency_p99_ms'])} ms, "
            f"missing ticks {s['missing_ticks']}, "
            f"proxy {step['proxy_cores']:.2f} cores, "
            f"other processes {step['other_cores']:.2f} cores"
        )
        if not step["holds"] and not args.keep_going:
            break
    # The largest count below which every step held.
    best = None
    for step in steps:
        if not step["holds"]:
            break
        best = step
    profile = None
    if args.profile and best is not None:
        if not Path(args.py_spy).exists():
            log(f"no py-spy at {args.py_spy}: pip install py-spy into the venv")
        else:
            log(f"profiling the proxy at {best['players']} players")
            profile = runStep(best["players"], args, logDir, profile=True)
    print()
    printTable(steps)
    others = max((step["other_cores"] for step in steps), default=0.0)
    if others > 0.2:
        print(
            f"\nWARNING: other processes used up to {others:.2f} cores during the "
            "windows: the machine was not quiet, and these counts are lower bounds."
        )
    headline = None
    if best is not None:
        headline = {
            "players": best["players"],
            "tick_hz": 20,
            "p99_ms": best["summary"]["latency_p99_ms"],
            "proxy_cores": best["proxy_cores"],
            "proxy_us_per_player_s": best["proxy_us_per_player_s"],
            "players_per_proxy_core_projected": 1e6 / best["proxy_us_per_player_s"],
        }
        print(
            f"\nlargest count that holds at 20 Hz: {best['players']} players "
            f"(p99 input-to-snapshot {number(best['summary']['latency_p99_ms'])} ms, "
            f"no missing ticks); the proxy used {best['proxy_cores']:.2f} cores, "
            f"{best['proxy_us_per_player_s']:.0f} µs of CPU per player per second "
            f"(a whole proxy core: about "
            f"{headline['players_per_proxy_core_projected']:.0f} players)"
        )
    if profile is not None and profile["profile"] is not None:
        print(
            f"\nwhere the proxy's time went at {profile['players']} players "
            f"(py-spy, share of the busy samples, self; idle "
            f"{profile['profile']['idle_percent']} % of all):"
        )
        for name, share in profile["profile"]["self_percent"][:15]:
            print(f"  {share:5.1f} %  {name}")
        print("by file (self):")
        for name, share in profile["profile"]["file_self_percent"][:12]:
            print(f"  {share:5.1f} %  {name}")
    report = {
        "when": stamp,
        "machine": {
            "cpus": psutil.cpu_count(),
            "cpu_model": _cpuModel(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "steps": steps,
        "headline": headline,
        "profile": profile,
    }
    output.write_text(json.dumps(report, indent=2))
    log(f"wrote {output}; logs in {logDir}")
    return 0 if best is not None else 1


def _cpuModel() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
