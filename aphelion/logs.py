# -*- test-case-name: tests.test_logs -*-
"""
Structured logs: one JSON object per line on standard output, for log
shippers (journald, Docker, Kubernetes, Loki, Elasticsearch)::

    twistd --logger aphelion.logs.json -n aphelion ...

C{--logger} takes the name of a callable that returns a log observer;
L{json} is that callable. Each line is an object with C{time} (seconds since
the epoch), C{level}, C{namespace}, C{text} (the formatted message) and the
event's own fields (C{serverId}, C{playerId}, C{hint}, C{code} ...). Fields
whose name says they hold a secret (a token, a password, a secret, a ticket,
credentials; see L{isSecretKey}) are left out, and values that JSON cannot
hold are written as their text. A logged failure adds C{failure}, its
traceback.

The game servers' own events arrive the same way: a spawned game server
logs JSON (C{--log-json}) and the AuthProxy logs each of its events again
with its C{serverId} (L{aphelion.control.process}).
"""

from __future__ import annotations

import json as _json
import re
import sys
from typing import IO, Any

from twisted.logger import ILogObserver, LogEvent, LogLevel, eventFromJSON, formatEvent
from zope.interface import implementer

__all__ = [
    "CHILD_LINE_LIMIT",
    "JSONLinesObserver",
    "childLines",
    "eventAsJSON",
    "isSecretKey",
    "json",
    "relayedEvent",
]

_SECRET = re.compile(
    r"token|passw|secret|ticket|credential|cookie|authoriz|private",
    re.IGNORECASE,
)


def isSecretKey(key: str) -> bool:
    """
    Whether a field's name says it may hold a secret. A hint (C{tokenHint},
    C{hint}: the first four hex digits of a token) is not a secret.
    """
    if key.lower().endswith("hint"):
        return False
    return _SECRET.search(key) is not None


def _plain(value: Any, depth: int = 0) -> Any:
    """
    C{value} as something C{json.dumps} writes: JSON's own types as they
    are (containers checked inside), bytes as their length, anything else
    as its text.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        # Bytes may be a token: never written.
        return f"<{len(value)} bytes>"
    if depth < 4:
        if isinstance(value, (list, tuple, set, frozenset)):
            return [_plain(item, depth + 1) for item in value]
        if isinstance(value, dict):
            return {
                str(k): _plain(v, depth + 1)
                for k, v in value.items()
                if not isSecretKey(str(k))
            }
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def eventAsJSON(event: LogEvent) -> str:
    """
    :return: one line of JSON (without the newline) for C{event}.
    """
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": event.get("log_time"),
        "level": getattr(level, "name", None),
        "namespace": event.get("log_namespace"),
        "text": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in record or isSecretKey(key):
            continue
        record[key] = _plain(value)
    failure = event.get("log_failure")
    if failure is not None:
        try:
            record["failure"] = failure.getTraceback()
        except Exception:
            record["failure"] = _plain(failure)
    return _json.dumps(record, ensure_ascii=False, allow_nan=True, default=str)


@implementer(ILogObserver)
class JSONLinesObserver:
    """
    Writes each event as one line of JSON (L{eventAsJSON}) to a text file.
    """

    def __init__(self, out: IO[str]) -> None:
        """
        :param out: the file, flushed after each line.
        """
        self._out = out

    def __call__(self, event: LogEvent) -> None:
        """
        Write one event.
        """
        self._out.write(eventAsJSON(event) + "\n")
        self._out.flush()


def json(out: IO[str] | None = None) -> JSONLinesObserver:
    """
    The observer of C{twistd --logger aphelion.logs.json}: JSON lines on
    standard output (the real one: twistd points C{sys.stdout} at the log
    once logging has begun).
    """
    return JSONLinesObserver(out if out is not None else sys.stdout)


_LEVELS = frozenset(LogLevel.iterconstants())
# Keys that old-style observers act on (a Python warning's among them): an
# event of a child process logged again must not look like one of those.
_LEGACY_KEYS = frozenset(
    {
        "message",
        "format",
        "isError",
        "system",
        "why",
        "failure",
        "warning",
        "category",
        "filename",
        "lineno",
    }
)


def relayedEvent(
    event: LogEvent, tag: str, value: object, prefix: str, namespace: str
) -> LogEvent:
    """
    An event of a child process (a game server, a worker), read back from its
    JSON line, made ready to be logged again in this process: its own
    namespace, level, time and fields, its text prefixed, and one field that
    says where it came from.

    :param event: the child's event, from L{twisted.logger.eventFromJSON}.
    :param tag: the name of the field that names the child (C{serverId}).
    :param value: that field's value.
    :param prefix: the text's prefix, a format string that may use C{tag}
        (C{"[{serverId}]"}).
    :param namespace: the namespace when the child's event has none.
    """
    message = formatEvent(event).replace("\n", "\\n")
    fields = {
        k: v
        for k, v in event.items()
        if not k.startswith("log_") and k not in _LEGACY_KEYS
    }
    level = event.get("log_level")
    again: LogEvent = {
        **fields,
        tag: value,
        "line": message,
        "log_format": prefix + " {line}",
        "log_namespace": event.get("log_namespace", namespace),
        "log_level": level if level in _LEVELS else LogLevel.info,
        "log_time": event.get("log_time"),
        "log_source": None,
    }
    if event.get("log_failure") is not None:
        again["log_failure"] = event["log_failure"]
    return again


CHILD_LINE_LIMIT = 65536
"""
Bytes of a child's unfinished output line kept; a longer line is dropped.
"""


def childLines(tail: bytes, data: bytes) -> tuple[list[LogEvent | str], bytes]:
    """
    Split what a child process (a game server, a worker) wrote into its log
    events (its JSON lines, read back) and its other lines (say, a
    traceback before its logging began).

    :param tail: the unfinished line kept from the last call.
    :param data: the bytes just read.
    :return: the events and the other lines' text, in order, and the
        unfinished line to keep (none when longer than L{CHILD_LINE_LIMIT}).
    """
    *lines, tail = (tail + data).split(b"\n")
    found: list[LogEvent | str] = []
    for line in lines:
        text = line.decode("utf-8", "replace").lstrip("\x1e")
        if text.startswith("{"):
            try:
                event = eventFromJSON(text)
            except ValueError:
                pass
            else:
                if isinstance(event, dict):
                    found.append(event)
                    continue
        found.append(text)
    if len(tail) > CHILD_LINE_LIMIT:
        tail = b""
    return found, tail
