# -*- test-case-name: tests.test_admin_metrics -*-
"""
Tests of L{aphelion.admin.metrics}: the collector reads the live parts and
the L{aphelion.stats.Stats} at scrape time, into a registry of its own.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aphelion.admin.metrics import makeRegistry
from aphelion.codes import AphelionProtocol
from tests.test_admin import AdminTestCase


class CollectorTests(AdminTestCase):
    """
    What C{/metrics} says, parsed back with Prometheus' own parser.
    """

    def scrape(self, processCollectors: bool = False) -> dict[tuple[str, Any], float]:
        """
        Scrape a registry of the view.

        :return: every sample, by name and sorted labels.
        """
        text = generate_latest(makeRegistry(self.view, processCollectors))
        samples = {}
        for family in text_string_to_metric_families(text.decode("utf-8")):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = sample.value
        return samples

    def test_gauges(self) -> None:
        """
        Connections, sessions, game servers and seated players are what is
        live at the scrape, and change as players come and go.
        """
        alice = self.seat("alice")
        self.connect(AphelionProtocol.PING)
        samples = self.scrape()
        self.assertEqual(samples["aphelion_connections", (("protocol", "game"),)], 1)
        self.assertEqual(samples["aphelion_connections", (("protocol", "ping"),)], 1)
        self.assertEqual(
            samples["aphelion_sessions", (("state", "unauthenticated"),)], 2
        )
        self.assertEqual(samples["aphelion_game_servers", (("state", "ready"),)], 1)
        self.assertEqual(samples["aphelion_game_servers", (("state", "starting"),)], 1)
        self.assertEqual(samples["aphelion_players_seated", (("server", "gs1"),)], 1)
        self.assertEqual(samples["aphelion_ready", ()], 1)
        self.factory.connections.discard(alice)
        for link in list(self.monitor.servers["gs1"].links):
            self.monitor.linkRemoved(self.monitor.servers["gs1"], link)
        samples = self.scrape()
        self.assertEqual(samples["aphelion_connections", (("protocol", "game"),)], 0)
        self.assertEqual(samples["aphelion_players_seated", (("server", "gs1"),)], 0)

    def test_counters(self) -> None:
        """
        Packets, bytes, closes, logins and restarts are the counts at the
        scrape, as counters (C{_total}).
        """
        stats = self.factory.stats
        stats.packetsIn, stats.packetsOut = 5, 7
        stats.bytesIn, stats.bytesOut = 50, 70
        stats.closed(0.0, 4009, "kicked")
        stats.closed(0.0, 4567, "a client's own code")
        stats.login("ok")
        self.monitor.servers["gs1"].generation = 3
        samples = self.scrape()
        self.assertEqual(samples["aphelion_packets_total", (("direction", "in"),)], 5)
        self.assertEqual(samples["aphelion_packets_total", (("direction", "out"),)], 7)
        self.assertEqual(samples["aphelion_bytes_total", (("direction", "out"),)], 70)
        self.assertEqual(samples["aphelion_closes_total", (("code", "4009"),)], 1)
        self.assertEqual(samples["aphelion_closes_total", (("code", "other"),)], 1)
        self.assertEqual(samples["aphelion_logins_total", (("result", "ok"),)], 1)
        self.assertEqual(
            samples["aphelion_game_server_restarts_total", (("server", "gs1"),)], 2
        )
        connection = self.connect()
        traffic = connection.trafficStats  # type: ignore[attr-defined]
        traffic.incomingWebSocketMessages = 2
        traffic.outgoingOctetsAppLevel = 30
        samples = self.scrape()
        self.assertEqual(samples["aphelion_packets_total", (("direction", "in"),)], 7)
        self.assertEqual(samples["aphelion_bytes_total", (("direction", "out"),)], 100)

    def test_histogram(self) -> None:
        """
        Seating times are a histogram: buckets, count and sum.
        """
        self.factory.stats.seated(0.02)
        self.factory.stats.seated(3.0)
        samples = self.scrape()
        self.assertEqual(samples["aphelion_seat_seconds_bucket", (("le", "0.025"),)], 1)
        self.assertEqual(samples["aphelion_seat_seconds_bucket", (("le", "+Inf"),)], 2)
        self.assertEqual(samples["aphelion_seat_seconds_count", ()], 2)
        self.assertAlmostEqual(samples["aphelion_seat_seconds_sum", ()], 3.02)

    def test_draining(self) -> None:
        """
        Draining shows in C{aphelion_draining} and C{aphelion_ready}.
        """
        self.lifecycle.startDraining("SIGTERM")
        samples = self.scrape()
        self.assertEqual(samples["aphelion_draining", ()], 1)
        self.assertEqual(samples["aphelion_ready", ()], 0)

    def test_processCollectors(self) -> None:
        """
        The process and platform collectors are in the registry when asked,
        and the global registry is left alone.
        """
        before = set(REGISTRY._collector_to_names)
        samples = self.scrape(processCollectors=True)
        self.assertIn(("process_cpu_seconds_total", ()), samples)
        self.assertTrue(any(name == "python_info" for name, _ in samples))
        self.assertEqual(set(REGISTRY._collector_to_names), before)
