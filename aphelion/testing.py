# -*- test-case-name: tests.test_session -*-
"""
Public helpers for testing aphelion and subclasses of its protocols, in the
manner of C{treq.testing} and C{autobahn.twisted.testing}.
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
from zope.interface import implementer

from aphelion.codes import AphelionProtocol
from aphelion.interfaces import IConnection

__all__ = ["RecordingClientProtocol", "RecordingConnection", "connectedToServer"]


@implementer(IConnection)
class RecordingConnection:
    """
    An L{IConnection} that records what a session sends it and how it is
    closed, for testing registries and gateways without sockets.

    :ivar sent: the payloads sent, in order.
    :ivar closed: C{(code, reason)} once closed, else L{None}.
    :ivar pauses: the causes for which reading is paused now.
    """

    def __init__(
        self,
        protocol: AphelionProtocol = AphelionProtocol.GAME,
        unacknowledged: int = 0,
        remoteAddress: str = "127.0.0.1",
    ) -> None:
        self.protocol = protocol
        self.remoteAddress = remoteAddress
        self.unacknowledged = unacknowledged
        self.lastUsed = 0
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.pauses: set[str] = set()

    @property
    def isOpen(self) -> bool:
        """
        Whether L{closeWith} was not called yet.
        """
        return self.closed is None

    def sendPayload(self, payload: bytes) -> None:
        """
        Record C{payload}; it counts as unacknowledged.
        """
        self.sent.append(payload)
        self.unacknowledged += 1

    def closeWith(self, code: int, reason: str) -> None:
        """
        Record the close.
        """
        if self.closed is None:
            self.closed = (code, reason)

    def pauseReading(self, cause: str) -> None:
        """
        Record that reading is paused for C{cause}.
        """
        self.pauses.add(cause)

    def resumeReading(self, cause: str) -> None:
        """
        Record that C{cause} no longer pauses reading.
        """
        self.pauses.discard(cause)


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
