"""
A bare Autobahn (Twisted) WebSocket echo server: the baseline aphelion is
measured against.

It speaks just enough of the aphelion transport (PROTOCOL.md, Part 1) for the
load generator to drive it exactly as it drives aphelion:

  - the first message is the 39-byte C{C2SInitPacket}; it is answered with 32
    random token bytes (no other check: that is the "bare" part);
  - every later message is a C{ProtobufPacket} (ack byte + payload); a
    non-empty payload is echoed at once as C{bytes([1]) + payload}, so the
    echo's ack byte acknowledges the one packet it answers. Empty (ack-only)
    packets get no answer.

The Autobahn tuning is the one aphelion gives itself (STYLE.md, section 3):
the same protocol options, Nagle disabled in C{connectionMade}, mounted with
C{WebSocketResource} at C{/aphelion} in a C{twisted.web} C{Site}, and, as
aphelion does, the C{HTTPChannel} that read the upgrade unregistered as the
transport's producer so that it does not stay alive with the connection,
and frames built and sent at once when the socket has nothing queued
(L{aphelion.fastwrite.FastSendMixin}: C{sendBinary} and C{sendData}).

Usage::

    python benchmarks/bare_echo.py --port 0 --port-file /tmp/port

It listens on 127.0.0.1 only, writes the bound port to the port file once it
is listening, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import sys

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import (
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import Site

from aphelion.fastwrite import FastSendMixin

INIT_LENGTH = 39
TOKEN_LENGTH = 32
_ONE = b"\x01"


class BareEchoProtocol(FastSendMixin, WebSocketServerProtocol):  # type: ignore[misc]
    """
    Answers the init packet with a fresh token, then echoes every non-empty
    payload with an ack byte of 1.

    :cvar releaseHttpChannel: unregister twisted.web's HTTPChannel as the
        transport's producer once the WebSocket has the transport.
    :ivar _initialised: whether the init packet has been answered.
    """

    _initialised = False
    releaseHttpChannel = True

    def connectionMade(self) -> None:
        """
        Disable Nagle: Autobahn's own C{tcpNoDelay} option does not reach
        accepted sockets (PERFORMANCE.md).
        """
        super().connectionMade()
        self.transport.setTcpNoDelay(True)
        # Behind twisted.web, the HTTPChannel that read the upgrade stays the
        # transport's producer and keeps itself, its Request and buffers
        # (about 4 KB) alive for the life of the connection. Aphelion
        # unregisters it, so the baseline does too (README.md, "Memory").
        if self.releaseHttpChannel and self.transport.producer is not None:
            self.transport.unregisterProducer()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Called with each complete WebSocket message.
        """
        if self._initialised:
            if len(payload) > 1:
                self.sendBinary(_ONE + payload[1:])
            return
        if not isBinary or len(payload) != INIT_LENGTH:
            self.sendClose(4003, "malformed C2SInitPacket")
            return
        self._initialised = True
        self.sendBinary(os.urandom(TOKEN_LENGTH))


def makeFactory() -> WebSocketServerFactory:
    """
    Build the WebSocket factory with aphelion's protocol options.
    """
    factory = WebSocketServerFactory()
    factory.protocol = BareEchoProtocol
    factory.setProtocolOptions(
        failByDrop=False,
        maxMessagePayloadSize=65536,
        autoFragmentSize=0,
        autoPingInterval=10,
        autoPingTimeout=20,
    )
    return factory


def makeSite(path: bytes = b"aphelion") -> Site:
    """
    Mount the echo under C{/path} of a C{twisted.web} site, as aphelion does.
    """
    root = Resource()
    root.putChild(path, WebSocketResource(makeFactory()))
    return Site(root)


def main(argv: list[str] | None = None) -> int:
    """
    Parse the command line, listen on 127.0.0.1 and run the reactor.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    parser.add_argument("--port-file", help="write the bound port here")
    parser.add_argument("--path", default="aphelion", help="URL path")
    parser.add_argument(
        "--keep-http-channel",
        action="store_true",
        help="leave twisted.web's HTTPChannel registered as the producer"
        " (Autobahn's default; about 4 KB more per connection)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="serve the WebSocket factory directly, without twisted.web (any"
        " path; for reference only: aphelion mounts it in a Site)",
    )
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    BareEchoProtocol.releaseHttpChannel = not args.keep_http_channel

    endpoint = TCP4ServerEndpoint(reactor, args.port, interface="127.0.0.1")

    def listening(port) -> None:  # type: ignore[no-untyped-def]
        bound = port.getHost().port
        if args.port_file:
            # Write then rename, so a reader never sees a partial number.
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{bound}\n")
            os.replace(tmp, args.port_file)
        sys.stderr.write(f"bare_echo listening on 127.0.0.1:{bound}\n")

    def failed(failure) -> None:  # type: ignore[no-untyped-def]
        sys.stderr.write(f"bare_echo: cannot listen: {failure.value}\n")
        reactor.stop()

    factory = makeFactory() if args.plain else makeSite(args.path.encode("ascii"))
    endpoint.listen(factory).addCallbacks(listening, failed)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
