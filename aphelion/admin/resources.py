# -*- test-case-name: tests.test_admin -*-
"""
The resources of the admin site: C{/health}, C{/ready}, C{/metrics}, the
JSON API under C{/api/} (behind a bearer token) and the dashboard's files.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from aphelion.admin.view import ProxyView
from aphelion.logthrottle import ThrottledLog

__all__ = [
    "MAX_BODY",
    "ApiResource",
    "HealthResource",
    "MetricsResource",
    "ReadyResource",
    "StaticResource",
]

#: The largest JSON body the API reads, in bytes.
MAX_BODY = 4096

#: The longest reason an operator may give (a close reason holds 123 bytes).
MAX_REASON = 120


def jsonResponse(request: Request, code: int, body: Any) -> bytes:
    """
    Answer C{request} with C{body} as JSON and status C{code}.
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, separators=(",", ":")).encode("utf-8") + b"\n"


class HealthResource(Resource):
    """
    C{/health}, the liveness probe: 200 whenever the reactor answers.
    """

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """
        Called for C{GET} (and C{HEAD}): 200 C{{"status": "ok"}}.
        """
        return jsonResponse(request, 200, {"status": "ok"})


class ReadyResource(Resource):
    """
    C{/ready}, the readiness probe: 200 while the AuthProxy is not draining
    and a game server has room for a player, else 503 with the reason.
    """

    isLeaf = True

    def __init__(self, view: ProxyView) -> None:
        super().__init__()
        self.view = view

    def render_GET(self, request: Request) -> bytes:
        """
        Called for C{GET} (and C{HEAD}): C{{"ready": ..., "reason": ...}}.
        """
        ready, reason = self.view.readiness()
        return jsonResponse(
            request, 200 if ready else 503, {"ready": ready, "reason": reason}
        )


class MetricsResource(Resource):
    """
    C{/metrics}: every metric of C{registry} in Prometheus' text format.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        """
        Called for C{GET} (and C{HEAD}) at each scrape.
        """
        request.setHeader(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(self.registry)


class StaticResource(Resource):
    """
    One file of the dashboard, read at start-up.
    """

    isLeaf = True

    def __init__(self, content: bytes, contentType: str) -> None:
        super().__init__()
        self.content = content
        self.contentType = contentType.encode("ascii")

    def render_GET(self, request: Request) -> bytes:
        """
        Called for C{GET} (and C{HEAD}): the file.
        """
        request.setHeader(b"content-type", self.contentType)
        request.setHeader(b"cache-control", b"no-cache")
        return self.content


class _Refused(Exception):
    """
    An API request that is answered with an error.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ApiResource(Resource):
    """
    The JSON API under C{/api/}, for requests with
    C{Authorization: Bearer TOKEN}:

      - C{GET /api/overview}: everything the dashboard shows;
      - C{GET /api/servers}: the game servers and their players;
      - C{GET /api/sessions}: sessions by state, connections by protocol;
      - C{POST /api/servers/ID/drain} C{{"reason", "deadline"}}: drain a
        game server (it takes no new players, and exits once its players
        are gone or by the deadline; it is not restarted);
      - C{POST /api/servers/ID/restart} C{{"reason", "deadline"}}: drain it,
        then start it again;
      - C{POST /api/kick} C{{"playerId", "reason"}}: end the player's
        session (C{S2C{disconnect}}, then close 4009).

    Without a token configured, every request is answered 403: nothing
    here works without one.

    :ivar view: the AuthProxy's parts.
    """

    isLeaf = True
    _log = Logger()

    def __init__(
        self, view: ProxyView, token: bytes | None, throttledLog: ThrottledLog
    ) -> None:
        """
        :param token: the bearer token, or L{None} for none configured.
        :param throttledLog: where refused requests are logged.
        """
        super().__init__()
        self.view = view
        self._token = token
        self._throttled = throttledLog

    def render(self, request: Request) -> bytes:
        """
        Called for every request under C{/api/}: check the token, then
        dispatch on the method and the path.
        """
        try:
            self._authorize(request)
            return self._dispatch(request)
        except _Refused as e:
            return jsonResponse(request, e.code, {"error": e.message})

    def _authorize(self, request: Request) -> None:
        if self._token is None:
            raise _Refused(403, "no admin token is configured (--admin-token-file)")
        header = request.getHeader(b"authorization") or b""
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(
            given.strip(), self._token
        ):
            return
        error = b', error="invalid_token"' if given else b""
        request.setHeader(b"www-authenticate", b'Bearer realm="aphelion-admin"' + error)
        self._throttled.warn(
            "admin token refused",
            "admin API: refused a request from {peer} without the right token",
            peer=getattr(request.getClientAddress(), "host", "?"),
        )
        raise _Refused(401, "a bearer token is required")

    def _dispatch(self, request: Request) -> bytes:
        method = request.method
        path = [part.decode("utf-8", "replace") for part in request.postpath or []]
        while path and not path[-1]:
            path.pop()
        view = self.view
        if path in ([], ["overview"]):
            self._only(method, b"GET")
            return jsonResponse(request, 200, view.overview())
        if path == ["servers"]:
            self._only(method, b"GET")
            return jsonResponse(request, 200, {"servers": view.servers()})
        if path == ["sessions"]:
            self._only(method, b"GET")
            return jsonResponse(
                request,
                200,
                {"sessions": view.sessions(), "connections": view.connections()},
            )
        if len(path) == 3 and path[0] == "servers" and path[2] in ("drain", "restart"):
            self._only(method, b"POST")
            return self._serverAction(request, path[1], path[2])
        if path == ["kick"]:
            self._only(method, b"POST")
            return self._kick(request)
        raise _Refused(404, "no such API resource")

    def _only(self, method: bytes, allowed: bytes) -> None:
        if method != allowed and not (allowed == b"GET" and method == b"HEAD"):
            raise _Refused(405, f"use {allowed.decode()}")

    def _body(self, request: Request) -> dict[str, Any]:
        content = getattr(request, "content", None)
        raw = content.read(MAX_BODY + 1) if content is not None else b""
        if len(raw) > MAX_BODY:
            raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise _Refused(400, "the body is not JSON") from e
        if not isinstance(body, dict):
            raise _Refused(400, "the body is not a JSON object")
        return body

    def _reason(self, body: dict[str, Any], default: str) -> str:
        reason = body.get("reason", default)
        if not isinstance(reason, str):
            raise _Refused(400, "reason is a string")
        return reason[:MAX_REASON] or default

    def _serverAction(self, request: Request, serverId: str, action: str) -> bytes:
        body = self._body(request)
        monitor = self.view.monitor
        server = monitor.servers.get(serverId)
        if server is None:
            raise _Refused(404, f"no game server {serverId!r}")
        deadline = body.get("deadline")
        if deadline is not None and (
            isinstance(deadline, bool)
            or not isinstance(deadline, int | float)
            or not 0 <= deadline <= 86400
        ):
            raise _Refused(400, "deadline is a number of seconds, 0 to 86400")
        reason = self._reason(body, f"{action} asked by an operator")
        self._log.info(
            "admin API: {action} game server {serverId}: {reason}",
            action=action,
            serverId=serverId,
            reason=reason,
        )
        if action == "drain":
            monitor.drain(serverId, reason, deadline)
        else:
            monitor.restart(serverId, reason, deadline)
        return jsonResponse(request, 202, {"id": serverId, "state": server.state.value})

    def _kick(self, request: Request) -> bytes:
        body = self._body(request)
        playerId = body.get("playerId")
        if not isinstance(playerId, str) or not playerId:
            raise _Refused(400, "playerId is a non-empty string")
        reason = self._reason(body, "kicked by an operator")
        kicked = self.view.kick(playerId, reason)
        if not kicked:
            raise _Refused(404, "no session of that player here")
        return jsonResponse(request, 200, {"playerId": playerId, "kicked": kicked})
