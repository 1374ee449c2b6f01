# -*- test-case-name: tests.test_admin_metrics -*-
"""
The AuthProxy's Prometheus metrics: L{AphelionCollector}, read at scrape
time from a L{ProxyView} and its L{aphelion.stats.Stats}, and
L{makeRegistry}, a registry of its own with the process and platform
collectors beside it (never the global C{REGISTRY}).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aphelion.admin.view import ProxyView
from aphelion.stats import OTHER_CODE

__all__ = ["AphelionCollector", "makeRegistry"]


class AphelionCollector(Collector):
    """
    Every metric of the AuthProxy, computed when Prometheus scrapes: the
    gauges from the live connections, sessions and game servers; the
    message and byte counters from the counts Autobahn keeps per connection
    (banked in L{aphelion.stats.Stats} when a connection closes); the other
    counters from L{aphelion.stats.Stats}.
    """

    def __init__(self, view: ProxyView) -> None:
        self.view = view

    def collect(self) -> Iterable[Metric]:
        """
        Called at each scrape: the metric families, with their values now.
        """
        view = self.view
        stats = view.stats

        connections = GaugeMetricFamily(
            "aphelion_connections",
            "Open client WebSocket connections, by protocol (opening: no init "
            "packet yet).",
            labels=["protocol"],
        )
        for kind, count in view.connections().items():
            connections.add_metric([kind], count)
        yield connections

        sessions = GaugeMetricFamily(
            "aphelion_sessions",
            "Sessions, by state in the game protocol (lingering: no connection).",
            labels=["state"],
        )
        for state, count in view.sessions().items():
            sessions.add_metric([state], count)
        yield sessions

        servers = GaugeMetricFamily(
            "aphelion_game_servers", "Game servers, by state.", labels=["state"]
        )
        for state, count in view.serverStates().items():
            servers.add_metric([state], count)
        yield servers

        seated = GaugeMetricFamily(
            "aphelion_players_seated",
            "Players this AuthProxy seated on each game server.",
            labels=["server"],
        )
        restarts = CounterMetricFamily(
            "aphelion_game_server_restarts",
            "Times each game server was started again (after a crash, or by an "
            "operator).",
            labels=["server"],
        )
        ready = GaugeMetricFamily(
            "aphelion_game_server_ready",
            "1 when the game server is ready and takes players, else 0.",
            labels=["server"],
        )
        for server in view.monitor.servers.values():
            seated.add_metric([server.serverId], len(view.monitor.linksOf(server)))
            restarts.add_metric([server.serverId], view.restarts(server))
            ready.add_metric([server.serverId], 1 if server.hasRoom() else 0)
        yield seated
        yield restarts
        yield ready

        packets = CounterMetricFamily(
            "aphelion_packets",
            "WebSocket messages from (in) and to (out) clients.",
            labels=["direction"],
        )
        traffic = view.traffic()
        packets.add_metric(["in"], traffic.packetsIn)
        packets.add_metric(["out"], traffic.packetsOut)
        yield packets

        octets = CounterMetricFamily(
            "aphelion_bytes",
            "Bytes of the WebSocket messages from (in) and to (out) clients, "
            "without framing.",
            labels=["direction"],
        )
        octets.add_metric(["in"], traffic.bytesIn)
        octets.add_metric(["out"], traffic.bytesOut)
        yield octets

        closes = CounterMetricFamily(
            "aphelion_closes",
            "Client connections closed, by WebSocket close code (1006: dropped "
            "without a close handshake).",
            labels=["code"],
        )
        for code, count in sorted(stats.closes.items()):
            closes.add_metric([str(code) if code != OTHER_CODE else "other"], count)
        yield closes

        logins = CounterMetricFamily(
            "aphelion_logins",
            "Credential checks asked for, by result (ok, unauthorized, "
            "unsupported, busy, broken, throttled).",
            labels=["result"],
        )
        for result, count in sorted(stats.logins.items()):
            logins.add_metric([result], count)
        yield logins

        yield HistogramMetricFamily(
            "aphelion_seat_seconds",
            "Seconds from picking a game server for a player to being seated on it.",
            buckets=stats.seatingBuckets(),
            sum_value=stats.seatingSum,
        )

        ready_, _ = view.readiness()
        yield GaugeMetricFamily(
            "aphelion_ready",
            "1 when /ready answers 200 (not draining, a game server has room).",
            value=1 if ready_ else 0,
        )
        yield GaugeMetricFamily(
            "aphelion_draining",
            "1 once the AuthProxy is draining.",
            value=1 if view.lifecycle.draining else 0,
        )


def makeRegistry(view: ProxyView, processCollectors: bool = True) -> CollectorRegistry:
    """
    A registry of the AuthProxy's metrics, its own (no global state).

    :param processCollectors: add the process (CPU, memory, open files) and
        platform (Python version) collectors too.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AphelionCollector(view))
    if processCollectors:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry
