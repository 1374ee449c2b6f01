# -*- test-case-name: tests.test_admin -*-
"""
Whether the AuthProxy still wants new players: L{Lifecycle}.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

__all__ = ["Lifecycle"]


class Lifecycle:
    """
    The AuthProxy's life as a load balancer sees it. Once draining (on
    C{SIGTERM}, before the listeners close), C{/ready} answers 503 so that
    no new player is sent here, while the players already here carry on.

    :ivar draining: whether the AuthProxy is draining.
    :ivar drainReason: why, once draining.
    """

    _log = Logger()

    def __init__(self) -> None:
        self.draining = False
        self.drainReason = ""
        self._observers: list[Callable[[str], object]] = []

    def startDraining(self, reason: str) -> None:
        """
        Start draining (once; later calls do nothing): C{/ready} answers 503
        from now on, and every observer is called with C{reason}.
        """
        if self.draining:
            return
        self.draining = True
        self.drainReason = reason
        self._log.info("draining: {reason}", reason=reason)
        for observer in self._observers:
            try:
                observer(reason)
            except Exception:
                self._log.failure("drain observer failed")

    def addDrainObserver(self, observer: Callable[[str], object]) -> None:
        """
        Call C{observer(reason)} when draining starts.
        """
        self._observers.append(observer)
