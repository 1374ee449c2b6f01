# -*- test-case-name: tests.test_client -*-
"""
The ping protocol from the client's side (Part 1.5): L{ping} opens a ping
connection, measures one round trip and closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from twisted.internet.defer import Deferred

from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.proto.ping_pb2 import PingRequest, PingResponse

from .connect import connect
from .protocol import ClosedError

__all__ = ["PingResult", "ping"]


@dataclass(frozen=True, slots=True)
class PingResult:
    """
    The answer to one ping.

    :ivar rtt: the round-trip time in seconds, by the client's clock.
    :ivar players: authenticated sessions on the server.
    :ivar playing: sessions seated in a game server.
    :ivar serverTime: the server's clock, in ns since the Unix epoch.
    """

    rtt: float
    players: int
    playing: int
    serverTime: int


def ping(
    reactor: Any, url: str, version: int = 0, **options: Any
) -> Deferred[PingResult]:
    """
    Open a ping connection, send one C{PingRequest}, await the
    C{PingResponse} and close with 1000.

    :param reactor: the reactor to connect with; also the clock.
    :param url: the server's WebSocket URL.
    :param version: the protocol revision, 0 to skip the check.
    :param options: more keyword arguments of L{AphelionClientFactory}.
    :return: a L{Deferred} that fires with the L{PingResult} once the
        connection is closed, or fails with L{ClosedError} or the connection
        error.
    """
    return Deferred.fromCoroutine(_ping(reactor, url, version, options))


async def _ping(
    reactor: Any, url: str, version: int, options: dict[str, Any]
) -> PingResult:
    connection = await connect(
        reactor, url, AphelionProtocol.PING, version=version, **options
    )
    try:
        # proto3 leaves a zero field out, and an empty payload is not a
        # PingRequest: never send a client time of 0.
        clientTime = int(reactor.seconds() * 1_000_000_000) or 1
        sent = reactor.seconds()
        connection.sendPayload(PingRequest(client_time=clientTime).SerializeToString())
        payload = await connection.nextPayload()
        rtt = reactor.seconds() - sent
        try:
            response = PingResponse.FromString(payload)
        except DecodeError:
            connection.closeWith(CloseCode.MALFORMED_PACKET, "malformed PingResponse")
            raise ClosedError(
                CloseCode.MALFORMED_PACKET, "malformed PingResponse"
            ) from None
    finally:
        connection.closeWith(CloseCode.NORMAL, "done")
        await connection.whenClosed()
    return PingResult(
        rtt=rtt,
        players=response.players,
        playing=response.playing,
        serverTime=response.server_time,
    )
