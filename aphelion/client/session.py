# -*- test-case-name: tests.test_client -*-
"""
Inverse multiplexing (Part 1.4) from the client's side: a L{ClientSession}
is several game sockets that share one session token, sends each payload on
the connection L{aphelion.ack.pickConnection} chooses and merges what they
receive.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredLock, fail
from twisted.logger import Logger
from zope.interface import implementer

from aphelion.ack import pickConnection
from aphelion.codes import AphelionProtocol, CloseCode
from aphelion.session import tokenHint

from .connect import connectFactory
from .payloads import PayloadQueue
from .protocol import (
    ABNORMAL_CLOSURE,
    AphelionClientFactory,
    AphelionClientProtocol,
    ClosedError,
    IClientSession,
)

__all__ = ["ClientSession", "NotConnectedError"]


class NotConnectedError(Exception):
    """
    A L{ClientSession} has no open connection to send on.
    """


@implementer(IClientSession)
class ClientSession:
    """
    Several game sockets that share one session token.

    The first connection gets the token; the rest present it. Payloads go out
    on the open connection with the fewest unacknowledged packets (on a tie,
    the one used least recently: L{aphelion.ack.pickConnection}, as the
    server chooses), and payloads received on any of them are
    merged in arrival order for L{nextPayload}.

    If a connection that presented the token gets a different one back, the
    old session is gone: the session takes the new token and closes its
    connections of the old one with 4005 (L{newSessionStarted} is called).

    :ivar token: the session token, or L{None} before the first handshake.
    :ivar moved: whether a connection was closed with 4010 (the session
        moved to another AuthProxy of the cluster; L{sessionMoved}).
    :ivar connections: the open, handshaken connections, in joining order.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        url: str,
        *,
        protocol: int = AphelionProtocol.GAME,
        version: int = 0,
        token: bytes | None = None,
        **options: Any,
    ) -> None:
        """
        :param reactor: the reactor to connect with; also the clock.
        :param url: the server's WebSocket URL.
        :param protocol: the C{aphelion_protocol} of every connection.
        :param version: the protocol revision, 0 to skip the check.
        :param token: a token to resume, or L{None} for a new session.
        :param options: more keyword arguments of L{AphelionClientFactory}.
        """
        self._reactor = reactor
        self.url = url
        self.aphelionProtocol = protocol
        self.version = version
        self.token = token
        self.connections: list[AphelionClientProtocol] = []
        self._options = options
        self._queue = PayloadQueue()
        self._firstLock = DeferredLock()
        self._connecting = 0
        self._tick = 0
        self._lastClose: tuple[int, str] | None = None
        self.moved = False

    def buildFactory(self) -> AphelionClientFactory:
        """
        :return: a factory for one more connection of this session: it
            presents the current token.
        """
        return AphelionClientFactory(
            self.url,
            clock=self._reactor,
            aphelionProtocol=self.aphelionProtocol,
            protocolVersion=self.version,
            token=self.token,
            session=self,
            **self._options,
        )

    def connect(self) -> Deferred[AphelionClientProtocol]:
        """
        Open one more connection of this session. While the session has no
        token yet, connections are opened one after the other, so that only
        the first one makes a session.

        :return: a L{Deferred} that fires with the connection once its
            handshake is done, or fails like L{aphelion.client.connect}.
        """
        return Deferred.fromCoroutine(self._connect())

    async def _connect(self) -> AphelionClientProtocol:
        if self.token is None:
            await self._firstLock.acquire()
            try:
                if self.token is None:
                    return await self._connectOne()
            finally:
                self._firstLock.release()
        return await self._connectOne()

    async def _connectOne(self) -> AphelionClientProtocol:
        self._connecting += 1
        try:
            return await connectFactory(self._reactor, self.buildFactory())
        except ClosedError as e:
            self._lastClose = (e.code, e.reason)
            raise
        finally:
            self._connecting -= 1
            if not self.connections and not self._connecting:
                code, reason = self._lastClose or (ABNORMAL_CLOSURE, "not connected")
                self._queue.failWaiters(ClosedError(code, reason))

    def open(self, count: int) -> Deferred[ClientSession]:
        """
        Open C{count} connections of this session, one after the other.

        :return: a L{Deferred} that fires with this session, or fails like
            L{connect}.
        """

        async def openAll() -> ClientSession:
            """
            Open the connections one after the other.
            """
            for _ in range(count):
                await self.connect()
            return self

        return Deferred.fromCoroutine(openAll())

    def chooseConnection(self) -> AphelionClientProtocol:
        """
        :return: the open connection with the fewest unacknowledged packets;
            on a tie, the one used least recently.
        :raises NotConnectedError: when no connection is open.
        """
        best = pickConnection(conn for conn in self.connections if conn.handshaken)
        if best is None:
            raise NotConnectedError("no open connection in this session")
        return best

    def sendPayload(self, payload: bytes) -> AphelionClientProtocol:
        """
        Send one payload on the connection L{chooseConnection} picks.

        :return: the connection it went out on.
        :raises NotConnectedError: when no connection is open.
        """
        conn = self.chooseConnection()
        self._tick += 1
        conn.lastUsed = self._tick
        conn.sendPayload(payload)
        return conn

    def nextPayload(self) -> Deferred[bytes]:
        """
        Take the oldest payload received on any connection and not taken yet.

        :return: a L{Deferred} that fires with it, or fails with
            L{ClosedError} (the last close) when the session has no open or
            opening connection and nothing is left.
        """
        d = self._queue.get()
        if d is not None:
            return d
        if not self.connections and not self._connecting:
            code, reason = self._lastClose or (ABNORMAL_CLOSURE, "not connected")
            return fail(ClosedError(code, reason))
        return self._queue.wait()

    def close(
        self, code: int = CloseCode.NORMAL, reason: str = "bye"
    ) -> Deferred[None]:
        """
        Close every connection of the session.

        :return: a L{Deferred} that fires when all of them are closed.
        """

        async def closeAll() -> None:
            """
            Close every connection and wait for each.
            """
            conns = list(self.connections)
            for conn in conns:
                conn.closeWith(code, reason)
            for conn in conns:
                await conn.whenClosed()

        return Deferred.fromCoroutine(closeAll())

    # -- IClientSession: called by the connections ---------------------------

    def connectionReady(self, conn: AphelionClientProtocol) -> None:
        """
        Called when C{conn} finished its init handshake: it joins
        L{connections}. When the server answered its presented token with a
        new session, the connections of the old one are closed with 4005 and
        L{newSessionStarted} is called.
        """
        presented = conn.presentedToken
        self.token = conn.token
        self.connections.append(conn)
        if presented is None or conn.resumed:
            return
        assert conn.token is not None
        self._log.info(
            "session {old} is gone; the server made session {new}",
            old=tokenHint(presented),
            new=tokenHint(conn.token),
        )
        for old in list(self.connections):
            if old.token == presented:
                old.closeWith(
                    CloseCode.UNEXPECTED_NEW_SESSION,
                    "the server made a new session unexpectedly",
                )
        with self._log.failuresHandled("newSessionStarted failed"):
            self.newSessionStarted(presented, conn.token)

    def connectionClosed(self, conn: AphelionClientProtocol) -> None:
        """
        Called when C{conn} closed: it leaves L{connections}; once none is
        open or opening, whoever waits in L{nextPayload} gets its close.
        """
        if conn in self.connections:
            self.connections.remove(conn)
        assert conn.closeCode is not None
        self._lastClose = (conn.closeCode, conn.closeReason)
        if conn.closeCode == CloseCode.SESSION_MOVED:
            self.moved = True
            with self._log.failuresHandled("sessionMoved failed"):
                self.sessionMoved(conn)
        if not self.connections and not self._connecting:
            self._queue.failWaiters(ClosedError(conn.closeCode, conn.closeReason))

    # -- hooks -------------------------------------------------------------

    def payloadReceived(self, conn: AphelionClientProtocol, payload: bytes) -> None:
        """
        Called with each non-empty payload received on any connection of the
        session. The default queues it for L{nextPayload}.
        """
        self._queue.put(payload)

    def sessionMoved(self, conn: AphelionClientProtocol) -> None:
        """
        Called when C{conn} was closed with 4010: another AuthProxy of the
        cluster took the session over, because a connection presented its
        token there (Part 5). The session's other connections go on; with
        none left, L{nextPayload} fails with the 4010. The default does
        nothing: a client behind a balancer that sent its next connection
        to another node has its session there already.
        """

    def newSessionStarted(self, previous: bytes, token: bytes) -> None:
        """
        Called when the server answered a presented token with a new session;
        the connections of the old one are closing with 4005. The default
        does nothing.

        :param previous: the token of the session that is gone.
        :param token: the new token, now L{token}.
        """
