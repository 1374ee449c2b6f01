# -*- test-case-name: tests.test_admin -*-
"""
What the admin endpoint shows, read from the live objects when asked:
L{ProxyView}. Nothing is kept up to date per event; a scrape or an API call
walks the connections and game servers (thousands of objects at most, once
a second at most).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime

from aphelion.admin.lifecycle import Lifecycle
from aphelion.control.servers import GameServer, ServerState
from aphelion.seating import SessionState
from aphelion.session import Session
from aphelion.stats import OTHER_CODE, Stats, Traffic

if TYPE_CHECKING:
    from aphelion.control.spawn import GameServerMonitor
    from aphelion.gateway import Gateway
    from aphelion.websocket import AphelionServerFactory

__all__ = ["CONNECTION_KINDS", "SESSION_STATES", "ProxyView"]

#: The kinds of client connection counted: by protocol, or still opening
#: (no init packet yet).
CONNECTION_KINDS = ("ping", "game", "opening")

#: The states of a session counted: where it is in the game protocol, or
#: lingering without a connection.
SESSION_STATES = (
    *(state.value for state in SessionState if state is not SessionState.ENDED),
    "lingering",
)


class ProxyView:
    """
    The AuthProxy's parts, and what an operator asks of them.

    :ivar factory: the players' WebSocket factory (its connections).
    :ivar monitor: the game servers.
    :ivar gateway: ends sessions.
    :ivar lifecycle: whether the AuthProxy is draining.
    :ivar stats: the running counts.
    :ivar clock: the clock.
    """

    def __init__(
        self,
        *,
        factory: AphelionServerFactory,
        monitor: GameServerMonitor,
        gateway: Gateway,
        lifecycle: Lifecycle,
        clock: IReactorTime,
    ) -> None:
        self.factory = factory
        self.monitor = monitor
        self.gateway = gateway
        self.lifecycle = lifecycle
        self.stats: Stats = factory.stats
        self.clock = clock

    # -- counts ----------------------------------------------------------------

    def connections(self) -> dict[str, int]:
        """
        The open client connections, by kind (L{CONNECTION_KINDS}).
        """
        byProtocol: dict[Any, int] = {}
        for connection in self.factory.connections:
            protocol = connection.protocol
            byProtocol[protocol] = byProtocol.get(protocol, 0) + 1
        counts = dict.fromkeys(CONNECTION_KINDS, 0)
        for protocol, count in byProtocol.items():
            kind = "opening" if protocol is None else protocol.name.lower()
            counts[kind] = counts.get(kind, 0) + count
        return counts

    def liveSessions(self) -> list[Session]:
        """
        The sessions that have a connection here, each once.
        """
        sessions = {connection.session for connection in self.factory.connections}
        sessions.discard(None)
        return [
            session for session in sessions if session is not None and not session.ended
        ]

    def sessions(self) -> dict[str, int]:
        """
        The sessions by state (L{SESSION_STATES}); those without a
        connection here are C{lingering}.
        """
        live = self.liveSessions()
        byState: dict[Any, int] = {}
        for session in live:
            seating = session.seating
            state = None if seating is None else seating.state
            byState[state] = byState.get(state, 0) + 1
        counts = dict.fromkeys(SESSION_STATES, 0)
        for state, count in byState.items():
            name = SessionState.UNAUTHENTICATED.value if state is None else state.value
            counts[name] = counts.get(name, 0) + count
        registry: Any = self.factory.registry
        try:
            total = len(registry)
        except TypeError:
            total = len(live)  # a shared registry does not count them here
        counts["lingering"] = max(0, total - len(live))
        return counts

    def serverStates(self) -> dict[str, int]:
        """
        The game servers by state.
        """
        counts = {state.value: 0 for state in ServerState}
        for server in self.monitor.servers.values():
            counts[server.state.value] += 1
        return counts

    def restarts(self, server: GameServer) -> int:
        """
        How many times C{server} was started again (after a crash, or by
        an operator).
        """
        return max(0, server.generation - 1)

    def traffic(self) -> Traffic:
        """
        Every message and byte from and to clients so far.
        """
        return self.stats.traffic(self.factory.connections)

    # -- readiness -------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        """
        Whether the AuthProxy should be sent new players: it is not
        draining and a game server has room.

        :return: C{(ready, reason)}; the reason says why not.
        """
        if self.lifecycle.draining:
            return False, f"draining: {self.lifecycle.drainReason}"
        if self.monitor.pick() is None:
            states = ", ".join(
                f"{server.serverId} {server.state.value}"
                for server in self.monitor.servers.values()
            )
            return False, f"no game server can take players ({states or 'none'})"
        return True, "ok"

    # -- players ---------------------------------------------------------------

    def seatedOn(self, server: GameServer) -> list[dict[str, Any]]:
        """
        The players this AuthProxy seated on C{server}.
        """
        players = []
        for link in list(self.monitor.linksOf(server)):
            session = getattr(getattr(link, "seat", None), "session", None)
            if not isinstance(session, Session) or session.playerId is None:
                continue
            identity = session.identity
            players.append(
                {
                    "playerId": session.playerId,
                    "name": getattr(identity, "name", "") or session.playerId,
                    "session": session.hint,
                    "address": session.address,
                    "connections": len(session.connections),
                }
            )
        players.sort(key=lambda player: str(player["playerId"]))
        return players

    def servers(self) -> list[dict[str, Any]]:
        """
        Every game server, with its players.
        """
        return [
            {
                "id": server.serverId,
                "state": server.state.value,
                "name": server.name,
                "remote": server.remote,
                "accepting": server.accepting,
                "capacity": server.capacity,
                "players": server.players,
                "restarts": self.restarts(server),
                "seated": self.seatedOn(server),
            }
            for server in self.monitor.servers.values()
        ]

    def sessionsOf(self, playerId: str) -> list[Session]:
        """
        The sessions logged in here as C{playerId}.
        """
        return [
            session for session in self.liveSessions() if session.playerId == playerId
        ] or [
            session
            for server in self.monitor.servers.values()
            for session in self._seatedSessions(server)
            if session.playerId == playerId
        ]

    def _seatedSessions(self, server: GameServer) -> list[Session]:
        sessions = []
        for link in list(self.monitor.linksOf(server)):
            session = getattr(getattr(link, "seat", None), "session", None)
            if isinstance(session, Session) and not session.ended:
                sessions.append(session)
        return sessions

    def kick(self, playerId: str, reason: str) -> int:
        """
        End every session of C{playerId}: C{S2C{disconnect}} with
        C{reason}, then close 4009.

        :return: how many sessions were ended.
        """
        sessions = self.sessionsOf(playerId)
        for session in sessions:
            self.gateway.kick(session, reason)
        return len(sessions)

    # -- the dashboard ---------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        """
        Everything the dashboard shows, in one JSON-ready dictionary.
        """
        stats = self.stats
        traffic = self.traffic()
        ready, why = self.readiness()
        return {
            "time": self.clock.seconds(),
            "ready": ready,
            "readyReason": why,
            "draining": self.lifecycle.draining,
            "drainReason": self.lifecycle.drainReason,
            "connections": self.connections(),
            "sessions": self.sessions(),
            "servers": self.servers(),
            "packets": {"in": traffic.packetsIn, "out": traffic.packetsOut},
            "bytes": {"in": traffic.bytesIn, "out": traffic.bytesOut},
            "closes": {
                str(code) if code != OTHER_CODE else "other": count
                for code, count in sorted(stats.closes.items())
            },
            "recentCloses": [
                {"time": close.when, "code": close.code, "reason": close.reason}
                for close in reversed(stats.recentCloses)
            ],
            "logins": dict(sorted(stats.logins.items())),
        }
