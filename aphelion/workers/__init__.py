# -*- test-case-name: tests.test_workers -*-
"""
C{--workers N} (Part 5.3): N AuthProxy worker processes on one host that
share the listening sockets, and a parent that runs the game servers.

One command, C{twistd -n aphelion --workers 2 --listen tcp:8080 ...}, makes
the parent (L{WorkersService}):

- it binds every C{--listen} socket itself (L{bindListening}) and hands the
  descriptors to each worker, which adopts them
  (C{reactor.adoptStreamPort}): the kernel queues connections on the one
  shared socket and whichever worker is free accepts the next;
- it spawns and controls the game servers, as an AuthProxy without players
  (the service tree of L{aphelion.service.build} with no listeners), and
  publishes them to the workers (L{GameServerRecord}: address, client token,
  load), so that the workers seat players on them with the client token;
- it spawns the workers (C{python -m twisted aphelion <the same options>
  --worker I}) and restarts a dead one with back-off, as game servers are;
  their log lines are logged by the parent.

A worker (L{makeWorkerService}) is an AuthProxy without game servers of its
own: its pool (L{PublishedPool}) holds the game servers the parent
publishes on the worker's standard input, one JSON line per change; when
that input closes (the parent is gone) the worker stops.

Why descriptors handed down rather than C{SO_REUSEPORT}: the shared socket
keeps one accept queue, so connections that a killed worker had not
accepted yet are accepted by the others (with C{SO_REUSEPORT} each worker
has its own queue, and the kernel drops what was queued on the dead one's);
no other process can bind the port meanwhile; and the parent, which may
drop privileges after binding, does not need the workers to bind again.
"""

from aphelion.workers.listen import ListenSpec, bindListening, parseListen
from aphelion.workers.parent import WorkersService, workerCommand
from aphelion.workers.pool import GameServerRecord, PublishedPool, PublishedServer
from aphelion.workers.worker import RecordsReader, makeWorkerService

__all__ = [
    "GameServerRecord",
    "ListenSpec",
    "PublishedPool",
    "PublishedServer",
    "RecordsReader",
    "WorkersService",
    "bindListening",
    "makeWorkerService",
    "parseListen",
    "workerCommand",
]
