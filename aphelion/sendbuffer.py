# -*- test-case-name: tests.test_websocket,tests.test_fastwrite -*-
"""
A client connection's send buffer, and the reading it pauses.

L{SendBufferMixin} is the part of L{aphelion.websocket.AphelionServerProtocol}
that is the transport's push producer: when the transport's send buffer is
full the game connection's relay stops reading from its game server, a ping
connection stops reading pings, and past the limits of Part 6 (measured with
L{aphelion.fastwrite.bufferedBytes}) the client is not read, then closed with
4007. Reading from the client stops while any cause asks it to
(L{SendBufferMixin.pauseReading}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.logger import Logger

from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.fastwrite import bufferedBytes

if TYPE_CHECKING:
    from aphelion.session import Session

__all__ = ["SendBufferMixin"]

_OPEN = WebSocketProtocol.STATE_OPEN


class SendBufferMixin:
    """
    Pausing reads, and being the transport's producer, for
    L{aphelion.websocket.AphelionServerProtocol}: it comes before the
    Autobahn bases, which hold the state, the transport and C{closeWith}.
    """

    _log: Logger
    factory: Any
    state: int
    transport: Any
    protocol: AphelionProtocol | None
    session: Session | None
    _pauses: frozenset[str] = frozenset()

    if TYPE_CHECKING:

        def closeWith(self, code: int, reason: str) -> None:
            """
            Close the connection with C{code} (L{aphelion.wsbase}).
            """

    def pauseReading(self, cause: str) -> None:
        """
        Stop reading from the client for C{cause}; see L{IConnection}.
        """
        if cause in self._pauses:
            return
        if not self._pauses and self.transport is not None:
            cast(Any, self.transport).pauseProducing()
        self._pauses = self._pauses | {cause}

    def resumeReading(self, cause: str) -> None:
        """
        Take back the L{pauseReading} of C{cause}.
        """
        if cause not in self._pauses:
            return
        self._pauses = self._pauses - {cause}
        if not self._pauses and self.transport is not None:
            cast(Any, self.transport).resumeProducing()

    def connectionMade(self) -> None:
        """
        Called when the transport is connected (Nagle is off then): become
        the transport's producer.
        """
        super().connectionMade()  # type: ignore[misc]
        transport = cast(Any, self.transport)
        # Behind twisted.web the HTTP channel that read the upgrade is still
        # the transport's producer; we take its place, so that a full send
        # buffer pauses whatever feeds this connection (the relay).
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        try:
            transport.registerProducer(self, True)
        except (AttributeError, RuntimeError):
            self._log.debug(
                "cannot register as producer on {transport}", transport=transport
            )

    # -- IPushProducer: the transport's send buffer --------------------------

    def pauseProducing(self) -> None:
        """
        Called when the transport's send buffer is full, and again on each
        write while it stays full. A game connection's relay stops reading
        from its game server; a ping connection stops reading pings it cannot
        answer. Past the write pause the client is not read; past the write
        limit it is closed with 4007 (Part 6).
        """
        if self.state == _OPEN:
            queued = bufferedBytes(self.transport)
            if queued is not None:
                config = self.factory.config
                if queued > config.writeLimit:
                    self.closeWith(
                        CloseCode.TOO_MANY_UNACKNOWLEDGED, "reads too slowly"
                    )
                    return
                if queued > config.writePause:
                    self.pauseReading("write")
        if self.session is not None and self.protocol is AphelionProtocol.GAME:
            self.factory.gateway.connectionPaused(self.session, self)
        elif self.protocol is AphelionProtocol.PING:
            self.pauseReading("ping")

    def resumeProducing(self) -> None:
        """
        Called when the transport's send buffer has drained.
        """
        self.resumeReading("write")
        if self.session is not None and self.protocol is AphelionProtocol.GAME:
            self.factory.gateway.connectionResumed(self.session, self)
        else:
            self.resumeReading("ping")

    def stopProducing(self) -> None:
        """
        Called when the transport is gone; C{onClose} does the work.
        """
