# -*- test-case-name: tests.test_integration_admin -*-
"""
The admin endpoint over loopback: an AuthProxy in this process with two
spawned chat game servers, real WebSocket players, and HTTP requests to
C{/metrics}, C{/ready} and the API.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    ResponseNeverReceived,
    readBody,
)
from twisted.web.http_headers import Headers

from aphelion.codes import CloseCode
from aphelion.control.spawn import ServerState
from aphelion.proto.game_pb2 import S2C
from tests.test_integration_system import (
    SystemTestCase,
    reactor,
    say,
    waitFor,
    within,
)

TOKEN = b"integration-admin-token-0123456789"


class AdminTestCase(SystemTestCase):
    """
    Starts the AuthProxy with C{--admin} and an HTTP client for it.
    """

    async def startAdmin(self) -> None:
        """
        Start the proxy and listen with its admin site on a port of ours.
        """
        await self.startProxy(admin="tcp:0:interface=127.0.0.1", adminToken=TOKEN)
        site = self.service.adminSite
        assert site is not None
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}".encode()
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=pool)

    async def http(
        self,
        path: str,
        method: bytes = b"GET",
        body: Any = None,
        token: bytes | None = TOKEN,
    ) -> tuple[int, bytes]:
        """
        One request to the admin site.

        :return: the status and the body.
        """
        headers = Headers()
        if token is not None:
            headers.addRawHeader(b"authorization", b"Bearer " + token)
        producer = None
        if body is not None:
            producer = FileBodyProducer(BytesIO(json.dumps(body).encode()))
        response = await within(
            self.agent.request(method, self.base + path.encode(), headers, producer)
        )
        content = await within(readBody(response))
        return response.code, content

    async def metrics(self) -> dict[tuple[str, Any], float]:
        """
        Scrape C{/metrics}: every sample by name and sorted labels.
        """
        code, text = await self.http("/metrics", token=None)
        self.assertEqual(code, 200)
        samples = {}
        for family in text_string_to_metric_families(text.decode("utf-8")):
            for sample in family.samples:
                samples[sample.name, tuple(sorted(sample.labels.items()))] = (
                    sample.value
                )
        return samples


def seatedCount(samples: dict[tuple[str, Any], float]) -> float:
    """
    The players seated on every game server, from a scrape.
    """
    return sum(
        value
        for (name, _), value in samples.items()
        if name == "aphelion_players_seated"
    )


class MetricsTests(AdminTestCase):
    """
    C{/metrics} follows the players.
    """

    async def test_playersComeAndGo(self) -> None:
        """
        A seated player shows in the seated players, the game connections,
        the logins, the seating histogram and the packets; once gone, the
        gauges fall back and its close is counted.
        """
        await self.startAdmin()
        before = await self.metrics()
        self.assertEqual(seatedCount(before), 0)
        self.assertEqual(before["aphelion_game_servers", (("state", "ready"),)], 2)
        self.assertIn(("process_cpu_seconds_total", ()), before)
        client, _ = await self.seated("alice")
        during = await self.metrics()
        self.assertEqual(seatedCount(during), 1)
        self.assertEqual(during["aphelion_connections", (("protocol", "game"),)], 1)
        self.assertEqual(during["aphelion_sessions", (("state", "relaying"),)], 1)
        self.assertEqual(during["aphelion_logins_total", (("result", "ok"),)], 1)
        self.assertEqual(during["aphelion_seat_seconds_count", ()], 1)
        packetsIn = ("aphelion_packets_total", (("direction", "in"),))
        self.assertGreaterEqual(during[packetsIn], 2)
        client.sendPayload(say("hello"))
        await within(client.nextPayload())  # the room hears it, alice too
        await self.closeClient(client)
        await waitFor(lambda: not self.service.factory.connections)
        after = await self.metrics()
        self.assertEqual(after["aphelion_connections", (("protocol", "game"),)], 0)
        self.assertEqual(after["aphelion_closes_total", (("code", "1000"),)], 1)
        self.assertGreater(after[packetsIn], during[packetsIn])
        bytesOut = ("aphelion_bytes_total", (("direction", "out"),))
        self.assertGreater(after[bytesOut], during[bytesOut])


class ReadyTests(AdminTestCase):
    """
    C{/ready} flips on drain.
    """

    async def ready(self) -> tuple[int, dict[str, Any]]:
        """
        Ask C{/ready}.
        """
        code, body = await self.http("/ready", token=None)
        return code, json.loads(body)

    async def test_flips(self) -> None:
        """
        Ready with two game servers; not ready once both are drained
        through the API; ready again when one is restarted through the
        API; not ready once the AuthProxy is draining.
        """
        await self.startAdmin()
        self.assertEqual(await self.ready(), (200, {"ready": True, "reason": "ok"}))
        for serverId in ("gs1", "gs2"):
            code, _ = await self.http(
                f"/api/servers/{serverId}/drain", b"POST", {"reason": "test"}
            )
            self.assertEqual(code, 202)
        code, body = await self.ready()
        self.assertEqual(code, 503)
        self.assertIn("no game server can take players", body["reason"])
        self.assertEqual((await self.http("/health", token=None))[0], 200)
        code, _ = await self.http("/api/servers/gs1/restart", b"POST", {})
        self.assertEqual(code, 202)
        server = self.monitor.servers["gs1"]
        await waitFor(lambda: server.state is ServerState.READY)
        self.assertEqual(server.generation, 2)
        self.assertEqual((await self.ready())[0], 200)
        samples = await self.metrics()
        self.assertEqual(
            samples["aphelion_game_server_restarts_total", (("server", "gs1"),)], 1
        )
        self.service.startDraining("SIGTERM")
        code, body = await self.ready()
        self.assertEqual((code, body["reason"]), (503, "draining: SIGTERM"))


class ApiTests(AdminTestCase):
    """
    The API's token, and kicking a player.
    """

    async def test_token(self) -> None:
        """
        No token or a wrong one: 401; the right one: 200 with the game
        servers.
        """
        await self.startAdmin()
        self.assertEqual((await self.http("/api/overview", token=None))[0], 401)
        self.assertEqual((await self.http("/api/overview", token=b"x" * 34))[0], 401)
        code, body = await self.http("/api/servers")
        self.assertEqual(code, 200)
        ids = [server["id"] for server in json.loads(body)["servers"]]
        self.assertEqual(ids, ["gs1", "gs2"])

    async def test_bigBodyDropped(self) -> None:
        """
        A body larger than the API reads drops the connection as it
        arrives; nothing is done.
        """
        await self.startAdmin()
        with self.assertRaises(ResponseNeverReceived):
            await self.http(
                "/api/servers/gs1/drain", b"POST", {"reason": "x" * 100_000}
            )
        self.assertIs(self.monitor.servers["gs1"].state, ServerState.READY)

    async def test_kick(self) -> None:
        """
        A kick through the API sends the player C{S2C{disconnect}} with the
        reason, then closes its connection with 4009.
        """
        await self.startAdmin()
        client, _ = await self.seated("alice")
        code, body = await self.http(
            "/api/kick", b"POST", {"playerId": "alice", "reason": "cheating"}
        )
        self.assertEqual((code, json.loads(body)["kicked"]), (200, 1))
        notice = S2C.FromString(await within(client.nextPayload()))
        self.assertEqual(notice.disconnect.reason, "cheating")
        code, reason = await within(client.whenClosed())
        self.assertEqual((code, reason), (CloseCode.SESSION_ENDED, "cheating"))
        samples = await self.metrics()
        self.assertEqual(samples["aphelion_closes_total", (("code", "4009"),)], 1)
