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


def overdue_event_id(notice_id: int) -> str:
    """One id per overdue notice, so that one person is overdue once per revision."""
    return f"msg_overdue_{notice_id}"


def emit_overdue(*, now: dt.datetime | None = None) -> int:
    """A `person.overdue` event for each overdue notice the notifications queued lately and no
    endpoint was told of yet: they decide who became overdue, once per person and revision."""
    endpoints = subscribers(PERSON_OVERDUE)
    if not endpoints:
        return 0
    now = now or timezone.now()
    since = max(min(endpoint.created_at for endpoint in endpoints), now - OVERDUE_LOOKBACK)
    notices = Notification.objects.filter(
        kind=Notification.Kind.OVERDUE, created_at__gte=since
    ).values_list("pk", flat=True)
    told = set(
        WebhookDelivery.objects.filter(
            event_type=PERSON_OVERDUE, created_at__gte=since - dt.timedelta(hours=1)
        ).values_list("event_id", flat=True)
    )
    events = [(overdue_event_id(pk), pk) for pk in notices if overdue_event_id(pk) not in told]
    return _queue(PERSON_OVERDUE, events)


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
