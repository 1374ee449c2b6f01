# -*- test-case-name: tests.test_auth -*-
"""
PostgreSQL connection strings (libpq DSNs): checked, and their passwords
read from a file, at start-up; and left out of every log line and message.

A DSN is a URL, C{postgresql://aphelion@db.example:5432/aphelion}, or
C{keyword=value} pairs, C{host=db.example dbname=aphelion}. The password
comes from C{PGPASSWORD}, C{~/.pgpass}, or a password file
(L{postgresqlConnectArguments}); one written in the DSN is removed by
L{redactDsn} wherever the DSN is shown.
"""

from __future__ import annotations

import os
import re
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aphelion.auth.passwords import readSecretFile

__all__ = [
    "POSTGRESQL_URL_SCHEMES",
    "postgresqlConnectArguments",
    "redactDsn",
]

POSTGRESQL_URL_SCHEMES: Final = ("postgresql://", "postgres://")
"""
How a DSN that is a URL begins.
"""
_KEYWORD_PASSWORD: Final = re.compile(
    r"""(?:^|(?<=\s))password\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S*)\s*"""
)


def redactDsn(dsn: str) -> str:
    """
    :return: the libpq connection string C{dsn} without its password, for
        logs and messages: C{postgresql://aphelion:pw@db/aphelion} becomes
        C{postgresql://aphelion@db/aphelion}, and a C{password} parameter of
        the URL's query or of a C{keyword=value} string is left out.
    """
    if not dsn.startswith(POSTGRESQL_URL_SCHEMES):
        return _KEYWORD_PASSWORD.sub("", dsn).strip()
    parts = urlsplit(dsn)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}@{hosts}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key == "password" for key, _ in pairs):
        query = urlencode([(k, v) for k, v in pairs if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def postgresqlConnectArguments(
    dsn: str, passwordFile: str | None = None
) -> dict[str, str | int]:
    """
    Check a libpq connection string, and read the password file, at
    start-up; used by C{--auth postgresql} and C{aphelion accounts}.

    :param passwordFile: a file whose content, without surrounding
        whitespace, is the password; else libpq finds one in C{PGPASSWORD}
        or C{~/.pgpass}, or in the DSN.
    :return: the keyword arguments of C{psycopg.connect} besides the DSN:
        the password of the file, and time limits (a connection is given up
        after 5 s, and a query whose packets go unanswered for 10 s fails)
        unless the DSN or C{PGCONNECT_TIMEOUT} sets them.
    :raises ValueError: with a message for the operator (and without the
        password), if psycopg is not installed, the DSN cannot be parsed or
        the file cannot be read.
    """
    try:
        from psycopg import Error as PsycopgError
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ValueError(
            "PostgreSQL needs psycopg 3: pip install 'aphelion[postgresql]'"
        ) from None
    try:
        parameters = conninfo_to_dict(dsn)
    except PsycopgError as e:
        raise ValueError(f"not a PostgreSQL DSN ({e})") from None
    arguments: dict[str, str | int] = {}
    if "connect_timeout" not in parameters and "PGCONNECT_TIMEOUT" not in os.environ:
        arguments["connect_timeout"] = 5
    if "tcp_user_timeout" not in parameters:
        arguments["tcp_user_timeout"] = 10_000
    if passwordFile is not None:
        try:
            password = readSecretFile(passwordFile, "password").decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"the password file {passwordFile!r} is not UTF-8"
            ) from None
        arguments["password"] = password
    return arguments
