"""The "now applies to you" email: to a person who came into a policy's scope without having
signed its current revision (added to an audience, moved, returned), once per person and
revision; an announcement of the same revision counts as that once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.tasks import task
from django.utils import timezone

from acknowledgements import jobs
from acknowledgements.models import Notification, Policy
from acknowledgements.notifications import sending
from acknowledgements.standings import coverage


def queue_in_scope_notices(*, person_ids: Iterable[int], since: dt.datetime) -> int:
    """Queue the email to each of these people who came into a policy's scope at or after
    `since` and is not covered by what they signed; returns how many were queued."""
    ids, now, queued = list(person_ids), timezone.now(), 0
    for policy in Policy.objects.all():
        timeline = coverage.timeline_for(policy, now)
        if timeline.current is None:
            continue
        told = Notification.objects.filter(
            revision=timeline.current,
            kind__in=[Notification.Kind.ANNOUNCEMENT, Notification.Kind.IN_SCOPE],
        )
        entered = (
            coverage.uncovered_people(timeline, now)
            .filter(pk__in=ids, came_into_scope__gte=since)
            .exclude(pk__in=told.values("person_id"))
        )
        queued += sending.queue_emails(
            revision=timeline.current,
            kind=Notification.Kind.IN_SCOPE,
            person_ids=entered.values_list("pk", flat=True),
        )
    if queued:
        jobs.enqueue_with_transaction(sending.send_notifications)
    return queued


@task()
def tell_people_new_in_scope(person_ids: list[int], since: str) -> None:
    queue_in_scope_notices(person_ids=person_ids, since=dt.datetime.fromisoformat(since))


def after_scope_change(person_ids: Iterable[int], since: dt.datetime) -> None:
    """Once the change that began at `since` commits, tell whoever it brought into a scope."""
    ids = sorted(set(person_ids))
    if ids:
        jobs.enqueue_with_transaction(tell_people_new_in_scope, ids, since.isoformat())
