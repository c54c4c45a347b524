"""What a request tells about who signed and from where, as recorded in the ledger.

Everything here is read from the server's view of the request: the socket address (or the
X-Forwarded-For of a configured trusted proxy), the session's authentication records kept by
django-allauth, and the request id. A fact that is not available is recorded as None ("not
recorded"), never guessed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import zoneinfo
from dataclasses import dataclass

from allauth.account.authentication import get_authentication_records
from django.conf import settings
from django.utils import translation

from .ledger import utc_iso
from .proxies import is_trusted_proxy
from .request_log import current_request_id

MAX_USER_AGENT = 1000


@dataclass(frozen=True)
class ClientEvidence:
    ip: str | None
    user_agent: str | None
    request_id: str
    session_key_sha256: str | None
    auth_method: str | None
    authenticated_at: dt.datetime | None
    mfa: bool
    browser_time_zone: str | None
    locale: str

    def as_payload(self) -> dict:
        return {
            "client": {
                "ip": self.ip,
                "user_agent": self.user_agent,
                "request_id": self.request_id,
            },
            "authentication": {
                "method": self.auth_method,
                "authenticated_at": utc_iso(self.authenticated_at),
                "mfa": self.mfa,
            },
            "session_key_sha256": self.session_key_sha256,
            "browser_time_zone": self.browser_time_zone,
            "locale": self.locale,
        }


def client_ip(request) -> str | None:
    """The client's address: X-Forwarded-For is believed only when sent by a trusted proxy.

    Walking the forwarded chain from the right, the first address that is not itself a
    trusted proxy is the client.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    if remote is None or not is_trusted_proxy(remote):
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not is_trusted_proxy(address):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return None
    return remote


def browser_zone(name: str) -> str | None:
    """A valid IANA zone name reported by the browser, or None."""
    if not name or len(name) > 64:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return name


def _authentication(request) -> tuple[str | None, dt.datetime | None, bool]:
    records = get_authentication_records(request, request.user)
    if not records:
        return None, None, False
    methods = []
    for record in records:
        method = record.get("method")
        if method == "mfa":
            methods.append(str(record.get("type", "mfa")).upper())
        elif method == "socialaccount":
            methods.append(f"SSO via {record.get('provider', 'unknown provider')}")
        elif method:
            methods.append(str(method))
    latest = max(float(record.get("at", 0)) for record in records)
    mfa = any(record.get("method") == "mfa" for record in records)
    return " + ".join(dict.fromkeys(methods)), dt.datetime.fromtimestamp(latest, dt.UTC), mfa


def needs_fresh_sign_in(request) -> bool:
    """Whether the last sign-in (or re-authentication) is older than signing allows."""
    _, authenticated_at, _ = _authentication(request)
    if authenticated_at is None:
        return True
    age = dt.datetime.now(dt.UTC) - authenticated_at
    return age > dt.timedelta(minutes=settings.PORTAL_SIGNING_REAUTH_MINUTES)


def from_request(request, *, browser_time_zone: str = "") -> ClientEvidence:
    method, authenticated_at, mfa = _authentication(request)
    session_key = request.session.session_key
    user_agent = request.headers.get("User-Agent", "")[:MAX_USER_AGENT] or None
    return ClientEvidence(
        ip=client_ip(request),
        user_agent=user_agent,
        request_id=getattr(request, "id", None) or current_request_id(),
        session_key_sha256=(
            hashlib.sha256(session_key.encode("ascii")).hexdigest() if session_key else None
        ),
        auth_method=method,
        authenticated_at=authenticated_at,
        mfa=mfa,
        browser_time_zone=browser_zone(browser_time_zone),
        locale=translation.get_language() or settings.LANGUAGE_CODE,
    )
