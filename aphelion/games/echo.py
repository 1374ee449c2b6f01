# -*- test-case-name: tests.test_chat -*-
"""
An echo game for benchmarks: every game message goes back to its sender,
verbatim, so a client measures the round trip through the AuthProxy and a
game server without any game logic.

Run it with C{python -m aphelion.game.child --game aphelion.games.echo}.
"""

from __future__ import annotations

from aphelion.game import Game, GameServerProtocol
from aphelion.proto.game_pb2 import GameConfig

__all__ = ["Echo", "EchoGame", "makeGame"]


class Echo(GameServerProtocol):
    """
    One player whose messages come back to it.
    """

    def messageReceived(self, payload: bytes) -> None:
        """
        Called with each game message of the player: sends it back.
        """
        self.send(payload)


_CONFIG = GameConfig(content_type="application/octet-stream")


class EchoGame(Game):
    """
    The echo game's settings: room for many players, an empty config.
    """

    name = "echo"
    capacity = 10000

    protocol = Echo

    def gameConfig(self) -> GameConfig:
        """
        Called for each player who joins: an empty config, the same one for
        every player (made once: the game server only serializes it).
        """
        return _CONFIG


def makeGame() -> EchoGame:
    """
    Make the echo game.
    """
    return EchoGame()
