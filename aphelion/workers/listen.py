# -*- test-case-name: tests.test_workers -*-
"""
The listening sockets of C{--workers}: which C{--listen} descriptions can be
shared (L{parseListen}) and the socket the parent binds for each
(L{bindListening}).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

__all__ = ["ListenSpec", "bindListening", "parseListen"]

_COLON = re.compile(r"(?<!\\):")


@dataclass(frozen=True)
class ListenSpec:
    """
    A C{--listen} description that workers can share.

    :ivar description: as given.
    :ivar proxied: whether it takes the PROXY protocol (C{haproxy:} prefix).
    :ivar family: C{socket.AF_INET} or C{socket.AF_INET6}.
    :ivar port: the TCP port (0 for an ephemeral one).
    :ivar interface: the address to bind.
    :ivar backlog: the accept queue's length.
    """

    description: str
    proxied: bool
    family: int
    port: int
    interface: str
    backlog: int = 50


def parseListen(description: str) -> ListenSpec:
    """
    Parse a C{--listen} description of the kinds workers share:
    C{tcp:PORT} and C{tcp6:PORT}, with C{interface=} and C{backlog=}, with
    or without the C{haproxy:} prefix. (TLS is for the load balancer in
    front of the workers.)

    :raises ValueError: for any other.
    """
    parts = [p.replace("\\:", ":") for p in _COLON.split(description)]
    proxied = parts[0].lower() == "haproxy"
    if proxied:
        parts = parts[1:]
    if len(parts) < 2 or parts[0].lower() not in ("tcp", "tcp6"):
        raise ValueError(
            f"--workers shares tcp: and tcp6: listeners (with or without "
            f"haproxy:), not {description!r}"
        )
    kind = parts[0].lower()
    family = socket.AF_INET6 if kind == "tcp6" else socket.AF_INET
    interface = "::" if kind == "tcp6" else ""
    backlog = 50
    port: int | None = None
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep:
            if port is not None:
                raise ValueError(f"two ports in {description!r}")
            port = int(key)
        elif key == "port":
            port = int(value)
        elif key == "interface":
            interface = value
        elif key == "backlog":
            backlog = int(value)
        else:
            raise ValueError(f"--workers cannot share {key}= in {description!r}")
    if port is None or not 0 <= port <= 65535:
        raise ValueError(f"no port in {description!r}")
    if ":" in interface:
        family = socket.AF_INET6
    return ListenSpec(description, proxied, family, port, interface, backlog)


def bindListening(spec: ListenSpec) -> socket.socket:
    """
    Bind and listen, at start-up: the socket every worker accepts from. It
    is non-blocking, as Twisted wants an adopted socket.

    :raises OSError: if it cannot.
    """
    sock = socket.socket(spec.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((spec.interface, spec.port))
        sock.listen(spec.backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
