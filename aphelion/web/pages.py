# -*- test-case-name: tests.test_web -*-
"""
The players' static pages: L{PAGES}, the directory shipped with aphelion,
and L{Pages}, the resource that serves a directory of them.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.python.filepath import FilePath
from twisted.web import static
from twisted.web.resource import IResource
from twisted.web.server import Request

from aphelion.limits import hasControlCharacters

__all__ = ["PAGES", "Pages"]

#: The players' pages shipped with aphelion: C{index.html}, the chat page,
#: C{aphelion.js} (a copy of C{clients/js/aphelion.js}) and C{vendor/}.
PAGES: FilePath[str] = FilePath(__file__).parent().sibling("pages")


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
        is not UTF-8, or holds a control character such as NUL, included,
        which C{File} would fail on with a traceback and a 500).
        """
        try:
            name = path.decode("utf-8")
        except UnicodeDecodeError:
            return cast(IResource, self.childNotFound)
        if hasControlCharacters(name):
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
