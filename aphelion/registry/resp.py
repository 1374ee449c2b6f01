# -*- test-case-name: tests.test_registry_resp -*-
"""
RESP2, the Redis serialization protocol, without I/O.

L{encodeCommand} makes the bytes of one command; L{RespParser} turns the
bytes a server sends into replies: L{bytes} (bulk and simple strings),
L{int}, L{None} (null), L{list} (arrays) and L{ReplyError} (errors, as
values: an error answers one command and the connection goes on).
"""

from __future__ import annotations

from typing import Union

__all__ = ["Reply", "ReplyError", "RespParser", "RespProtocolError", "encodeCommand"]


class ReplyError(Exception):
    """
    An error reply of the server (C{-ERR ...}), as a value.
    """

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplyError) and other.args == self.args

    def __hash__(self) -> int:
        return hash(self.args)


class RespProtocolError(Exception):
    """
    The server sent bytes that are not RESP2: the connection is unusable.
    """


Reply = Union[bytes, int, None, ReplyError, list["Reply"]]  # noqa: UP007

MAX_BULK = 512 * 1024 * 1024


def _arg(value: bytes | str | int | float) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("ascii")


def encodeCommand(*args: bytes | str | int | float) -> bytes:
    """
    :return: one command as a RESP array of bulk strings.
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _arg(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Incomplete(Exception):
    pass


class RespParser:
    """
    Parses a stream of RESP2 replies; keeps an incomplete tail for the next
    L{feed}.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Reply]:
        """
        :return: the replies complete with C{data}, in order.
        :raises RespProtocolError: on bytes that are not RESP2.
        """
        self._buffer += data
        replies: list[Reply] = []
        while self._buffer:
            try:
                reply, end = self._parse(0)
            except _Incomplete:
                break
            replies.append(reply)
            self._buffer = self._buffer[end:]
        return replies

    def _line(self, start: int) -> tuple[bytes, int]:
        end = self._buffer.find(b"\r\n", start)
        if end < 0:
            if len(self._buffer) - start > 65536:
                raise RespProtocolError("line too long")
            raise _Incomplete()
        return self._buffer[start:end], end + 2

    def _parse(self, start: int) -> tuple[Reply, int]:
        buffer = self._buffer
        if start >= len(buffer):
            raise _Incomplete()
        kind = buffer[start : start + 1]
        line, after = self._line(start + 1)
        if kind == b"+":
            return line, after
        if kind == b"-":
            return ReplyError(line.decode("utf-8", "replace")), after
        try:
            number = int(line)
        except ValueError:
            raise RespProtocolError(f"bad number after {kind!r}") from None
        if kind == b":":
            return number, after
        if kind == b"$":
            if number == -1:
                return None, after
            if number < 0 or number > MAX_BULK:
                raise RespProtocolError("bad bulk length")
            end = after + number
            if len(buffer) < end + 2:
                raise _Incomplete()
            if buffer[end : end + 2] != b"\r\n":
                raise RespProtocolError("bulk string not followed by CRLF")
            return buffer[after:end], end + 2
        if kind == b"*":
            if number == -1:
                return None, after
            if number < 0:
                raise RespProtocolError("bad array length")
            items: list[Reply] = []
            position = after
            for _ in range(number):
                item, position = self._parse(position)
                items.append(item)
            return items, position
        raise RespProtocolError(f"unknown reply type {kind!r}")
