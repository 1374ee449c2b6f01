# -*- test-case-name: tests.test_gateway -*-
"""
Tests of L{aphelion.gateway}: the game protocol of a session, with a real
registry and monitor, and recording stand-ins for connections and links.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from aphelion.auth import CheckerBusy
from aphelion.codes import CloseCode
from aphelion.control.spawn import GameServer, GameServerMonitor, ServerState
from aphelion.gateway import Gateway, Seat, SessionState
from aphelion.limits import Exemptions
from aphelion.proto.game_pb2 import (
    C2S,
    S2C,
    Authenticate,
    AuthenticateResponse,
    GameConfig,
    GameDetails,
)
from aphelion.session import MemorySessionRegistry, Session
from aphelion.testing import RecordingConnection
from aphelion.testing import RecordingPlayerLink as RecordingLink

R = AuthenticateResponse


@dataclass(frozen=True)
class Identity:
    """
    A player identity as a realm yields it.
    """

    playerId: str
    name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


def auth(playerId: str) -> bytes:
    """
    A C{C2S{authenticate}} payload.
    """
    return C2S(authenticate=Authenticate(id=playerId)).SerializeToString()


def s2c(payload: bytes) -> S2C:
    """
    Parse an S2C payload.
    """
    return S2C.FromString(payload)


class GatewayFixture(SynchronousTestCase):
    """
    A gateway with a real registry and monitor, recording connections and
    links. Mixed into test classes; has no tests of its own.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.registry = MemorySessionRegistry(clock=self.reactor)
        self.monitor = GameServerMonitor(
            reactor=self.reactor,
            game="aphelion.games.chat",
            count=2,
            makeControlFactory=lambda monitor, server: None,
        )
        for server in self.monitor.servers.values():
            server.state = ServerState.READY
            server.control = object()  # type: ignore[assignment]
            server.capacity = 10
            server.accepting = True
        self.links: list[RecordingLink] = []
        self.valid = {"alice", "bob"}
        self.gateway = Gateway(
            registry=self.registry,
            authenticator=self.authenticate,
            monitor=self.monitor,
            connectLink=self.connectLink,
        )

    def authenticate(self, playerId: str) -> Deferred[Identity]:
        """
        Accept the IDs in C{self.valid}.
        """
        if playerId in self.valid:
            return succeed(Identity(playerId))
        return fail(UnauthorizedLogin())

    def connectLink(self, server: GameServer, seat: Seat) -> None:
        """
        Open a recording link at once.
        """
        link = RecordingLink(seat)
        self.links.append(link)
        seat.linkMade(link)

    def session(self) -> tuple[Session, RecordingConnection]:
        """
        A new session with one game connection.
        """
        conn = RecordingConnection()
        return self.successResultOf(self.registry.open(None, conn)), conn

    def seat(
        self, playerId: str = "alice"
    ) -> tuple[Session, RecordingConnection, RecordingLink]:
        """
        A session authenticated and seated.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth(playerId))
        link = self.links[-1]
        link.seat.accepted(
            GameDetails(server_id=link.seat.server.serverId, player_id=playerId)
        )
        return session, conn, link


class GatewayTests(GatewayFixture):
    """
    Tests of L{Gateway}.
    """

    def test_notAuthenticated(self) -> None:
        """
        A payload other than authenticate gets NOT_AUTHENTICATED.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, b"\x0a\x00")
        response = s2c(conn.sent[0]).authenticate_response
        self.assertEqual(
            (response.result, response.description),
            (R.NOT_AUTHENTICATED, "authenticate first"),
        )

    def test_malformed(self) -> None:
        """
        A payload that is not a C2S closes the connection with 4006.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, b"\xff\xff")
        self.assertEqual(conn.closed, (4006, "malformed C2S"))

    def test_seated(self) -> None:
        """
        A valid ID is seated on the least loaded server; the client gets
        authenticate_response{OK} with connected, then game_config.
        """
        self.monitor.servers["gs1"].players = 3
        session, conn, link = self.seat()
        self.assertEqual(link.seat.server.serverId, "gs2")
        first = s2c(conn.sent[0])
        self.assertTrue(first.HasField("authenticate_response"))
        self.assertEqual(first.authenticate_response.result, R.OK)
        self.assertEqual(first.connected.server_id, "gs2")
        link.seat.gameConfig(GameConfig(content_type="application/json", content=b"{}"))
        self.assertEqual(s2c(conn.sent[1]).game_config.content, b"{}")
        self.assertEqual(session.state, SessionState.RELAYING)
        self.assertEqual(self.successResultOf(self.registry.counts()), (1, 1))
        self.assertEqual(self.monitor.servers["gs2"].pending, 0)

    def test_relay(self) -> None:
        """
        Once seated, payloads pass verbatim both ways.
        """
        session, conn, link = self.seat()
        self.gateway.payloadReceived(session, conn, b"\x0a\x03abc")
        self.gateway.payloadReceived(session, conn, b"\xff\xfe")  # not decoded
        self.assertEqual(link.sent, [b"\x0a\x03abc", b"\xff\xfe"])
        link.seat.gameData(b"\x01\x02")
        self.assertEqual(conn.sent[-1], b"\x01\x02")

    def test_invalidId(self) -> None:
        """
        A bad ID gets INVALID_ID; the third failure on one connection gets
        TOO_MANY_ATTEMPTS and closes it with 4008.
        """
        session, conn = self.session()
        for _ in range(3):
            self.gateway.payloadReceived(session, conn, auth("mallory"))
        results = [s2c(p).authenticate_response.result for p in conn.sent]
        self.assertEqual(results, [R.INVALID_ID, R.INVALID_ID, R.TOO_MANY_ATTEMPTS])
        self.assertEqual(conn.closed, (4008, "authentication failed too often"))

    def test_attemptsPerConnection(self) -> None:
        """
        Failures count per connection, not per session.
        """
        session, conn = self.session()
        other = RecordingConnection()
        self.registry.open(session.token, other)
        for c in (conn, conn, other, other):
            self.gateway.payloadReceived(session, c, auth("mallory"))
        self.assertIsNone(conn.closed)
        self.assertIsNone(other.closed)

    def test_checkerBroken(self) -> None:
        """
        A checker that fails for another reason than a bad ID (a database
        down) gets OTHER, is logged, and does not count as a try.
        """
        self.authenticate = lambda playerId: fail(OSError("database down"))  # type: ignore[method-assign,assignment]
        self.gateway._authenticate = self.authenticate
        session, conn = self.session()
        for _ in range(3):
            self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 3)
        results = {s2c(p).authenticate_response.result for p in conn.sent}
        self.assertEqual(results, {R.OTHER})
        self.assertIsNone(conn.closed)

    def test_unhandledCredentials(self) -> None:
        """
        A portal with no checker for the credentials: AUTH_METHOD_UNSUPPORTED.
        """
        from twisted.cred.error import UnhandledCredentials

        self.gateway._authenticate = lambda playerId: fail(UnhandledCredentials())
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(
            s2c(conn.sent[0]).authenticate_response.result, R.AUTH_METHOD_UNSUPPORTED
        )

    def test_bugWhileSeatingIs1011(self) -> None:
        """
        An exception raised while seating is a bug: logged, and the
        connection closed with 1011.
        """

        def broken(server: GameServer, seat: Seat) -> None:
            raise ZeroDivisionError()

        self.gateway._connectLink = broken
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(conn.closed, (1011, "internal error"))

    def test_tooLongId(self) -> None:
        """
        An ID over 1024 bytes is invalid without asking the checker.
        """
        self.valid.add("x" * 1025)
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("x" * 1025))
        self.assertEqual(s2c(conn.sent[0]).authenticate_response.result, R.INVALID_ID)

    def test_noServer(self) -> None:
        """
        With no server with room: NO_SERVER, and the session can try again.
        """
        for server in self.monitor.servers.values():
            server.accepting = False
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(s2c(conn.sent[0]).authenticate_response.result, R.NO_SERVER)
        self.assertEqual(session.state, SessionState.UNAUTHENTICATED)
        self.assertEqual(self.successResultOf(self.registry.counts()), (0, 0))

    def test_rejected(self) -> None:
        """
        A game server's refusal becomes REJECTED with its reason.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.links[-1].seat.rejected(100, "banned")
        response = s2c(conn.sent[0]).authenticate_response
        self.assertEqual(
            (response.result, response.description), (R.REJECTED, "banned")
        )
        self.assertIsNone(session.playerId)

    def test_fullTriesNextServer(self) -> None:
        """
        A game server that answers Rejected{FULL} (its Status was behind) is
        not a refusal of the player: the next server is tried, and with none
        left the player gets NO_SERVER.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        first = self.links[-1]
        first.seat.rejected(1, "server full")
        second = self.links[-1]
        self.assertIsNot(second, first)
        self.assertIsNot(second.seat.server, first.seat.server)
        self.assertEqual(conn.sent, [])
        second.seat.rejected(1, "server full")
        self.assertEqual(s2c(conn.sent[-1]).authenticate_response.result, R.NO_SERVER)

    def test_movedLinkIsDisconnected(self) -> None:
        """
        When a player is moved, the old player connection is told to go, and
        what it still relays is not passed on.
        """
        _session, conn, link = self.seat()
        link.seat.lost("control connection lost")
        self.assertEqual(link.disconnected, (1013, "control connection lost"))
        before = list(conn.sent)
        link.seat.gameData(b"stale")
        self.assertEqual(conn.sent, before)

    def test_newestLoginWins(self) -> None:
        """
        The same ID authenticating on a second session ends the first with
        4009, and releases its seat.
        """
        first, firstConn, firstLink = self.seat()
        second, _, _ = self.seat()
        self.assertTrue(first.ended)
        self.assertEqual(firstConn.closed, (4009, "logged in elsewhere"))
        self.assertEqual(firstLink.disconnected, (4009, "logged in elsewhere"))
        self.assertFalse(second.ended)

    def test_refuseNewcomer(self) -> None:
        """
        Configured to refuse the newcomer, a second login gets ID_IN_USE.
        """
        self.gateway.refuseNewcomer = True
        first, _, _ = self.seat()
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(s2c(conn.sent[0]).authenticate_response.result, R.ID_IN_USE)
        self.assertFalse(first.ended)

    def test_kick(self) -> None:
        """
        A Disconnect from the game server ends the session with 4009 and its
        reason.
        """
        session, conn, link = self.seat()
        link.seat.disconnected(0, "kicked: cheating")
        self.assertTrue(session.ended)
        self.assertEqual(conn.closed, (4009, "kicked: cheating"))

    def test_kickNotice(self) -> None:
        """
        A kick sends S2C{disconnect} with the reason before the 4009 close.
        """
        _, conn, link = self.seat()
        link.seat.disconnected(0, "cheating")
        notice = s2c(conn.sent[-1]).disconnect
        self.assertEqual((notice.code, notice.reason), (4009, "cheating"))

    def test_disconnectBeforeConnected(self) -> None:
        """
        A Disconnect before Connected is a refusal: REJECTED with its
        reason, and the server's pending seat is given back.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        seat = self.links[-1].seat
        seat.disconnected(0, "go away")
        response = s2c(conn.sent[-1]).authenticate_response
        self.assertEqual(
            (response.result, response.description), (R.REJECTED, "go away")
        )
        self.assertEqual(seat.server.pending, 0)
        self.assertEqual(session.state, SessionState.UNAUTHENTICATED)

    def test_disconnectCodeTwoBeforeConnected(self) -> None:
        """
        A Disconnect with code 2 (REPLACED) before Connected is a refusal, not
        "not accepting": the player gets REJECTED.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.links[-1].seat.disconnected(2, "replaced")
        self.assertEqual(len(self.links), 1)
        self.assertEqual(s2c(conn.sent[-1]).authenticate_response.result, R.REJECTED)

    def test_seatingTriesEachServerOnce(self) -> None:
        """
        When player connections keep failing, each game server is tried once
        and then the player gets NO_SERVER.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        for _ in range(5):
            link = self.links[-1]
            if session.state is not SessionState.SEATING:
                break
            link.seat.lost("refused")
        self.assertEqual(len(self.links), 2)
        self.assertEqual(s2c(conn.sent[-1]).authenticate_response.result, R.NO_SERVER)

    def test_threeServersEachTriedOnce(self) -> None:
        """
        With three servers whose player connections all fail, each is tried
        exactly once before NO_SERVER.
        """
        third = GameServer("gs3", b"t" * 32, state=ServerState.READY, capacity=10)
        third.control = object()  # type: ignore[assignment]
        third.accepting = True
        self.monitor.servers["gs3"] = third
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        while session.state is SessionState.SEATING and len(self.links) < 10:
            self.links[-1].seat.lost("refused")
        tried = [link.seat.server.serverId for link in self.links]
        self.assertEqual(sorted(tried), ["gs1", "gs2", "gs3"])
        self.assertEqual(s2c(conn.sent[-1]).authenticate_response.result, R.NO_SERVER)

    def test_shuttingDownMoves(self) -> None:
        """
        A Disconnect with code 1 (the game server is shutting down) moves the
        player instead of ending the session.
        """
        session, conn, link = self.seat()
        link.seat.disconnected(1, "draining")
        self.assertFalse(session.ended)
        self.assertTrue(s2c(conn.sent[-1]).HasField("disconnect"))
        self.assertIsNot(self.links[-1], link)

    def test_reseatOnLoss(self) -> None:
        """
        When the game server goes away, the client gets S2C{disconnect} and
        is seated on another server: a new connected follows.
        """
        session, conn, link = self.seat()
        lost = link.seat.server
        link.seat.lost("connection lost")
        notice = s2c(conn.sent[-1])
        self.assertTrue(notice.HasField("disconnect"))
        newLink = self.links[-1]
        self.assertIsNot(newLink, link)
        self.assertIsNot(newLink.seat.server, lost)
        newLink.seat.accepted(GameDetails(server_id=newLink.seat.server.serverId))
        again = s2c(conn.sent[-1])
        self.assertEqual(again.connected.server_id, newLink.seat.server.serverId)
        self.assertFalse(again.HasField("authenticate_response"))
        self.assertEqual(session.state, SessionState.RELAYING)

    def test_noRoomAfterLoss(self) -> None:
        """
        When no other server has room, the session is closed with 1013.
        """
        session, conn, link = self.seat()
        for server in self.monitor.servers.values():
            server.accepting = False
        link.seat.lost("connection lost")
        self.assertEqual(
            conn.closed,
            (CloseCode.TRY_AGAIN_LATER, "no game server can take the player"),
        )
        self.assertTrue(session.ended)

    def test_serverCrashReseats(self) -> None:
        """
        A crashed server's players are moved by the monitor's lost report.
        """
        session, _, link = self.seat()
        server = link.seat.server
        server.links.add(link)  # type: ignore[arg-type]
        self.monitor._serverLost(server)
        self.assertIsNot(self.links[-1], link)
        self.assertEqual(session.state, SessionState.SEATING)

    def test_sessionEndDisconnectsLink(self) -> None:
        """
        Ending a seated session sends the link a Disconnect with the reason.
        """
        session, _, link = self.seat()
        self.registry.end(session, 4009, "session expired")
        self.assertEqual(link.disconnected, (4009, "session expired"))
        self.assertEqual(self.successResultOf(self.registry.counts()), (0, 0))

    def test_flowControl(self) -> None:
        """
        A client connection with a full send buffer pauses reading from the
        game server until it drains.
        """
        session, conn, link = self.seat()
        self.gateway.connectionPaused(session, conn)
        self.assertTrue(link.paused)
        self.gateway.connectionResumed(session, conn)
        self.assertFalse(link.paused)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(min_size=1, max_size=30), max_size=10))
    def test_arbitraryPayloads(self, payloads: list[bytes]) -> None:
        """
        Any payloads before authentication get answers or a 4006 close, and
        never raise; authentication still works afterwards on a fresh
        connection.
        """
        session, conn = self.session()
        for payload in payloads:
            if conn.closed is not None:
                break
            self.gateway.payloadReceived(session, conn, payload)
        if conn.closed is not None:
            self.assertIn(conn.closed[0], {4006, 4008})
        for sent in conn.sent:
            self.assertTrue(
                s2c(sent).HasField("authenticate_response")
                or s2c(sent).HasField("connected")
                or s2c(sent).HasField("game_config")
            )
        self.assertEqual(self.flushLoggedErrors(), [])


class GatewayLimitTests(GatewayFixture):
    """
    The limits of Part 6 at the gateway: login throttles, a busy checker,
    IDs with control characters, payloads held while seating, and the
    legacy profile's results.
    """

    def setUp(self) -> None:
        super().setUp()
        self.checks = 0
        self.gateway = self.limited()

    def limited(self, **kwargs: Any) -> Gateway:
        """
        A gateway with a clock (so with login throttles), counting checks.
        """
        options: dict[str, Any] = {
            "registry": self.registry,
            "authenticator": self.countingAuthenticate,
            "monitor": self.monitor,
            "connectLink": self.connectLink,
            "clock": self.reactor,
            "seatingBuffer": 3,
            "seatingBufferBytes": 100,
        }
        options.update(kwargs)
        return Gateway(**options)

    def countingAuthenticate(self, playerId: str) -> Deferred[Identity]:
        """
        Count the checks that reach the checker, then check.
        """
        self.checks += 1
        return self.authenticate(playerId)

    def results(self, conn: RecordingConnection) -> list[int]:
        """
        The results of the authenticate responses C{conn} was sent.
        """
        return [
            s2c(p).authenticate_response.result
            for p in conn.sent
            if s2c(p).HasField("authenticate_response")
        ]

    def test_addressThrottle(self) -> None:
        """
        Past 10 tries a minute from one address, a login is answered
        TOO_MANY_ATTEMPTS without running the checker and without counting
        as a wrong ID; a minute later one more is allowed.
        """
        for _ in range(10):
            session, conn = self.session()
            self.gateway.payloadReceived(session, conn, auth("mallory"))
        self.assertEqual(self.checks, 10)
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(self.checks, 10)
        self.assertEqual(self.results(conn), [R.TOO_MANY_ATTEMPTS])
        self.assertIsNone(conn.closed)
        self.assertIsNone(session.playerId)
        self.assertNotEqual(session.state, SessionState.AUTHENTICATING)
        self.reactor.advance(6)
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(self.checks, 11)
        self.assertEqual(session.state, SessionState.SEATING)

    def test_otherAddressNotThrottled(self) -> None:
        """
        One address's throttle does not touch another address.
        """
        for _ in range(11):
            session, conn = self.session()
            self.gateway.payloadReceived(session, conn, auth("mallory"))
        other = RecordingConnection(remoteAddress="10.9.9.9")
        session = self.successResultOf(self.registry.open(None, other))
        self.gateway.payloadReceived(session, other, auth("alice"))
        self.assertEqual(self.results(other), [])
        self.assertEqual(session.state, SessionState.SEATING)

    def test_accountThrottle(self) -> None:
        """
        Guesses at one account from many addresses are throttled by the
        account (the part of the ID before its first colon).
        """
        for i in range(10):
            conn = RecordingConnection(remoteAddress=f"10.0.0.{i}")
            session = self.successResultOf(self.registry.open(None, conn))
            self.gateway.payloadReceived(session, conn, auth(f"bob:guess{i}"))
        conn = RecordingConnection(remoteAddress="10.0.1.1")
        session = self.successResultOf(self.registry.open(None, conn))
        self.gateway.payloadReceived(session, conn, auth("bob:right"))
        self.assertEqual(self.results(conn), [R.TOO_MANY_ATTEMPTS])
        self.assertEqual(self.checks, 10)
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(self.checks, 11)
        self.assertEqual(session.state, SessionState.SEATING)

    def test_exemptAddressNotThrottled(self) -> None:
        """
        An exempt address has no per-address login throttle.
        """
        self.gateway = self.limited(exempt=Exemptions(["127.0.0.0/8"]))
        for i in range(20):
            session, conn = self.session()
            self.gateway.payloadReceived(session, conn, auth(f"user{i}"))
        self.assertEqual(self.checks, 20)
        self.assertNotIn(R.TOO_MANY_ATTEMPTS, self.results(conn))

    def test_throttleLoggedOnce(self) -> None:
        """
        A throttled flood writes one log line, then one summary line with a
        count per interval.
        """
        with capturedLogs() as events:
            for _ in range(30):
                session, conn = self.session()
                self.gateway.payloadReceived(session, conn, auth("mallory"))
            self.reactor.advance(10)
        throttled = [e for e in events if e.get("cause") == "login throttled"]
        self.assertEqual(len(throttled), 2)
        self.assertEqual(throttled[1]["count"], 19)

    def test_checksPerAddress(self) -> None:
        """
        While two checks of one address run, a third from it is answered
        OTHER "busy, try again later" without reaching the checker or
        taking a login try; another address is not held up, and a finished
        check frees its place.
        """
        pending: list[Deferred[Identity]] = []

        def slow(playerId: str) -> Deferred[Identity]:
            self.checks += 1
            d: Deferred[Identity] = Deferred()
            pending.append(d)
            return d

        self.gateway = self.limited(authenticator=slow, loginsPerMinute=3)
        for _ in range(2):
            session, conn = self.session()
            self.gateway.payloadReceived(session, conn, auth("mallory"))
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        response = s2c(conn.sent[0]).authenticate_response
        self.assertEqual(
            (response.result, response.description),
            (R.OTHER, "busy, try again later"),
        )
        self.assertEqual(self.checks, 2)
        elsewhere = RecordingConnection(remoteAddress="10.1.1.1")
        other = self.successResultOf(self.registry.open(None, elsewhere))
        self.gateway.payloadReceived(other, elsewhere, auth("bob"))
        self.assertEqual(self.checks, 3)
        pending[0].errback(UnauthorizedLogin())
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.assertEqual(self.checks, 4)

    def test_checkerBusy(self) -> None:
        """
        A check refused because the checker is busy is answered OTHER
        "busy, try again later" and is not a try.
        """
        self.gateway = Gateway(
            registry=self.registry,
            authenticator=lambda playerId: fail(CheckerBusy("busy")),
            monitor=self.monitor,
            connectLink=self.connectLink,
            authTries=1,
        )
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        response = s2c(conn.sent[0]).authenticate_response
        self.assertEqual(
            (response.result, response.description),
            (R.OTHER, "busy, try again later"),
        )
        self.assertIsNone(conn.closed)
        self.assertEqual(session.state, SessionState.UNAUTHENTICATED)

    def test_controlCharactersRefused(self) -> None:
        """
        An ID with a control character is INVALID_ID without reaching the
        checker, and nothing of it reaches a log line unescaped.
        """
        self.valid.add("alice\nFAKE LOG LINE")
        with capturedLogs() as events:
            for bad in ("alice\nFAKE LOG LINE", "a\x00", "b\x7f", "c\x85"):
                session, conn = self.session()
                self.gateway.payloadReceived(session, conn, auth(bad))
                self.assertEqual(self.results(conn), [R.INVALID_ID])
        self.assertEqual(self.checks, 0)
        self.assertNotIn("\n", "".join(formatEvent(e) for e in events))

    def test_heldWhileSeating(self) -> None:
        """
        Payloads a client sends while being seated are held and relayed to
        the game server in order once it is seated.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        link = self.links[-1]
        self.gateway.payloadReceived(session, conn, b"\x08\x01")
        self.gateway.payloadReceived(session, conn, b"\x08\x02")
        self.assertEqual(link.sent, [])
        link.seat.accepted(GameDetails(server_id="gs1", player_id="alice"))
        self.assertEqual(link.sent, [b"\x08\x01", b"\x08\x02"])
        self.gateway.payloadReceived(session, conn, b"\x08\x03")
        self.assertEqual(link.sent[-1], b"\x08\x03")

    def test_heldOverflow(self) -> None:
        """
        More than the seating buffer's packets (or bytes) while being seated
        closes that connection with 4007.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        for i in range(3):
            self.gateway.payloadReceived(session, conn, bytes([8, i]))
        self.assertIsNone(conn.closed)
        self.gateway.payloadReceived(session, conn, b"\x08\x04")
        self.assertEqual(conn.closed, (4007, "too much sent while being seated"))
        other, conn2 = self.session()
        self.gateway.payloadReceived(other, conn2, auth("bob"))
        self.gateway.payloadReceived(other, conn2, b"x" * 101)
        self.assertEqual(conn2.closed, (4007, "too much sent while being seated"))

    def test_heldDroppedWhenNotSeated(self) -> None:
        """
        A seating that ends in NO_SERVER drops what was held: nothing of it
        reaches a later seat.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        first = self.links[-1]
        self.gateway.payloadReceived(session, conn, b"\x08\x01")
        for server in self.monitor.servers.values():
            server.accepting = False
        first.seat.lost("gone")
        self.assertEqual(self.results(conn), [R.NO_SERVER])
        self.assertIsNone(session.held)


class LegacyResultTests(SynchronousTestCase):
    """
    The legacy profile's C{AuthenticateResponse} results (Part 1.7).
    """

    def test_legacyMapsNewResults(self) -> None:
        """
        Results 5-8 go out as OTHER naming the real result; 0-4 unchanged.
        """
        clock = MemoryReactorClock()
        gateway = Gateway(registry=MemorySessionRegistry(clock=clock), legacy=True)
        for result in (R.NO_SERVER, R.REJECTED, R.TOO_MANY_ATTEMPTS):
            response = s2c(gateway.response(result, "why")).authenticate_response
            self.assertEqual(response.result, R.OTHER)
            self.assertEqual(response.description, f"{R.Result.Name(result)}: why")
        response = s2c(gateway.response(R.INVALID_ID, "bad")).authenticate_response
        self.assertEqual((response.result, response.description), (R.INVALID_ID, "bad"))

    def test_notAuthenticatedLegacy(self) -> None:
        """
        In the legacy profile a payload before authentication is answered
        OTHER naming NOT_AUTHENTICATED, which the Java client can parse.
        """
        clock = MemoryReactorClock()
        registry = MemorySessionRegistry(clock=clock)
        gateway = Gateway(registry=registry, legacy=True)
        conn = RecordingConnection()
        session = self.successResultOf(registry.open(None, conn))
        gateway.payloadReceived(session, conn, b"\x0a\x00")
        response = s2c(conn.sent[0]).authenticate_response
        self.assertEqual(
            (response.result, response.description),
            (R.OTHER, "NOT_AUTHENTICATED: authenticate first"),
        )


class SeatingOrderTests(GatewayFixture):
    """
    The seating replies of a session with several connections arrive on one
    connection, in order, though the game server's C{Connected} and
    C{GameConfig} come in different reactor turns (Part 1.4).
    """

    def twoConnections(
        self,
    ) -> tuple[Session, RecordingConnection, RecordingConnection]:
        """
        A session with two game connections.
        """
        session, first = self.session()
        second = RecordingConnection()
        self.successResultOf(self.registry.open(session.token, second))
        return session, first, second

    def test_connectedThenConfigOnOneConnection(self) -> None:
        """
        C{game_config} follows C{connected} on its connection even in a
        later turn when that connection has more unacknowledged packets; the
        packets after it are spread again.
        """
        session, first, second = self.twoConnections()
        self.gateway.payloadReceived(session, first, auth("alice"))
        link = self.links[-1]
        link.seat.accepted(GameDetails(server_id="gs1", player_id="alice"))
        used = first if first.sent else second
        self.reactor.advance(0)
        link.seat.gameConfig(GameConfig(content_type="text/plain", content=b"c"))
        self.assertEqual(len(used.sent), 2)
        self.assertTrue(s2c(used.sent[0]).HasField("connected"))
        self.assertTrue(s2c(used.sent[1]).HasField("game_config"))
        self.reactor.advance(0)
        link.seat.gameData(b"\x08\x01")
        other = second if used is first else first
        self.assertEqual(other.sent, [b"\x08\x01"])

    def test_reseatRepliesOnOneConnection(self) -> None:
        """
        A reseat's C{disconnect}, C{connected} and C{game_config} go on one
        connection, in order.
        """
        session, first, second = self.twoConnections()
        self.gateway.payloadReceived(session, first, auth("alice"))
        link = self.links[-1]
        link.seat.accepted(GameDetails(server_id="gs1", player_id="alice"))
        link.seat.gameConfig(GameConfig(content_type="text/plain", content=b"c"))
        self.reactor.advance(0)
        for conn in (first, second):
            conn.sent.clear()
        link.seat.lost("game server went away")
        self.reactor.advance(0)
        moved = self.links[-1]
        moved.seat.accepted(GameDetails(server_id="gs2", player_id="alice"))
        self.reactor.advance(0)
        moved.seat.gameConfig(GameConfig(content_type="text/plain", content=b"d"))
        used = first if first.sent else second
        kinds = [s2c(p) for p in used.sent]
        self.assertEqual(len(used.sent), 3)
        self.assertTrue(kinds[0].HasField("disconnect"))
        self.assertTrue(kinds[1].HasField("connected"))
        self.assertTrue(kinds[2].HasField("game_config"))
