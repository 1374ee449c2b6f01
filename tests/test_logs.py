# -*- test-case-name: tests.test_logs -*-
"""
Tests of L{aphelion.logs}, the JSON-lines observer of C{twistd --logger
aphelion.logs.json}, and of how a game server's JSON events come back into
the AuthProxy's log (L{aphelion.control.process.ChildProtocol}).
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    capturedLogs,
    eventAsJSON,
    formatEvent,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from aphelion import logs
from aphelion.control.process import ChildProtocol
from aphelion.control.servers import GameServer


class Opaque:
    """
    A value JSON cannot hold.
    """

    def __str__(self) -> str:
        return "opaque!"


class JSONObserverTests(SynchronousTestCase):
    """
    L{logs.json} and L{logs.JSONLinesObserver}.
    """

    def setUp(self) -> None:
        self.out = io.StringIO()
        self.observer = logs.json(self.out)
        self.log = Logger(namespace="aphelion.test", observer=self.observer)

    def lines(self) -> list[dict[str, Any]]:
        """
        Each line written, parsed.
        """
        text = self.out.getvalue()
        self.assertTrue(text.endswith("\n"))
        return [json.loads(line) for line in text.splitlines()]

    def test_interface(self) -> None:
        """
        L{logs.json} makes an L{ILogObserver}, as twistd's --logger expects.
        """
        self.assertTrue(verifyObject(ILogObserver, logs.json()))

    def test_onePerLine(self) -> None:
        """
        Each event is one JSON object on its own line, with time, level,
        namespace, the formatted text and its own fields.
        """
        self.log.info(
            "session {hint} seated on {serverId}", hint="c831", serverId="gs1"
        )
        self.log.warn("closing: {code} {reason}", code=4006, reason="bad\nline")
        first, second = self.lines()
        self.assertEqual(first["level"], "info")
        self.assertEqual(first["namespace"], "aphelion.test")
        self.assertEqual(first["text"], "session c831 seated on gs1")
        self.assertEqual((first["hint"], first["serverId"]), ("c831", "gs1"))
        self.assertIsInstance(first["time"], float)
        self.assertEqual(second["level"], "warn")
        self.assertEqual(second["code"], 4006)
        self.assertEqual(second["reason"], "bad\nline")

    def test_secretsLeftOut(self) -> None:
        """
        Fields named as secrets are not written, at the top or nested;
        hints are; bytes never are.
        """
        self.log.info(
            "login",
            token="ab" * 32,
            password="hunter2",
            ticketText="t",
            credentials="c",
            sharedSecret="s",
            tokenHint="abab",
            extra={"password": "hunter2", "ok": 1},
            raw=b"\x01" * 32,
        )
        [line] = self.lines()
        text = self.out.getvalue()
        for secret in ("hunter2", "ab" * 32):
            self.assertNotIn(secret, text)
        for key in ("token", "password", "ticketText", "credentials", "sharedSecret"):
            self.assertNotIn(key, line)
        self.assertEqual(line["tokenHint"], "abab")
        self.assertEqual(line["extra"], {"ok": 1})
        self.assertEqual(line["raw"], "<32 bytes>")

    def test_unserialisable(self) -> None:
        """
        Values JSON cannot hold are written as their text; tuples and sets
        as arrays.
        """
        self.log.info("x {thing}", thing=Opaque(), pair=(1, "a"), level2=LogLevel.warn)
        [line] = self.lines()
        self.assertEqual(line["text"], "x opaque!")
        self.assertEqual(line["thing"], "opaque!")
        self.assertEqual(line["pair"], [1, "a"])
        self.assertIsInstance(line["level2"], str)

    def test_failure(self) -> None:
        """
        A logged failure adds its traceback as C{failure}.
        """
        self.log.failure("it broke", Failure(ZeroDivisionError("no")))
        [line] = self.lines()
        self.assertEqual(line["level"], "critical")
        self.assertIn("ZeroDivisionError", line["failure"])

    def test_isSecretKey(self) -> None:
        """
        L{logs.isSecretKey} names secrets, not hints.
        """
        for key in ("token", "controlToken", "password", "secret", "ticket", "Cookie"):
            self.assertTrue(logs.isSecretKey(key), key)
        for key in ("tokenHint", "hint", "playerId", "serverId", "code"):
            self.assertFalse(logs.isSecretKey(key), key)


class ChildEventTests(SynchronousTestCase):
    """
    A spawned game server's JSON events are logged again by the AuthProxy,
    with its server id.
    """

    def setUp(self) -> None:
        self.protocol = ChildProtocol(
            GameServer("gs2", b"\x00" * 32),
            listening=lambda server, port: None,
            failed=lambda server: None,
            exited=lambda server, reason: None,
        )

    def childLine(self, **fields: Any) -> bytes:
        """
        One line of the child's C{--log-json} standard error.
        """
        event = {
            "log_format": "player {playerId} joined ({count}/64)",
            "log_namespace": "aphelion.games.chat.Chat",
            "log_level": LogLevel.info,
            "log_time": 1234.5,
            **fields,
        }
        return b"\x1e" + eventAsJSON(event).encode() + b"\n"

    def test_jsonEvent(self) -> None:
        """
        The event keeps its namespace, level, time and fields, gains
        C{serverId}, and its text is prefixed with C{[gs2]}; in JSON lines
        it is one line with those fields.
        """
        out = io.StringIO()
        with capturedLogs() as events:
            self.protocol.errReceived(self.childLine(playerId="alice", count=1))
        [event] = events
        self.assertEqual(formatEvent(event), "[gs2] player alice joined (1/64)")
        self.assertEqual(event["log_namespace"], "aphelion.games.chat.Chat")
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(event["log_time"], 1234.5)
        logs.json(out)(event)
        line = json.loads(out.getvalue())
        self.assertEqual(line["serverId"], "gs2")
        self.assertEqual(line["playerId"], "alice")
        self.assertEqual(line["namespace"], "aphelion.games.chat.Chat")

    def test_levelKept(self) -> None:
        """
        A warning or a failure of the game server stays one in the
        AuthProxy's log, traceback included.
        """
        with capturedLogs() as events:
            self.protocol.errReceived(
                self.childLine(playerId="x", count=1, log_level=LogLevel.warn)
            )
            self.protocol.errReceived(
                self.childLine(
                    playerId="x",
                    count=1,
                    log_level=LogLevel.critical,
                    log_failure=Failure(ZeroDivisionError("no")),
                )
            )
        self.assertEqual(
            [e["log_level"] for e in events], [LogLevel.warn, LogLevel.critical]
        )
        out = io.StringIO()
        logs.json(out)(events[1])
        self.assertIn("ZeroDivisionError", json.loads(out.getvalue())["failure"])
        # The failure, restored from the child's JSON, reached trial's log too.
        self.assertEqual(len(self.flushLoggedErrors()), 1)

    def test_splitAndText(self) -> None:
        """
        Events split across reads are whole once their newline arrives; a
        line that is not JSON is logged as text with the server id.
        """
        line = self.childLine(playerId="bob", count=2)
        with capturedLogs() as events:
            self.protocol.errReceived(line[:10])
            self.assertEqual(events, [])
            self.protocol.errReceived(line[10:] + b"Traceback (most recent\n{oops\n")
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "[gs2] player bob joined (2/64)",
                "[gs2] Traceback (most recent",
                "[gs2] {oops",
            ],
        )
        self.assertEqual(events[1]["serverId"], "gs2")

    def test_newlineEscaped(self) -> None:
        """
        A newline in the child's text cannot start a forged line.
        """
        with capturedLogs() as events:
            self.protocol.errReceived(
                self.childLine(playerId="a\n[gs1] forged", count=1)
            )
        [event] = events
        self.assertEqual(len(formatEvent(event).splitlines()), 1)


class RelayedEventTests(SynchronousTestCase):
    """
    L{logs.relayedEvent}: a child's event made ready to be logged again.
    """

    def test_legacyKeysDropped(self) -> None:
        """
        The keys that old-style observers act on (a Python warning's among
        them) are left out, the child's own fields are kept, and the tag
        names the child.
        """
        event = {
            "log_format": "{what} happened",
            "log_level": LogLevel.warn,
            "log_namespace": "games.arena",
            "log_time": 12.5,
            "what": "something",
            "warning": "DeprecationWarning",
            "category": "DeprecationWarning",
            "filename": "x.py",
            "lineno": 3,
            "isError": 1,
        }
        again = logs.relayedEvent(
            event, "serverId", "gs1", "[{serverId}]", "aphelion.game.child"
        )
        for key in ("warning", "category", "filename", "lineno", "isError"):
            self.assertNotIn(key, again)
        self.assertEqual(again["what"], "something")
        self.assertEqual(again["serverId"], "gs1")
        self.assertEqual(again["log_level"], LogLevel.warn)
        self.assertEqual(again["log_namespace"], "games.arena")
        self.assertEqual(formatEvent(again), "[gs1] something happened")

    def test_unknownLevel(self) -> None:
        """
        An event whose level is not a L{LogLevel} is logged again at info,
        in the given namespace when it has none.
        """
        again = logs.relayedEvent(
            {"log_format": "x", "log_level": "loud"},
            "worker",
            2,
            "[worker {worker}]",
            "aphelion.workers",
        )
        self.assertEqual(again["log_level"], LogLevel.info)
        self.assertEqual(again["log_namespace"], "aphelion.workers")
        self.assertEqual(formatEvent(again), "[worker 2] x")


class ChildLinesTests(SynchronousTestCase):
    """
    L{logs.childLines}: a child's output split into events and lines.
    """

    def test_split(self) -> None:
        """
        A JSON event line (with or without the record separator) is read
        back as an event, any other line is text, and an unfinished line is
        kept for the next call.
        """
        line = eventAsJSONLine({"log_format": "hello {who}", "who": "you"})
        found, tail = logs.childLines(b"", b"\x1e" + line + b"\nTraceback\n{not js")
        self.assertEqual(len(found), 2)
        event, text = found
        assert isinstance(event, dict)
        self.assertEqual(formatEvent(event), "hello you")
        self.assertEqual(text, "Traceback")
        self.assertEqual(tail, b"{not js")
        found, tail = logs.childLines(tail, b"on\n")
        self.assertEqual((found, tail), (["{not json"], b""))

    def test_longLineDropped(self) -> None:
        """
        An unfinished line longer than L{logs.CHILD_LINE_LIMIT} is dropped.
        """
        found, tail = logs.childLines(b"", b"x" * (logs.CHILD_LINE_LIMIT + 1))
        self.assertEqual((found, tail), ([], b""))


def eventAsJSONLine(event: dict[str, Any]) -> bytes:
    """
    C{event} as Twisted's JSON file observer writes it, without the newline.
    """
    return eventAsJSON(event).encode("utf-8")
