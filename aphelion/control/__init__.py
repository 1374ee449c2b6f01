"""
The AuthProxy <-> GameServer side: envelope protocols, game servers, spawning.
"""
