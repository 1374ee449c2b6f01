"""
Start an AuthProxy with C{--workers N} for benchmarks/workers.py: the same
as C{twistd -n aphelion <options>}, except that the parent of N > 1 workers
is started here even while C{twistd aphelion} has no C{--registry} option to
satisfy its "needs a Redis registry" check (the workers seat players on the
parent's game servers, which the parent publishes to them over their
standard input; a Redis registry adds the cluster-wide counts). When the
option exists and the command line gives it, it is passed on as it is.

    python benchmarks/workers_server.py --workers 2 --listen tcp:8080 ...

Logs go to standard output, as twistd -n writes them.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.logger import globalLogBeginner, textFileLogObserver

from aphelion.service import build
from aphelion.tap import Options
from aphelion.workers import WorkersService


def main(argv: list[str]) -> None:
    """
    Parse the options as C{twistd aphelion} does and run the service.
    """
    reactor: Any = _reactor
    workers = 1
    parseable = list(argv)
    if "--workers" in parseable:
        at = parseable.index("--workers")
        workers = int(parseable[at + 1])
        parseable[at + 1] = "1"  # the Redis check is for twistd's parent
    options = Options()
    options.parseOptions(parseable)
    config = replace(options.toConfig(), workers=workers)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    service = (
        WorkersService(config, reactor, argv) if workers > 1 else build(config, reactor)
    )
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
