# -*- test-case-name: tests.test_gateway -*-
"""
The gateway's own C{S2C} messages (Part 1.6): the answer to C{authenticate}
and the notice before a close or a move, and the legacy profile's mapping of
the answers the original Aphelion client cannot read (Part 1.7).
"""

from __future__ import annotations

from aphelion.proto.game_pb2 import S2C, AuthenticateResponse, Disconnect

__all__ = ["LEGACY_RESULTS", "authenticateResponse", "disconnectNotice", "legacyResult"]

#: The results the original Aphelion client knows (Part 1.7): 0-4.
LEGACY_RESULTS = range(5)


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


def legacyResult(result: int, description: str) -> tuple[int, str]:
    """
    The result and description to send a client of the legacy profile:
    results 5-8 become C{OTHER} with the real one named at the start of the
    description; the others are unchanged.
    """
    if result in LEGACY_RESULTS:
        return result, description
    name = AuthenticateResponse.Result.Name(result)
    return AuthenticateResponse.OTHER, f"{name}: {description}" if description else name


def disconnectNotice(code: int, reason: str) -> bytes:
    """
    :return: a serialized C{S2C{disconnect{code, reason}}}, the notice before
        a close or a move.
    """
    return S2C(disconnect=Disconnect(code=code, reason=reason)).SerializeToString()
