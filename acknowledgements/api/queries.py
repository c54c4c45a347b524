"""What the read API reads: policies and their published revisions, the people in a policy's
scope a page at a time, a person, and signatures.

The people and their statuses come from reports.lists (and so from standings/coverage.py's
rules), the figures from reports.figures: the API answers exactly what /reports/ shows for
the same moment. Lists are read a page at a time in id order (keyset: `id > after`), so that
a page costs the same queries wherever it starts and rows added meanwhile never shift a page.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import cast

from django.db.models import QuerySet

from acknowledgements.evidence import transparency
from acknowledgements.models import (
    Acknowledgement,
    Audience,
    LedgerCheckpoint,
    Policy,
    PolicyRevision,
    User,
)
from acknowledgements.reports import figures, lists
from acknowledgements.reports.lists import PeopleFilter
from acknowledgements.standings import coverage
from acknowledgements.standings.coverage import PersonWithStatus, Timeline


def _published() -> QuerySet[PolicyRevision]:
    return (
        PolicyRevision.objects.published()
        .select_related("policy")
        .prefetch_related("audiences", "policy__renewal_periods")
    )


def policies() -> list[tuple[Policy, list[PolicyRevision]]]:
    """Every policy (by name) with its published revisions, in three queries."""
    revisions: dict[int, list[PolicyRevision]] = defaultdict(list)
    for revision in _published():
        revisions[revision.policy_id].append(revision)
    return [(policy, revisions[policy.pk]) for policy in Policy.objects.order_by("name", "pk")]


def policy(slug: str) -> tuple[Policy, list[PolicyRevision]] | None:
    """A policy with its published revisions; None when no policy has the slug."""
    found = Policy.objects.filter(slug=slug).first()
    if found is None:
        return None
    return found, list(_published().filter(policy=found))


def audience(slug: str) -> Audience | None:
    return Audience.objects.filter(slug=slug).first()


def policy_figures(
    policy: Policy, timeline: Timeline, moment: dt.datetime
) -> figures.PolicyFigures:
    """The dashboard's figures of one policy at `moment` (its census, one statement)."""
    return figures.policy_figures(policy, timeline, moment)


def people_page(
    timeline: Timeline,
    moment: dt.datetime,
    *,
    status: str = "",
    audience: Audience | None = None,
    after: int = 0,
    limit: int,
) -> list[PersonWithStatus]:
    """Up to `limit` people in scope at `moment` with an id above `after`, in id order, each
    annotated with their status as the reports' people list has it (one query)."""
    filters = PeopleFilter(status=status, audience=audience)
    people = lists.people(timeline, moment, filters).order_by("pk")
    if after:
        people = people.filter(pk__gt=after)
    return cast("list[PersonWithStatus]", list(people[:limit]))


def audiences_of(person: PersonWithStatus) -> list[str]:
    """The names of the audiences the person was in at the list's moment."""
    aggregated = getattr(person, "audience_list", None)
    return aggregated.split(lists.AUDIENCE_SEPARATOR) if aggregated else []


def person(*, pk: int | None = None, email: str = "", external_id: str = "") -> User | None:
    """The person with this id, email address (any case) or external id; None if nobody."""
    if pk is not None:
        return User.objects.filter(pk=pk).first()
    if email:
        return User.objects.filter(email__iexact=email.strip()).first()
    return User.objects.filter(external_id=external_id).first()


def standings(person: User, moment: dt.datetime) -> list[coverage.Standing]:
    """The person's status toward each policy that applies to them at `moment`."""
    return coverage.standings_for(person, moment=moment)


def acknowledgements(
    *,
    policy: Policy | None = None,
    revision_id: int | None = None,
    person_id: int | None = None,
    signed_since: dt.datetime | None = None,
    after: int = 0,
) -> QuerySet[Acknowledgement]:
    """Signatures in the order they were recorded (by id), filtered, with what their fields
    read loaded along (one query)."""
    found = Acknowledgement.objects.select_related(
        "revision__policy", "person", "ledger_entry", "receipt"
    ).order_by("pk")
    if policy is not None:
        found = found.filter(revision__policy=policy)
    if revision_id is not None:
        found = found.filter(revision_id=revision_id)
    if person_id is not None:
        found = found.filter(person_id=person_id)
    if signed_since is not None:
        found = found.filter(signed_at__gte=signed_since)
    if after:
        found = found.filter(pk__gt=after)
    return found


def acknowledgement(receipt_number: str) -> Acknowledgement | None:
    return acknowledgements().filter(receipt_number=receipt_number).first()


def latest_checkpoint() -> LedgerCheckpoint | None:
    return transparency.latest()
