# -*- test-case-name: tests.test_gateway -*-
"""
The authentication of a session at the AuthProxy (Parts 1.6, 6), one part
of L{aphelion.gateway.Gateway}: the login throttles, the credential check,
and the binding of the player to the session in the session registry, as
the session's L{SeatingMachine} asks (its C{Check}, C{Bind},
C{Authenticated} and C{Unbind} actions).

A checker or registry that has answered already (C{succeed(x)}, as the
in-memory registry and the dev checker do) is called on at once rather than
through callbacks: the same calls, in the same order, without the cost of
a L{Deferred} chain per seat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from aphelion import actions as A
from aphelion.auth import CheckerBusy
from aphelion.codes import CloseCode
from aphelion.interfaces import IConnection, IPlayer, ISessionRegistry
from aphelion.logins import BUSY, THROTTLED, LoginThrottle
from aphelion.proto.game_pb2 import AuthenticateResponse
from aphelion.seating import CheckFailure, SeatingMachine, SeatingRules, validPlayerId
from aphelion.session import Session, SessionFull
from aphelion.stats import Stats

if TYPE_CHECKING:
    from collections.abc import Callable

    from aphelion.seat import Seat

__all__ = ["NOT_YET", "Checking", "resultNow"]

NOT_YET = object()


def resultNow(d: Deferred[Any]) -> Any:
    """
    The result of a L{Deferred} that has already fired with a success and
    has nothing left to run (such as C{succeed(x)}, which the in-memory
    registry and most checkers return), or L{NOT_YET}. The gateway then
    calls on at once instead of through callbacks, which cost as much as
    the work of a seat they carry.
    """
    if d.called and not d.paused:
        result = d.result
        if not isinstance(result, (Failure, Deferred)):
            return result
    return NOT_YET


class Checking:
    """
    The authentication actions of a L{aphelion.gateway.Gateway}, which
    mixes this in and provides what is declared here.
    """

    _log = Logger()

    if TYPE_CHECKING:
        stats: Stats
        rules: SeatingRules
        refuseNewcomer: bool
        _authenticate: Callable[[str], Deferred[Any]] | None
        _logins: LoginThrottle
        _registry: ISessionRegistry

        def response(self, result: int, description: str = "") -> bytes: ...

        def _response(self, result: int, description: str) -> bytes: ...

        def _machineOf(self, session: Session) -> SeatingMachine[Seat]: ...

        def _carryOut(
            self, session: Session, actions: list[A.Action[Seat]]
        ) -> Deferred[Any] | None: ...

        def _warnThrottled(self, cause: str, format: str, **kwargs: Any) -> None: ...

        def _reply(self, session: Session, action: A.Reply) -> None: ...

        def _end(self, session: Session, action: A.End) -> None: ...

        def _endWithNotice(self, session: Session, action: A.EndWithNotice) -> None: ...

        def _noted(self, d: Deferred[Any], what: str) -> None: ...

        def _internalError(
            self, failure: Failure, session: Session, connection: IConnection
        ) -> None: ...

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
        player = resultNow(d)
        if player is not NOT_YET:
            # Checked already: the same calls as the callbacks below.
            self._logins.end(player, address)
            try:
                waiting = self._checkSucceeded(player, session)
            except Exception:
                self._internalError(Failure(), session, connection)
            else:
                if waiting is not None:
                    waiting.addErrback(self._internalError, session, connection)
            return
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

    def _bind(self, session: Session, action: A.Bind) -> Deferred[None] | None:
        player: IPlayer = action.player  # type: ignore[assignment]
        d = self._registry.authenticate(
            session, player.playerId, refuse=self.refuseNewcomer
        )
        other = resultNow(d)
        if other is not NOT_YET:
            # Bound already: the same calls as the callbacks below.
            try:
                self._bound(other, player, session)
            except Exception:
                return fail().addErrback(self._bindFailed, session)
            return None
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
