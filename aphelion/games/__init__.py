"""
Games that ship with aphelion, as examples of subclassing.
"""
