# -*- test-case-name: tests.test_admin -*-
"""
The operators' endpoint (C{--admin}): Prometheus metrics, health and
readiness probes, a JSON API behind a bearer token and a live dashboard, on
a twisted.web site apart from the players' one.

L{Lifecycle} says whether the AuthProxy is draining; L{makeAdminSite}
builds the site.
"""

from aphelion.admin.lifecycle import Lifecycle
from aphelion.admin.site import AdminSite, makeAdminSite

__all__ = ["AdminSite", "Lifecycle", "makeAdminSite"]
