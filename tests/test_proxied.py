# -*- test-case-name: tests.test_proxied -*-
"""
Tests of L{aphelion.web.proxied}: the players' site behind the PROXY
protocol admits each connection under the address of the PROXY header.
"""

from __future__ import annotations

import struct
from ipaddress import ip_address
from types import SimpleNamespace
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from aphelion.web.proxied import ProxiedSiteFactory, isProxied

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxyHeader(source: str, sourcePort: int) -> bytes:
    """
    A PROXY v2 header of a TCP over IPv4 connection from C{source}.
    """
    addresses = (
        ip_address(source).packed
        + ip_address("127.0.0.1").packed
        + struct.pack("!HH", sourcePort, 8080)
    )
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(addresses)) + addresses


class Recorder(Protocol):
    """
    A site's protocol that records what it gets.
    """

    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        """
        Record the bytes.
        """
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Record the end.
        """
        self.lost = True


class FakeSite:
    """
    A site that records the address of every protocol it builds.
    """

    def __init__(self) -> None:
        self.addresses: list[Any] = []
        self.built: list[Recorder] = []
        self.starts = self.stops = 0

    def buildProtocol(self, addr: Any) -> Recorder:
        """
        Record the address.
        """
        self.addresses.append(addr)
        protocol = Recorder()
        self.built.append(protocol)
        return protocol

    def doStart(self) -> None:
        """
        Count the start.
        """
        self.starts += 1

    def doStop(self) -> None:
        """
        Count the stop.
        """
        self.stops += 1


class ProxiedSiteFactoryTests(SynchronousTestCase):
    """
    Tests of L{ProxiedSiteFactory} under Twisted's C{haproxy:} wrapper.
    """

    def setUp(self) -> None:
        """
        A proxied fake site, wrapped as the C{haproxy:} endpoint wraps it.
        """
        self.clock = Clock()
        self.site = FakeSite()
        self.factory = ProxiedSiteFactory(self.site, clock=self.clock, timeout=5.0)
        self.wrapping = HAProxyWrappingFactory(self.factory)
        self.balancer = IPv4Address("TCP", "10.0.0.2", 40000)
        self.protocol = self.wrapping.buildProtocol(self.balancer)
        self.transport = StringTransport(peerAddress=self.balancer)
        self.protocol.makeConnection(self.transport)

    def test_admittedUnderHeaderAddress(self) -> None:
        """
        The site builds the connection's protocol once the header is read,
        with the client's address from it (not the balancer's), and gets
        the bytes that follow it.
        """
        self.assertEqual(self.site.addresses, [])
        self.protocol.dataReceived(proxyHeader("203.0.113.9", 51515) + b"GET /")
        [address] = self.site.addresses
        self.assertEqual((address.host, address.port), ("203.0.113.9", 51515))
        self.protocol.dataReceived(b" HTTP/1.1\r\n")
        self.assertEqual(self.site.built[0].data, b"GET / HTTP/1.1\r\n")
        self.assertEqual(self.site.built[0].transport.getPeer(), address)  # type: ignore[union-attr]

    def test_lostPassedOn(self) -> None:
        """
        The end of the connection reaches the site's protocol.
        """
        self.protocol.dataReceived(proxyHeader("203.0.113.9", 51515) + b"G")
        self.protocol.connectionLost(Failure(Exception("gone")))
        self.assertTrue(self.site.built[0].lost)

    def test_headerTimeout(self) -> None:
        """
        A connection that brings no bytes after the header within the
        timeout is aborted, and the site never sees it.
        """
        self.protocol.dataReceived(proxyHeader("203.0.113.9", 51515))
        self.clock.advance(4.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.site.addresses, [])
        self.protocol.connectionLost(Failure(Exception("aborted")))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeoutOfTheGate(self) -> None:
        """
        Without a timeout of its own, the factory takes the gate's
        C{upgradeTimeout} as it is at each accept (a reload changes it), and
        0 sets no deadline.
        """
        gate = SimpleNamespace(upgradeTimeout=2.0)
        self.site.gate = gate  # type: ignore[attr-defined]
        factory = ProxiedSiteFactory(self.site, clock=self.clock)
        self.assertEqual(factory.headerTimeout(), 2.0)
        gate.upgradeTimeout = 0.0
        before = len(self.clock.getDelayedCalls())
        protocol = HAProxyWrappingFactory(factory).buildProtocol(self.balancer)
        protocol.makeConnection(StringTransport(peerAddress=self.balancer))
        self.assertEqual(len(self.clock.getDelayedCalls()), before)

    def test_startStop(self) -> None:
        """
        Starting and stopping the factory starts and stops the site.
        """
        self.factory.doStart()
        self.factory.doStop()
        self.assertEqual((self.site.starts, self.site.stops), (1, 1))

    def test_isProxied(self) -> None:
        """
        Only C{haproxy:} descriptions take the PROXY protocol.
        """
        self.assertTrue(isProxied("haproxy:tcp:8080:interface=127.0.0.1"))
        self.assertTrue(isProxied("HAProxy:tcp:8080"))
        self.assertFalse(isProxied("tcp:8080"))
        self.assertFalse(isProxied("ssl:443:privateKey=haproxy.pem"))
