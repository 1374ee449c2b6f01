# -*- test-case-name: tests.test_gateway -*-
"""
The game protocol of a session as the AuthProxy sees it (Part 1.6).

The transport hands every game payload of a session to L{Gateway}, from
whichever of the session's connections it came. A session is, in turn,
I{unauthenticated}, I{authenticating}, I{seating} and I{relaying}; a L{Seat}
ties a seated session to its player connection on a game server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from google.protobuf.message import DecodeError
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion.auth import CheckerBusy
from aphelion.codes import CloseCode, DisconnectCode, RejectCode
from aphelion.control.spawn import ServerState
from aphelion.interfaces import IConnection, ISessionRegistry
from aphelion.limits import (
    AddressCounter,
    Exemptions,
    KeyedRateLimiter,
    hasControlCharacters,
    safeText,
)
from aphelion.logthrottle import ThrottledLog
from aphelion.proto.game_pb2 import (
    C2S,
    S2C,
    AuthenticateResponse,
    Disconnect,
    GameConfig,
    GameDetails,
)
from aphelion.session import Session

if TYPE_CHECKING:
    from aphelion.control.spawn import GameServer, GameServerMonitor

__all__ = ["Gateway", "Seat", "SessionState", "authenticateResponse"]

MAX_ID_BYTES = 1024


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


class _Held:
    """
    Payloads a client sent while being seated or moved (Part 6).
    """

    __slots__ = ("payloads", "size")

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.size = 0


class SessionState(Enum):
    """
    Where a session is in the game protocol (Part 1.6).
    """

    UNAUTHENTICATED = "unauthenticated"
    AUTHENTICATING = "authenticating"
    SEATING = "seating"
    RELAYING = "relaying"


class Identity(Protocol):
    """
    What a checker and realm say about a player.
    """

    @property
    def playerId(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, str]: ...


class PlayerLink(Protocol):
    """
    A player connection to a game server, as a L{Seat} drives it.
    """

    def sendGameData(self, payload: bytes) -> None: ...

    def disconnect(self, code: int, reason: str) -> None: ...

    def pauseReading(self) -> None: ...

    def resumeReading(self) -> None: ...


Authenticator = Callable[[str], "Deferred[Any]"]
LinkConnector = Callable[["GameServer", "Seat"], None]


class Seat:
    """
    A session's place on a game server, and the relay between the two.

    The player connection (the I{link}) reports to its seat; the seat
    reports to the gateway.

    :ivar session: the seated session.
    :ivar server: the game server.
    :ivar link: the player connection, once open.
    :ivar details: the game server's C{Connected} details, once seated.
    :ivar seated: whether the game server accepted the player.
    :ivar tried: the game servers this seating has tried, this one included.
    """

    __slots__ = (
        "_gateway",
        "_paused",
        "details",
        "link",
        "reseat",
        "seated",
        "server",
        "session",
        "tried",
    )

    def __init__(
        self, gateway: Gateway, session: Session, server: GameServer, reseat: bool
    ) -> None:
        self._gateway = gateway
        self.session = session
        self.server = server
        self.reseat = reseat
        self.link: PlayerLink | None = None
        self.details: GameDetails | None = None
        self.seated = False
        self.tried: frozenset[GameServer] = frozenset({server})
        self._paused: set[IConnection] = set()

    def __repr__(self) -> str:
        return f"<Seat {self.session.hint} on {self.server.serverId}>"

    @property
    def current(self) -> bool:
        """
        Whether this is still the session's seat (or seat being set up).
        """
        return (
            self.session.seat is self
            or self._gateway._seating.get(self.session) is self
        )

    # -- reports from the link ----------------------------------------------

    def linkMade(self, link: PlayerLink) -> None:
        """
        Called when the player connection is open.
        """
        self.link = link
        if not self.current:
            link.disconnect(0, "seat no longer wanted")

    def accepted(self, details: GameDetails) -> None:
        """
        Called when the game server answered C{Connected}.
        """
        self._gateway._seated(self, details)

    def gameConfig(self, config: GameConfig) -> None:
        """
        Called when the game server sent its C{GameConfig}.
        """
        if self.current:
            self.session.send(S2C(game_config=config).SerializeToString())
            # The seating's replies are complete (Part 1.4).
            self.session.pinned = False

    def rejected(self, code: int, reason: str) -> None:
        """
        Called when the game server answered C{Rejected}.
        """
        self._gateway._rejected(self, code, reason)

    def gameData(self, payload: bytes) -> None:
        """
        Called with each C{GameData} payload from the game server, relayed
        verbatim to the client. A link the session has moved away from is
        not listened to.
        """
        session = self.session
        if session.seat is self:
            session.pinned = False  # no game_config came: the game has begun
            session.send(payload)

    def disconnected(self, code: int, reason: str) -> None:
        """
        Called when the game server sent C{Disconnect}: a kick.
        """
        self._gateway._kicked(self, code, reason)

    def lost(self, reason: str) -> None:
        """
        Called when the player connection closed or never opened.
        """
        self._gateway._linkLost(self, reason)

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
    relays.

    :ivar authTries: authentication failures allowed per connection; the
        last one closes it with 4008.
    :ivar refuseNewcomer: answer C{ID_IN_USE} to a second login of a player
        instead of ending the first session.
    :ivar legacy: send results 5-8 of C{AuthenticateResponse} as C{OTHER}
        with the real result in the description (Part 1.7).
    :ivar seatingBuffer: payloads a client may send while being seated or
        moved; one more closes that connection with 4007.
    :ivar seatingBufferBytes: bytes a client may send while being seated or
        moved.
    """

    _log = Logger()

    def __init__(
        self,
        *,
        registry: ISessionRegistry,
        authenticator: Authenticator | None = None,
        monitor: GameServerMonitor | None = None,
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
        :param clock: the clock of the login throttles and of the summary
            log lines; without one, logins are not throttled.
        :param loginsPerMinute: authentication tries per minute per client
            address (outside C{exempt}) and per account.
        :param checksPerAddress: credential checks of one client address
            (outside C{exempt}) running at once; one more is answered
            C{OTHER} "busy, try again later". 0 is no limit.
        """
        self._registry = registry
        self._authenticate = authenticator
        self._monitor = monitor
        self._connectLink = connectLink
        self.authTries = authTries
        self.refuseNewcomer = refuseNewcomer
        self.legacy = legacy
        self.seatingBuffer = seatingBuffer
        self.seatingBufferBytes = seatingBufferBytes
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
        self._notAuthenticated = self.response(
            AuthenticateResponse.NOT_AUTHENTICATED, "authenticate first"
        )
        self._noAuthMethod = self.response(
            AuthenticateResponse.AUTH_METHOD_UNSUPPORTED,
            "no authentication is configured",
        )
        self._inProgress = self.response(
            AuthenticateResponse.OTHER, "authentication in progress"
        )
        self._seating: dict[Session, Seat] = {}
        self._observed: set[Session] = set()
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

    # -- from the transport ------------------------------------------------------

    def payloadReceived(
        self, session: Session, connection: IConnection, payload: bytes
    ) -> None:
        """
        Called with each non-empty game payload that a session's connection
        received.
        """
        seat = session.seat
        if seat is not None and seat.link is not None:  # the hot path: relay
            seat.link.sendGameData(payload)
            return
        state = session.state or SessionState.UNAUTHENTICATED
        if state is SessionState.SEATING:
            # Being seated or moved: the payload is for the game, relayed
            # once seated.
            self._hold(session, connection, payload)
            return
        try:
            message = C2S.FromString(payload)
        except DecodeError:
            self._warnThrottled(
                "malformed C2S",
                "session {hint}: malformed C2S payload from {peer}",
                hint=session.hint,
                peer=connection.remoteAddress,
            )
            connection.closeWith(CloseCode.MALFORMED_PACKET, "malformed C2S")
            return
        if state is SessionState.AUTHENTICATING:
            connection.sendPayload(self._inProgress)
        elif not message.HasField("authenticate"):
            connection.sendPayload(self._notAuthenticated)
        elif self._authenticate is None:
            connection.sendPayload(self._noAuthMethod)
        else:
            self._startAuthentication(session, connection, message.authenticate.id)

    def _hold(self, session: Session, connection: IConnection, payload: bytes) -> None:
        held = session.held
        if held is None:
            held = session.held = _Held()
        if (
            len(held.payloads) >= self.seatingBuffer
            or held.size + len(payload) > self.seatingBufferBytes
        ):
            connection.closeWith(
                CloseCode.TOO_MANY_UNACKNOWLEDGED, "too much sent while being seated"
            )
            return
        held.payloads.append(payload)
        held.size += len(payload)

    def connectionPaused(self, session: Session, connection: IConnection) -> None:
        """
        Called when a client connection's send buffer is full.
        """
        if isinstance(session.seat, Seat):
            session.seat.clientPaused(connection)

    def connectionResumed(self, session: Session, connection: IConnection) -> None:
        """
        Called when a client connection's send buffer drained.
        """
        if isinstance(session.seat, Seat):
            session.seat.clientResumed(connection)

    # -- authentication --------------------------------------------------------

    def _startAuthentication(
        self, session: Session, connection: IConnection, playerId: str
    ) -> None:
        assert self._authenticate is not None
        address = str(connection.remoteAddress)
        counted = address not in self._exempt
        if counted and not self._checking.acquire(address):
            # Its earlier checks still run: one address must not fill the
            # checker's pool and make everyone else wait (Part 6).
            connection.sendPayload(
                self.response(AuthenticateResponse.OTHER, "busy, try again later")
            )
            return
        if not self._loginAllowed(session, connection, playerId):
            if counted:
                self._checking.release(address)
            connection.sendPayload(
                self.response(
                    AuthenticateResponse.TOO_MANY_ATTEMPTS,
                    "too many logins, try again later",
                )
            )
            return
        session.state = SessionState.AUTHENTICATING
        if (
            not playerId
            or len(playerId.encode("utf-8")) > MAX_ID_BYTES
            or hasControlCharacters(playerId)
        ):
            d: Deferred[Identity] = Deferred()
            d.errback(
                UnauthorizedLogin(
                    "ID empty, longer than 1024 bytes or with control characters"
                )
            )
        else:
            d = self._authenticate(playerId)
        if counted:
            d.addBoth(self._checked, address)
        # A failure of the checker is the player's (or the database's); one
        # raised while seating is ours, and closes with 1011.
        d.addCallbacks(
            self._authenticated,
            self._authenticationFailed,
            callbackArgs=(session, connection),
            errbackArgs=(session, connection),
        )
        d.addErrback(self._internalError, session, connection)

    def _checked(self, result: object, address: str) -> object:
        """
        A check of C{address} ended: free its place.
        """
        self._checking.release(address)
        return result

    def _loginAllowed(
        self, session: Session, connection: IConnection, playerId: str
    ) -> bool:
        """
        Take a login try from the client address's and the account's token
        buckets (Part 6), before the checker runs.
        """
        if self._clock is None:
            return True
        now = self._clock.seconds()
        address = str(connection.remoteAddress)
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

    def _authenticationFailed(
        self, failure: Failure, session: Session, connection: IConnection
    ) -> None:
        if session.ended:
            return
        session.state = SessionState.UNAUTHENTICATED
        if failure.check(UnhandledCredentials):
            connection.sendPayload(self._noAuthMethod)
            return
        if failure.check(CheckerBusy):
            # Too many checks wait for the checker (Part 6): not a try.
            self._warnThrottled(
                "checker busy",
                "session {hint}: the checker is busy; login refused",
                hint=session.hint,
            )
            connection.sendPayload(
                self.response(AuthenticateResponse.OTHER, "busy, try again later")
            )
            return
        if not failure.check(UnauthorizedLogin):
            # The checker broke (a database down): not the player's fault.
            self._log.failure(
                "session {hint}: the checker failed", failure, hint=session.hint
            )
            connection.sendPayload(
                self.response(
                    AuthenticateResponse.OTHER, "authentication is unavailable"
                )
            )
            return
        failures = getattr(connection, "authFailures", 0) + 1
        connection.authFailures = failures  # type: ignore[attr-defined]
        self._warnThrottled(
            "failed login",
            "session {hint}: authentication failed from {peer} ({failures} of {tries})",
            hint=session.hint,
            peer=connection.remoteAddress,
            failures=failures,
            tries=self.authTries,
        )
        if failures >= self.authTries:
            connection.sendPayload(
                self.response(
                    AuthenticateResponse.TOO_MANY_ATTEMPTS, "too many attempts"
                )
            )
            connection.closeWith(
                CloseCode.TOO_MANY_AUTH_ATTEMPTS, "authentication failed too often"
            )
        else:
            connection.sendPayload(
                self.response(AuthenticateResponse.INVALID_ID, "invalid ID")
            )

    def _authenticated(
        self, identity: Identity, session: Session, connection: IConnection
    ) -> Deferred[None] | None:
        if session.ended:
            return None
        d = self._registry.authenticate(
            session, identity.playerId, refuse=self.refuseNewcomer
        )
        return d.addCallback(self._bound, identity, session, connection)

    def _bound(
        self,
        other: Session | None,
        identity: Identity,
        session: Session,
        connection: IConnection,
    ) -> None:
        if other is not None and self.refuseNewcomer:
            session.state = SessionState.UNAUTHENTICATED
            connection.sendPayload(
                self.response(AuthenticateResponse.ID_IN_USE, "already logged in")
            )
            return
        if other is not None:
            self._endWithNotice(other, "logged in elsewhere")
        session.identity = identity
        if session not in self._observed:
            self._observed.add(session)
            session.addEndObserver(self._sessionEnded)
        self._log.info(
            "session {hint} authenticated as {playerId}",
            hint=session.hint,
            playerId=safeText(identity.playerId),
        )
        self._seat(session, reseat=False)

    # -- seating ---------------------------------------------------------------

    def _seat(
        self,
        session: Session,
        reseat: bool,
        tried: frozenset[GameServer] = frozenset(),
    ) -> None:
        monitor = self._monitor
        # Each server gets one try per seating, so that failing servers are
        # not tried in turn for ever.
        server = monitor.pick(tried) if monitor is not None else None
        if server is None or self._connectLink is None:
            self._noServer(session, reseat)
            return
        session.state = SessionState.SEATING
        seat = Seat(self, session, server, reseat)
        seat.tried = tried | {server}
        self._seating[session] = seat
        server.pending += 1
        self._connectLink(server, seat)

    def _noServer(self, session: Session, reseat: bool) -> None:
        if reseat:
            self._noted(
                self._registry.end(
                    session,
                    CloseCode.TRY_AGAIN_LATER,
                    "no game server can take the player",
                ),
                "end",
            )
            return
        self._unbind(session)
        session.send(
            self.response(AuthenticateResponse.NO_SERVER, "no game server has room")
        )

    def _unbind(self, session: Session) -> None:
        session.state = SessionState.UNAUTHENTICATED
        session.identity = None
        session.held = None
        if session.playerId is not None:
            self._noted(self._registry.unbind(session), "unbind")

    def _endSeating(self, seat: Seat) -> bool:
        if self._seating.get(seat.session) is not seat:
            return False
        del self._seating[seat.session]
        seat.server.pending = max(0, seat.server.pending - 1)
        return True

    def _seated(self, seat: Seat, details: GameDetails) -> None:
        session = seat.session
        if not self._endSeating(seat) or session.ended:
            if seat.link is not None:
                seat.link.disconnect(0, "session ended")
            return
        seat.seated = True
        seat.details = details
        seat.server.links.add(seat.link)  # type: ignore[arg-type]
        self._noted(self._registry.seat(session, seat), "seat")
        session.state = SessionState.RELAYING
        self._log.info(
            "session {hint} seated on {serverId}",
            hint=session.hint,
            serverId=seat.server.serverId,
        )
        response = S2C(connected=details)
        if not seat.reseat:
            response.authenticate_response.result = AuthenticateResponse.OK
        # connected and the game_config that follows in a later read go on
        # one connection, in order (Part 1.4).
        session.pinned = True
        session.send(response.SerializeToString())
        held, session.held = session.held, None
        if held is not None and seat.link is not None:
            # What the client sent meanwhile goes to the game, in order.
            for payload in held.payloads:
                seat.link.sendGameData(payload)

    def _rejected(self, seat: Seat, code: int, reason: str) -> None:
        if code in (RejectCode.FULL, RejectCode.NOT_ACCEPTING) and (
            self._seating.get(seat.session) is seat
        ):
            # Its Status was behind: no room there is not a refusal of the
            # player. Try the next server (NO_SERVER when none has room).
            self._linkLost(seat, reason or "game server full")
            return
        self._refused(seat, code, reason)

    def _refused(self, seat: Seat, code: int, reason: str) -> None:
        """
        The game server refused the player (C{Rejected}, or C{Disconnect}
        before C{Connected}).
        """
        if not self._endSeating(seat):
            return
        session = seat.session
        self._log.info(
            "session {hint} rejected by {serverId}: {code} {reason}",
            hint=session.hint,
            serverId=seat.server.serverId,
            code=code,
            reason=reason,
        )
        if seat.reseat:
            self._noted(
                self._registry.end(
                    session, CloseCode.TRY_AGAIN_LATER, reason or "rejected"
                ),
                "end",
            )
            return
        self._unbind(session)
        session.send(self.response(AuthenticateResponse.REJECTED, reason))

    def _kicked(self, seat: Seat, code: int, reason: str) -> None:
        draining = (
            code == DisconnectCode.SHUTTING_DOWN
            or seat.server.state is ServerState.DRAINING
        )
        if self._seating.get(seat.session) is seat:
            # Disconnect before Connected: a refusal, or a server going away.
            if draining:
                self._linkLost(seat, reason or "game server draining")
            else:
                self._refused(seat, code, reason or "disconnected")
            return
        if draining:
            self._moved(seat, "game server draining")
        elif seat.session.seat is seat:
            self._endWithNotice(seat.session, reason or "kicked")

    def _endWithNotice(self, session: Session, reason: str) -> None:
        """
        End a session with 4009, sending C{S2C{disconnect}} first: the
        contract's notice before a close.
        """
        session.send(
            S2C(
                disconnect=Disconnect(code=CloseCode.SESSION_ENDED, reason=reason)
            ).SerializeToString()
        )
        self._noted(self._registry.end(session, CloseCode.SESSION_ENDED, reason), "end")

    def _linkLost(self, seat: Seat, reason: str) -> None:
        if self._endSeating(seat):
            # It never seated the player: try elsewhere.
            self._moved(seat, reason, seated=False)
            return
        if seat.session.seat is seat:
            self._moved(seat, reason)

    def _moved(self, seat: Seat, reason: str, seated: bool = True) -> None:
        session = seat.session
        seat.server.links.discard(seat.link)
        if seat.link is not None:
            # Gone or going: make sure the game server forgets the player.
            seat.link.disconnect(CloseCode.TRY_AGAIN_LATER, reason)
        if session.ended:
            return
        if seated:
            self._noted(self._registry.seat(session, None), "seat")
            # disconnect, then the new seat's connected and game_config,
            # on one connection (Part 1.4).
            session.pinned = True
            session.send(
                S2C(
                    disconnect=Disconnect(code=CloseCode.TRY_AGAIN_LATER, reason=reason)
                ).SerializeToString()
            )
        self._log.info(
            "session {hint} lost its game server {serverId}: {reason}",
            hint=session.hint,
            serverId=seat.server.serverId,
            reason=reason,
        )
        # A player moved off a server starts a new seating; a seating that
        # failed goes on without the servers it tried.
        self._seat(
            session,
            reseat=seated or seat.reseat,
            tried=frozenset({seat.server}) if seated else seat.tried,
        )

    def _serverLost(self, server: GameServer) -> None:
        links = list(server.links)
        server.links.clear()
        for link in links:
            seat = getattr(link, "seat", None)
            if isinstance(seat, Seat) and seat.session.seat is seat:
                # One player's trouble must not keep the others where they are.
                with self._log.failuresHandled(
                    "moving session {hint} failed", hint=seat.session.hint
                ):
                    self._moved(seat, "game server went away")

    def _noted(self, d: Deferred[Any], what: str) -> None:
        """
        Log a failure of a registry call that nothing waits on (a registry
        on a shared store can fail).
        """
        d.addErrback(
            lambda f: self._log.failure("session registry: {what} failed", f, what=what)
        )

    def _sessionEnded(self, session: Session, code: int, reason: str) -> None:
        self._observed.discard(session)
        seating = self._seating.pop(session, None)
        if seating is not None:
            seating.server.pending = max(0, seating.server.pending - 1)
            if seating.link is not None:
                seating.link.disconnect(code, reason)
        seat = session.seat
        if isinstance(seat, Seat) and seat.link is not None:
            seat.server.links.discard(seat.link)
            seat.link.disconnect(code, reason)

    def _internalError(
        self, failure: Failure, session: Session, connection: IConnection
    ) -> None:
        self._log.failure(
            "session {hint}: internal error in the game protocol",
            failure,
            hint=session.hint,
        )
        # The session's state cannot be trusted now: end it, seat and all.
        self._noted(
            self._registry.end(session, CloseCode.INTERNAL_ERROR, "internal error"),
            "end",
        )
        connection.closeWith(CloseCode.INTERNAL_ERROR, "internal error")
