# -*- test-case-name: tests.test_gateway -*-
"""
The game protocol of a session as the AuthProxy sees it (Part 1.6): the
adapter between the session's connections, the checker, the session registry
and the game servers on one side, and its L{SeatingMachine} on the other.

The transport hands every game payload of a session to L{Gateway}, from
whichever of the session's connections it came. The gateway feeds it, and
everything else that happens to the session, to the session's
L{SeatingMachine} as events, and carries out the actions the machine returns.
A L{Seat} ties a session to its player connection on a game server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion import actions as A
from aphelion.auth import CheckerBusy
from aphelion.codes import CloseCode, DisconnectCode
from aphelion.interfaces import (
    IConnection,
    IGameServerPool,
    IPlayer,
    IPooledServer,
    ISessionRegistry,
)
from aphelion.limits import Exemptions, safeText
from aphelion.logins import BUSY, THROTTLED, LoginThrottle, accountOf
from aphelion.logthrottle import ThrottledLog
from aphelion.proto.game_pb2 import S2C, AuthenticateResponse
from aphelion.replies import authenticateResponse, disconnectNotice, legacyResult
from aphelion.seat import Seat
from aphelion.seating import (
    MAX_ID_BYTES,
    CheckFailure,
    SeatingMachine,
    SeatingRules,
    SessionState,
    validPlayerId,
)
from aphelion.session import Session, SessionFull
from aphelion.stats import Stats

__all__ = [
    "MAX_ID_BYTES",
    "Gateway",
    "Seat",
    "SessionState",
    "accountOf",
]


Authenticator = Callable[[str], "Deferred[Any]"]
LinkConnector = Callable[[IPooledServer, "Seat"], None]
_Handler = Callable[[Session, Any], "Deferred[Any] | None"]


class Gateway:
    """
    Acts on the game payloads of every session: authenticates, seats and
    relays, as each session's L{SeatingMachine} decides.

    :ivar rules: the limits the machines apply (authentication tries,
        payloads held while seating).
    :ivar refuseNewcomer: answer C{ID_IN_USE} to a second login of a player
        instead of ending the first session.
    :ivar legacy: send results 5-8 of C{AuthenticateResponse} as C{OTHER}
        with the real result in the description (Part 1.7).
    :ivar stats: where logins and seating times are counted.
    """

    _log = Logger()

    def __init__(
        self,
        *,
        registry: ISessionRegistry,
        authenticator: Authenticator | None = None,
        monitor: IGameServerPool | None = None,
        connectLink: LinkConnector | None = None,
        authTries: int = 3,
        refuseNewcomer: bool = False,
        clock: IReactorTime | None = None,
        loginsPerMinute: float = 10.0,
        checksPerAddress: int = 2,
        exempt: Exemptions | None = None,
        legacy: bool = False,
        seatingBuffer: int = 64,
        seatingBufferBytes: int = 256 * 1024,
        logInterval: float = 10.0,
        stats: Stats | None = None,
    ) -> None:
        """
        :param monitor: the game servers.
        :param authTries: authentication failures allowed per connection;
            the last one closes it with 4008.
        :param clock: the clock of the login throttles and of the summary
            log lines; without one, logins are not throttled.
        :param loginsPerMinute: authentication tries per minute per client
            address (outside C{exempt}) and per account.
        :param checksPerAddress: credential checks of one client address
            (outside C{exempt}) running at once; one more is answered
            C{OTHER} "busy, try again later". 0 is no limit.
        :param seatingBuffer: payloads a client may send while being seated
            or moved; one more closes that connection with 4007.
        :param seatingBufferBytes: bytes a client may send while being
            seated or moved.
        :param stats: where to count logins and seating times; a new
            L{Stats} by default.
        """
        self.stats = Stats() if stats is None else stats
        self._clock = clock
        # When each seating in progress began, and the last one over.
        self._seatingSince: dict[Seat, float] = {}
        self._lastOver: tuple[Seat, float] | None = None
        self._registry = registry
        self._authenticate = authenticator
        self._monitor = monitor
        self._connectLink = connectLink
        self.rules = SeatingRules(
            authTries=authTries,
            heldPackets=seatingBuffer,
            heldBytes=seatingBufferBytes,
        )
        self.refuseNewcomer = refuseNewcomer
        self.legacy = legacy
        self._throttle = (
            ThrottledLog(self._log, clock=clock, interval=logInterval)
            if clock is not None
            else None
        )
        self._logins = LoginThrottle(
            clock=clock,
            loginsPerMinute=loginsPerMinute,
            checksPerAddress=checksPerAddress,
            exempt=exempt or Exemptions(),
            warn=self._warnThrottled,
        )
        # The answers a flood gets, made once.
        self._responses: dict[tuple[int, str], bytes] = {
            key: self.response(*key)
            for key in (
                (AuthenticateResponse.NOT_AUTHENTICATED, "authenticate first"),
                (AuthenticateResponse.OTHER, "authentication in progress"),
                (AuthenticateResponse.OTHER, "busy, try again later"),
                (
                    AuthenticateResponse.AUTH_METHOD_UNSUPPORTED,
                    "no authentication is configured",
                ),
            )
        }
        self._actions: dict[
            type[Any], Callable[[Session, Any], Deferred[Any] | None]
        ] = {
            A.Reply: self._reply,
            A.Notify: self._notify,
            A.Close: self._close,
            A.Malformed: self._malformed,
            A.Check: self._check,
            A.Bind: self._bind,
            A.Authenticated: self._authenticated,
            A.Unbind: self._unbind,
            A.Pick: self._pick,
            A.SeatingBegun: self._seatingBegun,
            A.SeatingOver: self._seatingOver,
            A.Seated: self._seated,
            A.Refused: self._refused,
            A.Relay: self._relay,
            A.DisconnectLink: self._disconnectLink,
            A.LinkGone: self._linkGone,
            A.MoveNotice: self._moveNotice,
            A.Moved: self._moved,
            A.Pin: self._pin,
            A.End: self._end,
            A.EndWithNotice: self._endWithNotice,
        }
        if monitor is not None:
            monitor.addLostObserver(self._serverLost)

    def response(self, result: int, description: str = "") -> bytes:
        """
        A serialized C{S2C{authenticate_response}}; in the legacy profile,
        results the original client does not know are sent as C{OTHER} with
        the real one named in the description.
        """
        if self.legacy:
            result, description = legacyResult(result, description)
        return authenticateResponse(result, description)

    def _response(self, result: int, description: str) -> bytes:
        made = self._responses.get((result, description))
        return made if made is not None else self.response(result, description)

    @property
    def logins(self) -> LoginThrottle:
        """
        The login throttles (their limits are set by a reload).
        """
        return self._logins

    def setAuthenticator(self, authenticator: Any) -> None:
        """
        Check the logins from now on with C{authenticator} (a reload of
        C{--auth}); the checks in flight end with the one they started on.
        """
        self._authenticate = authenticator

    def stop(self) -> None:
        """
        Called when the AuthProxy stops: cancel the summary log timers.
        """
        if self._throttle is not None:
            self._throttle.stop()

    def _warnThrottled(self, cause: str, format: str, **kwargs: Any) -> None:
        if self._throttle is not None:
            self._throttle.warn(cause, format, **kwargs)
        else:
            self._log.warn(format, cause=cause, **kwargs)

    def _machineOf(self, session: Session) -> SeatingMachine[Seat]:
        machine = session.seating
        if machine is None:
            machine = session.seating = SeatingMachine(self.rules)
            session.addEndObserver(self._sessionEnded)
        return machine

    def _carryOut(
        self, session: Session, actions: list[A.Action[Seat]]
    ) -> Deferred[Any] | None:
        """
        Carry out the actions of a L{SeatingMachine}, in order.

        :return: the L{Deferred} of the registry call of a L{Bind}, if any.
        """
        waiting = None
        for action in actions:
            result = self._actions[type(action)](session, action)
            if result is not None:
                waiting = result
        return waiting

    # -- from the transport ------------------------------------------------------

    def payloadReceived(
        self, session: Session, connection: IConnection, payload: bytes
    ) -> None:
        """
        Called with each non-empty game payload that a session's connection
        received.
        """
        machine = session.seating
        if machine is not None:
            seat = machine.seat
            if seat is not None and seat.link is not None:  # the hot path: relay
                seat.link.sendGameData(payload)
                return
        else:
            machine = self._machineOf(session)
        self._carryOut(session, machine.receive(connection, payload))

    def connectionPaused(self, session: Session, connection: IConnection) -> None:
        """
        Called when a client connection's send buffer is full.
        """
        machine = session.seating
        if machine is not None and machine.seat is not None:
            machine.seat.clientPaused(connection)

    def connectionResumed(self, session: Session, connection: IConnection) -> None:
        """
        Called when a client connection's send buffer drained.
        """
        machine = session.seating
        if machine is not None and machine.seat is not None:
            machine.seat.clientResumed(connection)

    # -- authentication --------------------------------------------------------

    def _check(self, session: Session, action: A.Check) -> None:
        connection: IConnection = action.connection  # type: ignore[assignment]
        playerId = action.playerId
        if self._authenticate is None:
            self.stats.login("unsupported")
            self._reply(
                session,
                A.Reply(
                    connection,
                    AuthenticateResponse.AUTH_METHOD_UNSUPPORTED,
                    "no authentication is configured",
                ),
            )
            return
        address = str(connection.remoteAddress)
        refused = self._logins.begin(address, playerId, session.hint)
        if refused is not None:
            self.stats.login(refused)
        if refused == BUSY:
            connection.sendPayload(
                self._response(AuthenticateResponse.OTHER, "busy, try again later")
            )
            return
        if refused == THROTTLED:
            connection.sendPayload(
                self.response(
                    AuthenticateResponse.TOO_MANY_ATTEMPTS,
                    "too many logins, try again later",
                )
            )
            return
        self._machineOf(session).checkStarted(connection)
        if validPlayerId(playerId):
            d = self._authenticate(playerId)
        else:
            d = fail(
                UnauthorizedLogin(
                    "ID empty, longer than 1024 bytes or with control characters"
                )
            )
        d.addBoth(self._logins.end, address)
        # A failure of the checker is the player's (or the database's); one
        # raised while seating is ours, and closes with 1011.
        d.addCallbacks(
            self._checkSucceeded,
            self._checkFailed,
            callbackArgs=(session,),
            errbackArgs=(session, connection),
        )
        d.addErrback(self._internalError, session, connection)

    def _checkFailed(
        self, failure: Failure, session: Session, connection: IConnection
    ) -> None:
        if failure.check(UnhandledCredentials):
            why = CheckFailure.UNSUPPORTED
        elif failure.check(CheckerBusy):
            why = CheckFailure.BUSY
        elif failure.check(UnauthorizedLogin):
            why = CheckFailure.UNAUTHORIZED
        else:
            why = CheckFailure.BROKEN
        self.stats.login(why.value)
        machine = self._machineOf(session)
        actions = machine.checkFailed(why)
        if not actions:
            return
        if why is CheckFailure.BUSY:
            self._warnThrottled(
                "checker busy",
                "session {hint}: the checker is busy; login refused",
                hint=session.hint,
            )
        elif why is CheckFailure.BROKEN:
            self._log.failure(
                "session {hint}: the checker failed", failure, hint=session.hint
            )
        elif why is CheckFailure.UNAUTHORIZED:
            self._warnThrottled(
                "failed login",
                "session {hint}: authentication failed from {peer} "
                "({failures} of {tries})",
                hint=session.hint,
                peer=connection.remoteAddress,
                failures=machine.failures(connection),
                tries=self.rules.authTries,
            )
        self._carryOut(session, actions)

    def _checkSucceeded(
        self, player: IPlayer, session: Session
    ) -> Deferred[Any] | None:
        self.stats.login("ok")
        return self._carryOut(session, self._machineOf(session).checked(player))

    def _bind(self, session: Session, action: A.Bind) -> Deferred[None]:
        player: IPlayer = action.player  # type: ignore[assignment]
        d = self._registry.authenticate(
            session, player.playerId, refuse=self.refuseNewcomer
        )
        d.addCallback(self._bound, player, session)
        return d.addErrback(self._bindFailed, session)

    def _bindFailed(self, failure: Failure, session: Session) -> None:
        # A registry on a shared store that cannot be reached (Part 5.2):
        # try again later.
        failure.trap(SessionFull)
        self._log.info(
            "session {hint}: login refused: {why}",
            hint=session.hint,
            why=failure.getErrorMessage(),
        )
        self._end(session, A.End(CloseCode.TRY_AGAIN_LATER, failure.getErrorMessage()))

    def _bound(self, other: Session | None, player: IPlayer, session: Session) -> None:
        refused = other is not None and self.refuseNewcomer
        if other is not None and not refused:
            self._endWithNotice(other, A.EndWithNotice("logged in elsewhere"))
        self._carryOut(session, self._machineOf(session).bound(player, refused))

    def _authenticated(self, session: Session, action: A.Authenticated) -> None:
        player: IPlayer = action.player  # type: ignore[assignment]
        # Not logged: the seat's line (or the refusal's) names the player,
        # and twistd writes debug lines too.
        session.identity = player

    def _unbind(self, session: Session, action: A.Unbind) -> None:
        session.identity = None
        if session.playerId is not None:
            self._noted(self._registry.unbind(session), "unbind")

    # -- answers to the client ---------------------------------------------------

    def _reply(self, session: Session, action: A.Reply) -> None:
        connection: IConnection = action.connection  # type: ignore[assignment]
        connection.sendPayload(self._response(action.result, action.description))

    def _notify(self, session: Session, action: A.Notify) -> None:
        session.send(self._response(action.result, action.description))

    def _close(self, session: Session, action: A.Close) -> None:
        connection: IConnection = action.connection  # type: ignore[assignment]
        connection.closeWith(action.code, action.reason)

    def _malformed(self, session: Session, action: A.Malformed) -> None:
        connection: IConnection = action.connection  # type: ignore[assignment]
        self._warnThrottled(
            "malformed C2S",
            "session {hint}: malformed C2S payload from {peer}",
            hint=session.hint,
            peer=connection.remoteAddress,
        )
        connection.closeWith(CloseCode.MALFORMED_PACKET, "malformed C2S")

    def _pin(self, session: Session, action: A.Pin) -> None:
        session.pinned = action.pinned

    # -- seating ---------------------------------------------------------------

    def _pick(self, session: Session, action: A.Pick) -> None:
        machine = self._machineOf(session)
        pool = self._monitor
        # Each server gets one try per seating, so that failing servers are
        # not tried in turn for ever.
        server = pool.pick(action.exclude) if pool is not None else None
        if server is None or self._connectLink is None:
            self._carryOut(session, machine.noServer())
        else:
            seat = Seat(self._carryOut, session, machine, server)
            self._carryOut(session, machine.serverPicked(seat, server))

    def _seatingBegun(self, session: Session, action: A.SeatingBegun[Seat]) -> None:
        seat = action.seat
        if self._clock is not None:
            self._seatingSince[seat] = self._clock.seconds()
        if self._monitor is not None:
            self._monitor.seatingStarted(seat.server)
        assert self._connectLink is not None
        self._connectLink(seat.server, seat)

    def _seatingOver(self, session: Session, action: A.SeatingOver[Seat]) -> None:
        began = self._seatingSince.pop(action.seat, None)
        # Seated, if it comes, is the next action.
        self._lastOver = None if began is None else (action.seat, began)
        if self._monitor is not None:
            self._monitor.seatingEnded(action.seat.server)

    def _seated(self, session: Session, action: A.Seated[Seat]) -> None:
        seat = action.seat
        over, self._lastOver = self._lastOver, None
        if over is not None and over[0] is seat and self._clock is not None:
            self.stats.seated(self._clock.seconds() - over[1])
        if self._monitor is not None and seat.link is not None:
            self._monitor.linkAdded(seat.server, seat.link)
        self._noted(self._registry.seat(session, seat), "seat")
        identity = session.identity
        self._log.info(
            "session {hint} ({playerId}) seated on {serverId}",
            hint=session.hint,
            playerId=safeText(identity.playerId) if identity is not None else "-",
            serverId=seat.server.serverId,
        )
        if seat.resumed:
            # Handed over: the client was seated all along.
            return
        response = S2C(connected=seat.details)
        if action.greet:
            response.authenticate_response.result = AuthenticateResponse.OK
        session.send(response.SerializeToString())

    def _refused(self, session: Session, action: A.Refused[Seat]) -> None:
        self._logSeat(
            "session {hint} ({playerId}) rejected by {serverId}: {code} {reason}",
            action.seat,
            code=action.code,
            reason=action.reason,
        )

    def _logSeat(self, format: str, seat: Seat, **fields: object) -> None:
        identity = seat.session.identity
        self._log.info(
            format,
            hint=seat.session.hint,
            playerId=safeText(identity.playerId) if identity is not None else "-",
            serverId=seat.server.serverId,
            **fields,
        )

    def _relay(self, session: Session, action: A.Relay[Seat]) -> None:
        link = action.seat.link
        if link is not None:
            for payload in action.payloads:
                link.sendGameData(payload)

    def _disconnectLink(self, session: Session, action: A.DisconnectLink[Seat]) -> None:
        link = action.seat.link
        if link is not None:
            link.disconnect(action.code, action.reason)

    def _linkGone(self, session: Session, action: A.LinkGone[Seat]) -> None:
        seat = action.seat
        link = seat.link
        if link is not None:
            if self._monitor is not None:
                self._monitor.linkRemoved(seat.server, link)
            # Gone or going: make sure the game server forgets the player.
            link.disconnect(action.code, action.reason)

    def _moveNotice(self, session: Session, action: A.MoveNotice) -> None:
        self._noted(self._registry.seat(session, None), "seat")
        session.send(disconnectNotice(CloseCode.TRY_AGAIN_LATER, action.reason))

    def _moved(self, session: Session, action: A.Moved[Seat]) -> None:
        self._logSeat(
            "session {hint} ({playerId}) lost its game server {serverId}: {reason}",
            action.seat,
            reason=action.reason,
        )

    def _serverLost(self, server: IPooledServer) -> None:
        pool = self._monitor
        assert pool is not None
        for link in list(pool.linksOf(server)):
            pool.linkRemoved(server, link)
            seat = link.seat
            if isinstance(seat, Seat):
                # One player's trouble must not keep the others where they are.
                with self._log.failuresHandled(
                    "moving session {hint} failed", hint=seat.session.hint
                ):
                    seat.lost("game server went away")

    # -- the cluster (Part 5.2): called by a registry on a shared store ----------
    # (and kick, below: a newer login of the player on another node)

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

    # -- the end -----------------------------------------------------------------

    def kick(self, session: Session, reason: str) -> None:
        """
        End C{session} as an operator asked: C{S2C{disconnect}} with
        C{reason}, then close 4009 on every connection (as a newer login of
        the same player does).
        """
        self._log.info(
            "session {hint} kicked: {reason}", hint=session.hint, reason=reason
        )
        self._endWithNotice(session, A.EndWithNotice(reason))

    def _end(self, session: Session, action: A.End) -> None:
        self._noted(self._registry.end(session, action.code, action.reason), "end")

    def _endWithNotice(self, session: Session, action: A.EndWithNotice) -> None:
        """
        End a session with 4009, sending C{S2C{disconnect}} first: the
        contract's notice before a close.
        """
        session.send(disconnectNotice(CloseCode.SESSION_ENDED, action.reason))
        self._end(session, A.End(CloseCode.SESSION_ENDED, action.reason))

    def _noted(self, d: Deferred[Any], what: str) -> None:
        """
        Log a failure of a registry call that nothing waits on (a registry
        on a shared store can fail).
        """
        d.addErrback(
            lambda f: self._log.failure("session registry: {what} failed", f, what=what)
        )

    def _sessionEnded(self, session: Session, code: int, reason: str) -> None:
        if session.seating is not None:
            self._carryOut(session, session.seating.ended(code, reason))

    def _internalError(
        self, failure: Failure, session: Session, connection: IConnection
    ) -> None:
        self._log.failure(
            "session {hint}: internal error in the game protocol",
            failure,
            hint=session.hint,
        )
        # The session's state cannot be trusted now: end it, seat and all.
        self._end(session, A.End(CloseCode.INTERNAL_ERROR, "internal error"))
        connection.closeWith(CloseCode.INTERNAL_ERROR, "internal error")
