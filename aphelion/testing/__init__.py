# -*- test-case-name: tests.test_testing -*-
"""
Public helpers for testing aphelion and subclasses of its protocols, in the
manner of C{treq.testing} and C{autobahn.twisted.testing}.

L{GameHarness} runs a game (its L{GameServerProtocol} subclass) against
L{FakePlayer}s, without sockets, for a game's own tests
(L{aphelion.testing.game}). L{RecordingClientProtocol} and
L{connectedToServer} test the WebSocket server (L{aphelion.testing.websocket}).
L{RecordingConnection}, L{Player}, L{RecordingPlayerLink}, L{FakeServer} and
L{FakeGameServerPool} are fakes of the gateway's contracts
(L{aphelion.testing.fakes}).
"""

from aphelion.testing.fakes import (
    FakeGameServerPool,
    FakeServer,
    Player,
    RecordingConnection,
    RecordingPlayerLink,
)
from aphelion.testing.game import FakePlayer, GameHarness
from aphelion.testing.websocket import RecordingClientProtocol, connectedToServer

__all__ = [
    "FakeGameServerPool",
    "FakePlayer",
    "FakeServer",
    "GameHarness",
    "Player",
    "RecordingClientProtocol",
    "RecordingConnection",
    "RecordingPlayerLink",
    "connectedToServer",
]
