# -*- test-case-name: tests.test_web -*-
"""
The players' web site: the WebSocket endpoint behind the limits of Part 6
that apply before the upgrade, and the static pages of L{PAGES} (the
JavaScript client library and the chat page) under a prefix.

L{makeSite} builds an L{AphelionSite} (L{aphelion.web.site}). Every accepted
connection gets an L{Admission} from the site's L{ConnectionGate}
(L{aphelion.web.gate}): its place under the per-address limits and its
upgrade deadline. The site's HTTP channel (L{aphelion.web.channel}) refuses
any request with a body before reading it; the site answers a plain request
on the WebSocket path with 426, serves L{Pages} (L{aphelion.web.pages})
under the pages prefix, and any other path with 404 (none of them shows a
version), and hands an upgrade request to L{WebSocketEndpoint}, which
attaches the admission to the WebSocket protocol as C{protocol.admission}.

L{raiseFileLimit} (L{aphelion.web.files}) raises the open-files limit at
start-up.
"""

from aphelion.web.files import FILE_RESERVE, filesNeeded, raiseFileLimit
from aphelion.web.gate import LIMIT_HINT, Admission, ConnectionGate
from aphelion.web.pages import PAGES, Pages
from aphelion.web.site import AphelionSite, WebSocketEndpoint, makeSite

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
