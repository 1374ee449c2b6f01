# -*- test-case-name: tests.test_fuzz -*-
"""
Fuzz tests of every parser an outsider can reach: the players' HTTP upgrade,
the init packet, ProtobufPackets and WebSocket frames, the gateway's C2S in
every session state, and both ends of the envelope. Each asserts that
arbitrary input produces only the contract's outcome (C{PROTOCOL.md}) and
never an exception into the reactor, a logged failure or unbounded memory.

CI runs a modest, derandomized number of examples per test (no example
database), so that a run is the same every time and takes well under a
minute. The long run explores at random instead::

    APHELION_FUZZ_EXAMPLES=100000 APHELION_FUZZ_REPORT=fuzz-report.txt \\
        .venv/bin/python -m twisted.trial -j2 tests.test_fuzz

C{APHELION_FUZZ_EXAMPLES} sets C{max_examples} of the main test of each
parser (C{test_mutatedUpgrade}, C{test_initAgainstModel},
C{test_packetsAgainstModel}, C{test_everyState}, C{test_gameServer}); the
tests that look at a parser from another side get a share of it (see
L{fuzzSettings}), and the memory floods push four mebibytes each instead of
one. C{APHELION_FUZZ_REPORT}, when set, names a file to which each test
appends how many examples it ran (every 10,000 too, so that a run stopped
early still tells) and how its connections ended. A failure shows the
falsifying example and a C{@reproduce_failure} blob. C{-j2} runs the tests
in two processes; or run one class per process
(C{tests.test_fuzz.HTTPUpgradeFuzzTests} ...).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
import os
import re
import struct
import traceback
import tracemalloc
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import txaio
from autobahn.websocket.protocol import WebSocketProtocol
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import _producer_helpers
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock, Cooperator
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from txaio.testutil import replace_loop

from aphelion.auth import CheckerBusy, DevChecker, TicketChecker, mintTicket
from aphelion.codes import Encoding, EnvelopeType, ErrorCode
from aphelion.config import Config
from aphelion.control.proxy import LinkConnector, controlFactoryMaker
from aphelion.control.spawn import GameServer, GameServerMonitor, ServerState
from aphelion.envelope import (
    ENCODINGS,
    HEADER,
    PAYLOAD_TYPES,
    VERSION,
    EnvelopeDecoder,
    EnvelopeError,
    decodePayload,
)
from aphelion.game import GameServerFactory, loadGame
from aphelion.gateway import Gateway, Seat, SessionState
from aphelion.handshake import Revisions, encodeInit
from aphelion.proto import control_pb2
from aphelion.proto.game_pb2 import (
    C2S,
    S2C,
    Authenticate,
    AuthenticateResponse,
    GameConfig,
    GameDetails,
)
from aphelion.proto.ping_pb2 import PingRequest, PingResponse
from aphelion.service import build
from aphelion.session import MemorySessionRegistry, Session
from aphelion.testing import RecordingConnection
from aphelion.web import PAGES
from aphelion.websocket import AphelionServerProtocol
from tests.test_spawn import FakeProcessReactor

txaio.use_twisted()

# -- settings -----------------------------------------------------------------

_LONG_RUN = int(os.environ.get("APHELION_FUZZ_EXAMPLES", "0") or 0)
_REPORT = os.environ.get("APHELION_FUZZ_REPORT", "")
# Hypothesis remembers every example of a run (some 30 KB each here), so the
# long run runs a test's examples in runs of at most this many.
_BATCH = 5000
_HEALTH = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]


def fuzzSettings(
    examples: int, share: float = 1.0
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """
    The hypothesis settings of one fuzz test, as a decorator.

    :param examples: the examples CI runs, derandomized.
    :param share: the part of C{APHELION_FUZZ_EXAMPLES} the long run gives
        this test: 1 for the main test of a parser, less for the tests that
        look at it from another side.
    :return: a decorator that gives the test C{examples} derandomized
        examples without a database, or, with C{APHELION_FUZZ_EXAMPLES} set,
        random ones in runs of at most L{_BATCH}, and its goal (C{fuzzGoal})
        for L{reported}.
    """
    if _LONG_RUN > 0:
        goal = max(examples, int(_LONG_RUN * share))
        chosen = settings(
            max_examples=min(goal, _BATCH),
            deadline=None,
            database=None,
            derandomize=False,
            print_blob=True,
            suppress_health_check=_HEALTH,
        )
    else:
        goal = 0
        chosen = settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            print_blob=True,
            suppress_health_check=_HEALTH,
        )

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        test = chosen(test)
        test.fuzzGoal = goal  # type: ignore[attr-defined]
        return test

    return decorate


def reported(test: Callable[..., None]) -> Callable[..., None]:
    """
    Put the falsifying example that hypothesis found (which it attaches to
    the exception as notes, and trial does not show) into the failure; in
    the long run, run the test in batches of L{_BATCH} examples until it ran
    its share of C{APHELION_FUZZ_EXAMPLES}.
    """

    @functools.wraps(test)
    def wrapper(self: FuzzTestCase, *args: Any, **kwargs: Any) -> None:
        inner = getattr(getattr(test, "hypothesis", None), "inner_test", None)
        goal = getattr(inner, "fuzzGoal", 0)
        try:
            test(self, *args, **kwargs)
            while self.examples < goal:
                test(self, *args, **kwargs)
        except Exception as e:
            if not getattr(e, "__notes__", None) and not isinstance(
                e, BaseExceptionGroup
            ):
                raise
            text = "".join(traceback.format_exception(e))
            raise self.failureException(text) from None

    return wrapper


class FuzzTestCase(SynchronousTestCase):
    """
    A test case whose tests run many examples: each example checks that
    nothing was logged as a failure, and the outcomes are tallied for the
    long run's report.
    """

    def setUp(self) -> None:
        self.examples = 0
        self.outcomes: Counter[str] = Counter()
        if _REPORT:
            self.addCleanup(self._writeReport)

    def _writeReport(self) -> None:
        """
        Append the examples run so far and the commonest outcomes to the
        report.
        """
        common = ", ".join(f"{k}: {n}" for k, n in self.outcomes.most_common(12))
        with open(_REPORT, "a", encoding="utf-8") as report:
            report.write(f"{self.id()}: {self.examples} examples; {common}\n")

    @contextmanager
    def example(
        self, allowed: tuple[type[BaseException], ...] = ()
    ) -> Iterator[list[LogEvent]]:
        """
        Run one example: count it, capture its log events, and fail it if
        anything was logged as a failure or at C{critical} (trial would
        blame the whole test; this names the example that did it).

        :param allowed: exceptions the example injects on purpose, whose
            logged failures are expected.
        """
        self.examples += 1
        if _REPORT and self.examples % 10000 == 0:
            self._writeReport()
        # Not twisted.logger.capturedLogs: it leaves its observer behind
        # when the block raises, as hypothesis does to end an example.
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        try:
            yield events
        except BaseException:
            # The example failed already; what it logged must not be
            # blamed on the next one.
            self.flushLoggedErrors()
            raise
        finally:
            globalLogPublisher.removeObserver(observer)
        failures = [
            e
            for e in events
            if ("log_failure" in e and not e["log_failure"].check(*allowed))
            or (e.get("log_level") is LogLevel.critical and "log_failure" not in e)
        ]
        self.assertEqual(
            [(e.get("log_format"), e.get("log_failure")) for e in failures],
            [],
            "logged failures",
        )
        if allowed:
            self.flushLoggedErrors(*allowed)
        self.assertEqual(self.flushLoggedErrors(), [])

    def tally(self, outcome: str) -> None:
        """
        Count one outcome for the report.
        """
        self.outcomes[outcome] += 1


# -- a TCP-like transport and an AuthProxy on a memory reactor ------------------

PORT = 8080


class TCPLikeTransport(StringTransport):
    """
    A L{StringTransport} that does what the players' site needs of a TCP
    server transport: it names its C{protocol} (the WebSocket resource
    replaces it on an upgrade, and the reactor delivers bytes to it), lets a
    producer be unregistered twice and be paused after C{loseConnection}.

    :ivar protocol: the protocol bytes are delivered to.
    """

    protocol: Any = None

    def __init__(self, peer: IPv4Address) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", PORT),
            peerAddress=peer,
            lenient=True,
        )

    def unregisterProducer(self) -> None:
        """
        Forget the producer; like a TCP transport, do not mind when there is
        none.
        """
        self.producer = None
        self.streaming = None


class Connection:
    """
    One client TCP connection to the players' site: bytes are delivered to
    the transport's current protocol the way a reactor does, only while the
    transport reads (not paused, not closing).

    :ivar transport: the server's transport.
    :ivar refused: whether the site refused the connection at accept.
    """

    def __init__(self, proxy: Proxy, port: int) -> None:
        self.proxy = proxy
        peer = IPv4Address("TCP", "127.0.0.1", port)
        self.transport = TCPLikeTransport(peer)
        self._pending: deque[bytes] = deque()
        self._lost = False
        protocol = proxy.site.buildProtocol(peer)
        self.refused = protocol is None
        if protocol is None:
            self.transport.loseConnection()
            self._lost = True
            return
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)

    @property
    def reading(self) -> bool:
        """
        Whether the reactor would deliver bytes now.
        """
        transport = self.transport
        return (
            not self._lost
            and not transport.disconnecting
            and transport.producerState == "producing"
        )

    @property
    def closed(self) -> bool:
        """
        Whether the server closed (or is closing) the connection.
        """
        return bool(self.transport.disconnecting) or self.refused

    @property
    def websocket(self) -> AphelionServerProtocol | None:
        """
        The WebSocket protocol that took this connection over, if any.
        """
        for protocol in self.proxy.websockets:
            if protocol.transport is self.transport:
                found: AphelionServerProtocol = protocol
                return found
        return None

    @property
    def switched(self) -> bool:
        """
        Whether a WebSocket protocol took this connection over.
        """
        return self.websocket is not None

    def send(self, data: bytes) -> None:
        """
        Queue C{data} and deliver what the transport reads.
        """
        if data:
            self._pending.append(data)
        self.pump()

    def pump(self) -> None:
        """
        Deliver queued bytes while the transport reads.
        """
        while self._pending and self.reading:
            self.transport.protocol.dataReceived(self._pending.popleft())

    @property
    def unread(self) -> int:
        """
        Bytes queued but not delivered (the transport paused or closed).
        """
        return sum(map(len, self._pending))

    def lose(self, clean: bool = True) -> None:
        """
        Deliver the end of the connection, as a reactor does once the server
        closed it or the client went away.
        """
        if self._lost:
            return
        self._lost = True
        reason = ConnectionDone() if clean else ConnectionLost()
        self.transport.protocol.connectionLost(Failure(reason))


class Proxy:
    """
    An AuthProxy made by L{aphelion.service.build} on a
    L{MemoryReactorClock}, with Autobahn's timers on it too; a context
    manager that ends every connection and stops the services on exit.

    :ivar reactor: the memory reactor and clock.
    :ivar config: the configuration.
    :ivar service: what L{build} returned.
    :ivar site: the players' site.
    """

    def __init__(self, **config: Any) -> None:
        self.reactor = MemoryReactorClock()
        # A clock that reads now, not the Unix epoch: a PingResponse with a
        # server time of 0 (and a client time of 0) would be empty.
        self.reactor.advance(1_764_000_000)
        self.config = Config(gameServers=0, listen=(), **config)
        self.connections: list[Connection] = []
        self._loop = replace_loop(self.reactor)

    def __enter__(self) -> Proxy:
        self._loop.__enter__()
        # Twisted streams a pull producer (a static page) through the global
        # cooperator, on the global reactor that a synchronous test never
        # runs: run it on this clock instead, as the real reactor would.
        helpers: Any = _producer_helpers
        self._cooperate = helpers.cooperate
        cooperator = Cooperator(scheduler=lambda work: self.reactor.callLater(0, work))
        helpers.cooperate = cooperator.cooperate
        self.service: Any = build(self.config, self.reactor)
        self.site: Any = self.service.site
        self.factory: Any = self.service.factory
        # Note every WebSocket protocol the factory builds, whichever way
        # the site hands it the connection.
        self.websockets: list[Any] = []
        buildProtocol = self.factory.buildProtocol

        def recordingBuildProtocol(addr: Any) -> Any:
            protocol = buildProtocol(addr)
            if protocol is not None:
                self.websockets.append(protocol)
            return protocol

        self.factory.buildProtocol = recordingBuildProtocol  # type: ignore[method-assign]
        self.service.startService()
        self.site.doStart()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for connection in self.connections:
                connection.lose(clean=False)
            self.site.doStop()
            self.service.stopService()
            self.advance(60)
        finally:
            helpers: Any = _producer_helpers
            helpers.cooperate = self._cooperate
            self._loop.__exit__(None, None, None)

    def connect(self, port: int = 50000) -> Connection:
        """
        Open a TCP connection to the players' site from 127.0.0.1:C{port}.
        """
        connection = Connection(self, port)
        self.connections.append(connection)
        return connection

    def liveToken(self) -> bytes:
        """
        Open a session in the registry, held by a recording connection.

        :return: its token.
        """
        opened = self.factory.registry.open(None, RecordingConnection())
        session: Any = []
        opened.addCallback(session.append)
        token: bytes = session[0].token
        return token

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """
        Move the clock by C{seconds}, in steps, letting every connection read
        what it could not while paused.
        """
        left = seconds
        while True:
            now = min(step, left)
            self.reactor.advance(now)
            for connection in self.connections:
                connection.pump()
            left -= now
            if left <= 0:
                break


# -- what the server writes: HTTP responses and WebSocket frames ---------------

_STATUS_LINE = re.compile(
    rb"HTTP/1\.[01] ([1-5][0-9][0-9]) ([\t\x20-\x7e\x80-\xff]*)\r\n"
)
_HEADER_LINE = re.compile(
    rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\t\x20-\x7e\x80-\xff]*)\r\n"
)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)(;[^\r\n]*)?\r\n")


class Malformed(AssertionError):
    """
    The server wrote something that is not well-formed HTTP or WebSocket.
    """


@dataclass
class Response:
    """
    One HTTP response the server wrote.
    """

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        """
        :return: the values of the header C{name} (lower case).
        """
        return [value for key, value in self.headers if key == name]


def _readBody(data: bytes, offset: int, response: Response, head: bool) -> int:
    """
    Read the body of C{response} from C{data} at C{offset}.

    :param head: whether the request was C{HEAD}.
    :return: the offset after it.
    """
    status = response.status
    if status < 200 or status in (204, 304) or head:
        return offset
    encodings = b",".join(response.header(b"transfer-encoding")).lower()
    lengths = response.header(b"content-length")
    if b"chunked" in encodings:
        while True:
            match = _CHUNK_SIZE.match(data, offset)
            if match is None:
                raise Malformed(f"bad chunk size line: {data[offset : offset + 40]!r}")
            size = int(match.group(1), 16)
            offset = match.end()
            if size == 0:
                end = data.find(b"\r\n\r\n", offset - 2)
                if end < 0:
                    raise Malformed("chunked body without its end")
                return end + 4
            if data[offset + size : offset + size + 2] != b"\r\n":
                raise Malformed("chunk not followed by CRLF")
            response.body += data[offset : offset + size]
            offset += size + 2
    if lengths:
        if len(set(lengths)) != 1 or not re.fullmatch(rb"[0-9]+", lengths[0]):
            raise Malformed(f"bad Content-Length {lengths!r}")
        length = int(lengths[0])
        if len(data) - offset < length:
            raise Malformed(f"body shorter than its Content-Length {length}")
        response.body = data[offset : offset + length]
        return offset + length
    # Delimited by the end of the connection.
    response.body = data[offset:]
    return len(data)


def readResponses(data: bytes, head: bool = False) -> tuple[list[Response], bytes]:
    """
    Split what the server wrote into HTTP/1.x responses, each checked to be
    well-formed (RFC 9112): a status line with a three-digit code and a
    reason of visible characters, header fields, and a body framed by its
    C{Content-Length}, by chunks or by the end of the connection (none at
    all when C{head}: the answer to a C{HEAD} request).

    :return: the responses, and the bytes that follow a C{101} response.
    :raises Malformed: for anything else.
    """
    responses: list[Response] = []
    offset = 0
    while offset < len(data):
        match = _STATUS_LINE.match(data, offset)
        if match is None:
            raise Malformed(f"bad status line at {offset}: {data[offset:][:120]!r}")
        response = Response(int(match.group(1)), match.group(2), [], b"")
        offset = match.end()
        while not data.startswith(b"\r\n", offset):
            header = _HEADER_LINE.match(data, offset)
            if header is None:
                raise Malformed(f"bad header line: {data[offset:][:120]!r}")
            response.headers.append((header.group(1).lower(), header.group(2)))
            offset = header.end()
        offset += 2
        responses.append(response)
        if response.status == 101:
            return responses, data[offset:]
        offset = _readBody(data, offset, response, head)
    return responses, b""


@dataclass
class Frame:
    """
    One WebSocket frame.
    """

    fin: bool
    rsv: int
    opcode: int
    payload: bytes


def readServerFrames(data: bytes) -> list[Frame]:
    """
    Split what the server wrote after its C{101} into WebSocket frames: whole,
    unmasked (RFC 6455 5.1) frames.

    :raises Malformed: for a masked or truncated frame.
    """
    frames = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 2:
            raise Malformed("truncated frame header")
        first, second = data[offset], data[offset + 1]
        if second & 0x80:
            raise Malformed("a server frame is masked")
        length = second & 0x7F
        offset += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, offset)
            offset += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, offset)
            offset += 8
        if len(data) - offset < length:
            raise Malformed("truncated frame")
        frames.append(
            Frame(
                bool(first & 0x80),
                (first >> 4) & 0x07,
                first & 0x0F,
                data[offset : offset + length],
            )
        )
        offset += length
    return frames


@dataclass
class ServerView:
    """
    What a client saw of the server's WebSocket frames.

    :ivar messages: the binary messages, in order.
    :ivar close: the close frame's code and reason, or L{None}.
    """

    messages: list[bytes] = field(default_factory=list)
    close: tuple[int | None, str] | None = None


def viewFrames(frames: list[Frame]) -> ServerView:
    """
    Check the server's frames against RFC 6455 and the contract (Parts 1.1,
    1.7: only binary frames carry data, and they are never fragmented) and
    collect its messages and close.

    :raises Malformed: for anything else.
    """
    view = ServerView()
    for frame in frames:
        if view.close is not None:
            raise Malformed(f"a frame after the close frame: {frame!r}")
        if frame.rsv:
            raise Malformed(f"reserved bits set: {frame!r}")
        if not frame.fin:
            raise Malformed(f"a fragmented frame: {frame!r}")
        if frame.opcode >= 8 and len(frame.payload) > 125:
            raise Malformed(f"a control frame longer than 125 bytes: {frame!r}")
        if frame.opcode == 2:
            view.messages.append(frame.payload)
        elif frame.opcode == 8:
            payload = frame.payload
            if len(payload) == 1:
                raise Malformed("a close frame of one byte")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise Malformed(
                    f"a close reason that is not UTF-8: {payload!r}"
                ) from None
            code = struct.unpack("!H", payload[:2])[0] if payload else None
            view.close = (code, reason)
        elif frame.opcode not in (9, 10):
            raise Malformed(f"a frame of opcode {frame.opcode}: {frame!r}")
    return view


# -- what a client writes: WebSocket frames and upgrade requests -----------------

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = base64.b64encode(b"aphelion fuzzing")


def mask(payload: bytes, key: bytes) -> bytes:
    """
    XOR C{payload} with the four bytes of C{key}, repeated (RFC 6455 5.3).
    """
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")
    return value.to_bytes(n, "big")


def clientFrame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = b"\x37\xfa\x21\x3d",
    lengthForm: int = -1,
) -> bytes:
    """
    Build one client frame.

    :param key: the masking key, or L{None} for an unmasked frame (which a
        server must refuse).
    :param lengthForm: 0, 1 or 2 for a 7-bit, 16-bit or 64-bit length, or -1
        for the shortest; a longer one than needed is not minimal, and
        refused.
    """
    n = len(payload)
    if lengthForm < 0:
        lengthForm = 0 if n < 126 else 1 if n < 65536 else 2
    if lengthForm == 0 and n > 125:
        lengthForm = 1
    if lengthForm == 1 and n > 65535:
        lengthForm = 2
    maskBit = 0x80 if key is not None else 0
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0x0F])
    if lengthForm == 0:
        head += bytes([maskBit | n])
    elif lengthForm == 1:
        head += bytes([maskBit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([maskBit | 127]) + struct.pack("!Q", n)
    if key is None:
        return head + payload
    return head + key + mask(payload, key)


def acceptFor(key: bytes) -> bytes:
    """
    The C{Sec-WebSocket-Accept} of C{key} (RFC 6455 4.2.2).
    """
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def upgradeRequest(path: bytes = b"/aphelion", key: bytes = KEY) -> bytes:
    """
    A valid WebSocket upgrade request, as a browser sends it.
    """
    return (
        b"GET " + path + b" HTTP/1.1\r\n"
        b"Host: localhost:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://localhost\r\n"
        b"\r\n"
    )


@st.composite
def splits(draw: st.DrawFn, data: bytes, most: int = 8) -> list[bytes]:
    """
    C{data} cut at up to C{most} random points.
    """
    if len(data) < 2:
        return [data]
    cuts = draw(st.lists(st.integers(1, len(data) - 1), max_size=most, unique=True))
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


# -- 1. the HTTP upgrade -------------------------------------------------------

_VALUES = [
    b"",
    b" ",
    b"websocket",
    b"WebSocket",
    b"websocket, h2c",
    b"h2c",
    b"Upgrade",
    b"keep-alive, Upgrade",
    b"upgrade,,",
    b"close",
    b"13",
    b"8",
    b"0",
    b"-1",
    b"+13",
    b"13, 8",
    b"99999999999999999999999",
    b"0x10",
    b"1e3",
    b"5",
    b"5, 5",
    b"5,6",
    b"-5",
    b"chunked",
    b"gzip, chunked",
    b"identity",
    b"chunked, identity",
    b"permessage-deflate",
    b"permessage-deflate; client_max_window_bits",
    b"permessage-deflate; server_max_window_bits=8",
    b"permessage-deflate; server_max_window_bits=99",
    b"permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    b"permessage-deflate; x=1, permessage-deflate",
    b"permessage-deflate;;",
    b"x-webkit-deflate-frame",
    b"permessage-bzip2, permessage-snappy",
    b"chat, superchat",
    b",,,",
    b'"quoted"',
    KEY,
    KEY + b"=",
    KEY[:-4],
    b"========================",
    b"not base64 at all!!!!!!!",
    b"\xff\xfe\xfd",
    b"\xc3\xa9t\xc3\xa9",
    b"\x00",
    b"\x1b[31mred",
    b"\x7f",
    b"203.0.113.9",
    b"203.0.113.9, 10.0.0.1",
    b"unknown, ::1",
    b"localhost",
    b"localhost:8080",
    b"http://localhost",
    b"null",
    b"100-continue",
]
_NAMES = [
    b"Host",
    b"Upgrade",
    b"Connection",
    b"Sec-WebSocket-Key",
    b"Sec-WebSocket-Version",
    b"Sec-WebSocket-Protocol",
    b"Sec-WebSocket-Extensions",
    b"Origin",
    b"Content-Length",
    b"Transfer-Encoding",
    b"X-Forwarded-For",
    b"Expect",
    b"Cookie",
    b"User-Agent",
    b"content-length",
    b"UPGRADE",
    b"Content-Length ",
    b" Host",
    b"",
]
_TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

headerNames = st.one_of(
    st.sampled_from(_NAMES),
    st.text(_TCHAR, min_size=1, max_size=16).map(str.encode),
    st.binary(max_size=16),
)
headerValues = st.one_of(
    st.sampled_from(_VALUES),
    st.binary(max_size=40),
    st.integers(-(2**70), 2**70).map(lambda n: str(n).encode()),
    st.integers(100, 20000).map(lambda n: b"a" * n),
)
methods = st.one_of(
    st.just(b"GET"),
    st.sampled_from(
        [b"POST", b"HEAD", b"PUT", b"OPTIONS", b"CONNECT", b"PRI", b"get", b"G\x00T"]
    ),
    st.binary(max_size=8),
)
targets = st.one_of(
    st.just(b"/aphelion"),
    st.sampled_from(
        [
            b"/",
            b"/aphelion/",
            b"/aphelion/x",
            b"//aphelion",
            b"/aphelion?x=1",
            b"/aphelion#f",
            b"/%61phelion",
            b"/aphelion%2F",
            b"/APHELION",
            b"/../aphelion",
            b"*",
            b"http://localhost/aphelion",
            b"/aphelion\x00",
            b"/" + b"a" * 20000,
            b"",
        ]
    ),
    st.binary(max_size=30),
)
versions = st.one_of(
    st.just(b"HTTP/1.1"),
    st.sampled_from(
        [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b"http/1.1", b""]
    ),
    st.binary(max_size=10),
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=40),
    st.just(b"5\r\nhello\r\n0\r\n\r\n"),
)
trailers = st.one_of(
    st.just(b""),
    st.just(clientFrame(2, b"\x00\x02" + bytes(37))),
    st.just(upgradeRequest()),
    st.just(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    st.binary(max_size=40),
)


httpish = st.lists(
    st.one_of(
        st.binary(max_size=12),
        st.sampled_from(
            [
                b"\r\n",
                b"\r\n\r\n",
                b"\n",
                b" ",
                b": ",
                b"GET ",
                b"/aphelion",
                b" HTTP/1.1",
            ]
        ),
    ),
    max_size=30,
).map(b"".join)


@st.composite
def upgradeRequests(draw: st.DrawFn) -> bytes:
    """
    A valid upgrade request with a few structured mutations: of the method,
    target or version; a header dropped, duplicated, renamed, replaced,
    folded or added; odd separators and bare LF line ends; a body, and more
    bytes after the request.
    """
    parts = {
        "method": b"GET",
        "space": b" ",
        "target": b"/aphelion",
        "version": b"HTTP/1.1",
        "eol": b"\r\n",
        "body": b"",
        "trailer": b"",
    }
    headers: list[list[bytes]] = [
        [b"Host", b": ", b"localhost:8080"],
        [b"Upgrade", b": ", b"websocket"],
        [b"Connection", b": ", b"Upgrade"],
        [b"Sec-WebSocket-Key", b": ", KEY],
        [b"Sec-WebSocket-Version", b": ", b"13"],
    ]
    partValues = {
        "method": methods,
        "space": st.sampled_from([b"  ", b"\t", b""]),
        "target": targets,
        "version": versions,
        "eol": st.just(b"\n"),
        "body": bodies,
        "trailer": trailers,
    }
    kinds = [*partValues, "drop", "dup", "set", "add", "rename", "fold", "colon"]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(kinds))
        if kind in partValues:
            parts[kind] = draw(partValues[kind])
            continue
        if kind == "add" or not headers:
            at = draw(st.integers(0, len(headers)))
            headers.insert(at, [draw(headerNames), b": ", draw(headerValues)])
            continue
        header = headers[draw(st.integers(0, len(headers) - 1))]
        if kind == "drop":
            headers.remove(header)
        elif kind == "dup":
            headers.append([header[0], b": ", draw(headerValues)])
        elif kind == "set":
            header[2] = draw(headerValues)
        elif kind == "rename":
            header[0] = draw(headerNames)
        elif kind == "fold":
            header[2] += b"\r\n " + draw(headerValues)
        else:
            header[1] = draw(st.sampled_from([b":", b" : ", b":\t", b"::"]))
    eol = parts["eol"]
    line = parts["method"] + parts["space"] + parts["target"] + b" " + parts["version"]
    return (
        line
        + eol
        + b"".join(name + colon + value + eol for name, colon, value in headers)
        + eol
        + parts["body"]
        + parts["trailer"]
    )


def checkHTTPOutcome(
    connection: Connection, head: bool = False
) -> tuple[str, list[Response], bytes]:
    """
    Check the outcome of an upgrade request: whatever the server wrote is
    well-formed HTTP that names no software version; the connection is open
    and waiting, closed, or switched to the WebSocket protocol after exactly
    one C{101}, followed by well-formed WebSocket frames.

    :param head: whether the request was C{HEAD}.
    :return: the outcome's name, the responses and the bytes after a C{101}.
    """
    # What the server writes in this reactor turn (a page is streamed).
    connection.proxy.reactor.advance(0)
    responses, rest = readResponses(connection.transport.value(), head)
    for response in responses:
        assertNoVersion(response)
    upgrades = [r for r in responses if r.status == 101]
    if upgrades:
        assert len(upgrades) == 1 and responses[-1].status == 101, responses
        assert connection.switched, "101 written, but the protocol did not switch"
        viewFrames(readServerFrames(rest))
        return (
            ("upgraded, closed" if connection.closed else "upgraded"),
            responses,
            rest,
        )
    if connection.switched:
        # Autobahn took the transport over, then failed the handshake.
        assert connection.closed, "switched without a 101, yet not closing"
    codes = "/".join(str(r.status) for r in responses)
    if connection.closed:
        return f"closed {codes}", responses, rest
    return f"open {codes}", responses, rest


_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")
# Bytes per flood: enough to see the bound passed; more in the long run.
_FLOOD_SIZE = (4 if _LONG_RUN else 1) * 1024 * 1024
_FLOOD_BOUND = 512 * 1024


def sameResource(target: str, path: str) -> bool:
    """
    Whether the request target C{target} names C{path} (RFC 3986 6.2.2):
    equal once the query is cut off and percent-encoded unreserved
    characters (2.3) are decoded; with or without a trailing slash, as the
    players' site documents.
    """

    def decode(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        unreserved = char.isascii() and (char.isalnum() or char in "-._~")
        return char if unreserved else match.group(0).upper()

    decoded = _UNRESERVED.sub(decode, target.partition("?")[0])
    # One trailing slash may go, not two: "//" is another path than "/".
    trimmed = (
        decoded[:-1]
        if decoded.endswith("/") and not decoded.endswith("//")
        else decoded
    )
    return path in (decoded, trimmed)


def floods() -> dict[str, tuple[bytes, bytes]]:
    """
    Endless inputs: a prefix, then a unit repeated for ever.
    """
    upgrade = upgradeRequest()
    ping = clientFrame(2, b"\x00\x01" + bytes(37))
    game = clientFrame(2, b"\x00\x02" + bytes(37))
    return {
        "request line": (b"GET /", b"a" * 1000),
        "header line": (b"GET /aphelion HTTP/1.1\r\nX-Long: ", b"a" * 1000),
        "headers": (b"GET /aphelion HTTP/1.1\r\n", b"X-A: b\r\n" * 125),
        "content-length body": (
            upgrade[:-2] + b"Content-Length: 1000000000000\r\n\r\n",
            b"x" * 1000,
        ),
        "chunked body": (
            upgrade[:-2] + b"Transfer-Encoding: chunked\r\n\r\n",
            b"3e8\r\n" + b"x" * 1000 + b"\r\n",
        ),
        "pipelined requests": (b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 25),
        "pipelined upgrades": (b"", upgrade),
        "fragmented message": (
            upgrade + clientFrame(2, b"", fin=False),
            clientFrame(0, b"x" * 1000, fin=False),
        ),
        "huge frame": (
            upgrade + b"\x82\xff" + struct.pack("!Q", 2**62) + b"abcd",
            b"x" * 1000,
        ),
        "pings": (upgrade, clientFrame(9, b"p" * 125)),
        "ping packets": (
            upgrade + ping,
            clientFrame(2, b"\x00\x09" + struct.pack("<q", 7)),
        ),
        "game packets": (upgrade + game, clientFrame(2, b"\x00\x0a\x00")),
        "fragmented init": (
            upgrade + clientFrame(2, b"", fin=False),
            clientFrame(0, b"\x00" * 1000, fin=False),
        ),
    }


def flood(
    proxy: Proxy, connection: Connection, prefix: bytes, unit: bytes, size: int
) -> int:
    """
    Send C{prefix}, then C{unit} repeated in chunks of C{size} bytes, until
    L{_FLOOD_SIZE} bytes are sent, or the server stops reading, or 64 KiB
    after its WebSocket began to close (it discards what follows).

    :return: how much the traced memory grew meanwhile.
    """
    stream = unit * (size // len(unit) + 2)
    before = tracemalloc.get_traced_memory()[0]
    connection.send(prefix)
    sent = len(prefix)
    offset = 0
    closingSince: int | None = None
    while sent < _FLOOD_SIZE and connection.reading:
        websocket = connection.websocket
        if closingSince is None and websocket is not None and not websocket.isOpen:
            closingSince = sent
        if closingSince is not None and sent - closingSince > 65536:
            break
        connection.send(stream[offset : offset + size])
        offset = (offset + size) % len(unit)
        sent += size
        connection.transport.clear()
        proxy.reactor.advance(0)
    return tracemalloc.get_traced_memory()[0] - before


_VERSIONS = re.compile(
    rb"(?i)twisted|autobahn|aphelion/|python|[0-9]+\\.[0-9]+\\.[0-9]+"
)
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_WEBSOCKET_UP = (WebSocketProtocol.STATE_OPEN, WebSocketProtocol.STATE_CLOSING)


def assertNoVersion(response: Response) -> None:
    """
    Check that C{response} names no software or version, in its headers or
    in the body of an error (Part 6); a page's own content may.
    """
    for name, value in response.headers:
        if name not in (b"date", b"last-modified"):
            assert not _VERSIONS.search(value), (name, value)
    if response.status >= 400:
        assert not _VERSIONS.search(response.body), response.body


def _pageContents() -> set[bytes]:
    """
    The contents of every file the players' pages may serve.
    """
    return {child.getContent() for child in PAGES.walk() if child.isfile()}


_PAGES = _pageContents()


def assertPage(response: Response, target: str) -> None:
    """
    Check that a response to a request for another path than the
    endpoint's is a 404, or one of the players' pages: a redirect, a 304,
    or the content of a file of the pages' directory (or the generated
    C{endpoint.json}), never of a file outside it.
    """
    if response.status in (404, 301, 302, 304):
        return
    assert response.status == 200, (response.status, target)
    if target.partition("?")[0].endswith("endpoint.json"):
        json.loads(response.body)
        return
    assert response.body in _PAGES, (target, response.body[:80])


class HTTPUpgradeFuzzTests(FuzzTestCase):
    """
    The players' site, as L{aphelion.service.build} makes it, fed arbitrary
    bytes and mutated upgrade requests split at random points.
    """

    def feed(self, chunks: list[bytes], **config: Any) -> None:
        """
        Feed C{chunks} to one connection of a fresh AuthProxy, then let every
        timer run, and check the outcome before and after.
        """
        # The site serves one request per connection.
        head = b"".join(chunks).startswith(b"HEAD ")
        with self.example(), Proxy(**config) as proxy:
            connection = proxy.connect()
            for chunk in chunks:
                connection.send(chunk)
            proxy.reactor.advance(0)
            connection.pump()
            outcome, _, _ = checkHTTPOutcome(connection, head)
            self.tally(outcome)
            proxy.advance(proxy.config.upgradeTimeout + 1, step=1)
            later, _, _ = checkHTTPOutcome(connection, head)
            # Part 6: no upgrade within the upgrade timeout, connection dropped.
            self.assertTrue(later.startswith(("upgraded", "closed")), later)
            proxy.advance(60, step=5)
            checkHTTPOutcome(connection, head)
            connection.lose()

    @reported
    @given(data=st.one_of(st.binary(max_size=300), httpish), cuts=st.data())
    @fuzzSettings(150, share=0.1)
    def test_randomBytes(self, data: bytes, cuts: st.DataObject) -> None:
        """
        Random bytes, split anywhere: the connection stays open, is closed,
        or (never, in practice) upgrades; any response is well-formed; nothing
        raises or is logged as a failure.
        """
        self.feed(cuts.draw(splits(data)))

    @reported
    @given(data=st.one_of(st.binary(max_size=200), httpish), cuts=st.data())
    @fuzzSettings(100, share=0.05)
    def test_randomBytesAfterRequestLine(
        self, data: bytes, cuts: st.DataObject
    ) -> None:
        """
        A valid request line followed by random bytes, split anywhere.
        """
        self.feed(cuts.draw(splits(b"GET /aphelion HTTP/1.1\r\n" + data)))

    @reported
    @given(request=upgradeRequests(), cuts=st.data())
    @fuzzSettings(300)
    def test_mutatedUpgrade(self, request: bytes, cuts: st.DataObject) -> None:
        """
        Mutated upgrade requests, split anywhere: the connection stays open,
        is closed, or is switched to the WebSocket protocol after one
        well-formed C{101}; every response is well-formed.
        """
        self.feed(cuts.draw(splits(request)))

    @reported
    @given(request=upgradeRequests(), trust=st.booleans(), cuts=st.data())
    @fuzzSettings(100, share=0.05)
    def test_mutatedUpgradeOtherConfig(
        self, request: bytes, trust: bool, cuts: st.DataObject
    ) -> None:
        """
        The same with the path C{/} and a trusted C{X-Forwarded-For}, as the
        legacy profile and a deployment behind a front proxy have them.
        """
        request = request.replace(b" /aphelion", b" /", 1)
        self.feed(cuts.draw(splits(request)), path="/", trustForwardedFor=trust)

    def test_validUpgrade(self) -> None:
        """
        The unmutated request upgrades, with the right accept key: the fuzz
        tests start from something that works.
        """
        with self.example(), Proxy() as proxy:
            connection = proxy.connect()
            connection.send(upgradeRequest())
            outcome, responses, _ = checkHTTPOutcome(connection)
            self.assertEqual(outcome, "upgraded")
            self.assertEqual(
                responses[-1].header(b"sec-websocket-accept"), [acceptFor(KEY)]
            )

    @reported
    @given(
        segments=st.lists(
            st.one_of(
                st.sampled_from(
                    [
                        "aphelion",
                        "games",
                        "",
                        "..",
                        ".",
                        "%61phelion",
                        "%2e%2e",
                        "..%2F..%2Fetc",
                        "index.html",
                        "chat.html",
                        "aphelion.js",
                        "endpoint.json",
                        "vendor",
                        "style.css%00",
                        "passwd",
                    ]
                ),
                st.text("aphelionAPH%2F0~-._!$&'()*+,;=:@", max_size=10),
            ),
            min_size=1,
            max_size=4,
        ),
        query=st.sampled_from(["", "?", "?x=1", "?/aphelion"]),
        path=st.sampled_from(["/aphelion", "/games/aphelion", "/"]),
    )
    @fuzzSettings(150, share=0.05)
    def test_otherPathsNotUpgraded(
        self, segments: list[str], query: str, path: str
    ) -> None:
        """
        A valid upgrade request upgrades on the configured path (its
        unreserved characters may be percent-encoded, and it may end in a
        slash); any other path gets C{404} (Part 1.7) with no version in it,
        or one of the players' pages, never a file from outside them.
        """
        target = "/" + "/".join(segments)
        with self.example(), Proxy(path=path) as proxy:
            connection = proxy.connect()
            connection.send(upgradeRequest(path=(target + query).encode()))
            outcome, responses, _ = checkHTTPOutcome(connection)
            self.tally(outcome)
            if sameResource(target, path):
                self.assertEqual(outcome, "upgraded", target)
            else:
                self.assertEqual(len(responses), 1, f"{target} on {path}")
                self.assertNotEqual(responses[0].status, 101, f"{target} on {path}")
                assertPage(responses[0], target)
                self.assertTrue(connection.closed)

    def test_slashVariantsGet404(self) -> None:
        """
        Paths that differ from the configured one by an escaped slash or a
        doubled slash are other paths (RFC 3986 6.2.2: C{%2F} is reserved,
        and empty segments count), and get C{404} (Part 1.7).
        """
        for target, path in [
            ("//aphelion", "/aphelion"),
            ("/aphelion//", "/aphelion"),
            ("/aphelion%2F", "/aphelion"),
            ("/%2Faphelion", "/aphelion"),
            ("/%2F", "/"),
            ("//", "/"),
        ]:
            with self.example(), Proxy(path=path) as proxy:
                connection = proxy.connect()
                connection.send(upgradeRequest(path=target.encode()))
                _, responses, _ = checkHTTPOutcome(connection)
                self.assertEqual(
                    [r.status for r in responses], [404], f"{target} on {path}"
                )

    @reported
    @given(
        header=st.sampled_from(
            [b"Content-Length", b"content-length", b"Transfer-Encoding"]
        ),
        value=st.one_of(
            st.sampled_from(
                [
                    b"0",
                    b"1",
                    b"00",
                    b"5",
                    b"-1",
                    b"+5",
                    b"5, 5",
                    b"chunked",
                    b"identity",
                    b"gzip",
                    b"",
                    b"1" * 30,
                ]
            ),
            headerValues.filter(lambda v: len(v) < 1000 and _FIELD_VALUE.fullmatch(v)),
        ),
    )
    @fuzzSettings(150, share=0.02)
    def test_bodyRefused(self, header: bytes, value: bytes) -> None:
        """
        An upgrade request that announces a body (C{Content-Length} other
        than 0, or any C{Transfer-Encoding}) is answered C{400} and closed
        before any of the body arrives (Part 6); C{Content-Length: 0}
        changes nothing.
        """
        head = upgradeRequest()
        head = head[:-2] + header + b": " + value + b"\r\n\r\n"
        with self.example(), Proxy() as proxy:
            connection = proxy.connect()
            connection.send(head)
            outcome, responses, _ = checkHTTPOutcome(connection)
            self.tally(outcome)
            length = value.strip(b" \t")
            announced = (
                header.lower() == b"transfer-encoding"
                or not re.fullmatch(rb"[0-9]+", length)
                or int(length) != 0
            )
            if announced:
                self.assertEqual([r.status for r in responses], [400], value[:80])
                self.assertTrue(connection.closed)
            else:
                self.assertEqual(outcome, "upgraded")

    @reported
    @given(
        upgrade=st.one_of(st.none(), st.sampled_from(_VALUES), headerValues).filter(
            lambda v: v is None or (len(v) < 1000 and _FIELD_VALUE.fullmatch(v))
        )
    )
    @fuzzSettings(150, share=0.02)
    def test_plainRequest426(self, upgrade: bytes | None) -> None:
        """
        A request on the WebSocket path that does not ask for C{Upgrade:
        websocket} is answered C{426}, with an C{Upgrade} header and no
        version in its headers or body, and closed (Part 6).
        """
        lines = upgradeRequest().split(b"\r\n")
        lines = [line for line in lines if not line.startswith(b"Upgrade:")]
        if upgrade is not None:
            lines.insert(1, b"Upgrade: " + upgrade)
        asks = upgrade is not None and any(
            token.strip().lower() == b"websocket" for token in upgrade.split(b",")
        )
        with self.example(), Proxy() as proxy:
            connection = proxy.connect()
            connection.send(b"\r\n".join(lines))
            outcome, responses, _ = checkHTTPOutcome(connection)
            self.tally(outcome)
            if not asks:
                self.assertEqual(
                    [r.status for r in responses],
                    [426],
                    upgrade[:80] if upgrade else None,
                )
                self.assertEqual(responses[0].header(b"upgrade"), [b"websocket"])
                assertNoVersion(responses[0])
                self.assertTrue(connection.closed)

    @reported
    @given(request=upgradeRequests(), cuts=st.data(), pause=st.floats(0.1, 3.0))
    @fuzzSettings(100, share=0.02)
    def test_slowUpgradeDropped(
        self, request: bytes, cuts: st.DataObject, pause: float
    ) -> None:
        """
        A connection whose upgrade is not complete within the upgrade timeout
        of its accept is dropped, however its bytes trickle in (Part 6).
        """
        chunks = cuts.draw(splits(request, most=30))
        with self.example(), Proxy() as proxy:
            connection = proxy.connect()
            start = proxy.reactor.seconds()
            for chunk in chunks:
                connection.send(chunk)
                proxy.advance(pause, step=pause)
                if proxy.reactor.seconds() - start > proxy.config.upgradeTimeout:
                    break
            proxy.advance(proxy.config.upgradeTimeout, step=0.5)
            outcome, _, _ = checkHTTPOutcome(connection, request.startswith(b"HEAD "))
            self.tally(outcome)
            websocket = connection.websocket
            upgraded = websocket is not None and websocket.state in _WEBSOCKET_UP
            self.assertTrue(upgraded or connection.closed, outcome)

    def test_floodsBounded(self) -> None:
        """
        Endless input of every shape (a request line, a header line, headers,
        a body announced by C{Content-Length} or chunked, pipelined requests,
        a fragmented WebSocket message, a huge frame, pings, ProtobufPackets)
        never grows the server's memory without bound: it closes the
        connection, stops reading it, or holds less than 512 KiB after a
        mebibyte (four in the long run).
        """
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            self.addCleanup(tracemalloc.stop)
        for name, (prefix, unit) in sorted(floods().items()):
            for size in (1000, 16384):
                with self.example(), Proxy() as proxy:
                    connection = proxy.connect()
                    grown = flood(proxy, connection, prefix, unit, size)
                    self.tally(f"{name}: {'closed' if connection.closed else 'open'}")
                    self.assertLess(grown, _FLOOD_BOUND, f"{name}, chunks of {size}")


# -- a WebSocket client of the players' site -----------------------------------


class WebSocketClient:
    """
    A client that upgraded a connection to the players' site and now sends
    raw frames, and reads the server's frames.
    """

    def __init__(self, proxy: Proxy, port: int = 50000) -> None:
        self.proxy = proxy
        self.connection = proxy.connect(port)
        self.connection.send(upgradeRequest())
        written = self.connection.transport.value()
        responses, rest = readResponses(written)
        assert [r.status for r in responses] == [101], responses
        self._start = len(written) - len(rest)

    def send(self, data: bytes) -> None:
        """
        Send raw bytes.
        """
        self.connection.send(data)

    def sendMessage(self, payload: bytes, isBinary: bool = True) -> None:
        """
        Send one message in one masked frame.
        """
        self.send(clientFrame(2 if isBinary else 1, payload))

    def view(self) -> ServerView:
        """
        What the server sent since the upgrade, checked.
        """
        return viewFrames(
            readServerFrames(self.connection.transport.value()[self._start :])
        )

    def handshake(self, protocol: int, token: bytes | None = None) -> bytes:
        """
        Send a valid init packet; return the server's 32 token bytes.
        """
        self.sendMessage(encodeInit(protocol, 0, token))
        self.proxy.reactor.advance(0)
        view = self.view()
        assert view.close is None and len(view.messages[0]) == 32, view
        return view.messages[0]


# -- 2. the init packet ----------------------------------------------------------

revisions = st.tuples(st.integers(1, 4), st.integers(0, 2)).map(
    lambda t: Revisions(t[0], t[0] + t[1])
)
int16 = st.integers(-(2**15), 2**15 - 1)
int32 = st.one_of(
    st.sampled_from([-1, 2**31 - 1, -(2**31), 2**24]),
    st.integers(-(2**31), 2**31 - 1),
)
int8 = st.integers(-128, 127)


def usually(
    draw: st.DrawFn,
    common: st.SearchStrategy[Any],
    rare: st.SearchStrategy[Any],
    oneIn: int = 4,
) -> Any:
    """
    Draw from C{common}, or one time in C{oneIn} from C{rare} (the common
    case is what examples shrink to).
    """
    return draw(rare) if draw(st.integers(0, oneIn - 1)) == oneIn - 1 else draw(common)


@st.composite
def initMessages(draw: st.DrawFn) -> tuple[bytes, bool, str]:
    """
    A first message: a C2SInitPacket of any field values (mostly near the
    served ones), a token that names the live session or not, possibly cut
    or padded to another length (past the message limit, once in a while),
    possibly in a text frame.

    :return: the message, whether it is binary, and which token it carries
        (C{"live"} or another).
    """
    protocol = usually(
        draw,
        st.sampled_from([1, 2]),
        st.one_of(st.sampled_from([0, 3, -1, 256, 512]), int16),
        oneIn=6,
    )
    version = usually(draw, st.integers(0, 4), int32, oneIn=6)
    hasToken = usually(draw, st.sampled_from([0, 1]), int8, oneIn=6)
    tokenKind = draw(st.sampled_from(["live", "random", "zero"]))
    if tokenKind == "random":
        token = draw(st.binary(min_size=32, max_size=32))
    else:
        token = bytes(32)
    message = struct.pack("!hib", protocol, version, hasToken) + token
    length = usually(
        draw, st.just(39), st.one_of(st.integers(0, 80), st.just(65537)), oneIn=5
    )
    if length < 39:
        message = message[:length]
    elif length > 39:
        message += bytes(length - 39)
    isBinary = draw(st.integers(0, 9)) != 9
    return message, isBinary, tokenKind


def expectedInitClose(
    message: bytes, isBinary: bool, served: dict[int, Revisions], maxMessage: int
) -> int | None:
    """
    The contract's reference for a first message (Parts 1.2 and 1.1): the
    close code the server must answer with, in the contract's order, or
    L{None} for the S2CInitPacket.
    """
    if len(message) > maxMessage:
        return 1009
    if not isBinary:
        return 1003
    if len(message) != 39:
        return 4003
    protocol, version, hasToken = struct.unpack_from("!hib", message)
    if hasToken not in (0, 1):
        return 4003
    if protocol not in served:
        return 4000
    if version != 0 and version < served[protocol].minimum:
        return 4001
    if version != 0 and version > served[protocol].current:
        return 4002
    return None


def fragments(
    draw: Callable[..., Any], opcode: int, payload: bytes, pings: bool = True
) -> bytes:
    """
    C{payload} as one message of C{opcode}, in one to three fragments, with
    pings between them now and then.
    """
    count = draw(st.integers(1, min(3, len(payload)))) if payload else 1
    cuts = sorted(
        draw(
            st.lists(
                st.integers(1, max(1, len(payload) - 1)),
                min_size=count - 1,
                max_size=count - 1,
                unique=True,
            )
        )
    )
    points = [0, *cuts, len(payload)]
    wire = b""
    for index, (a, b) in enumerate(itertools.pairwise(points)):
        if pings and draw(st.integers(0, 4)) == 0:
            wire += clientFrame(9, draw(st.binary(max_size=8)))
        last = index == len(points) - 2
        wire += clientFrame(opcode if index == 0 else 0, payload[a:b], fin=last)
    return wire


class InitPacketFuzzTests(FuzzTestCase):
    """
    The first message of an upgraded connection, checked against a reference
    model of the contract's checks (Part 1.2).
    """

    @reported
    @given(
        first=initMessages(),
        ping=revisions,
        game=revisions,
        serveGame=st.sampled_from([True, True, True, False]),
        data=st.data(),
    )
    @fuzzSettings(300)
    def test_initAgainstModel(
        self,
        first: tuple[bytes, bool, str],
        ping: Revisions,
        game: Revisions,
        serveGame: bool,
        data: st.DataObject,
    ) -> None:
        """
        Any first message, in any fragments and chunks, gets the
        S2CInitPacket (the live session's token if it named it, else a new
        one) or a close with the first code of 1009, 1003, 4003, 4000, 4001,
        4002 that applies, in that order, with a reason.
        """
        message, isBinary, tokenKind = first
        served = {1: ping, 2: game} if serveGame else {1: ping}
        with self.example(), Proxy(revisions=served) as proxy:
            live = proxy.liveToken()
            if tokenKind == "live":
                message = (
                    message[:7] + live + message[39:] if len(message) >= 39 else message
                )
            client = WebSocketClient(proxy)
            wire = fragments(data.draw, 2 if isBinary else 1, message)
            for chunk in data.draw(splits(wire)):
                client.send(chunk)
            proxy.reactor.advance(0)
            view = client.view()
            expected = expectedInitClose(
                message, isBinary, served, proxy.config.maxMessage
            )
            if expected is None:
                self.tally("init ok")
                self.assertIsNone(view.close)
                [reply] = view.messages
                self.assertEqual(len(reply), 32)
                joins = message[6] == 1 and message[7:39] == live
                self.assertEqual(reply == live, joins)
            else:
                self.tally(f"close {expected}")
                self.assertEqual(view.messages, [])
                assert view.close is not None
                self.assertEqual(view.close[0], expected, view.close)
                self.assertTrue(view.close[1])
            # A session never authenticated does not linger (Part 6): the
            # registry holds only the live one again.
            client.connection.lose()
            self.assertEqual(len(proxy.factory.registry), 1)


# -- 3. ProtobufPackets and WebSocket frames after the handshake -----------------

pingBodies = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(lambda t: b"\x09" + struct.pack("<q", t)),
    st.integers(-(2**63), 2**63 - 1).map(
        lambda t: PingRequest(client_time=t).SerializeToString()
    ),
)
gameBodies = st.one_of(
    st.text(max_size=40).map(
        lambda i: C2S(authenticate=Authenticate(id=i)).SerializeToString()
    ),
    st.binary(max_size=24).map(lambda b: b"\x0a" + bytes([len(b)]) + b),
)
otherBodies = st.one_of(st.just(b""), st.binary(max_size=24))


@st.composite
def packetSequences(
    draw: st.DrawFn, protocol: int, bodies: st.SearchStrategy[bytes]
) -> list[tuple[bool, bytes]]:
    """
    Client messages after the handshake: mostly ProtobufPackets (an ack byte
    and a payload) whose acks mostly stay within what the server sent (as
    the reference model counts it), else an empty message, a text message,
    one over the size limit, or an ack of anything.

    :return: C{(isBinary, message)} pairs.
    """
    messages = []
    outstanding = 0
    for _ in range(draw(st.integers(0, 20))):
        kind = draw(st.integers(0, 24))
        if kind == 24:
            messages.append((False, draw(st.binary(max_size=4))))
        elif kind == 23:
            messages.append((True, b""))
        elif kind == 22:
            messages.append((True, b"\x00" + bytes(65536)))
        else:
            ack = usually(
                draw, st.integers(0, outstanding), st.integers(0, 255), oneIn=16
            )
            body = usually(draw, bodies, otherBodies, oneIn=12)
            messages.append((True, bytes([ack]) + body))
            if ack <= outstanding:
                outstanding -= ack
            if body:
                try:
                    (PingRequest if protocol == 1 else C2S).FromString(body)
                    outstanding += 1
                except DecodeError:
                    pass
    return messages


def expectedPacketsOutcome(
    protocol: int,
    messages: list[tuple[bool, bytes]],
    limit: int | None,
    maxMessage: int,
) -> tuple[int | None, int, int, list[bytes]]:
    """
    The contract's reference (Parts 1.1, 1.3, 1.5, 1.6 unauthenticated
    without a checker) for messages after the handshake.

    :return: the close code (or L{None}), how many of the client's
        payloads the server acknowledges (once it has sent every ack), how
        many packets with a payload it sends, and the payloads it must
        answer, in order.
    """
    outstanding = received = replies = 0
    answered: list[bytes] = []
    for isBinary, message in messages:
        if len(message) > maxMessage:
            return 1009, received, replies, answered
        if not isBinary:
            return 1003, received, replies, answered
        if not message or message[0] == 255 or message[0] > outstanding:
            return 4006, received, replies, answered
        outstanding -= message[0]
        body = message[1:]
        if not body:
            continue
        received += 1
        try:
            (PingRequest if protocol == 1 else C2S).FromString(body)
        except DecodeError:
            return 4006, received, replies, answered
        outstanding += 1
        if limit is not None and outstanding > limit:
            return 4007, received, replies, answered
        replies += 1
        answered.append(body)
    return None, received, replies, answered


def checkPacket(packet: bytes, cap: int) -> tuple[int, bytes]:
    """
    Check one server ProtobufPacket (Part 1.3): an ack byte of at most the
    cap, never 255.

    :return: the ack and the payload.
    """
    assert packet, "an empty message from the server"
    assert packet[0] <= cap and packet[0] != 255, packet
    return packet[0], packet[1:]


_CLOSES = {1002, 1003, 1007, 1009, 1013, 4006, 4007, 4008}


class PacketFuzzTests(FuzzTestCase):
    """
    Messages and frames after the handshake, on the ping protocol and the
    game protocol.
    """

    @reported
    @given(
        protocol=st.sampled_from([1, 2]),
        limit=st.sampled_from([None, 1, 2, 8, 1024]),
        cap=st.sampled_from([1, 2, 127, 254]),
        data=st.data(),
    )
    @fuzzSettings(200)
    def test_packetsAgainstModel(
        self, protocol: int, limit: int | None, cap: int, data: st.DataObject
    ) -> None:
        """
        Any sequence of messages, in any chunks and reactor turns, gets what
        a reference model of the contract says: a C{PingResponse} for each
        C{PingRequest} (echoing its time) or C{NOT_AUTHENTICATED} /
        C{AUTH_METHOD_UNSUPPORTED} for each C{C2S} without a checker, acks
        of exactly the payloads received, and a close with 4006, 4007, 1009
        or 1003 where the model closes, never 1011.
        """
        bodies = pingBodies if protocol == 1 else gameBodies
        messages = data.draw(packetSequences(protocol, bodies))
        with self.example(), Proxy(unackedLimit=limit, ackCap=cap) as proxy:
            client = WebSocketClient(proxy)
            client.handshake(protocol)
            start = len(client.view().messages)
            wire = b"".join(clientFrame(2 if b else 1, m) for b, m in messages)
            for chunk in data.draw(splits(wire)):
                client.send(chunk)
                if data.draw(st.booleans()):
                    proxy.reactor.advance(0)
            proxy.reactor.advance(0)
            view = client.view()
            code, received, replies, answered = expectedPacketsOutcome(
                protocol, messages, limit, proxy.config.maxMessage
            )
            packets_ = [checkPacket(p, cap) for p in view.messages[start:]]
            payloads = [payload for _, payload in packets_ if payload]
            self.tally(f"close {code}")
            if code is None:
                self.assertIsNone(view.close)
                self.assertEqual(sum(ack for ack, _ in packets_), received)
                self.assertEqual(len(payloads), replies)
            else:
                assert view.close is not None
                self.assertEqual(view.close[0], code, view.close)
                self.assertTrue(view.close[1])
                self.assertLessEqual(sum(ack for ack, _ in packets_), received)
                self.assertEqual(len(payloads), replies)
            for body, payload in zip(answered, payloads, strict=False):
                if protocol == 1:
                    request = PingRequest.FromString(body)
                    response = PingResponse.FromString(payload)
                    self.assertEqual(response.client_time, request.client_time)
                else:
                    result = S2C.FromString(payload).authenticate_response.result
                    asked = C2S.FromString(body).HasField("authenticate")
                    self.assertEqual(
                        result,
                        AuthenticateResponse.AUTH_METHOD_UNSUPPORTED
                        if asked
                        else AuthenticateResponse.NOT_AUTHENTICATED,
                    )
            # Its session was never authenticated: it ends with the
            # connection (Part 6).
            client.connection.lose()
            self.assertEqual(len(proxy.factory.registry), 0)

    @reported
    @given(protocol=st.sampled_from([1, 2, None]), data=st.data())
    @fuzzSettings(200, share=0.3)
    def test_arbitraryFrames(self, protocol: int | None, data: st.DataObject) -> None:
        """
        Arbitrary WebSocket frames (any opcode, fragments, control frames too
        long or fragmented, unmasked frames, reserved bits, non-minimal
        lengths, close frames with any code and reason) and raw bytes, before
        or after the init packet, end only in a close of RFC 6455 or of the
        contract (never 1011), or leave the connection open; every server
        frame is well-formed.
        """
        items = data.draw(st.lists(anyFrames(), max_size=8))
        with self.example(), Proxy() as proxy:
            client = WebSocketClient(proxy)
            if protocol is not None:
                client.handshake(protocol)
            start = len(client.view().messages)
            wire = b"".join(items)
            for chunk in data.draw(splits(wire)):
                client.send(chunk)
                if data.draw(st.booleans()):
                    proxy.reactor.advance(0)
            proxy.reactor.advance(0)
            view = client.view()
            if protocol is None and view.messages:
                # The frames held an init packet: the first message is the
                # 32 token bytes, not a packet (its first byte is random).
                start = 1
            for packet in view.messages[start:]:
                checkPacket(packet, proxy.config.ackCap)
            checkClose(view, wire)
            self.tally(f"close {view.close[0] if view.close else None}")
            proxy.advance(35, step=5)
            checkClose(client.view(), wire)


def checkClose(view: ServerView, wire: bytes) -> None:
    """
    Check the server's close: a code of RFC 6455's protocol errors or of the
    contract with a reason, or 1000 without one in answer to the client's
    own close frame; never 1011.
    """
    if view.close is None:
        return
    code, reason = view.close
    if code == 1000 and b"\x88" in wire:
        return
    assert code in _CLOSES | {4000, 4001, 4002, 4003, 4004}, view.close
    assert reason, view.close


closeCodes = st.one_of(
    st.sampled_from(
        [1000, 1001, 1002, 1005, 1006, 1011, 1015, 2999, 3000, 4000, 4999, 5000, 0, 999]
    ),
    st.integers(0, 65535),
)


@st.composite
def anyFrames(draw: st.DrawFn) -> bytes:
    """
    One frame of any kind, or raw bytes.
    """
    if draw(st.integers(0, 19)) == 19:
        return draw(st.binary(max_size=16))
    opcode = usually(
        draw, st.sampled_from([2, 2, 2, 0, 1, 8, 9, 10]), st.integers(0, 15), oneIn=8
    )
    if opcode == 8:
        payload = usually(
            draw,
            st.tuples(closeCodes, st.text(max_size=20)).map(
                lambda t: struct.pack("!H", t[0]) + t[1].encode()
            ),
            st.binary(max_size=130),
        )
    elif opcode == 2:
        payload = usually(
            draw,
            st.one_of(
                st.sampled_from([encodeInit(1), encodeInit(2)]),
                pingBodies.map(lambda b: b"\x00" + b),
                gameBodies.map(lambda b: b"\x00" + b),
            ),
            st.binary(max_size=40),
        )
    else:
        payload = usually(draw, st.binary(max_size=20), st.binary(max_size=200))
    return clientFrame(
        opcode,
        payload,
        fin=usually(draw, st.just(True), st.booleans(), oneIn=6),
        rsv=usually(draw, st.just(0), st.integers(0, 7), oneIn=16),
        key=usually(draw, st.binary(min_size=4, max_size=4), st.none(), oneIn=16),
        lengthForm=usually(draw, st.just(-1), st.integers(0, 2), oneIn=12),
    )


_SECRET = b"fuzzing secret, 32 bytes long..."
_RESULTS = {
    AuthenticateResponse.OTHER,
    AuthenticateResponse.INVALID_ID,
    AuthenticateResponse.NO_SERVER,
    AuthenticateResponse.TOO_MANY_ATTEMPTS,
    AuthenticateResponse.NOT_AUTHENTICATED,
}


def signedTicket(claims: bytes, secret: bytes = _SECRET) -> str:
    """
    A ticket of the documented format (L{aphelion.auth}) whose payload is
    C{claims}, whatever they are, with a good MAC.
    """
    payload = base64.urlsafe_b64encode(claims).rstrip(b"=")
    signed = b"v1." + payload
    mac = base64.urlsafe_b64encode(hmac.digest(secret, signed, "sha256")).rstrip(b"=")
    return (signed + b"." + mac).decode("ascii")


jsonValues = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
claimSets = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(st.text(max_size=12), jsonValues),
        "name": st.one_of(st.text(max_size=12), jsonValues),
        "exp": st.one_of(
            st.integers(1_764_000_000 - 10, 1_764_000_000 + 200_000), jsonValues
        ),
        "iat": st.one_of(st.integers(1_763_900_000, 1_764_100_000), jsonValues),
        "jti": st.one_of(st.text(max_size=8), jsonValues),
        "attrs": st.one_of(
            st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
            jsonValues,
        ),
    },
)


@st.composite
def playerIds(draw: st.DrawFn) -> str:
    """
    The ID of an C{authenticate}: any text (with control characters, very
    long, empty), a good ticket, a ticket with a character changed, one
    signed with arbitrary claims or arbitrary JSON, or one signed with
    another secret.
    """
    kind = draw(st.integers(0, 6))
    now = 1_764_000_000
    if kind == 0:
        return draw(st.text(max_size=40))
    if kind == 1:
        return draw(
            st.sampled_from(
                [
                    "",
                    "a" * 1025,
                    "é" * 600,
                    "alice\x00",
                    "bob\x1b[2J",
                    "x\u0085y",
                    "v1..",
                    "v1.e30.",
                ]
            )
        )
    sub = draw(
        st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=12)
    )
    good = mintTicket(_SECRET, sub, "N", 3600, now)
    if kind == 2:
        return good
    if kind == 3:
        at = draw(st.integers(0, len(good) - 1))
        return good[:at] + draw(st.characters()) + good[at + 1 :]
    if kind == 4:
        return signedTicket(json.dumps(draw(claimSets)).encode())
    if kind == 5:
        return signedTicket(
            draw(
                st.one_of(
                    st.binary(max_size=40),
                    jsonValues.map(lambda v: json.dumps(v).encode()),
                )
            )
        )
    return signedTicket(
        json.dumps({"sub": "mallory", "exp": now + 60}).encode(), b"other"
    )


class AuthenticationFuzzTests(FuzzTestCase):
    """
    The game protocol with a checker: arbitrary C{authenticate} IDs and
    other payloads, through a real C{twisted.cred} portal.
    """

    @reported
    @given(
        checker=st.sampled_from(["dev", "ticket"]),
        legacy=st.booleans(),
        data=st.data(),
    )
    @fuzzSettings(150, share=0.1)
    def test_authenticate(
        self, checker: str, legacy: bool, data: st.DataObject
    ) -> None:
        """
        Any IDs and payloads get only C{authenticate_response}s of the
        contract (C{OTHER}, C{INVALID_ID}, C{NO_SERVER} without game servers,
        C{TOO_MANY_ATTEMPTS}, C{NOT_AUTHENTICATED}; nothing past 4 in the
        legacy profile), and end only in a close of 4006, 4007, 4008, 1009 or
        1003; the third failure gets C{TOO_MANY_ATTEMPTS} and 4008; a
        connection still not authenticated after the auth timeout is closed
        with 4008.
        """
        authenticates = playerIds().map(
            lambda i: C2S(authenticate=Authenticate(id=i)).SerializeToString()
        )
        payloads = data.draw(
            st.lists(
                st.one_of(
                    authenticates,
                    authenticates,
                    gameBodies,
                    st.integers(0, 15).flatmap(
                        lambda n: otherBodies if n == 15 else st.just(b"")
                    ),
                ),
                max_size=12,
            )
        )
        checkers = (DevChecker(),) if checker == "dev" else (TicketChecker(_SECRET),)
        with self.example(), Proxy(checkers=checkers, legacy=legacy) as proxy:
            client = WebSocketClient(proxy)
            client.handshake(2)
            acked = 0
            for payload in payloads:
                # Acknowledge what the server sent so far, as a client does.
                sent = len([m for m in client.view().messages[1:] if m[1:]])
                ack = min(sent - acked, 254)
                acked += ack
                client.sendMessage(bytes([ack]) + payload)
                proxy.reactor.advance(0)
            view = client.view()
            results = []
            for packet in view.messages[1:]:
                _, payload = checkPacket(packet, proxy.config.ackCap)
                if payload:
                    response = S2C.FromString(payload)
                    self.assertTrue(
                        response.HasField("authenticate_response"), response
                    )
                    results.append(response.authenticate_response.result)
            self.assertLessEqual(set(results), _RESULTS)
            if legacy:
                self.assertLessEqual(set(results), set(range(5)))
            if view.close is not None:
                self.assertIn(view.close[0], {4006, 4007, 4008, 1009, 1003}, view.close)
                self.assertTrue(view.close[1])
                if view.close[0] == 4008:
                    # TOO_MANY_ATTEMPTS, which the legacy profile sends as OTHER.
                    self.assertEqual(results[-1], 1 if legacy else 7)
            self.tally(f"close {view.close[0] if view.close else None}")
            for result in results:
                self.tally(AuthenticateResponse.Result.Name(result))
            proxy.advance(proxy.config.authTimeout + 1, step=5)
            later = client.view()
            if view.close is None:
                assert later.close is not None
                self.assertEqual(later.close[0], 4008, later.close)


# -- 4. C2S in every session state at the gateway ------------------------------


class CheckerDown(Exception):
    """
    A checker that cannot decide (a database down): logged by design.
    """


@dataclass(frozen=True)
class Player:
    """
    An identity as a realm yields it.
    """

    playerId: str
    name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


class FuzzLink:
    """
    A player link that records what its seat asks of it, and reports to its
    seat only what a L{aphelion.control.proxy.PlayerLinkProtocol} can: before
    C{Connected}, C{Connected}, C{Rejected}, C{Disconnect} or its loss; after
    it, C{GameConfig}, C{GameData}, C{Disconnect} or its loss; nothing once
    it ended or was told to disconnect.

    :ivar connected: whether it reported C{Connected}.
    :ivar ended: whether it reported its end (C{Rejected}, C{Disconnect},
        loss).
    """

    def __init__(self, seat: Seat) -> None:
        self.seat = seat
        self.sent: list[bytes] = []
        self.disconnected: tuple[int, str] | None = None
        self.connected = False
        self.ended = False

    @property
    def reporting(self) -> bool:
        """
        Whether it may still report anything.
        """
        return not self.ended and self.disconnected is None

    def events(self) -> list[str]:
        """
        The reports it may make now.
        """
        if not self.reporting:
            return []
        if self.connected:
            return ["gameData", "gameData", "gameConfig", "disconnected", "lost"]
        return ["accepted", "accepted", "rejected", "disconnected", "lost"]

    def sendGameData(self, payload: bytes) -> None:
        """
        Record a payload for the game server.
        """
        assert self.disconnected is None, "GameData after Disconnect"
        self.sent.append(payload)

    def disconnect(self, code: int, reason: str) -> None:
        """
        Record the Disconnect.
        """
        self.disconnected = (code, reason)

    def pauseReading(self) -> None:
        """
        Reading from the game server paused.
        """

    def resumeReading(self) -> None:
        """
        Reading from the game server resumed.
        """


_GATEWAY_CLOSES = {4006, 4007, 4008, 4009, 1013}
_GATEWAY_FIELDS = {101, 110, 111, 112}
_GAME_MARK = b"\xfa\xfbgame"
_SEATING_BUFFER = 4
_SEATING_BYTES = 64


class GatewayHarness:
    """
    A L{Gateway} with a real registry and monitor on a clock, recording
    connections, an authenticator whose answers the test gives, and links
    the test drives: what the fuzz test acts on.
    """

    def __init__(self, tries: int = 3, withAuthenticator: bool = True) -> None:
        self.reactor = MemoryReactorClock()
        self.registry = MemorySessionRegistry(clock=self.reactor)
        self.monitor = GameServerMonitor(
            reactor=self.reactor,
            game="aphelion.games.chat",
            count=2,
            makeControlFactory=lambda monitor, server: None,
        )
        for server in self.monitor.servers.values():
            server.state = ServerState.READY
            server.control = object()  # type: ignore[assignment]
            server.capacity = 10
            server.accepting = True
        self.links: list[FuzzLink] = []
        self.checks: deque[tuple[str, Deferred[Any]]] = deque()
        self.gateway = Gateway(
            registry=self.registry,
            authenticator=self.authenticate if withAuthenticator else None,
            monitor=self.monitor,
            connectLink=cast(Any, self.connectLink),
            authTries=tries,
            clock=self.reactor,
            seatingBuffer=_SEATING_BUFFER,
            seatingBufferBytes=_SEATING_BYTES,
        )
        self.connections: list[RecordingConnection] = []
        first = RecordingConnection()
        self.connections.append(first)
        opened: list[Session] = []
        self.registry.open(None, first).addCallback(opened.append)
        self.session = opened[0]

    def authenticate(self, playerId: str) -> Deferred[Any]:
        """
        A check that waits for the test's answer.
        """
        d: Deferred[Any] = Deferred()
        self.checks.append((playerId, d))
        return d

    def connectLink(self, server: GameServer, seat: Seat) -> None:
        """
        Open a recording link at once.
        """
        link = FuzzLink(seat)
        self.links.append(link)
        seat.linkMade(cast(Any, link))


def gatewayAnswers(sent: list[bytes]) -> list[S2C]:
    """
    Parse what the gateway itself sent a client (not relayed game data):
    each is an C{S2C} with only the gateway's fields (Part 1.6).
    """
    answers = []
    for payload in sent:
        if payload.startswith(_GAME_MARK):
            continue
        message = S2C.FromString(payload)
        fields = {descriptor.number for descriptor, _ in message.ListFields()}
        assert fields and fields <= _GATEWAY_FIELDS, (fields, payload)
        answers.append(message)
    return answers


def authenticatePayload(playerId: str) -> bytes:
    """
    A C{C2S{authenticate}} payload.
    """
    return C2S(authenticate=Authenticate(id=playerId)).SerializeToString()


@st.composite
def gatewayPayloads(draw: st.DrawFn) -> bytes:
    """
    A payload from a client: mostly an C{authenticate} (of a good ID, a bad
    one or any text) or another C{C2S}, sometimes bytes of any kind (which
    a relay passes on and the gateway otherwise cannot decode).
    """
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        return authenticatePayload(draw(st.sampled_from(["alice", "bob", "carol"])))
    if kind == 4:
        return authenticatePayload(
            draw(
                st.one_of(
                    st.sampled_from(["", "x" * 1025, "eve\x00", "\x85"]),
                    st.text(max_size=12),
                )
            )
        )
    if kind <= 7:
        return C2S().SerializeToString() + draw(
            st.sampled_from([b"\x08\x01", b"\x10\x02", b"\x1a\x01x"])
        )
    if kind == 8:
        return draw(st.binary(min_size=60, max_size=70))
    return draw(st.binary(min_size=1, max_size=40))


@st.composite
def gatewayActions(draw: st.DrawFn, harness: GatewayHarness) -> tuple[Any, ...]:
    """
    One thing that happens to a session: a payload from one of its
    connections, a checker's answer, a report from a player link, a game
    server lost, a connection closed or opened, time passing.
    """
    choices = ["payload"] * 6 + ["open", "close", "advance"]
    if harness.checks:
        choices += ["answer"] * 3
    reporting = [link for link in harness.links if link.reporting]
    if reporting:
        choices += ["link"] * 4
    if harness.links:
        choices += ["serverLost"]
    kind = draw(st.sampled_from(choices))
    if kind == "payload":
        return (kind, draw(st.integers(0, 3)), draw(gatewayPayloads()))
    if kind == "answer":
        return (
            kind,
            draw(
                st.sampled_from(
                    ["accept", "accept", "accept", "refuse", "down", "busy"]
                )
            ),
        )
    if kind == "link":
        link = reporting[-1 - draw(st.integers(0, len(reporting) - 1))]
        event = draw(st.sampled_from(link.events()))
        return (kind, link, event, draw(st.sampled_from([0, 1, 2, 4, 100])))
    if kind == "advance":
        return (kind, draw(st.sampled_from([0, 1, 30, 61])))
    return (kind, draw(st.integers(0, 3)))


def validId(playerId: str) -> bool:
    """
    Whether the gateway passes C{playerId} to the checker (Parts 1.6, 6).
    """
    return (
        bool(playerId)
        and len(playerId.encode("utf-8")) <= 1024
        and not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in playerId)
    )


class GatewayFuzzTests(FuzzTestCase):
    """
    C2S payloads in every session state (unauthenticated, authenticating,
    seating, relaying), mixed with everything else that can happen to a
    session, at a L{Gateway} with recording connections and links.
    """

    @reported
    @given(data=st.data())
    @fuzzSettings(300)
    def test_everyState(self, data: st.DataObject) -> None:
        """
        Whatever happens, each payload gets the contract's answer for the
        state its session is in: unauthenticated, C{NOT_AUTHENTICATED},
        C{INVALID_ID}, C{TOO_MANY_ATTEMPTS} or a check begun; authenticating,
        C{OTHER} "authentication in progress"; seating, nothing (held, 4007
        past the seating buffer, relayed in order once seated); relaying,
        relayed verbatim. An undecodable payload outside relaying and
        seating closes with 4006. Connections close only with 4006, 4007,
        4008, 4009 or 1013; the gateway sends only its own C{S2C} fields; and
        once the session ends no player link is left open.
        """
        harness = GatewayHarness()
        with self.example(allowed=(CheckerDown,)):
            for _ in range(data.draw(st.integers(0, 25))):
                action = data.draw(gatewayActions(harness))
                self.act(harness, action)
                self.checkInvariants(harness)
            self.tally(str(harness.session.state))
            harness.registry.end(harness.session, 4009, "the end")
            harness.reactor.advance(120)
            self.checkInvariants(harness)
            for link in harness.links:
                self.assertTrue(
                    link.disconnected is not None or link.ended,
                    "a player link left open",
                )
            for server in harness.monitor.servers.values():
                self.assertEqual(server.pending, 0)
            self.flushLoggedErrors(CheckerDown)

    def act(self, harness: GatewayHarness, action: tuple[Any, ...]) -> None:
        """
        Do C{action}; for a payload, check the answer for the state.
        """
        session = harness.session
        kind = action[0]
        if kind == "payload":
            _, index, payload = action
            conn = harness.connections[index % len(harness.connections)]
            if (
                session.ended
                or conn.closed is not None
                or conn not in session.connections
            ):
                return
            self.payload(harness, conn, payload)
        elif kind == "answer":
            playerId, d = harness.checks.popleft()
            answer = action[1]
            if answer == "accept":
                d.callback(Player(playerId))
            elif answer == "refuse":
                d.errback(UnauthorizedLogin("no"))
            elif answer == "down":
                d.errback(CheckerDown("database down"))
            else:
                d.errback(CheckerBusy("busy"))
        elif kind == "link":
            _, link, event, code = action
            seat = link.seat
            if event == "accepted":
                link.connected = True
                held = list(session.held.payloads) if session.held is not None else []
                seat.accepted(GameDetails(server_id=seat.server.serverId))
                if session.seat is seat and held:
                    # Part 6: what was held while seating goes first, in order.
                    self.tally("held relayed")
                    self.assertEqual(link.sent[: len(held)], held)
            elif event == "gameConfig":
                seat.gameConfig(GameConfig(content_type="text/plain", content=b"{}"))
            elif event == "rejected":
                link.ended = True
                seat.rejected(code, "rejected")
            elif event == "gameData":
                seat.gameData(_GAME_MARK + bytes([code]))
            elif event == "disconnected":
                link.ended = True
                seat.disconnected(code, "disconnected")
            else:
                link.ended = True
                seat.lost("lost")
        elif kind == "serverLost":
            server = harness.links[-1].seat.server
            harness.monitor._serverLost(cast(Any, server))
        elif kind == "open":
            if not session.ended:
                conn = RecordingConnection()
                harness.registry.open(session.token, conn)
                if conn in session.connections:
                    harness.connections.append(conn)
        elif kind == "close":
            conn = harness.connections[action[1] % len(harness.connections)]
            conn.closeWith(1000, "client closed")
            harness.registry.detach(session, conn)
        else:
            harness.reactor.advance(action[1])

    def payload(
        self, harness: GatewayHarness, conn: RecordingConnection, payload: bytes
    ) -> None:
        """
        Deliver one payload and check the answer for the session's state.
        """
        session = harness.session
        gateway = harness.gateway
        state = session.state or SessionState.UNAUTHENTICATED
        seat: Any = session.seat
        relaying = seat is not None and seat.link is not None
        link = seat.link if relaying else None
        before = len(conn.sent)
        linkBefore = len(link.sent) if isinstance(link, FuzzLink) else 0
        held = list(session.held.payloads) if session.held is not None else []
        checks = len(harness.checks)
        gateway.payloadReceived(session, conn, payload)
        new = conn.sent[before:]
        if relaying:
            self.tally("payload relaying")
            assert isinstance(link, FuzzLink)
            self.assertEqual(link.sent[linkBefore:], [payload])
            self.assertEqual(new, [])
            self.assertIsNone(conn.closed)
            return
        if state is SessionState.SEATING:
            self.tally("payload seating")
            self.assertEqual(new, [])
            size = sum(map(len, held)) + len(payload)
            if len(held) >= _SEATING_BUFFER or size > _SEATING_BYTES:
                self.assertEqual(
                    conn.closed, (4007, "too much sent while being seated")
                )
            else:
                assert session.held is not None
                self.assertEqual(session.held.payloads, [*held, payload])
            return
        try:
            message = C2S.FromString(payload)
        except DecodeError:
            self.tally("payload malformed")
            self.assertEqual(conn.closed, (4006, "malformed C2S"))
            return
        results = [a.authenticate_response.result for a in gatewayAnswers(new)]
        if state is SessionState.AUTHENTICATING:
            self.tally("payload authenticating")
            self.assertEqual(results, [AuthenticateResponse.OTHER])
        elif not message.HasField("authenticate"):
            self.tally("payload unauthenticated")
            self.assertEqual(results, [AuthenticateResponse.NOT_AUTHENTICATED])
        elif not validId(message.authenticate.id):
            self.tally("payload invalid ID")
            if conn.closed is not None:
                self.assertEqual(conn.closed[0], 4008)
                self.assertEqual(results, [AuthenticateResponse.TOO_MANY_ATTEMPTS])
            else:
                self.assertIn(
                    results,
                    [
                        [AuthenticateResponse.INVALID_ID],
                        [AuthenticateResponse.TOO_MANY_ATTEMPTS],
                    ],
                )
        else:
            self.tally("payload authenticate")
            if len(harness.checks) == checks + 1:
                self.assertEqual(results, [])
                self.assertEqual(session.state, SessionState.AUTHENTICATING)
            else:
                self.assertEqual(results, [AuthenticateResponse.TOO_MANY_ATTEMPTS])

    def checkInvariants(self, harness: GatewayHarness) -> None:
        """
        Check what holds after anything: contract closes only, gateway
        answers well-formed, held payloads relayed in order once seated.
        """
        for conn in harness.connections:
            if conn.closed is not None and conn.closed[0] != 1000:
                self.assertIn(conn.closed[0], _GATEWAY_CLOSES, conn.closed)
            gatewayAnswers(conn.sent)
        for server in harness.monitor.servers.values():
            self.assertGreaterEqual(server.pending, 0)


# -- 5. both ends of the envelope -----------------------------------------------

T = EnvelopeType
_TOKEN = b"\x07" * 32
_GAME_SENDS = {
    T.Ready,
    T.Status,
    T.Heartbeat,
    T.Connected,
    T.GameConfig,
    T.Rejected,
    T.GameData,
    T.Disconnect,
    T.Error,
}
_PROXY_SENDS = {
    T.Type,
    T.Control,
    T.Shutdown,
    T.Heartbeat,
    T.ClientAuth,
    T.GameData,
    T.Disconnect,
    T.Error,
}


def envelopeOf(
    type_: int, message: Message | bytes, encoding: int | None = None
) -> bytes:
    """
    One envelope of C{type_} with the type's encoding unless C{encoding}
    says otherwise (any 0-3, the reserved ones too).
    """
    payload = message if isinstance(message, bytes) else message.SerializeToString()
    if encoding is None:
        encoding = Encoding.RAW if type_ == T.GameData else Encoding.PROTOBUF
    return HEADER.pack(VERSION, type_ << 2 | encoding, len(payload)) + payload


def readEnvelopes(
    written: bytes, sends: set[EnvelopeType]
) -> list[tuple[EnvelopeType, Any]]:
    """
    Decode what one end wrote: whole envelopes of version 1, of the types
    this end sends (table 2.2), with the type's encoding and a payload that
    decodes; an C{Error}'s code is one of Part 2.2's, and nothing follows
    an C{Error}.

    :return: C{(type, message)} pairs, the raw payload for C{GameData}.
    """
    decoder = EnvelopeDecoder()
    envelopes = decoder.feed(written)
    assert decoder.feed(b"") == [] and not decoder._buffer, "a truncated envelope"
    result: list[tuple[EnvelopeType, Any]] = []
    for envelope in envelopes:
        assert result == [] or result[-1][0] != T.Error, "an envelope after Error"
        kind = EnvelopeType(envelope.type)
        assert kind in sends, kind
        assert envelope.encoding == ENCODINGS[kind], envelope
        messageClass = PAYLOAD_TYPES[kind]
        message: Any = (
            envelope.payload
            if messageClass is None
            else decodePayload(envelope, messageClass)
        )
        if kind == T.Error:
            assert 1 <= message.code <= 7, message
        result.append((kind, message))
    return result


@st.composite
def envelopeStreams(draw: st.DrawFn, types: list[EnvelopeType]) -> bytes:
    """
    A few envelopes: mostly well-formed ones of C{types} with payloads of
    their message class, else of any type number, encoding or version, with
    any payload, or raw bytes.
    """
    stream = b""
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 11))
        if kind == 11:
            stream += draw(st.binary(max_size=12))
            continue
        if kind == 10:
            version = draw(st.integers(0, 255))
            typeAndEncoding = draw(st.integers(0, 255))
            payload = draw(st.binary(max_size=20))
            stream += HEADER.pack(version, typeAndEncoding, len(payload)) + payload
            continue
        type_ = (
            draw(st.sampled_from(types))
            if kind < 8
            else draw(
                st.one_of(st.sampled_from(list(EnvelopeType)), st.integers(0, 63))
            )
        )
        messageClass = (
            PAYLOAD_TYPES.get(EnvelopeType(type_))
            if type_ in EnvelopeType._value2member_map_
            else None
        )
        if messageClass is not None and kind < 7:
            payload = draw(messages(messageClass))
        else:
            payload = draw(st.binary(max_size=24))
        encoding = usually(draw, st.none(), st.integers(0, 3), oneIn=8)
        stream += envelopeOf(type_, payload, encoding)
    return stream


_TOKENS = st.sampled_from([_TOKEN, b"", b"\x07" * 31, b"\x08" * 32])


def messages(messageClass: type[Message]) -> st.SearchStrategy[bytes]:
    """
    A serialized message of C{messageClass} with plausible field values (and
    the control token, or another, where there is one).
    """
    name = messageClass.DESCRIPTOR.name
    short = st.text(max_size=8)
    made: st.SearchStrategy[Message]
    number = st.integers(0, 2**32 - 1)
    if name == "Control":
        made = st.builds(
            lambda token, serverId, options: control_pb2.Control(
                token=token, server_id=serverId, options=options
            ),
            _TOKENS,
            short,
            st.dictionaries(short, short, max_size=2),
        )
    elif name == "Type":
        made = st.builds(
            lambda kind, token: control_pb2.Type(kind=kind, token=token),
            st.sampled_from([2, 2, 0, 1, 3]),
            _TOKENS,
        )
    elif name == "ClientAuth":
        made = st.builds(
            lambda playerId, sid, attrs: control_pb2.ClientAuth(
                player_id=playerId, name=playerId, session_id=sid, attributes=attrs
            ),
            st.sampled_from(["alice", "bob", ""]) | short,
            st.binary(max_size=8),
            st.dictionaries(short, short, max_size=2),
        )
    elif name in ("Rejected", "Disconnect", "Error"):
        made = st.builds(
            lambda code, reason: messageClass(
                code=code, **{("message" if name == "Error" else "reason"): reason}
            ),
            st.one_of(st.integers(0, 8), number),
            short,
        )
    elif name == "Heartbeat":
        made = st.builds(
            lambda n: control_pb2.Heartbeat(nonce=n), st.integers(0, 2**64 - 1)
        )
    elif name == "Status":
        made = st.builds(
            lambda p, c, a: control_pb2.Status(players=p, capacity=c, accepting=a),
            number,
            number,
            st.booleans(),
        )
    elif name == "Ready":
        made = st.builds(
            lambda s, n, c: control_pb2.Ready(server_id=s, name=n, capacity=c),
            st.sampled_from(["gs1", ""]) | short,
            short,
            number,
        )
    elif name == "Shutdown":
        made = st.builds(
            lambda d, r: control_pb2.Shutdown(deadline_ms=d, reason=r), number, short
        )
    elif name == "GameDetails":
        made = st.builds(
            lambda s, p: GameDetails(server_id=s, player_id=p, players=1, capacity=2),
            st.sampled_from(["gs1", ""]) | short,
            short,
        )
    else:
        made = st.builds(
            lambda t, c: GameConfig(content_type=t, content=c),
            short,
            st.binary(max_size=8),
        )
    return made.map(lambda m: m.SerializeToString())


def expectedFirstError(stream: bytes, allowed: set[EnvelopeType]) -> int | None:
    """
    The contract's reference (Parts 2.1, 2.2) for the first envelope at a
    receiver that allows only C{allowed} types now: the C{Error} code it
    answers, in the order version, encoding, type, state, payload; 0 for an
    C{Error} that decodes (always allowed: the receiver closes without an
    answer); L{None} when the first envelope passes these checks (or is not
    complete).
    """
    if stream[:1] and stream[0] != VERSION:
        return ErrorCode.UNSUPPORTED_VERSION
    if len(stream) > 1 and stream[1] & 0x02:
        return ErrorCode.RESERVED_ENCODING
    if len(stream) < HEADER.size:
        return None
    _, typeAndEncoding, length = HEADER.unpack_from(stream)
    if len(stream) < HEADER.size + length:
        return None
    number, encoding = typeAndEncoding >> 2, typeAndEncoding & 0x03
    if number not in EnvelopeType._value2member_map_:
        return ErrorCode.UNKNOWN_TYPE
    kind = EnvelopeType(number)
    if kind != T.Error and kind not in allowed:
        return ErrorCode.NOT_ALLOWED_NOW
    if encoding != ENCODINGS[kind]:
        return ErrorCode.UNDECODABLE_PAYLOAD
    messageClass = PAYLOAD_TYPES[kind]
    if messageClass is not None:
        try:
            messageClass.FromString(stream[HEADER.size : HEADER.size + length])
        except DecodeError:
            return ErrorCode.UNDECODABLE_PAYLOAD
    return 0 if kind == T.Error else None


class EnvelopeFuzzTests(FuzzTestCase):
    """
    Arbitrary bytes, split anywhere, into both ends of the envelope: the
    game server's protocol, and the proxy's control and player connections.
    """

    def deliver(
        self,
        protocol: Any,
        transport: StringTransport,
        clock: Any,
        stream: bytes,
        data: st.DataObject,
        timePasses: bool = True,
    ) -> None:
        """
        Deliver C{stream} in random chunks, with time passing now and then
        (if C{timePasses}), as a reactor does while the transport reads.
        """
        for chunk in data.draw(splits(stream, most=10)):
            if transport.disconnecting:
                break
            protocol.dataReceived(chunk)
            if timePasses:
                clock.advance(data.draw(st.sampled_from([0, 0, 0, 1, 6, 11])))
            else:
                clock.advance(0)
        clock.advance(0)

    @reported
    @given(
        gameName=st.sampled_from(["aphelion.games.echo", "aphelion.games.chat"]),
        first=st.sampled_from(["none", "control", "type", "player"]),
        data=st.data(),
    )
    @fuzzSettings(300)
    def test_gameServer(self, gameName: str, first: str, data: st.DataObject) -> None:
        """
        Into a game server, after nothing, C{Control}, C{Type{CLIENT}} or a
        seated player: only envelopes of table 2.2 that a game server sends,
        C{Error}s of Part 2.2's codes (the first one as a reference model
        of Parts 2.1 and 2.2 says) and closes; never an exception or a
        logged failure.
        """
        clock = Clock()
        factory = GameServerFactory(clock=clock, token=_TOKEN, game=loadGame(gameName))
        prefix = {
            "none": b"",
            "control": envelopeOf(
                T.Control, control_pb2.Control(token=_TOKEN, server_id="gs1")
            ),
            "type": envelopeOf(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=_TOKEN)
            ),
            "player": envelopeOf(
                T.Type, control_pb2.Type(kind=control_pb2.Type.CLIENT, token=_TOKEN)
            )
            + envelopeOf(T.ClientAuth, control_pb2.ClientAuth(player_id="alice")),
        }[first]
        following = {
            "none": [T.Control, T.Type],
            "control": [T.Heartbeat, T.Shutdown],
            "type": [T.ClientAuth, T.Disconnect],
            "player": [T.GameData, T.GameData, T.Disconnect],
        }[first]
        stream = prefix + data.draw(envelopeStreams(following))
        with self.example():
            protocol: Any = factory.buildProtocol(None)
            transport = StringTransport()
            protocol.makeConnection(transport)
            # The reference model of the first envelope knows nothing of
            # time: it passes only once the stream is in.
            self.deliver(protocol, transport, clock, stream, data, first != "none")
            sent = readEnvelopes(transport.value(), _GAME_SENDS)
            if first == "none":
                self.checkFirst(stream, sent, transport)
            if any(kind == T.Error for kind, _ in sent):
                self.assertTrue(transport.disconnecting)
            self.tally(", ".join(sorted({k.name for k, _ in sent})) or "nothing")
            clock.advance(20)
            readEnvelopes(transport.value(), _GAME_SENDS)
            protocol.connectionLost(Failure(ConnectionDone()))
            clock.advance(20)

    def checkFirst(
        self,
        stream: bytes,
        sent: list[tuple[EnvelopeType, Any]],
        transport: StringTransport,
    ) -> None:
        """
        Check the game server's answer to the first envelope against the
        reference of Parts 2.1 and 2.2: an C{Error} of the first code that
        applies, none for an C{Error} (the connection closes), C{Error{6}}
        for a wrong token, C{Error{4}} for a C{Type} that is not C{CLIENT},
        C{Ready} for a good C{Control}, nothing for a good C{Type}.
        """
        expected = expectedFirstError(stream, {T.Control, T.Type})
        if expected == 0:
            self.assertEqual(sent, [])
            self.assertTrue(transport.disconnecting)
            return
        answer: EnvelopeType | None = None
        if expected is None:
            if len(stream) < HEADER.size:
                return
            _, typeAndEncoding, length = HEADER.unpack_from(stream)
            if len(stream) < HEADER.size + length:
                return
            payload = stream[HEADER.size : HEADER.size + length]
            if typeAndEncoding >> 2 == T.Control:
                control = control_pb2.Control.FromString(payload)
                if control.token == _TOKEN:
                    answer = T.Ready
                else:
                    expected = ErrorCode.BAD_TOKEN
            else:
                kind = control_pb2.Type.FromString(payload)
                if kind.kind != control_pb2.Type.CLIENT:
                    expected = ErrorCode.NOT_ALLOWED_NOW
                elif kind.token != _TOKEN:
                    expected = ErrorCode.BAD_TOKEN
        self.tally(f"first: {expected or answer}")
        if expected:
            self.assertEqual(sent[0][0], T.Error, sent)
            self.assertEqual(sent[0][1].code, expected, sent)
        elif answer is not None:
            self.assertEqual(sent[0][0], answer, sent)

    @reported
    @given(ready=st.booleans(), data=st.data())
    @fuzzSettings(200, share=0.2)
    def test_controlClient(self, ready: bool, data: st.DataObject) -> None:
        """
        Into the proxy's control connection, before or after C{Ready}: only
        envelopes a proxy sends, C{Error}s of Part 2.2's codes (the first as
        the reference model says, before C{Ready}) and closes; the monitor
        hears of the loss; never an exception or a logged failure.
        """
        reactor = FakeProcessReactor()
        monitor = GameServerMonitor(
            reactor=reactor,
            game="aphelion.games.echo",
            count=1,
            makeControlFactory=controlFactoryMaker,
        )
        server = monitor.servers["gs1"]
        prefix = (
            envelopeOf(
                T.Ready, control_pb2.Ready(server_id="gs1", name="echo", capacity=8)
            )
            if ready
            else b""
        )
        following = [T.Status, T.Heartbeat] if ready else [T.Ready, T.Heartbeat]
        stream = prefix + data.draw(envelopeStreams(following))
        with self.example():
            protocol: Any = controlFactoryMaker(monitor, server).buildProtocol(None)
            transport = StringTransport()
            protocol.makeConnection(transport)
            self.deliver(protocol, transport, reactor, stream, data, ready)
            sent = readEnvelopes(transport.value(), _PROXY_SENDS)
            self.assertEqual(sent[0][0], T.Control)
            if not ready:
                expected = expectedFirstError(stream, {T.Ready, T.Heartbeat})
                errors = [m.code for k, m in sent if k == T.Error]
                if expected:
                    self.assertEqual(errors[:1], [expected], sent)
                elif expected == 0:
                    self.assertEqual(errors, [])
                    self.assertTrue(transport.disconnecting)
            if any(kind == T.Error for kind, _ in sent):
                self.assertTrue(transport.disconnecting)
            self.tally(", ".join(sorted({k.name for k, _ in sent})))
            reactor.advance(20)
            readEnvelopes(transport.value(), _PROXY_SENDS)
            protocol.connectionLost(Failure(ConnectionDone()))
            self.assertIsNot(server.control, protocol)

    @reported
    @given(connected=st.booleans(), data=st.data())
    @fuzzSettings(200, share=0.2)
    def test_playerLink(self, connected: bool, data: st.DataObject) -> None:
        """
        Into the proxy's player connection of a real seat of a real gateway,
        before or after C{Connected}: only envelopes a proxy sends, C{Error}s
        of Part 2.2's codes and closes; the client gets only the gateway's
        own C{S2C}s and the C{GameData} payloads, in order, and is closed
        only with 4009 or 1013; never an exception or a logged failure.
        """
        reactor = FakeProcessReactor()
        monitor = GameServerMonitor(
            reactor=reactor,
            game="aphelion.games.echo",
            count=1,
            makeControlFactory=controlFactoryMaker,
        )
        server = monitor.servers["gs1"]
        server.port = 4321
        control: Any = controlFactoryMaker(monitor, server).buildProtocol(None)
        control.makeConnection(StringTransport())
        control.dataReceived(
            envelopeOf(
                T.Ready, control_pb2.Ready(server_id="gs1", name="echo", capacity=8)
            )
        )
        registry = MemorySessionRegistry(clock=reactor)
        gateway = Gateway(
            registry=registry,
            authenticator=lambda playerId: succeed(Player(playerId, "Alice")),
            monitor=monitor,
            connectLink=LinkConnector(reactor),
            clock=reactor,
        )
        connection = RecordingConnection()
        opened: list[Session] = []
        registry.open(None, connection).addCallback(opened.append)
        session = opened[0]
        prefix = (
            envelopeOf(T.Connected, GameDetails(server_id="gs1")) if connected else b""
        )
        following = (
            [T.GameData, T.GameConfig, T.Disconnect]
            if connected
            else [T.Connected, T.Rejected, T.Disconnect]
        )
        stream = prefix + data.draw(envelopeStreams(following))
        with self.example():
            gateway.payloadReceived(session, connection, authenticatePayload("alice"))
            [(_, _, factory, _, _)] = reactor.tcpClients
            link: Any = factory.buildProtocol(None)
            transport = StringTransport()
            link.makeConnection(transport)
            self.deliver(link, transport, reactor, stream, data)
            sent = readEnvelopes(transport.value(), _PROXY_SENDS)
            self.assertEqual([k for k, _ in sent[:2]], [T.Type, T.ClientAuth])
            if any(kind == T.Error for kind, _ in sent):
                self.assertTrue(transport.disconnecting)
            decoder = EnvelopeDecoder()
            try:
                relayed = [
                    e.payload
                    for e in decoder.feed(stream)
                    if e.type == T.GameData and e.encoding == Encoding.RAW
                ]
            except EnvelopeError as e:
                relayed = [
                    p.payload
                    for p in e.preceding
                    if p.type == T.GameData and p.encoding == Encoding.RAW
                ]
            others = [p for p in connection.sent if p not in relayed]
            gatewayAnswers(others)
            got = [p for p in connection.sent if p in relayed]
            self.assertEqual(got, relayed[: len(got)])
            if connection.closed is not None:
                self.assertIn(connection.closed[0], {4009, 1013}, connection.closed)
            self.tally(", ".join(sorted({k.name for k, _ in sent})))
            link.connectionLost(Failure(ConnectionDone()))
            reactor.advance(20)
            registry.end(session, 4009, "the end")
            reactor.advance(120)
