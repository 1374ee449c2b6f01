# -*- test-case-name: tests.test_integration_tls -*-
"""
Real sockets: TLS (C{wss}) is a matter of the endpoint description, not of
code; Nagle is off.
"""

from __future__ import annotations

import os
from typing import Any

import twisted.test
from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    serverFromString,
    wrapClientTLS,
)
from twisted.internet.ssl import CertificateOptions
from twisted.trial.unittest import TestCase

from aphelion.client import AphelionClientFactory, AphelionClientProtocol
from aphelion.codes import AphelionProtocol
from aphelion.config import Config
from aphelion.proto.ping_pb2 import PingRequest, PingResponse
from aphelion.service import build

reactor: Any = _reactor
PEM = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")


class TLSTests(TestCase):
    """
    The proxy's Site behind an C{ssl:} strports description.
    """

    async def test_wss(self) -> None:
        """
        A client completes the init handshake and a ping over TLS.
        """
        service = build(Config(listen=(), gameServers=0), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        description = f"ssl:0:interface=127.0.0.1:privateKey={PEM}:certKey={PEM}"
        port = await serverFromString(reactor, description).listen(service.site)
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        factory = AphelionClientFactory(
            f"wss://localhost:{number}/aphelion",
            clock=reactor,
            aphelionProtocol=AphelionProtocol.PING,
        )
        # The test certificate names no host: this test is about the server.
        endpoint = wrapClientTLS(
            CertificateOptions(verify=False),
            TCP4ClientEndpoint(reactor, "127.0.0.1", number),
        )
        client: AphelionClientProtocol = await endpoint.connect(factory)
        await client.whenHandshakeDone().addTimeout(10, reactor)
        self.assertEqual(len(client.token or b""), 32)
        client.sendPayload(PingRequest(client_time=5).SerializeToString())
        response = PingResponse.FromString(
            await client.nextPayload().addTimeout(10, reactor)
        )
        self.assertEqual(response.client_time, 5)
        self.assertTrue(client.transport.getHandle())  # type: ignore[union-attr]
        client.closeWith(1000, "bye")
        await client.whenClosed().addTimeout(10, reactor)


class NoDelayTests(TestCase):
    """
    Nagle is off on every accepted socket (Autobahn leaves it on).
    """

    async def test_tcpNoDelay(self) -> None:
        """
        The server's end of a real loopback connection has TCP_NODELAY set.
        """
        import socket

        from aphelion.client import connect

        service = build(Config(listen=(), gameServers=0), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = reactor.listenTCP(0, service.site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"ws://127.0.0.1:{port.getHost().port}/aphelion"
        client = await connect(reactor, url, AphelionProtocol.PING).addTimeout(
            10, reactor
        )
        [server] = service.factory.connections
        handle = server.transport.getHandle()
        self.assertTrue(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        client.closeWith(1000, "bye")
        await client.whenClosed().addTimeout(10, reactor)
