"""
aphelion: a Twisted game-networking gateway.

Players connect over WebSocket to the AuthProxy, which shakes hands,
acknowledges packets, authenticates them and relays them to game servers
spoken to over TCP envelopes.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
