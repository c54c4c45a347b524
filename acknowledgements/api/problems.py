"""The read API's errors as problem details (RFC 9457): `application/problem+json` bodies with
`type`, `title`, `status` and `detail`, and `invalid_params` naming what a 400 refused.

Each problem is `about:blank`: its title is the HTTP status phrase, and `detail` says, in the
reader's language, what went wrong with this request.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from django.http import HttpResponse

CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """A request the API refuses; the handler turns it into its problem details."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        invalid_params: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.invalid_params = invalid_params
        self.headers = headers or {}

    def response(self) -> HttpResponse:
        return problem_response(
            self.status, self.detail, invalid_params=self.invalid_params, headers=self.headers
        )


def invalid_parameter(name: str, reason: str, *, location: str = "query") -> Problem:
    """A 400 naming the parameter it refuses."""
    return Problem(
        400,
        f"{name}: {reason}",
        invalid_params=[{"name": name, "location": location, "reason": reason}],
    )


def problem_response(
    status: int,
    detail: str,
    *,
    invalid_params: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if invalid_params:
        body["invalid_params"] = invalid_params
    response = HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response
