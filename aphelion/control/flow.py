# -*- test-case-name: tests.test_control_protocol -*-
"""
The write-buffer watch of an envelope connection: a peer that reads too
slowly is found by the bytes really queued in the transport
(L{bufferedBytes}), not by Twisted's C{pauseProducing}, which a transport
calls again on every write while its buffer is full.

L{WriteBufferWatch} is mixed into
L{aphelion.control.protocol.EnvelopeProtocol}: the protocol is registered as
its transport's streaming producer, which is why it must be closed through
its own C{loseConnection} (a transport with a registered producer never
finishes closing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer, ITransport
from zope.interface import implementer

from aphelion.fastwrite import bufferedBytes

__all__ = ["WriteBufferWatch"]


@implementer(IPushProducer)
class WriteBufferWatch:
    """
    The C{IPushProducer} side of an
    L{aphelion.control.protocol.EnvelopeProtocol}: the transport tells it
    when its write buffer fills and drains.

    The protocol it is mixed into calls L{_watchWrites} when the connection
    is made, L{_wrotePaused} after each write while L{writePaused} (and
    L{writeBufferLimit} is set), and L{_unregister} when it closes.

    :cvar writeBufferLimit: bytes the transport may hold unsent while it has
        paused this end (its write buffer is full: the peer reads too slowly)
        before L{writeBufferOverflowed} is called; L{None} for no limit.
        Measured with L{bufferedBytes} after each write while paused; for a
        transport it cannot measure, the bytes written since the pause.
    :ivar writePaused: whether the transport's write buffer is full. Writes
        still work (they are buffered); a sender with something to drop, such
        as a state update that the next one replaces, may skip it.
    """

    writeBufferLimit: int | None = 4 * 1024 * 1024
    writePaused = False

    _producing = False
    _pausedBytes = 0

    if TYPE_CHECKING:
        # What the protocol it is mixed into provides: its transport, an
        # EnvelopeFactory (for its throttled log), the abort and the peer's
        # address for logs.
        transport: ITransport | None
        factory: Any

        def abortConnection(self) -> None: ...

        def _peer(self) -> str: ...

    def _watchWrites(self, transport: Any) -> None:
        """
        Called when the connection is made: register as the streaming
        producer of C{transport}, if it takes one.
        """
        if getattr(transport, "registerProducer", None) is not None:
            transport.registerProducer(self, True)
            self._producing = True

    def pauseProducing(self) -> None:
        """
        Called when the transport's write buffer is full: the peer reads more
        slowly than we write. A Twisted transport calls it again on every
        write while the buffer stays full, so it resets nothing. Subclasses
        that override it call C{super()}.
        """
        self.writePaused = True

    def resumeProducing(self) -> None:
        """
        Called when the transport's write buffer has drained: the count of
        bytes written while paused starts over. Subclasses that override it
        call C{super()}.
        """
        self.writePaused = False
        self._pausedBytes = 0

    def stopProducing(self) -> None:
        """
        Called when the transport is gone; nothing to do.
        """

    def writeBufferOverflowed(self) -> None:
        """
        Called when the transport holds more than L{writeBufferLimit} bytes
        unsent: the peer is far behind. Logs it (throttled) and aborts the
        connection (an C{Error} would only join the queue).
        """
        self.factory.throttle.warn(
            "peer reads too slowly",
            "{peer} reads too slowly: more than {limit} bytes waiting; aborting",
            peer=self._peer(),
            limit=self.writeBufferLimit,
        )
        self.abortConnection()

    def _wrotePaused(self, transport: Any, written: int) -> None:
        """
        Called after a write of C{written} bytes while the transport has
        paused this end: measure what it holds unsent, and call
        L{writeBufferOverflowed} if that is over L{writeBufferLimit}.
        """
        limit = self.writeBufferLimit
        assert limit is not None
        queued = bufferedBytes(transport)
        if queued is None:
            self._pausedBytes += written
            queued = self._pausedBytes
        if queued > limit:
            self.writeBufferOverflowed()

    def _unregister(self) -> None:
        """
        Stop being the transport's producer, so that it can close.
        """
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()  # type: ignore[union-attr]
