# -*- test-case-name: tests.test_fastwrite -*-
"""
Send at once when a TCP transport has nothing queued.

Twisted's C{transport.write} always buffers and arms the reactor's writer, so
every small packet costs two C{epoll_ctl} calls besides its C{send}; on a
relay of small packets that is a quarter of the CPU (PERFORMANCE.md, and our
own profile). asyncio tries C{send()} first. L{writeNow} does the same for a
plain Twisted TCP connection whose buffer is empty, and hands anything the
kernel does not take (or any error) to the ordinary C{write}, so ordering,
back-pressure and error handling stay Twisted's.

L{bufferedBytes} says how many bytes a transport really holds unsent: the
figure a limit on a slow reader must be based on (Part 6). Twisted only tells
a producer "pause" (on every write while its buffer is full) and "resume".

L{setNoDelay} disables Nagle's algorithm, which Twisted leaves on: on a
loopback relay of small packets it costs up to 40 ms a packet.

L{FastSendMixin} puts it under an Autobahn protocol's C{sendData}, and adds
L{FastSendMixin.sendBinary}: one unmasked, unfragmented, uncompressed binary
frame (all a server sends) built in two lines instead of Autobahn's general
C{sendMessage}.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol

__all__ = ["FastSendMixin", "binaryFrame", "bufferedBytes", "setNoDelay", "writeNow"]

_log = Logger()

_PLAIN_TCP = (tcp.Server, tcp.Client)
_OPEN = WebSocketProtocol.STATE_OPEN
_CONNECTING = WebSocketProtocol.STATE_CONNECTING

#: What L{FastSendMixin.releaseHandshake} puts in Autobahn's C{send_queue}
#: (an empty deque is about 600 bytes): empty and falsy, and replaced by a
#: real deque before Autobahn could append to it.
NO_QUEUE: Any = ()
_SMALL_HEADERS = tuple(bytes((0x82, n)) for n in range(126))


def binaryFrame(payload: bytes) -> bytes:
    """
    Frame C{payload} as one final, unmasked binary WebSocket frame
    (RFC 6455, section 5.2), as a server sends it.
    """
    n = len(payload)
    if n < 126:
        return _SMALL_HEADERS[n] + payload
    if n < 65536:
        return b"\x82\x7e" + n.to_bytes(2, "big") + payload
    return b"\x82\x7f" + n.to_bytes(8, "big") + payload


def writeNow(transport: Any, data: bytes) -> None:
    """
    Write C{data} to C{transport}, sending it at once if the transport is a
    plain TCP connection with nothing queued, else through its C{write}.

    It reads private attributes of Twisted's C{tcp.Server} and C{tcp.Client}
    (C{_tempDataLen}, C{dataBuffer}, C{_writeDisconnected}, C{TLS},
    C{socket}); C{tests.test_fastwrite.WriteNowGuardTests} names the one
    that moved if an upgrade breaks this.
    """
    if (
        type(transport) in _PLAIN_TCP
        and not transport._tempDataLen
        and not transport.dataBuffer
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport.TLS
    ):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            # Let Twisted meet the error on its own path and report it.
            transport.write(data)
            return
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def setNoDelay(transport: object) -> bool:
    """
    Disable Nagle's algorithm (set C{TCP_NODELAY}) on C{transport}.

    Any transport with a C{setTcpNoDelay} method is asked: a TCP connection,
    a TLS layer over one (it passes the call down), a test's fake. Autobahn's
    own attempt on a client runs before it has read the option, and it makes
    none on accepted sockets; Twisted makes none at all.

    :param transport: any transport.
    :return: whether it is set; L{False} for a transport that is not TCP,
        or (logged at debug level) one that refuses it.
    """
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is None:
        # Not TCP (a UNIX socket, a test's transport): nothing to say.
        return False
    try:
        setter(True)
    except (AttributeError, OSError, NotImplementedError):
        _log.debug("cannot set TCP_NODELAY on {transport}", transport=transport)
        return False
    return True


def bufferedBytes(transport: object) -> int | None:
    """
    The bytes written to C{transport} that it still holds, not yet handed to
    the kernel.

    These are Twisted's private attributes (checked by
    C{tests.test_fastwrite.BufferedBytesGuardTests}, which names the one that
    moved if an upgrade breaks this):

    - a L{FileDescriptor} (a TCP connection, on the select-style reactors):
      C{len(dataBuffer) - offset + _tempDataLen};
    - a L{TLSMemoryBIOProtocol}: the cleartext it buffers (C{_appSendBuffer},
      before the handshake ends), plus what its own transport holds;
    - a TCP connection that runs TLS itself (C{startTLS}, C{listenSSL}):
      both, its C{protocol} being the L{TLSMemoryBIOProtocol}.

    :param transport: any transport.
    :return: the count, or L{None} when the transport is of another kind (a
        L{twisted.internet.testing.StringTransport}, the IOCP reactor's) or
        does not have the attributes this reads.
    """
    if isinstance(transport, TLSMemoryBIOProtocol):
        below = bufferedBytes(transport.transport)
        tls = _tlsBuffered(transport)
        if below is None or tls is None:
            return None
        return below + tls
    if not isinstance(transport, FileDescriptor):
        return None
    data = getattr(transport, "dataBuffer", None)
    offset = getattr(transport, "offset", None)
    temp = getattr(transport, "_tempDataLen", None)
    if (
        not isinstance(data, (bytes, bytearray, memoryview))
        or not isinstance(offset, int)
        or not isinstance(temp, int)
    ):
        return None
    queued = len(data) - offset + temp
    if getattr(transport, "TLS", False):
        tls = getattr(transport, "protocol", None)
        extra = _tlsBuffered(tls) if isinstance(tls, TLSMemoryBIOProtocol) else None
        if extra is None:
            return None
        queued += extra
    return queued


def _tlsBuffered(tls: TLSMemoryBIOProtocol) -> int | None:
    """
    The cleartext a TLS layer holds until its handshake is done, or L{None}
    if it does not keep it where we look.
    """
    pending = getattr(tls, "_appSendBuffer", None)
    if not isinstance(pending, list):
        return None
    return sum(len(chunk) for chunk in pending)


class FastSendMixin:
    """
    Mix into an Autobahn C{WebSocketProtocol} to send frames with
    L{writeNow}. Anything unusual (a queue of Autobahn's own, synchronous or
    chopped sends, octet logging) goes through Autobahn's C{sendData}.

    It reads Autobahn's internals (C{send_queue}, C{logOctets}, C{state},
    C{trafficStats}, C{_perMessageCompress}, C{maskServerFrames},
    C{autoFragmentSize}, C{maxMessagePayloadSize}, C{factory.isServer}) and
    frames as C{sendMessage} does; C{tests.test_fastwrite.FastSendGuardTests}
    names what moved if an upgrade breaks this.
    """

    _plainFrames: bool | None = None

    def sendData(
        self, data: bytes, sync: bool = False, chopsize: int | None = None
    ) -> None:
        """
        Send raw bytes on the wire.
        """
        me: Any = self
        if sync or chopsize or me.send_queue or me.logOctets:
            if me.send_queue is NO_QUEUE:
                me.send_queue = deque()
            super().sendData(data, sync, chopsize)  # type: ignore[misc]
            return
        state = me.state
        if state == _OPEN:
            writeNow(me.transport, data)
            me.trafficStats.outgoingOctetsWireLevel += len(data)
        elif state == _CONNECTING:
            # The opening handshake's response: sent at once too, so that
            # Twisted's buffer does not keep it for the life of the
            # connection.
            writeNow(me.transport, data)
        else:
            super().sendData(data, sync, chopsize)  # type: ignore[misc]

    def releaseHandshake(self) -> None:
        """
        Let go of what Autobahn keeps of the opening handshake once the
        WebSocket is open (the request's bytes and headers, the response's
        text: for its own test suite), and of its empty send queue: about
        1.5 KB an idle connection. Call it from C{onOpen}.
        """
        me: Any = self
        me.http_request_data = me.http_response_data = None
        me.http_headers = None
        if not me.send_queue:
            me.send_queue = NO_QUEUE

    def sendBinary(self, payload: bytes) -> None:
        """
        Send C{payload} as one binary message. Frames it here when Autobahn
        would do nothing more (open, no compression, no fragmenting, within
        the size limit, a server), else goes through C{sendMessage}.
        """
        me: Any = self
        if me.state != _OPEN:
            me.sendMessage(payload, True)
            return
        plain = me._plainFrames
        if plain is None:
            # Settled by the opening handshake; looked at once.
            plain = me._plainFrames = (
                me._perMessageCompress is None
                and me.factory.isServer
                and not me.autoFragmentSize
                and not me.maskServerFrames
            )
        if not plain or 0 < me.maxMessagePayloadSize < len(payload):
            me.sendMessage(payload, True)
            return
        stats = me.trafficStats
        stats.outgoingWebSocketMessages += 1
        stats.outgoingOctetsAppLevel += len(payload)
        stats.outgoingOctetsWebSocketLevel += len(payload)
        self.sendData(binaryFrame(payload))
