# -*- test-case-name: tests.test_admin -*-
"""
Tests of L{aphelion.admin}: the view of the AuthProxy's parts, the probes,
the API and its token, the site's headers, and the C{--admin} options.
"""

from __future__ import annotations

import json
from io import BytesIO
from types import SimpleNamespace
from typing import Any, cast

from autobahn.websocket.protocol import TrafficStats
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource
from twisted.web.test.requesthelper import DummyRequest

from aphelion.admin import Lifecycle, makeAdminSite
from aphelion.admin.resources import MAX_BODY
from aphelion.admin.view import ProxyView
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.config import Config
from aphelion.control.spawn import GameServer, GameServerMonitor, ServerState
from aphelion.gateway import Gateway
from aphelion.proto.game_pb2 import S2C
from aphelion.service import build
from aphelion.session import MemorySessionRegistry, Session
from aphelion.stats import Stats
from aphelion.tap import Options
from aphelion.testing.fakes import RecordingConnection
from aphelion.workers import PublishedPool, makeWorkerService

TOKEN = b"s3cret-admin-token-0123456789"

_PATHS = [b"/api/kick", b"/api/servers/gs2/drain", b"/api/servers/gs9/restart"]

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["reason", "deadline", "playerId", "x"]) | st.text(),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)

#: Bodies of API actions: any bytes, or any JSON value.
_BODIES = st.binary(max_size=MAX_BODY + 10) | _JSON.map(
    lambda value: json.dumps(value).encode("utf-8")
)


class RecordingControl:
    """
    A control connection that records the C{Shutdown}s sent on it.
    """

    def __init__(self) -> None:
        self.shutdowns: list[tuple[int, str]] = []

    def sendShutdown(self, deadlineMs: int, reason: str) -> None:
        """
        Record a C{Shutdown}.
        """
        self.shutdowns.append((deadlineMs, reason))


class FakeLink:
    """
    A player link: only its seat, and the seat's session.
    """

    def __init__(self, session: Session) -> None:
        self.seat = SimpleNamespace(session=session)


class FakeFactory:
    """
    What the view reads of an C{AphelionServerFactory}.
    """

    def __init__(self, registry: MemorySessionRegistry) -> None:
        self.registry = registry
        self.connections: set[Any] = set()
        self.stats = Stats()


class AdminTestCase(SynchronousTestCase):
    """
    Two game servers (gs1 ready, gs2 starting), a registry, a gateway and
    the view of them.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = MemorySessionRegistry(clock=self.clock)
        self.monitor = GameServerMonitor(
            reactor=self.clock,
            game="aphelion.games.chat",
            count=2,
            makeControlFactory=lambda monitor, server: None,
        )
        self.control = RecordingControl()
        self.monitor.controlReady(
            self.monitor.servers["gs1"], cast(Any, self.control), "chat", 10
        )
        self.gateway = Gateway(
            registry=self.registry, monitor=self.monitor, clock=self.clock
        )
        self.factory = FakeFactory(self.registry)
        self.lifecycle = Lifecycle()
        self.view = ProxyView(
            factory=cast(Any, self.factory),
            monitor=self.monitor,
            gateway=self.gateway,
            lifecycle=self.lifecycle,
            clock=self.clock,
        )
        self.site = makeAdminSite(
            self.view, token=TOKEN, clock=self.clock, processCollectors=False
        )
        self.addCleanup(self.site.stopFactory)

    def connect(
        self, protocol: AphelionProtocol | None = AphelionProtocol.GAME
    ) -> RecordingConnection:
        """
        An open connection of the factory with a session of its own.
        """
        connection = RecordingConnection(
            protocol if protocol is not None else AphelionProtocol.GAME
        )
        session = self.successResultOf(self.registry.open(None, connection))
        if protocol is None:
            connection.protocol = None  # type: ignore[assignment]
        connection.session = session  # type: ignore[attr-defined]
        connection.trafficStats = TrafficStats()  # type: ignore[attr-defined]
        self.factory.connections.add(connection)
        return connection

    def seat(self, playerId: str, serverId: str = "gs1") -> RecordingConnection:
        """
        A connection whose session is logged in as C{playerId} and seated
        on C{serverId}.
        """
        connection = self.connect()
        session: Session = connection.session  # type: ignore[attr-defined]
        self.registry.authenticate(session, playerId)
        link = FakeLink(session)
        self.monitor.linkAdded(self.monitor.servers[serverId], cast(Any, link))
        return connection

    def request(
        self,
        path: bytes,
        method: bytes = b"GET",
        body: bytes | None = None,
        token: bytes | None = TOKEN,
        scheme: bytes = b"Bearer",
    ) -> tuple[int, Any, DummyRequest]:
        """
        Send a request through the site's resource tree.

        :return: the status, the decoded JSON body (or the raw body) and the
            request.
        """
        parts = path.lstrip(b"/").split(b"/")
        request = DummyRequest(parts)
        request.method = method
        request.content = BytesIO(body or b"")  # type: ignore[attr-defined]
        if token is not None:
            request.requestHeaders.addRawHeader(b"authorization", scheme + b" " + token)
        resource: IResource = self.site.getResourceFor(request)
        result = resource.render(request)  # type: ignore[arg-type]
        code = request.responseCode or 200
        try:
            decoded = json.loads(result)
        except ValueError:
            decoded = result
        return code, decoded, request


class LifecycleTests(SynchronousTestCase):
    """
    L{Lifecycle} says whether the AuthProxy is draining.
    """

    def test_drainOnce(self) -> None:
        """
        The first L{Lifecycle.startDraining} sets the state and tells the
        observers; later ones change nothing.
        """
        lifecycle = Lifecycle()
        heard: list[str] = []
        lifecycle.addDrainObserver(heard.append)
        self.assertFalse(lifecycle.draining)
        lifecycle.startDraining("SIGTERM")
        lifecycle.startDraining("again")
        self.assertTrue(lifecycle.draining)
        self.assertEqual(lifecycle.drainReason, "SIGTERM")
        self.assertEqual(heard, ["SIGTERM"])


class ViewTests(AdminTestCase):
    """
    L{ProxyView} counts what is live when asked.
    """

    def test_connections(self) -> None:
        """
        Connections are counted by protocol, those without an init packet
        as opening.
        """
        self.connect(AphelionProtocol.PING)
        self.connect()
        self.connect()
        self.connect(None)
        self.assertEqual(self.view.connections(), {"ping": 1, "game": 2, "opening": 1})

    def test_sessions(self) -> None:
        """
        Sessions are counted by state; a session without connections is
        lingering.
        """
        self.connect()
        lingering = self.connect()
        session = lingering.session  # type: ignore[attr-defined]
        self.registry.authenticate(session, "bob")
        self.factory.connections.discard(lingering)
        self.registry.detach(session, lingering)
        counts = self.view.sessions()
        self.assertEqual(counts["unauthenticated"], 1)
        self.assertEqual(counts["lingering"], 1)
        self.assertEqual(counts["relaying"], 0)

    def test_servers(self) -> None:
        """
        Each game server with its state and the players seated on it.
        """
        self.seat("alice")
        [gs1, gs2] = self.view.servers()
        self.assertEqual((gs1["id"], gs1["state"]), ("gs1", "ready"))
        self.assertEqual([p["playerId"] for p in gs1["seated"]], ["alice"])
        self.assertEqual((gs2["state"], gs2["seated"]), ("starting", []))
        self.assertEqual(self.view.serverStates()["ready"], 1)

    def test_readiness(self) -> None:
        """
        Ready while a game server has room and the AuthProxy is not
        draining.
        """
        self.assertEqual(self.view.readiness(), (True, "ok"))
        self.lifecycle.startDraining("SIGTERM")
        ready, reason = self.view.readiness()
        self.assertFalse(ready)
        self.assertIn("SIGTERM", reason)

    def test_notReadyWithoutServers(self) -> None:
        """
        Not ready when every game server drains.
        """
        self.monitor.drain("gs1", "maintenance")
        ready, reason = self.view.readiness()
        self.assertFalse(ready)
        self.assertIn("gs1 draining", reason)

    def test_restarts(self) -> None:
        """
        Restarts are the starts after the first.
        """
        server: GameServer = self.monitor.servers["gs1"]
        self.assertEqual(self.view.restarts(server), 0)
        server.generation = 3
        self.assertEqual(self.view.restarts(server), 2)


class ProbeTests(AdminTestCase):
    """
    C{/health} and C{/ready} need no token.
    """

    def test_health(self) -> None:
        """
        C{/health} answers 200.
        """
        code, body, _ = self.request(b"/health", token=None)
        self.assertEqual((code, body), (200, {"status": "ok"}))

    def test_ready(self) -> None:
        """
        C{/ready} answers 200, then 503 with the reason once draining.
        """
        code, body, _ = self.request(b"/ready", token=None)
        self.assertEqual((code, body["ready"]), (200, True))
        self.lifecycle.startDraining("SIGTERM")
        code, body, _ = self.request(b"/ready", token=None)
        self.assertEqual(code, 503)
        self.assertEqual(body, {"ready": False, "reason": "draining: SIGTERM"})

    def test_headers(self) -> None:
        """
        Every response has nosniff, a content security policy and no
        referrer.
        """
        _, _, request = self.request(b"/health")
        headers = request.responseHeaders
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
        [policy] = headers.getRawHeaders(b"content-security-policy")
        self.assertIn(b"default-src 'none'", policy)
        self.assertIn(b"script-src 'self'", policy)
        self.assertEqual(headers.getRawHeaders(b"referrer-policy"), [b"no-referrer"])

    def test_dashboard(self) -> None:
        """
        C{/} is the dashboard's page, which loads its script.
        """
        _, body, request = self.request(b"/", token=None)
        self.assertIn(b'src="dashboard.js"', body)
        self.assertEqual(
            request.responseHeaders.getRawHeaders(b"content-type"),
            [b"text/html; charset=utf-8"],
        )


class TokenTests(AdminTestCase):
    """
    The API wants C{Authorization: Bearer} with the right token.
    """

    def test_missing(self) -> None:
        """
        No token: 401 with C{WWW-Authenticate: Bearer}.
        """
        code, body, request = self.request(b"/api/overview", token=None)
        self.assertEqual(code, 401)
        self.assertIn("error", body)
        self.assertEqual(
            request.responseHeaders.getRawHeaders(b"www-authenticate"),
            [b'Bearer realm="aphelion-admin"'],
        )

    def test_wrong(self) -> None:
        """
        A wrong token: 401, C{invalid_token}, and a throttled warning.
        """
        with capturedLogs() as events:
            code, _, request = self.request(b"/api/overview", token=b"x" * 29)
        self.assertEqual(code, 401)
        [header] = request.responseHeaders.getRawHeaders(b"www-authenticate")
        self.assertIn(b'error="invalid_token"', header)
        self.assertTrue(any("refused" in e.get("log_format", "") for e in events))

    def test_otherScheme(self) -> None:
        """
        The right token under another scheme than Bearer: 401.
        """
        code, _, _ = self.request(b"/api/overview", scheme=b"Basic")
        self.assertEqual(code, 401)

    def test_right(self) -> None:
        """
        The right token: 200 with the overview.
        """
        code, body, request = self.request(b"/api/overview")
        self.assertEqual(code, 200)
        self.assertEqual(body["ready"], True)
        self.assertEqual([s["id"] for s in body["servers"]], ["gs1", "gs2"])
        self.assertEqual(
            request.responseHeaders.getRawHeaders(b"cache-control"), [b"no-store"]
        )

    def test_noTokenConfigured(self) -> None:
        """
        Without a configured token the API refuses everything with 403.
        """
        site = makeAdminSite(
            self.view, token=None, clock=self.clock, processCollectors=False
        )
        self.addCleanup(site.stopFactory)
        self.site = site
        code, body, _ = self.request(b"/api/overview")
        self.assertEqual(code, 403)
        self.assertIn("--admin-token-file", body["error"])


class ApiTests(AdminTestCase):
    """
    The API's reads and actions.
    """

    def test_servers(self) -> None:
        """
        C{GET /api/servers} lists the game servers and their players.
        """
        self.seat("alice")
        code, body, _ = self.request(b"/api/servers")
        self.assertEqual(code, 200)
        self.assertEqual(body["servers"][0]["seated"][0]["playerId"], "alice")

    def test_sessions(self) -> None:
        """
        C{GET /api/sessions} counts sessions and connections.
        """
        self.seat("alice")
        code, body, _ = self.request(b"/api/sessions")
        self.assertEqual(code, 200)
        self.assertEqual(body["connections"]["game"], 1)

    def test_drain(self) -> None:
        """
        C{POST /api/servers/gs1/drain} drains it with the reason and
        deadline given: 202.
        """
        code, body, _ = self.request(
            b"/api/servers/gs1/drain",
            b"POST",
            json.dumps({"reason": "new build", "deadline": 2.5}).encode(),
        )
        self.assertEqual((code, body), (202, {"id": "gs1", "state": "draining"}))
        self.assertEqual(self.control.shutdowns, [(2500, "new build")])

    def test_restart(self) -> None:
        """
        C{POST /api/servers/gs1/restart} drains it, to start it again.
        """
        code, _, _ = self.request(b"/api/servers/gs1/restart", b"POST", b"")
        self.assertEqual(code, 202)
        self.assertEqual(len(self.control.shutdowns), 1)
        self.assertTrue(self.monitor.servers["gs1"].restartWhenStopped)

    def test_unknownServer(self) -> None:
        """
        An action on a server that does not exist: 404.
        """
        code, _, _ = self.request(b"/api/servers/gs9/drain", b"POST", b"{}")
        self.assertEqual(code, 404)

    def test_getAction(self) -> None:
        """
        An action asked with C{GET}: 405, nothing done.
        """
        code, _, _ = self.request(b"/api/servers/gs1/drain")
        self.assertEqual(code, 405)
        self.assertIs(self.monitor.servers["gs1"].state, ServerState.READY)

    def test_badBodies(self) -> None:
        """
        A body that is not a JSON object, a bad deadline or a too long body:
        400, 400, 413.
        """
        path = b"/api/servers/gs1/drain"
        self.assertEqual(self.request(path, b"POST", b"[1]")[0], 400)
        self.assertEqual(self.request(path, b"POST", b"{nope")[0], 400)
        self.assertEqual(self.request(path, b"POST", b'{"deadline": "1"}')[0], 400)
        self.assertEqual(self.request(path, b"POST", b'{"deadline": -1}')[0], 400)
        big = json.dumps({"reason": "x" * MAX_BODY}).encode()
        self.assertEqual(self.request(path, b"POST", big)[0], 413)
        self.assertIs(self.monitor.servers["gs1"].state, ServerState.READY)

    def test_kick(self) -> None:
        """
        C{POST /api/kick} ends the player's session: C{S2C{disconnect}}
        with the reason, then close 4009.
        """
        connection = self.seat("alice")
        code, body, _ = self.request(
            b"/api/kick",
            b"POST",
            json.dumps({"playerId": "alice", "reason": "be nice"}).encode(),
        )
        self.assertEqual((code, body), (200, {"playerId": "alice", "kicked": 1}))
        notice = S2C.FromString(connection.sent[-1])
        self.assertEqual(notice.disconnect.reason, "be nice")
        self.assertEqual(connection.closed, (CloseCode.SESSION_ENDED, "be nice"))

    def test_kickUnknown(self) -> None:
        """
        Kicking a player who has no session here: 404.
        """
        code, _, _ = self.request(b"/api/kick", b"POST", b'{"playerId": "zed"}')
        self.assertEqual(code, 404)
        code, _, _ = self.request(b"/api/kick", b"POST", b'{"playerId": 7}')
        self.assertEqual(code, 400)

    @given(body=_BODIES, path=st.sampled_from(_PATHS))
    @settings(max_examples=200, deadline=None)
    def test_anyBody(self, body: bytes, path: bytes) -> None:
        """
        Whatever the body of an action, the answer is JSON with a status of
        the API's, never an exception.
        """
        code, decoded, _ = self.request(path, b"POST", body)
        self.assertIn(code, {200, 202, 400, 404, 413})
        self.assertIsInstance(decoded, dict)

    def test_unknownPath(self) -> None:
        """
        An unknown API path: 404 in JSON.
        """
        code, body, _ = self.request(b"/api/nothing")
        self.assertEqual(code, 404)
        self.assertIn("error", body)


class OptionsTests(SynchronousTestCase):
    """
    C{--admin} and C{--admin-token-file}.
    """

    def tokenFile(self, content: bytes) -> str:
        """
        A file holding C{content}.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(content)
        return path

    def test_off(self) -> None:
        """
        No admin endpoint by default.
        """
        options = Options()
        options.parseOptions([])
        config = options.toConfig()
        self.assertEqual((config.admin, config.adminToken), (None, None))

    def test_tokenRead(self) -> None:
        """
        The token is read from its file at start, without the newline, and
        kept out of the config's repr.
        """
        options = Options()
        options.parseOptions(
            [
                "--admin",
                "tcp:0:interface=127.0.0.1",
                "--admin-token-file",
                self.tokenFile(TOKEN + b"\n"),
            ]
        )
        config = options.toConfig()
        self.assertEqual(config.admin, "tcp:0:interface=127.0.0.1")
        self.assertEqual(config.adminToken, TOKEN)
        self.assertNotIn(TOKEN.decode(), repr(config))

    def test_badTokens(self) -> None:
        """
        A short token, one with spaces, a missing file, or a token without
        C{--admin}: a usage error.
        """
        for args in (
            ["--admin", "tcp:0", "--admin-token-file", self.tokenFile(b"short")],
            ["--admin", "tcp:0", "--admin-token-file", self.tokenFile(b"a b" * 10)],
            ["--admin", "tcp:0", "--admin-token-file", "/nonexistent/token"],
            ["--admin-token-file", self.tokenFile(TOKEN)],
        ):
            self.assertRaises(usage.UsageError, Options().parseOptions, args)


class BuildTests(SynchronousTestCase):
    """
    C{service.build} makes the admin site for C{--admin}.
    """

    def test_built(self) -> None:
        """
        With C{admin}, the service has an admin site and a listener for it,
        and shares its L{Stats}; its L{Lifecycle} hears of a drain.
        """
        service = build(
            Config(listen=(), gameServers=0, admin="tcp:0", adminToken=TOKEN),
            cast(Any, Clock()),
        )
        self.assertIsNotNone(service.adminSite)
        assert service.adminListener is not None
        self.assertEqual(service.adminListener.name, "admin:tcp:0")
        self.assertIs(service.stats, service.factory.stats)
        self.assertIs(service.stats, service.gateway.stats)
        self.assertFalse(service.lifecycle.draining)
        service.startDraining("SIGTERM")
        self.assertEqual(service.lifecycle.drainReason, "SIGTERM")

    def test_adminStopsLast(self) -> None:
        """
        The admin endpoint listens from the start and closes only once
        everything else has stopped: the probes answer all through a drain.
        """
        reactor = MemoryReactorClock()
        service = build(
            Config(listen=("tcp:0",), gameServers=0, admin="tcp:0", adminToken=TOKEN),
            cast(Any, reactor),
        )
        slow = Service()
        stopping: Deferred[None] = Deferred()
        slow.stopService = lambda: stopping  # type: ignore[method-assign]
        slow.setServiceParent(service)
        service.startService()
        sites = [factory for _, factory, _, _ in reactor.tcpServers]
        self.assertEqual(len(sites), 2)
        self.assertIn(service.adminSite, sites)
        done = service.stopService()
        assert service.adminListener is not None
        self.assertTrue(service.adminListener.running)
        self.assertNoResult(done)
        stopping.callback(None)
        self.successResultOf(done)
        self.assertFalse(service.adminListener.running)

    def test_notInWorkers(self) -> None:
        """
        With C{--workers}, a worker opens no admin endpoint: the parent
        serves it, on its one port.
        """
        service = makeWorkerService(
            Config(listen=(), workers=2, admin="tcp:0", adminToken=TOKEN),
            MemoryReactorClock(),
            pool=PublishedPool(),
            readParent=False,
        )
        self.assertIsNone(service.adminSite)
        self.assertIsNone(service.adminListener)

    def test_notBuilt(self) -> None:
        """
        Without C{admin}, no admin site; the L{Lifecycle} is there anyway.
        """
        service = build(Config(listen=(), gameServers=0), cast(Any, Clock()))
        self.assertIsNone(service.adminSite)
        self.assertIsInstance(service.lifecycle, Lifecycle)
