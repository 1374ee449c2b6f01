# -*- test-case-name: tests.test_integration_haproxy -*-
"""
HAProxy in front of two AuthProxies, with the configuration the repository
ships (C{deploy/haproxy/aphelion.cfg}): a real C{haproxy} process, two
AuthProxies in this process listening with the C{haproxy:} endpoint prefix
(PROXY protocol v2), real chat game servers and real WebSocket clients.

The clients reach HAProxy over IPv6 loopback (C{::1}) while HAProxy reaches
the AuthProxies over IPv4 loopback: an AuthProxy that sees C{::1} as the
client's address (in its per-address limits and its connections) read it
from the PROXY header, and the peer port it sees is the client's own source
port, not HAProxy's.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from ipaddress import ip_address
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP6ClientEndpoint
from twisted.internet.error import ConnectError, ProcessExitedAlready
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase

from aphelion.auth import DevChecker
from aphelion.client import AphelionClientProtocol, ClosedError, connect
from aphelion.codes import AphelionProtocol
from aphelion.config import Config
from aphelion.control.spawn import ServerState
from aphelion.proto import chat_pb2
from aphelion.proto.game_pb2 import C2S, S2C, Authenticate, AuthenticateResponse
from aphelion.service import AuthProxyService, build
from tests.test_integration_system import waitFor, within

reactor: Any = _reactor

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "deploy",
    "haproxy",
    "aphelion.cfg",
)
CLIENT_TIMEOUT = 1.5
"""
The client and server timeouts the test gives HAProxy (30 s in the file),
in seconds:
an idle WebSocket outlives them only through C{timeout tunnel}.
"""


class HAProxyProcess(ProcessProtocol):
    """
    The C{haproxy -db} process: its output lines and its end.
    """

    def __init__(self) -> None:
        self.output: list[str] = []
        self.ended: Deferred[None] = Deferred()
        self._buffer = b""

    def outReceived(self, data: bytes) -> None:
        """
        Keep its log lines (it logs to standard output).
        """
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        self.output += [line.decode("utf-8", "replace") for line in lines]

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        It exited.
        """
        self.ended.callback(None)


async def freePort(interface: str) -> int:
    """
    A TCP port that was free a moment ago, for a server that needs a number.
    """
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface=interface)
    number: int = port.getHost().port
    await port.stopListening()
    return number


class HAProxyTests(TestCase):
    """
    Players log in and chat through HAProxy; the AuthProxies see their
    addresses through PROXY v2; a WebSocket outlives HAProxy's client
    timeout.
    """

    timeout = 120

    async def start(self, **settings: Any) -> None:
        """
        Two AuthProxies (with C{settings} in their config), then HAProxy in
        front of them.
        """
        if not os.access(HAPROXY, os.X_OK):
            raise SkipTest(f"no haproxy binary at {HAPROXY} (apt-get install haproxy)")
        self.proxies: list[AuthProxyService] = []
        ports = []
        for _ in range(2):
            port = await freePort("127.0.0.1")
            config = Config(
                listen=(f"haproxy:tcp:{port}:interface=127.0.0.1",),
                gameServers=1,
                checkers=(DevChecker(),),
                restartInitial=0.2,
                drainDeadline=2,
            )
            service = build(replace(config, **settings), reactor)
            service.startService()
            self.addCleanup(service.stopService)
            self.proxies.append(service)
            ports.append(port)
        await waitFor(self.allReady)
        self.front = await freePort("::1")
        await self.startHAProxy(ports)

    def allReady(self) -> bool:
        """
        Whether every game server of both AuthProxies is ready.
        """
        return all(
            server.state is ServerState.READY
            for proxy in self.proxies
            for server in proxy.monitor.servers.values()
        )

    async def startHAProxy(self, ports: list[int]) -> None:
        """
        Run haproxy with the shipped file (shorter client and server
        timeouts) until it accepts connections.
        """
        with open(CONFIG) as f:
            text = f.read()
        for name in ("client", "server"):
            text, count = re.subn(
                rf"timeout {name} \S+",
                f"timeout {name} {int(CLIENT_TIMEOUT * 1000)}ms",
                text,
            )
            self.assertEqual(count, 1, name)
        # Twice maxconn descriptors are needed; this box allows fewer.
        text, count = re.subn(r"maxconn \d+", "maxconn 1000", text)
        self.assertEqual(count, 1, "maxconn")
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        env = dict(os.environ)
        env.update(
            APHELION_FRONTEND=f"::1:{self.front}",
            APHELION_PROXY_A=f"127.0.0.1:{ports[0]}",
            APHELION_PROXY_B=f"127.0.0.1:{ports[1]}",
        )
        self.haproxy = HAProxyProcess()
        process = reactor.spawnProcess(
            self.haproxy, HAPROXY, [HAPROXY, "-f", path, "-db"], env=env
        )
        self.addCleanup(self.stopHAProxy, process)
        await self.frontOpen()

    async def stopHAProxy(self, process: Any) -> None:
        """
        Stop haproxy and wait for it to exit.
        """
        try:
            process.signalProcess("TERM")
        except ProcessExitedAlready:
            return
        await within(self.haproxy.ended, 10)

    async def frontOpen(self) -> None:
        """
        Wait until haproxy accepts connections (fail if it exits).
        """
        endpoint = TCP6ClientEndpoint(reactor, "::1", self.front)
        for _ in range(200):
            if self.haproxy.ended.called:
                raise AssertionError(
                    "haproxy exited:\n" + "\n".join(self.haproxy.output)
                )
            try:
                probe = await endpoint.connect(Factory.forProtocol(Protocol))
            except ConnectError:
                await deferLater(reactor, 0.05, lambda: None)
                continue
            assert probe.transport is not None
            probe.transport.loseConnection()
            return
        raise AssertionError("haproxy does not accept connections")

    async def seated(self, playerId: str) -> AphelionClientProtocol:
        """
        A client through haproxy, authenticated (dev auth) and seated.
        """
        client = await within(
            connect(reactor, f"ws://[::1]:{self.front}/aphelion", AphelionProtocol.GAME)
        )
        self.addCleanup(self.closeClient, client)
        client.sendPayload(
            C2S(authenticate=Authenticate(id=playerId)).SerializeToString()
        )
        answer = S2C.FromString(await within(client.nextPayload()))
        self.assertEqual(
            answer.authenticate_response.result, AuthenticateResponse.OK, answer
        )
        config = S2C.FromString(await within(client.nextPayload()))
        self.assertTrue(config.HasField("game_config"))
        return client

    async def closeClient(self, client: AphelionClientProtocol) -> None:
        """
        Close a client, if it is open, and wait for the close.
        """
        closed = client.whenClosed()
        client.closeWith(1000, "bye")
        await within(closed)

    def serving(self) -> AuthProxyService:
        """
        The one AuthProxy that holds connections now (source affinity puts
        every client of one address on one AuthProxy).
        """
        busy = [p for p in self.proxies if p.factory.connections]
        self.assertEqual(len(busy), 1, "connections on both AuthProxies")
        return busy[0]

    async def test_chatThroughHAProxy(self) -> None:
        """
        Two players log in and chat through haproxy; both land on the same
        AuthProxy (balance source).
        """
        await self.start()
        alice = await self.seated("alice")
        bob = await self.seated("bob")
        alice.sendPayload(
            chat_pb2.C2S(say=chat_pb2.Say(text="hello")).SerializeToString()
        )
        for client in (alice, bob):
            said = chat_pb2.S2C.FromString(await within(client.nextPayload()))
            self.assertEqual((said.said.player_id, said.said.text), ("alice", "hello"))
        self.assertEqual(len(self.serving().factory.connections), 2)

    async def test_clientAddressFromProxyHeader(self) -> None:
        """
        The AuthProxy's connection sees the client's address and source port
        (from the PROXY v2 header), not haproxy's; its per-address count is
        kept for that address, and the game server is told it.
        """
        await self.start()
        alice = await self.seated("alice")
        [connection] = list(self.serving().factory.connections)
        local = alice.transport.getHost()  # type: ignore[union-attr]
        peer = connection.transport.getPeer()
        self.assertEqual(
            (ip_address(peer.host), peer.port), (ip_address("::1"), local.port)
        )
        self.assertEqual(connection.remoteAddress, "::1")
        gate = self.serving().site.gate
        self.assertEqual(gate.connectionsFrom("::1"), 1)

    async def test_idleWebSocketSurvives(self) -> None:
        """
        A seated WebSocket left idle for longer than haproxy's client and
        server timeouts stays open (timeout tunnel) and still chats.
        """
        await self.start()
        alice = await self.seated("alice")
        await deferLater(reactor, CLIENT_TIMEOUT * 2.5, lambda: None)
        self.assertFalse(alice.whenClosed().called)
        alice.sendPayload(
            chat_pb2.C2S(say=chat_pb2.Say(text="still here")).SerializeToString()
        )
        said = chat_pb2.S2C.FromString(await within(alice.nextPayload()))
        self.assertEqual(said.said.text, "still here")

    async def test_perAddressLimitOnClientAddress(self) -> None:
        """
        The per-address connection limit applies to the client's address
        from the PROXY header, and the log line of a dropped connection
        names it: with one connection per address, a second client from
        C{::1} is dropped.
        """
        await self.start(connectionsPerAddress=1)
        await self.seated("alice")
        lines: list[str] = []

        def observe(event: LogEvent) -> None:
            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        # HAProxy answers 502 for the connection the AuthProxy dropped.
        failure = await self.assertFailure(
            within(
                connect(
                    reactor, f"ws://[::1]:{self.front}/aphelion", AphelionProtocol.GAME
                )
            ),
            ClosedError,
        )
        self.assertIn("502", str(failure))
        dropped = [line for line in lines if "dropped" in line]
        self.assertTrue(dropped, lines)
        self.assertIn("connection from ::1 dropped", dropped[0])
