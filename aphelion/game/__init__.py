# -*- test-case-name: tests.test_gameserver -*-
"""
The game side of Part 2: what runs inside a game-server process.

A game is a module that exposes a function C{makeGame()} returning a L{Game}.
The L{Game} names the game, says how many players it seats and which
L{GameServerProtocol} subclass plays each of them::

    # mygame.py
    from aphelion.game import Game, GameServerProtocol

    class Arena(GameServerProtocol):
        def playerJoined(self, playerId: str, attributes: dict[str, str]) -> None:
            if attributes.get("banned"):
                self.reject(100, "banned")

        def messageReceived(self, payload: bytes) -> None:
            self.broadcast(payload)

    class ArenaGame(Game):
        name = "arena"
        capacity = 32
        protocol = Arena

    def makeGame() -> ArenaGame:
        return ArenaGame()

C{python -m aphelion.game.child --game mygame} runs it (that is what the
AuthProxy spawns for C{twistd aphelion --game mygame}); L{loadGame} is how the
module is found. C{aphelion.games.chat} and C{aphelion.games.echo} are small
examples.

Every TCP connection to the game server starts with a
L{aphelion.game.router.GameServerRouter}; its first envelope decides what it
is (Part 2.2): C{Control} hands it to a
L{aphelion.game.control.GameControlProtocol}, the control connection, which
answers C{Ready}, reports C{Status} and exchanges heartbeats; C{Type{CLIENT}}
hands it to the game's L{GameServerProtocol} subclass, a player connection,
which waits for C{ClientAuth} and then calls the game's hooks. Anything else
first is C{Error{4}}. The game's subclass is built for player connections
only; still, games use L{GameServerProtocol.playerJoined} and
L{GameServerProtocol.playerLeft}, which are about the player's seat, rather
than C{connectionMade} and C{connectionLost}.

The modules: L{aphelion.game.game} (L{Game}, L{loadGame}),
L{aphelion.game.player} (L{GameServerProtocol}), L{aphelion.game.control},
L{aphelion.game.router}, L{aphelion.game.factory} (L{GameServerFactory}),
L{aphelion.game.interfaces} (L{IGameServer}, what a game sees of its server)
and L{aphelion.game.child}, the process. L{aphelion.testing.GameHarness}
runs a game against fake players, for a game's own tests.

Where the contract is silent:

- After C{Rejected} the game server closes the connection.
- C{Rejected} and C{Disconnect} codes of the game server are
  L{RejectCode} and L{DisconnectCode}; games use codes from 100 up for their
  own. C{Disconnect{SHUTTING_DOWN}} (1) means "seat this player elsewhere";
  any other C{Disconnect} from the game server is a kick.
- A second player connection with a player ID that is already seated
  replaces the first one, which gets C{Disconnect{REPLACED}} (the newest login
  wins, as in Part 1.4).
- An empty player ID is refused with C{Rejected{INVALID_PLAYER}}.
- C{ClientAuth} must follow C{Type{CLIENT}} within
  L{GameServerProtocol.clientAuthTimeout} seconds, else C{Error{7}}.
- C{Status} is sent right after every C{Ready}, and then at the end of each
  reactor turn in which players, capacity or accepting changed.
- C{Shutdown{deadline_ms = 0}} means the default deadline,
  L{GameServerFactory.defaultShutdownDeadline}. The drain sends
  C{Disconnect{SHUTTING_DOWN, reason}} to every player at once, closes the
  control connection once every other connection is closed, and finishes then
  or at the deadline (aborting whatever is still open), whichever is first.
- A player connection on which more than
  L{GameServerFactory.playerWriteLimit} bytes wait unsent (the AuthProxy
  stopped reading it: its player reads too slowly) gets
  C{Disconnect{KICKED, "reads too slowly"}} and is aborted, that one only;
  the player leaves (L{GameServerProtocol.playerLeft}). The C{Disconnect}
  joins the queue that is dropped, so the AuthProxy mostly sees the
  connection reset.
- An exception from a hook is logged with its traceback; from
  L{GameServerProtocol.playerJoined} the player gets
  C{Rejected{INTERNAL_ERROR}}, from L{GameServerProtocol.messageReceived} it
  is kicked with C{Disconnect{INTERNAL_ERROR}}.
"""

from __future__ import annotations

from aphelion.codes import DisconnectCode, RejectCode
from aphelion.game.factory import PLAYER_WRITE_LIMIT, GameServerFactory
from aphelion.game.game import Game, loadGame
from aphelion.game.interfaces import IGameServer
from aphelion.game.player import GameServerProtocol

__all__ = [
    "PLAYER_WRITE_LIMIT",
    "DisconnectCode",
    "Game",
    "GameServerFactory",
    "GameServerProtocol",
    "IGameServer",
    "RejectCode",
    "loadGame",
]
