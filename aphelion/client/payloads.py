# -*- test-case-name: tests.test_client -*-
"""
Received payloads waiting to be taken, for a connection
(L{aphelion.client.AphelionClientProtocol.nextPayload}) or a whole session
(L{aphelion.client.ClientSession.nextPayload}).
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, succeed

__all__ = ["PayloadQueue"]


class PayloadQueue:
    """
    Received payloads, in arrival order, and the L{Deferred}s waiting for them.
    """

    def __init__(self) -> None:
        self._payloads: deque[bytes] = deque()
        self._waiting: list[Deferred[bytes]] = []

    def __len__(self) -> int:
        return len(self._payloads)

    def put(self, payload: bytes) -> None:
        """
        Hand C{payload} to the oldest waiter, or keep it.
        """
        while self._waiting:
            d = self._waiting.pop(0)
            if not d.called:
                d.callback(payload)
                return
        self._payloads.append(payload)

    def get(self) -> Deferred[bytes] | None:
        """
        :return: a L{Deferred} for the oldest payload, or L{None} when none
            is kept (the caller then decides whether to wait, see L{wait}).
        """
        if self._payloads:
            return succeed(self._payloads.popleft())
        return None

    def wait(self) -> Deferred[bytes]:
        """
        :return: a L{Deferred} that fires with the next payload put here.
        """
        d: Deferred[bytes] = Deferred(lambda d: self._forget(d))
        self._waiting.append(d)
        return d

    def _forget(self, d: Deferred[bytes]) -> None:
        if d in self._waiting:
            self._waiting.remove(d)

    def failWaiters(self, error: Exception) -> None:
        """
        Fail every waiting L{Deferred} with C{error}.
        """
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not d.called:
                d.errback(error)
