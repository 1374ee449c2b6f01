"""
A plain Autobahn (Twisted) WebSocket echo, written as Autobahn's
documentation shows it, with its defaults only: the anchor a user would
write instead of aphelion, and the base of the suite's ratios.

The same semantics as C{bare_echo.py} (PROTOCOL.md, Part 1): the 39-byte
C{C2SInitPacket} is answered with 32 random token bytes, and every later
non-empty packet is echoed at once as C{bytes([1]) + payload}, so the echo's
ack byte acknowledges the packet it answers; ack-only packets get no answer.

No tuning: no protocol options, no C{TCP_NODELAY} of our own, no
C{twisted.web} site (C{listenTCP} on the factory, as the documentation's
example does), C{sendMessage} for every send.

Usage::

    python benchmarks/plain_echo.py --port 0 --port-file /tmp/port

It listens on 127.0.0.1 only, writes the bound port to the port file once it
is listening, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol

INIT_LENGTH = 39
TOKEN_LENGTH = 32


class PlainEchoProtocol(WebSocketServerProtocol):  # type: ignore[misc]
    """
    Answers the init packet with a fresh token, then echoes every non-empty
    payload with an ack byte of 1.
    """

    initialised = False

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Called with each complete WebSocket message.
        """
        if self.initialised:
            if len(payload) > 1:
                self.sendMessage(b"\x01" + payload[1:], isBinary=True)
            return
        if not isBinary or len(payload) != INIT_LENGTH:
            self.sendClose(4003, "malformed C2SInitPacket")
            return
        self.initialised = True
        self.sendMessage(os.urandom(TOKEN_LENGTH), isBinary=True)


def main(argv: list[str] | None = None) -> int:
    """
    Parse the command line, listen on 127.0.0.1 and run the reactor.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    parser.add_argument("--port-file", help="write the bound port here")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    factory = WebSocketServerFactory()
    factory.protocol = PlainEchoProtocol
    port = reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    bound = port.getHost().port  # type: ignore[attr-defined]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{bound}\n")
        os.replace(tmp, args.port_file)
    sys.stderr.write(f"plain_echo listening on 127.0.0.1:{bound}\n")
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
