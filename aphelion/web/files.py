# -*- test-case-name: tests.test_web -*-
"""
The open files the AuthProxy needs: L{raiseFileLimit} raises the open-files
limit at start-up and says when it is still low for the connection cap.
"""

from __future__ import annotations

from typing import Protocol

from aphelion.config import Config

__all__ = ["FILE_RESERVE", "filesNeeded", "raiseFileLimit"]

#: Open files kept for listeners, logs, databases and the like.
FILE_RESERVE = 128


class _Limits(Protocol):
    """
    What L{raiseFileLimit} uses of the C{resource} module.
    """

    RLIMIT_NOFILE: int
    RLIM_INFINITY: int

    def getrlimit(self, resource: int, /) -> tuple[int, int]: ...

    def setrlimit(self, resource: int, limits: tuple[int, int], /) -> None: ...


def filesNeeded(config: Config) -> int:
    """
    About how many open files the AuthProxy needs at its connection cap:
    two sockets per WebSocket connection (the client's and the one to its
    game server), a few per game server (pipes and the control connection)
    and L{FILE_RESERVE} for listeners, logs and the like.
    """
    return (
        2 * config.maxConnections
        + 4 * config.gameServers
        + len(config.remoteGameServers)
        + FILE_RESERVE
    )


def raiseFileLimit(config: Config, limits: _Limits | None = None) -> list[str]:
    """
    Raise the soft limit of open files to the hard limit (Part 6), and say
    what is wrong if the limit is still low for C{config.maxConnections}.

    :param config: C{maxConnections}, C{gameServers} and
        C{remoteGameServers} are read.
    :param limits: the C{resource} module, or a fake of it in tests.
    :return: warnings to log, one sentence each (none on a platform without
        C{resource}).
    """
    if limits is None:
        try:
            import resource
        except ImportError:  # Windows
            return []
        limits = resource
    warnings: list[str] = []
    soft, hard = limits.getrlimit(limits.RLIMIT_NOFILE)
    # An unlimited hard limit is not a soft limit the kernel takes (Linux
    # caps it at nr_open, macOS at OPEN_MAX): try big values down.
    targets = [hard] if hard != limits.RLIM_INFINITY else [1_048_576, 65_536, 10_240]
    error: Exception | None = None
    for target in targets:
        if target <= soft:
            break
        try:
            limits.setrlimit(limits.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            error = e
        else:
            soft, error = target, None
            break
    if error is not None:
        warnings.append(f"cannot raise the open-files limit from {soft}: {error}")
    needed = filesNeeded(config)
    if not config.maxConnections:
        warnings.append(
            f"--max-connections 0: WebSocket connections are limited only by "
            f"the open-files limit, {soft}"
        )
    elif soft < needed:
        warnings.append(
            f"the open-files limit, {soft}, is low for --max-connections "
            f"{config.maxConnections}: about {needed} are needed (a socket to "
            f"the client and one to its game server per connection, plus game "
            f"servers and logs); raise the hard limit (ulimit -n, systemd "
            f"LimitNOFILE=) or lower --max-connections"
        )
    return warnings
