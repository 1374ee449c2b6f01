# -*- test-case-name: tests.test_integration_system -*-
"""
A terminal client of the chat game, C{aphelion chat}: a person joins and
talks. Built on L{aphelion.client}.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from twisted.internet.defer import Deferred
from twisted.protocols.basic import LineReceiver

from aphelion.client import AphelionClientProtocol, ClosedError, connect
from aphelion.codes import AphelionProtocol
from aphelion.proto.chat_pb2 import C2S, S2C, Say
from aphelion.proto.game_pb2 import Authenticate, AuthenticateResponse

__all__ = ["ChatTerminal", "LineInput"]


class ChatTerminal:
    """
    One person in the chat: what they type goes out as C{Say}, what the room
    says is written for them.

    :ivar connection: the game connection, once open.
    :ivar joined: fires when the player is seated (or fails with the reason).
    """

    def __init__(
        self, reactor: Any, url: str, playerId: str, write: Callable[[str], None]
    ) -> None:
        self._reactor = reactor
        self._url = url
        self._playerId = playerId
        self._write = write
        self.connection: AphelionClientProtocol | None = None
        self.joined: Deferred[None] = Deferred()

    async def run(self) -> tuple[int, str]:
        """
        Connect, authenticate and show the room until the connection closes.

        :return: the close code and reason.
        """
        connection = await connect(self._reactor, self._url, AphelionProtocol.GAME)
        self.connection = connection
        connection.sendPayload(
            C2S(authenticate=Authenticate(id=self._playerId)).SerializeToString()
        )
        while True:
            try:
                payload = await connection.nextPayload()
            except ClosedError as e:
                code, reason = e.code, e.reason
                break
            self._show(payload)
        self._write(f"* closed: {code} {reason}")
        if not self.joined.called:
            self.joined.errback(ClosedError(code, reason))
            # Whoever waited on it has the failure; nobody else needs it.
            self.joined.addErrback(lambda _: None)
        return code, reason

    def say(self, text: str) -> None:
        """
        Send a line to the room.
        """
        text = text.strip()
        if text and self.connection is not None:
            self.connection.sendPayload(C2S(say=Say(text=text)).SerializeToString())

    def _show(self, payload: bytes) -> None:
        try:
            message = S2C.FromString(payload)
        except DecodeError:
            self._write("* (unreadable message)")
            return
        if message.HasField("authenticate_response"):
            response = message.authenticate_response
            if response.result != AuthenticateResponse.OK:
                name = AuthenticateResponse.Result.Name(response.result)
                self._write(f"* not admitted: {name} {response.description}")
        if message.HasField("connected"):
            details = message.connected
            self._write(
                f"* joined {details.name} on {details.server_id} as "
                f"{details.player_id} ({details.players}/{details.capacity})"
            )
            if not self.joined.called:
                self.joined.callback(None)
        if message.HasField("game_config"):
            try:
                config = json.loads(message.game_config.content)
                self._write(f"* {config.get('arena', '')}: {config.get('motd', '')}")
            except (ValueError, AttributeError):
                pass
        if message.HasField("disconnect"):
            self._write(f"* moved: {message.disconnect.reason}")
        if message.HasField("said"):
            self._write(f"<{message.said.player_id}> {message.said.text}")


class LineInput(LineReceiver):
    """
    Reads what the person types, a line at a time, for L{ChatTerminal}.
    """

    delimiter = b"\n"

    def __init__(self, terminal: ChatTerminal, closed: Callable[[], None]) -> None:
        self._terminal = terminal
        self._closed = closed

    def lineReceived(self, line: bytes) -> None:
        """
        Called with each line typed: say it.
        """
        self._terminal.say(line.decode("utf-8", "replace"))

    def connectionLost(self, reason: Any = None) -> None:
        """
        Called when standard input closes: leave.
        """
        self._closed()
