"""Request ids for logs and evidence, and showing times in the viewer's own time zone."""

import logging
import re
import uuid
import zoneinfo
from contextvars import ContextVar

from django.utils import timezone

from .proxies import is_trusted_proxy

_request_id: ContextVar[str] = ContextVar("request_id", default="-")
# A request id from the load balancer is kept only when a trusted proxy sent it and it looks
# like one; otherwise a client could choose the id written into its own evidence.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
TIMEZONE_COOKIE = "portal_tz"


def current_request_id() -> str:
    return _request_id.get()


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        trusted = is_trusted_proxy(request.META.get("REMOTE_ADDR", ""))
        request.id = incoming if trusted and _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = _request_id.set(request.id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-Id"] = request.id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


def viewer_zone(request) -> zoneinfo.ZoneInfo | None:
    """The IANA zone the browser reported (cookie set by static/js/portal.js), if valid."""
    name = request.COOKIES.get(TIMEZONE_COOKIE, "")
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class ViewerTimezoneMiddleware:
    """Times are stored in UTC and shown in the zone of the person reading them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = viewer_zone(request)
        if zone:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
