# -*- test-case-name: tests.test_gateway -*-
"""
Tests of L{aphelion.gateway}: the game protocol of a session, with a real
registry and monitor, and recording stand-ins for connections and links.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import CloseCode
from aphelion.control.spawn import GameServer, GameServerMonitor, ServerState
from aphelion.gateway import Gateway, Seat, SessionState
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

R = AuthenticateResponse


@dataclass(frozen=True)
class Identity:
    """
    A player identity as a realm yields it.
    """

    playerId: str
    name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


class RecordingLink:
    """
    A player link that records what its seat asks of it.
    """

    def __init__(self, seat: Seat) -> None:
        self.seat = seat
        self.sent: list[bytes] = []
        self.disconnected: tuple[int, str] | None = None
        self.paused = False

    def sendGameData(self, payload: bytes) -> None:
        """
        Record a payload.
        """
        self.sent.append(payload)

    def disconnect(self, code: int, reason: str) -> None:
        """
        Record the disconnect.
        """
        self.disconnected = (code, reason)

    def pauseReading(self) -> None:
        """
        Record the pause.
        """
        self.paused = True

    def resumeReading(self) -> None:
        """
        Record the resume.
        """
        self.paused = False


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


class GatewayTests(SynchronousTestCase):
    """
    Tests of L{Gateway}.
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
