"""
Tests of aphelion.
"""
