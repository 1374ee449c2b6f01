# -*- test-case-name: tests.test_web -*-
"""
The players' web site: the WebSocket endpoint behind the limits of Part 6
that apply before the upgrade, and the static pages of L{PAGES} (the
JavaScript client library and the chat page) under a prefix.

L{makeSite} builds an L{AphelionSite}. Every accepted connection gets an
L{Admission} from the site's L{ConnectionGate}: its place under the
per-address limits and its upgrade deadline. The site's HTTP channel
refuses any request with a body before reading it, answers a plain request
on the WebSocket path with 426, serves L{Pages} under the pages prefix, and
any other path with 404 (none of them shows a version), and hands an
upgrade request to L{WebSocketEndpoint}, which attaches the admission to
the WebSocket protocol as C{protocol.admission}.

L{raiseFileLimit} raises the open-files limit at start-up.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol, cast
from urllib.parse import unquote_to_bytes

from autobahn.twisted.resource import WebSocketResource
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.web import static
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource, getChildForRequest
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.util import Redirect
from zope.interface import implementer

from aphelion.config import Config
from aphelion.limits import (
    AddressCounter,
    Exemptions,
    KeyedRateLimiter,
    normalAddress,
    safeText,
)
from aphelion.logthrottle import ThrottledLog

__all__ = [
    "FILE_RESERVE",
    "LIMIT_HINT",
    "PAGES",
    "Admission",
    "AphelionSite",
    "ConnectionGate",
    "Pages",
    "WebSocketEndpoint",
    "filesNeeded",
    "makeSite",
    "raiseFileLimit",
]

_log = Logger()

#: Appended to the log line of a per-address limit (Part 6).
LIMIT_HINT = (
    "behind a reverse proxy, give --trust-forwarded-for (or use the PROXY "
    "protocol), or --exempt the proxy's address"
)

#: Open files kept for listeners, logs, databases and the like.
FILE_RESERVE = 128

#: The players' pages shipped with aphelion: C{index.html}, the chat page,
#: C{aphelion.js} (a copy of C{clients/js/aphelion.js}) and C{vendor/}.
PAGES: FilePath[str] = FilePath(__file__).sibling("pages")

_UPGRADED = (WebSocketProtocol.STATE_OPEN, WebSocketProtocol.STATE_CLOSING)
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)


def _hostOf(address: IAddress | None) -> str | None:
    """
    :return: the IP address of C{address}, or L{None} for an address that
        has none (a UNIX socket).
    """
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else None


class ConnectionGate:
    """
    The per-address limits counted from TCP accept (Part 6): open connections
    per client address and new connections per client address, except for
    the exempt addresses. Builds the L{Admission} of each accepted
    connection.

    When the front proxy is trusted (C{trustForwardedFor}), the peer at
    accept is that proxy: its connections are counted but not limited, and
    the limits apply once L{Admission.forwardedFrom} names the client. A peer
    with no IP address (a UNIX socket: a local front proxy) is not limited.

    Memory follows what is open: the counts forget an address whose last
    connection closed, and the rate limiter remembers at most
    C{maxAddresses} addresses (those whose bucket is full again first).

    :ivar clock: the clock of the deadlines and rates.
    :ivar upgradeTimeout: seconds from accept to a completed upgrade; 0 is
        no limit.
    :ivar trustForwardedFor: whether the peer at accept is a trusted proxy.
    :ivar exemptions: the addresses the per-address limits do not apply to.
    :ivar open: connections admitted and not closed yet.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        config: Config,
        throttledLog: ThrottledLog,
        maxAddresses: int = 100_000,
    ) -> None:
        """
        :param clock: the clock of the deadlines and rates.
        :param config: C{upgradeTimeout}, C{connectionsPerAddress},
            C{connectionRate}, C{connectionBurst}, C{exempt} and
            C{trustForwardedFor} are read.
        :param throttledLog: writes the lines an outsider can cause.
        :param maxAddresses: the most addresses the rate limiter remembers.
        """
        self.clock = clock
        self.upgradeTimeout = config.upgradeTimeout
        self.trustForwardedFor = config.trustForwardedFor
        self.exemptions = Exemptions(config.exempt)
        self.open = 0
        self._throttled = throttledLog
        self._counts: AddressCounter[str] = AddressCounter(config.connectionsPerAddress)
        self._proxies: AddressCounter[str] = AddressCounter(0)
        self._rates: KeyedRateLimiter[str] = KeyedRateLimiter(
            config.connectionRate, config.connectionBurst, maxAddresses
        )

    def connectionsFrom(self, address: str) -> int:
        """
        :return: the open connections counted for C{address}, as a client
            or as a trusted proxy.
        """
        address = normalAddress(address)
        return self._counts[address] + self._proxies[address]

    @property
    def addressesRemembered(self) -> int:
        """
        How many addresses the counts and the rate limiter remember.
        """
        return len(self._counts) + len(self._proxies) + len(self._rates)

    def admit(self, peer: IAddress | None) -> Admission | None:
        """
        Called when a TCP connection from C{peer} is accepted.

        :return: its L{Admission}, with the upgrade deadline running, or
            L{None} if the address is over one of its limits (the connection
            is to be dropped; the first drop of each kind in a log interval
            is logged).
        """
        host = _hostOf(peer)
        counter: AddressCounter[str] | None = None
        if host is not None:
            host = normalAddress(host)
            if self.trustForwardedFor:
                counter = self._proxies
                counter.acquire(host)
            else:
                claimed, counter = self._claim(host, None)
                if not claimed:
                    return None
        admission = Admission(self, host or str(peer), counter)
        self.open += 1
        if self.upgradeTimeout > 0:
            admission._deadline = self.clock.callLater(
                self.upgradeTimeout, admission._expired
            )
        return admission

    def _claim(
        self, address: str, proxy: str | None
    ) -> tuple[bool, AddressCounter[str] | None]:
        """
        Count one more connection from C{address} if its limits allow.

        :param proxy: the front proxy's address when C{address} was
            forwarded by it.
        :return: whether it may proceed, and the counter it was counted in
            (L{None} when nothing was counted: an exempt address).
        """
        if address in self.exemptions:
            return True, None
        via = f" (via {proxy})" if proxy is not None else ""
        if not self._rates.allow(address, self.clock.seconds()):
            self._throttled.warn(
                "new connections too fast from one address",
                "connection from {address}{via} dropped: more than {rate:g} new "
                "connections per second (bursts of {burst:g}) from one address "
                "(--connection-rate, --connection-burst); {hint}",
                address=safeText(address),
                via=via,
                rate=self._rates.rate,
                burst=self._rates.burst,
                hint=LIMIT_HINT,
            )
            return False, None
        if not self._counts.acquire(address):
            self._throttled.warn(
                "too many connections from one address",
                "connection from {address}{via} dropped: {limit} connections "
                "from that address are open, the limit per address "
                "(--connections-per-address); {hint}",
                address=safeText(address),
                via=via,
                limit=self._counts.limit,
                hint=LIMIT_HINT,
            )
            return False, None
        return True, self._counts

    def _note(self, cause: str, format: str, **kwargs: Any) -> None:
        """
        Write an info line of C{cause} through the throttled log.
        """
        self._throttled.info(cause, format, **kwargs)


class Admission:
    """
    One accepted connection's place under the limits of Part 6, from TCP
    accept to its close, made by L{ConnectionGate.admit}.

    The site's channel calls L{connected}; L{WebSocketEndpoint} attaches it
    to the WebSocket protocol as C{protocol.admission} before the handshake
    runs, for the protocol to call L{forwardedFrom} (in C{onConnect}, when
    the front proxy is trusted), L{opened} (in C{onOpen}) and L{closed} (in
    C{connectionLost}). Every method may be called more than once.

    If the upgrade is not complete C{upgradeTimeout} seconds after accept,
    the connection is aborted (dropped without a response).

    :ivar peer: the peer's address at accept (the front proxy's, if trusted).
    :ivar address: the client address: the peer's, or the forwarded one
        once L{forwardedFrom} accepted it.
    :ivar isOpen: whether the WebSocket upgrade completed.
    :ivar isClosed: whether the connection closed.
    """

    isOpen = False
    isClosed = False
    _deadline: IDelayedCall | None = None
    _transport: Any = None
    _protocol: Any = None
    _forwarded: bool | None = None

    def __init__(
        self, gate: ConnectionGate, peer: str, counter: AddressCounter[str] | None
    ) -> None:
        """
        :param gate: the gate that admitted the connection.
        :param peer: the peer's address at accept.
        :param counter: where C{peer} is counted, or L{None} if nowhere.
        """
        self._gate = gate
        self.peer = self.address = self._key = peer
        self._counter = counter

    def connected(self, transport: Any) -> None:
        """
        Called with the connection's transport, which the deadline aborts.
        """
        if not self.isClosed:
            self._transport = transport

    def upgrading(self, protocol: Any) -> None:
        """
        Called with the WebSocket protocol that takes the connection over.
        If it is open when the deadline passes, L{opened} was not called but
        the upgrade did complete: the connection is kept.
        """
        if not self.isClosed:
            self._protocol = protocol

    def opened(self) -> None:
        """
        Called when the WebSocket upgrade completed: cancel the deadline.
        """
        if self.isClosed:
            return
        self.isOpen = True
        self._cancelDeadline()

    def closed(self) -> None:
        """
        Called when the connection is lost: release what it counted.
        """
        if self.isClosed:
            return
        self.isClosed = True
        self._cancelDeadline()
        self._release()
        self._gate.open -= 1
        self._transport = self._protocol = None

    def forwardedFrom(self, address: str) -> bool:
        """
        Called with the client address that the trusted front proxy
        forwarded (C{X-Forwarded-For}): count the connection under it
        instead of under the proxy, under its per-address limits.

        When the front proxy is not trusted, the address is ignored.

        :return: whether the connection may proceed; L{False} when
            C{address} is over one of its limits (answer 503). Later calls
            return the first answer.
        """
        if self._forwarded is not None:
            return self._forwarded
        gate = self._gate
        if self.isClosed or not gate.trustForwardedFor:
            self._forwarded = not self.isClosed
            return self._forwarded
        address = normalAddress(address)
        self._release()
        claimed, self._counter = gate._claim(address, self.peer)
        self.address = self._key = address
        self._forwarded = claimed
        return claimed

    def _release(self) -> None:
        counter, self._counter = self._counter, None
        if counter is not None:
            counter.release(self._key)

    def _cancelDeadline(self) -> None:
        call, self._deadline = self._deadline, None
        if call is not None and call.active():
            call.cancel()

    def _expired(self) -> None:
        self._deadline = None
        if self.isClosed or self.isOpen:
            return
        protocol = self._protocol
        if protocol is not None and getattr(protocol, "state", None) in _UPGRADED:
            self.opened()
            return
        self._gate._note(
            "no upgrade in time",
            "connection from {address} dropped: no WebSocket upgrade within "
            "{timeout:g} s of accept (--upgrade-timeout)",
            address=safeText(self.address),
            timeout=self._gate.upgradeTimeout,
        )
        transport = self._transport
        if transport is not None:
            transport.abortConnection()


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


def _asksForWebSocket(request: Request) -> bool:
    """
    :return: whether C{request} asks for an upgrade to WebSocket.
    """
    for value in request.requestHeaders.getRawHeaders(b"upgrade", []):
        for token in value.split(b","):
            if token.strip().lower() == b"websocket":
                return True
    return False


def _plainResponse(
    request: Request,
    code: int,
    message: bytes,
    body: bytes,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """
    Set up a short text response, and give its body (none for C{HEAD}:
    C{Request.render} would log a line for a body, and a HEAD request is
    one an outsider can send).
    """
    request.setResponseCode(code, message)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    for name, value in headers:
        request.setHeader(name, value)
    if request.method == b"HEAD":
        request.setHeader(b"content-length", b"%d" % (len(body),))
        return b""
    return body


def _clientOf(request: Request) -> str:
    """
    :return: the client address of C{request}, for a log line.
    """
    admission = getattr(request.channel, "admission", None)
    if isinstance(admission, Admission):
        return admission.address
    return _hostOf(request.getClientAddress()) or "-"


@implementer(IResource)
class WebSocketEndpoint(WebSocketResource):
    """
    The WebSocket endpoint: an upgrade request is handed to a protocol of
    the factory, with the connection's L{Admission} attached as
    C{protocol.admission} before the handshake runs. A request without
    C{Upgrade: websocket} gets HTTP 426.
    """

    def __init__(self, factory: Any) -> None:
        """
        :param factory: the C{WebSocketServerFactory} of the protocols.
        """
        super().__init__(factory)
        self.factory = factory

    def render(self, request: Request) -> bytes | int:
        """
        Called for a request on the WebSocket path.
        """
        if not _asksForWebSocket(request):
            return _plainResponse(
                request,
                426,
                b"Upgrade Required",
                b"426 Upgrade Required: this is a WebSocket endpoint.\n",
                ((b"upgrade", b"websocket"),),
            )
        channel = request.channel
        if not isinstance(channel, _PlayersChannel) or channel.transport is None:
            # Not served by an AphelionSite: Autobahn's own hand-over.
            return cast(bytes | int, super().render(request))
        protocol = self.factory.buildProtocol(channel.transport.getPeer())
        if protocol is None:
            return _plainResponse(
                request, 503, b"Service Unavailable", b"503 Service Unavailable\n"
            )
        admission = channel.admission
        if admission is not None:
            protocol.admission = admission
            admission.upgrading(protocol)
        channel.upgradeTo(protocol)
        # Autobahn parses the handshake again from the bytes; the body is
        # empty (the channel refused any other).
        head = [request.method, b" ", request.uri, b" HTTP/1.1\r\n"]
        for name, values in request.requestHeaders.getAllRawHeaders():
            head += [name, b": ", b",".join(values), b"\r\n"]
        head.append(b"\r\n")
        protocol.dataReceived(b"".join(head))
        return NOT_DONE_YET


@implementer(IResource)
class _NotFound:
    """
    Any path but the WebSocket endpoint's: HTTP 404 and a rate-limited log
    line naming the path, so an operator sees a client knocking on the
    wrong door (Part 1.7).
    """

    isLeaf = True

    def __init__(self, endpointPath: str, throttledLog: ThrottledLog) -> None:
        self._endpointPath = endpointPath
        self._throttled = throttledLog

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        """
        Called for a child: there are none, it is this resource again.
        """
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        """
        Children are not kept.
        """

    def render(self, request: Request) -> bytes:
        """
        Called for a request on another path: 404.
        """
        self._throttled.info(
            "request on another path",
            "request from {client} for {path} answered 404: the WebSocket "
            "endpoint is {endpoint} (set with --path; --legacy serves /)",
            client=safeText(_clientOf(request)),
            path=safeText(request.path.decode("utf-8", "backslashreplace")),
            endpoint=self._endpointPath,
        )
        return _plainResponse(request, 404, b"Not Found", b"404 Not Found\n")


class Pages(static.File):
    """
    The players' static pages: files of a directory, read with
    L{twisted.web.static.File}, with C{index.html} for a directory, no
    directory listing, and the site's 404 (logged, rate-limited) for any
    name that is not there.

    Each response says how to cache it: C{no-cache} (keep it, but ask with
    C{If-Modified-Since} each time; a 304 then costs no body), so that an
    upgraded aphelion is seen at once; files under C{vendor/}, whose names
    carry their version, are immutable for a year. Every response has
    C{X-Content-Type-Options: nosniff} and a content security policy that
    allows the site's own scripts and WebSocket connections only.
    """

    contentTypes = {
        **static.File.contentTypes,
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".ts": "text/plain; charset=utf-8",
        ".txt": "text/plain; charset=utf-8",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".ico": "image/x-icon",
    }
    indexNames = ["index.html"]
    #: The C{Cache-Control} of files outside C{vendor/}.
    cacheControl = b"no-cache"
    #: The C{Cache-Control} of files under C{vendor/}.
    vendorCacheControl = b"public, max-age=31536000, immutable"
    #: Scripts from the site only; C{'unsafe-eval'} because protobufjs
    #: compiles its encoders and decoders at run time.
    securityPolicy = (
        b"default-src 'self'; script-src 'self' 'unsafe-eval'; "
        b"connect-src 'self' ws: wss:; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )

    def __init__(self, path: str, notFound: IResource, *args: Any) -> None:
        """
        :param path: the directory (or file) to serve.
        :param notFound: the resource of any missing name.
        """
        super().__init__(path, *args)
        self.childNotFound = cast(Any, notFound)

    def createSimilarFile(self, path: str) -> Pages:
        """
        Called for a child: a L{Pages} of C{path} with the same 404.
        """
        child = Pages(path, self.childNotFound, self.defaultType)
        child.indexNames = self.indexNames[:]
        return child

    def getChild(self, path: bytes, request: Request) -> IResource:
        """
        Called for a child: the file named C{path} here, or 404 (a name that
        is not UTF-8 included, which C{File} would log with a traceback).
        """
        try:
            path.decode("utf-8")
        except UnicodeDecodeError:
            return cast(IResource, self.childNotFound)
        return cast(IResource, super().getChild(path, request))

    def directoryListing(self) -> IResource:
        """
        Called for a directory without an index: 404, never a listing.
        """
        return cast(IResource, self.childNotFound)

    def render_GET(self, request: Request) -> bytes | int:
        """
        Called for C{GET} (and C{HEAD}): the file with its cache and
        security headers.
        """
        vendored = self.parent().basename() == "vendor"
        request.setHeader(
            b"cache-control",
            self.vendorCacheControl if vendored else self.cacheControl,
        )
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", self.securityPolicy)
        request.setHeader(b"referrer-policy", b"no-referrer")
        return cast(bytes | int, super().render_GET(request))

    render_HEAD = render_GET


def _pagesPrefix(prefix: str) -> list[bytes]:
    """
    :return: the path segments of a pages prefix (none for C{/}).
    :raises ValueError: if C{prefix} does not start with C{/}.
    """
    if not prefix.startswith("/"):
        raise ValueError(f"the pages prefix must start with /, not {prefix!r}")
    return [part.encode("utf-8") for part in prefix.strip("/").split("/") if part]


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


def _normalPath(path: bytes) -> bytes:
    """
    :return: C{path} with its percent escapes decoded, except an escaped
        slash (C{%2F} is reserved: RFC 3986 6.2.2), and one trailing slash
        removed, to compare paths: C{/aphelion/} is C{/aphelion}, but
        C{//aphelion}, C{/aphelion//} and C{/aphelion%2F} are other paths.
    """
    decoded = b"%2F".join(unquote_to_bytes(part) for part in re.split(rb"%2[fF]", path))
    if decoded.endswith(b"/") and not decoded.endswith(b"//"):
        decoded = decoded[:-1]
    return decoded


class AphelionSite(Site):
    """
    The C{Site} of the players: the WebSocket endpoint at one path, the
    static pages (if any) under their prefix, 404 on any other path, with
    the limits of Part 6 that apply before the upgrade.

    An upgrade request on the endpoint's path always reaches the endpoint.
    A plain request there gets 426, unless the endpoint's path is the pages
    prefix itself (C{--legacy} serves the endpoint at C{/}): then it gets the
    pages' index, for a person who opens the site in a browser.

    A connection over a per-address limit at accept is dropped: it is given
    a protocol that aborts it at once, reading nothing and answering
    nothing (cheaper than parsing a request to answer 503; C{None} from
    L{buildProtocol} would do for plain TCP but breaks a TLS endpoint's
    wrapping factory). HTTP/2 is not offered over TLS: the endpoint is an
    HTTP/1.1 upgrade.

    It writes no access log line per request: a WebSocket gateway's requests
    are its handshakes, which aphelion logs itself.

    :ivar endpoint: the WebSocket endpoint resource.
    :ivar path: its URL path.
    :ivar gate: the per-address limits and deadlines.
    :ivar pages: the static pages, or L{None} when none are served.
    :ivar pagesPrefix: the URL path the pages are under, such as C{/}.
    """

    protocol = _PlayersChannel  # type: ignore[assignment]

    def __init__(
        self,
        endpoint: IResource,
        *,
        path: str,
        gate: ConnectionGate,
        throttledLog: ThrottledLog,
        clock: IReactorTime,
        stopLog: bool = False,
        pagesPrefix: str | None = None,
        pagesDirectory: FilePath[str] | None = None,
    ) -> None:
        """
        :param endpoint: the WebSocket endpoint resource.
        :param path: its URL path, such as C{/aphelion} or C{/}.
        :param gate: admits each accepted connection.
        :param throttledLog: writes the lines an outsider can cause.
        :param clock: the clock of the channels' timers.
        :param stopLog: stop C{throttledLog} when the site stops.
        :param pagesPrefix: the URL path to serve the pages under, such as
            C{/} or C{/play/}; L{None} serves none.
        :param pagesDirectory: the pages' directory, L{PAGES} by default.
        :raises ValueError: if C{pagesPrefix} does not start with C{/}.
        """
        # The upgrade deadline replaces Twisted's idle timeout, which
        # restarts with every byte; without a deadline, keep the idle one.
        timeout = None if gate.upgradeTimeout > 0 else 60
        super().__init__(endpoint, reactor=clock, timeout=timeout)
        self.endpoint = endpoint
        self.path = path
        self.gate = gate
        self._path = _normalPath(path.encode("utf-8"))
        self._throttled = throttledLog
        self._stopLog = stopLog
        self._notFound = _NotFound(path, throttledLog)
        self.pagesPrefix = pagesPrefix
        self.pages: Pages | None = None
        self._prefix: list[bytes] = []
        if pagesPrefix is not None:
            self._prefix = _pagesPrefix(pagesPrefix)
            directory = PAGES if pagesDirectory is None else pagesDirectory
            self.pages = Pages(directory.path, self._notFound)
            # The pages' scripts learn the endpoint's path (--path) here.
            endpointInfo = json.dumps({"path": path}).encode("utf-8")
            self.pages.putChild(
                b"endpoint.json", static.Data(endpointInfo, "application/json")
            )
        self._pagesAtEndpoint = self.pages is not None and self._path == _normalPath(
            b"/" + b"/".join(self._prefix)
        )

    def buildProtocol(self, addr: IAddress | None) -> Any:
        """
        Called when a TCP connection is accepted: admit it under the
        per-address limits, or drop it.
        """
        admission = self.gate.admit(addr)
        if admission is None:
            dropped = _Dropped()
            dropped.factory = self
            return dropped
        channel = super().buildProtocol(addr)
        channel.admission = admission
        return channel

    def getResourceFor(self, request: Request) -> IResource:
        """
        The WebSocket endpoint for its path (with or without a trailing
        slash), a page under the pages prefix, a 404 for any other.
        """
        request.site = self
        cast(Any, request).sitepath = []
        if _normalPath(request.path) == self._path and (
            not self._pagesAtEndpoint or _asksForWebSocket(request)
        ):
            return self.endpoint
        pages = self.pages
        prefix = self._prefix
        postpath: list[bytes] = request.postpath or []
        if pages is not None and postpath[: len(prefix)] == prefix:
            if len(postpath) == len(prefix) and prefix:
                # /play is /play/ (which the page's relative links need).
                return Redirect(b"/" + b"/".join(prefix) + b"/")
            request.prepath = postpath[: len(prefix)]
            request.postpath = postpath[len(prefix) :]
            return cast(IResource, getChildForRequest(pages, request))
        return self._notFound

    def acceptableProtocols(self) -> list[bytes]:
        """
        The protocols offered in TLS ALPN: HTTP/1.1 only.
        """
        return [b"http/1.1"]

    def log(self, request: Any) -> None:
        """
        Write nothing to an access log.
        """

    def startFactory(self) -> None:
        """
        Called when the first port starts listening. There is no access log
        to open, nor its clock to keep.
        """

    def stopFactory(self) -> None:
        """
        Called when the last port stops listening: stop the summary timers
        of the log it owns.
        """
        super().stopFactory()
        if self._stopLog:
            self._throttled.stop()


def makeSite(
    factory: Any,
    config: Config,
    clock: IReactorTime,
    *,
    throttledLog: ThrottledLog | None = None,
    pagesPrefix: str | None = "/",
    pagesDirectory: FilePath[str] | None = None,
) -> AphelionSite:
    """
    Make the players' site: the WebSocket endpoint of C{factory} at
    C{config.path}, and the players' pages under C{pagesPrefix}, behind
    the limits of Part 6 that apply before the upgrade.

    :param factory: the C{WebSocketServerFactory} (an
        C{AphelionServerFactory}).
    :param config: the settings; C{path}, C{upgradeTimeout},
        C{connectionsPerAddress}, C{connectionRate}, C{connectionBurst},
        C{exempt}, C{trustForwardedFor} and C{logInterval} are read.
    :param clock: the clock of every timer.
    :param throttledLog: the rate-limited log to write to; by default the
        site makes its own and stops it when it stops.
    :param pagesPrefix: the URL path of the pages (C{--pages-prefix}), the
        site's root by default; L{None} serves none (C{--no-pages}).
    :param pagesDirectory: the pages' directory, L{PAGES} by default.
    :return: the site, ready for C{strports.service}.
    :raises ValueError: if C{pagesPrefix} does not start with C{/}.
    """
    stopLog = throttledLog is None
    if throttledLog is None:
        throttledLog = ThrottledLog(_log, clock=clock, interval=config.logInterval)
    gate = ConnectionGate(clock=clock, config=config, throttledLog=throttledLog)
    return AphelionSite(
        WebSocketEndpoint(factory),
        path=config.path,
        gate=gate,
        throttledLog=throttledLog,
        clock=clock,
        stopLog=stopLog,
        pagesPrefix=pagesPrefix,
        pagesDirectory=pagesDirectory,
    )


class _Limits(Protocol):
    """
    What L{raiseFileLimit} uses of the C{resource} module.
    """

    RLIMIT_NOFILE: int
    RLIM_INFINITY: int

    def getrlimit(self, resource: int, /) -> tuple[int, int]: ...

    def setrlimit(self, resource: int, limits: tuple[int, int], /) -> None: ...


def filesNeeded(config: Config) -> int:
    """
    About how many open files the AuthProxy needs at its connection cap:
    two sockets per WebSocket connection (the client's and the one to its
    game server), a few per game server (pipes and the control connection)
    and L{FILE_RESERVE} for listeners, logs and the like.
    """
    return (
        2 * config.maxConnections
        + 4 * config.gameServers
        + len(config.remoteGameServers)
        + FILE_RESERVE
    )


def raiseFileLimit(config: Config, limits: _Limits | None = None) -> list[str]:
    """
    Raise the soft limit of open files to the hard limit (Part 6), and say
    what is wrong if the limit is still low for C{config.maxConnections}.

    :param config: C{maxConnections}, C{gameServers} and
        C{remoteGameServers} are read.
    :param limits: the C{resource} module, or a fake of it in tests.
    :return: warnings to log, one sentence each (none on a platform without
        C{resource}).
    """
    if limits is None:
        try:
            import resource
        except ImportError:  # Windows
            return []
        limits = resource
    warnings: list[str] = []
    soft, hard = limits.getrlimit(limits.RLIMIT_NOFILE)
    # An unlimited hard limit is not a soft limit the kernel takes (Linux
    # caps it at nr_open, macOS at OPEN_MAX): try big values down.
    targets = [hard] if hard != limits.RLIM_INFINITY else [1_048_576, 65_536, 10_240]
    error: Exception | None = None
    for target in targets:
        if target <= soft:
            break
        try:
            limits.setrlimit(limits.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            error = e
        else:
            soft, error = target, None
            break
    if error is not None:
        warnings.append(f"cannot raise the open-files limit from {soft}: {error}")
    needed = filesNeeded(config)
    if not config.maxConnections:
        warnings.append(
            f"--max-connections 0: WebSocket connections are limited only by "
            f"the open-files limit, {soft}"
        )
    elif soft < needed:
        warnings.append(
            f"the open-files limit, {soft}, is low for --max-connections "
            f"{config.maxConnections}: about {needed} are needed (a socket to "
            f"the client and one to its game server per connection, plus game "
            f"servers and logs); raise the hard limit (ulimit -n, systemd "
            f"LimitNOFILE=) or lower --max-connections"
        )
    return warnings
