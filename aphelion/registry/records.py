# -*- test-case-name: tests.test_registry_redis -*-
"""
What the cluster keeps in Redis (Part 5): the names of the keys, the Lua
scripts that change them at once, the records read back, and how Redis's
replies are decoded. L{aphelion.registry.redis} (the sessions) and
L{aphelion.registry.cluster} (the game servers) use them.

The sessions (L{RedisSessionRegistry<aphelion.registry.redis.RedisSessionRegistry>}):

- C{<prefix>node:<nodeId>}: a hash (its address, players, playing) that
  expires C{deadAfter} seconds after its last refresh; refreshed with the
  counts every C{countsInterval} seconds.
- C{<prefix>session:<sha256(token) hex>}: a hash (session id, owning node,
  player id, name, attributes, game-server id). It expires the session
  timeout after the last connection closed (or, when its node died,
  C{sessionTimeout + deadAfter} after the node's last refresh of it), so
  nothing needs sweeping.
- C{<prefix>player:<playerId>}: the session key the player is bound to,
  with the same life.
- the channel C{<prefix>node:<nodeId>}: messages to that node (a kick of
  a session whose player logged in elsewhere; a request to release a
  session that resumes elsewhere, and its answer with the queued packets).

The game servers (L{ClusterPool<aphelion.registry.cluster.ClusterPool>}):
C{<prefix>gs:<serverId>}, a hash of the owning node, address, client
token, capacity, players, accepting, and C{<prefix>gs:<id>:seats}, the
places reserved on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from zope.interface import implementer

from aphelion.interfaces import IPlayer, IPlayerLink, IPooledServer

__all__ = [
    "BIND",
    "CLAIM",
    "DELETE_MINE",
    "FORGET",
    "LOOPBACK",
    "PUBLISH",
    "RESERVE",
    "SharedGameServer",
    "hashReply",
    "identityFields",
    "newNodeId",
    "sessionKey",
    "text",
]

# -- the sessions -------------------------------------------------------------

# Bind a player to a session; answer the session it was bound to before
# (or, with refuse, leave it and answer that one while it lives).
BIND = """
local old = redis.call('GET', KEYS[1])
if old == ARGV[1] then return false end
if old and ARGV[3] == '1' and redis.call('EXISTS', ARGV[4] .. old) == 1 then
  return {'refused', old, redis.call('HGET', ARGV[4] .. old, 'node') or ''}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], 'node', ARGV[5], 'sid', ARGV[6], 'player', ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if old then
  return {'replaced', old, redis.call('HGET', ARGV[4] .. old, 'node') or ''}
end
return false
"""

# Forget a session, and its player's binding if it still names it.
FORGET = """
redis.call('DEL', KEYS[1])
if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
"""


def newNodeId() -> str:
    """
    :return: a fresh random node id (16 hex digits).
    """
    return os.urandom(8).hex()


def sessionKey(token: bytes) -> str:
    """
    :return: the name of a session in Redis: the SHA-256 of its token, in
        hex (never the token itself).
    """
    return hashlib.sha256(token).hexdigest()


def identityFields(identity: IPlayer | None) -> list[Any]:
    """
    :return: the fields of a session's record that name its player (none
        before it is authenticated).
    """
    if identity is None:
        return []
    return [
        "name",
        identity.name,
        "attrs",
        json.dumps(dict(identity.attributes), sort_keys=True),
    ]


# -- the game servers ---------------------------------------------------------

PUBLISH = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# Hold (or take, when nobody holds it) the control of a remote game server.
CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Delete a key only while a field (or, for a string, the value) names us.
DELETE_MINE = """
local holder
if redis.call('TYPE', KEYS[1])['ok'] == 'hash' then
  holder = redis.call('HGET', KEYS[1], 'node')
else
  holder = redis.call('GET', KEYS[1])
end
if holder == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('HGET', KEYS[1], 'accepting') ~= '1' then return 0 end
local capacity = tonumber(redis.call('HGET', KEYS[1], 'capacity') or '0')
local players = tonumber(redis.call('HGET', KEYS[1], 'players') or '0')
if players + redis.call('ZCARD', KEYS[2]) >= capacity then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@implementer(IPooledServer)
@dataclass(eq=False)
class SharedGameServer:
    """
    A game server that another node of the cluster controls, as its record
    in Redis says.

    :ivar token: its client token (what player connections present).
    :ivar pending: seats this node is setting up on it.
    """

    serverId: str
    node: str = ""
    host: str = "127.0.0.1"
    port: int | None = None
    token: bytes = field(default=b"", repr=False)
    name: str = ""
    capacity: int = 0
    players: int = 0
    accepting: bool = False
    pending: int = 0
    links: set[IPlayerLink] = field(default_factory=set)
    draining: bool = False

    @property
    def clientToken(self) -> bytes:
        """
        What its player connections present (the same as L{token}).
        """
        return self.token

    def hasRoom(self) -> bool:
        """
        Whether it takes players and has room, as last known.
        """
        return self.accepting and self.port is not None and self.load() < self.capacity

    def load(self) -> int:
        """
        Its players, and the seats this node is setting up on it.
        """
        return max(self.players, len(self.links)) + self.pending

    def update(self, record: dict[str, str]) -> None:
        """
        Take in what its record says now.
        """
        self.node = record.get("node", "")
        self.host = record.get("host", "127.0.0.1")
        self.port = int(record["port"]) if record.get("port") else None
        self.token = bytes.fromhex(record.get("ctoken", ""))
        self.name = record.get("name", "")
        self.capacity = int(record.get("capacity") or 0)
        self.players = int(record.get("players") or 0)
        self.accepting = record.get("accepting") == "1"


# -- replies ------------------------------------------------------------------


def text(value: Any) -> str:
    """
    :return: a string of Redis's reply C{value} (bytes are UTF-8).
    """
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")


def hashReply(reply: Any) -> dict[str, str]:
    """
    :return: the fields of an C{HGETALL} reply, as text.
    """
    items = reply or []
    return {text(items[i]): text(items[i + 1]) for i in range(0, len(items), 2)}
