"""The read API's service (django-ninja): who may call it (a live read token, within its
rate), its errors as problem details, and the parameters every operation reads the same way.
The operations are in api/endpoints.py.

Only a live read token opens it (a SCIM token gets a 403, no or a revoked token a 401), a
number of requests a minute (429 with Retry-After). Errors are problem details (RFC 9457);
a parameter it cannot use is a 400 that names it, whatever its value.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.docs import Swagger
from ninja.security import HttpBearer

from acknowledgements.api import access, schemas, tokens
from acknowledgements.api.problems import CONTENT_TYPE, Problem, invalid_parameter, problem_response
from acknowledgements.models import ApiToken

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_ID = 2**63 - 1  # the largest id the databases store: a larger one is refused, not sent
CURSOR_SALT = "acknowledgements.api.cursor"
REALM = 'Bearer realm="api"'

DESCRIPTION = """
Read-only access to the policy portal for other systems: who must sign which policy, who has
signed, and the evidence of each signature.

**Authentication.** Send a read token, made by an administrator at `/manage/integrations/` or
with `manage.py api_token create --name NAME`, as `Authorization: Bearer <token>`.

**Statuses.** The same rules and figures as the portal's reports: a person in a policy's scope
is `signed`, `declined`, `overdue` or `pending`, now or at the moment given as `as_of` (an ISO
8601 time with its offset, e.g. `2026-03-31T17:00:00Z`). Where a policy must be re-acknowledged
every N months, a signature counts only until it lapses: a person whose every signature has
lapsed is `renewal_due` for the time the policy gives to sign (`lapses_at` says when it
lapsed), then `lapsed`, which counts as overdue.

**Pages.** Lists come a page at a time in id order; pass `next_cursor` as `cursor` (or follow
`next`). A people list's cursor keeps the moment of its first page.

**Errors** are problem details (RFC 9457, `application/problem+json`); a 400 names the
parameter in `invalid_params`. Too many requests get a 429 with `Retry-After`.
"""


class PortalApi(NinjaAPI):
    def _get_urls(self) -> list[URLResolver | URLPattern]:
        """The API's addresses, each answering a method it does not serve in problem details."""
        return [
            _problem_when_not_allowed(url) if isinstance(url, URLPattern) else url
            for url in super()._get_urls()
        ]

    def get_openapi_operation_id(self, operation: Any) -> str:
        """The operation's function name (list_policies...): what generated clients call."""
        return operation.view_func.__name__

    def get_openapi_schema(self, **kwargs: Any) -> Any:
        """The generated schema, with errors declared as the problem details they are sent as."""
        schema = super().get_openapi_schema(**kwargs)
        for operations in schema["paths"].values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        response["content"] = {CONTENT_TYPE: content["application/json"]}
        return schema


def _problem_when_not_allowed(url: URLPattern) -> URLPattern:
    view = url.callback

    @functools.wraps(view)
    def answered(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code != 405 or response.get("Content-Type") == CONTENT_TYPE:
            return response
        allowed = response.get("Allow", "")
        return problem_response(
            405,
            _("This address answers only %(methods)s.") % {"methods": allowed},
            headers={"Allow": allowed},
        )

    return URLPattern(url.pattern, answered, url.default_args, url.name)


class ReadToken(HttpBearer):
    """A live read token, and within its rate; a token of another scope is refused (403)."""

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        # The header as the tokens module reads it ("bearer" in any case, spaces around).
        return self.authenticate(
            request, tokens.bearer_secret(request.headers.get("Authorization", ""))
        )

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        found = tokens.live_token(token)
        if found is None:
            return None
        if found.scope != ApiToken.Scope.READ:
            raise Problem(403, _("This token is not a read token: it cannot read the API."))
        wait = access.seconds_until_allowed(found)
        if wait is not None:
            raise Problem(
                429,
                _("Too many requests with this token: try again in %(seconds)s seconds.")
                % {"seconds": wait},
                headers={"Retry-After": str(wait)},
            )
        tokens.mark_used(found)
        return found


api = PortalApi(
    title="Policy portal read API",
    version="1",
    description=DESCRIPTION,
    auth=ReadToken(),
    urls_namespace="acknowledgements:api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs_decorator=require_GET,
    # The page's script and styles come from the package's static files (no CDN), as the
    # portal's Content-Security-Policy requires; no badge fetched from swagger.io.
    docs=Swagger(settings={"validatorUrl": None}),
)


# --- Errors --------------------------------------------------------------------------------------


@api.exception_handler(Problem)
def _problem(request: HttpRequest, exc: Problem) -> HttpResponse:
    return exc.response()


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem_response(
        401,
        _("Send a live read token as “Authorization: Bearer <token>”."),
        headers={"WWW-Authenticate": REALM},
    )


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    invalid = []
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ())]
        where, name = (
            (location[0], location[1]) if len(location) > 1 else ("query", "".join(location))
        )
        invalid.append({"name": name, "location": where, "reason": str(error.get("msg", ""))})
    detail = "; ".join(f"{param['name']}: {param['reason']}" for param in invalid)
    return problem_response(400, detail, invalid_params=invalid)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(404, str(exc) or _("Nothing is at this address."))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return problem_response(exc.status_code, str(exc))


ERRORS: dict[int, Any] = {
    400: schemas.Problem,
    401: schemas.Problem,
    403: schemas.Problem,
    429: schemas.Problem,
}
NOT_FOUND: dict[int, Any] = {404: schemas.Problem}


# --- Parameters ----------------------------------------------------------------------------------


def moment_asked(value: dt.datetime | None, name: str = "as_of") -> dt.datetime:
    """The moment asked for (now when not given): a past one the reports would accept too."""
    if value is None:
        return timezone.now()
    earliest, latest = schemas.EARLIEST_DATE, schemas.LATEST_DATE
    if not earliest <= value.date() <= latest:
        raise invalid_parameter(
            name,
            _("Enter a time between %(earliest)s and %(latest)s.")
            % {"earliest": earliest.isoformat(), "latest": latest.isoformat()},
        )
    if value > timezone.now():
        raise invalid_parameter(name, _("That moment is in the future: choose a past one."))
    return value


def cursor(list_name: str, position: dict[str, Any]) -> str:
    """An opaque cursor for the page after `position`, signed so that only the list it came
    from takes it back."""
    return signing.dumps(position, salt=f"{CURSOR_SALT}.{list_name}")


def cursor_position(list_name: str, value: str | None, *keys: str) -> dict[str, Any]:
    """What a cursor of the list `list_name` holds (`after` and `keys`); anything else is a 400."""
    if not value:
        return {}
    try:
        found = signing.loads(value, salt=f"{CURSOR_SALT}.{list_name}")
    except signing.BadSignature:
        found = None
    if (
        not isinstance(found, dict)
        or not isinstance(found.get("after"), int)
        or not all(isinstance(found.get(key), str) for key in keys)
    ):
        raise invalid_parameter("cursor", _("This is not a cursor the API gave."))
    return found


def next_url(request: HttpRequest, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    params = {key: value for key, value in request.GET.items() if key != "cursor"}
    return request.build_absolute_uri(f"{request.path}?{urlencode(params | {'cursor': cursor})}")


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def record_personal_data_read(request: HttpRequest) -> None:
    access.record_personal_data_read(token=request.auth, what=request.get_full_path()[:500])  # type: ignore[attr-defined]
