"""
The AuthProxy's side of Part 2: the envelope protocol base, the control and
player-link clients, and the spawning and supervision of game servers. The
game servers' side is L{aphelion.game}.
"""
