# -*- test-case-name: tests.test_gateway -*-
"""
The cluster's hooks of the gateway (Part 5.2), one part of
L{aphelion.gateway.Gateway}: a registry on a shared store calls them when a
session moves to another node (L{Handover.moved}) or comes to this one
(L{Handover.resumed}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from aphelion import actions as A
from aphelion.codes import DisconnectCode
from aphelion.interfaces import IGameServerPool, IPooledServer
from aphelion.seat import Seat
from aphelion.seating import SeatingMachine
from aphelion.session import Session

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.internet.defer import Deferred

__all__ = ["Handover"]


class Handover:
    """
    The cluster's hooks of a L{aphelion.gateway.Gateway}, which mixes this
    in and provides what is declared here.
    """

    _log = Logger()

    if TYPE_CHECKING:
        _monitor: IGameServerPool | None
        _connectLink: Callable[[IPooledServer, Seat], None] | None

        def _machineOf(self, session: Session) -> SeatingMachine[Seat]: ...

        def _carryOut(
            self, session: Session, actions: list[A.Action[Seat]]
        ) -> Deferred[Any] | None: ...

        def _pick(self, session: Session, action: A.Pick) -> None: ...

    def moved(self, session: Session) -> None:
        """
        Called when the session moves to another node, before the registry
        ends it here with 4010: tell its game server C{Disconnect{MOVED}},
        so that it holds the seat for the new node.
        """
        machine = session.seating
        seat = machine.seat if machine is not None else None
        if seat is not None and seat.link is not None:
            if self._monitor is not None:
                self._monitor.linkRemoved(seat.server, seat.link)
            seat.link.disconnect(DisconnectCode.MOVED, "session moved")

    def resumed(self, session: Session, serverId: str) -> None:
        """
        Called when the session was handed over to this node: take its seat
        back on the game server C{serverId} with C{ClientAuth{resumed}}, or
        seat it anew when that server is gone (or there was none). What the
        client sends meanwhile is held until it is seated.
        """
        machine = self._machineOf(session)
        self._carryOut(session, machine.resumed())
        find = getattr(self._monitor, "find", None)
        if not serverId or find is None or self._connectLink is None:
            self._resumeOn(None, session)
            return
        d = find(serverId)
        d.addCallback(self._resumeOn, session)
        d.addErrback(
            lambda f: self._log.failure(
                "session {hint}: resuming the seat failed", f, hint=session.hint
            )
        )

    def _resumeOn(self, server: IPooledServer | None, session: Session) -> None:
        machine = self._machineOf(session)
        if session.ended or not machine.picking:
            return
        if server is None:
            self._pick(session, A.Pick(frozenset()))
            return
        seat = Seat(self._carryOut, session, machine, server, resumed=True)
        self._carryOut(session, machine.serverPicked(seat, server))
