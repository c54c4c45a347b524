"""Error pages a person can read: the database being unreachable is a 503, not a stack trace.

403.html and 404.html are found by Django's own handlers; a refused form (CSRF) and a server
error come through the two views below.
"""

import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponseServerError
from django.shortcuts import render
from django.template import loader

UNAVAILABLE = (OperationalError, InterfaceError)


def handler500(request):
    """Django calls this while handling the exception, so sys.exception() names it."""
    if isinstance(sys.exception(), UNAVAILABLE):
        response = render(request, "503.html", status=503)
        response["Retry-After"] = "30"
        return response
    try:
        # No context processors: whatever failed (a database, a session) may fail again there.
        page = loader.get_template("500.html").render(
            {
                "company_name": settings.PORTAL_COMPANY_NAME,
                "compliance_email": settings.PORTAL_COMPLIANCE_EMAIL,
            }
        )
    except Exception:  # the error page must not raise in its turn: a plain one then
        return HttpResponseServerError("<h1>Server Error (500)</h1>")
    return HttpResponseServerError(page)


def csrf_failure(request, reason: str = ""):
    """A form refused for its CSRF token, explained with the portal's header (CSRF_FAILURE_VIEW)."""
    return render(request, "403_csrf.html", {"reason": reason}, status=403)
