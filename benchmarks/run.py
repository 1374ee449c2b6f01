"""
Run the aphelion benchmark suite: aphelion and what a user would pick
instead, side by side, in one run, and print each figure with aphelion's
ratios to the anchors.

The servers (C{--servers}): C{plain}, an Autobahn echo written as its
documentation shows, defaults only (C{plain_echo.py}; the base of the
ratios); C{bare}, the same echo with the tuning aphelion gives itself
(C{bare_echo.py}); C{websockets}, an echo on the C{websockets} library
(C{websockets_echo.py}); and C{aphelion}. All four speak the same semantics
(39-byte init, 32-byte token, every packet answered with an ack-carrying
echo).

In each of C{--rounds} rounds, the servers taking turns in rotating order,
this script starts a server as a child process on an ephemeral 127.0.0.1
port, warms it up (C{--warm} seconds of unmeasured ping round trips: a fresh
C{websockets} process is slower under its first load), then runs the Node
load generator (loadgen.js) against it: ping round trips with C{--conns}
connections (throughput, latency, server CPU), the same with
C{--many-conns} and with C{--latency-conns} connections, and handshakes;
then stops it (SIGTERM to its PID). The table shows the median of each
figure over the rounds, and the range of aphelion's ratio over the rounds.

Then, for each server, it starts a fresh process, reads its resident memory,
opens C{--idle} idle sessions, reads it again once all of them have their
token: the difference over the count is the memory per idle session. Last,
with C{--profile}, it records py-spy on a fresh process under load.

A fresh process for the idle phase keeps the memory figure clean: the
earlier phases leave freed heap behind that new sessions would reuse, and
aphelion keeps each closed handshake's session for its session timeout.

Results go to stdout as a table and to C{benchmarks/results/*.json}. See
README.md for the meaning of each figure and the targets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = REPO / ".venv" / "bin"
RESULTS = HERE / "results"

BARE_COMMAND = "{python} {here}/bare_echo.py --port 0 --port-file {portfile}"
PLAIN_COMMAND = "{python} {here}/plain_echo.py --port 0 --port-file {portfile}"
WEBSOCKETS_COMMAND = (
    "{python} {here}/websockets_echo.py --port 0 --port-file {portfile}"
)
APHELION_COMMAND = (
    "{venv}/twistd -n --pidfile= aphelion"
    " --listen tcp:{port}:interface=127.0.0.1 --path /aphelion --game-servers 0"
    # The load generator is a trusted tool on loopback: exempt from the
    # per-address limits of Part 6, as an operator would exempt it.
    " --exempt 127.0.0.0/8"
)


def log(message: str) -> None:
    """
    Report progress on stderr (stdout carries the table).
    """
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def freePort() -> int:
    """
    Pick a free ephemeral port on 127.0.0.1 for a server that cannot report
    the port it bound. (Racy in principle; nothing else here binds ports.)
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stopProcess(proc: subprocess.Popen[Any], name: str, grace: float = 10.0) -> None:
    """
    Stop one child we started, by its PID: SIGTERM, then SIGKILL after
    C{grace} seconds.
    """
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) ignored SIGTERM; killing it")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


@dataclass
class Server:
    """
    One server under test, started from a command template.

    The template may use C{{python}}, C{{venv}}, C{{here}}, C{{repo}},
    C{{port}} (a free port picked here) and C{{portfile}} (a file the server
    writes its bound port to).
    """

    name: str
    template: str
    logDir: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    starts: int = 0
    scratch: str = field(
        default_factory=lambda: tempfile.mkdtemp(prefix="aphelion-bench-")
    )

    def start(self, timeout: float = 60.0) -> None:
        """
        Start the server and wait until its port accepts connections.
        """
        self.starts += 1
        portFile = Path(self.scratch) / f"port-{self.starts}"
        usesPortFile = "{portfile}" in self.template
        port = 0 if usesPortFile else freePort()
        command = self.template.format(
            python=sys.executable,
            venv=VENV_BIN,
            here=HERE,
            repo=REPO,
            port=port,
            portfile=portFile,
        )
        logPath = self.logDir / f"{self.name}-{self.starts}.log"
        log(f"starting {self.name}: {command}  (log: {logPath})")
        with open(logPath, "wb") as logFile:
            self.proc = subprocess.Popen(
                shlex.split(command),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=logFile,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {logPath}"
                )
            if usesPortFile and not port:
                try:
                    port = int(portFile.read_text().strip() or 0)
                except (FileNotFoundError, ValueError):
                    pass
            if port and self._accepts(port):
                self.port = port
                log(f"{self.name} is up: pid {self.proc.pid}, port {port}")
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start listening in {timeout} s")

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        """
        The WebSocket URL of the running server.
        """
        return f"ws://127.0.0.1:{self.port}/aphelion"

    def rss(self) -> int:
        """
        The server process's resident set size in bytes.
        """
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def cpuSeconds(self) -> float:
        """
        User plus system CPU time the server process has used.
        """
        assert self.proc is not None
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        """
        Stop the server by its PID.
        """
        if self.proc is not None:
            stopProcess(self.proc, self.name)
            log(f"{self.name} stopped (exit {self.proc.returncode})")
            self.proc = None


class Loadgen:
    """
    Runs loadgen.js in its modes.
    """

    def __init__(self, node: str, common: argparse.Namespace) -> None:
        self.node = node
        self.script = str(HERE / "loadgen.js")
        self.warmup = common.warmup

    def run(
        self, mode: str, url: str, timeout: float, **options: Any
    ) -> dict[str, Any]:
        """
        Run one bounded mode and return its JSON result.
        """
        argv = [self.node, self.script, mode, "--url", url]
        for key, value in options.items():
            argv += ["--" + key.replace("_", "-"), str(value)]
        log("loadgen " + " ".join(argv[2:]))
        done = subprocess.run(
            argv, cwd=HERE, capture_output=True, text=True, timeout=timeout
        )
        return self._parse(done.stdout, done.stderr, done.returncode)

    @staticmethod
    def _parse(stdout: str, stderr: str, returncode: int) -> dict[str, Any]:
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(
                f"loadgen printed no result (exit {returncode}): {stderr}"
            )
        result: dict[str, Any] = json.loads(lines[-1])
        if returncode != 0 or not result.get("ok"):
            log(f"loadgen reported a problem: {result} {stderr.strip()}")
        return result

    def rtt(self, url: str, conns: int, seconds: float) -> dict[str, Any]:
        """
        Closed-loop ping round trips.
        """
        return self.run(
            "rtt",
            url,
            timeout=seconds + self.warmup + 180,
            conns=conns,
            seconds=seconds,
            warmup=self.warmup,
        )

    def handshakes(self, url: str, seconds: float, concurrency: int) -> dict[str, Any]:
        """
        Open, init, token, close; repeated.
        """
        return self.run(
            "handshakes",
            url,
            timeout=seconds + self.warmup + 60,
            seconds=seconds,
            concurrency=concurrency,
            warmup=self.warmup,
        )

    def idle(self, server: Server, conns: int, settle: float) -> dict[str, Any]:
        """
        Open C{conns} idle sessions and measure the server's memory before
        and after.
        """
        holdDir = tempfile.mkdtemp(prefix="aphelion-bench-hold-")
        holdFile = Path(holdDir) / "ready"
        time.sleep(settle)
        before = server.rss()
        argv = [
            self.node,
            self.script,
            "idle",
            "--url",
            server.url,
            "--conns",
            str(conns),
            "--hold-file",
            str(holdFile),
            "--max-hold",
            "600",
        ]
        log("loadgen " + " ".join(argv[2:]))
        proc = subprocess.Popen(
            argv,
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        after = None
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None:
                if holdFile.exists() and holdFile.read_text().startswith("ready"):
                    time.sleep(settle)
                    after = server.rss()
                    break
                time.sleep(0.2)
        finally:
            # communicate() closes stdin, which tells the loadgen to close
            # its sessions and report.
            try:
                stdout, stderr = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                stopProcess(proc, "loadgen idle")
                stdout, stderr = proc.communicate(timeout=10)
            shutil.rmtree(holdDir, ignore_errors=True)
        result = self._parse(stdout, stderr, proc.returncode)
        result["rss_before_bytes"] = before
        result["rss_after_bytes"] = after
        if after is not None and result.get("conns"):
            result["kb_per_session"] = round(
                (after - before) / 1024 / result["conns"], 2
            )
        else:
            result["kb_per_session"] = None
        return result


def profile(
    server: Server, loadgen: Loadgen, args: argparse.Namespace, stamp: str
) -> dict[str, Any]:
    """
    Record py-spy samples of the server under the rtt or handshake load
    (C{--profile}; not a measured
    phase: sampling pauses the server at every sample, which slows it but
    keeps the stacks exact; C{--nonblocking} garbles them).
    """
    pyspy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not os.path.exists(pyspy):
        log("py-spy not found (pip install py-spy); skipping the profile")
        return {}
    assert server.proc is not None
    extension = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[
        args.profile_format
    ]
    output = RESULTS / f"{stamp}-{server.name}-{args.profile}-profile.{extension}"
    seconds = max(2, int(args.seconds))
    spy = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(server.proc.pid),
            "--duration",
            str(seconds),
            "--rate",
            str(args.profile_rate),
            "--format",
            args.profile_format,
            "--output",
            str(output),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        if args.profile == "handshakes":
            loadgen.handshakes(
                server.url, seconds + 1, args.handshake_concurrency or 20
            )
        else:
            loadgen.rtt(server.url, args.conns, seconds + 1)
        spyOut, _ = spy.communicate(timeout=seconds + 60)
    finally:
        if spy.poll() is None:
            stopProcess(spy, "py-spy")
    if spy.returncode != 0:
        log(f"py-spy failed: {spyOut.strip()}")
        return {}
    log(f"profile of {server.name}: {output}")
    return {"profile": str(output)}


def loadPhases(
    server: Server, loadgen: Loadgen, args: argparse.Namespace
) -> dict[str, Any]:
    """
    One round of the load phases (rtt, light rtt, handshakes) against a
    freshly started server.
    """
    result: dict[str, Any] = {}
    measuredFraction = args.seconds / (args.seconds + args.warmup)

    def measured(
        phase: dict[str, Any], window: CpuWindow, count: str, key: str
    ) -> None:
        # Server CPU over the whole phase (warm-up and set-up included,
        # scaled to the measured window) per counted event.
        total = phase.get(count) or 0
        phase[key] = (
            round(window.server * measuredFraction / total * 1e6, 1) if total else None
        )
        phase["outside_load_cores"] = round(window.outsideCores, 2)
        phase["steal_cores"] = round(window.stealCores, 2)
        if window.outsideCores > 0.15:
            log(
                f"warning: other processes used {window.outsideCores:.2f} cores"
                " during this phase; its figures are unreliable"
            )

    server.start()
    try:
        result["rss_start_bytes"] = server.rss()
        if args.warm:
            loadgen.rtt(server.url, args.conns, args.warm)
        with CpuWindow(server) as window:
            rtt = loadgen.rtt(server.url, args.conns, args.seconds)
        measured(rtt, window, "round_trips", "server_cpu_us_per_rt")
        result["rtt"] = rtt
        if args.many_conns:
            with CpuWindow(server) as window:
                many = loadgen.rtt(server.url, args.many_conns, args.seconds)
            measured(many, window, "round_trips", "server_cpu_us_per_rt")
            result["rtt_many"] = many
        if args.latency_conns:
            with CpuWindow(server) as window:
                light = loadgen.rtt(server.url, args.latency_conns, args.seconds)
            measured(light, window, "round_trips", "server_cpu_us_per_rt")
            result["rtt_light"] = light
        if args.handshake_concurrency:
            with CpuWindow(server) as window:
                handshakes = loadgen.handshakes(
                    server.url, args.seconds, args.handshake_concurrency
                )
            measured(handshakes, window, "handshakes", "server_cpu_us_per_hs")
            result["handshakes"] = handshakes
    finally:
        server.stop()
    return result


class CpuWindow:
    """
    CPU use during one phase: the server's, and that of every process other
    than the server, the load generator and this runner ("outside"), which
    tells whether the phase ran on a quiet machine.

    :ivar server: CPU seconds the server used.
    :ivar outsideCores: average cores used by other processes.
    :ivar stealCores: average cores the hypervisor took away.
    """

    server = 0.0
    outsideCores = 0.0
    stealCores = 0.0

    def __init__(self, server: Server) -> None:
        self._server = server

    @staticmethod
    def _ours() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime

    @staticmethod
    def _busy() -> tuple[float, float]:
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0)
        busy += getattr(t, "softirq", 0.0)
        return busy, getattr(t, "steal", 0.0)

    def __enter__(self) -> CpuWindow:
        self._t0 = time.monotonic()
        self._busy0, self._steal0 = self._busy()
        self._ours0 = self._ours()
        self._server0 = self._server.cpuSeconds()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        busy, steal = self._busy()
        self.server = self._server.cpuSeconds() - self._server0
        # The load generator has exited and been waited for by now, so its
        # CPU is in RUSAGE_CHILDREN; the server is still running, so it is not.
        ours = self._ours() - self._ours0 + self.server
        self.outsideCores = max(0.0, (busy - self._busy0) - ours) / elapsed
        self.stealCores = (steal - self._steal0) / elapsed


def idlePhase(
    server: Server, loadgen: Loadgen, args: argparse.Namespace
) -> dict[str, Any]:
    """
    Memory per idle session, on a freshly started server.
    """
    server.start()
    try:
        return loadgen.idle(server, args.idle, args.settle)
    finally:
        server.stop()


def profilePhase(
    server: Server, loadgen: Loadgen, args: argparse.Namespace, stamp: str
) -> dict[str, Any]:
    """
    A py-spy profile under load, on a freshly started server.
    """
    server.start()
    try:
        return profile(server, loadgen, args, stamp)
    finally:
        server.stop()


def median(values: list[float]) -> float | None:
    """
    The median of the values that are there, or None.
    """
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    middle = len(present) // 2
    if len(present) % 2:
        return present[middle]
    return (present[middle - 1] + present[middle]) / 2


def summarise(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """
    The median over the rounds of every numeric figure of every phase.
    """
    summary: dict[str, dict[str, float | None]] = {}
    for phase in ("rtt", "rtt_many", "rtt_light", "handshakes"):
        runs = [r[phase] for r in rounds if isinstance(r.get(phase), dict)]
        if not runs:
            continue
        keys = [
            k
            for k, v in runs[0].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        summary[phase] = {k: median([run.get(k) for run in runs]) for k in keys}
    return summary


#: The base of the ratios, and the other anchor with a target of its own.
BASE = "plain"
ANCHOR = "websockets"

ROWS = [
    # label, path, digits, targets on aphelion's ratio to BASE and to ANCHOR
    ("ping round trips/s, {conns} conns", ("rtt", "rtt_per_s"), 0, ">= 1.6", ">= 0.85"),
    ("  p50 ms, {conns} conns", ("rtt", "p50_ms"), 3, None, None),
    ("  p99 ms, {conns} conns", ("rtt", "p99_ms"), 3, None, None),
    ("  server CPU us per round trip", ("rtt", "server_cpu_us_per_rt"), 1, None, None),
    ("ping round trips/s, {many} conns", ("rtt_many", "rtt_per_s"), 0, ">= 1.3", None),
    ("  p99 ms, {many} conns", ("rtt_many", "p99_ms"), 3, None, None),
    ("ping round trips/s, {light} conns", ("rtt_light", "rtt_per_s"), 0, None, None),
    ("  p50 ms, {light} conns", ("rtt_light", "p50_ms"), 3, None, None),
    ("  p99 ms, {light} conns", ("rtt_light", "p99_ms"), 3, None, None),
    (
        "handshakes/s, {hc} concurrent",
        ("handshakes", "handshakes_per_s"),
        0,
        ">= 1.0",
        None,
    ),
    (
        "  server CPU us per handshake",
        ("handshakes", "server_cpu_us_per_hs"),
        0,
        None,
        None,
    ),
    ("other processes' load, cores", ("rtt", "outside_load_cores"), 2, None, None),
    ("KB per idle session ({idle})", ("idle", "kb_per_session"), 2, "<= 1.0", None),
    ("  server RSS before idle, MB", ("idle", "rss_before_bytes"), 1, None, None),
]


def figure(result: dict[str, Any] | None, path: tuple[str, str]) -> float | None:
    """
    Look one figure up in a server's summary (medians) or idle result.
    """
    result = result or {}
    phase = (
        result.get("idle")
        if path[0] == "idle"
        else result.get("summary", {}).get(path[0])
    )
    value = (phase or {}).get(path[1])
    if value is not None and path[1].endswith("_bytes"):
        value = value / 2**20
    return value


def ratio(a: float | None, b: float | None) -> float | None:
    """
    a / b, or None when either is missing.
    """
    if a is None or b is None or b == 0:
        return None
    return a / b


def roundRatios(
    results: dict[str, Any], path: tuple[str, str], base: str = BASE
) -> list[float]:
    """
    aphelion's ratio to C{base} for one figure in each round both ran.
    """
    other = results.get(base, {}).get("rounds", [])
    aph = results.get("aphelion", {}).get("rounds", [])
    out = []
    for b, a in zip(other, aph, strict=False):
        r = ratio(
            (a.get(path[0]) or {}).get(path[1]), (b.get(path[0]) or {}).get(path[1])
        )
        if r is not None:
            out.append(r)
    return out


def number(value: float | None, digits: int) -> str:
    """
    A figure for the table.
    """
    return "-" if value is None else f"{value:,.{digits}f}"


def _verdict(r: float | None, target: str | None) -> tuple[str, bool | None]:
    if target is None or r is None:
        return "", None
    op, bound = target.split()
    ok = r >= float(bound) if op == ">=" else r <= float(bound)
    return f"{target} {'ok' if ok else 'MISSED'}", ok


def table(
    results: dict[str, Any], args: argparse.Namespace
) -> tuple[str, dict[str, Any]]:
    """
    Format the side-by-side table and collect aphelion's ratios to
    L{BASE} and L{ANCHOR}.
    """
    names = [n for n in results if n != "aphelion"] + (
        ["aphelion"] if "aphelion" in results else []
    )
    header = f"{'figure':34}" + "".join(f" {n:>10}" for n in names)
    header += f" {'aph/' + BASE:>10} {'per round':>11} {'target':>14}"
    header += f" {'aph/' + ANCHOR[:4]:>9} {'target':>14}"
    lines = [header, "-" * len(header)]
    ratios: dict[str, Any] = {}
    for label, path, digits, baseTarget, anchorTarget in ROWS:
        values = {n: figure(results.get(n), path) for n in names}
        if all(v is None for v in values.values()):
            continue
        aph = values.get("aphelion")
        r = ratio(aph, values.get(BASE))
        ra = ratio(aph, values.get(ANCHOR))
        perRound = roundRatios(results, path) if path[0] != "idle" else []
        spread = f"{min(perRound):.2f}-{max(perRound):.2f}" if len(perRound) > 1 else ""
        name = label.format(
            conns=args.conns,
            many=args.many_conns,
            light=args.latency_conns,
            hc=args.handshake_concurrency,
            idle=args.idle,
        )
        v1, ok1 = _verdict(r, baseTarget)
        v2, ok2 = _verdict(ra, anchorTarget)
        entry: dict[str, Any] = {}
        for key, value, target, ok in (
            (BASE, r, baseTarget, ok1),
            (ANCHOR, ra, anchorTarget, ok2),
        ):
            if value is None:
                continue
            entry[key] = {"ratio": round(value, 3)}
            if target:
                entry[key].update(target=target, met=ok)
        for other in names:
            if other in ("aphelion", BASE):
                continue
            rr = ratio(values.get(other), values.get(BASE))
            if rr is not None:
                entry.setdefault("anchors", {})[f"{other}/{BASE}"] = round(rr, 3)
        if perRound:
            entry["per_round"] = [round(x, 3) for x in perRound]
        if entry:
            ratios[".".join(path)] = entry
        lines.append(
            f"{name:34}"
            + "".join(f" {number(values[n], digits):>10}" for n in names)
            + f" {'-' if r is None else f'{r:.2f}':>10} {spread:>11} {v1:>14}"
            + f" {'-' if ra is None else f'{ra:.2f}':>9} {v2:>14}"
        )
    return "\n".join(lines), ratios


def versions(node: str) -> dict[str, str]:
    """
    Versions of everything that moves the figures.
    """
    import autobahn

    import twisted

    info = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "twisted": twisted.__version__,
        "autobahn": autobahn.__version__,
        "node": subprocess.run(
            [node, "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(),
    }
    try:
        info["ws"] = json.loads((HERE / "node_modules/ws/package.json").read_text())[
            "version"
        ]
    except (OSError, ValueError, KeyError):
        pass
    try:
        info["git"] = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def raiseFileLimit(needed: int) -> None:
    """
    Raise this process's open-file limit (inherited by the servers and the
    load generator) to its hard limit: each end of an idle session holds one
    descriptor.
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        log(f"warning: hard open-file limit {hard} < {needed}; idle may fail")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parseArgs(argv: list[str] | None) -> argparse.Namespace:
    """
    The command line.
    """
    p = argparse.ArgumentParser(
        description="Benchmark aphelion against the echoes a user would write"
        " instead, side by side."
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=10,
        help="measured seconds per load phase (0 = idle phase only)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the load phases, servers alternating; the table shows medians",
    )
    p.add_argument(
        "--warmup", type=float, default=1, help="unmeasured seconds before each"
    )
    p.add_argument(
        "--conns", type=int, default=100, help="connections for the rtt phase"
    )
    p.add_argument(
        "--latency-conns",
        type=int,
        default=10,
        help="connections for the light-load rtt phase (0 = skip)",
    )
    p.add_argument(
        "--handshake-concurrency",
        type=int,
        default=20,
        help="handshakes in flight (0 = skip)",
    )
    p.add_argument("--idle", type=int, default=5000, help="idle sessions (0 = skip)")
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds to wait before each memory reading",
    )
    p.add_argument(
        "--servers",
        default="plain,bare,websockets,aphelion",
        help="which servers, comma-separated (default: %(default)s)",
    )
    p.add_argument("--only", help="run this one server only (as --servers NAME)")
    p.add_argument(
        "--many-conns",
        type=int,
        default=1000,
        help="connections for the second rtt phase (0 = skip)",
    )
    p.add_argument(
        "--warm",
        type=float,
        default=3,
        help="unmeasured seconds of ping load on each fresh server (0 = none)",
    )
    p.add_argument(
        "--plain-cmd",
        default=PLAIN_COMMAND,
        help="the plain Autobahn echo's command template (default: %(default)r)",
    )
    p.add_argument(
        "--websockets-cmd",
        default=WEBSOCKETS_COMMAND,
        help="the websockets echo's command template (default: %(default)r)",
    )
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
        nargs="?",
        const="rtt",
        choices=["rtt", "handshakes"],
        help="after the measured phases, record py-spy under this load (default rtt)",
    )
    p.add_argument(
        "--profile-format",
        choices=["flamegraph", "raw", "speedscope"],
        default="flamegraph",
    )
    p.add_argument(
        "--profile-rate", type=int, default=200, help="py-spy samples per second"
    )
    p.add_argument(
        "--output", type=Path, help="JSON file (default: results/<time>.json)"
    )
    return p.parse_args(argv)


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
    raiseFileLimit(2 * args.idle + 1000)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    logDir = RESULTS / f"{stamp}-logs"
    logDir.mkdir()
    loadgen = Loadgen(node, args)
    templates = {
        "plain": args.plain_cmd,
        "bare": args.bare_cmd,
        "websockets": args.websockets_cmd,
        "aphelion": args.aphelion_cmd,
    }
    wanted = [args.only] if args.only else args.servers.split(",")
    unknown = [name for name in wanted if name not in templates]
    if unknown:
        log(f"unknown servers: {', '.join(unknown)}")
        return 2
    servers = [Server(name, templates[name], logDir) for name in wanted]

    results: dict[str, Any] = {
        s.name: {"command": s.template, "rounds": []} for s in servers
    }
    failures = 0

    def attempt(server: Server, what: str, run: Any, *extra: Any) -> Any:
        nonlocal failures
        try:
            return run(server, loadgen, args, *extra)
        except (RuntimeError, OSError, subprocess.SubprocessError, psutil.Error) as e:
            log(f"{server.name} {what}: {e}")
            results[server.name].setdefault("errors", []).append(f"{what}: {e}")
            failures += 1
            return None
        finally:
            server.stop()

    if args.seconds > 0:
        for number in range(args.rounds):
            # Rotate the order, so that drift of the machine hits all.
            shift = number % len(servers)
            order = servers[shift:] + servers[:shift]
            for server in order:
                log(f"round {number + 1}/{args.rounds}: {server.name}")
                got = attempt(server, f"round {number + 1}", loadPhases)
                results[server.name]["rounds"].append(got or {})
    for server in servers:
        results[server.name]["summary"] = summarise(results[server.name]["rounds"])
        if args.idle:
            got = attempt(server, "idle", idlePhase)
            if got is not None:
                results[server.name]["idle"] = got
        if args.profile:
            got = attempt(server, "profile", profilePhase, stamp)
            if got:
                results[server.name].update(got)

    for server in servers:
        shutil.rmtree(server.scratch, ignore_errors=True)
    text, ratios = table(results, args)
    report = {
        "time": stamp,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        },
        "versions": versions(node),
        "results": results,
        "ratios": ratios,
    }
    output = args.output or RESULTS / f"{stamp}.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    print(f"\nresults: {output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
