# -*- test-case-name: tests.test_stats -*-
"""
Tests of L{aphelion.stats} and of the counting done by the WebSocket
protocol and the gateway.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aphelion.codes import CloseCode
from aphelion.gateway import Gateway
from aphelion.proto.game_pb2 import S2C, GameDetails
from aphelion.stats import OTHER_CODE, SEATING_BUCKETS, Close, Stats, Traffic
from tests.test_gateway import GatewayFixture, auth
from tests.test_websocket import PING, ServerTestsMixin, ping


class StatsTests(SynchronousTestCase):
    """
    L{Stats} counts closes, logins and seating times.
    """

    def test_startsAtZero(self) -> None:
        """
        A new L{Stats} has counted nothing.
        """
        stats = Stats()
        self.assertEqual(
            (stats.packetsIn, stats.packetsOut, stats.bytesIn, stats.bytesOut),
            (0, 0, 0, 0),
        )
        self.assertEqual((stats.closes, stats.logins), ({}, {}))
        self.assertEqual(stats.seatingBuckets()[-1], ("+Inf", 0))

    def test_closes(self) -> None:
        """
        Closes are counted by code, and the recent ones kept, the oldest
        forgotten past L{Stats.recentLimit}.
        """
        stats = Stats()
        stats.closed(1.0, 4009, "kicked")
        stats.closed(2.0, 4009, "kicked again")
        stats.closed(3.0, 1000, "")
        stats.closed(3.5, 4321, "made up")
        stats.closed(3.6, 3999, "made up too")
        self.assertEqual(stats.closes, {4009: 2, 1000: 1, OTHER_CODE: 2})
        self.assertEqual(stats.recentCloses[-1].code, 3999)
        self.assertEqual(stats.recentCloses[0], Close(1.0, 4009, "kicked"))
        for i in range(Stats.recentLimit):
            stats.closed(10.0 + i, 1006, "")
        self.assertEqual(len(stats.recentCloses), Stats.recentLimit)
        self.assertEqual(stats.recentCloses[0].when, 10.0)

    def test_logins(self) -> None:
        """
        Logins are counted by result.
        """
        stats = Stats()
        stats.login("ok")
        stats.login("ok")
        stats.login("unauthorized")
        self.assertEqual(stats.logins, {"ok": 2, "unauthorized": 1})

    def test_seatingHistogram(self) -> None:
        """
        Seating times land in the first bucket whose bound they do not
        exceed; the buckets are cumulative, the sum and count exact.
        """
        stats = Stats()
        stats.seated(0.004)
        stats.seated(0.01)
        stats.seated(0.3)
        stats.seated(99.0)
        buckets = dict(stats.seatingBuckets())
        self.assertEqual(buckets["0.005"], 1)
        self.assertEqual(buckets["0.01"], 2)
        self.assertEqual(buckets["0.25"], 2)
        self.assertEqual(buckets["0.5"], 3)
        self.assertEqual(buckets[repr(SEATING_BUCKETS[-1])], 3)
        self.assertEqual(buckets["+Inf"], 4)
        self.assertAlmostEqual(stats.seatingSum, 99.314)
        self.assertEqual(stats.seatingCount, 4)


class ProtocolCountsTests(ServerTestsMixin, SynchronousTestCase):
    """
    The server protocol counts messages, bytes and closes in its factory's
    L{Stats}.
    """

    def test_packetsAndBytes(self) -> None:
        """
        The init packet and a ping are counted in; the token and the ping's
        answer out, with their bytes; a closed connection's counts are
        banked, so the totals stay.
        """
        stats = self.factory.stats
        connections = self.factory.connections
        client, server, pump, _ = self.handshake(PING)
        self.assertEqual(stats.traffic(connections), Traffic(1, 1, 39, 32))
        request = b"\x00" + ping()
        client.send(request)
        pump.flush(advanceClock=False)
        answer = len(client.received[0])
        expected = Traffic(2, 2, 39 + len(request), 32 + answer)
        self.assertEqual(stats.traffic(connections), expected)
        self.assertEqual((stats.packetsIn, stats.bytesOut), (0, 0))
        server.closeWith(CloseCode.NORMAL, "bye")
        pump.flush()
        self.assertEqual(connections, set())
        self.assertEqual(stats.traffic(connections), expected)
        self.assertEqual((stats.packetsIn, stats.bytesOut), (2, 32 + answer))

    def test_closeCounted(self) -> None:
        """
        A connection the server closes is counted with the code it sent,
        once, with its reason.
        """
        stats = self.factory.stats
        _, server, pump, _ = self.handshake()
        server.closeWith(CloseCode.SESSION_ENDED, "kicked")
        pump.flush()
        self.assertEqual(stats.closes, {4009: 1})
        self.assertEqual(stats.recentCloses[-1].reason, "kicked")

    def test_clientCloseCounted(self) -> None:
        """
        A connection the client closes is counted with the client's code.
        """
        stats = self.factory.stats
        client, _, pump, _ = self.handshake()
        client.sendClose(1000, "bye")
        pump.flush()
        self.assertEqual(stats.closes, {1000: 1})


class GatewayCountsTests(GatewayFixture):
    """
    The gateway counts logins by result and times seatings, in its
    L{Stats}, and kicks.
    """

    def setUp(self) -> None:
        super().setUp()
        self.gateway = Gateway(
            registry=self.registry,
            authenticator=self.authenticate,
            monitor=self.monitor,
            connectLink=self.connectLink,
            clock=self.reactor,
        )

    def test_logins(self) -> None:
        """
        A good ID counts C{ok}, a bad one C{unauthorized}.
        """
        self.seat("alice")
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("mallory"))
        self.assertEqual(self.gateway.stats.logins, {"ok": 1, "unauthorized": 1})

    def test_seatingTimed(self) -> None:
        """
        The time from picking a game server to being seated is counted in
        the histogram.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.reactor.advance(0.2)
        link = self.links[-1]
        link.seat.accepted(
            GameDetails(server_id=link.seat.server.serverId, player_id="alice")
        )
        stats = self.gateway.stats
        self.assertEqual(stats.seatingCount, 1)
        self.assertAlmostEqual(stats.seatingSum, 0.2)
        self.assertEqual(dict(stats.seatingBuckets())["0.25"], 1)
        self.assertEqual(dict(stats.seatingBuckets())["0.1"], 0)

    def test_refusedNotTimed(self) -> None:
        """
        A seating the game server refuses is not counted as seated.
        """
        session, conn = self.session()
        self.gateway.payloadReceived(session, conn, auth("alice"))
        self.links[-1].seat.rejected(1, "full")
        self.assertEqual(self.gateway.stats.seatingCount, 0)

    def test_kick(self) -> None:
        """
        L{Gateway.kick} sends C{S2C{disconnect}} with the reason, closes
        with 4009 and gives up the seat.
        """
        session, conn, link = self.seat("alice")
        self.gateway.kick(session, "be nice")
        self.assertEqual(S2C.FromString(conn.sent[-1]).disconnect.reason, "be nice")
        self.assertEqual(conn.closed, (CloseCode.SESSION_ENDED, "be nice"))
        self.assertTrue(session.ended)
        self.assertIsNotNone(link.disconnected)
