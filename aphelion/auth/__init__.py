# -*- test-case-name: tests.test_auth -*-
"""
Validating the ID (contract Part 3) with C{twisted.cred}.

The client sends "the ID" in C{C2S.authenticate.id}: a string of at most 1024
bytes of UTF-8. It is presented to a L{Portal<twisted.cred.portal.Portal>} as
L{PlayerIdCredentials}; a checker decides whether it is good, and
L{PlayerRealm} yields the player's L{PlayerIdentity} (player id, display
name, attributes) for L{IPlayer<aphelion.interfaces.IPlayer>}.
L{authenticate} does all of this in one call, and L{BoundedAuthenticator}
bounds the checks in flight at once.

One module per concern; this package re-exports the public names of each:

    - L{aphelion.auth.credentials}: the ID as credentials, the identity,
      avatar ids, the errors of a checker that cannot decide, L{DevChecker}.
    - L{aphelion.auth.passwords}: hashing account secrets (PBKDF2, in
      Django's format), reading secret files.
    - L{aphelion.auth.schema}: the accounts tables and their versions.
    - L{aphelion.auth.database}: L{DatabaseChecker} on an L{AccountsPool}.
    - L{aphelion.auth.postgresql}: PostgreSQL connection strings.
    - L{aphelion.auth.accounts}: adding, removing and listing accounts.
    - L{aphelion.auth.tickets}: tickets (format there), L{TicketChecker},
      one-time tickets' L{IReplayCache}.
    - L{aphelion.auth.realm}: L{PlayerRealm}, L{authenticate},
      L{BoundedAuthenticator}.
    - L{aphelion.auth.plugins}: the C{--auth} checker factories.

Every checker refuses an ID that holds a control character (C0, C1 or DEL:
contract Part 6), and IDs are escaped with L{safeText<aphelion.limits.safeText>}
wherever this package logs them.
"""

from __future__ import annotations

from aphelion.auth.credentials import (
    DEV_WARNING,
    MAX_ID_BYTES,
    CheckerBusy,
    DevChecker,
    IPlayerIdCredentials,
    PlayerIdCredentials,
    PlayerIdentity,
    ReactorNotBound,
    checkPlayerId,
    decodeAvatarId,
    encodeAvatarId,
)
from aphelion.auth.database import AccountsPool, DatabaseChecker, DatabaseUnavailable
from aphelion.auth.passwords import (
    DEFAULT_ITERATIONS,
    hashSecret,
    readSecretFile,
    verifySecret,
)
from aphelion.auth.plugins import (
    DevCheckerFactory,
    PostgreSQLCheckerFactory,
    SQLiteCheckerFactory,
    TicketCheckerFactory,
)
from aphelion.auth.postgresql import postgresqlConnectArguments, redactDsn
from aphelion.auth.realm import (
    DEFAULT_CHECKER_LIMIT,
    BoundedAuthenticator,
    PlayerRealm,
    authenticate,
)
from aphelion.auth.schema import (
    ACCOUNTS_SCHEMA,
    SCHEMA_MIGRATIONS,
    SCHEMA_VERSION,
    SchemaTooNew,
    ensureSchema,
    schemaVersion,
    sqlPlaceholder,
    upgradeSchema,
)
from aphelion.auth.tickets import (
    DEFAULT_MAX_REMEMBERED,
    DEFAULT_MAX_TICKET_LIFETIME,
    IReplayCache,
    MemoryReplayCache,
    TicketChecker,
    mintTicket,
    verifyTicket,
)
from aphelion.interfaces import IPlayer

__all__ = [
    "ACCOUNTS_SCHEMA",
    "DEFAULT_CHECKER_LIMIT",
    "DEFAULT_ITERATIONS",
    "DEFAULT_MAX_REMEMBERED",
    "DEFAULT_MAX_TICKET_LIFETIME",
    "DEV_WARNING",
    "MAX_ID_BYTES",
    "SCHEMA_MIGRATIONS",
    "SCHEMA_VERSION",
    "AccountsPool",
    "BoundedAuthenticator",
    "CheckerBusy",
    "DatabaseChecker",
    "DatabaseUnavailable",
    "DevChecker",
    "DevCheckerFactory",
    "IPlayer",
    "IPlayerIdCredentials",
    "IReplayCache",
    "MemoryReplayCache",
    "PlayerIdCredentials",
    "PlayerIdentity",
    "PlayerRealm",
    "PostgreSQLCheckerFactory",
    "ReactorNotBound",
    "SQLiteCheckerFactory",
    "SchemaTooNew",
    "TicketChecker",
    "TicketCheckerFactory",
    "authenticate",
    "checkPlayerId",
    "decodeAvatarId",
    "encodeAvatarId",
    "ensureSchema",
    "hashSecret",
    "mintTicket",
    "postgresqlConnectArguments",
    "readSecretFile",
    "redactDsn",
    "schemaVersion",
    "sqlPlaceholder",
    "upgradeSchema",
    "verifySecret",
    "verifyTicket",
]


def _keepPublicHome() -> None:
    # The classes' public home stays aphelion.auth, where they were defined
    # before this package was split: the namespaces of their log lines
    # ("[aphelion.auth.DevChecker#warn]", which operators filter on), the
    # names of their exceptions in tracebacks, and their reprs are unchanged.
    # Interfaces are left alone: zope hashes them by module.
    for name in __all__:
        value = globals()[name]
        if isinstance(value, type):
            value.__module__ = __name__


_keepPublicHome()
