"""Error pages a person can read: the database being unreachable is a 503, not a stack trace."""

import sys

from django.db import InterfaceError, OperationalError
from django.shortcuts import render
from django.views.defaults import server_error

UNAVAILABLE = (OperationalError, InterfaceError)


def handler500(request):
    """Django calls this while handling the exception, so sys.exception() names it."""
    if isinstance(sys.exception(), UNAVAILABLE):
        response = render(request, "503.html", status=503)
        response["Retry-After"] = "30"
        return response
    return server_error(request)
