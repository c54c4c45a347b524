"""Where single sign-on sends the browser: the origins of the OpenID Connect providers' sign-in.

The providers are configured in settings (PORTAL_OIDC_SERVER_URL) or in the admin (social
applications of provider "OpenID Connect"); allauth lists both. A provider's authorization
endpoint may live on another origin than its server URL, so its discovery document is read
too, as allauth reads it, and remembered for a while in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import re
from urllib.parse import urlsplit

import requests
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.models import SocialApp
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)

OPENID_CONNECT = "openid_connect"
# A sign-in page must not wait long for an identity provider that does not answer.
DISCOVERY_TIMEOUT_SECONDS = 3
DISCOVERY_CACHE_SECONDS = 60 * 60
# A provider that failed is asked again soon, but not by every page view in between.
DISCOVERY_FAILURE_CACHE_SECONDS = 60
# What goes into a Content-Security-Policy header: anything else (an IPv6 literal, a header
# delimiter sent back by a provider) is left out rather than trusted.
_SAFE_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(?::[0-9]{1,5})?")


def origin_of(url: object) -> str | None:
    """The scheme://host[:port] of an http(s) URL; None for anything else."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    found = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return found if _SAFE_ORIGIN.fullmatch(found) else None


def _discovered_authorization_origin(discovery_url: str) -> str | None:
    """The origin of the authorization endpoint a discovery document names (cached)."""
    key = "sso:authorization-origin:" + hashlib.sha256(discovery_url.encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return cached or None
    try:
        with get_adapter().get_requests_session() as session:
            response = session.get(discovery_url, timeout=DISCOVERY_TIMEOUT_SECONDS)
            response.raise_for_status()
            document = response.json()
    except (requests.RequestException, ValueError) as failure:
        logger.warning("SSO discovery document unavailable at %s: %s", discovery_url, failure)
        cache.set(key, "", DISCOVERY_FAILURE_CACHE_SECONDS)
        return None
    endpoint = document.get("authorization_endpoint") if isinstance(document, dict) else None
    found = origin_of(endpoint)
    if found is None:
        logger.warning(
            "SSO discovery document at %s names no usable authorization endpoint", discovery_url
        )
    cache.set(key, found or "", DISCOVERY_CACHE_SECONDS)
    return found


def _app_origins(request: HttpRequest, app: SocialApp) -> set[str]:
    app_settings = app.settings if isinstance(app.settings, dict) else {}
    found = {origin_of(app_settings.get("server_url"))}
    overrides = app_settings.get("openid_configuration_overrides")
    overridden = overrides.get("authorization_endpoint") if isinstance(overrides, dict) else None
    if overridden:
        # allauth lets the override win over the discovered endpoint: nothing to fetch.
        found.add(origin_of(overridden))
    elif app_settings.get("server_url"):
        found.add(_discovered_authorization_origin(app.get_provider(request).server_url))
    return {value for value in found if value}


def providers(request: HttpRequest | None = None) -> list[SocialApp]:
    """The configured OpenID Connect providers, from settings and the admin alike."""
    apps = get_adapter().list_apps(request, provider=OPENID_CONNECT)
    return [app for app in apps if app.provider == OPENID_CONNECT]


def sign_in_origins(request: HttpRequest) -> list[str]:
    """The origins every configured OpenID Connect provider's sign-in may be served from."""
    origins: set[str] = set()
    for app in providers(request):
        origins |= _app_origins(request, app)
    return sorted(origins)
