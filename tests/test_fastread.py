# -*- test-case-name: tests.test_fastread -*-
"""
Tests of L{aphelion.fastread}: the lean receive path hands on the same
messages as Autobahn, and leaves Autobahn the same state and the same close
for everything else. The guard tests name the Autobahn internal that moved
if an upgrade breaks what L{LeanReadMixin} reads.
"""

from __future__ import annotations

import os
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from txaio.testutil import replace_loop

from aphelion.fastread import LeanReadMixin, applyMask, pureApplyMask
from tests.test_fastwrite import _UPGRADE

#: The message limit of the protocols under test: small, so that oversize
#: frames of both length encodings are cheap to make.
MAX_MESSAGE = 300

#: A payload that makes the recorder close the connection itself, as
#: aphelion does on a bad packet (the rest of the stream meets a closing
#: connection).
CLOSE_ME = b"\xffclose"

# What LeanReadMixin reads on an open protocol.
_LEAN_ATTRIBUTES = (
    "state",
    "data",
    "current_frame",
    "inside_message",
    "logOctets",
    "logFrames",
    "trackedTimings",
    "_perMessageCompress",
    "requireMaskedClientFrames",
    "applyMask",
    "maxMessagePayloadSize",
    "maxFramePayloadSize",
    "trafficStats",
    "autoPingTimeoutCall",
    "autoPingRestartOnAnyTraffic",
    "_cancelAutoPingTimeoutCall",
    "consumeData",
    "_dataReceived",
)
_STATS = (
    "incomingOctetsWireLevel",
    "incomingOctetsWebSocketLevel",
    "incomingOctetsAppLevel",
    "incomingWebSocketFrames",
    "incomingWebSocketMessages",
)


class Transport(StringTransport):
    """
    A L{StringTransport} that lets Autobahn unregister a producer it never
    registered (it does so when it drops the connection).
    """

    def unregisterProducer(self) -> None:
        """
        Forget the producer, if any.
        """
        self.producer = None
        self.streaming = None


class Recorder(LeanReadMixin, WebSocketServerProtocol):  # type: ignore[misc]
    """
    Records every message, from either path, and closes with 4006 on
    L{CLOSE_ME}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[bytes, bool]] = []
        self.leanCount = 0

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Record a message that Autobahn read.
        """
        self.got(payload, isBinary)

    def leanMessage(self, payload: bytes) -> None:
        """
        Record a message that the lean path read.
        """
        self.leanCount += 1
        self.got(payload, True)

    def got(self, payload: bytes, isBinary: bool) -> None:
        """
        Record one message; close on L{CLOSE_ME}.
        """
        if self.state != WebSocketProtocol.STATE_OPEN:
            return
        self.messages.append((payload, isBinary))
        if payload == CLOSE_ME:
            self.sendCloseFrame(code=4006, reasonUtf8=b"bad packet")


def opened(lean: bool, testCase: SynchronousTestCase) -> tuple[Any, StringTransport]:
    """
    A L{Recorder} whose opening handshake is done, with aphelion's options and
    a small message limit, the lean path on or off, and its transport,
    emptied.
    """
    factory = WebSocketServerFactory("ws://127.0.0.1:9/aphelion")
    factory.protocol = Recorder
    factory.setProtocolOptions(
        failByDrop=False,
        maxMessagePayloadSize=MAX_MESSAGE,
        maxFramePayloadSize=MAX_MESSAGE,
        autoFragmentSize=0,
        utf8validateIncoming=False,
        webStatus=False,
    )
    protocol: Any = factory.buildProtocol(None)
    if not lean:
        protocol.leanLimit = 0
    transport = Transport()
    protocol.makeConnection(transport)
    protocol.dataReceived(_UPGRADE)
    testCase.assertEqual(protocol.state, WebSocketProtocol.STATE_OPEN)
    testCase.addCleanup(protocol.connectionLost, Failure(ConnectionDone()))
    transport.clear()
    return protocol, transport


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x01\x02\x03\x04",
    longLength: bool = False,
) -> bytes:
    """
    One WebSocket frame as a client would send it (or would not: any field
    may be wrong).
    """
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | (rsv << 4) | opcode,))
    maskBit = 0x80 if mask is not None else 0
    if longLength:
        length = bytes((maskBit | 127,)) + n.to_bytes(8, "big")
    elif n < 126:
        length = bytes((maskBit | n,))
    elif n < 65536:
        length = bytes((maskBit | 126,)) + n.to_bytes(2, "big")
    else:
        length = bytes((maskBit | 127,)) + n.to_bytes(8, "big")
    if mask is None:
        return head + length + payload
    return head + length + mask + pureApplyMask(payload, mask)


_masks = st.binary(min_size=4, max_size=4)
_small = st.binary(max_size=140)
_binary = st.builds(lambda p, m: frame(2, p, mask=m), _small, _masks)
_mid = st.builds(
    lambda p, m: frame(2, p, mask=m), st.binary(min_size=126, max_size=320), _masks
)
_anyFrame = st.one_of(
    # What the lean path takes, most of all.
    _binary,
    _binary,
    _binary,
    _mid,
    st.builds(lambda m: frame(2, CLOSE_ME, mask=m), _masks),
    # What it leaves to Autobahn.
    st.builds(lambda p: frame(1, p), _small),
    st.builds(lambda p: frame(9, p), st.binary(max_size=20)),
    st.builds(lambda p: frame(10, p), st.binary(max_size=20)),
    st.builds(lambda: frame(8, b"\x03\xe8bye")),
    st.builds(lambda p: frame(2, p, fin=False), _small),
    st.builds(lambda p: frame(0, p, fin=False), _small),
    st.builds(lambda p: frame(0, p), _small),
    st.builds(lambda p, r: frame(2, p, rsv=r), _small, st.integers(1, 7)),
    st.builds(lambda p: frame(2, p, mask=None), _small),
    st.builds(lambda p: frame(2, p, longLength=True), _small),
    st.builds(lambda p: frame(2, b"\x00" * 301 + p), st.binary(max_size=4)),
    st.builds(lambda p: frame(2, b"\x00" * 126 + p)[:-1] + b"\x82", _small),
    st.binary(min_size=1, max_size=6),
)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    frames = draw(st.lists(_anyFrame, max_size=12))
    data = b"".join(frames)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return data, cuts


def _feed(protocol: Any, data: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in [*cuts, len(data)]:
        if cut > start:
            protocol.dataReceived(data[start:cut])
            start = cut


class SameAsAutobahnTests(SynchronousTestCase):
    """
    The same bytes, split at the same points, give the same messages, the
    same bytes written back (pongs, close frames), the same state and the
    same statistics with the lean path as with Autobahn alone.
    """

    def setUp(self) -> None:
        loop = replace_loop(Clock())
        loop.__enter__()
        self.addCleanup(loop.__exit__, None, None, None)

    def assertSame(self, data: bytes, cuts: list[int]) -> Any:
        """
        Feed C{data}, cut at C{cuts}, to both paths and compare.

        :return: the lean protocol, for more checks.
        """
        lean, leanTransport = opened(True, self)
        plain, plainTransport = opened(False, self)
        _feed(lean, data, cuts)
        _feed(plain, data, cuts)
        self.assertEqual(lean.messages, plain.messages)
        self.assertEqual(leanTransport.value(), plainTransport.value())
        self.assertEqual(
            (lean.state, lean.localCloseCode, lean.remoteCloseCode),
            (plain.state, plain.localCloseCode, plain.remoteCloseCode),
        )
        self.assertEqual(
            (lean.data, lean.inside_message), (plain.data, plain.inside_message)
        )
        for name in _STATS:
            self.assertEqual(
                getattr(lean.trafficStats, name),
                getattr(plain.trafficStats, name),
                name,
            )
        return lean

    @settings(max_examples=400, deadline=None)
    @given(_streams())
    def test_randomStreams(self, stream: tuple[bytes, list[int]]) -> None:
        """
        Random streams of frames, good and bad, split at random points.
        """
        self.assertSame(*stream)

    def test_binaryMessages(self) -> None:
        """
        Binary messages of both length encodings, in one read, are read by
        the lean path, unmasked.
        """
        payloads = [b"", b"a", b"x" * 125, b"y" * 126, b"z" * 300]
        data = b"".join(frame(2, p, mask=b"\x10\x20\x30\x40") for p in payloads)
        lean = self.assertSame(data, [])
        self.assertEqual(lean.messages, [(p, True) for p in payloads])
        self.assertEqual(lean.leanCount, len(payloads))

    def test_partialFrameThenRest(self) -> None:
        """
        A frame cut in two: the head goes to Autobahn, which reads it whole
        with the rest, and the next read is lean again.
        """
        data = frame(2, b"hello") + frame(2, b"world") + frame(2, b"again")
        lean = self.assertSame(data, [3, 22])
        self.assertEqual(lean.leanCount, 1)

    def test_closesMidStream(self) -> None:
        """
        A message whose handler closes the connection: what follows in the
        same read meets a closing connection, on both paths.
        """
        data = frame(2, CLOSE_ME) + frame(2, b"late") + frame(9, b"p")
        lean = self.assertSame(data, [])
        self.assertEqual(lean.messages, [(CLOSE_ME, True)])
        self.assertEqual(lean.localCloseCode, 4006)

    def test_oversize(self) -> None:
        """
        A message over the limit closes with 1009 on both paths.
        """
        lean = self.assertSame(frame(2, b"x" * (MAX_MESSAGE + 1)), [])
        self.assertEqual(lean.localCloseCode, 1009)


class ApplyMaskTests(SynchronousTestCase):
    """
    L{applyMask} (C, from websockets) and L{pureApplyMask} agree.
    """

    @given(st.binary(max_size=2000), st.binary(min_size=4, max_size=4))
    def test_same(self, data: bytes, mask: bytes) -> None:
        """
        Both unmask any data the same, and twice is the identity.
        """
        masked = pureApplyMask(data, mask)
        self.assertEqual(bytes(applyMask(data, mask)), masked)
        self.assertEqual(pureApplyMask(masked, mask), data)

    def test_known(self) -> None:
        """
        RFC 6455's example: "Hello" masked with 37 fa 21 3d.
        """
        masked = bytes.fromhex("7f9f4d5158")
        self.assertEqual(pureApplyMask(masked, bytes.fromhex("37fa213d")), b"Hello")
        self.assertEqual(bytes(applyMask(masked, bytes.fromhex("37fa213d"))), b"Hello")

    def test_random(self) -> None:
        """
        A longer random block, as a bulk check.
        """
        data, mask = os.urandom(4099), os.urandom(4)
        self.assertEqual(bytes(applyMask(data, mask)), pureApplyMask(data, mask))


class GuardTests(SynchronousTestCase):
    """
    L{LeanReadMixin} reads Autobahn's internals; these name what moved if
    an Autobahn upgrade breaks that.
    """

    def setUp(self) -> None:
        loop = replace_loop(Clock())
        loop.__enter__()
        self.addCleanup(loop.__exit__, None, None, None)

    def test_attributes(self) -> None:
        """
        An open Autobahn server protocol has every attribute the lean path
        reads, and idle it holds no frame, message or buffered bytes.
        """
        protocol, _ = opened(True, self)
        for name in _LEAN_ATTRIBUTES:
            if not hasattr(protocol, name):
                self.fail(
                    f"autobahn.websocket.protocol.WebSocketProtocol.{name} is "
                    "gone (Autobahn upgrade?): aphelion.fastread reads it"
                )
        for name in _STATS:
            self.assertIsInstance(getattr(protocol.trafficStats, name), int, name)
        self.assertEqual(protocol.data, b"")
        self.assertIsNone(protocol.current_frame)
        self.assertFalse(protocol.inside_message)

    def test_autoPingAnyTraffic(self) -> None:
        """
        A data frame read by the lean path counts as a pong, as Autobahn
        counts it: the pending auto-ping timeout is cancelled.
        """
        protocol, _ = opened(True, self)
        clock = Clock()
        call = clock.callLater(20, lambda: None)
        protocol.autoPingTimeoutCall = call
        protocol.autoPingPendingCall = None
        protocol.autoPingInterval = 0
        protocol.dataReceived(frame(2, b"data"))
        self.assertIsNone(protocol.autoPingTimeoutCall)
        self.assertTrue(call.cancelled)
        self.assertEqual(protocol.messages, [(b"data", True)])
