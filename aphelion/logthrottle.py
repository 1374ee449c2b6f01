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
    __slots__ = ("call", "count", "level")

    def __init__(self, level: LogLevel) -> None:
        self.level = level
        self.count = 0
        self.call: IDelayedCall | None = None


class ThrottledLog:
    """
    Writes the first event of each cause through a L{Logger}, then counts the
    others and writes one summary line per C{interval} while they keep
    coming: C{"{count} more: {cause} in the last {interval} s"}.

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
        entry = self._causes.get(cause)
        if entry is not None:
            entry.count += 1
            return False
        entry = self._causes[cause] = _Cause(level)
        entry.call = self._clock.callLater(self.interval, self._summarize, cause)
        self._logger.emit(level, format, cause=cause, **kwargs)
        return True

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
        if not entry.count:
            del self._causes[cause]
            return
        self._logger.emit(
            entry.level,
            "{count} more: {cause} in the last {interval:g} s",
            count=entry.count,
            cause=cause,
            interval=self.interval,
            throttled=True,
        )
        entry.count = 0
        entry.call = self._clock.callLater(self.interval, self._summarize, cause)

    def stop(self) -> None:
        """
        Cancel the summary timers (when the service stops); counts not yet
        written are dropped.
        """
        for entry in self._causes.values():
            if entry.call is not None and entry.call.active():
                entry.call.cancel()
        self._causes.clear()
