# -*- test-case-name: tests.test_gateway -*-
"""
The game protocol of a session as the AuthProxy sees it (Part 1.6).

The transport hands every game payload of a session here, from whichever of
its connections it came.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from twisted.logger import Logger

from aphelion.codes import CloseCode
from aphelion.interfaces import IConnection
from aphelion.proto.game_pb2 import C2S, S2C, AuthenticateResponse
from aphelion.session import Session

__all__ = ["Gateway", "authenticateResponse"]


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


_NOT_AUTHENTICATED = authenticateResponse(
    AuthenticateResponse.NOT_AUTHENTICATED, "authenticate first"
)


class Gateway:
    """
    Acts on the game payloads of every session.

    With no game servers yet, every non-empty C{C2S} payload is answered with
    C{authenticate_response{NOT_AUTHENTICATED}}.
    """

    _log = Logger()

    def payloadReceived(
        self, session: Session, connection: IConnection, payload: bytes
    ) -> None:
        """
        Called with each non-empty game payload that a session's connection
        received.
        """
        try:
            C2S.FromString(payload)
        except DecodeError:
            self._log.warn("session {hint}: malformed C2S payload", hint=session.hint)
            connection.closeWith(CloseCode.MALFORMED_PACKET, "malformed C2S")
            return
        session.send(_NOT_AUTHENTICATED)
