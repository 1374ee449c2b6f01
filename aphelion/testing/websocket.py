# -*- test-case-name: tests.test_websocket -*-
"""
A recording WebSocket client, for testing
L{aphelion.websocket.AphelionServerProtocol} and its subclasses over
L{twisted.test.iosim}.
"""

from __future__ import annotations

from typing import Any, cast

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
)
from twisted.internet.task import Clock
from twisted.test.iosim import FakeAddress, IOPump, connectedServerAndClient

__all__ = ["RecordingClientProtocol", "connectedToServer"]


class RecordingClientProtocol(WebSocketClientProtocol):
    """
    A bare WebSocket client that records what the server sends, for testing
    L{aphelion.websocket.AphelionServerProtocol} and its subclasses over
    L{twisted.test.iosim}. It speaks raw messages: the test builds init
    packets and ProtobufPackets itself.

    :ivar received: every message received, in order.
    :ivar closed: C{(code, reason)} of the server's close frame, once closed.
    :ivar opened: whether the WebSocket handshake completed.
    """

    received: list[bytes]
    closed: tuple[int | None, str | None] | None = None
    opened = False

    def onOpen(self) -> None:
        """
        Note that the handshake is done.
        """
        super().onOpen()
        self.opened = True
        self.received = []

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Record a message.
        """
        self.received.append(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Record the server's close code and reason.
        """
        super().onClose(wasClean, code, reason)
        self.closed = (self.remoteCloseCode, self.remoteCloseReason)

    def send(self, message: bytes, isBinary: bool = True) -> None:
        """
        Send one raw message.
        """
        self.sendMessage(message, isBinary)


def connectedToServer(
    factory: WebSocketServerFactory,
    clock: Clock,
    url: str = "ws://localhost/aphelion",
    headers: dict[str, str] | None = None,
) -> tuple[RecordingClientProtocol, Any, IOPump]:
    """
    Connect a L{RecordingClientProtocol} to a protocol built by C{factory}
    over an in-memory transport, and complete the WebSocket handshake.

    Autobahn's own timers run on txaio's loop: put them on C{clock} with
    C{txaio.testutil.replace_loop(clock)} first.

    :param headers: extra HTTP headers of the upgrade request.
    :return: C{(client, server, pump)}; move data with C{pump.flush()}.
    """
    clientFactory = WebSocketClientFactory(url, headers=headers)
    clientFactory.protocol = RecordingClientProtocol
    client, server, pump = connectedServerAndClient(
        lambda: factory.buildProtocol(FakeAddress()),
        lambda: clientFactory.buildProtocol(FakeAddress()),
        clock=clock,
    )
    pump.flush()
    return cast(RecordingClientProtocol, client), server, pump
