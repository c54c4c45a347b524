"""Request ids for logs and evidence, addresses with control characters refused, times in the
viewer's zone, the signing gate, and the sign-in pages' Content-Security-Policy."""

import re
import time
import uuid
import zoneinfo
from urllib.parse import unquote

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import Resolver404, resolve
from django.utils import timezone, translation
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext as _

from acknowledgements import sso
from acknowledgements.api.problems import problem_response
from acknowledgements.evidence.client_evidence import browser_zone
from acknowledgements.notifications.reminders import direct_reports
from acknowledgements.proxies import is_trusted_proxy
from acknowledgements.request_log import request_id_context
from acknowledgements.standings.coverage import standings_for
from acknowledgements.templatetags.policy_names import policy_name
from acknowledgements.templatetags.team import MANAGES_PEOPLE

# A request id from the load balancer is kept only when a trusted proxy sent it and it looks
# like one; otherwise a client could choose the id written into its own evidence.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
TIMEZONE_COOKIE = "portal_tz"


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        trusted = is_trusted_proxy(request.META.get("REMOTE_ADDR", ""))
        request.id = incoming if trusted and _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_context.set(request.id)
        try:
            response = self.get_response(request)
        finally:
            request_id_context.reset(token)
        response["X-Request-Id"] = request.id
        return response


API_PREFIX = "/api/"
# C0 control characters (NUL included) and DEL: no address of the portal has one.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharacterMiddleware:
    """A path or query string with a control character gets a 400 before any view reads it.

    PostgreSQL refuses a NUL byte in any text it is given, and every path segment and query
    value ends up in a query (a slug, a version, a receipt number, a search, a filter's
    choice): refused here, once, such input never reaches one, instead of each converter,
    form and lookup having to refuse it and the one that does not answering with a 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Decoded once, as QueryDict decodes it: "%2500" is the text "%00", not a NUL.
        query = unquote(request.META.get("QUERY_STRING", ""), errors="replace")
        if _CONTROL_CHARACTER.search(request.path) or _CONTROL_CHARACTER.search(query):
            # Before LocaleMiddleware: the language is read from the request here.
            with translation.override(translation.get_language_from_request(request)):
                message = _(
                    "This address contains a control character (such as a NUL byte), which no "
                    "address of the portal contains. Check the link and try again."
                )
            if request.path.startswith(API_PREFIX):  # the API answers in problem details
                return problem_response(400, message)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def viewer_zone(request) -> zoneinfo.ZoneInfo | None:
    """The IANA zone the browser reported (cookie set by static/js/portal.js), if valid."""
    name = browser_zone(request.COOKIES.get(TIMEZONE_COOKIE, ""))
    return zoneinfo.ZoneInfo(name) if name else None


# When a signed-in session was last written (noted in it).
SESSION_WRITTEN = "portal_session_written"
SESSION_WRITE_INTERVAL = 60  # seconds


class ActiveSessionMiddleware:
    """A signed-in session lasts SESSION_COOKIE_AGE after the person's last request, as if it
    were written on every request, but is written at most once a minute (an idle time out by
    up to a minute sooner); the same write refreshes whether the person manages anyone, which
    the menu shows on every page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            written = request.session.get(SESSION_WRITTEN, 0)
            if time.time() - written >= SESSION_WRITE_INTERVAL:
                note_session(request, user)  # written when the response goes
        return self.get_response(request)


def note_session(request, user, **kwargs) -> None:
    """What a signed-in session keeps (also on signing in, which writes the session anyway)."""
    request.session[SESSION_WRITTEN] = int(time.time())
    request.session[MANAGES_PEOPLE] = direct_reports(user).exists()


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


# Pages a person whose signature is overdue may still open: what they must sign, their own
# records, verification, and their account (sign-out, password, MFA).
GATE_OPEN_URL_NAMES = {
    "policy_detail",
    "revision_detail",
    "sign",
    "decline",
    "acknowledgement_detail",
    "receipt_download",
    "my_acknowledgements",
    "my_data",
    "preferences",
    "verify",
    # A security incident must be reportable by anyone, overdue or not (the policy's section 8).
    "concern_new",
    "concern_thanks",
}
# /scim/ and /api/: token-authenticated APIs, which no signed-in person browses; /dev/: the
# development outbox, where `make run` shows its emails (a 404 outside DEBUG).
GATE_OPEN_PREFIXES = (
    "/accounts/",
    "/dev/",
    "/static/",
    "/favicon.ico",
    "/healthz",
    "/readyz",
    "/scim/",
    API_PREFIX,
)


class SigningGateMiddleware:
    """Once a signature is overdue, other pages send the person to what they must sign.

    The policy's section 7: access depends on compliance. Exempt accounts (service,
    break-glass) pass; the exemption is granted through an audited service.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated:
            request.standings = SimpleLazyObject(lambda: standings_for(user))
            if not user.is_gate_exempt and not self._is_open(request):
                overdue = [standing for standing in request.standings if standing.overdue]
                if overdue:
                    messages.warning(
                        request,
                        _("Your signature of %(policy)s is overdue. Please sign it to continue.")
                        % {"policy": policy_name(overdue[0].current)},
                    )
                    return redirect("acknowledgements:policy_detail", slug=overdue[0].policy.slug)
        return self.get_response(request)

    @staticmethod
    def _is_open(request) -> bool:
        if request.path.startswith(GATE_OPEN_PREFIXES):
            return True
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return True  # a 404 reveals nothing and blocks nothing
        return match.url_name in GATE_OPEN_URL_NAMES


class StaffMfaMiddleware:
    """With PORTAL_REQUIRE_MFA_FOR_STAFF, administrators and auditors set up MFA first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if (
            settings.PORTAL_REQUIRE_MFA_FOR_STAFF
            and user.is_authenticated
            and (user.is_policy_admin or user.is_auditor or user.is_superuser)
            and not request.path.startswith(GATE_OPEN_PREFIXES)
            and not Authenticator.objects.filter(
                user=user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
            ).exists()
        ):
            messages.warning(
                request,
                _("Your role requires two-factor authentication. Please set it up to continue."),
            )
            return redirect("mfa_index")
        return self.get_response(request)


class PreferredLanguageMiddleware:
    """A signed-in person sees the portal in the language saved in their account."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and user.preferred_language:
            translation.activate(user.preferred_language)
            request.LANGUAGE_CODE = user.preferred_language
        response = self.get_response(request)
        if user.is_authenticated:
            response.headers.setdefault("Content-Language", translation.get_language())
        return response


ACCOUNT_PAGES_PREFIX = "/accounts/"


class SsoFormActionMiddleware:
    """Pages under /accounts/ may send their forms on to the configured identity providers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.path_info.startswith(ACCOUNT_PAGES_PREFIX)
            and response.get("Content-Type", "").startswith("text/html")
            and not 300 <= response.status_code < 400
        ):
            # form-action also governs the redirects that follow a form's POST: the SSO
            # buttons post to the portal, which redirects to the identity provider, and the
            # browser aborts that redirect unless the provider's origin is listed.
            policy = getattr(response, "_csp_config", settings.SECURE_CSP)
            allowed = policy.get("form-action") if policy else None
            if allowed and (origins := sso.sign_in_origins(request)):
                allowed = [allowed] if isinstance(allowed, str) else list(allowed)
                response._csp_config = {**policy, "form-action": [*allowed, *origins]}
        return response
