# -*- test-case-name: tests.test_cli -*-
"""
Tests of L{aphelion.cli}: the C{aphelion} command run in-process against a
real server on loopback.
"""

from __future__ import annotations

import base64
import json
import re
from io import StringIO
from typing import Any, cast

from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from aphelion.auth import (
    MemoryReplayCache,
    PlayerIdCredentials,
    PlayerIdentity,
    TicketChecker,
    decodeAvatarId,
)
from aphelion.cli import COMMANDS, Options, PingOptions, run
from aphelion.config import Config
from aphelion.service import build
from aphelion.web import makeSite
from aphelion.websocket import AphelionServerFactory

LINE = re.compile(
    r"^ws://127\.0\.0\.1:\d+/aphelion: rtt \d+\.\d\d ms, 0 players, 0 playing$"
)


class SilentProtocol(Protocol):
    """
    Accepts a TCP connection and never answers.
    """

    def connectionMade(self) -> None:
        """
        Note the connection on the factory.
        """
        self.lost: Deferred[None] = Deferred()
        self.factory.connected.append(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Fire L{lost}.
        """
        self.lost.callback(None)


class PingCommandTests(TestCase):
    """
    C{aphelion ping} against a server listening on 127.0.0.1, port 0.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = cast(Any, reactor)
        # A session timeout of 0 expires each session in the turn after its
        # last connection closed, so that none outlives a test.
        config = Config(listen=(), sessionTimeout=0.0)
        service: Any = build(config, reactor)
        self.factory: AphelionServerFactory = service.factory
        self.registry: Any = self.factory.registry
        site = makeSite(self.factory, config, self.reactor)
        port = self.reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.serverConnectionsGone)
        self.addCleanup(port.stopListening)
        self.url = f"ws://127.0.0.1:{port.getHost().port}/aphelion"

    async def serverConnectionsGone(self) -> None:
        """
        Let the reactor run until the server has seen every connection close.
        """
        for _ in range(200):
            if not self.factory.connections and not len(self.registry):
                break
            await deferLater(self.reactor, 0.01, lambda: None)
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(len(self.registry), 0)

    async def aphelion(self, *argv: str) -> tuple[int, str, str]:
        """
        Run C{aphelion argv} on the reactor.

        :return: the exit status, the standard output and the standard error.
        """
        out, err = StringIO(), StringIO()
        status = await run(self.reactor, argv, out, err)
        return status, out.getvalue(), err.getvalue()

    async def test_ping(self) -> None:
        """
        One ping prints one line with the round trip and the counts, and
        exits 0.
        """
        status, out, err = await self.aphelion("ping", self.url)
        self.assertEqual((status, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(len(lines), 1)
        self.assertRegex(lines[0], LINE)
        self.assertTrue(lines[0].startswith(self.url + ": "))

    async def test_count(self) -> None:
        """
        C{--count} pings that many times, one line each; options may follow
        the URL.
        """
        status, out, err = await self.aphelion("ping", self.url, "--count", "3", "-i0")
        self.assertEqual((status, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(len(lines), 3)
        for line in lines:
            self.assertRegex(line, LINE)

    async def test_refused(self) -> None:
        """
        A refused connection prints the error on standard error and exits 1.
        """
        port = self.reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        number = port.getHost().port
        await port.stopListening()
        url = f"ws://127.0.0.1:{number}/aphelion"
        status, out, err = await self.aphelion("ping", url)
        self.assertEqual((status, out), (1, ""))
        self.assertIn(url, err)
        self.assertIn("refused", err)

    async def test_closed(self) -> None:
        """
        A server's close prints the close code and reason, and exits 1.
        """
        status, out, err = await self.aphelion(
            "ping", "--protocol-version", "9", self.url
        )
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(
            err, f"{self.url}: closed with 4002: protocol version too new\n"
        )

    async def test_timeout(self) -> None:
        """
        A server that never answers: after C{--timeout} the error is printed
        and the exit status is 1.
        """
        silent = Factory.forProtocol(SilentProtocol)
        silent.connected = []  # type: ignore[attr-defined]
        port = self.reactor.listenTCP(0, silent, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"ws://127.0.0.1:{port.getHost().port}/aphelion"
        status, out, err = await self.aphelion("ping", "--timeout", "0.05", url)
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err, f"{url}: no answer within 0.05 s\n")
        for conn in silent.connected:  # type: ignore[attr-defined]
            await conn.lost


class UsageTests(TestCase):
    """
    Bad command lines exit 2 with the usage on standard error.
    """

    async def usage(self, *argv: str) -> str:
        """
        Run C{aphelion argv}, expect status 2 and no output.

        :return: the standard error.
        """
        out, err = StringIO(), StringIO()
        status = await run(None, argv, out, err)
        self.assertEqual((status, out.getvalue()), (2, ""))
        return err.getvalue()

    async def test_noCommand(self) -> None:
        """
        A command is required.
        """
        self.assertIn("aphelion: choose a command", await self.usage())

    async def test_badURL(self) -> None:
        """
        C{ping} takes a ws:// or wss:// URL.
        """
        err = await self.usage("ping", "http://example.com/")
        self.assertIn("not a ws:// or wss:// URL", err)
        self.assertIn("--count", err)

    async def test_badCount(self) -> None:
        """
        C{--count} must be positive.
        """
        self.assertIn(
            "must be positive", await self.usage("ping", "-c", "0", "ws://x/")
        )

    async def test_chatNeedsId(self) -> None:
        """
        C{chat} needs C{--id}.
        """
        self.assertIn("--id is required", await self.usage("chat", "ws://x/"))

    async def test_ticketNeedsSecret(self) -> None:
        """
        C{ticket} without a secret file is refused with its usage.
        """
        out, err = StringIO(), StringIO()
        status = await run(None, ["ticket", "--player", "bob"], out, err)
        self.assertNotEqual(status, 0)
        self.assertEqual(out.getvalue(), "")

    async def test_unknownOption(self) -> None:
        """
        An unknown option is a usage error, wherever it stands.
        """
        self.assertIn("--bogus", await self.usage("ping", "ws://x/", "--bogus"))

    def test_optionsAfterArguments(self) -> None:
        """
        Options are parsed before and after the positional URL.
        """
        options = PingOptions()
        options.parseOptions(["-c", "2", "ws://h:1/p", "--timeout=3", "-i", "0.5"])
        self.assertEqual(
            (options["url"], options["count"], options["timeout"]),
            ("ws://h:1/p", 2, 3.0),
        )
        self.assertEqual(options["interval"], 0.5)

    async def test_missingURL(self) -> None:
        """
        C{ping} needs its URL.
        """
        self.assertIn("aphelion:", await self.usage("ping"))

    def test_commandsListed(self) -> None:
        """
        Every command of L{COMMANDS} is a subcommand of L{Options}.
        """
        self.assertEqual(
            [c[0] for c in Options.subCommands], [c.name for c in COMMANDS]
        )
        self.assertIs(
            dict((c[0], c[2]) for c in Options.subCommands)["ping"], PingOptions
        )


class TicketCommandTests(TestCase):
    """
    C{aphelion ticket}, run as the console runs it.
    """

    def setUp(self) -> None:
        self.secret = b"0123456789abcdef0123456789abcdef"
        self.secretFile = self.mktemp()
        with open(self.secretFile, "wb") as f:
            f.write(self.secret + b"\n")

    async def aphelion(self, *argv: str) -> tuple[int, str, str]:
        """
        Run C{aphelion argv}.

        :return: the exit status, the standard output and the standard error.
        """
        out, err = StringIO(), StringIO()
        status = await run(None, argv, out, err)
        return status, out.getvalue(), err.getvalue()

    async def test_output(self) -> None:
        """
        C{aphelion ticket} prints one line, the ticket, as the operations
        page shows it: it carries the player, C{iat}, an C{exp} C{--ttl}
        seconds later and a random C{jti}, and a checker of one-time tickets
        accepts it once.
        """
        status, out, err = await self.aphelion(
            "ticket",
            "--secret-file",
            self.secretFile,
            "--player",
            "alice",
            "--name",
            "Alice",
            "--ttl",
            "600",
            "--attribute",
            "team=red",
        )
        self.assertEqual((status, err), (0, ""))
        self.assertRegex(out, r"^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}\n$")
        ticket = out.strip()
        payload = ticket.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
        self.assertEqual(sorted(claims), ["attrs", "exp", "iat", "jti", "name", "sub"])
        self.assertEqual(claims["exp"] - claims["iat"], 600)
        self.assertRegex(claims["jti"], r"^[A-Za-z0-9_-]{22}$")
        clock = Clock()
        clock.advance(claims["iat"])
        checker = TicketChecker(
            self.secret, clock, replayCache=MemoryReplayCache(clock)
        )
        avatarId = await checker.requestAvatarId(PlayerIdCredentials(ticket))
        assert isinstance(avatarId, bytes)
        self.assertEqual(
            decodeAvatarId(avatarId), PlayerIdentity("alice", "Alice", {"team": "red"})
        )
        with capturedLogs():
            self.failureResultOf(
                checker.requestAvatarId(PlayerIdCredentials(ticket)), UnauthorizedLogin
            )

    async def test_controlCharacters(self) -> None:
        """
        A player id with a control character is a usage error: exit 2, no
        ticket.
        """
        status, out, err = await self.aphelion(
            "ticket", "--secret-file", self.secretFile, "--player", "bob\nforged"
        )
        self.assertEqual((status, out), (2, ""))
        self.assertIn("--player may not hold control characters", err)
