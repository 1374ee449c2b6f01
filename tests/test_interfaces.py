# -*- test-case-name: tests.test_interfaces -*-
"""
Every implementation of a contract in L{aphelion.interfaces} provides it
(C{verifyObject}), and the package has no import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

import aphelion
from aphelion.auth import DatabaseChecker, PlayerIdentity, TicketChecker
from aphelion.control.proxy import ControlClientProtocol, PlayerLinkProtocol
from aphelion.control.spawn import GameServer, GameServerMonitor
from aphelion.gateway import Gateway, Seat
from aphelion.interfaces import (
    IConnection,
    IControlConnection,
    IGameServerPool,
    IPlayer,
    IPlayerLink,
    IPooledServer,
    IReactorUser,
    ISeat,
    ISessionRegistry,
)
from aphelion.seating import SeatingMachine, SeatingRules
from aphelion.session import MemorySessionRegistry
from aphelion.testing import (
    FakeGameServerPool,
    FakeServer,
    Player,
    RecordingConnection,
    RecordingPlayerLink,
)
from aphelion.websocket import AphelionServerProtocol


class ImplementationTests(SynchronousTestCase):
    """
    Each implementation, and each public fake, provides its interface.
    """

    def test_connection(self) -> None:
        """
        The WebSocket protocol and L{RecordingConnection} are L{IConnection}s.
        """
        verifyClass(IConnection, AphelionServerProtocol)
        verifyObject(IConnection, RecordingConnection())

    def test_registry(self) -> None:
        """
        L{MemorySessionRegistry} is an L{ISessionRegistry}.
        """
        verifyObject(ISessionRegistry, MemorySessionRegistry(clock=Clock()))

    def test_player(self) -> None:
        """
        L{aphelion.testing.Player} and the realm's L{PlayerIdentity} are
        L{IPlayer}s.
        """
        verifyObject(IPlayer, Player("alice"))
        verifyObject(IPlayer, PlayerIdentity("alice", "Alice"))

    def test_playerLink(self) -> None:
        """
        L{PlayerLinkProtocol} and L{RecordingPlayerLink} are L{IPlayerLink}s.
        """
        verifyClass(IPlayerLink, PlayerLinkProtocol)
        verifyObject(IPlayerLink, RecordingPlayerLink(None))

    def test_seat(self) -> None:
        """
        The gateway's L{Seat} is an L{ISeat}.
        """
        registry = MemorySessionRegistry(clock=Clock())
        gateway = Gateway(registry=registry)
        session = self.successResultOf(registry.open(None, RecordingConnection()))
        machine: SeatingMachine[Seat] = SeatingMachine(SeatingRules())
        verifyObject(
            ISeat, Seat(gateway._carryOut, session, machine, FakeServer("gs1"))
        )

    def test_pool(self) -> None:
        """
        L{GameServerMonitor} and L{FakeGameServerPool} are
        L{IGameServerPool}s; their servers are L{IPooledServer}s.
        """
        monitor = GameServerMonitor(
            reactor=MemoryReactorClock(),
            game="aphelion.games.chat",
            count=1,
            makeControlFactory=lambda monitor, server: None,
        )
        verifyObject(IGameServerPool, monitor)
        verifyObject(IPooledServer, GameServer("gs1", b"t" * 32))
        verifyObject(IGameServerPool, FakeGameServerPool("gs1"))
        verifyObject(IPooledServer, FakeServer("gs1"))

    def test_control(self) -> None:
        """
        L{ControlClientProtocol} is an L{IControlConnection}.
        """
        verifyClass(IControlConnection, ControlClientProtocol)

    def test_reactorUsers(self) -> None:
        """
        The checkers that need the reactor are L{IReactorUser}s.
        """
        verifyClass(IReactorUser, DatabaseChecker)
        verifyClass(IReactorUser, TicketChecker)


class ImportCycleTests(SynchronousTestCase):
    """
    No module of aphelion imports itself through others, type-only imports
    included (STYLE §1).
    """

    def graph(self) -> dict[str, set[str]]:
        """
        Each module of aphelion, and the modules of aphelion it imports.
        """
        root = Path(aphelion.__file__).parent
        modules: dict[str, Path] = {}
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
        graph: dict[str, set[str]] = {}
        for name, path in modules.items():
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            deps: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        up = package.split(".")[
                            : len(package.split(".")) - node.level + 1
                        ]
                        base = ".".join(up + ([base] if base else []))
                    targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
                else:
                    continue
                for target in targets:
                    while target and target not in modules:
                        target = target.rpartition(".")[0]
                    if target and target not in (name, "aphelion"):
                        deps.add(target)
            graph[name] = deps
        return graph

    def test_noCycle(self) -> None:
        """
        Following imports from any module never leads back to it.
        """
        graph = self.graph()
        cycles = []
        for start in graph:
            seen: set[str] = set()
            todo = list(graph[start])
            while todo:
                module = todo.pop()
                if module == start:
                    cycles.append(start)
                    break
                if module not in seen:
                    seen.add(module)
                    todo.extend(graph.get(module, ()))
        self.assertEqual(cycles, [])
