"""
Session registries on a shared store, behind
L{aphelion.interfaces.ISessionRegistry}, so that several AuthProxies form one
cluster (Part 5): L{aphelion.registry.redis.RedisSessionRegistry} on Redis,
reached by L{aphelion.registry.client.RedisClient}; and the cluster's view
of every game server (L{aphelion.registry.cluster}).
"""
