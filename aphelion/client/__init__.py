# -*- test-case-name: tests.test_client -*-
"""
The client side of Part 1: an Autobahn WebSocket client that speaks the init
handshake and ProtobufPackets, and a L{Deferred}-based API on top of it for
tests, tools and bots.

Everything public is importable from here:

- L{aphelion.client.protocol}: L{AphelionClientProtocol}, the thin adapter
  over the same ack core and close handling as the server
  (L{aphelion.wsbase.PacketProtocol}), with hooks; L{AphelionClientFactory};
  L{ClosedError}; L{IClientSession}, what a connection tells its session.
- L{aphelion.client.connect}: L{connect} opens one connection and fires once
  the init handshake is done; L{connectFactory}; L{endpointForURL}.
- L{aphelion.client.pinging}: L{ping} measures one round trip of the ping
  protocol (L{PingResult}).
- L{aphelion.client.session}: L{ClientSession} groups several game sockets
  that share one session token (the contract's inverse multiplexing);
  L{NotConnectedError}.
"""

from __future__ import annotations

from .connect import connect, connectFactory, endpointForURL
from .pinging import PingResult, ping
from .protocol import (
    AphelionClientFactory,
    AphelionClientProtocol,
    ClosedError,
    IClientSession,
)
from .session import ClientSession, NotConnectedError

__all__ = [
    "AphelionClientFactory",
    "AphelionClientProtocol",
    "ClientSession",
    "ClosedError",
    "IClientSession",
    "NotConnectedError",
    "PingResult",
    "connect",
    "connectFactory",
    "endpointForURL",
    "ping",
]
