# -*- test-case-name: tests.test_session -*-
"""
Session tokens: how one is made and the only form in which one may be
logged (Part 1.4).

The AuthProxy's registry (L{aphelion.session}), the game-server supervisor,
the game servers and the clients all use these, and none of them needs the
registry for it: this module imports nothing from Twisted or Autobahn.
L{aphelion.session} re-exports both names.
"""

from __future__ import annotations

import os

from aphelion.handshake import TOKEN_LENGTH

__all__ = ["newToken", "tokenHint"]


def newToken() -> bytes:
    """
    :return: a fresh 32-byte session token from the operating system's CSPRNG.
    """
    return os.urandom(TOKEN_LENGTH)


def tokenHint(token: bytes | None) -> str:
    """
    The only form in which a token may appear in a log.

    :return: the first four hex digits of the token, or C{"-"}.
    """
    return token[:2].hex() if token else "-"
