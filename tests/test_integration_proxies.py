# -*- test-case-name: tests.test_integration_proxies -*-
"""
Integration tests of the reverse-proxy configurations of the operations
guide, C{deploy/nginx/aphelion.conf} and C{deploy/varnish/aphelion.vcl}, run
by the real C{nginx} and C{varnishd} in front of a real C{twistd -n
aphelion --trust-forwarded-for}: a player logs in and chats through each,
and aphelion sees the client's address from C{X-Forwarded-For}.

The client reaches the proxy over C{127.0.0.1} while the proxy reaches
aphelion over C{::1}, so the address aphelion logs tells which one it used.
(Not the other way round: Autobahn's client sends an IPv6 host without its
brackets in C{Host}, which nginx rightly refuses.)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase

from aphelion.client import connect
from aphelion.codes import AphelionProtocol
from tests.test_integration_lifecycle import (
    chatRoundTrip,
    seatedPlayer,
    startAphelion,
    waitFor,
    within,
)

reactor: Any = _reactor

DEPLOY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy"
)
NGINX = "/usr/sbin/nginx"
VARNISHD = "/usr/sbin/varnishd"


def templated(path: str, replacements: Mapping[str, str]) -> str:
    """
    The text of a deploy file with each C{old: new} of C{replacements}
    made; each C{old} must be there exactly once, so that a change of the
    file that the test no longer fits fails loudly.
    """
    with open(path) as f:
        text = f.read()
    for old, new in replacements.items():
        if text.count(old) != 1:
            raise AssertionError(f"{path}: {old!r} is not there exactly once")
        text = text.replace(old, new)
    return text


def freePort() -> int:
    """
    A TCP port free on C{127.0.0.1} now (for a server binary that needs a
    number).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess(ProcessProtocol):
    """
    A proxy server binary: its output and its end.
    """

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        """
        Keep the output, for failure messages.
        """
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        Fire L{ended}.
        """
        self.ended.callback(None)


async def portOpen(port: int, process: ServerProcess, seconds: float = 30) -> None:
    """
    Wait until something accepts on C{127.0.0.1:port}.
    """
    for _ in range(int(seconds / 0.05)):
        if process.ended.called:
            raise AssertionError("the proxy ended:\n" + process.output.decode())
        try:
            protocol = await connectProtocol(
                TCP4ClientEndpoint(reactor, "127.0.0.1", port), Protocol()
            )
        except ConnectError:
            await deferLater(reactor, 0.05, lambda: None)
            continue
        assert protocol.transport is not None
        protocol.transport.loseConnection()
        return
    raise AssertionError("the proxy did not listen:\n" + process.output.decode())


def startServer(test: TestCase, argv: Sequence[str]) -> ServerProcess:
    """
    Run a server binary in the foreground; stop it by its pid in cleanup.
    """
    if not os.access(argv[0], os.X_OK):
        raise SkipTest(f"{argv[0]} is not installed (CI installs it)")
    process = ServerProcess()
    transport = reactor.spawnProcess(process, argv[0], list(argv), env=dict(os.environ))

    async def stop() -> None:
        if process.ended.called:
            return
        transport.signalProcess("TERM")
        try:
            await within(process.ended, 15)
        except Exception:
            transport.signalProcess("KILL")
            await within(process.ended, 5)

    test.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return process


class ReverseProxyTests(TestCase):
    """
    The deploy configurations, run by the real proxies.
    """

    async def startBackend(self) -> tuple[Any, int]:
        """
        A C{twistd -n aphelion} that trusts C{X-Forwarded-For}, with one
        chat game server ready.
        """
        process = startAphelion(
            self,
            ["--auth", "dev", "--trust-forwarded-for", "--game-servers", "1"],
            listen=r"tcp6:0:interface=\:\:1",
        )
        port = await within(process.port, 30)
        await waitFor(lambda: b"game server gs1 ready" in process.output)
        return process, port

    async def playThrough(self, aphelion: Any, port: int) -> None:
        """
        Through the proxy on C{127.0.0.1:port}: a player is seated and
        chats; a connection that breaks the rules is closed, and aphelion's
        log names the client's address (C{127.0.0.1}), not the proxy's
        (C{::1}).
        """
        url = f"ws://127.0.0.1:{port}/aphelion"
        client, answer = await seatedPlayer(self, url, "alice")
        self.assertEqual(answer.connected.server_id, "gs1")
        await chatRoundTrip(self, client, "alice", "hello through the proxy")
        rude = await within(connect(reactor, url, AphelionProtocol.GAME))
        rude.sendMessage(b"text frames are refused", isBinary=False)
        code, _ = await within(rude.whenClosed())
        self.assertEqual(code, 1003)
        await waitFor(lambda: b"closing connection from 127.0.0.1 " in aphelion.output)
        self.assertNotIn(b"closing connection from ::1", aphelion.output)

    async def test_nginx(self) -> None:
        """
        C{deploy/nginx/aphelion.conf} in a minimal nginx.
        """
        aphelion, backend = await self.startBackend()
        port = freePort()
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        server = templated(
            os.path.join(DEPLOY, "nginx", "aphelion.conf"),
            {
                "listen 443 ssl;": f"listen 127.0.0.1:{port};",
                "listen [::]:443 ssl;": "",
                "ssl_certificate     /etc/nginx/tls/play.example.com.pem;": "",
                "ssl_certificate_key /etc/nginx/tls/play.example.com.key;": "",
                "server 127.0.0.1:8080;": f"server [::1]:{backend};",
            },
        )
        with open(os.path.join(tmp, "aphelion.conf"), "w") as f:
            f.write(server)
        temps = "\n".join(
            f"    {kind}_temp_path {tmp}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(
                f"worker_processes 1;\n"
                f"{'user root;' if os.getuid() == 0 else ''}\n"
                f"pid {tmp}/nginx.pid;\n"
                "error_log stderr;\n"
                "events { worker_connections 64; }\n"
                "http {\n    access_log off;\n"
                f"{temps}\n    include {tmp}/aphelion.conf;\n}}\n"
            )
        nginx = startServer(
            self,
            [
                NGINX,
                "-e",
                "stderr",
                "-p",
                tmp,
                "-c",
                f"{tmp}/nginx.conf",
                "-g",
                "daemon off;",
            ],
        )
        await portOpen(port, nginx)
        await self.playThrough(aphelion, port)

    async def test_varnish(self) -> None:
        """
        C{deploy/varnish/aphelion.vcl} in varnishd.
        """
        aphelion, backend = await self.startBackend()
        port = freePort()
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        vcl = templated(
            os.path.join(DEPLOY, "varnish", "aphelion.vcl"),
            {
                '.host = "127.0.0.1";': '.host = "::1";',
                '.port = "8080";': f'.port = "{backend}";',
            },
        )
        with open(os.path.join(tmp, "aphelion.vcl"), "w") as f:
            f.write(vcl)
        varnish = startServer(
            self,
            [
                VARNISHD,
                "-F",
                # No jail: the test may run as root, without varnish's users.
                "-j",
                "none",
                "-n",
                f"{tmp}/work",
                "-a",
                f"127.0.0.1:{port}",
                "-T",
                "none",
                "-f",
                f"{tmp}/aphelion.vcl",
                "-s",
                "malloc,32m",
            ],
        )
        await portOpen(port, varnish)
        await self.playThrough(aphelion, port)
