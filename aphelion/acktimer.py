# -*- test-case-name: tests.test_websocket -*-
"""
Acks that wait (Part 1.3), batched for every client connection of a factory.

A connection owes the client an ack-only packet after the ack delay unless it
sends something first. The delay is the same for every connection, so their
deadlines come in order: L{AckTimerMixin}, a base of
L{aphelion.websocket.AphelionServerFactory}, serves them all with one queue
and one timer.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from aphelion.ack import AckState
from aphelion.config import Config

__all__ = ["AckTimerMixin", "AckingConnection"]


class AckingConnection(Protocol):
    """
    What L{AckTimerMixin} needs of a connection
    (L{aphelion.wsbase.PacketProtocol} and its subclasses).
    """

    _acks: AckState
    _ackSoon: bool
    _ackQueued: bool
    _ackDeadline: float

    def flushAcks(self) -> None:
        """
        Send what is owed now.
        """


class AckTimerMixin:
    """
    One queue and one timer for the acks of many connections. The class
    that uses it sets the attributes below, the queues empty, before any
    L{ackLater}.

    :ivar clock: the clock of the timers.
    :ivar config: the settings (the ack delay).
    """

    clock: IReactorTime
    config: Config
    _ackDue: list[AckingConnection]
    _ackCall: IDelayedCall | None
    _ackWaiting: deque[tuple[float, AckingConnection]]
    _ackWaitCall: IDelayedCall | None

    def ackLater(self, connection: AckingConnection) -> None:
        """
        Send C{connection} an ack-only packet after the ack delay, unless it
        sends something first (Part 1.3).

        The delay is the same for every connection, so their deadlines come
        in order: one queue and one timer serve them all, for the ack delay
        and for the end of the reactor turn (a delay of 0, or the ack cap
        reached) alike.
        """
        delay = self.config.ackDelay
        acks = connection._acks
        if delay <= 0 or acks.owed >= acks.cap:
            connection._ackSoon = True
            self._ackDue.append(connection)
            if self._ackCall is None:
                self._ackCall = self.clock.callLater(0, self._flushDueAcks)
            return
        deadline = self.clock.seconds() + delay
        connection._ackDeadline = deadline
        self._ackWaiting.append((deadline, connection))
        if self._ackWaitCall is None:
            self._ackWaitCall = self.clock.callLater(delay, self._flushWaitingAcks)

    def _flushDueAcks(self) -> None:
        self._ackCall = None
        due, self._ackDue = self._ackDue, []
        for connection in due:
            connection.flushAcks()

    def _flushWaitingAcks(self) -> None:
        self._ackWaitCall = None
        now = self.clock.seconds()
        waiting = self._ackWaiting
        due = self._ackDue
        while waiting and waiting[0][0] <= now:
            deadline, connection = waiting.popleft()
            # Skip a connection whose acks rode on a packet meanwhile, or
            # that waits again for a later deadline.
            if connection._ackQueued and connection._ackDeadline == deadline:
                due.append(connection)
        if due and self._ackCall is None:
            # Not at once: the reactor runs its timers before it reads, and
            # under load the answers that would carry these acks may be
            # waiting in the sockets. They are read first, and what they
            # carried is not sent again.
            self._ackCall = self.clock.callLater(0, self._flushDueAcks)
        if waiting:
            self._ackWaitCall = self.clock.callLater(
                waiting[0][0] - now, self._flushWaitingAcks
            )

    def stopAckTimers(self) -> None:
        """
        Cancel the timers and forget the connections: no more acks are due.
        """
        for call in (self._ackCall, self._ackWaitCall):
            if call is not None and call.active():
                call.cancel()
        self._ackCall = self._ackWaitCall = None
        self._ackDue = []
        self._ackWaiting.clear()
