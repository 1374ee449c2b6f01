"""
The cost of a cluster (Part 5): seats per second with the Redis registry
against the memory registry, Redis operations per seat and per relayed
message, and the handover time.

Everything runs in this process on the real reactor, over loopback: a
throwaway C{redis-server} (C{tests/redisserver.py}), AuthProxies built with
C{aphelion.service.build} (two spawned chat game servers each, C{--auth
dev}) and the Python client.

- **seats/s**: C{--seats} clients, C{--concurrency} at a time, each opens
  a game connection, authenticates, waits for C{connected} and
  C{game_config}, and closes (the nodes run with a session timeout of 0,
  so that the session ends and its seat is freed). The registries take
  turns over C{--rounds} rounds; the figure of each is the total over its
  rounds.
- **Redis operations per seat**: the commands the node sent during its
  seating rounds, over the seats (the node's once-a-second refresh is
  counted too, and named apart).
- **Redis operations per relayed message**: two seated chat players, one
  says C{--messages} lines that both hear; the node's commands meanwhile
  (with its timers slowed so that only the relay could cause any).
- **handover**: C{--handovers} times, a player seated on node A closes and
  reconnects to node B with its token; the time from the reconnection to
  the 32-byte reply, and to the first game message (its own chat line, said
  at once, heard back) through the resumed seat. Needs the game side of
  Part 5 (the seat hold); without it the figures are of a fresh seat.

Results go to stdout and C{benchmarks/results/<UTC time>-cluster.json}.

    .venv/bin/python benchmarks/cluster.py
    .venv/bin/python benchmarks/cluster.py --seats 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(REPO))

from twisted.internet.defer import Deferred, gatherResults  # noqa: E402
from twisted.internet.task import deferLater, react  # noqa: E402

from aphelion.auth import DevChecker  # noqa: E402
from aphelion.client import AphelionClientProtocol, connect  # noqa: E402
from aphelion.codes import AphelionProtocol  # noqa: E402
from aphelion.config import Config  # noqa: E402
from aphelion.control.spawn import ServerState  # noqa: E402
from aphelion.proto import chat_pb2  # noqa: E402
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate  # noqa: E402
from aphelion.service import AuthProxyService, build  # noqa: E402
from tests.redisserver import RedisServer  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def sleep(reactor: Any, seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


class Node:
    def __init__(self, service: AuthProxyService, url: str, port: Any) -> None:
        self.service = service
        self.url = url
        self.port = port

    @property
    def operations(self) -> int:
        client = getattr(self.service.registry, "client", None)
        return client.operations if client is not None else 0

    async def stop(self) -> None:
        await self.port.stopListening()
        await self.service.stopService()


async def startNode(reactor: Any, registry: str, **settings: Any) -> Node:
    config = Config(
        listen=(),
        gameServers=2,
        checkers=(DevChecker(),),
        registry=registry,
        exempt=("127.0.0.0/8",),
        seating="fill",
        sessionTimeout=60,
    )
    service = build(replace(config, **settings), reactor)
    service.startService()
    port = reactor.listenTCP(0, service.site, interface="127.0.0.1")
    node = Node(service, f"ws://127.0.0.1:{port.getHost().port}/aphelion", port)
    for _ in range(1000):
        servers = service.monitor.servers.values()
        client = getattr(service.registry, "client", None)
        if all(s.state is ServerState.READY for s in servers) and (
            client is None or client.up
        ):
            return node
        await sleep(reactor, 0.02)
    raise RuntimeError("the node did not get ready")


async def login(
    reactor: Any, url: str, playerId: str, token: bytes | None = None
) -> AphelionClientProtocol:
    client = await connect(reactor, url, AphelionProtocol.GAME, token)
    client.sendPayload(C2S(authenticate=Authenticate(id=playerId)).SerializeToString())
    answer = S2C.FromString(await client.nextPayload())
    if not answer.HasField("connected"):
        raise RuntimeError(f"not seated: {answer}")
    await client.nextPayload()  # game_config
    return client


async def seatMany(
    reactor: Any, node: Node, count: int, concurrency: int, tag: str
) -> float:
    started = time.perf_counter()
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            client = await login(reactor, node.url, f"{tag}-{i}")
            client.closeWith(1000, "done")
            await client.whenClosed()

    await gatherResults([Deferred.fromCoroutine(worker()) for _ in range(concurrency)])
    return time.perf_counter() - started


def say(text: str) -> bytes:
    return chat_pb2.C2S(say=chat_pb2.Say(text=text)).SerializeToString()


async def relayOps(reactor: Any, node: Node, messages: int) -> float:
    alice = await login(reactor, node.url, "relay-alice")
    bob = await login(reactor, node.url, "relay-bob")
    before = node.operations
    for i in range(messages):
        alice.sendPayload(say(f"line {i}"))
        if i % 100 == 99:
            for _ in range(100):
                await bob.nextPayload()
                await alice.nextPayload()
    for _ in range(messages % 100):
        await bob.nextPayload()
        await alice.nextPayload()
    used = node.operations - before
    for client in (alice, bob):
        client.closeWith(1000, "done")
    return used / messages


async def handovers(reactor: Any, a: Node, b: Node, count: int) -> dict[str, Any]:
    toReply: list[float] = []
    toMessage: list[float] = []
    for i in range(count):
        first = await login(reactor, a.url, f"handover-{i}")
        token = first.token
        first.closeWith(1000, "moving")
        await first.whenClosed()
        started = time.perf_counter()
        again = await connect(reactor, b.url, AphelionProtocol.GAME, token)
        replied = time.perf_counter()
        assert again.token == token
        again.sendPayload(say("here"))
        while True:
            payload = await again.nextPayload()
            try:
                if chat_pb2.S2C.FromString(payload).said.text == "here":
                    break
            except Exception:
                pass
        done = time.perf_counter()
        toReply.append((replied - started) * 1000)
        toMessage.append((done - started) * 1000)
        again.closeWith(1000, "done")
        await again.whenClosed()
    return {
        "reply_ms": percentiles(toReply),
        "first_game_message_ms": percentiles(toMessage),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 2)}


async def main(reactor: Any, args: argparse.Namespace) -> None:
    redis = RedisServer(reactor)
    await redis.start()
    try:
        results = await measure(reactor, args, redis)
    finally:
        await redis.cleanup()
    results["load_average"] = os.getloadavg()
    results["machine"] = platform.platform()
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stamp}-cluster.json").write_text(json.dumps(results, indent=2))


async def measure(
    reactor: Any, args: argparse.Namespace, redis: RedisServer
) -> dict[str, Any]:
    results: dict[str, Any] = {"seats": args.seats, "concurrency": args.concurrency}
    # Each seat's session ends when its client closes (no lingering), so
    # that the game servers' capacity is not the limit.
    memory = await startNode(reactor, "memory", sessionTimeout=0.0)
    clustered = await startNode(reactor, redis.url, sessionTimeout=0.0)
    seconds = {"memory": 0.0, "redis": 0.0}
    operations = 0
    for turn in range(args.rounds):
        for name, node in (("memory", memory), ("redis", clustered)):
            before = node.operations
            took = await seatMany(
                reactor, node, args.seats, args.concurrency, f"{name}{turn}"
            )
            seconds[name] += took
            if name == "redis":
                operations += node.operations - before
            log(f"round {turn} {name}: {args.seats / took:.0f} seats/s")
    total = args.seats * args.rounds
    results["seats_per_second"] = {k: round(total / v, 1) for k, v in seconds.items()}
    results["redis_vs_memory"] = round(seconds["memory"] / seconds["redis"], 3)
    results["redis_ops_per_seat"] = round(operations / total, 2)
    idle = clustered.operations
    await sleep(reactor, 2.0)
    results["redis_ops_per_second_idle"] = round((clustered.operations - idle) / 2, 1)
    await memory.stop()
    await clustered.stop()

    quiet = await startNode(reactor, redis.url, countsInterval=3600.0)
    results["redis_ops_per_relayed_message"] = await relayOps(
        reactor, quiet, args.messages
    )
    await quiet.stop()

    a = await startNode(reactor, redis.url)
    b = await startNode(reactor, redis.url, gameServers=0)
    for _ in range(200):
        if b.service.pool.shared:
            break
        await sleep(reactor, 0.05)
    results["handover"] = await handovers(reactor, a, b, args.handovers)
    await a.stop()
    await b.stop()
    return results


def logProblems() -> None:
    """
    Print the warnings and errors of the AuthProxies, so that a failing run
    says why.
    """
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])],
        redirectStandardIO=False,
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--seats", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--handovers", type=int, default=100)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    logProblems()
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, arguments)))
