# -*- test-case-name: tests.test_registry_redis -*-
"""
The messages between the nodes of a cluster (Part 5.1): each node listens
on its channel C{<prefix>node:<nodeId>} (Redis pub/sub) for JSON messages
with an C{op}. A request (C{release}) carries its id (C{req}) and its
sender (C{from}); its answer (C{released}) names the request, and a request
left without an answer is answered with L{None} after a timeout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.registry.client import RedisClient

__all__ = ["NodeChannel"]


class NodeChannel:
    """
    One node's end of the channels between nodes.

    :ivar received: called with each message to this node that is not an
        answer to one of its requests.
    """

    _log = Logger()

    def __init__(
        self,
        *,
        clock: IReactorTime,
        client: RedisClient,
        nodeId: str,
        name: Callable[[str], str],
        received: Callable[[dict[str, Any]], None],
        ignore: Callable[[Failure, str], None],
    ) -> None:
        """
        :param name: the channel of a node, by its id.
        :param ignore: the errback of what is sent (with what it was for).
        """
        self._clock = clock
        self.client = client
        self.nodeId = nodeId
        self.name = name
        self.received = received
        self._ignore = ignore
        self._requests: dict[str, tuple[Deferred[Any], IDelayedCall]] = {}

    def start(self) -> None:
        """
        Listen on this node's channel.
        """
        self.client.subscribe(self.name(self.nodeId).encode(), self._received)

    def close(self) -> None:
        """
        Forget the requests still waiting (their timers stop).
        """
        for _waiting, timer in self._requests.values():
            if timer.active():
                timer.cancel()
        self._requests.clear()

    def send(self, nodeId: str, message: dict[str, Any]) -> Deferred[Any]:
        """
        Send C{message} to the node C{nodeId}.
        """
        d = self.client.publish(
            self.name(nodeId).encode(), json.dumps(message).encode()
        )
        d.addErrback(self._ignore, "messaging a node")
        return d

    async def ask(
        self, nodeId: str, message: dict[str, Any], seconds: float
    ) -> dict[str, Any] | None:
        """
        Send the request C{message} to C{nodeId}.

        :return: its answer, or L{None} when none came within C{seconds}.
        """
        request = os.urandom(8).hex()
        waiting: Deferred[Any] = Deferred()
        timer = self._clock.callLater(seconds, self._noAnswer, request)
        self._requests[request] = (waiting, timer)
        self.send(nodeId, {**message, "from": self.nodeId, "req": request})
        answer: dict[str, Any] | None = await waiting
        return answer

    def _noAnswer(self, request: str) -> None:
        entry = self._requests.pop(request, None)
        if entry is not None:
            self._log.warn("registry: a node did not release a session in time")
            entry[0].callback(None)

    def _received(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            op = message["op"]
        except (ValueError, KeyError, TypeError):
            self._log.warn("registry: an unreadable message from another node")
            return
        if op == "released":
            entry = self._requests.pop(str(message.get("req")), None)
            if entry is not None:
                waiting, timer = entry
                if timer.active():
                    timer.cancel()
                waiting.callback(message)
        else:
            self.received(message)
