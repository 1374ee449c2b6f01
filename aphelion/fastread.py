# -*- test-case-name: tests.test_fastread -*-
"""
A lean receive path beside Autobahn's, for what a client sends most: small,
complete binary messages.

Autobahn parses every frame through its general machinery: a frame header
object, a masker object, begin/data/end callbacks for the frame and for the
message, lists joined into the message, an observer event fired per message,
and on the Twisted side a debug line whose arguments it formats on every
C{dataReceived} (PERFORMANCE.md). L{LeanReadMixin} reads the frames it
understands itself, unmasks them with C{websockets}' C extension
(L{applyMask}; a pure-Python fallback keeps PyPy working) and hands each
message straight to L{LeanReadMixin.leanMessage}.

It takes only the frames it is sure of: complete, final, masked binary
frames with no RSV bits and a payload under 64 KiB and within Autobahn's
message and frame limits, while Autobahn holds nothing (no buffered bytes,
no frame or message begun) and the connection is open. The first byte that
is anything else (a control frame, a fragment, a text frame, a partial
frame, an unmasked one, an oversize one) and everything after it go to
Autobahn, untouched, as they would have without this path. The traffic
statistics and the auto-ping's "any traffic counts as a pong" are kept as
Autobahn keeps them. C{tests.test_fastread} feeds the same random streams to
both paths and requires the same messages and the same close codes.
"""

from __future__ import annotations

from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol

__all__ = ["LeanReadMixin", "applyMask", "pureApplyMask"]

_OPEN = WebSocketProtocol.STATE_OPEN


def pureApplyMask(data: bytes, mask: bytes) -> bytes:
    """
    XOR C{data} with the 4-byte C{mask} repeated (RFC 6455, section 5.3), in
    pure Python: one big-integer XOR, which is C-speed work on any Python.
    """
    n = len(data)
    if not n:
        return b""
    repeated = (mask * ((n + 3) >> 2))[:n]
    return (
        int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
    ).to_bytes(n, "little")


try:
    from websockets.speedups import apply_mask as _cApplyMask
except ImportError:  # pragma: no cover - PyPy, or websockets without its C part
    applyMask = pureApplyMask
else:
    applyMask = _cApplyMask


class LeanReadMixin:
    """
    Mix into an Autobahn server C{WebSocketProtocol} (before it in the bases)
    to read small, complete binary messages without Autobahn's frame
    machinery. Subclasses implement L{leanMessage}.

    It reads Autobahn's internals (C{state}, C{data}, C{current_frame},
    C{inside_message}, C{logOctets}, C{logFrames}, C{trackedTimings},
    C{_perMessageCompress}, C{requireMaskedClientFrames}, C{applyMask},
    C{maxMessagePayloadSize}, C{maxFramePayloadSize}, C{trafficStats},
    C{autoPingTimeoutCall}, C{autoPingRestartOnAnyTraffic},
    C{_cancelAutoPingTimeoutCall}, C{consumeData}, C{_dataReceived});
    C{tests.test_fastread.GuardTests} names what moved if an upgrade breaks
    this.

    :ivar leanLimit: the largest payload the lean path reads, or 0 to
        switch it off (everything then goes to Autobahn).
    """

    leanLimit = 65535

    def dataReceived(self, data: bytes) -> None:
        """
        Called with bytes from the transport: read what the lean path can,
        and give the rest to Autobahn.
        """
        me: Any = self
        if (
            me.state != _OPEN
            or me.data
            or me.current_frame is not None
            or me.inside_message
            or not self.leanLimit
            or me.logOctets
            or me.logFrames
            or me.trackedTimings
            or me._perMessageCompress is not None
            or not me.requireMaskedClientFrames
            or not me.applyMask
        ):
            # Autobahn's own dataReceived, minus the debug line whose
            # arguments it formats even when debug logging is off.
            me._dataReceived(data)
            return
        stats = me.trafficStats
        stats.incomingOctetsWireLevel += len(data)
        limit = self.leanLimit
        maxMessage = me.maxMessagePayloadSize
        if 0 < maxMessage < limit:
            limit = maxMessage
        maxFrame = me.maxFramePayloadSize
        if 0 < maxFrame < limit:
            limit = maxFrame
        end = len(data)
        pos = 0
        while end - pos >= 6:
            # FIN, no RSV, binary; masked.
            if data[pos] != 0x82:
                break
            length = data[pos + 1]
            if length < 0xFE:
                if length < 0x80:
                    break  # unmasked: Autobahn fails the connection
                length &= 0x7F
                start = pos + 6
            elif length == 0xFE:
                if end - pos < 8:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                if length < 126:
                    break  # not the shortest length: a protocol violation
                start = pos + 8
            else:
                break  # 64-bit length: never within the lean limit
            stop = start + length
            if length > limit or stop > end:
                break
            if length:
                payload = applyMask(data[start:stop], data[start - 4 : start])
            else:
                payload = b""
            pos = stop
            stats.incomingOctetsWebSocketLevel += length
            stats.incomingOctetsAppLevel += length
            stats.incomingWebSocketFrames += 1
            stats.incomingWebSocketMessages += 1
            if me.autoPingTimeoutCall and me.autoPingRestartOnAnyTraffic:
                # Autobahn takes any data frame for a pong.
                me._cancelAutoPingTimeoutCall()
            self.leanMessage(payload)
            if me.state != _OPEN:
                break
        if pos < end:
            # The rest, from the first frame the lean path does not take,
            # goes where Autobahn's _dataReceived would put it (its wire
            # octets are counted above).
            me.data += data[pos:] if pos else data
            me.consumeData()

    def leanMessage(self, payload: bytes) -> None:
        """
        Called with the payload of each binary message the lean path read.
        Autobahn calls C{onMessage(payload, True)} for the same message.
        """
        raise NotImplementedError(f"{type(self).__name__} must define leanMessage")
