"""
The attacks of the abuse suite (abuse.py), one per name, each run as its own
process so that its CPU and its sockets are apart from the runner's real
player:

    python benchmarks/abuse_attacks.py NAME --port PORT [options]

It writes C{# attacking} on stdout once the attack is under way (the runner
starts its real player's logins then), progress lines starting with C{#},
and last one JSON line: C{codes} (how each attack connection ended, counted
per label: C{ws 4007}, C{http 503}, C{drop}, C{auth INVALID_ID}, ...),
C{stats} (figures of the attack) and C{notes}.

Every attack connects to 127.0.0.1 only, from a loopback source address,
and every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from abuse_client import (
    Closed,
    HttpRefused,
    WsConn,
    authenticate,
    frame,
    handshake,
    initPacket,
    openTcp,
    outcomeLabel,
    readFrame,
    readResponse,
    upgradeRequest,
)

# A small receive buffer for the peers that never read: what they do not
# read piles up in the server process (which is what is measured), not in
# this machine's kernel.
SMALL_RCVBUF = 16384


class Report:
    """
    What an attack found: a count per outcome label, figures and notes.
    """

    def __init__(self) -> None:
        self.codes: collections.Counter[str] = collections.Counter()
        self.stats: dict[str, Any] = {}
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """
        Add a note (at most 20 are kept).
        """
        if len(self.notes) < 20:
            self.notes.append(text)

    def asDict(self) -> dict[str, Any]:
        """
        The JSON form.
        """
        return {"codes": dict(self.codes), "stats": self.stats, "notes": self.notes}


def say(line: str) -> None:
    """
    A marker or progress line for the runner.
    """
    sys.stdout.write(f"# {line}\n")
    sys.stdout.flush()


def mono() -> float:
    """
    Seconds on a monotonic clock.
    """
    return time.monotonic()


def spread(prefix: str, i: int, count: int = 250) -> str:
    """
    The C{i}-th of C{count} loopback source addresses C{prefix.N} (N from 1),
    for an attacker with many addresses.
    """
    return f"{prefix}.{i % count + 1}"


async def bounded(
    tasks: list[asyncio.Task[None]], within: float, report: Report
) -> None:
    """
    Wait for C{tasks} at most C{within} seconds, then cancel the rest.
    """
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, within))
    for task in pending:
        task.cancel()
    if pending:
        report.note(f"{len(pending)} tasks cancelled at the time bound")
        await asyncio.wait(pending, timeout=5)


async def drainForClose(conn: WsConn, within: float, report: Report) -> str:
    """
    Read everything the server sent (the peer starts reading at last) until
    its close frame, the end of the connection or C{within} seconds; return
    the outcome label.
    """
    messages = 0
    deadline = mono() + within
    try:
        while True:
            remaining = deadline - mono()
            if remaining <= 0:
                return "no close (open at end)"
            f = await asyncio.wait_for(readFrame(conn.reader), remaining)
            if f.opcode == 8:
                code = int.from_bytes(f.payload[:2], "big") if f.payload else None
                reason = f.payload[2:].decode("utf-8", "replace")
                report.stats["close_reason"] = reason
                return Closed(code, reason).label
            messages += 1
    except TimeoutError:
        return "no close (open at end)"
    except Exception as e:
        return outcomeLabel(e)
    finally:
        report.stats["messages_read_after"] = messages
        conn.abort()


async def floodUntilBlocked(
    conn: WsConn, chunk: bytes, duration: float, report: Report
) -> str | None:
    """
    Write C{chunk} again and again for C{duration} seconds without reading.
    Returns the outcome label if the connection ended meanwhile.
    """
    sent = 0
    started = mono()
    end = started + duration
    lastProgress = started
    try:
        while (now := mono()) < end:
            conn.writer.write(chunk)
            try:
                await asyncio.wait_for(conn.writer.drain(), end - now)
            except TimeoutError:
                break
            sent += 1
            lastProgress = mono()
        return None
    except Exception as e:
        return outcomeLabel(e)
    finally:
        report.stats["chunks_written"] = sent
        report.stats["mib_written"] = round(sent * len(chunk) / 2**20, 1)
        report.stats["last_write_progress_s"] = round(lastProgress - started, 2)
        report.stats["mib_per_s"] = round(
            sent * len(chunk) / 2**20 / max(lastProgress - started, 1e-6), 1
        )


# ------------------------------------------------------------------ attacks


async def flood(a: argparse.Namespace, report: Report) -> None:
    """
    1. One authenticated player on the echo game sends 64 KiB packets as fast
    as it can and never reads; then it reads, to learn how it was closed.
    """
    conn = await handshake(a.host, a.port, a.source, rcvbuf=SMALL_RCVBUF)
    result = await authenticate(conn, "flooder", 15)
    if result != "OK":
        report.codes[f"auth {result}"] += 1
        conn.abort()
        return
    say("attacking")
    # ack byte 0 + 65535 bytes: the largest message (65536 bytes).
    packet = frame(b"\0" + b"\x61" * 65535)
    ended = await floodUntilBlocked(conn, packet, a.duration, report)
    if ended is not None:
        report.codes[ended] += 1
        conn.abort()
        return
    report.codes[await drainForClose(conn, 15, report)] += 1


async def junk(a: argparse.Namespace, report: Report) -> None:
    """
    7. An unauthenticated game connection that never reads sends junk C2S
    payloads (each is answered NOT_AUTHENTICATED); run with
    C{--unacked-limit 0}, only the write limit can stop it.
    """
    conn = await handshake(a.host, a.port, a.source, rcvbuf=SMALL_RCVBUF)
    say("attacking")
    # C2S with field 1 = 1: valid protobuf, not an authenticate.
    batch = frame(b"\x00\x08\x01") * 2000
    ended = await floodUntilBlocked(conn, batch, a.duration, report)
    report.stats["junk_packets_written"] = report.stats["chunks_written"] * 2000
    if ended is not None:
        report.codes[ended] += 1
        conn.abort()
        return
    report.codes[await drainForClose(conn, 15, report)] += 1


async def idle(a: argparse.Namespace, report: Report) -> None:
    """
    2. 500 sockets from one address finish the init (game protocol) and then
    do nothing; each is followed until the server ends it.
    """
    count = a.count or 500
    gate = asyncio.Semaphore(100)
    opened = 0
    openNow = 0
    peakOpen = 0
    attempted = 0
    lifetimes: dict[str, list[float]] = collections.defaultdict(list)
    allTried = asyncio.Event()
    end = mono() + a.bound

    async def one() -> None:
        nonlocal opened, openNow, peakOpen, attempted
        started = mono()
        try:
            async with gate:
                conn = await handshake(a.host, a.port, a.source, within=10)
        except Exception as e:
            report.codes[outcomeLabel(e)] += 1
            return
        finally:
            attempted += 1
            if attempted == count:
                allTried.set()
        opened += 1
        openNow += 1
        peakOpen = max(peakOpen, openNow)
        try:
            closed = await conn.recvUntilClosed(max(0.1, end - mono()))
            report.codes[closed.label] += 1
            lifetimes[closed.label].append(mono() - started)
        except TimeoutError:
            report.codes["open at end"] += 1
        except Exception as e:
            label = outcomeLabel(e)
            report.codes[label] += 1
            lifetimes[label].append(mono() - started)
        finally:
            openNow -= 1
            conn.abort()

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    try:
        await asyncio.wait_for(allTried.wait(), 30)
    except TimeoutError:
        report.note("not every socket had tried to open after 30 s")
    say("attacking")
    await bounded(tasks, end - mono(), report)
    report.stats.update(
        sockets=count,
        inits_completed=opened,
        peak_open_at_once=peakOpen,
        median_lifetime_s={
            k: round(statistics.median(v), 2) for k, v in lifetimes.items() if v
        },
    )


async def slowloris(a: argparse.Namespace, report: Report) -> None:
    """
    3. 1,500 sockets from one address send the upgrade request one byte every
    C{--interval} seconds.
    """
    count = a.count or 1500
    gate = asyncio.Semaphore(200)
    end = mono() + a.bound
    lifetimes: list[float] = []
    longest = 0.0
    connected = 0

    async def one() -> None:
        nonlocal longest, connected
        try:
            async with gate:
                reader, writer = await openTcp(a.host, a.port, a.source, 5.0)
        except Exception as e:
            report.codes[outcomeLabel(e)] += 1
            return
        connected += 1
        started = mono()
        request = upgradeRequest(a.host, a.port)
        label = "open at end"
        try:
            for i in range(len(request)):
                if mono() >= end:
                    break
                writer.write(request[i : i + 1])
                try:
                    data = await asyncio.wait_for(
                        reader.read(4096), min(a.interval, max(0.1, end - mono()))
                    )
                except TimeoutError:
                    continue
                if not data:
                    label = "drop"
                else:
                    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
                    label = f"http {m.group(1).decode()}" if m else "garbage"
                break
            else:
                label = "request complete (never cut)"
        except Exception as e:
            label = outcomeLabel(e)
        finally:
            writer.transport.abort()
        lived = mono() - started
        longest = max(longest, lived)
        if label != "open at end":
            lifetimes.append(lived)
        report.codes[label] += 1

    say("attacking")
    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await bounded(tasks, end - mono() + 5, report)
    report.stats.update(
        sockets=count,
        tcp_connected=connected,
        longest_lived_s=round(longest, 2),
        median_lived_s=round(statistics.median(lifetimes), 2) if lifetimes else None,
        interval_s=a.interval,
    )


async def body(a: argparse.Namespace, report: Report) -> None:
    """
    4. An upgrade request with a 64 MiB body, once with C{Content-Length}
    and once chunked; the body is streamed while the response is awaited.
    """
    size = 64 * 2**20
    piece = b"\0" * 65536
    say("attacking")
    for kind in ("content-length", "chunked"):
        if kind == "content-length":
            extra = f"Content-Length: {size}\r\n".encode()
            chunk = piece
        else:
            extra = b"Transfer-Encoding: chunked\r\n"
            chunk = b"10000\r\n" + piece + b"\r\n"
        sent = 0
        label = "no answer"
        try:
            reader, writer = await openTcp(a.host, a.port, a.source, 5.0)
        except Exception as e:
            report.codes[outcomeLabel(e)] += 1
            continue
        answer = asyncio.create_task(readResponse(reader))
        end = mono() + 15
        try:
            writer.write(upgradeRequest(a.host, a.port, extra=extra))
            # A server that refuses the body answers the headers at once:
            # wait a second for that before streaming (had the body been
            # under way, its close would reset the connection and the
            # answer would be lost here). A server that waits for the body
            # gets all of it.
            await asyncio.wait([answer], timeout=1.0)
            while sent < size and not answer.done() and mono() < end:
                writer.write(chunk)
                try:
                    await asyncio.wait_for(writer.drain(), 1.0)
                except TimeoutError:
                    continue
                sent += len(piece)
            if kind == "chunked" and sent >= size and not answer.done():
                writer.write(b"0\r\n\r\n")
            status, headers, _ = await asyncio.wait_for(answer, max(1.0, end - mono()))
            label = f"http {status}"
            report.stats[f"{kind}_headers"] = headers.decode("latin-1")[:300]
        except Exception as e:
            # The write failed or the answer did not come: the answer, if it
            # did come, says more than the write's error.
            label = outcomeLabel(e)
            if answer.done() and not answer.cancelled():
                error = answer.exception()
                label = (
                    f"http {answer.result()[0]}"
                    if error is None
                    else outcomeLabel(error)
                )
        finally:
            answer.cancel()
            writer.transport.abort()
        report.codes[label] += 1
        report.stats[f"{kind}_mib_written_before_answer"] = round(sent / 2**20, 2)


async def guess(a: argparse.Namespace, report: Report) -> None:
    """
    5. 20 connections x 3 wrong passwords for one account, all from one
    address, all at once.
    """
    conns = a.count or 20
    answers: collections.Counter[str] = collections.Counter()
    checked = 0
    times: list[float] = []

    async def one(i: int) -> None:
        nonlocal checked
        try:
            conn = await handshake(a.host, a.port, a.source, within=10)
        except Exception as e:
            report.codes[outcomeLabel(e)] += 1
            return
        results: list[str] = []
        label = ""
        try:
            for k in range(3):
                t = mono()
                result = await authenticate(conn, f"{a.target}:wrong-{i}-{k}", 20)
                times.append(mono() - t)
                results.append(result)
                answers[result] += 1
            try:
                label = (await conn.recvUntilClosed(2.0)).label
            except TimeoutError:
                await conn.close(1000)
                label = "left open (attacker closed)"
        except Exception as e:
            label = outcomeLabel(e)
        finally:
            conn.abort()
        report.codes[label] += 1
        checked += results.count("INVALID_ID")
        # The third failure on a connection is answered TOO_MANY_ATTEMPTS
        # and closed 4008: that guess was checked too.
        if label == "ws 4008" and results and results[-1] == "TOO_MANY_ATTEMPTS":
            checked += 1

    say("attacking")
    started = mono()
    tasks = [asyncio.create_task(one(i)) for i in range(conns)]
    await bounded(tasks, a.bound, report)
    elapsed = mono() - started
    total = sum(answers.values())
    report.stats.update(
        connections=conns,
        guesses_answered=total,
        answers={f"auth {k}": v for k, v in answers.items()},
        guesses_checked=checked,
        seconds=round(elapsed, 2),
        guesses_per_s=round(total / elapsed, 1),
        checked_per_s=round(checked / elapsed, 1),
        answer_p50_ms=round(statistics.median(times) * 1000, 1) if times else None,
        answer_max_ms=round(max(times) * 1000, 1) if times else None,
    )


async def churn(a: argparse.Namespace, report: Report) -> None:
    """
    6. 23,000 game sessions opened (init done) and closed without logging
    in, from 250 loopback addresses, 50 at a time.
    """
    count = a.count or 23000
    nextIndex = 0
    done = 0
    end = mono() + a.bound
    started = mono()

    async def worker() -> None:
        nonlocal nextIndex, done
        while nextIndex < count and mono() < end:
            i = nextIndex
            nextIndex += 1
            try:
                conn = await handshake(a.host, a.port, spread("127.1.0", i), within=10)
                closed = await conn.close(1000, 5.0)
                report.codes[closed.label if closed else "no close answer"] += 1
            except Exception as e:
                report.codes[outcomeLabel(e)] += 1
            done += 1
            if done % 5000 == 0:
                say(f"{done} sessions")

    say("attacking")
    tasks = [asyncio.create_task(worker()) for _ in range(50)]
    await bounded(tasks, end - mono() + 15, report)
    elapsed = mono() - started
    report.stats.update(
        sessions_tried=done,
        sessions_target=count,
        seconds=round(elapsed, 1),
        sessions_per_s=round(done / elapsed, 1),
    )
    if done < count:
        report.note(f"only {done} of {count} sessions in the time bound")


FORGED = [
    ("newline", "mallory\nFORGED-1 session 0000 authenticated as admin"),
    ("carriage return", "mallory\rFORGED-2 session 0000 authenticated as admin"),
    ("escape", "mallory\x1b[2K\x1b[1GFORGED-3"),
    ("C1 NEL", "mallory\x85FORGED-4"),
    ("DEL", "mallory\x7fFORGED-5"),
    ("NUL", "mallory\x00FORGED-6"),
]


async def newline(a: argparse.Namespace, report: Report) -> None:
    """
    8. IDs with control characters (a newline first) in dev mode, one
    connection each; the runner then reads the log for forged lines.
    """
    say("attacking")
    for i, (what, playerId) in enumerate(FORGED):
        try:
            conn = await handshake(a.host, a.port, spread("127.0.0", i + 1), within=10)
        except Exception as e:
            report.codes[outcomeLabel(e)] += 1
            continue
        try:
            result = await authenticate(conn, playerId, 10)
            report.codes[f"auth {result}"] += 1
            report.stats[what] = result
        except Exception as e:
            report.codes[outcomeLabel(e)] += 1
            report.stats[what] = outcomeLabel(e)
        finally:
            await conn.close(1000)


async def logflood(a: argparse.Namespace, report: Report) -> None:
    """
    9. 3,000 bad init packets at the proxy (from 64 addresses, 50 at a time)
    and, at the same time, 1,000 silent sockets on a game server's port.
    """
    bad = a.count or 3000
    silent = 1000
    end = mono() + a.bound
    nextIndex = 0
    silentLives: list[float] = []
    answeredSockets: list[int] = []  # bytes the game server sent before closing

    async def badWorker() -> None:
        nonlocal nextIndex
        while nextIndex < bad and mono() < end:
            i = nextIndex
            nextIndex += 1
            try:
                conn = await upgradeOnly(a, spread("127.2.0", i, 64))
            except Exception as e:
                report.codes[f"bad init: {outcomeLabel(e)}"] += 1
                continue
            # Two in three: a 10-byte init (4003); one in three: protocol 9
            # (4000).
            conn.send(b"\x00" * 10 if i % 3 else initPacket(9))
            try:
                closed = await conn.recvUntilClosed(5.0)
                report.codes[f"bad init: {closed.label}"] += 1
            except Exception as e:
                report.codes[f"bad init: {outcomeLabel(e)}"] += 1
            finally:
                conn.abort()

    gate = asyncio.Semaphore(200)

    async def silentOne() -> None:
        try:
            async with gate:
                reader, writer = await openTcp(a.host, a.gsPort, a.source, 5.0)
        except Exception as e:
            report.codes[f"game port: {outcomeLabel(e)}"] += 1
            return
        started = mono()
        # The game server's first-message timeout is 10 s: give it 30 (a
        # busy game server accepts late, and its clock starts then).
        deadline = min(end, started + 30)
        answered = 0
        try:
            while True:
                data = await asyncio.wait_for(
                    reader.read(65536), max(0.1, deadline - mono())
                )
                if not data:
                    break
                answered += len(data)
            label = "closed by game server"
            silentLives.append(mono() - started)
        except TimeoutError:
            label = "open at end"
        except Exception as e:
            label = outcomeLabel(e)
            silentLives.append(mono() - started)
        finally:
            writer.transport.abort()
        if answered:
            answeredSockets.append(answered)
        report.codes[f"game port: {label}"] += 1

    say("attacking")
    started = mono()
    tasks = [asyncio.create_task(badWorker()) for _ in range(50)]
    # The silent sockets open at about 200 a second: all at once, they
    # would overflow the game server's listen backlog, and the kernel
    # leaves a client whose handshake it dropped half-open, which would
    # look like a socket the game server never closes.
    for _ in range(silent):
        tasks.append(asyncio.create_task(silentOne()))
        await asyncio.sleep(0.005)
    await bounded(tasks, end - mono() + 5, report)
    report.stats.update(
        bad_inits=nextIndex,
        silent_sockets=silent,
        silent_answered_before_close=len(answeredSockets),
        seconds=round(mono() - started, 1),
        silent_median_life_s=round(statistics.median(silentLives), 1)
        if silentLives
        else None,
        silent_longest_life_s=round(max(silentLives), 1) if silentLives else None,
    )
    leftover = report.codes.get("game port: open at end", 0)
    if leftover and silentLives and max(silentLives) < 15:
        report.note(
            f"{leftover} silent sockets were never closed while every other"
            f" one was, within {max(silentLives):.1f} s: most likely never"
            " accepted (listen backlog overflow leaves the client half-open)"
        )


async def upgradeOnly(a: argparse.Namespace, source: str) -> WsConn:
    """
    A WebSocket upgrade with nothing sent after it.
    """
    reader, writer = await openTcp(a.host, a.port, source, 5.0)
    try:
        writer.write(upgradeRequest(a.host, a.port))
        status, headers, bodyBytes = await asyncio.wait_for(readResponse(reader), 10)
        if status != 101:
            raise HttpRefused(status, headers, bodyBytes)
    except BaseException:
        writer.transport.abort()
        raise
    return WsConn(reader, writer)


VERSION = re.compile(
    rb"twisted|autobahn|python|aphelion/|\b\d+\.\d+(\.\d+)?\b", re.IGNORECASE
)


async def http(a: argparse.Namespace, report: Report) -> None:
    """
    10. A plain C{GET /aphelion} (no Upgrade) and a C{GET /other}; the
    answers are searched for a version.
    """
    say("attacking")
    for path in ("/aphelion", "/other"):
        try:
            reader, writer = await openTcp(a.host, a.port, a.source, 5.0)
        except Exception as e:
            report.codes[outcomeLabel(e)] += 1
            continue
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            status, headers, content = await asyncio.wait_for(readResponse(reader), 10)
            report.codes[f"http {status}"] += 1
            # The status line's "HTTP/1.1" is no version of ours.
            searched = headers.split(b"\r\n", 1)[-1] + content
            leaks = sorted(
                {m.group(0).decode("latin-1") for m in VERSION.finditer(searched)}
            )
            report.stats[path] = {
                "status": status,
                "version_leaks": leaks,
                "headers": headers.decode("latin-1").strip().splitlines(),
                "body": content[:200].decode("latin-1"),
            }
        except Exception as e:
            report.codes[outcomeLabel(e)] += 1
        finally:
            writer.transport.abort()


ATTACKS: dict[str, Callable[[argparse.Namespace, Report], Awaitable[None]]] = {
    "flood": flood,
    "idle": idle,
    "slowloris": slowloris,
    "body": body,
    "guess": guess,
    "churn": churn,
    "junk": junk,
    "newline": newline,
    "logflood": logflood,
    "http": http,
}


def parseArgs(argv: list[str] | None) -> argparse.Namespace:
    """
    The command line.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("attack", choices=sorted(ATTACKS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", default="127.0.0.2", help="the attacker's address")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--bound", type=float, default=30.0, help="time bound (s)")
    p.add_argument("--count", type=int, default=0, help="0: the attack's own")
    p.add_argument("--interval", type=float, default=3.0)
    p.add_argument("--target", default="alice", help="the account guessed at")
    p.add_argument("--gs-port", dest="gsPort", type=int, default=0)
    return p.parse_args(argv)


async def run(a: argparse.Namespace) -> dict[str, Any]:
    """
    Run one attack within its time bound (plus a margin) and return its
    report; a failure of the attack itself is reported, not raised.
    """
    report = Report()
    started = mono()
    try:
        await asyncio.wait_for(ATTACKS[a.attack](a, report), a.bound + a.duration + 60)
    except Exception as e:
        report.note(f"attack failed: {outcomeLabel(e)}: {e!r}"[:300])
        if not report.codes:
            report.codes[f"attack failed: {outcomeLabel(e)}"] += 1
    report.stats["attack_seconds"] = round(mono() - started, 1)
    return report.asDict()


def main(argv: list[str] | None = None) -> int:
    """
    Run the attack named on the command line and print its JSON report.
    """
    a = parseArgs(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(run(a))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
