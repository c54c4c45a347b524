"""What each event's `data` says: the fields the read API returns for the same resource
(api/representation.py), so that a receiver reads one vocabulary wherever it asks."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.utils import timezone

from acknowledgements.api.representation import (
    Fields,
    acknowledgement_fields,
    moment,
    person_fields,
    person_status_fields,
    revision_fields,
)
from acknowledgements.models import (
    Acknowledgement,
    LedgerEntry,
    Notification,
    PolicyRevision,
    WebhookEndpoint,
)
from acknowledgements.reports import lists
from acknowledgements.standings import coverage

if TYPE_CHECKING:
    from acknowledgements.standings.coverage import PersonWithStatus


def _signed(ids: list[int], now: dt.datetime) -> dict[int, Fields]:
    """Acknowledgement ids: the API's acknowledgement."""
    found = Acknowledgement.objects.filter(pk__in=ids).select_related(
        "revision__policy", "person", "ledger_entry", "receipt"
    )
    return {ack.pk: acknowledgement_fields(ack, settings.PORTAL_BASE_URL) for ack in found}


def _declined(ids: list[int], now: dt.datetime) -> dict[int, Fields]:
    """Ledger entries of declines: who declined which revision, when (not their reason, which
    is for the portal's administrators)."""
    found = LedgerEntry.objects.filter(
        pk__in=ids, kind=LedgerEntry.Kind.DECLINED, person__isnull=False, revision__isnull=False
    ).select_related("person", "revision__policy")
    data = {}
    for entry in found:
        assert entry.person is not None and entry.revision is not None
        data[entry.pk] = {
            "declined_at": moment(entry.recorded_at),
            "policy": entry.revision.policy.slug,
            "revision_id": entry.revision.pk,
            "version": entry.revision.version,
            "person": person_fields(entry.person),
            "ledger_sequence": entry.sequence,
        }
    return data


def _published(ids: list[int], now: dt.datetime) -> dict[int, Fields]:
    """Revision ids: the API's revision."""
    found = (
        PolicyRevision.objects.published()
        .filter(pk__in=ids)
        .select_related("policy")
        .prefetch_related("audiences")
    )
    return {revision.pk: revision_fields(revision) for revision in found}


def _noticed(ids: list[int], now: dt.datetime) -> dict[int, Fields]:
    """Overdue and renewal notices: the person's status in the policy, as the API's people list
    gives it."""
    notices = Notification.objects.filter(
        pk__in=ids, kind__in=[Notification.Kind.OVERDUE, Notification.Kind.RENEWAL_DUE]
    ).select_related("revision__policy")
    by_policy: dict[int, list[Notification]] = defaultdict(list)
    for notice in notices:
        by_policy[notice.revision.policy_id].append(notice)
    data = {}
    for group in by_policy.values():
        policy = group[0].revision.policy
        timeline = coverage.timeline_for(policy, now)
        if timeline.current is None or timeline.baseline is None:
            continue
        # lists.people annotates each person with their status (coverage.with_status).
        scoped = lists.people(timeline, now, lists.PeopleFilter()).filter(
            pk__in=[notice.person_id for notice in group]
        )
        people = {person.pk: cast("PersonWithStatus", person) for person in scoped}
        for notice in group:
            person = people.get(notice.person_id)
            if person is None:  # no longer in the policy's scope
                continue
            data[notice.pk] = {
                "policy": policy.slug,
                "version": timeline.current.version,
                **person_status_fields(person, audiences=_audiences(person)),
            }
    return data


def _audiences(person) -> list[str]:
    """The audiences the person was in, as the people list aggregates them."""
    aggregated = getattr(person, "audience_list", None)
    return aggregated.split(lists.AUDIENCE_SEPARATOR) if aggregated else []


BUILDERS: dict[str, Callable[[list[int], dt.datetime], dict[int, Fields]]] = {
    WebhookEndpoint.Event.ACKNOWLEDGEMENT_SIGNED: _signed,
    WebhookEndpoint.Event.ACKNOWLEDGEMENT_DECLINED: _declined,
    WebhookEndpoint.Event.REVISION_PUBLISHED: _published,
    WebhookEndpoint.Event.PERSON_OVERDUE: _noticed,
    WebhookEndpoint.Event.PERSON_RENEWAL_DUE: _noticed,
}


def data_for(event_type: str, subject_ids: list[int]) -> dict[int, Fields]:
    """Each subject's `data`, by its id; a subject that no longer exists is left out."""
    return BUILDERS[event_type](subject_ids, timezone.now())
