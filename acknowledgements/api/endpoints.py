"""The read API's operations at /api/v1/: each checks its parameters, reads through
api/queries.py and answers with api/representation.py's fields. The OpenAPI schema at
/api/v1/openapi.json and the documentation at /api/v1/docs are generated from them; the token,
the rate limit and the errors are api/service.py's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from ninja import Query

from acknowledgements.api import queries, representation, schemas, service
from acknowledgements.api.problems import Problem, invalid_parameter, problem_response
from acknowledgements.api.service import (
    ERRORS,
    MAX_ID,
    MAX_PAGE_SIZE,
    NOT_FOUND,
    PAGE_SIZE,
    api,
    base_url,
    cursor_position,
    moment_asked,
    next_url,
    record_personal_data_read,
)
from acknowledgements.standings.coverage import Timeline

__all__ = ["api", "unknown_address"]


def _policy(slug: str) -> tuple[Any, list]:
    found = queries.policy(slug)
    if found is None:
        raise Problem(404, _("No policy has the slug %(slug)s.") % {"slug": slug})
    return found


Limit = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="How many rows a page holds.")
AsOf = Query(None, description="The moment to answer for (default: now), with its offset.")
CursorParam = Query(None, max_length=500, description="The `next_cursor` of the page before.")
StatusParam = Query(None, description="Only people with this status.")
AudienceParam = Query(None, max_length=100, description="Only people in this audience (its slug).")
PersonIdParam = Query(None, ge=1, le=MAX_ID, description="The person's id.")
EmailParam = Query(None, max_length=254, description="Their email address.")
ExternalIdParam = Query(
    None, max_length=255, description="The id the HR system or directory knows them by."
)
PolicyParam = Query(None, max_length=100, description="A policy's slug.")
RevisionParam = Query(None, ge=1, le=MAX_ID, description="A revision's id.")
SignedSinceParam = Query(None, description="Only signatures from this time on, with its offset.")


# --- Policies ------------------------------------------------------------------------------------


@api.get(
    "/policies",
    response={200: schemas.PolicyList, **ERRORS},
    tags=["Policies"],
    url_name="policies",
)
def list_policies(request: HttpRequest) -> dict:
    """Every policy with its published revisions."""
    items = [representation.policy_fields(p, revisions) for p, revisions in queries.policies()]
    return {"items": items}


@api.get(
    "/policies/{slug}",
    response={200: schemas.Policy, **ERRORS, **NOT_FOUND},
    tags=["Policies"],
    url_name="policy",
)
def get_policy(request: HttpRequest, slug: str) -> dict:
    """One policy with its published revisions."""
    policy, revisions = _policy(slug)
    return representation.policy_fields(policy, revisions)


@api.get(
    "/policies/{slug}/figures",
    response={200: schemas.Figures, **ERRORS, **NOT_FOUND},
    tags=["Policies"],
    url_name="policy_figures",
)
def get_policy_figures(
    request: HttpRequest, slug: str, as_of: schemas.MomentParam | None = AsOf
) -> dict:
    """How many people in scope are signed, pending, overdue or declined, in all and per
    audience: the figures of the reports' dashboard at the same moment."""
    moment = moment_asked(as_of)
    policy, revisions = _policy(slug)
    timeline = Timeline.at(revisions, moment)
    return representation.figures_fields(queries.policy_figures(policy, timeline, moment))


@api.get(
    "/policies/{slug}/people",
    response={200: schemas.PeoplePage, **ERRORS, **NOT_FOUND},
    tags=["People"],
    url_name="policy_people",
)
def list_policy_people(
    request: HttpRequest,
    slug: str,
    as_of: schemas.MomentParam | None = AsOf,
    status: schemas.Status | None = StatusParam,
    audience: str | None = AudienceParam,
    cursor: str | None = CursorParam,
    limit: int = Limit,
) -> dict:
    """Everyone in the policy's scope at a moment with their status, as the reports list them."""
    moment = moment_asked(as_of)
    position = cursor_position("people", cursor, "as_of")
    if position:
        kept = dt.datetime.fromisoformat(position["as_of"])
        if as_of is not None and kept != moment:
            raise invalid_parameter("cursor", _("This cursor belongs to another as_of."))
        moment = kept
    in_audience = None
    if audience:
        in_audience = queries.audience(audience)
        if in_audience is None:
            raise invalid_parameter("audience", _("No audience has this slug."))
    policy, revisions = _policy(slug)
    timeline = Timeline.at(revisions, moment)
    record_personal_data_read(request)
    rows = queries.people_page(
        timeline,
        moment,
        status=status or "",
        audience=in_audience,
        after=position.get("after", 0),
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        service.cursor("people", {"after": rows[-1].pk, "as_of": moment.isoformat()})
        if more
        else None
    )
    return {
        "policy": policy.slug,
        "as_of": representation.moment(moment),
        "current_version": timeline.current.version if timeline.current else None,
        "items": [
            representation.person_status_fields(row, audiences=queries.audiences_of(row))
            for row in rows
        ],
        "next_cursor": next_cursor,
        "next": next_url(request, next_cursor),
    }


# --- People --------------------------------------------------------------------------------------


@api.get(
    "/people/status",
    response={200: schemas.PersonStandings, **ERRORS, **NOT_FOUND},
    tags=["People"],
    url_name="person_status",
)
def get_person_status(
    request: HttpRequest,
    id: int | None = PersonIdParam,
    email: str | None = EmailParam,
    external_id: str | None = ExternalIdParam,
    as_of: schemas.MomentParam | None = AsOf,
) -> dict:
    """One person's status toward every policy that applies to them; name them by exactly one
    of id, email and external_id."""
    given = [
        name
        for name, value in (("id", id), ("email", email), ("external_id", external_id))
        if value not in (None, "")
    ]
    if len(given) != 1:
        raise invalid_parameter(
            "id" if not given else given[1], _("Give exactly one of id, email and external_id.")
        )
    moment = moment_asked(as_of)
    record_personal_data_read(request)
    person = queries.person(pk=id, email=email or "", external_id=external_id or "")
    if person is None:
        raise Problem(404, _("Nobody is known by this %(name)s.") % {"name": given[0]})
    return {
        "person": representation.person_fields(person),
        "as_of": representation.moment(moment),
        "policies": [representation.standing_fields(s) for s in queries.standings(person, moment)],
    }


# --- Acknowledgements ----------------------------------------------------------------------------


@api.get(
    "/acknowledgements",
    response={200: schemas.AcknowledgementPage, **ERRORS},
    tags=["Acknowledgements"],
    url_name="acknowledgements",
)
def list_acknowledgements(
    request: HttpRequest,
    policy: str | None = PolicyParam,
    revision: int | None = RevisionParam,
    person: int | None = PersonIdParam,
    signed_since: schemas.MomentParam | None = SignedSinceParam,
    cursor: str | None = CursorParam,
    limit: int = Limit,
) -> dict:
    """Signatures in the order they were recorded, with their receipt and ledger sequence."""
    position = cursor_position("acknowledgements", cursor)
    since = moment_asked(signed_since, "signed_since") if signed_since is not None else None
    of_policy = None
    if policy:
        found = queries.policy(policy)
        if found is None:
            raise invalid_parameter("policy", _("No policy has this slug."))
        of_policy = found[0]
    record_personal_data_read(request)
    rows = list(
        queries.acknowledgements(
            policy=of_policy,
            revision_id=revision,
            person_id=person,
            signed_since=since,
            after=position.get("after", 0),
        )[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = service.cursor("acknowledgements", {"after": rows[-1].pk}) if more else None
    portal = base_url(request)
    return {
        "items": [representation.acknowledgement_fields(ack, portal) for ack in rows],
        "next_cursor": next_cursor,
        "next": next_url(request, next_cursor),
    }


def _acknowledgement(receipt_number: str) -> Any:
    found = queries.acknowledgement(receipt_number[:32])
    if found is None or len(receipt_number) > 32:
        raise Problem(404, _("No acknowledgement has this receipt number."))
    return found


@api.get(
    "/acknowledgements/{receipt_number}",
    response={200: schemas.Acknowledgement, **ERRORS, **NOT_FOUND},
    tags=["Acknowledgements"],
    url_name="acknowledgement",
)
def get_acknowledgement(request: HttpRequest, receipt_number: str) -> dict:
    """One signature, by its receipt number."""
    ack = _acknowledgement(receipt_number)
    record_personal_data_read(request)
    return representation.acknowledgement_fields(ack, base_url(request))


@api.get(
    "/acknowledgements/{receipt_number}/receipt.pdf",
    response={200: None, **ERRORS, **NOT_FOUND},
    tags=["Acknowledgements"],
    url_name="receipt_download",
    openapi_extra={
        "responses": {
            200: {
                "description": "The sealed receipt (PDF/A-3b with its evidence attached).",
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def download_receipt(request: HttpRequest, receipt_number: str) -> FileResponse:
    """The sealed PDF receipt of one signature (404 while it is being prepared)."""
    ack = _acknowledgement(receipt_number)
    receipt = getattr(ack, "receipt", None)
    if receipt is None:
        raise Problem(404, _("The receipt is still being prepared."))
    record_personal_data_read(request)
    return FileResponse(
        receipt.pdf.open("rb"),
        as_attachment=True,
        filename=f"receipt-{ack.receipt_number}.pdf",
        content_type="application/pdf",
    )


# --- The ledger ----------------------------------------------------------------------------------


@api.get(
    "/ledger/checkpoint",
    response={200: schemas.Checkpoint, **ERRORS, **NOT_FOUND},
    tags=["Ledger"],
    url_name="ledger_checkpoint",
)
def get_ledger_checkpoint(request: HttpRequest) -> dict:
    """The latest signed checkpoint of the evidence ledger's transparency log: keep it, and
    the portal can later prove that its ledger extends it."""
    checkpoint = queries.latest_checkpoint()
    if checkpoint is None:
        raise Problem(404, _("The ledger has no checkpoint yet."))
    return representation.checkpoint_fields(checkpoint)


@csrf_exempt  # no session, no form: whatever is sent here, the answer is the same 404
def unknown_address(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other address under /api/: a 404 in problem details, like the API's own."""
    return problem_response(404, _("Nothing is at this address."))
