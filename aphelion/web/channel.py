# -*- test-case-name: tests.test_web -*-
"""
The HTTP channel of the players' site, from TCP accept to the WebSocket
upgrade: L{_PlayersChannel} for an admitted connection, L{_Dropped} for one
over a per-address limit.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.server import Request

from aphelion.limits import safeText
from aphelion.web.gate import Admission

__all__: list[str] = []

_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)


class _Dropped(TwistedProtocol):
    """
    The protocol of a connection over a per-address limit: it aborts the
    connection as soon as it is made, reading nothing.
    """

    def connectionMade(self) -> None:
        """
        Called when the connection is made: drop it.
        """
        assert self.transport is not None
        cast(Any, self.transport).abortConnection()


class _PlayersChannel(HTTPChannel):
    """
    The HTTP channel of the players' site.

    It refuses a request with a body (C{Content-Length} > 0 or any
    C{Transfer-Encoding}) with 400 and closes before reading the body,
    serves one request per connection, shows no C{Server} header, and once
    a request is upgraded passes every byte and the end of the connection
    to the WebSocket protocol (L{upgradeTo}).

    :ivar admission: the connection's L{Admission}, set by the site.
    """

    admission: Admission | None = None
    _upgraded: IProtocol | None = None
    _refused = False

    def connectionMade(self) -> None:
        """
        Called when the connection is made: the deadline may abort it.
        """
        super().connectionMade()
        if self.admission is not None:
            self.admission.connected(self.transport)

    def dataReceived(self, data: bytes) -> None:
        """
        Called with bytes from the peer: HTTP until the upgrade, then the
        WebSocket protocol's.
        """
        upgraded = self._upgraded
        if upgraded is not None:
            upgraded.dataReceived(data)
        elif not self._refused:
            super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        """
        Called with bytes after a request's head: those that follow the
        upgrade request in the same read are the WebSocket protocol's.
        """
        upgraded = self._upgraded
        if upgraded is not None:
            upgraded.dataReceived(data)
        elif not self._refused:
            super().rawDataReceived(data)

    def allHeadersReceived(self) -> None:
        """
        Called when a request's headers are read: refuse it if it has a body,
        before anything of the body is read or stored.
        """
        request = self.requests[-1]
        if self.length != 0 or request.requestHeaders.hasHeader(b"transfer-encoding"):
            self._refused = True
            if self.admission is not None:
                self.admission._gate._note(
                    "request with a body",
                    "request from {client} refused with 400: it has a body "
                    "(Content-Length or Transfer-Encoding), which the players' "
                    "site never reads",
                    client=safeText(self.admission.address),
                )
            assert self.transport is not None
            self.transport.write(_BAD_REQUEST)
            self.loseConnection()
            return
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        """
        Called when a request is complete: handle it unless it was refused.
        """
        if not self._refused:
            super().allContentReceived()

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        """
        One request per connection: the site has nothing a client would ask
        twice for, and a connection is not kept waiting for a second.
        """
        request.responseHeaders.setRawHeaders(b"connection", [b"close"])
        return False

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Any
    ) -> None:
        """
        Write a response's head without the C{Server} header, which names
        Twisted's version.
        """
        if isinstance(headers, Headers):
            headers.removeHeader(b"server")
        super().writeHeaders(version, code, reason, headers)

    def upgradeTo(self, protocol: IProtocol) -> None:
        """
        Hand the connection to C{protocol}: it gets the transport, every
        byte from now on and the end of the connection (this channel stays
        the transport's protocol and passes them on, so that the admission
        is released however the connection ends).
        """
        self._upgraded = protocol
        self.setTimeout(None)
        # The upgraded request never finishes, and nothing reads it once
        # the WebSocket protocol has its bytes: let it go, with its headers
        # and body buffer (about 1.5 KB an idle session).
        self.requests = []
        assert self.transport is not None
        protocol.makeConnection(self.transport)
        resume = getattr(self.transport, "resumeProducing", None)
        if resume is not None:
            resume()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Called when the connection is lost: release the admission, and tell
        the WebSocket protocol if the request was upgraded.
        """
        if self.admission is not None:
            self.admission.closed()
        upgraded = self._upgraded
        if upgraded is not None:
            self.setTimeout(None)
            upgraded.connectionLost(reason)
        else:
            super().connectionLost(reason)
