# -*- test-case-name: tests.test_limits -*-
"""
Log lines that an outsider can cause, rate-limited per cause (Part 6): the
first line of a cause is written, the rest are counted and summed up in one
line per interval.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

__all__ = ["ThrottledLog"]


class _Cause:
    __slots__ = ("call", "count", "level", "start")

    def __init__(self, level: LogLevel, start: float) -> None:
        self.level = level
        self.start = start
        self.count = 0
        self.call: IDelayedCall | None = None


class ThrottledLog:
    """
    Writes the first event of each cause through a L{Logger}, then counts the
    others of the same interval and writes one summary line per C{interval}
    while they keep coming: C{"{count} more: {cause} in the last {interval} s"}.
    An event that comes after a quiet interval is written again.

    A timer runs only while events are being counted, so a lone event leaves
    nothing scheduled.

    A cause is a short constant string such as C{"bad init packet"}; it is
    also the key of the count, so keep the number of causes small (never put
    an address or ID in it).

    :ivar interval: seconds between summary lines of one cause.
    """

    def __init__(
        self, logger: Logger, *, clock: IReactorTime, interval: float = 10.0
    ) -> None:
        self._logger = logger
        self._clock = clock
        self.interval = interval
        self._causes: dict[str, _Cause] = {}

    def emit(self, level: LogLevel, cause: str, format: str, **kwargs: Any) -> bool:
        """
        Log C{format} with C{kwargs} at C{level} if it is the first of its
        C{cause} in this interval, else count it.

        :return: whether the line was written.
        """
        now = self._clock.seconds()
        entry = self._causes.get(cause)
        if entry is None or (not entry.count and now - entry.start >= self.interval):
            self._causes[cause] = _Cause(level, now)
            self._logger.emit(level, format, cause=cause, **kwargs)
            return True
        entry.count += 1
        if entry.call is None:
            entry.call = self._clock.callLater(
                max(0.0, entry.start + self.interval - now), self._summarize, cause
            )
        return False

    def warn(self, cause: str, format: str, **kwargs: Any) -> bool:
        """
        L{emit} at C{warn}.
        """
        return self.emit(LogLevel.warn, cause, format, **kwargs)

    def info(self, cause: str, format: str, **kwargs: Any) -> bool:
        """
        L{emit} at C{info}.
        """
        return self.emit(LogLevel.info, cause, format, **kwargs)

    def _summarize(self, cause: str) -> None:
        entry = self._causes[cause]
        entry.call = None
        self._logger.emit(
            entry.level,
            "{count} more: {cause} in the last {interval:g} s",
            count=entry.count,
            cause=cause,
            interval=self.interval,
            throttled=True,
        )
        entry.count = 0
        entry.start = self._clock.seconds()

    def stop(self) -> None:
        """
        Cancel the summary timers (when the service stops); counts not yet
        written are dropped.
        """
        for entry in self._causes.values():
            if entry.call is not None and entry.call.active():
                entry.call.cancel()
        self._causes.clear()
