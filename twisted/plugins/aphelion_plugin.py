# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd aphelion} plugin.
"""

from twisted.application.service import ServiceMaker

aphelion = ServiceMaker(
    "aphelion", "aphelion.tap", "Aphelion game gateway.", "aphelion"
)
