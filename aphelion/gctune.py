# -*- test-case-name: tests.test_gctune -*-
"""
The garbage collector's policy for aphelion's long-running processes.

CPython's cyclic collector runs a young collection every 700 net
allocations of container objects, and every hundredth one is a full
collection that walks every live object. A seat allocates a few thousand
objects, and a busy AuthProxy or game server holds thousands of live
sessions and players: its full collections then stop the reactor for tens
of milliseconds, and every connection waiting meanwhile waits that long.
In the seat benchmark (``benchmarks/relay.py``) they made the 99th
percentile of the time to seated 110-165 ms where the median was 18 ms.

L{tuneCollector} freezes what the process made while starting (imports,
the configuration, the game: never garbage, never to be walked again), and
raises the young threshold so that collections come fifty times less
often; reference counting still frees everything without cycles at once.
"""

from __future__ import annotations

import gc
from typing import Any

__all__ = ["DEFAULT_THRESHOLD", "tuneCollector"]

DEFAULT_THRESHOLD = 50_000
"""
The young-generation threshold L{tuneCollector} sets by default: net
allocations of container objects between two young collections (CPython's
default is 700).
"""


def tuneCollector(threshold: int = DEFAULT_THRESHOLD, collector: Any = gc) -> None:
    """
    Freeze the objects made so far and set the young threshold. Call it
    once the process has started, before it serves.

    :param threshold: the young-generation threshold; 0 leaves the
        collector as it is.
    :param collector: the C{gc} module (a fake in tests).
    :raises ValueError: if C{threshold} is negative.
    """
    if threshold < 0:
        raise ValueError(f"the collector's threshold must not be negative: {threshold}")
    if threshold == 0:
        return
    collector.freeze()
    _, middle, old = collector.get_threshold()
    collector.set_threshold(threshold, middle, old)
