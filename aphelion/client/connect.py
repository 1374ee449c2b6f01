# -*- test-case-name: tests.test_client -*-
"""
Opening one connection: L{endpointForURL} turns a C{ws://} or C{wss://} URL
into a client endpoint, L{connectFactory} connects an
L{AphelionClientFactory} and waits for the init handshake, and L{connect}
does both from a URL and options.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint

from aphelion.codes import AphelionProtocol

from .protocol import AphelionClientFactory, AphelionClientProtocol

__all__ = ["connect", "connectFactory", "endpointForURL"]


def endpointForURL(reactor: Any, url: str) -> IStreamClientEndpoint:
    """
    Make the client endpoint for a C{ws://} or C{wss://} URL.

    :param reactor: provides C{IReactorTCP} (and C{IReactorPluggableNameResolver}
        for host names).
    :raises ValueError: for any other scheme.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    host = parsed.hostname
    secure = parsed.scheme == "wss"
    port = parsed.port or (443 if secure else 80)
    endpoint: IStreamClientEndpoint
    if isIPv6Address(host):
        endpoint = TCP6ClientEndpoint(reactor, host, port)
    elif isIPAddress(host):
        endpoint = TCP4ClientEndpoint(reactor, host, port)
    else:
        endpoint = HostnameEndpoint(reactor, host, port)
    if secure:
        from twisted.internet.ssl import optionsForClientTLS

        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    return endpoint


def connectFactory(
    reactor: Any, factory: AphelionClientFactory
) -> Deferred[AphelionClientProtocol]:
    """
    Connect to the URL of C{factory}.

    :return: a L{Deferred} that fires with the protocol once the init
        handshake is done, or fails with L{ClosedError} (or the connection
        error). Cancelling it drops the connection.
    """
    d: Deferred[Any] = endpointForURL(reactor, factory.url).connect(factory)
    d.addCallback(lambda protocol: protocol.whenHandshakeDone())
    return d


def connect(
    reactor: Any,
    url: str,
    protocol: int = AphelionProtocol.GAME,
    token: bytes | None = None,
    version: int = 0,
    **options: Any,
) -> Deferred[AphelionClientProtocol]:
    """
    Open one connection and complete the init handshake.

    :param reactor: the reactor to connect with; also the clock of every timer.
    :param url: C{ws://host:port/path} or C{wss://...}.
    :param protocol: the C{aphelion_protocol} to ask for.
    :param token: a session token to present, or L{None} for a new session.
    :param version: the protocol revision, 0 to skip the check.
    :param options: more keyword arguments of L{AphelionClientFactory}.
    :return: a L{Deferred} that fires with the protocol once the handshake is
        done, or fails with L{ClosedError} carrying the close code and reason
        (or with the connection error, such as C{ConnectionRefusedError}).
    """
    factory = AphelionClientFactory(
        url,
        clock=reactor,
        aphelionProtocol=protocol,
        protocolVersion=version,
        token=token,
        **options,
    )
    return connectFactory(reactor, factory)
