# -*- test-case-name: tests.test_registry_resp -*-
"""
Tests for L{aphelion.registry.resp}, the RESP2 codec.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aphelion.registry.resp import (
    Reply,
    ReplyError,
    RespParser,
    RespProtocolError,
    encodeCommand,
)


def encodeReply(reply: Reply) -> bytes:
    """
    The RESP2 bytes of C{reply}, as a server sends it.
    """
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, ReplyError):
        return b"-" + str(reply).encode() + b"\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    return b"*%d\r\n" % len(reply) + b"".join(encodeReply(r) for r in reply)


replies = st.recursive(
    st.none()
    | st.integers(-(2**63), 2**63 - 1)
    | st.binary(max_size=64)
    | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).map(
        ReplyError
    ),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


class ParserTests(SynchronousTestCase):
    """
    L{RespParser} turns a stream into replies, whatever the chunking.
    """

    @given(st.lists(replies, max_size=5), st.data())
    def test_roundTrip(self, sent: list[Reply], data: st.DataObject) -> None:
        """
        Replies come out as they went in, in order, however the bytes are
        cut.
        """
        stream = b"".join(encodeReply(r) for r in sent)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
        parser = RespParser()
        got: list[Reply] = []
        start = 0
        for cut in [*cuts, len(stream)]:
            got += parser.feed(stream[start:cut])
            start = cut
        self.assertEqual(got, sent)

    def test_simpleString(self) -> None:
        """
        A simple string is bytes.
        """
        self.assertEqual(RespParser().feed(b"+OK\r\n+PONG\r\n"), [b"OK", b"PONG"])

    def test_nullArray(self) -> None:
        """
        A null array is L{None}.
        """
        self.assertEqual(RespParser().feed(b"*-1\r\n"), [None])

    def test_garbage(self) -> None:
        """
        Bytes that are not RESP raise L{RespProtocolError}.
        """
        for data in (b"?what\r\n", b":x\r\n", b"$3\r\nabcXY", b"$-5\r\n"):
            self.assertRaises(RespProtocolError, RespParser().feed, data)

    def test_encodeCommand(self) -> None:
        """
        A command is an array of bulk strings; text is UTF-8 and numbers
        are decimal.
        """
        self.assertEqual(
            encodeCommand("SET", b"k\r\n", 12, 1.5),
            b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n$3\r\n1.5\r\n",
        )
