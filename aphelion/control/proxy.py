# -*- test-case-name: tests.test_proxy -*-
"""
The AuthProxy's ends of the connections to a game server (Parts 2.3, 2.4):
L{ControlClientProtocol}, one per game server, and L{PlayerLinkProtocol}, one
per seated player.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from twisted.internet.interfaces import IConnector, IReactorTCP, IReactorTime
from twisted.internet.protocol import ClientFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from aphelion.codes import EnvelopeType
from aphelion.control.protocol import EnvelopeFactory, EnvelopeProtocol
from aphelion.interfaces import (
    IConnection,
    IControlConnection,
    IPlayerLink,
    IPooledServer,
    ISeat,
)
from aphelion.proto import control_pb2, game_pb2

if TYPE_CHECKING:
    from aphelion.control.spawn import GameServer, GameServerMonitor

__all__ = [
    "ControlClientFactory",
    "ControlClientProtocol",
    "LinkConnector",
    "PlayerLinkFactory",
    "PlayerLinkProtocol",
]

T = EnvelopeType

_LINK = "link"  # the cause of our pauses of the player's connections


@implementer(IControlConnection)
class ControlClientProtocol(EnvelopeProtocol):
    """
    The AuthProxy's control connection to one game server.

    Sends C{Control}, waits for C{Ready}, then follows C{Status} and keeps
    heartbeats going both ways.
    """

    _log = Logger()
    factory: ControlClientFactory
    heartbeats = True
    allowedTypes = frozenset({T.Ready, T.Heartbeat})

    def connectionMade(self) -> None:
        """
        Called when the control connection is open: send C{Control} with the
        token, the server id, the options, the client token and the game
        config.
        """
        super().connectionMade()
        factory = self.factory
        server = factory.server
        monitor = factory.monitor
        control = control_pb2.Control(
            token=server.token,
            server_id=server.serverId,
            options=monitor.options,
            client_token=server.clientToken,
        )
        if monitor.gameConfig is not None:
            control.config.CopyFrom(monitor.gameConfig)
        self.sendEnvelope(T.Control, control)

    def envelope_Ready(self, message: control_pb2.Ready) -> None:
        """
        Called when the game server is ready to seat players.
        """
        self.allowedTypes = frozenset({T.Status, T.Heartbeat})
        self.factory.monitor.controlReady(
            self.factory.server, self, message.name, message.capacity
        )

    def envelope_Status(self, message: control_pb2.Status) -> None:
        """
        Called when the game server's player count or capacity changed.
        """
        self.factory.monitor.controlStatus(
            self.factory.server, message.players, message.capacity, message.accepting
        )

    def sendShutdown(self, deadlineMs: int, reason: str) -> None:
        """
        Ask the game server to drain and exit (C{Shutdown}).
        """
        self.sendEnvelope(
            T.Shutdown, control_pb2.Shutdown(deadline_ms=deadlineMs, reason=reason)
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Called when the control connection is gone: tell the monitor.
        """
        super().connectionLost(reason)
        self.factory.monitor.controlLost(self.factory.server, self)


class ControlClientFactory(EnvelopeFactory, ClientFactory):
    """
    Opens the control connection of one game server.

    :ivar monitor: the monitor to report to.
    :ivar server: the game server.
    """

    protocol = ControlClientProtocol  # type: ignore[assignment]
    noisy = False
    _log = Logger()

    firstMessageTimeout = 10.0
    heartbeatInterval = 5.0
    deadAfter = 15.0
    generation: int | None = None

    def __init__(
        self, *, clock: IReactorTime, monitor: GameServerMonitor, server: GameServer
    ) -> None:
        super().__init__(clock=clock)
        self.monitor = monitor
        self.server = server

    def buildProtocol(self, addr: Any) -> ControlClientProtocol:  # type: ignore[override]
        """
        Build the control protocol with the configured timers.
        """
        protocol = cast(ControlClientProtocol, super().buildProtocol(addr))
        protocol.firstMessageTimeout = self.firstMessageTimeout
        protocol.heartbeatInterval = self.heartbeatInterval
        protocol.deadAfter = self.deadAfter
        return protocol

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """
        Called when the control connection could not be opened.
        """
        self._log.warn(
            "cannot open the control connection of {serverId}: {why}",
            serverId=self.server.serverId,
            why=reason.getErrorMessage(),
        )
        self.monitor.controlLost(self.server, self)


@implementer(IPlayerLink)
class PlayerLinkProtocol(EnvelopeProtocol):
    """
    The AuthProxy's connection to a game server for one seated player: it
    sends C{Type{CLIENT}} and C{ClientAuth}, reports C{Connected},
    C{GameConfig} and C{Rejected} to its seat, then relays C{GameData}.

    :ivar seat: the seat it serves.
    """

    _log = Logger()
    factory: PlayerLinkFactory
    seat: ISeat
    allowedTypes = frozenset({T.Connected, T.Rejected, T.Disconnect})
    _relaying = frozenset({T.GameConfig, T.GameData, T.Disconnect})
    _ended = False

    def connectionMade(self) -> None:
        """
        Called when the player connection is open: send C{Type{CLIENT}} and
        C{ClientAuth}.
        """
        super().connectionMade()
        factory = self.factory
        self.seat = factory.seat
        self.sendEnvelope(
            T.Type,
            control_pb2.Type(
                kind=control_pb2.Type.CLIENT,
                token=factory.server.clientToken or factory.server.token,
            ),
        )
        self.sendEnvelope(T.ClientAuth, factory.clientAuth)
        self.seat.linkMade(self)

    # -- from the game server --------------------------------------------------

    def envelope_Connected(self, message: game_pb2.GameDetails) -> None:
        """
        Called when the game server seated the player.
        """
        self.allowedTypes = self._relaying
        self.seat.accepted(message)

    def envelope_GameConfig(self, message: game_pb2.GameConfig) -> None:
        """
        Called with the game's configuration for the player.
        """
        self.seat.gameConfig(message)

    def envelope_Rejected(self, message: control_pb2.Rejected) -> None:
        """
        Called when the game server refused the player.
        """
        self._ended = True
        self.seat.rejected(message.code, message.reason)
        self.loseConnection()

    def envelope_GameData(self, payload: bytes) -> None:
        """
        Called with each packet from the game to the player.
        """
        self.seat.gameData(payload)

    def envelope_Disconnect(self, message: control_pb2.Disconnect) -> None:
        """
        Called when the game server wants the player gone.
        """
        self._ended = True
        self.seat.disconnected(message.code, message.reason)
        self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Called when the connection to the game server is gone: tell the
        seat, unless either side ended it on purpose.
        """
        super().connectionLost(reason)
        self._readClients()
        if not self._ended:
            self._ended = True
            with self._log.failuresHandled("reporting a lost player link failed"):
                self.seat.lost(reason.getErrorMessage())

    # -- from the seat -----------------------------------------------------

    def disconnect(self, code: int, reason: str) -> None:
        """
        Tell the game server the player is gone (C{Disconnect}) and close.
        """
        if self._ended:
            return
        self._ended = True
        self._readClients()
        self.sendEnvelope(
            T.Disconnect, control_pb2.Disconnect(code=code, reason=reason)
        )
        self.loseConnection()

    def pauseReading(self) -> None:
        """
        Stop reading from the game server: the player's connection is full.
        """
        transport: Any = self.transport
        if transport is not None and not self.closing:
            transport.pauseProducing()

    def resumeReading(self) -> None:
        """
        Read from the game server again.
        """
        transport: Any = self.transport
        if transport is not None and not self.closing:
            transport.resumeProducing()

    # -- our write buffer: pause the player's connections --------------------

    def pauseProducing(self) -> None:
        """
        Called when the game server reads too slowly (and again on every write
        while it does): stop reading from the player's connections, with
        the cause C{"link"}.
        """
        wasPaused = self.writePaused
        super().pauseProducing()
        if wasPaused:
            return
        for connection in self.seat.session.connections:
            connection.pauseReading(_LINK)

    def resumeProducing(self) -> None:
        """
        Called when the game server caught up: read from the player again.
        """
        super().resumeProducing()
        self._readClients(force=True)

    def _readClients(self, force: bool = False) -> None:
        """
        Take back this link's pause of the player's connections, if it paused
        them (or C{force}): a link that goes away must not leave them paused.
        """
        if not (force or self.writePaused):
            return
        self.writePaused = False
        for connection in self.seat.session.connections:
            connection.resumeReading(_LINK)


class PlayerLinkFactory(EnvelopeFactory, ClientFactory):
    """
    Opens the player connection of one seat.
    """

    protocol = PlayerLinkProtocol  # type: ignore[assignment]
    noisy = False
    _log = Logger()

    def __init__(
        self,
        *,
        clock: IReactorTime,
        seat: ISeat,
        server: IPooledServer,
        clientAuth: control_pb2.ClientAuth,
    ) -> None:
        super().__init__(clock=clock)
        self.seat = seat
        self.server = server
        self.clientAuth = clientAuth

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """
        Called when the game server could not be reached.
        """
        with self._log.failuresHandled("reporting an unreachable game server failed"):
            self.seat.lost(reason.getErrorMessage())


class LinkConnector:
    """
    Opens player connections to game servers, for the gateway.

    :ivar connectTimeout: seconds to wait for the TCP connection.
    """

    def __init__(self, reactor: Any, connectTimeout: float = 10.0) -> None:
        self._reactor: IReactorTCP = reactor
        self._clock: IReactorTime = reactor
        self.connectTimeout = connectTimeout

    def __call__(self, server: IPooledServer, seat: ISeat) -> None:
        """
        Open the player connection of C{seat} to C{server}.
        """
        session = seat.session
        identity = session.identity
        remote = ""
        connection: IConnection
        for connection in session.connections:
            remote = connection.remoteAddress or remote
        clientAuth = control_pb2.ClientAuth(
            player_id=identity.playerId,
            name=identity.name,
            session_id=session.sessionId,
            remote_address=remote,
            attributes=dict(identity.attributes),
            # A session handed over from another node of the cluster asks
            # for the seat the game server holds for it (Part 5.2).
            resumed=bool(getattr(seat, "resumed", False)),
        )
        assert server.port is not None
        self._reactor.connectTCP(
            server.host,
            server.port,
            PlayerLinkFactory(
                clock=self._clock, seat=seat, server=server, clientAuth=clientAuth
            ),
            timeout=self.connectTimeout,
        )


def controlFactoryMaker(
    monitor: GameServerMonitor,
    server: GameServer,
    firstMessageTimeout: float = 10.0,
    heartbeatInterval: float = 5.0,
    deadAfter: float = 15.0,
) -> ControlClientFactory:
    """
    Make the control connection factory of a game server, for
    L{GameServerMonitor}, with the configured timers.
    """
    factory = ControlClientFactory(clock=monitor.clock, monitor=monitor, server=server)
    factory.firstMessageTimeout = firstMessageTimeout
    factory.heartbeatInterval = heartbeatInterval
    factory.deadAfter = deadAfter
    return factory
