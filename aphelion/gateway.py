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
from zope.interface import implementer

from aphelion.auth import CheckerBusy
from aphelion.codes import CloseCode, DisconnectCode
from aphelion.interfaces import (
    IConnection,
    IGameServerPool,
    IPlayer,
    IPlayerLink,
    IPooledServer,
    ISeat,
    ISessionRegistry,
)
from aphelion.limits import AddressCounter, Exemptions, KeyedRateLimiter, safeText
from aphelion.logthrottle import ThrottledLog
from aphelion.proto.game_pb2 import (
    S2C,
    AuthenticateResponse,
    Disconnect,
    GameConfig,
    GameDetails,
)
from aphelion.seating import (
    MAX_ID_BYTES,
    Action,
    Authenticated,
    Bind,
    Check,
    CheckFailure,
    Close,
    DisconnectLink,
    End,
    EndWithNotice,
    LinkGone,
    Malformed,
    Moved,
    MoveNotice,
    Notify,
    Pick,
    Pin,
    Refused,
    Relay,
    Reply,
    Seated,
    SeatingBegun,
    SeatingMachine,
    SeatingOver,
    SeatingRules,
    SessionState,
    Unbind,
    validPlayerId,
)
from aphelion.session import Session

__all__ = [
    "MAX_ID_BYTES",
    "Gateway",
    "Seat",
    "SessionState",
    "accountOf",
    "authenticateResponse",
]


def authenticateResponse(result: int, description: str = "") -> bytes:
    """
    :return: a serialized C{S2C{authenticate_response}}.
    """
    return S2C(
        authenticate_response=AuthenticateResponse(
            result=result,  # type: ignore[arg-type]
            description=description,
        )
    ).SerializeToString()


# The results the original Aphelion client knows (Part 1.7): 0-4.
_LEGACY_RESULTS = range(5)


def accountOf(playerId: str) -> str:
    """
    The part of an ID that names the account, for the per-ID login throttle
    and for logs: what comes before the first colon (C{alice} of
    C{alice:SECRET}), or the whole ID.
    """
    return playerId.partition(":")[0]


Authenticator = Callable[[str], "Deferred[Any]"]
LinkConnector = Callable[[IPooledServer, "Seat"], None]
_Handler = Callable[[Session, Any], "Deferred[Any] | None"]


@implementer(ISeat)
class Seat:
    """
    A session's place on a game server, and the relay between the two.

    The player connection (the I{link}) reports to its seat; the seat feeds
    the reports to the session's L{SeatingMachine} through the gateway.

    :ivar session: the seated session.
    :ivar server: the game server.
    :ivar link: the player connection, once open.
    :ivar details: the game server's C{Connected} details, once seated.
    """

    __slots__ = (
        "_gateway",
        "_machine",
        "_paused",
        "details",
        "link",
        "server",
        "session",
    )

    def __init__(
        self,
        gateway: Gateway,
        session: Session,
        machine: SeatingMachine[Seat],
        server: IPooledServer,
    ) -> None:
        self._gateway = gateway
        self._machine = machine
        self.session = session
        self.server = server
        self.link: IPlayerLink | None = None
        self.details: GameDetails | None = None
        self._paused: set[IConnection] = set()

    def __repr__(self) -> str:
        return f"<Seat {self.session.hint} on {self.server.serverId}>"

    def _feed(self, actions: list[Action[Seat]]) -> None:
        self._gateway._carryOut(self.session, actions)

    # -- reports from the link ----------------------------------------------

    def linkMade(self, link: IPlayerLink) -> None:
        """
        Called when the player connection is open.
        """
        self.link = link
        self._feed(self._machine.linkMade(self))

    def accepted(self, details: GameDetails) -> None:
        """
        Called when the game server answered C{Connected}.
        """
        self.details = details
        self._feed(self._machine.accepted(self))

    def gameConfig(self, config: GameConfig) -> None:
        """
        Called when the game server sent its C{GameConfig}.
        """
        if self._machine.current(self):
            self.session.send(S2C(game_config=config).SerializeToString())
            self._feed(self._machine.gameConfig(self))

    def rejected(self, code: int, reason: str) -> None:
        """
        Called when the game server answered C{Rejected}.
        """
        self._feed(self._machine.rejected(self, code, reason))

    def gameData(self, payload: bytes) -> None:
        """
        Called with each C{GameData} payload from the game server, relayed
        verbatim to the client. A link the session has moved away from is
        not listened to.
        """
        if self._machine.seat is self:
            session = self.session
            # The hot path of the relay, kept out of the machine: game data
            # means the game has begun, so no game_config is coming and the
            # session's packets need not stay on one connection.
            session.pinned = False
            session.send(payload)

    def disconnected(self, code: int, reason: str) -> None:
        """
        Called when the game server sent C{Disconnect}: a kick, or a server
        going away.
        """
        draining = code == DisconnectCode.SHUTTING_DOWN or self.server.draining
        self._feed(self._machine.disconnected(self, code, reason, draining))

    def lost(self, reason: str) -> None:
        """
        Called when the player connection closed or never opened.
        """
        self._feed(self._machine.lost(self, reason))

    # -- flow control ----------------------------------------------------------

    def clientPaused(self, connection: IConnection) -> None:
        """
        Called when a client connection of the session cannot take more
        data: stop reading from the game server.
        """
        if not self._paused and self.link is not None:
            self.link.pauseReading()
        self._paused.add(connection)

    def clientResumed(self, connection: IConnection) -> None:
        """
        Called when a client connection can take data again.
        """
        self._paused.discard(connection)
        if not self._paused and self.link is not None:
            self.link.resumeReading()


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
        """
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
        self._clock = clock
        self._exempt = exempt or Exemptions()
        self._checking: AddressCounter[str] = AddressCounter(checksPerAddress)
        rate = loginsPerMinute / 60.0
        self._addressLogins: KeyedRateLimiter[str] = KeyedRateLimiter(
            rate, loginsPerMinute
        )
        self._accountLogins: KeyedRateLimiter[int] = KeyedRateLimiter(
            rate, loginsPerMinute
        )
        self._throttle = (
            ThrottledLog(self._log, clock=clock, interval=logInterval)
            if clock is not None
            else None
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
            Reply: self._reply,
            Notify: self._notify,
            Close: self._close,
            Malformed: self._malformed,
            Check: self._check,
            Bind: self._bind,
            Authenticated: self._authenticated,
            Unbind: self._unbind,
            Pick: self._pick,
            SeatingBegun: self._seatingBegun,
            SeatingOver: self._seatingOver,
            Seated: self._seated,
            Refused: self._refused,
            Relay: self._relay,
            DisconnectLink: self._disconnectLink,
            LinkGone: self._linkGone,
            MoveNotice: self._moveNotice,
            Moved: self._moved,
            Pin: self._pin,
            End: self._end,
            EndWithNotice: self._endWithNotice,
        }
        if monitor is not None:
            monitor.addLostObserver(self._serverLost)

    def response(self, result: int, description: str = "") -> bytes:
        """
        A serialized C{S2C{authenticate_response}}; in the legacy profile,
        results the original client does not know are sent as C{OTHER} with
        the real one named in the description.
        """
        if self.legacy and result not in _LEGACY_RESULTS:
            name = AuthenticateResponse.Result.Name(result)
            description = f"{name}: {description}" if description else name
            result = AuthenticateResponse.OTHER
        return authenticateResponse(result, description)

    def _response(self, result: int, description: str) -> bytes:
        made = self._responses.get((result, description))
        return made if made is not None else self.response(result, description)

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
        self, session: Session, actions: list[Action[Seat]]
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

    def _check(self, session: Session, action: Check) -> None:
        connection: IConnection = action.connection  # type: ignore[assignment]
        playerId = action.playerId
        if self._authenticate is None:
            self._reply(
                session,
                Reply(
                    connection,
                    AuthenticateResponse.AUTH_METHOD_UNSUPPORTED,
                    "no authentication is configured",
                ),
            )
            return
        address = str(connection.remoteAddress)
        counted = address not in self._exempt
        if counted and not self._checking.acquire(address):
            # Its earlier checks still run: one address must not fill the
            # checker's pool and make everyone else wait (Part 6).
            connection.sendPayload(
                self._response(AuthenticateResponse.OTHER, "busy, try again later")
            )
            return
        if not self._loginAllowed(session, address, playerId):
            if counted:
                self._checking.release(address)
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
        if counted:
            d.addBoth(self._checked, address)
        # A failure of the checker is the player's (or the database's); one
        # raised while seating is ours, and closes with 1011.
        d.addCallbacks(
            self._checkSucceeded,
            self._checkFailed,
            callbackArgs=(session,),
            errbackArgs=(session, connection),
        )
        d.addErrback(self._internalError, session, connection)

    def _checked(self, result: object, address: str) -> object:
        """
        A check of C{address} ended: free its place.
        """
        self._checking.release(address)
        return result

    def _loginAllowed(self, session: Session, address: str, playerId: str) -> bool:
        """
        Take a login try from the client address's and the account's token
        buckets (Part 6), before the checker runs.
        """
        if self._clock is None:
            return True
        now = self._clock.seconds()
        account = accountOf(playerId)
        if address not in self._exempt and not self._addressLogins.allow(address, now):
            throttled = "address"
        elif not self._accountLogins.allow(hash(account), now):
            throttled = "account"
        else:
            return True
        self._warnThrottled(
            "login throttled",
            "session {hint}: too many logins from {peer} or for {account} "
            "(throttled by {throttled}); if a reverse proxy is in front, it "
            "needs --trust-forwarded-for or the PROXY protocol, or --exempt",
            hint=session.hint,
            peer=address,
            account=safeText(account, 64),
            throttled=throttled,
        )
        return False

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
        return self._carryOut(session, self._machineOf(session).checked(player))

    def _bind(self, session: Session, action: Bind) -> Deferred[None]:
        player: IPlayer = action.player  # type: ignore[assignment]
        d = self._registry.authenticate(
            session, player.playerId, refuse=self.refuseNewcomer
        )
        return d.addCallback(self._bound, player, session)

    def _bound(self, other: Session | None, player: IPlayer, session: Session) -> None:
        refused = other is not None and self.refuseNewcomer
        if other is not None and not refused:
            self._endWithNotice(other, EndWithNotice("logged in elsewhere"))
        self._carryOut(session, self._machineOf(session).bound(player, refused))

    def _authenticated(self, session: Session, action: Authenticated) -> None:
        player: IPlayer = action.player  # type: ignore[assignment]
        session.identity = player
        self._log.info(
            "session {hint} authenticated as {playerId}",
            hint=session.hint,
            playerId=safeText(player.playerId),
        )

    def _unbind(self, session: Session, action: Unbind) -> None:
        session.identity = None
        if session.playerId is not None:
            self._noted(self._registry.unbind(session), "unbind")

    # -- answers to the client ---------------------------------------------------

    def _reply(self, session: Session, action: Reply) -> None:
        connection: IConnection = action.connection  # type: ignore[assignment]
        connection.sendPayload(self._response(action.result, action.description))

    def _notify(self, session: Session, action: Notify) -> None:
        session.send(self._response(action.result, action.description))

    def _close(self, session: Session, action: Close) -> None:
        connection: IConnection = action.connection  # type: ignore[assignment]
        connection.closeWith(action.code, action.reason)

    def _malformed(self, session: Session, action: Malformed) -> None:
        connection: IConnection = action.connection  # type: ignore[assignment]
        self._warnThrottled(
            "malformed C2S",
            "session {hint}: malformed C2S payload from {peer}",
            hint=session.hint,
            peer=connection.remoteAddress,
        )
        connection.closeWith(CloseCode.MALFORMED_PACKET, "malformed C2S")

    def _pin(self, session: Session, action: Pin) -> None:
        session.pinned = action.pinned

    # -- seating ---------------------------------------------------------------

    def _pick(self, session: Session, action: Pick) -> None:
        machine = self._machineOf(session)
        pool = self._monitor
        # Each server gets one try per seating, so that failing servers are
        # not tried in turn for ever.
        server = pool.pick(action.exclude) if pool is not None else None
        if server is None or self._connectLink is None:
            self._carryOut(session, machine.noServer())
        else:
            seat = Seat(self, session, machine, server)
            self._carryOut(session, machine.serverPicked(seat, server))

    def _seatingBegun(self, session: Session, action: SeatingBegun[Seat]) -> None:
        seat = action.seat
        if self._monitor is not None:
            self._monitor.seatingStarted(seat.server)
        assert self._connectLink is not None
        self._connectLink(seat.server, seat)

    def _seatingOver(self, session: Session, action: SeatingOver[Seat]) -> None:
        if self._monitor is not None:
            self._monitor.seatingEnded(action.seat.server)

    def _seated(self, session: Session, action: Seated[Seat]) -> None:
        seat = action.seat
        if self._monitor is not None and seat.link is not None:
            self._monitor.linkAdded(seat.server, seat.link)
        self._noted(self._registry.seat(session, seat), "seat")
        self._log.info(
            "session {hint} seated on {serverId}",
            hint=session.hint,
            serverId=seat.server.serverId,
        )
        response = S2C(connected=seat.details)
        if action.greet:
            response.authenticate_response.result = AuthenticateResponse.OK
        session.send(response.SerializeToString())

    def _refused(self, session: Session, action: Refused[Seat]) -> None:
        self._log.info(
            "session {hint} rejected by {serverId}: {code} {reason}",
            hint=session.hint,
            serverId=action.seat.server.serverId,
            code=action.code,
            reason=action.reason,
        )

    def _relay(self, session: Session, action: Relay[Seat]) -> None:
        link = action.seat.link
        if link is not None:
            for payload in action.payloads:
                link.sendGameData(payload)

    def _disconnectLink(self, session: Session, action: DisconnectLink[Seat]) -> None:
        link = action.seat.link
        if link is not None:
            link.disconnect(action.code, action.reason)

    def _linkGone(self, session: Session, action: LinkGone[Seat]) -> None:
        seat = action.seat
        link = seat.link
        if link is not None:
            if self._monitor is not None:
                self._monitor.linkRemoved(seat.server, link)
            # Gone or going: make sure the game server forgets the player.
            link.disconnect(action.code, action.reason)

    def _moveNotice(self, session: Session, action: MoveNotice) -> None:
        self._noted(self._registry.seat(session, None), "seat")
        session.send(
            S2C(
                disconnect=Disconnect(
                    code=CloseCode.TRY_AGAIN_LATER, reason=action.reason
                )
            ).SerializeToString()
        )

    def _moved(self, session: Session, action: Moved[Seat]) -> None:
        self._log.info(
            "session {hint} lost its game server {serverId}: {reason}",
            hint=session.hint,
            serverId=action.seat.server.serverId,
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

    # -- the end -----------------------------------------------------------------

    def _end(self, session: Session, action: End) -> None:
        self._noted(self._registry.end(session, action.code, action.reason), "end")

    def _endWithNotice(self, session: Session, action: EndWithNotice) -> None:
        """
        End a session with 4009, sending C{S2C{disconnect}} first: the
        contract's notice before a close.
        """
        session.send(
            S2C(
                disconnect=Disconnect(
                    code=CloseCode.SESSION_ENDED, reason=action.reason
                )
            ).SerializeToString()
        )
        self._end(session, End(CloseCode.SESSION_ENDED, action.reason))

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
        self._end(session, End(CloseCode.INTERNAL_ERROR, "internal error"))
        connection.closeWith(CloseCode.INTERNAL_ERROR, "internal error")
