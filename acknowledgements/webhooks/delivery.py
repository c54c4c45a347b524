"""Sending webhook deliveries: claimed, posted to a checked address, retried, then given up.

The design is the emails' (notifications/sending.py): a delivery is claimed by one worker for
a lease before it is sent, and its outcome is recorded only under that claim. Emails are sent
at most once, webhooks at least once: a claim that runs out (the worker died mid-request) puts
the delivery back in the queue, and the receiver recognises a copy by its `webhook-id`.

Failures are retried 1 min, 5 min, 30 min, 2 h, 5 h and 10 h later, and a last time a day
after the first attempt; then the delivery is marked failed. An endpoint whose attempts have
all failed for a day is turned off and whoever registered it is told by email.

Under the immediate task backend (PORTAL_TASK_BACKEND=immediate, as `make run` has it) every
task runs in the web process; a delivery queued while a request is being answered is sent only
once its response has gone (request_finished), so a slow receiver never delays the person who
signed. Its retries wait for `recover_work`, as that backend cannot schedule them.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

import urllib3
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import transaction
from django.db.models import F
from django.tasks import task
from django.tasks.backends.immediate import ImmediateBackend
from django.urls import reverse
from django.utils import timezone

from acknowledgements import jobs
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.evidence.ledger import utc_iso
from acknowledgements.models import WebhookDelivery, WebhookEndpoint
from acknowledgements.notifications.sending import absolute_url, email_message
from acknowledgements.webhooks import addresses, messages

logger = logging.getLogger(__name__)

# Waits after the 1st, 2nd... failed attempt: the 8th and last attempt is a day after the first.
RETRY_DELAYS = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
    dt.timedelta(hours=6, minutes=24),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
FAILING_FOR = dt.timedelta(days=1)
# A worker's claim on a delivery: longer than a request can take (twice the timeout at least).
LEASE = dt.timedelta(minutes=2)
USER_AGENT = "aup-portal-webhooks/1"
ERROR_LENGTH = 1000


def lease() -> dt.timedelta:
    return max(LEASE, 2 * dt.timedelta(seconds=settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS))


def retry_delay(attempts: int) -> dt.timedelta | None:
    """How long to wait after `attempts` failed attempts; None: give up."""
    return RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else None


@dataclass(frozen=True)
class Outcome:
    code: int | None  # the receiver's HTTP status, None if it never answered
    error: str = ""
    unreachable: bool = False  # no connection could be made (another address may do)

    @property
    def delivered(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def post(url: str, *, body: str, headers: dict[str, str]) -> Outcome:
    """POST the body to the URL's checked addresses (the next one if one cannot be reached);
    never follows a redirect."""
    try:
        target = addresses.check(url)
    except addresses.AddressRefused as refused:
        return Outcome(None, str(refused))
    outcome = Outcome(None, "no address")
    for address in target.addresses:
        outcome = _post_to(target, address, body=body, headers=headers)
        if outcome.code is not None or not outcome.unreachable:
            break
    return outcome


def _post_to(
    target: addresses.Target, address: str, *, body: str, headers: dict[str, str]
) -> Outcome:
    timeout = urllib3.Timeout(total=settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        # Connected to the checked address, the certificate must still name the URL's host.
        pool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            retries=False,
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False)
    with pool:
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body.encode(),
                headers={**headers, "host": target.netloc, "user-agent": USER_AGENT},
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
            )
        except urllib3.exceptions.NewConnectionError as error:
            return Outcome(None, f"{type(error).__name__}: {error}"[:ERROR_LENGTH], True)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return Outcome(None, f"{type(error).__name__}: {error}"[:ERROR_LENGTH])
        response.close()  # the answer's body is not read: only its status counts
    if 300 <= response.status < 400:
        location = response.headers.get("location", "")
        return Outcome(response.status, f"Redirect to {location!r}, not followed"[:ERROR_LENGTH])
    if not 200 <= response.status < 300:
        return Outcome(response.status, f"HTTP {response.status}")
    return Outcome(response.status)


def _claim(pk: int, now: dt.datetime) -> str | None:
    """Take a due delivery of an active endpoint for this worker until its lease runs out."""
    claim = secrets.token_hex(16)
    taken = WebhookDelivery.objects.filter(
        pk=pk,
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lte=now,
        endpoint__active=True,
    ).update(
        status=WebhookDelivery.Status.SENDING,
        claim=claim,
        attempts=F("attempts") + 1,
        next_attempt_at=now + lease(),
        last_attempt_at=now,
    )
    return claim if taken else None


def deliver(*, delivery_id: int) -> str | None:
    """Make one attempt at a due delivery; None if it is not due or another worker has it."""
    now = timezone.now()
    claim = _claim(delivery_id, now)
    if claim is None:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    outcome = post(
        endpoint.url,
        body=delivery.body,
        headers=messages.headers(
            secret=endpoint.secret, event_id=delivery.event_id, body=delivery.body, moment=now
        ),
    )
    return _record(delivery, claim, outcome)


def _record(delivery: WebhookDelivery, claim: str, outcome: Outcome) -> str | None:
    now = timezone.now()
    mine = WebhookDelivery.objects.filter(
        pk=delivery.pk, claim=claim, status=WebhookDelivery.Status.SENDING
    )
    answer = {"claim": "", "last_response_code": outcome.code, "last_error": outcome.error}
    if outcome.delivered:
        if not mine.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now, **answer):
            return None
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).exclude(failing_since=None).update(
            failing_since=None
        )
        return WebhookDelivery.Status.DELIVERED
    delay = retry_delay(delivery.attempts)
    if delay is None:
        status = WebhookDelivery.Status.FAILED
        taken = mine.update(status=status, **answer)
    else:
        status = WebhookDelivery.Status.PENDING
        taken = mine.update(status=status, next_attempt_at=now + delay, **answer)
        if taken and deliver_webhook.get_backend().supports_defer:
            deliver_webhook.using(run_after=now + delay).enqueue(delivery.pk)
    if not taken:
        return None
    logger.warning(
        "Webhook delivery %s to endpoint %s failed (attempt %d): %s",
        delivery.pk,
        delivery.endpoint_id,
        delivery.attempts,
        outcome.error,
    )
    # Measured from the attempts' starts, which the schedule spaces a day apart at least.
    _note_failure(delivery.endpoint, delivery.last_attempt_at or now)
    return status


def _note_failure(endpoint: WebhookEndpoint, started: dt.datetime) -> None:
    """Count a failed attempt that began at `started` toward the endpoint's day of failures."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since=None).update(failing_since=started)
    endpoint.refresh_from_db(fields=["failing_since", "active"])
    if (
        endpoint.active
        and endpoint.failing_since is not None
        and started - endpoint.failing_since >= FAILING_FOR
    ):
        disable_failing_endpoint(endpoint=endpoint, now=timezone.now())


@transaction.atomic
def disable_failing_endpoint(*, endpoint: WebhookEndpoint, now: dt.datetime) -> bool:
    """Turn off an endpoint that has failed for a day (audited) and email whoever registered it."""
    taken = WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
        active=False, disabled_at=now, disabled_reason=WebhookEndpoint.DisabledReason.FAILING
    )
    if not taken:
        return False
    record_admin_action(
        actor=None,
        action="webhook_endpoint_disabled",
        details={
            "endpoint": endpoint.pk,
            "url": endpoint.url,
            "reason": WebhookEndpoint.DisabledReason.FAILING.value,
            "failing_since": utc_iso(endpoint.failing_since),
        },
    )
    if endpoint.created_by_id is not None:
        jobs.enqueue_with_transaction(email_endpoint_disabled, endpoint.pk)
    return True


def send_endpoint_disabled(*, endpoint_id: int) -> None:
    """Tell whoever registered an endpoint that it was turned off, and why, in their language."""
    endpoint = WebhookEndpoint.objects.select_related("created_by").get(pk=endpoint_id)
    owner = endpoint.created_by
    if owner is None or not owner.is_active:
        return
    last = endpoint.deliveries.exclude(last_attempt_at=None).order_by("-last_attempt_at").first()
    email_message(
        "email/webhook_disabled",
        {
            "person": owner,
            "endpoint": endpoint,
            "last_error": last.last_error if last else "",
            "endpoint_url": absolute_url(
                reverse("acknowledgements:manage_webhook", args=[endpoint.pk])
            ),
        },
        to=owner.email,
        language=owner.preferred_language,
    ).send()


def reclaim_expired_claims(*, now: dt.datetime | None = None) -> list[int]:
    """Put back in the queue the deliveries of workers whose claim ran out (they stopped, or
    were killed): the receiver may have had one already, and recognises the copy by its
    webhook-id. Returns their ids."""
    now = now or timezone.now()
    with transaction.atomic():
        expired = WebhookDelivery.objects.select_for_update().filter(
            status=WebhookDelivery.Status.SENDING, next_attempt_at__lt=now
        )
        ids = list(expired.values_list("pk", flat=True))
        WebhookDelivery.objects.filter(pk__in=ids).update(
            status=WebhookDelivery.Status.PENDING, next_attempt_at=now, claim=""
        )
    return ids


@dataclass(frozen=True)
class Resumed:
    reclaimed: int
    queued: int


def resume_deliveries(*, now: dt.datetime | None = None) -> Resumed:
    """Take back expired claims and queue the deliveries that are due but were never sent.

    Where the task backend can wait, each retry already has its task, so only deliveries due
    for longer than a lease count as lost; otherwise (immediate backend) every due one is sent.
    """
    now = now or timezone.now()
    reclaimed = reclaim_expired_claims(now=now)
    due_before = now - lease() if deliver_webhook.get_backend().supports_defer else now
    lost = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lte=due_before,
        endpoint__active=True,
    ).order_by("next_attempt_at", "pk")
    due = list(dict.fromkeys([*reclaimed, *lost.values_list("pk", flat=True)]))
    queue_deliveries(due)
    return Resumed(reclaimed=len(reclaimed), queued=len(due))


def queue_deliveries(delivery_ids: list[int]) -> None:
    """Queue an attempt at each delivery once the current transaction commits (under the
    immediate backend, during a request: once its response has been sent)."""
    for pk in delivery_ids:
        if isinstance(deliver_webhook.get_backend(), ImmediateBackend):
            transaction.on_commit(partial(_deliver_after_response, pk))
        else:
            jobs.enqueue_with_transaction(deliver_webhook, pk)


# The deliveries the request being answered in this thread queued (None: no request).
_after_response: ContextVar[list[int] | None] = ContextVar(
    "webhook_deliveries_after_response", default=None
)


def _deliver_after_response(delivery_id: int) -> None:
    waiting = _after_response.get()
    if waiting is None:
        deliver_webhook.enqueue(delivery_id)
    else:
        waiting.append(delivery_id)


def _request_started(**kwargs: Any) -> None:
    _after_response.set([])


def _request_finished(**kwargs: Any) -> None:
    waiting = _after_response.get()
    _after_response.set(None)
    for pk in waiting or []:
        try:
            deliver_webhook.enqueue(pk)
        except Exception:
            # The response has gone; the delivery stays pending for recover_work.
            logger.exception("Webhook delivery %s could not be sent after the response", pk)


request_started.connect(_request_started, dispatch_uid="webhooks_after_response_started")
request_finished.connect(_request_finished, dispatch_uid="webhooks_after_response_finished")


@task()
def deliver_webhook(delivery_id: int) -> None:
    deliver(delivery_id=delivery_id)


@task()
def email_endpoint_disabled(endpoint_id: int) -> None:
    send_endpoint_disabled(endpoint_id=endpoint_id)
