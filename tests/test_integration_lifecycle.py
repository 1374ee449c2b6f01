# -*- test-case-name: tests.test_integration_lifecycle -*-
"""
Integration tests of the AuthProxy's life as an operator drives it: a real
C{twistd -n aphelion --config FILE} process, reloaded with C{SIGHUP} and
stopped with C{SIGTERM}, with real chat players on loopback sockets.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError, ProcessDone
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from aphelion.client import AphelionClientProtocol, connect
from aphelion.codes import AphelionProtocol
from aphelion.proto import chat_pb2
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate, AuthenticateResponse
from tests.test_integration_twistd import TwistdProcess, startTwistd

reactor: Any = _reactor

_CHILD_PID = re.compile(rb"spawned game server (\w+) \(pid (\d+)")


def within(d: Deferred[Any], seconds: float = 20.0) -> Deferred[Any]:
    """
    Fail C{d} if it has not fired within C{seconds}.
    """
    return d.addTimeout(seconds, reactor)


async def waitFor(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    """
    Poll C{predicate} every 20 ms until it holds; fail after C{seconds}.
    """
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"not within {seconds}s: {predicate}")


def startAphelion(
    test: TestCase,
    arguments: Sequence[str],
    twistdArguments: Sequence[str] = (),
    listen: str = "tcp:0:interface=127.0.0.1",
) -> TwistdProcess:
    """
    Start C{twistd [TWISTD_ARGS] -n aphelion --listen LISTEN ARGS}; stop
    it with SIGTERM (then SIGKILL) in cleanup, by its pid.
    """
    return startTwistd(test, *arguments, twistdArguments=twistdArguments, listen=listen)


def childPids(output: bytes) -> dict[str, int]:
    """
    The pid of each game server spawned, from the log.
    """
    return {m.group(1).decode(): int(m.group(2)) for m in _CHILD_PID.finditer(output)}


def alive(pid: int) -> bool:
    """
    Whether a process of this pid exists.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def seatedPlayer(
    test: TestCase, url: str, playerId: str
) -> tuple[AphelionClientProtocol, S2C]:
    """
    A chat player logged in with C{--auth dev} and seated; its
    C{game_config} is consumed. Closed in cleanup.
    """
    client = await within(connect(reactor, url, AphelionProtocol.GAME))

    async def close() -> None:
        client.closeWith(1000, "bye")
        await within(client.whenClosed())

    test.addCleanup(lambda: Deferred.fromCoroutine(close()))
    client.sendPayload(C2S(authenticate=Authenticate(id=playerId)).SerializeToString())
    answer = S2C.FromString(await within(client.nextPayload()))
    test.assertEqual(
        answer.authenticate_response.result, AuthenticateResponse.OK, answer
    )
    config = S2C.FromString(await within(client.nextPayload()))
    test.assertTrue(config.HasField("game_config"), config)
    return client, answer


async def chatRoundTrip(
    test: TestCase, client: AphelionClientProtocol, playerId: str, text: str
) -> None:
    """
    Say C{text} and hear it back from the chat room.
    """
    client.sendPayload(chat_pb2.C2S(say=chat_pb2.Say(text=text)).SerializeToString())
    while True:
        said = chat_pb2.S2C.FromString(await within(client.nextPayload())).said
        if said.text == text:
            test.assertEqual(said.player_id, playerId)
            return


class ReloadTests(TestCase):
    """
    C{SIGHUP} to a real C{twistd -n aphelion --config FILE}.
    """

    async def test_sighupKeepsPlayer(self) -> None:
        """
        After the file changes and the process gets SIGHUP, the log names
        each change (applied, or needing a restart), a new game server
        starts, and a seated player stays seated and chats on.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('auth = "dev"\ngame-servers = 1\nsession-timeout = 60\n')
        process = startAphelion(self, ["--config", path])
        port = await within(process.port, 30)
        url = f"ws://127.0.0.1:{port}/aphelion"
        await waitFor(lambda: b"game server gs1 ready" in process.output)
        client, _ = await seatedPlayer(self, url, "alice")
        with open(path, "w") as f:
            f.write(
                'auth = "dev"\ngame-servers = 2\nsession-timeout = 30\n'
                'path = "/elsewhere"\n'
            )
        os.kill(process.transport.pid, signal.SIGHUP)  # type: ignore[union-attr]
        await waitFor(lambda: b"game server gs2 ready" in process.output)
        log = process.output.decode()
        self.assertIn("reload: sessionTimeout: 60.0 -> 30.0", log)
        self.assertIn("reload: gameServers: 1 -> 2", log)
        self.assertIn("reload: path: '/aphelion' -> '/elsewhere' needs a restart", log)
        await chatRoundTrip(self, client, "alice", "still here")
        # A file that does not parse changes nothing and stops nothing.
        with open(path, "w") as f:
            f.write("game-servers = -1\n")
        os.kill(process.transport.pid, signal.SIGHUP)  # type: ignore[union-attr]
        await waitFor(lambda: b"reload refused" in process.output)
        self.assertIn(b": game-servers: --game-servers must be", process.output)
        await chatRoundTrip(self, client, "alice", "and still")


class TerminateTests(TestCase):
    """
    C{SIGTERM} to a real C{twistd -n aphelion}.
    """

    async def test_sigtermDrains(self) -> None:
        """
        On SIGTERM a seated player gets S2C{disconnect{1001}} then close
        1001, new connections are refused, the game servers are gone, and
        twistd exits with status 0 within the drain deadline.
        """
        process = startAphelion(
            self, ["--auth", "dev", "--game-servers", "1", "--drain-deadline", "3"]
        )
        port = await within(process.port, 30)
        url = f"ws://127.0.0.1:{port}/aphelion"
        await waitFor(lambda: b"game server gs1 ready" in process.output)
        client, _ = await seatedPlayer(self, url, "alice")
        [childPid] = childPids(process.output).values()
        self.assertTrue(alive(childPid))
        started = reactor.seconds()
        os.kill(process.transport.pid, signal.SIGTERM)  # type: ignore[union-attr]
        notice = S2C.FromString(await within(client.nextPayload()))
        self.assertEqual(notice.disconnect.code, 1001, notice)
        code, _reason = await within(client.whenClosed())
        self.assertEqual(code, 1001)
        with self.assertRaises(ConnectionRefusedError):
            await within(connect(reactor, url, AphelionProtocol.GAME))
        [reason] = await within(process.ended, 10)
        self.assertLess(reactor.seconds() - started, 3 + 2)
        self.assertTrue(reason.check(ProcessDone), (reason, process.output.decode()))
        self.assertFalse(alive(childPid))
        log = process.output.decode()
        self.assertIn("draining: SIGTERM", log)
        self.assertIn("Server Shut Down.", log)


class StdoutTwistd(TwistdProcess):
    """
    A C{twistd} child whose standard output is kept apart.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stdout = b""

    def outReceived(self, data: bytes) -> None:
        """
        Keep standard output, and look for the port as usual.
        """
        self.stdout += data
        super().outReceived(data)


class JSONLogTests(TestCase):
    """
    C{twistd --logger aphelion.logs.json -n aphelion}.
    """

    async def test_jsonLines(self) -> None:
        """
        Every line on standard output is one JSON object with time, level,
        namespace and text; a game server's own events arrive with its
        server id; no field holds a token.
        """
        process = StdoutTwistd()
        startTwistd(
            self,
            "--auth",
            "dev",
            twistdArguments=("--logger", "aphelion.logs.json"),
            process=process,
            stopSignal="KILL",
        )
        port = await within(process.port, 30)
        await waitFor(lambda: b"game server gs1 ready" in process.stdout)
        client, _ = await seatedPlayer(self, f"ws://127.0.0.1:{port}/aphelion", "alice")
        await chatRoundTrip(self, client, "alice", "hello")
        await waitFor(lambda: b"seated on gs1" in process.stdout)
        transport: Any = process.transport
        transport.signalProcess("TERM")
        await within(process.ended)
        lines = [json.loads(line) for line in process.stdout.decode().splitlines()]
        self.assertGreater(len(lines), 5)
        for line in lines:
            self.assertLessEqual({"time", "level", "namespace", "text"}, set(line))
            self.assertNotIn("token", line)
        # The game server's own events (its drain, here: it logs its
        # players' joins at debug only).
        fromChild = [
            line
            for line in lines
            if line.get("serverId") == "gs1"
            and line["namespace"].startswith("aphelion.game.")
        ]
        self.assertTrue(fromChild, process.stdout.decode())
        self.assertTrue(fromChild[0]["text"].startswith("[gs1] "))
        seated = [
            line
            for line in lines
            if line["text"]
            == f"session {line.get('hint')} ({line.get('playerId')}) seated on gs1"
        ]
        self.assertTrue(seated)
