# -*- test-case-name: tests.test_gameserver -*-
"""
The router: every TCP connection to a game server starts with a
L{GameServerRouter}, which waits for the connection's first envelope and
hands the connection to the protocol it calls for (Part 2.2):

- C{Control}: the control connection (L{IGameServer.buildControlProtocol});
- C{Type}: a player connection, the game's
  L{aphelion.game.player.GameServerProtocol} subclass
  (L{IGameServer.buildPlayerProtocol});
- anything else, bytes that are no envelope, or nothing within
  L{GameServerRouter.firstMessageTimeout} seconds: an L{UnroutedProtocol},
  which answers with the contract's C{Error} and closes.

The protocol it hands the connection to gets the bytes received so far, the
first envelope included, and decodes them itself: routing only peeks. The
router stays the transport's protocol, as Twisted's HTTP/2 negotiation
does, and passes on every later C{dataReceived} and the C{connectionLost}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from aphelion.codes import EnvelopeType, ErrorCode
from aphelion.control.protocol import EnvelopeProtocol
from aphelion.envelope import Envelope, EnvelopeDecoder, EnvelopeError
from aphelion.game.interfaces import IGameServer, IGameServerConnection

__all__ = ["GameServerRouter", "UnroutedProtocol"]


class UnroutedProtocol(EnvelopeProtocol):
    """
    A connection whose first envelope is neither C{Control} nor C{Type}: the
    envelope protocol answers it in the contract's order (C{Error{1}},
    C{{2}}, C{{3}}, C{{4}}, or nothing for an C{Error}) and closes.

    Built only by L{IGameServer.buildUnroutedProtocol}.
    """

    factory: IGameServer  # type: ignore[assignment]
    allowedTypes = frozenset({EnvelopeType.Control, EnvelopeType.Type})


@implementer(IGameServerConnection)
class GameServerRouter(Protocol):
    """
    The protocol of every connection to the game server until its first
    envelope is complete; then the one that passes the connection on to
    L{connection}. Built only by the game server's C{buildProtocol}.

    :cvar firstMessageTimeout: seconds within which the first envelope must
        be complete, else C{Error{7}}; L{None} for no limit.
    :ivar connection: the protocol the connection was handed to, or L{None}
        before.
    """

    factory: IGameServer

    firstMessageTimeout: float | None = 10.0

    connection: EnvelopeProtocol | None = None

    _closing = False
    _timeoutCall: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """
        Start the first-envelope timeout; the game server counts the
        connection.
        """
        super().connectionMade()
        self._received = bytearray()
        self._peek = EnvelopeDecoder()
        if self.firstMessageTimeout is not None:
            self._timeoutCall = self.factory.clock.callLater(
                self.firstMessageTimeout, self._timedOut, self.firstMessageTimeout
            )
        self.factory.connectionOpened(self)

    def dataReceived(self, data: bytes) -> None:
        """
        Pass the bytes on once routed; before, keep them until the first
        envelope is complete (or the bytes cannot be envelopes), then route.
        """
        connection = self.connection
        if connection is not None:
            connection.dataReceived(data)
            return
        if self._closing:
            return
        self._received += data
        failed = False
        try:
            envelopes = self._peek.feed(data)
        except EnvelopeError as e:
            envelopes, failed = e.preceding, True
        if envelopes or failed:
            protocol = self._protocolFor(envelopes)
            if envelopes:
                # Its first envelope is here: no timer for it to wait on.
                protocol.firstMessageTimeout = None
            self._handOver(protocol)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Pass the loss on to the protocol the connection was handed to; the
        game server forgets the connection.
        """
        super().connectionLost(reason)
        self._closing = True
        self._cancelTimeout()
        if self.connection is not None:
            self.connection.connectionLost(reason)
        self.factory.connectionClosed(self)

    def loseConnection(self) -> None:
        """
        Close once what is written has been sent, through the protocol the
        connection was handed to, if any.
        """
        if self.connection is not None:
            self.connection.loseConnection()
        elif not self._closing:
            self._closing = True
            self._cancelTimeout()
            self._transport().loseConnection()

    def abortConnection(self) -> None:
        """
        Close now, through the protocol the connection was handed to, if any.
        """
        if self.connection is not None:
            self.connection.abortConnection()
        elif self.transport is not None:
            self._closing = True
            self._cancelTimeout()
            self._transport().abortConnection()

    # -- internals -----------------------------------------------------------

    def _protocolFor(self, envelopes: list[Envelope]) -> EnvelopeProtocol:
        """
        Build the protocol the first envelope calls for.
        """
        factory = self.factory
        first = envelopes[0].type if envelopes else None
        if first == EnvelopeType.Control:
            protocol: EnvelopeProtocol = factory.buildControlProtocol()
        elif first == EnvelopeType.Type:
            protocol = factory.buildPlayerProtocol()
        else:
            protocol = factory.buildUnroutedProtocol()
        return protocol

    def _handOver(self, protocol: EnvelopeProtocol) -> EnvelopeProtocol:
        """
        Connect C{protocol} to the transport and give it what came so far.
        """
        self._cancelTimeout()
        received, self._received = bytes(self._received), bytearray()
        self.connection = protocol
        protocol.makeConnection(self.transport)
        if received:
            protocol.dataReceived(received)
        return protocol

    def _timedOut(self, seconds: float) -> None:
        """
        No complete envelope came in time: C{Error{7}}, from an
        L{UnroutedProtocol}.
        """
        self._timeoutCall = None
        self._received.clear()
        protocol = self._handOver(self.factory.buildUnroutedProtocol())
        protocol.sendError(ErrorCode.TIMEOUT, f"no envelope within {seconds:g} s")

    def _cancelTimeout(self) -> None:
        """
        Cancel the first-envelope timeout.
        """
        if self._timeoutCall is not None and self._timeoutCall.active():
            self._timeoutCall.cancel()
        self._timeoutCall = None

    def _transport(self) -> Any:
        """
        The transport, for its C{abortConnection} (not in C{ITransport}).
        """
        return self.transport
