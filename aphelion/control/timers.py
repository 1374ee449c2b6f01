# -*- test-case-name: tests.test_control_protocol -*-
"""
The timers of an envelope connection (Part 2): the deadline of the next
envelope, and the heartbeats with the watch for silence.

L{EnvelopeTimers} is mixed into L{aphelion.control.protocol.EnvelopeProtocol},
as Twisted's C{TimeoutMixin} is into a protocol; every timer runs on the
factory's clock.
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall

from aphelion.codes import EnvelopeType, ErrorCode
from aphelion.proto import control_pb2

if TYPE_CHECKING:
    from google.protobuf.message import Message

__all__ = ["EnvelopeTimers"]


class EnvelopeTimers:
    """
    The timers of an L{aphelion.control.protocol.EnvelopeProtocol}: the
    first-message timeout, any envelope deadline a subclass sets while it
    waits for an answer (L{setEnvelopeTimeout}), and the heartbeats
    (L{startHeartbeats}).

    The protocol it is mixed into calls L{_startTimers} when the connection
    is made and L{_cancelTimers} when it closes, clears the deadline when an
    envelope arrives, and notes the time of every read while the heartbeats
    run (C{_lastReceived}, when C{_deadCall} is set).

    :cvar firstMessageTimeout: seconds within which the first envelope must
        arrive once connected, else C{Error{7}}; L{None} for no limit.
    :cvar heartbeats: whether L{startHeartbeats} runs when the connection is
        made. Control connections need heartbeats; player connections do not.
    :cvar heartbeatInterval: seconds between the C{Heartbeat}s sent.
    :cvar deadAfter: seconds without receiving anything at all after which a
        connection with heartbeats is dead: C{Error{7}} and close.
    """

    firstMessageTimeout: float | None = 10.0
    heartbeats = False
    heartbeatInterval = 5.0
    deadAfter = 15.0

    _envelopeCall: IDelayedCall | None = None
    _heartbeatCall: IDelayedCall | None = None
    _deadCall: IDelayedCall | None = None
    _lastReceived = 0.0

    if TYPE_CHECKING:
        # What the protocol it is mixed into provides: an EnvelopeFactory
        # (for its clock), whether it is closing, and the sending.
        factory: Any
        _closing: bool

        def sendEnvelope(
            self, envelopeType: EnvelopeType, message: Message | bytes
        ) -> None: ...

        def sendError(self, code: ErrorCode, message: str) -> None: ...

    def _startTimers(self) -> None:
        """
        Called when the connection is made: start the first-message timeout
        and, if L{heartbeats} is set, the heartbeats.
        """
        # Nonces of the Heartbeats we sent lately: one that comes back is the
        # answer and is not answered again, so two ends that both answer
        # Heartbeats never bounce one back and forth. Every other Heartbeat
        # is answered, whatever its nonce.
        self._nonces: deque[int] = deque(maxlen=16)
        self.setEnvelopeTimeout(self.firstMessageTimeout)
        if self.heartbeats:
            self.startHeartbeats()

    def envelope_Heartbeat(self, message: control_pb2.Heartbeat) -> None:
        """
        Called when the peer sends C{Heartbeat}: answers it with the same
        nonce, unless it is the answer to one of ours.
        """
        nonce = message.nonce
        if nonce in self._nonces:
            return
        self.sendEnvelope(EnvelopeType.Heartbeat, control_pb2.Heartbeat(nonce=nonce))

    def setEnvelopeTimeout(self, seconds: float | None) -> None:
        """
        Require the next envelope within C{seconds}, else C{Error{7}} and
        close. Any envelope that arrives clears it. L{connectionMade} sets it to
        L{firstMessageTimeout}; a subclass waiting for an answer sets it again.

        :param seconds: the limit, or L{None} to clear it.
        """
        if self._envelopeCall is not None:
            if self._envelopeCall.active():
                self._envelopeCall.cancel()
            self._envelopeCall = None
        if seconds is not None and not self._closing:
            self._envelopeCall = self.factory.clock.callLater(
                seconds, self._envelopeTimedOut, seconds
            )

    def startHeartbeats(self) -> None:
        """
        Send a C{Heartbeat} every L{heartbeatInterval} seconds, and close the
        connection with C{Error{7}} once nothing at all has been received for
        L{deadAfter} seconds. Does nothing if they already run.
        """
        if self._heartbeatCall is not None or self._closing:
            return
        clock = self.factory.clock
        self._lastReceived = clock.seconds()
        self._heartbeatCall = clock.callLater(self.heartbeatInterval, self._beat)
        self._deadCall = clock.callLater(self.deadAfter, self._checkAlive)

    def stopHeartbeats(self) -> None:
        """
        Stop sending heartbeats and watching for silence.
        """
        for call in (self._heartbeatCall, self._deadCall):
            if call is not None and call.active():
                call.cancel()
        self._heartbeatCall = self._deadCall = None

    # -- internals -----------------------------------------------------------

    def _envelopeTimedOut(self, seconds: float) -> None:
        """
        No envelope came in time.
        """
        self._envelopeCall = None
        self.sendError(ErrorCode.TIMEOUT, f"no envelope within {seconds:g} s")

    def _beat(self) -> None:
        """
        Send one heartbeat and schedule the next.
        """
        self._heartbeatCall = None
        if self._closing:
            return
        nonce = secrets.randbits(64)
        self._nonces.append(nonce)
        self.sendEnvelope(EnvelopeType.Heartbeat, control_pb2.Heartbeat(nonce=nonce))
        if not self._closing:
            self._heartbeatCall = self.factory.clock.callLater(
                self.heartbeatInterval, self._beat
            )

    def _checkAlive(self) -> None:
        """
        Close the connection if it has been silent for L{deadAfter} seconds;
        else check again when it would have been.
        """
        self._deadCall = None
        if self._closing:
            return
        clock = self.factory.clock
        silent = clock.seconds() - self._lastReceived
        if silent >= self.deadAfter:
            self.stopHeartbeats()
            self.sendError(ErrorCode.TIMEOUT, f"nothing received for {silent:g} s")
            return
        self._deadCall = clock.callLater(self.deadAfter - silent, self._checkAlive)

    def _cancelTimers(self) -> None:
        """
        Cancel the envelope timeout and the heartbeats.
        """
        if self._envelopeCall is not None:
            if self._envelopeCall.active():
                self._envelopeCall.cancel()
            self._envelopeCall = None
        self.stopHeartbeats()
