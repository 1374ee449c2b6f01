"""
An echo on the C{websockets} library (asyncio), the stack a user could pick
instead of Autobahn: the suite's second anchor.

The same semantics as C{bare_echo.py} (PROTOCOL.md, Part 1): the 39-byte
C{C2SInitPacket} is answered with 32 random token bytes, and every later
non-empty packet is echoed at once as C{bytes([1]) + payload}, so the echo's
ack byte acknowledges the packet it answers; ack-only packets get no answer.

C{websockets}' defaults, written as its documentation shows
(C{websockets.asyncio.server.serve} and an C{async for} over the
connection), except C{compression=None}: aphelion negotiates no compression
and the load generator offers none, so the option changes nothing on the
wire and keeps the comparison on the same footing.

Usage::

    python benchmarks/websockets_echo.py --port 0 --port-file /tmp/port

It listens on 127.0.0.1 only, writes the bound port to the port file once it
is listening, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve

INIT_LENGTH = 39
TOKEN_LENGTH = 32


async def echo(websocket: ServerConnection) -> None:
    """
    Answer the init packet with a fresh token, then echo every non-empty
    payload with an ack byte of 1.
    """
    initialised = False
    async for message in websocket:
        if initialised:
            if len(message) > 1:
                await websocket.send(b"\x01" + bytes(message[1:]))
            continue
        if isinstance(message, str) or len(message) != INIT_LENGTH:
            await websocket.close(4003, "malformed C2SInitPacket")
            return
        initialised = True
        await websocket.send(os.urandom(TOKEN_LENGTH))


def writePort(portFile: str, bound: int) -> None:
    """
    Write the bound port, then rename, so a reader never sees a partial
    number.
    """
    tmp = portFile + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{bound}\n")
    os.replace(tmp, portFile)


async def run(port: int, portFile: str | None) -> None:
    """
    Serve until SIGTERM or SIGINT.
    """
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set_result, None)
    async with serve(echo, "127.0.0.1", port, compression=None) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        if portFile:
            writePort(portFile, bound)
        sys.stderr.write(f"websockets_echo listening on 127.0.0.1:{bound}\n")
        await stop


def main(argv: list[str] | None = None) -> int:
    """
    Parse the command line and serve.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    parser.add_argument("--port-file", help="write the bound port here")
    args = parser.parse_args(argv)
    asyncio.run(run(args.port, args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
