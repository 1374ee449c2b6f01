"""
Run the abuse suite: each attack of PROTOCOL.md Part 6 against a freshly
started AuthProxy (C{twistd -n aphelion} on 127.0.0.1, port 0), with what
it does to the proxy and its game servers, and to a real player meanwhile.

    .venv/bin/python benchmarks/abuse.py [--only NAME[,NAME]] [--duration S]
                                         [--json FILE] [--soak]

For every attack it reports: the resident memory of the proxy and of each
game server (its child processes) before, at the peak (sampled every 100 ms)
and after; the proxy's open file descriptors; a real player's time to seated
(connect + upgrade + init + authenticate + C{connected}; p50 and p99 over 20
logins in sequence while the attack runs, from loopback addresses of their
own), next to the same figure measured once on a quiet fresh proxy at the
start; and how the attack's connections ended, counted per close code or
HTTP status. Each figure is printed with its target (no process grows more
than 64 MiB; p99 under attack at most 3x the quiet one; every attack
connection ends as Part 6 says), and a missed target is reported as a miss,
never as a crash: the suite always finishes and prints its table.

Each attack runs as its own process (abuse_attacks.py) from the attacker's
address 127.0.0.2 (or a spread of 127.x.y.z addresses where the attack
stands for many hosts); the real player logs in from 127.0.1.N. Only
loopback addresses are used. Every process started here (the proxies, which
spawn the game servers, the attack processes, the soak's Node client) is
stopped by its PID at the end of its phase. See README.md, "The abuse suite".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
from abuse_client import timedLogin
from run import HERE, REPO, RESULTS, VENV_BIN, log, raiseFileLimit, stopProcess

MIB = 2**20
GROWTH_TARGET_MIB = 64
P99_FACTOR = 3.0
LOGINS = 20
ATTACKER = "127.0.0.2"
BASE_ARGS = [
    "--listen",
    "tcp:0:interface=127.0.0.1",
    "--path",
    "/aphelion",
]
DEV_ECHO = ["--auth", "dev", "--game", "aphelion.games.echo"]
PORT_LINE = re.compile(rb"AphelionSite starting on (\d+)")
READY = re.compile(rb"game server (\S+) ready")
SPAWNED = re.compile(rb"spawned game server (\S+) \(pid (\d+)")
TIMESTAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")

# Every process started here that may still run, by PID: its name and its
# psutil handle, taken while it surely was ours (psutil then refuses to
# signal a recycled PID). The last resort of the cleanup (main's finally)
# stops those still there.
STARTED: dict[int, tuple[str, psutil.Process]] = {}


def register(pid: int, name: str) -> None:
    """
    Remember a process we started (directly, or the proxy's game servers).
    """
    if pid not in STARTED:
        try:
            STARTED[pid] = (name, psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass


# ---------------------------------------------------------------- processes


class Proxy:
    """
    One AuthProxy started for one phase: C{twistd -n aphelion} with the
    phase's options, listening on 127.0.0.1 port 0 (the port is read from
    its log, or from its listening socket).
    """

    def __init__(self, name: str, args: list[str], logDir: Path) -> None:
        self.name = name
        self.args = args
        self.logPath = logDir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.children: dict[int, str] = {}  # pid -> game server id, as seen

    @property
    def gameServers(self) -> int:
        """
        How many game servers the options ask for.
        """
        if "--game-servers" in self.args:
            return int(self.args[self.args.index("--game-servers") + 1])
        return 1

    def start(self, timeout: float = 60.0) -> None:
        """
        Start the proxy; wait until it listens and every game server has
        logged that it is ready.
        """
        argv = [
            str(VENV_BIN / "twistd"),
            "-n",
            "--pidfile=",
            "aphelion",
            *BASE_ARGS,
            *self.args,
        ]
        log(f"starting proxy [{self.name}]: {shlex.join(argv[1:])}")
        with open(self.logPath, "wb") as out:
            self.proc = subprocess.Popen(
                argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        register(self.proc.pid, f"proxy [{self.name}]")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"proxy exited with {self.proc.returncode}; see {self.logPath}"
                )
            text = self.logPath.read_bytes()
            if not self.port:
                found = PORT_LINE.search(text) or None
                self.port = int(found.group(1)) if found else self.listeningPort()
            if self.port and len(set(READY.findall(text))) >= self.gameServers:
                self.rememberChildren()
                log(f"proxy up: pid {self.proc.pid}, port {self.port}")
                return
            time.sleep(0.1)
        raise RuntimeError(f"proxy not ready in {timeout} s; see {self.logPath}")

    def listeningPort(self) -> int:
        """
        The port the proxy process listens on, from its sockets (0 if none
        yet).
        """
        assert self.proc is not None
        try:
            conns = psutil.Process(self.proc.pid).net_connections("tcp")
        except psutil.Error:
            return 0
        for c in conns:
            if c.status == psutil.CONN_LISTEN and c.laddr.ip == "127.0.0.1":
                return int(c.laddr.port)
        return 0

    def rememberChildren(self) -> None:
        """
        Note the game-server processes (the proxy's children) by PID, with
        their ids from the log, so that they can be stopped by PID if they
        outlive the proxy.
        """
        ids = {int(pid): gs.decode() for gs, pid in SPAWNED.findall(self.log())}
        try:
            kids = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return
        for kid in kids:
            self.children.setdefault(kid.pid, ids.get(kid.pid, f"child {kid.pid}"))
            register(kid.pid, f"game server {self.children[kid.pid]}")

    def gamePorts(self) -> list[int]:
        """
        The ports the game servers listen on (from their sockets).
        """
        ports = []
        for pid in list(self.children):
            try:
                conns = psutil.Process(pid).net_connections("tcp")
            except psutil.Error:
                continue
            ports += [c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN]
        return ports

    @property
    def pid(self) -> int:
        """
        The proxy's PID.
        """
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        """
        Whether the proxy still runs.
        """
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> bytes:
        """
        The proxy's log so far.
        """
        try:
            return self.logPath.read_bytes()
        except OSError:
            return b""

    def stop(self) -> None:
        """
        Stop the proxy by its PID (SIGTERM, then SIGKILL), then any game
        server it started that is still there.
        """
        if self.proc is None:
            return
        if self.alive():
            self.rememberChildren()
        stopProcess(self.proc, f"proxy [{self.name}]")
        STARTED.pop(self.proc.pid, None)
        for pid in self.children:
            stopPid(pid, f"game server {self.children[pid]}")
        self.proc = None


def stopPid(pid: int, name: str, grace: float = 5.0) -> None:
    """
    Stop a process we started (directly or through the proxy) by its PID,
    if it still runs: SIGTERM, then SIGKILL after C{grace} seconds.
    """
    entry = STARTED.pop(pid, None)
    if entry is None:
        return
    proc = entry[1]
    try:
        proc.terminate()
        proc.wait(grace)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        log(f"{name} (pid {pid}) ignored SIGTERM; killing it")
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


class Sampler(threading.Thread):
    """
    Reads the RSS of the proxy and of its children and the proxy's open
    descriptors every C{interval} seconds, keeping the peaks.
    """

    def __init__(self, proxy: Proxy, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.proxy = proxy
        self.interval = interval
        self.halt = threading.Event()
        self.peakRss: dict[int, int] = {}
        self.peakFds = 0
        self.samples = 0

    def read(self) -> tuple[dict[int, int], int]:
        """
        One reading: RSS by PID (the proxy and its children) and the
        proxy's descriptors.
        """
        rss: dict[int, int] = {}
        fds = 0
        try:
            top = psutil.Process(self.proxy.pid)
            rss[top.pid] = top.memory_info().rss
            fds = top.num_fds()
            kids = top.children(recursive=True)
        except (psutil.Error, AssertionError):
            return rss, fds
        for kid in kids:
            try:
                rss[kid.pid] = kid.memory_info().rss
            except psutil.Error:
                continue
            self.proxy.children.setdefault(kid.pid, f"child {kid.pid}")
            register(kid.pid, f"game server {self.proxy.children[kid.pid]}")
        return rss, fds

    def run(self) -> None:
        """
        Sample until stopped.
        """
        while not self.halt.wait(self.interval):
            rss, fds = self.read()
            for pid, value in rss.items():
                self.peakRss[pid] = max(self.peakRss.get(pid, 0), value)
            self.peakFds = max(self.peakFds, fds)
            self.samples += 1

    def stop(self) -> None:
        """
        Stop sampling.
        """
        self.halt.set()
        self.join(5)


# ---------------------------------------------------------------- real player


async def probe(
    port: int,
    ids: list[str],
    sourcePrefix: str,
    spacing: float,
    within: float = 10.0,
) -> dict[str, Any]:
    """
    A real player's logins, one after another, one every C{spacing} seconds
    (or as soon as the previous one is done), each from its own loopback
    address C{sourcePrefix.N}: the times to seated and the failures.
    """
    times: list[float] = []
    failures: list[str] = []
    slowest = (0.0, 0.0)  # (seconds, when: seconds after the first login began)
    first = time.monotonic()
    for i, playerId in enumerate(ids):
        started = time.monotonic()
        try:
            took = await timedLogin(
                "127.0.0.1", port, playerId, f"{sourcePrefix}.{i + 1}", within
            )
            times.append(took)
            slowest = max(slowest, (took, started - first))
        except Exception as e:
            failures.append(f"{type(e).__name__}: {e}"[:120])
        rest = spacing - (time.monotonic() - started)
        if rest > 0:
            await asyncio.sleep(rest)
    result = summarise(times, failures)
    result["slowest_began_s"] = round(slowest[1], 1)
    return result


def percentile(values: list[float], p: float) -> float | None:
    """
    The nearest-rank percentile (p99 of 20 values is the largest).
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, -(-len(ordered) * p // 100) - 1))
    return ordered[int(rank)]


def summarise(times: list[float], failures: list[str]) -> dict[str, Any]:
    """
    The figures of a series of logins, in milliseconds.
    """
    p50 = percentile(times, 50)
    p99 = percentile(times, 99)
    return {
        "logins": len(times) + len(failures),
        "ok": len(times),
        "failed": len(failures),
        "failures": failures[:5],
        "p50_ms": round(p50 * 1000, 2) if p50 is not None else None,
        "p99_ms": round(p99 * 1000, 2) if p99 is not None else None,
        "max_ms": round(max(times) * 1000, 2) if times else None,
    }


# ---------------------------------------------------------------- attacks


@dataclass
class Check:
    """
    One target of an attack: its name, whether it was met, and what was seen.
    """

    name: str
    ok: bool
    detail: str


@dataclass
class Phase:
    """
    What one attack's phase measured.
    """

    spec: Attack
    proxyArgs: list[str]
    rss: dict[str, dict[str, float | None]] = field(default_factory=dict)
    fds: dict[str, int | None] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    quiet: dict[str, Any] | None = None  # the phase's own quiet figure (guess)
    attack: dict[str, Any] = field(default_factory=dict)
    logLines: int = 0
    logSample: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    loadavg: float | None = None  # the machine's 1-minute load at the end

    @property
    def ok(self) -> bool:
        """
        Whether every target was met.
        """
        return self.error is None and all(c.ok for c in self.checks)

    def codes(self) -> dict[str, int]:
        """
        How the attack's connections ended, per label.
        """
        codes: dict[str, int] = self.attack.get("codes", {})
        return codes


@dataclass
class Attack:
    """
    One attack: its name, what it does, the proxy's options, the attacker's
    options, the spacing of the real player's logins, the outcome labels
    Part 6 names for its connections, and its own checks.
    """

    name: str
    title: str
    proxyArgs: list[str]
    attackArgs: Callable[[argparse.Namespace], list[str]]
    spacing: float
    expected: set[str]
    expectedText: str
    extra: Callable[[Phase, bytes], list[Check]] | None = None
    bound: Callable[[argparse.Namespace], float] = lambda a: 30.0


def codesCheck(phase: Phase, expected: set[str], text: str) -> Check:
    """
    Every attack connection ended with one of the C{expected} labels.
    """
    codes = phase.codes()
    other = {k: v for k, v in codes.items() if k not in expected}
    total = sum(codes.values())
    if not codes:
        return Check("codes", False, "no attack connection was recorded")
    if other:
        return Check(
            "codes",
            False,
            f"{sum(other.values())} of {total} ended otherwise: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(other.items()))
            + f" (expected {text})",
        )
    return Check("codes", True, f"all {total} as expected ({text})")


def logEvidence(logText: bytes, pattern: bytes) -> str | None:
    """
    The first log line that contains C{pattern} (shortened), if any.
    """
    for line in logText.splitlines():
        if pattern in line:
            return line.decode("utf-8", "replace")[:160]
    return None


def checkFlood(phase: Phase, logText: bytes) -> list[Check]:
    """
    The flooder is closed with 4007 "reads too slowly", or its game-server
    link is cut for reading too slowly (the log says so).
    """
    codes = phase.codes()
    if "ws 4007" in codes:
        reason = phase.attack.get("stats", {}).get("close_reason", "")
        return [Check("closed 4007", True, f"4007 {reason!r}")]
    evidence = logEvidence(logText, b"reads too slowly")
    if evidence:
        return [Check("closed for reading too slowly", True, f"log: {evidence}")]
    return [
        Check(
            "closed 4007 or link cut",
            False,
            "no 4007 and no 'reads too slowly' in the log",
        )
    ]


def checkIdle(phase: Phase, logText: bytes) -> list[Check]:
    """
    At most 64 of the 500 sockets were open at once (the per-address cap).
    """
    peak = phase.attack.get("stats", {}).get("peak_open_at_once")
    return [
        Check(
            "per-address cap 64",
            peak is not None and peak <= 64,
            f"{peak} sockets open at once",
        )
    ]


def checkSlowloris(phase: Phase, logText: bytes) -> list[Check]:
    """
    No socket outlived the 10 s upgrade deadline (with 2 s of slack).
    """
    longest = phase.attack.get("stats", {}).get("longest_lived_s")
    return [
        Check(
            "upgrade deadline 10 s",
            longest is not None and longest <= 12.0,
            f"longest-lived socket {longest} s",
        )
    ]


def checkBody(phase: Phase, logText: bytes) -> list[Check]:
    """
    The proxy's memory does not grow by the body (16 MiB of slack).
    """
    growth = phase.rss.get("proxy", {}).get("growth_mib")
    stats = phase.attack.get("stats", {})
    return [
        Check(
            "no RSS growth (< 16 MiB)",
            growth is not None and growth < 16,
            f"proxy grew {growth} MiB; written before the answer:"
            f" {stats.get('content-length_mib_written_before_answer')} MiB"
            f" (Content-Length), {stats.get('chunked_mib_written_before_answer')}"
            " MiB (chunked)",
        )
    ]


def checkGuess(phase: Phase, logText: bytes) -> list[Check]:
    """
    The login throttle (10 per minute per address, per ID) ran the checker
    at most about 10 times; the rest were answered TOO_MANY_ATTEMPTS.
    """
    stats = phase.attack.get("stats", {})
    checked = stats.get("guesses_checked")
    answers = stats.get("answers", {})
    throttled = answers.get("auth TOO_MANY_ATTEMPTS", 0)
    return [
        Check(
            "throttle 10/min",
            checked is not None and checked <= 12 and throttled > 0,
            f"{checked} of {stats.get('guesses_answered')} guesses checked"
            f" ({stats.get('guesses_per_s')} guesses/s,"
            f" {stats.get('checked_per_s')} checked/s); answers {answers}",
        )
    ]


def checkChurn(phase: Phase, logText: bytes) -> list[Check]:
    """
    Sessions that never logged in do not linger: the proxy's RSS after is
    within 16 MiB of before, and every session was opened.
    """
    proxy = phase.rss.get("proxy", {})
    before, after = proxy.get("before_mib"), proxy.get("after_mib")
    stats = phase.attack.get("stats", {})
    tried = stats.get("sessions_tried", 0)
    wanted = stats.get("sessions_target", 0)
    flat = before is not None and after is not None and after - before < 16
    return [
        Check(
            "RSS flat (< 16 MiB after)",
            flat,
            f"proxy {before} -> {after} MiB after {tried} sessions",
        ),
        Check(
            "all sessions run",
            tried >= wanted,
            f"{tried} of {wanted} in {stats.get('seconds')} s"
            f" ({stats.get('sessions_per_s')}/s)",
        ),
    ]


def checkJunk(phase: Phase, logText: bytes) -> list[Check]:
    """
    The client that never reads is closed with 4007 "reads too slowly", or,
    once the proxy stopped reading it, at the authentication deadline (the
    proxy logs "not authenticated in time").
    """
    codes = phase.codes()
    reason = phase.attack.get("stats", {}).get("close_reason", "")
    if "ws 4007" in codes:
        return [Check("closed 4007/4008", True, f"4007 {reason!r}")]
    evidence = logEvidence(logText, b"reads too slowly") or logEvidence(
        logText, b"not authenticated in time"
    )
    return [
        Check(
            "closed 4007/4008",
            bool(evidence),
            f"ended {codes}; log: {evidence or 'no 4007 or 4008 line'}",
        )
    ]


def checkNewline(phase: Phase, logText: bytes) -> list[Check]:
    """
    No log line was forged (every line starts with a timestamp) and no raw
    control character reached the log.
    """
    forged = [
        line.decode("utf-8", "replace")[:120]
        for line in logText.splitlines()
        if line and not TIMESTAMP.match(line)
    ]
    raw = [
        name
        for name, seq in (
            ("CR", b"\r"),
            ("ESC", b"\x1b"),
            ("NEL", b"\xc2\x85"),
            ("DEL", b"\x7f"),
            ("NUL", b"\x00"),
        )
        if seq in logText
    ]
    return [
        Check(
            "no forged log line",
            not forged,
            f"{len(forged)} lines without a timestamp: {forged[:3]}"
            if forged
            else "every line starts with a timestamp",
        ),
        Check(
            "no raw control characters",
            not raw,
            f"raw in log: {raw}" if raw else "none",
        ),
    ]


def checkLogflood(phase: Phase, logText: bytes) -> list[Check]:
    """
    4,000 bad connections leave a handful of log lines: the first per cause
    and a summary per 10 s.
    """
    return [
        Check(
            "log lines bounded (<= 60)",
            phase.logLines <= 60,
            f"{phase.logLines} proxy log lines for"
            f" {phase.attack.get('stats', {}).get('bad_inits')} bad inits and"
            f" {phase.attack.get('stats', {}).get('silent_sockets')} silent sockets",
        )
    ]


def checkHttp(phase: Phase, logText: bytes) -> list[Check]:
    """
    C{GET /aphelion} is answered 426 and neither answer names a version.
    """
    stats = phase.attack.get("stats", {})
    checks = []
    for path, want, noVersion in (("/aphelion", 426, True), ("/other", 404, False)):
        got = stats.get(path, {})
        leaks = got.get("version_leaks", [])
        # Part 6 asks for no version in the 426 only; the 404's is shown.
        checks.append(
            Check(
                f"{path} -> {want}" + (", no version" if noVersion else ""),
                got.get("status") == want and not (noVersion and leaks),
                f"{got.get('status')}; version in answer: {leaks or 'none'}",
            )
        )
    return checks


def attacks(a: argparse.Namespace) -> list[Attack]:
    """
    The attacks, in order.
    """
    d = a.duration
    return [
        Attack(
            "flood",
            "1. one seated player sends 64 KiB packets as fast as it can,"
            " never reads (echo game)",
            [*DEV_ECHO, "--game-servers", "1"],
            lambda a: ["--duration", str(d)],
            spacing=max(0.1, d / LOGINS),
            # A peer that is still sending when the proxy closes gets a
            # reset (its unread data), not the close frame: then the log
            # must say why (checkFlood).
            expected={"ws 4007", "ws 4009", "reset", "drop"},
            expectedText="4007 reads too slowly, or reset/4009 once the game"
            " link is cut for reading too slowly (log)",
            extra=checkFlood,
            bound=lambda a: d + 20,
        ),
        Attack(
            "idle",
            "2. 500 sockets from one address finish the init, then nothing"
            " (--max-connections 500 --auth-timeout 5)",
            [
                *DEV_ECHO,
                "--game-servers",
                "1",
                "--max-connections",
                "500",
                "--auth-timeout",
                "5",
            ],
            lambda a: ["--bound", "20"],
            spacing=0.2,
            expected={"http 503", "drop", "reset", "ws 1013", "ws 4008"},
            expectedText="503/dropped/1013 past the cap of 64, the rest 4008",
            extra=checkIdle,
            bound=lambda a: 20,
        ),
        Attack(
            "slowloris",
            "3. 1,500 sockets from one address send the upgrade one byte every 3 s",
            [*DEV_ECHO, "--game-servers", "1", "--upgrade-timeout", "10"],
            lambda a: ["--bound", "25", "--interval", "3"],
            spacing=0.6,
            expected={"http 503", "drop", "reset"},
            expectedText="503 or dropped (cap, rate, 10 s upgrade deadline)",
            extra=checkSlowloris,
            bound=lambda a: 25,
        ),
        Attack(
            "body",
            "4. an upgrade request with a 64 MiB body (Content-Length, then chunked)",
            [*DEV_ECHO, "--game-servers", "1"],
            lambda a: ["--bound", "35"],
            spacing=0.1,
            expected={"http 400"},
            expectedText="HTTP 400 before the body is read",
            extra=checkBody,
            bound=lambda a: 35,
        ),
        Attack(
            "guess",
            "5. 20 connections x 3 wrong passwords for one account from one"
            " address (--auth sqlite)",
            ["--game", "aphelion.games.echo", "--game-servers", "1"],
            lambda a: ["--bound", "30", "--target", "alice"],
            spacing=0.1,
            expected={"ws 4008", "left open (attacker closed)"},
            expectedText="answers INVALID_ID then TOO_MANY_ATTEMPTS; 4008 or left open",
            extra=checkGuess,
            bound=lambda a: 30,
        ),
        Attack(
            "churn",
            "6. 23,000 game sessions opened and closed without logging in"
            " (250 addresses)",
            [*DEV_ECHO, "--game-servers", "1"],
            lambda a: ["--bound", str(round(6 * d))],
            spacing=min(1.0, 6 * d / LOGINS / 2),
            expected={"ws 1000"},
            expectedText="1000 (normal close)",
            extra=checkChurn,
            bound=lambda a: 6 * d,
        ),
        Attack(
            "junk",
            "7. a client that never reads sends junk C2S payloads (--unacked-limit 0)",
            [*DEV_ECHO, "--game-servers", "1", "--unacked-limit", "0"],
            lambda a: ["--duration", str(d)],
            spacing=max(0.1, d / LOGINS),
            # Past the write pause (1 MiB) the proxy stops reading the client,
            # so the backlog never reaches the 4 MiB limit: the connection
            # ends at the authentication deadline (4008, whose close frame
            # cannot get through a full buffer: a reset), or with 4007.
            expected={"ws 4007", "ws 4008", "reset"},
            expectedText="4007 reads too slowly, or 4008 / reset at the"
            " authentication deadline once reading stopped",
            extra=checkJunk,
            bound=lambda a: d + 20,
        ),
        Attack(
            "newline",
            "8. IDs with a newline (and CR, ESC, NEL, DEL, NUL) in dev mode",
            [*DEV_ECHO, "--game-servers", "1"],
            lambda a: ["--bound", "20"],
            spacing=0.1,
            expected={"auth INVALID_ID"},
            expectedText="INVALID_ID",
            extra=checkNewline,
            bound=lambda a: 20,
        ),
        Attack(
            "logflood",
            "9. 3,000 bad init packets (64 addresses) + 1,000 silent sockets"
            " on a game server's port",
            [*DEV_ECHO, "--game-servers", "1"],
            lambda a: ["--bound", "45"],
            spacing=0.5,
            expected={
                "bad init: ws 4003",
                "bad init: ws 4000",
                "game port: closed by game server",
            },
            expectedText="4003/4000; the game port closes silent sockets after"
            " its 10 s timeout",
            extra=checkLogflood,
            bound=lambda a: 45,
        ),
        Attack(
            "http",
            "10. plain GET /aphelion and GET /other",
            [*DEV_ECHO, "--game-servers", "1"],
            lambda a: ["--bound", "20"],
            spacing=0.1,
            expected={"http 426", "http 404"},
            expectedText="426 (/aphelion), 404 (/other)",
            extra=checkHttp,
            bound=lambda a: 20,
        ),
    ]


# ---------------------------------------------------------------- running


def mib(value: int | None) -> float | None:
    """
    Bytes as MiB, one decimal.
    """
    return None if value is None else round(value / MIB, 1)


def memoryFigures(
    proxy: Proxy, before: dict[int, int], sampler: Sampler, after: dict[int, int]
) -> dict[str, dict[str, float | None]]:
    """
    Before, peak, after and growth (peak - before) in MiB, per process.
    """
    figures: dict[str, dict[str, float | None]] = {}
    for pid in sorted(set(before) | set(sampler.peakRss) | set(after)):
        name = "proxy" if pid == proxy.pid else proxy.children.get(pid, f"pid {pid}")
        b, p, f = before.get(pid), sampler.peakRss.get(pid), after.get(pid)
        p = max(v for v in (b, p, f) if v is not None) if (b or p or f) else None
        figures[name] = {
            "pid": pid,
            "before_mib": mib(b),
            "peak_mib": mib(p),
            "after_mib": mib(f),
            "growth_mib": mib(p - b) if p is not None and b is not None else None,
        }
    return figures


async def runAttackProcess(
    spec: Attack,
    args: argparse.Namespace,
    proxy: Proxy,
    extra: list[str],
    err: IO[bytes],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    Start the attack process, run the real player's logins once it says it
    is attacking, and return (its report, the logins' figures). The attack
    process is stopped by its PID if it overruns its time bound.
    """
    argv = [
        sys.executable,
        str(HERE / "abuse_attacks.py"),
        spec.name,
        "--port",
        str(proxy.port),
        "--source",
        ATTACKER,
        *spec.attackArgs(args),
        *extra,
    ]
    log(f"attack {spec.name}: {shlex.join(argv[2:])}")
    child = await asyncio.create_subprocess_exec(
        *argv, cwd=HERE, stdout=asyncio.subprocess.PIPE, stderr=err
    )
    register(child.pid, f"attack {spec.name}")
    assert child.stdout is not None
    limit = time.monotonic() + spec.bound(args) + args.duration + 90
    report: dict[str, Any] = {}
    probeTask: asyncio.Task[dict[str, Any]] | None = None
    ids = [f"real-{spec.name}-{i}" for i in range(LOGINS)]
    if spec.name == "guess":
        ids = [args.realIds[i % len(args.realIds)] for i in range(LOGINS)]
    try:
        while (remaining := limit - time.monotonic()) > 0:
            try:
                line = await asyncio.wait_for(child.stdout.readline(), remaining)
            except TimeoutError:
                break
            if not line:
                break
            text = line.decode("utf-8", "replace").strip()
            if text == "# attacking" and probeTask is None:
                probeTask = asyncio.create_task(
                    probe(proxy.port, ids, "127.0.1", spec.spacing)
                )
            elif text.startswith("#"):
                log(f"attack {spec.name}: {text[2:]}")
            elif text.startswith("{"):
                report = json.loads(text)
    finally:
        if child.returncode is None:
            try:
                await asyncio.wait_for(child.wait(), 5)
            except TimeoutError:
                log(f"attack {spec.name} (pid {child.pid}) overran; stopping it")
                stopPid(child.pid, f"attack {spec.name}")
    STARTED.pop(child.pid, None)
    if not report:
        report = {"codes": {}, "stats": {}, "notes": ["no report; see its .err file"]}
    if probeTask is None:
        probeTask = asyncio.create_task(probe(proxy.port, ids, "127.0.1", 0.1))
    try:
        logins = await asyncio.wait_for(probeTask, LOGINS * 12 + 10)
    except TimeoutError:
        logins = summarise([], ["the logins overran their time bound"])
    return report, logins


def accountsDatabase(logDir: Path) -> tuple[str, list[str]]:
    """
    Create the accounts database of the guess attack with the C{aphelion
    accounts add} command: C{alice} (the attacked account) and six real
    players. Returns the database path and the real players' IDs to send.
    """
    db = logDir / "accounts.sqlite3"
    names = ["alice"] + [f"real{i}" for i in range(6)]
    procs = [
        subprocess.Popen(
            [str(VENV_BIN / "aphelion"), "accounts", "add", "--db", str(db), name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name in names[:1]
    ]
    # alice first (it creates the table), then the others together.
    out, _ = procs[0].communicate(timeout=60)
    procs = [
        subprocess.Popen(
            [str(VENV_BIN / "aphelion"), "accounts", "add", "--db", str(db), name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name in names[1:]
    ]
    ids = []
    for proc in procs:
        text, _ = proc.communicate(timeout=60)
        found = re.search(rb"ID to send: (\S+)", text)
        if found:
            ids.append(found.group(1).decode())
    if not ids or b"ID to send" not in out:
        raise RuntimeError(f"could not create the accounts: {out!r}")
    return str(db), ids


def runPhase(spec: Attack, args: argparse.Namespace, logDir: Path) -> Phase:
    """
    One attack against a fresh proxy: start it, read its memory, attack
    while a real player logs in, read it again, stop it, check the targets.
    """
    proxyArgs = list(spec.proxyArgs)
    if spec.name == "guess":
        db, args.realIds = accountsDatabase(logDir)
        proxyArgs = ["--auth", f"sqlite:{db}", *proxyArgs]
    phase = Phase(spec, proxyArgs)
    started = time.monotonic()
    proxy = Proxy(spec.name, proxyArgs, logDir)
    sampler: Sampler | None = None
    try:
        proxy.start()
        time.sleep(args.settle)
        sampler = Sampler(proxy)
        before, fdsBefore = sampler.read()
        sampler.start()
        # One unmeasured login: the first seat on a fresh proxy pays for
        # imports and first connections.
        asyncio.run(probe(proxy.port, [f"warm-up-{spec.name}"], "127.0.3", 0))
        if spec.name == "guess":
            quietIds = [args.realIds[i % len(args.realIds)] for i in range(LOGINS)]
            phase.quiet = asyncio.run(probe(proxy.port, quietIds, "127.0.2", 0.1))
        extra: list[str] = []
        if spec.name == "logflood":
            ports = proxy.gamePorts()
            if not ports:
                raise RuntimeError("no game-server port found")
            extra = ["--gs-port", str(ports[0])]
        logStart = len(proxy.log())
        with open(proxy.logPath.with_suffix(".attack.err"), "wb") as err:
            phase.attack, phase.probe = asyncio.run(
                runAttackProcess(spec, args, proxy, extra, err)
            )
        time.sleep(args.settle)
        if spec.name == "logflood":
            # Let the summary lines of the last 10 s window come out.
            time.sleep(11)
        sampler.stop()
        after, fdsAfter = sampler.read()
        phase.rss = memoryFigures(proxy, before, sampler, after)
        phase.fds = {"before": fdsBefore, "peak": sampler.peakFds, "after": fdsAfter}
        logText = proxy.log()
        window = attackLines(logText[logStart:].splitlines())
        phase.logLines = len(window)
        phase.logSample = templates(window)
        checks = generalChecks(phase, args, proxy)
        checks.append(codesCheck(phase, spec.expected, spec.expectedText))
        if spec.extra is not None:
            checks += spec.extra(phase, logText)
        phase.checks = checks
    except Exception as e:
        phase.error = f"{type(e).__name__}: {e}"[:300]
        log(f"attack {spec.name} could not run: {phase.error}")
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        proxy.stop()
        phase.seconds = round(time.monotonic() - started, 1)
        phase.loadavg = round(os.getloadavg()[0], 2)
    return phase


def attackLines(lines: list[bytes]) -> list[bytes]:
    """
    The log lines that are not about the real player's logins (its
    addresses, its IDs and its sessions): what the attack made the proxy
    write.
    """
    hints = set()
    for line in lines:
        found = re.search(rb"session (\w+) authenticated as (real|warm-up)-", line)
        if found:
            hints.add(b"session " + found.group(1) + b" ")
    return [
        line
        for line in lines
        if b"127.0.1." not in line
        and b"127.0.3." not in line
        and b" real-" not in line
        and b" warm-up-" not in line
        and not any(h in line + b" " for h in hints)
    ]


def templates(lines: list[bytes]) -> list[str]:
    """
    The most frequent shapes of log lines (timestamps, numbers and addresses
    blanked), with their counts: what the log was filled with.
    """
    counts: dict[str, int] = {}
    for line in lines:
        text = line.decode("utf-8", "replace")
        text = re.sub(r"^\S+ ", "", text)
        text = re.sub(r"\d+", "N", text)[:110]
        counts[text] = counts.get(text, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
    return [f"{n} x {t}" for t, n in top]


def generalChecks(phase: Phase, args: argparse.Namespace, proxy: Proxy) -> list[Check]:
    """
    The targets of every attack: memory growth, the real player's p99 and
    logins, and the proxy still running.
    """
    checks = []
    growths = {
        name: f["growth_mib"]
        for name, f in phase.rss.items()
        if f.get("growth_mib") is not None
    }
    worst = max(growths.items(), key=lambda kv: kv[1] or 0) if growths else None
    checks.append(
        Check(
            f"growth <= {GROWTH_TARGET_MIB} MiB",
            worst is not None and (worst[1] or 0) <= GROWTH_TARGET_MIB,
            ", ".join(f"{k} +{v}" for k, v in growths.items()) or "no reading",
        )
    )
    quiet = phase.quiet or args.quiet
    q99, p99 = quiet.get("p99_ms"), phase.probe.get("p99_ms")
    if q99 and p99 is not None:
        checks.append(
            Check(
                f"seated p99 <= {P99_FACTOR:g}x quiet",
                p99 <= P99_FACTOR * q99,
                f"{p99} ms vs {q99} ms quiet (x{p99 / q99:.1f})",
            )
        )
    else:
        checks.append(Check("seated p99", False, "no figure"))
    checks.append(
        Check(
            "real logins succeed",
            phase.probe.get("failed", 1) == 0 and phase.probe.get("ok", 0) > 0,
            f"{phase.probe.get('ok')} of {phase.probe.get('logins')}"
            + (f"; {phase.probe.get('failures')}" if phase.probe.get("failed") else ""),
        )
    )
    checks.append(
        Check(
            "proxy still up",
            proxy.alive(),
            "running"
            if proxy.alive()
            else f"exited {proxy.proc and proxy.proc.poll()}",
        )
    )
    return checks


def quietBaseline(args: argparse.Namespace, logDir: Path) -> dict[str, Any]:
    """
    A real player's time to seated on a fresh, quiet proxy (dev
    authentication, echo game), after one unmeasured login.
    """
    proxy = Proxy("quiet", [*DEV_ECHO, "--game-servers", "1"], logDir)
    try:
        proxy.start()
        time.sleep(args.settle)

        async def measure() -> dict[str, Any]:
            await probe(proxy.port, ["warm-up"], "127.0.3", 0)
            ids = [f"quiet-{i}" for i in range(LOGINS)]
            return await probe(proxy.port, ids, "127.0.2", 0.1)

        return asyncio.run(measure())
    finally:
        proxy.stop()


# ---------------------------------------------------------------- soak


def runSoak(args: argparse.Namespace, logDir: Path) -> dict[str, Any]:
    """
    The soak: C{--soak-players} players seated on 2 echo game servers, each
    sending 2 messages a second for C{--soak-seconds}, through Node (ws).
    The proxy runs with C{--exempt 127.0.0.0/8}: from one address, the
    per-address limits would refuse all but 64 of them.
    """
    node = "node"
    if not (HERE / "node_modules" / "ws").exists():
        return {
            "error": "benchmarks/node_modules/ws is missing: cd benchmarks && npm ci"
        }
    proxy = Proxy(
        "soak",
        [*DEV_ECHO, "--game-servers", "2", "--exempt", "127.0.0.0/8"],
        logDir,
    )
    result: dict[str, Any] = {}
    sampler: Sampler | None = None
    soak: subprocess.Popen[bytes] | None = None
    try:
        proxy.start()
        time.sleep(args.settle)
        sampler = Sampler(proxy)
        before, _ = sampler.read()
        sampler.start()
        argv = [
            node,
            str(HERE / "abuse_soak.js"),
            "--url",
            f"ws://127.0.0.1:{proxy.port}/aphelion",
            "--conns",
            str(args.soak_players),
            "--rate",
            "2",
            "--seconds",
            str(args.soak_seconds),
        ]
        log("soak: " + shlex.join(argv[1:]))
        soak = subprocess.Popen(argv, cwd=HERE, stdout=subprocess.PIPE)
        register(soak.pid, "soak client")
        assert soak.stdout is not None
        seated: dict[int, int] = {}
        seatedFds = 0
        report: dict[str, Any] = {}
        for raw in soak.stdout:
            text = raw.decode("utf-8", "replace").strip()
            if text.startswith("# seated"):
                log(f"soak: {text[2:]}")
                time.sleep(args.settle)
                seated, seatedFds = sampler.read()
            elif text.startswith("#"):
                log(f"soak: {text[2:]}")
            elif text.startswith("{"):
                report = json.loads(text)
        soak.wait(timeout=60)
        time.sleep(args.settle)
        sampler.stop()
        after, _ = sampler.read()
        warnings = [
            line
            for line in proxy.log().splitlines()
            if re.search(rb"#(warn|error|critical)\]", line)
        ]
        players = report.get("seated") or 0
        perPlayer = {}
        for pid in seated:
            name = "proxy" if pid == proxy.pid else proxy.children.get(pid, str(pid))
            if pid in before and players:
                perPlayer[name] = round((seated[pid] - before[pid]) / 1024 / players, 1)
        result = {
            "proxy_args": proxy.args,
            "loadgen": report,
            "rss": memoryFigures(proxy, before, sampler, after),
            "rss_seated_mib": {
                ("proxy" if p == proxy.pid else proxy.children.get(p, str(p))): mib(v)
                for p, v in seated.items()
            },
            "kib_per_player_seated": perPlayer,
            "proxy_fds_seated": seatedFds,
            "proxy_alive": proxy.alive(),
            "log_warnings": len(warnings),
            "log_warnings_top": templates(warnings),
        }
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"[:300]
    finally:
        if soak is not None:
            if soak.poll() is None:
                stopProcess(soak, "soak client")
            STARTED.pop(soak.pid, None)
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        proxy.stop()
    return result


# ---------------------------------------------------------------- output


def fmt(value: Any) -> str:
    """
    A figure for the table.
    """
    return "-" if value is None else str(value)


def printPhase(phase: Phase, quiet: dict[str, Any]) -> None:
    """
    One attack's block of the report.
    """
    mark = "OK" if phase.ok else "MISS"
    print(
        f"\n== {phase.spec.title}  [{mark}, {phase.seconds} s,"
        f" machine load {phase.loadavg} on {os.cpu_count()} cores]"
    )
    print(f"   proxy options: {shlex.join(phase.proxyArgs)}")
    if phase.error:
        print(f"   could not run: {phase.error}")
    for name, f in phase.rss.items():
        print(
            f"   RSS {name:<8} MiB  before {fmt(f['before_mib']):>6}  peak"
            f" {fmt(f['peak_mib']):>6}  after {fmt(f['after_mib']):>6}  growth"
            f" {fmt(f['growth_mib']):>5}   (target <= {GROWTH_TARGET_MIB})"
        )
    if phase.fds:
        print(
            f"   proxy fds       before {fmt(phase.fds['before'])}  peak"
            f" {fmt(phase.fds['peak'])}  after {fmt(phase.fds['after'])}"
        )
    q = phase.quiet or quiet
    p = phase.probe
    if p:
        target = round(P99_FACTOR * q["p99_ms"], 2) if q.get("p99_ms") else None
        print(
            f"   seated ms       p50 {fmt(p.get('p50_ms'))}  p99 {fmt(p.get('p99_ms'))}"
            f"  ({p.get('ok')}/{p.get('logins')} logins; the slowest began"
            f" {p.get('slowest_began_s')} s in)   quiet p50"
            f" {fmt(q.get('p50_ms'))} p99 {fmt(q.get('p99_ms'))}"
            f"{' (sqlite, same proxy)' if phase.quiet else ''}"
            f"   (target p99 <= {fmt(target)})"
        )
    codes = phase.codes()
    if codes:
        print(
            "   ended with      "
            + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))
            + f"   (expected: {phase.spec.expectedText})"
        )
    stats = {
        k: v
        for k, v in phase.attack.get("stats", {}).items()
        if k not in ("/aphelion", "/other") and not k.endswith("_headers")
    }
    if stats:
        print(f"   attack figures  {json.dumps(stats)[:400]}")
    print(f"   proxy log       {phase.logLines} lines during the attack")
    for t in phase.logSample[:3]:
        print(f"                     {t[:120]}")
    for note in phase.attack.get("notes", [])[:3]:
        print(f"   note            {note[:200]}")
    for c in phase.checks:
        print(f"   {'ok  ' if c.ok else 'MISS'} {c.name}: {c.detail[:300]}")


def printSummary(phases: list[Phase], quiet: dict[str, Any]) -> None:
    """
    One line per attack.
    """
    print(
        f"\nquiet time to seated: p50 {fmt(quiet.get('p50_ms'))} ms,"
        f" p99 {fmt(quiet.get('p99_ms'))} ms"
        f" ({quiet.get('ok')}/{quiet.get('logins')} logins)"
    )
    header = (
        f"{'attack':<10} {'max growth MiB':>14} {'fds peak':>8} {'p50 ms':>7}"
        f" {'p99 ms':>7} {'x quiet':>7}  {'codes':<5} verdict"
    )
    print("\n" + header)
    print("-" * len(header))
    for phase in phases:
        growth = max((f["growth_mib"] or 0 for f in phase.rss.values()), default=None)
        q = phase.quiet or quiet
        p99 = phase.probe.get("p99_ms")
        ratioText = (
            f"{p99 / q['p99_ms']:.1f}" if p99 is not None and q.get("p99_ms") else "-"
        )
        codesOk = next((c.ok for c in phase.checks if c.name == "codes"), False)
        missed = [c.name for c in phase.checks if not c.ok]
        verdict = "OK" if phase.ok else "MISS: " + ", ".join(missed or ["error"])
        print(
            f"{phase.spec.name:<10} {fmt(growth):>14} {fmt(phase.fds.get('peak')):>8}"
            f" {fmt(phase.probe.get('p50_ms')):>7} {fmt(p99):>7} {ratioText:>7}"
            f"  {'ok' if codesOk else 'MISS':<5} {verdict[:70]}"
        )
    print(
        f"\ntargets: growth <= {GROWTH_TARGET_MIB} MiB per process; p99 <="
        f" {P99_FACTOR:g} x quiet; codes as PROTOCOL.md Part 6 names them"
    )


def printSoak(soak: dict[str, Any]) -> None:
    """
    The soak's block.
    """
    print("\n== soak")
    if "error" in soak:
        print(f"   could not run: {soak['error']}")
    lg = soak.get("loadgen", {})
    if lg:
        print(
            f"   {lg.get('seated')}/{lg.get('conns')} seated in"
            f" {lg.get('seat_seconds')} s; sent {lg.get('sent')}, received"
            f" {lg.get('received')} ({lg.get('msgs_per_s')}/s); lost"
            f" {lg.get('lost')}, reordered {lg.get('reordered')}, duplicates"
            f" {lg.get('duplicates')}, errors {lg.get('errors')}"
            f" (targets: all 0); p50 {lg.get('p50_ms')} ms, p99"
            f" {lg.get('p99_ms')} ms"
        )
        print(
            f"   sending: {lg.get('send_seconds')} s, latest send"
            f" {lg.get('send_max_late_ms')} ms behind schedule; echoes in flight"
            f" drained for {lg.get('drain_seconds')} s; closed while running:"
            f" {lg.get('closed_while_sending')}"
        )
        met = (
            lg.get("seated") == lg.get("conns")
            and not lg.get("errors")
            and not lg.get("lost")
            and not lg.get("reordered")
            and not lg.get("duplicates")
            and soak.get("proxy_alive")
        )
        print(f"   verdict: {'OK' if met else 'MISS'}")
        if lg.get("seat_error_samples"):
            print(f"   seat errors: {lg['seat_error_samples']}")
    for name, f in soak.get("rss", {}).items():
        print(
            f"   RSS {name:<8} MiB  before {fmt(f['before_mib'])}  seated"
            f" {fmt(soak.get('rss_seated_mib', {}).get(name))}  peak"
            f" {fmt(f['peak_mib'])}  after {fmt(f['after_mib'])}"
        )
    if soak.get("kib_per_player_seated"):
        print(
            "   KiB per seated player (each process's growth / all players):"
            f" {soak['kib_per_player_seated']}"
        )
    if soak.get("log_warnings"):
        print(f"   proxy log: {soak['log_warnings']} warning lines; most frequent:")
        for t in soak.get("log_warnings_top", [])[:5]:
            print(f"       {t[:140]}")
    if soak:
        print(
            f"   proxy fds seated: {soak.get('proxy_fds_seated')};"
            f" proxy options: {shlex.join(soak.get('proxy_args', []))}"
        )


# ---------------------------------------------------------------- main


def parseArgs(argv: list[str] | None) -> argparse.Namespace:
    """
    The command line.
    """
    names = [a.name for a in attacks(argparse.Namespace(duration=20.0))]
    p = argparse.ArgumentParser(
        description="Attack fresh aphelion proxies on 127.0.0.1 (PROTOCOL.md"
        " Part 6) and report memory, descriptors, a real player's time to"
        " seated and how the attack connections ended."
    )
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated attacks to run (of: {', '.join(names)})",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=20.0,
        help="seconds of the flooding attacks (flood, junk); churn is bounded"
        " by 6x this",
    )
    p.add_argument("--json", default="", help="write the JSON report here")
    p.add_argument("--settle", type=float, default=2.0, help="seconds before readings")
    p.add_argument(
        "--soak", action="store_true", help="run the soak only (long; needs Node)"
    )
    p.add_argument("--soak-players", type=int, default=5000)
    p.add_argument("--soak-seconds", type=int, default=60)
    args = p.parse_args(argv)
    wanted = [n for n in args.only.split(",") if n]
    unknown = set(wanted) - set(names)
    if unknown:
        p.error(f"unknown attack(s): {', '.join(sorted(unknown))}")
    args.wanted = wanted or names
    return args


def main(argv: list[str] | None = None) -> int:
    """
    Run the quiet baseline, then each attack (or the soak), print the
    report and write the JSON.
    """
    args = parseArgs(argv)
    raiseFileLimit(10000)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    logDir = RESULTS / f"{stamp}-abuse-logs"
    logDir.mkdir(parents=True, exist_ok=True)
    output = Path(args.json) if args.json else RESULTS / f"{stamp}-abuse.json"
    report: dict[str, Any] = {
        "started": stamp,
        "argv": sys.argv[1:],
        "logs": str(logDir),
    }
    started = time.monotonic()
    # Stop cleanly on SIGTERM too: the finally blocks stop every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(args, logDir, report)
    finally:
        for pid, (name, _) in list(STARTED.items()):
            stopPid(pid, name)
    report["seconds"] = round(time.monotonic() - started, 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {output}; logs: {logDir}; {report['seconds']} s")
    return 0


def run(args: argparse.Namespace, logDir: Path, report: dict[str, Any]) -> None:
    """
    The quiet baseline and the attacks, or the soak, into C{report}.
    """
    if args.soak:
        soak = runSoak(args, logDir)
        report["soak"] = soak
        printSoak(soak)
    else:
        try:
            args.quiet = quietBaseline(args, logDir)
        except Exception as e:
            log(f"quiet baseline failed: {e}")
            args.quiet = summarise([], [f"baseline failed: {e}"])
        log(f"quiet time to seated: {args.quiet}")
        report["quiet"] = args.quiet
        phases = []
        for spec in attacks(args):
            if spec.name not in args.wanted:
                continue
            phase = runPhase(spec, args, logDir)
            phases.append(phase)
            printPhase(phase, args.quiet)
            sys.stdout.flush()
        printSummary(phases, args.quiet)
        report["attacks"] = [phaseJson(p) for p in phases]


def phaseJson(phase: Phase) -> dict[str, Any]:
    """
    One attack's JSON.
    """
    return {
        "name": phase.spec.name,
        "title": phase.spec.title,
        "proxy_args": phase.proxyArgs,
        "ok": phase.ok,
        "error": phase.error,
        "seconds": phase.seconds,
        "loadavg_1min": phase.loadavg,
        "rss": phase.rss,
        "proxy_fds": phase.fds,
        "time_to_seated": phase.probe,
        "quiet_same_proxy": phase.quiet,
        "codes": phase.codes(),
        "expected": phase.spec.expectedText,
        "attack_stats": phase.attack.get("stats", {}),
        "attack_notes": phase.attack.get("notes", []),
        "log_lines": phase.logLines,
        "log_top": phase.logSample,
        "checks": [c.__dict__ for c in phase.checks],
    }


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
