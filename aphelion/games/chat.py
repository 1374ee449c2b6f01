# -*- test-case-name: tests.test_chat -*-
"""
A chat room: the smallest game, and the example of subclassing
L{GameServerProtocol}.

Its messages are in C{aphelion/proto/chat.proto}: a player sends
C{C2S{say: Say{text}}}, and every player of the game server, the sender
included, gets C{S2C{said: Said{player_id, text}}}. The config each player gets
after joining is JSON, C{{"arena": ..., "motd": ...}}, from the options
C{arena} and C{motd} of C{Control}.

Run it with C{python -m aphelion.game.child --game aphelion.games.chat}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from google.protobuf.message import DecodeError

from aphelion.game import DisconnectCode, Game, GameServerProtocol
from aphelion.proto.chat_pb2 import C2S, S2C, Said
from aphelion.proto.game_pb2 import GameConfig

__all__ = ["Chat", "ChatGame", "makeGame"]

MAX_TEXT = 500
"""
The most characters of one message that are passed on; the rest is cut.
"""


class Chat(GameServerProtocol):
    """
    One player in the chat room.
    """

    def messageReceived(self, payload: bytes) -> None:
        """
        Called with each C{C2S} of the player: a C{say} is broadcast as
        C{said}. A payload that does not parse gets the player kicked; one
        without C{say}, or with nothing to say, is ignored.
        """
        try:
            message = C2S.FromString(payload)
        except DecodeError:
            self.kick("malformed C2S", DisconnectCode.MALFORMED_MESSAGE)
            return
        text = message.say.text.strip()
        if not text:
            return
        said = S2C(said=Said(player_id=self.playerId, text=text[:MAX_TEXT]))
        self.broadcast(said.SerializeToString())


class ChatGame(Game):
    """
    The chat room's settings.
    """

    name = "chat"
    capacity = 64
    protocol = Chat

    def configure(self, options: Mapping[str, str], config: GameConfig | None) -> None:
        """
        Called with the operator's options: C{capacity} (default 64) sets
        how many players the room seats.
        """
        super().configure(options, config)
        if options.get("capacity", "").isdigit():
            self.capacity = int(options["capacity"])

    def gameConfig(self) -> GameConfig:
        """
        Called for each player who joins: the room's name and message of the
        day, as JSON.
        """
        content = {
            "arena": self.options.get("arena", "lobby"),
            "motd": self.options.get("motd", "Welcome to aphelion chat."),
        }
        return GameConfig(
            content_type="application/json",
            content=json.dumps(content).encode("utf-8"),
        )


def makeGame() -> ChatGame:
    """
    Make the chat game.
    """
    return ChatGame()
