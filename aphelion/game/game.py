# -*- test-case-name: tests.test_gameserver -*-
"""
L{Game}, what a game module's C{makeGame()} returns, and L{loadGame}, which
finds it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import ClassVar

from twisted.logger import Logger

from aphelion.control.protocol import EnvelopeProtocol
from aphelion.game.interfaces import IGameServer
from aphelion.proto.game_pb2 import GameConfig

__all__ = ["Game", "loadGame"]


class Game:
    """
    One game, as a game-server process runs it: its name, its capacity, its
    L{aphelion.game.player.GameServerProtocol} subclass and its config. A game module's
    C{makeGame()} returns one; the process makes one per run.

    :cvar name: the game's (or arena's) name, sent in C{Ready} and
        C{Connected}.
    :cvar capacity: how many players it seats. A game that changes it calls
        C{self.server.statusChanged()}.
    :cvar protocol: the L{aphelion.game.player.GameServerProtocol} subclass
        built for each player connection. Required.
    :ivar server: the L{IGameServer} running the game, once there is one
        (the L{aphelion.game.factory.GameServerFactory} sets it, as
        C{buildProtocol} sets a protocol's C{factory}): C{server.players},
        C{server.broadcast}, C{server.clock}.
    :ivar options: the options of the last C{Control}.
    :ivar config: the config of the last C{Control}, if it had one.
    """

    _log = Logger()

    name = "game"
    capacity = 16
    # A GameServerProtocol subclass; typed by its base so that this module
    # stays below the player protocol's (which knows its Game).
    protocol: ClassVar[type[EnvelopeProtocol]]

    server: IGameServer | None = None
    options: Mapping[str, str] = {}
    config: GameConfig | None = None

    def configure(self, options: Mapping[str, str], config: GameConfig | None) -> None:
        """
        Called when a control connection opens, with the options and config of
        its C{Control}, before C{Ready} is sent. The default stores them in
        L{options} and L{config}. An override that changes L{capacity} needs no
        more: C{Ready} reports it.

        :param options: the operator's options for this game server.
        :param config: the operator's config for the players, or L{None}.
        """
        self.options = dict(options)
        if config is not None:
            self.config = config

    def gameConfig(self) -> GameConfig:
        """
        Called for each player who joins: the config sent to it after
        C{Connected}. The default is the config of C{Control}, or an empty
        one.
        """
        return self.config if self.config is not None else GameConfig()

    def start(self) -> None:
        """
        Called when the game server starts listening (a good place to start a
        game loop on C{self.server.clock}). The default does nothing.
        """

    def stop(self) -> None:
        """
        Called when the game server stops listening. The default does nothing.
        """


def loadGame(moduleName: str) -> Game:
    """
    Import a game module and make its game.

    :param moduleName: a dotted module name, such as C{aphelion.games.chat}.
    :return: what the module's C{makeGame()} returns.
    :raises ImportError: if the module cannot be imported.
    :raises TypeError: if it has no C{makeGame()} or that returns no L{Game}.
    """
    module = importlib.import_module(moduleName)
    makeGame = getattr(module, "makeGame", None)
    if not callable(makeGame):
        raise TypeError(f"game module {moduleName} has no makeGame()")
    game = makeGame()
    if not isinstance(game, Game):
        raise TypeError(f"{moduleName}.makeGame() returned {game!r}, not a Game")
    return game
