"""
Protocol Buffers schemas of the contract and their generated modules.

Regenerate after editing a C{.proto} file with C{python -m aphelion.proto.generate}.
"""
