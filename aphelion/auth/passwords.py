# -*- test-case-name: tests.test_auth -*-
"""
Account secrets and secret files.

Account secrets are stored as C{pbkdf2_sha256$ITERATIONS$SALT$HASH}, where
HASH is the standard base64 of PBKDF2-HMAC-SHA256(secret, SALT, ITERATIONS):
the format of Django's default password hasher, so accounts can be shared with
a Django login website. Hashing is slow by design, so
L{DatabaseChecker<aphelion.auth.database.DatabaseChecker>} does it inside the
pool's thread, never in the reactor's.

Secrets that the operator gives in a file (a ticket secret, a database
password, an account's secret) are read once, at start-up, by
L{readSecretFile}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from typing import Final

__all__ = [
    "DEFAULT_ITERATIONS",
    "HASH_ALGORITHM",
    "hashSecret",
    "readSecretFile",
    "verifySecret",
]

DEFAULT_ITERATIONS: Final = 600_000
"""
PBKDF2 iterations for new account secrets (OWASP's 2023 figure for SHA-256).
"""

HASH_ALGORITHM: Final = "pbkdf2_sha256"
"""
The name of the hash in a stored secret, as Django names it.
"""

_MAX_ITERATIONS: Final = 10_000_000
_SALT_ALPHABET: Final = string.ascii_letters + string.digits


def hashSecret(
    secret: str, iterations: int = DEFAULT_ITERATIONS, salt: str | None = None
) -> str:
    """
    Hash an account secret for storage. Slow by design: do not call it in the
    reactor thread.

    :param salt: letters and digits; 22 random ones when L{None}.
    :return: C{pbkdf2_sha256$ITERATIONS$SALT$HASH}.
    """
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise ValueError(f"iterations are between 1 and {_MAX_ITERATIONS}")
    if salt is None:
        salt = "".join(secrets.choice(_SALT_ALPHABET) for _ in range(22))
    elif not salt or "$" in salt:
        raise ValueError("a salt is non-empty and holds no '$'")
    digest = hashlib.pbkdf2_hmac(
        "sha256", secret.encode("utf-8"), salt.encode("utf-8"), iterations
    )
    encoded = base64.b64encode(digest).decode("ascii")
    return f"{HASH_ALGORITHM}${iterations}${salt}${encoded}"


def verifySecret(secret: str, stored: str) -> bool:
    """
    Check a secret against a L{hashSecret} hash, in constant time. Slow by
    design: do not call it in the reactor thread.

    :raises ValueError: if C{stored} is not a hash this module can read.
    """
    algorithm, iterations, salt, _ = stored.split("$", 3)
    if algorithm != HASH_ALGORITHM or not iterations.isdigit():
        raise ValueError("not a pbkdf2_sha256 hash")
    computed = hashSecret(secret, int(iterations), salt)
    return hmac.compare_digest(computed.encode("utf-8"), stored.encode("utf-8"))


def readSecretFile(path: str, kind: str = "ticket secret") -> bytes:
    """
    Read a secret at start-up: the file's bytes with surrounding whitespace
    removed.

    :param kind: what the secret is, for the messages.
    :raises ValueError: with a message for the operator, if the file cannot
        be read or holds only whitespace.
    """
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as e:
        raise ValueError(
            f"cannot read the {kind} file {path!r}: {e.strerror}"
        ) from None
    if not secret:
        raise ValueError(f"the {kind} file {path!r} is empty")
    return secret
