# -*- test-case-name: tests.test_gameserver -*-
"""
The control connection of a game server (Part 2.3): the AuthProxy's
connection whose first envelope is C{Control}. It is answered with C{Ready}
and C{Status}, exchanges heartbeats and takes C{Shutdown}.
"""

from __future__ import annotations

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from aphelion.codes import EnvelopeType, ErrorCode
from aphelion.control.protocol import EnvelopeProtocol, tokensMatch
from aphelion.game.interfaces import IGameServer
from aphelion.proto import control_pb2

__all__ = ["GameControlProtocol"]


class GameControlProtocol(EnvelopeProtocol):
    """
    The game server's end of the control connection. Built only by
    L{IGameServer.buildControlProtocol}, for a connection whose first
    envelope is C{Control}.
    """

    factory: IGameServer  # type: ignore[assignment]

    allowedTypes = frozenset({EnvelopeType.Control})

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The game server forgets the control connection.
        """
        super().connectionLost(reason)
        self.factory.controlClosed(self)

    def envelope_Control(self, message: control_pb2.Control) -> None:
        """
        Called when C{Control} arrives: with the right token, and no other
        control connection open, this becomes the control connection, and
        its C{client_token} the token player connections must present.
        """
        server = self.factory
        if not tokensMatch(message.token, server.token):
            self.sendError(ErrorCode.BAD_TOKEN, "bad control token")
            return
        control = server.control
        if control is not None and not control.closing:
            self.sendError(
                ErrorCode.NOT_ALLOWED_NOW, "a control connection is already open"
            )
            return
        self.allowedTypes = frozenset({EnvelopeType.Heartbeat, EnvelopeType.Shutdown})
        # Player connections present the client token from now on (the
        # control token while Control names none).
        server.clientToken = message.client_token
        config = message.config if message.HasField("config") else None
        if server.controlOpened(self, dict(message.options), config, message.server_id):
            self.startHeartbeats()

    def envelope_Shutdown(self, message: control_pb2.Shutdown) -> None:
        """
        Called when the AuthProxy asks the game server to drain and exit.
        """
        self.factory.shutdown(
            message.reason or "shutdown requested",
            message.deadline_ms / 1000 if message.deadline_ms else None,
        )
