# -*- test-case-name: tests.test_admin -*-
"""
The admin site (C{--admin ENDPOINT}): L{AdminSite} and L{makeAdminSite}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from aphelion.admin.metrics import makeRegistry
from aphelion.admin.resources import (
    MAX_BODY,
    ApiResource,
    HealthResource,
    MetricsResource,
    ReadyResource,
    StaticResource,
)
from aphelion.admin.view import ProxyView
from aphelion.logthrottle import ThrottledLog

__all__ = ["DASHBOARD", "AdminSite", "makeAdminSite"]

_log = Logger()

#: The dashboard's files shipped with aphelion.
DASHBOARD: FilePath[str] = FilePath(__file__).sibling("static")

_FILES = {
    b"": ("index.html", "text/html; charset=utf-8"),
    b"dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    b"dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}


class _AdminRequest(Request):
    """
    A request whose body may not be larger than the API reads: a longer
    one drops the connection as it arrives, before it fills memory or a
    temporary file.
    """

    _received = 0

    def gotLength(self, length: int | None) -> None:
        """
        Called with the body's length: keep small bodies in memory.
        """
        super().gotLength(None if length is not None and length > MAX_BODY else length)

    def handleContentChunk(self, data: bytes) -> None:
        """
        Called with each piece of the body.
        """
        self._received += len(data)
        if self._received > MAX_BODY + 1:
            transport: Any = self.channel.transport if self.channel else None
            if transport is not None:
                transport.abortConnection()
            return
        super().handleContentChunk(data)


class AdminSite(Site):
    """
    The operators' site: the dashboard at C{/}, C{/metrics}, C{/health},
    C{/ready} and the JSON API under C{/api/}. Every response has
    C{X-Content-Type-Options: nosniff}, a content security policy that
    allows the site's own script, style and requests only, and no referrer.
    It writes no access log: Prometheus and the probes ask every few
    seconds.
    """

    requestFactory = _AdminRequest
    #: The dashboard's content security policy.
    securityPolicy = (
        b"default-src 'none'; script-src 'self'; style-src 'self'; "
        b"connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
        b"form-action 'none'; frame-ancestors 'none'"
    )

    def __init__(
        self, root: IResource, *, clock: IReactorTime, throttledLog: ThrottledLog
    ) -> None:
        super().__init__(root, reactor=clock)
        self._throttled = throttledLog

    def getResourceFor(self, request: Request) -> IResource:
        """
        Called for each request: set the security headers, then find the
        resource.
        """
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", self.securityPolicy)
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"x-frame-options", b"DENY")
        return super().getResourceFor(request)  # type: ignore[no-any-return]

    def log(self, request: Any) -> None:
        """
        Write nothing to an access log.
        """

    def startFactory(self) -> None:
        """
        Called when the site starts listening: no access log to open.
        """

    def stopFactory(self) -> None:
        """
        Called when the site stops listening: stop the summary timers of
        its log.
        """
        super().stopFactory()
        self._throttled.stop()


def makeAdminSite(
    view: ProxyView,
    *,
    token: bytes | None,
    clock: IReactorTime,
    logInterval: float = 10.0,
    processCollectors: bool = True,
    dashboard: FilePath[str] = DASHBOARD,
) -> AdminSite:
    """
    Make the admin site. The dashboard's files are read now.

    :param view: the AuthProxy's parts.
    :param token: the API's bearer token, or L{None}: then the API answers
        403 to everything.
    :param clock: the clock of the site's timers.
    :param logInterval: seconds between summary lines of refused requests.
    :param processCollectors: add Prometheus' process and platform
        collectors to the metrics.
    :param dashboard: the directory of the dashboard's files.
    """
    throttledLog = ThrottledLog(_log, clock=clock, interval=logInterval)
    root = Resource()
    for name, (filename, contentType) in _FILES.items():
        root.putChild(
            name,
            StaticResource(dashboard.child(filename).getContent(), contentType),
        )
    root.putChild(b"health", HealthResource())
    root.putChild(b"ready", ReadyResource(view))
    root.putChild(b"metrics", MetricsResource(makeRegistry(view, processCollectors)))
    root.putChild(b"api", ApiResource(view, token, throttledLog))
    return AdminSite(root, clock=clock, throttledLog=throttledLog)
