# -*- test-case-name: tests.test_web -*-
"""
The players' site: the WebSocket endpoint behind the limits of Part 6 that
apply before the upgrade (L{aphelion.web.gate}), and the static pages
(L{aphelion.web.pages}) under a prefix.

L{makeSite} builds an L{AphelionSite}. Its HTTP channel refuses any request
with a body before reading it, answers a plain request on the WebSocket path
with 426, serves L{Pages} under the pages prefix, and any other path with
404 (none of them shows a version), and hands an upgrade request to
L{WebSocketEndpoint}, which attaches the connection's L{Admission} to the
WebSocket protocol as C{protocol.admission}.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from autobahn.twisted.resource import WebSocketResource
from autobahn.websocket.protocol import parseHttpHeader
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.web import static
from twisted.web.resource import IResource, getChildForRequest
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.util import Redirect
from zope.interface import implementer

from aphelion.config import Config
from aphelion.limits import safeText
from aphelion.logthrottle import ThrottledLog
from aphelion.web.channel import _Dropped, _PlayersChannel
from aphelion.web.gate import Admission, ConnectionGate, _hostOf
from aphelion.web.pages import PAGES, Pages

__all__ = ["AphelionSite", "WebSocketEndpoint", "makeSite"]

# The largest head, and the most header lines, of an upgrade request that
# skips twisted.web (AphelionSite.upgradeAtOnce); a larger one is parsed by
# twisted.web, with its limits.
_QUICK_HEAD_BYTES = 8192
_QUICK_HEADERS = 64

# The log of the players' site, under the package's name.
_log = Logger(namespace="aphelion.web")


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
        # Autobahn parses the handshake again from the bytes; the body is
        # empty (the channel refused any other).
        head = [request.method, b" ", request.uri, b" HTTP/1.1\r\n"]
        for name, values in request.requestHeaders.getAllRawHeaders():
            head += [name, b": ", b",".join(values), b"\r\n"]
        head.append(b"\r\n")
        if not self.upgrade(channel, b"".join(head)):
            return _plainResponse(
                request, 503, b"Service Unavailable", b"503 Service Unavailable\n"
            )
        return NOT_DONE_YET

    def upgrade(self, channel: _PlayersChannel, data: bytes) -> bool:
        """
        Hand C{channel}'s connection to a new WebSocket protocol, with the
        connection's L{Admission} attached, and give it C{data}: an upgrade
        request's head for Autobahn to parse and answer, and what followed.

        :return: whether there was a protocol to hand it to.
        """
        assert channel.transport is not None
        protocol = self.factory.buildProtocol(channel.transport.getPeer())
        if protocol is None:
            return False
        admission = channel.admission
        if admission is not None:
            protocol.admission = admission
            admission.upgrading(protocol)
        channel.upgradeTo(protocol)
        protocol.dataReceived(data)
        return True


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


def _pagesPrefix(prefix: str) -> list[bytes]:
    """
    :return: the path segments of a pages prefix (none for C{/}).
    :raises ValueError: if C{prefix} does not start with C{/}.
    """
    if not prefix.startswith("/"):
        raise ValueError(f"the pages prefix must start with /, not {prefix!r}")
    return [part.encode("utf-8") for part in prefix.strip("/").split("/") if part]


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

    def upgradeAtOnce(self, channel: _PlayersChannel, data: bytes) -> bool:
        """
        Called with the first bytes a connection sent: when they hold a
        whole, plain WebSocket upgrade request for the endpoint's path (C{GET
        <path> HTTP/1.1}, every header once, a valid head by Autobahn's
        strict parser, C{Upgrade: websocket}, no C{Content-Length} or
        C{Transfer-Encoding}), hand the connection to the endpoint at once,
        without building a C{twisted.web} request: Autobahn parses the head
        anyway, and it is the same head the endpoint would have rebuilt.
        Anything else goes the C{twisted.web} way.

        :return: whether the connection was handed over.
        """
        endpoint = self.endpoint
        if not isinstance(endpoint, WebSocketEndpoint) or not data.startswith(b"GET "):
            return False
        end = data.find(b"\r\n\r\n", 0, _QUICK_HEAD_BYTES)
        if end < 0:
            return False
        head = data[: end + 4]
        try:
            status, headers, counts = parseHttpHeader(head)
        except ValueError:
            return False
        parts = status.split(" ")
        if (
            len(parts) != 3
            or parts[2] != "HTTP/1.1"
            or parts[1].encode("iso-8859-1") != self._path
            or len(counts) > _QUICK_HEADERS
            or any(count != 1 for count in counts.values())
            or "content-length" in headers
            or "transfer-encoding" in headers
            or not any(
                token.strip().lower() == "websocket"
                for token in headers.get("upgrade", "").split(",")
            )
        ):
            return False
        return endpoint.upgrade(channel, data)

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
