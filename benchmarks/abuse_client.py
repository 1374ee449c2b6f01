"""
A minimal asyncio WebSocket and aphelion client for the abuse suite
(abuse.py): raw sockets, so that an attack can stop anywhere below
WebSocket (half an upgrade, a request with a body, a socket that never
reads), and a real player's login (connect + init + authenticate +
connected) timed from the first byte.

Only what the attacks need: client frames are masked with a zero key (legal,
and it costs nothing), server frames are unmasked, fragmented messages are
not expected (aphelion never fragments). Everything is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from dataclasses import dataclass

from aphelion.proto.game_pb2 import S2C

INIT_LENGTH = 39
TOKEN_LENGTH = 32
PING_PROTOCOL = 1
GAME_PROTOCOL = 2

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10

RESULT_NAMES = {
    0: "OK",
    1: "OTHER",
    2: "AUTH_METHOD_UNSUPPORTED",
    3: "INVALID_ID",
    4: "ID_IN_USE",
    5: "NO_SERVER",
    6: "REJECTED",
    7: "TOO_MANY_ATTEMPTS",
    8: "NOT_AUTHENTICATED",
}


class Closed(Exception):
    """
    The server closed the WebSocket: C{code} is its close code (None when the
    close frame had none), C{reason} its reason.
    """

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.code, self.reason = code, reason

    @property
    def label(self) -> str:
        """
        The outcome label of this close, such as C{ws 4007}.
        """
        return f"ws {self.code}" if self.code is not None else "ws close (no code)"


class HttpRefused(Exception):
    """
    The upgrade was answered with another HTTP status than 101.
    """

    def __init__(self, status: int, headers: bytes, body: bytes) -> None:
        super().__init__(status)
        self.status, self.headers, self.body = status, headers, body

    @property
    def label(self) -> str:
        """
        The outcome label, such as C{http 503}.
        """
        return f"http {self.status}"


def outcomeLabel(error: BaseException) -> str:
    """
    The label under which a connection's end is counted: C{ws CODE},
    C{http STATUS}, C{drop} (the server closed the TCP connection without a
    word), C{reset}, C{connect timeout}, C{timeout}, or the exception's name.
    """
    if isinstance(error, Closed | HttpRefused):
        return error.label
    if isinstance(error, asyncio.IncompleteReadError | EOFError):
        return "drop"
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(error, ConnectTimeout):
        return "connect timeout"
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connect refused"
    return type(error).__name__


class ConnectTimeout(Exception):
    """
    The TCP connection was not accepted in time.
    """


async def openTcp(
    host: str,
    port: int,
    source: str | None = None,
    within: float = 5.0,
    rcvbuf: int | None = None,
    limit: int = 1 << 17,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """
    Open a TCP connection, from C{source} (a loopback address) when given.
    C{rcvbuf} sets a small receive buffer before connecting, for a peer that
    never reads: what it does not read then piles up in the server, not in
    this machine's kernel.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            sock.bind((source, 0))
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), within)
        except TimeoutError:
            raise ConnectTimeout() from None
        return await asyncio.open_connection(sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise


def upgradeRequest(
    host: str, port: int, path: str = "/aphelion", extra: bytes = b""
) -> bytes:
    """
    An HTTP/1.1 WebSocket upgrade request; C{extra} holds more header lines,
    each ending with CRLF.
    """
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\n"
        b"Host: " + f"{host}:{port}".encode() + b"\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )


async def readResponse(
    reader: asyncio.StreamReader, readBody: bool = True
) -> tuple[int, bytes, bytes]:
    """
    Read an HTTP response's status line and headers (and, with
    C{readBody}, a C{Content-Length} body, at most 64 KiB); return
    (status, headers, body).
    """
    head = await reader.readuntil(b"\r\n\r\n")
    statusLine = head.split(b"\r\n", 1)[0]
    parts = statusLine.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    body = b""
    if readBody and status != 101:
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = min(int(line.split(b":", 1)[1].strip() or 0), 65536)
                body = await reader.readexactly(length)
                break
        else:
            try:
                body = await asyncio.wait_for(reader.read(65536), 1.0)
            except (TimeoutError, ConnectionError):
                body = b""
    return status, head, body


def frame(payload: bytes, opcode: int = OP_BINARY) -> bytes:
    """
    One client frame (FIN set, masked with a zero key: the payload goes out
    as is).
    """
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + b"\0\0\0\0" + payload


def closeFrame(code: int = 1000, reason: bytes = b"") -> bytes:
    """
    A client close frame.
    """
    return frame(struct.pack("!H", code) + reason, OP_CLOSE)


def initPacket(protocol: int = GAME_PROTOCOL, version: int = 0) -> bytes:
    """
    The 39-byte C2SInitPacket without a session token.
    """
    return struct.pack("!hib", protocol, version, 0) + bytes(TOKEN_LENGTH)


def varint(n: int) -> bytes:
    """
    A protobuf varint.
    """
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def authPacket(playerId: str | bytes, ack: int = 0) -> bytes:
    """
    A ProtobufPacket whose payload is C2S{authenticate{id}} (field 100, tag
    C{a2 06}; the ID in field 1). The ID may be any bytes, valid UTF-8 or
    not, as an attacker's would.
    """
    raw = playerId.encode() if isinstance(playerId, str) else playerId
    inner = b"\x0a" + varint(len(raw)) + raw
    return bytes([ack]) + b"\xa2\x06" + varint(len(inner)) + inner


@dataclass
class Frame:
    """
    One server frame.
    """

    opcode: int
    payload: bytes


async def readFrame(reader: asyncio.StreamReader) -> Frame:
    """
    Read one server frame (unmasked, as a server's must be).
    """
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b""
    payload = await reader.readexactly(n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return Frame(b0 & 0x0F, payload)


class WsConn:
    """
    One client WebSocket over a raw stream: C{recv} answers pings and raises
    L{Closed} on a close frame.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader, self.writer = reader, writer
        self.owed = 0  # non-empty packets received, not yet acknowledged

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        """
        Queue one message.
        """
        self.writer.write(frame(payload, opcode))

    async def recv(self) -> bytes:
        """
        The next binary (or text) message's bytes.
        """
        while True:
            f = await readFrame(self.reader)
            if f.opcode == OP_CLOSE:
                code = (
                    struct.unpack("!H", f.payload[:2])[0]
                    if len(f.payload) >= 2
                    else None
                )
                raise Closed(code, f.payload[2:].decode("utf-8", "replace"))
            if f.opcode == OP_PING:
                self.writer.write(frame(f.payload, OP_PONG))
                continue
            if f.opcode == OP_PONG:
                continue
            if len(f.payload) > 1:
                self.owed += 1
            return f.payload

    async def recvUntilClosed(self, within: float) -> Closed:
        """
        Read (and drop) messages until the server closes; raises
        C{TimeoutError} after C{within} seconds.
        """
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            try:
                await asyncio.wait_for(self.recv(), remaining)
            except Closed as closed:
                return closed

    async def close(self, code: int = 1000, within: float = 2.0) -> Closed | None:
        """
        Send a close frame, wait (bounded) for the server's, then drop the
        TCP connection. Returns the server's close, if it came.
        """
        answer: Closed | None = None
        try:
            self.writer.write(closeFrame(code))
            answer = await self.recvUntilClosed(within)
        except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError):
            pass
        self.abort()
        return answer

    def abort(self) -> None:
        """
        Drop the TCP connection now.
        """
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()


async def upgrade(
    host: str,
    port: int,
    source: str | None = None,
    path: str = "/aphelion",
    within: float = 10.0,
    rcvbuf: int | None = None,
) -> WsConn:
    """
    Connect and complete the WebSocket upgrade; raises L{HttpRefused} on
    another status than 101.
    """
    reader, writer = await openTcp(host, port, source, within, rcvbuf)
    try:
        writer.write(upgradeRequest(host, port, path))
        status, headers, body = await asyncio.wait_for(readResponse(reader), within)
        if status != 101:
            raise HttpRefused(status, headers, body)
    except BaseException:
        writer.transport.abort()
        raise
    return WsConn(reader, writer)


async def handshake(
    host: str,
    port: int,
    source: str | None = None,
    protocol: int = GAME_PROTOCOL,
    within: float = 10.0,
    rcvbuf: int | None = None,
) -> WsConn:
    """
    Connect, upgrade and complete the aphelion init handshake (the 32-byte
    token has come).
    """
    conn = await upgrade(host, port, source, within=within, rcvbuf=rcvbuf)
    try:
        conn.send(initPacket(protocol))
        token = await asyncio.wait_for(conn.recv(), within)
        if len(token) != TOKEN_LENGTH:
            raise ValueError(f"S2CInitPacket of {len(token)} bytes")
        conn.owed = 0  # the token is not a ProtobufPacket
    except BaseException:
        conn.abort()
        raise
    return conn


def parseS2C(packet: bytes) -> S2C | None:
    """
    The S2C of a ProtobufPacket (None for an ack-only packet or one that
    does not parse).
    """
    if len(packet) <= 1:
        return None
    try:
        return S2C.FromString(packet[1:])
    except Exception:
        return None


async def authenticate(conn: WsConn, playerId: str | bytes, within: float) -> str:
    """
    Send C2S{authenticate} and wait for the answer: C{OK} once C{connected}
    has come too, otherwise the name of the result. Raises L{Closed} if the
    server closes first.
    """
    conn.send(authPacket(playerId, min(conn.owed, 254)))
    conn.owed -= min(conn.owed, 254)
    deadline = time.monotonic() + within
    ok = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError()
        packet = await asyncio.wait_for(conn.recv(), remaining)
        message = parseS2C(packet)
        if message is None:
            continue
        if message.HasField("authenticate_response"):
            result = message.authenticate_response.result
            if result != 0:
                return RESULT_NAMES.get(result, str(result))
            ok = True
        if message.HasField("disconnect"):
            return "disconnect"
        if ok and message.HasField("connected"):
            return "OK"


async def timedLogin(
    host: str, port: int, playerId: str, source: str | None, within: float = 10.0
) -> float:
    """
    A real player's login: connect, upgrade, init, authenticate, wait for
    C{connected}; return the seconds that took, then close with 1000.
    Raises on any failure (the message says what).
    """
    started = time.perf_counter()
    conn = await asyncio.wait_for(handshake(host, port, source, within=within), within)
    try:
        result = await authenticate(
            conn, playerId, within - (time.perf_counter() - started)
        )
        elapsed = time.perf_counter() - started
        if result != "OK":
            raise RuntimeError(f"authenticate_response {result}")
    finally:
        await conn.close(1000, 2.0)
    return elapsed
