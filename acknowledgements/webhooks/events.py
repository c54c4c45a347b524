"""Events other systems are told of: emitted by the actions, recorded and sent by tasks.

`emit` is called inside the action's transaction and queues a task with it
(jobs.enqueue_with_transaction): a rolled-back signature emits nothing, and a committed one
cannot lose its event. The task writes the event's body once, one delivery per endpoint
subscribed, and queues each delivery. Nothing is sent from the request that signs, declines
or publishes, and when no endpoint subscribes to an event, emitting it costs one small query.
"""

from __future__ import annotations

import datetime as dt
from itertools import batched

from django.db.models import QuerySet
from django.tasks import task
from django.utils import timezone

from acknowledgements import jobs
from acknowledgements.evidence.ledger import utc_iso
from acknowledgements.models import Notification, WebhookDelivery, WebhookEndpoint
from acknowledgements.webhooks import delivery, messages, payloads

ACKNOWLEDGEMENT_SIGNED = WebhookEndpoint.Event.ACKNOWLEDGEMENT_SIGNED.value
ACKNOWLEDGEMENT_DECLINED = WebhookEndpoint.Event.ACKNOWLEDGEMENT_DECLINED.value
REVISION_PUBLISHED = WebhookEndpoint.Event.REVISION_PUBLISHED.value
PERSON_OVERDUE = WebhookEndpoint.Event.PERSON_OVERDUE.value
PERSON_RENEWAL_DUE = WebhookEndpoint.Event.PERSON_RENEWAL_DUE.value
# The notices that decide who became overdue or due for renewal, once per person and revision
# (and renewal).
NOTICE_EVENTS = {
    PERSON_OVERDUE: Notification.Kind.OVERDUE,
    PERSON_RENEWAL_DUE: Notification.Kind.RENEWAL_DUE,
}
EVENT_TYPES = tuple(WebhookEndpoint.Event.values)

BLOCK = 500  # events recorded by one task
# Overdue notices are looked at this far back (send_reminders runs hourly).
OVERDUE_LOOKBACK = dt.timedelta(days=2)


def subscribers(event_type: str) -> list[WebhookEndpoint]:
    """The active endpoints that receive this event (a handful of rows: filtered here, since
    SQLite cannot look inside a JSON list)."""
    active: QuerySet[WebhookEndpoint] = WebhookEndpoint.objects.filter(active=True)
    return [endpoint for endpoint in active if event_type in endpoint.events]


def emit(event_type: str, *subject_ids: int) -> None:
    """Tell the subscribed endpoints of an event about each subject, once the transaction
    commits (nothing if it rolls back); sent by the task queue, never by the caller."""
    _queue(event_type, [(messages.new_event_id(), pk) for pk in subject_ids])


def _queue(event_type: str, events: list[tuple[str, int]]) -> int:
    if not events or not subscribers(event_type):
        return 0
    occurred_at = utc_iso(timezone.now())
    for block in batched(events, BLOCK):
        jobs.enqueue_with_transaction(
            record_events_task, event_type, occurred_at, [list(event) for event in block]
        )
    return len(events)


def notice_event_id(event_type: str, notice_id: int) -> str:
    """One id per notice, so that one person is told of once per revision (and renewal)."""
    kind = "overdue" if event_type == PERSON_OVERDUE else "renewal_due"
    return f"msg_{kind}_{notice_id}"


def emit_from_notices(*, now: dt.datetime | None = None) -> int:
    """A `person.overdue` or `person.renewal_due` event for each overdue or renewal notice the
    notifications queued lately and no endpoint was told of yet."""
    now = now or timezone.now()
    emitted = 0
    for event_type, kind in NOTICE_EVENTS.items():
        endpoints = subscribers(event_type)
        if not endpoints:
            continue
        since = max(min(endpoint.created_at for endpoint in endpoints), now - OVERDUE_LOOKBACK)
        notices = Notification.objects.filter(kind=kind, created_at__gte=since).values_list(
            "pk", flat=True
        )
        told = set(
            WebhookDelivery.objects.filter(
                event_type=event_type, created_at__gte=since - dt.timedelta(hours=1)
            ).values_list("event_id", flat=True)
        )
        events = [
            (notice_event_id(event_type, pk), pk)
            for pk in notices
            if notice_event_id(event_type, pk) not in told
        ]
        emitted += _queue(event_type, events)
    return emitted


def record_events(*, event_type: str, occurred_at: str, events: list[list]) -> list[int]:
    """Write each event's body and one delivery per subscribed endpoint, and queue them.

    Recording the same events again adds nothing (one delivery per endpoint and event id).
    """
    endpoints = subscribers(event_type)
    if not endpoints:
        return []
    data = payloads.data_for(event_type, [subject for _id, subject in events])
    rows = [
        WebhookDelivery(
            endpoint=endpoint,
            event_id=event_id,
            event_type=event_type,
            body=messages.body(event_type=event_type, occurred_at=occurred_at, data=data[subject]),
        )
        for event_id, subject in events
        if subject in data
        for endpoint in endpoints
    ]
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    new = list(
        WebhookDelivery.objects.filter(
            endpoint__in=endpoints,
            event_id__in=[event_id for event_id, _subject in events],
            status=WebhookDelivery.Status.PENDING,
            attempts=0,
        ).values_list("pk", flat=True)
    )
    delivery.queue_deliveries(new)
    return new


@task()
def record_events_task(event_type: str, occurred_at: str, events: list[list]) -> None:
    record_events(event_type=event_type, occurred_at=occurred_at, events=events)
