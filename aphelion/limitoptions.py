# -*- test-case-name: tests.test_tap -*-
"""
The options of the limits against abuse (Part 6 of the contract): one table
that gives each its C{twistd aphelion} option, its L{Config} field, its help
and its lowest value, from which L{aphelion.tap.Options} takes its
parameters, its checks and its L{Config} values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.python import usage

from aphelion.config import Config

__all__ = [
    "LIMITS",
    "LimitOption",
    "atLeast",
    "checkLimits",
    "limitParameters",
    "limitValues",
]

_DEFAULTS = Config()


@dataclass(frozen=True)
class LimitOption:
    """
    One limit's option.

    :ivar name: the long option, without its dashes.
    :ivar field: the L{Config} field it sets (and takes its default from).
    :ivar help: the help line.
    :ivar coerce: C{int} or C{float}.
    :ivar low: the lowest value allowed.
    :ivar strictly: whether the value must be above C{low}, not just at it.
    """

    name: str
    field: str
    help: str
    coerce: Callable[[str], Any]
    low: float = 0
    strictly: bool = False


LIMITS: tuple[LimitOption, ...] = (
    LimitOption(
        "upgrade-timeout",
        "upgradeTimeout",
        "Seconds from TCP accept to a completed WebSocket upgrade (dropped).",
        float,
        0,
        strictly=True,
    ),
    LimitOption(
        "connections-per-address",
        "connectionsPerAddress",
        "Open connections per client address, from TCP accept; 0 is no limit.",
        int,
    ),
    LimitOption(
        "connection-rate",
        "connectionRate",
        "New connections per second per client address.",
        float,
        0,
        strictly=True,
    ),
    LimitOption(
        "connection-burst",
        "connectionBurst",
        "Burst of new connections per client address.",
        int,
        1,
    ),
    LimitOption(
        "auth-timeout",
        "authTimeout",
        "Seconds a game connection has from its init packet to log in (close 4008); 0 "
        "is no limit.",
        float,
    ),
    LimitOption(
        "logins-per-minute",
        "loginsPerMinute",
        "Authentication tries per minute per client address and per player ID "
        "(TOO_MANY_ATTEMPTS beyond, without running the checker).",
        float,
        0,
        strictly=True,
    ),
    LimitOption(
        "checker-queue",
        "checkerQueue",
        "Credential checks waiting for the checker; more are answered OTHER busy.",
        int,
        1,
    ),
    LimitOption(
        "checks-per-address",
        "checksPerAddress",
        "Credential checks of one client address running at once; more are answered "
        "OTHER busy. 0 is no limit.",
        int,
    ),
    LimitOption(
        "max-sessions",
        "maxSessions",
        "Sessions in all (close 1013); 0 is no limit.",
        int,
    ),
    LimitOption(
        "sessions-per-address",
        "sessionsPerAddress",
        "Sessions per client address (close 1013); 0 is no limit.",
        int,
    ),
    LimitOption(
        "write-pause",
        "writePause",
        "Bytes waiting to be written to a client at which it is not read.",
        int,
        65536,
    ),
    LimitOption(
        "write-limit",
        "writeLimit",
        "Bytes waiting to be written to a client at which it is closed with 4007 "
        "(reads too slowly).",
        int,
    ),
    LimitOption(
        "queue-bytes",
        "queueBytes",
        "Bytes queued for a lingering session (it ends beyond).",
        int,
    ),
    LimitOption(
        "seating-buffer",
        "seatingBuffer",
        "Payloads a client may send while being seated or moved (4007).",
        int,
    ),
    LimitOption(
        "seating-buffer-bytes",
        "seatingBufferBytes",
        "Bytes a client may send while being seated or moved (4007).",
        int,
    ),
    LimitOption(
        "player-write-limit",
        "playerWriteLimit",
        "Bytes a game server buffers toward one player before it disconnects that "
        "player (reads too slowly).",
        int,
        65536,
    ),
    LimitOption(
        "log-interval",
        "logInterval",
        "Seconds between summary lines of a rate-limited log cause.",
        float,
        0,
        strictly=True,
    ),
)


def limitParameters() -> list[list[Any]]:
    """
    :return: the C{optParameters} entries of the limits.
    """
    return [
        [limit.name, None, getattr(_DEFAULTS, limit.field), limit.help, limit.coerce]
        for limit in LIMITS
    ]


def atLeast(
    options: Mapping[str, Any], name: str, low: float, strictly: bool = False
) -> None:
    """
    Check that the option C{name} is at least C{low} (more than it, if
    C{strictly}).

    :raises usage.UsageError: naming the option, the bound and the value.
    """
    value = options[name]
    # NaN compares false with everything: it would pass any bound, then
    # break the timers it reaches.
    if value != value or value < low or (strictly and value == low):
        relation = "more than" if strictly else "at least"
        raise usage.UsageError(f"--{name} must be {relation} {low:g}, not {value}")


def checkLimits(options: Mapping[str, Any]) -> None:
    """
    Check the limits' values.

    :raises usage.UsageError: for a value below its lowest, or a write limit
        below the write pause.
    """
    for limit in LIMITS:
        atLeast(options, limit.name, limit.low, limit.strictly)
    if options["write-limit"] < options["write-pause"]:
        raise usage.UsageError("--write-limit must be at least --write-pause")


def limitValues(options: Mapping[str, Any]) -> dict[str, Any]:
    """
    :return: the L{Config} fields of the limits, by name.
    """
    return {limit.field: options[limit.name] for limit in LIMITS}
