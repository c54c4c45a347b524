"""Webhook endpoints registered, changed, turned off and removed, and deliveries sent again:
each change audited, whichever door (the integrations page, `manage.py webhook`) it came by."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import User, WebhookDelivery, WebhookEndpoint
from acknowledgements.webhooks import addresses, delivery, messages
from acknowledgements.webhooks.events import EVENT_TYPES


def _checked_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise ActionRefused(
            _("Unknown event: %(events)s. The events are %(known)s.")
            % {"events": ", ".join(unknown), "known": ", ".join(EVENT_TYPES)}
        )
    if not events:
        raise ActionRefused(_("Choose at least one event."))
    return [event for event in EVENT_TYPES if event in events]


def _checked_url(url: str) -> str:
    url = url.strip()
    try:
        addresses.check(url)
    except addresses.AddressRefused as refused:
        raise ActionRefused(str(refused)) from None
    return url


def _details(endpoint: WebhookEndpoint, **more) -> dict:
    return {
        "endpoint": endpoint.pk,
        "url": endpoint.url,
        "events": endpoint.events,
        "active": endpoint.active,
        **more,
    }


@transaction.atomic
def register_endpoint(
    *, actor: User | None, url: str, events: list[str]
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint (its URL checked now, and again before each delivery) and return
    it with its signing secret, shown this once; audited."""
    secret = messages.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=_checked_url(url), events=_checked_events(events), secret=secret, created_by=actor
    )
    record_admin_action(
        actor=actor, action="webhook_endpoint_registered", details=_details(endpoint)
    )
    return endpoint, secret


@transaction.atomic
def change_endpoint(
    *, actor: User | None, endpoint: WebhookEndpoint, events: list[str], active: bool
) -> WebhookEndpoint:
    """Change which events an endpoint receives and whether it is on; turned back on, it is
    sent what waited meanwhile. Audited when something changed."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    before = {"events": endpoint.events, "active": endpoint.active}
    endpoint.events = _checked_events(events)
    if active and not endpoint.active:
        endpoint.active, endpoint.disabled_at, endpoint.disabled_reason = True, None, ""
        endpoint.failing_since = None
        waiting = endpoint.deliveries.filter(status=WebhookDelivery.Status.PENDING)
        waiting.update(next_attempt_at=timezone.now())
        delivery.queue_deliveries(list(waiting.values_list("pk", flat=True)))
    elif not active and endpoint.active:
        endpoint.active, endpoint.disabled_at = False, timezone.now()
        endpoint.disabled_reason = WebhookEndpoint.DisabledReason.TURNED_OFF
    if before == {"events": endpoint.events, "active": endpoint.active}:
        return endpoint
    endpoint.save()
    record_admin_action(
        actor=actor, action="webhook_endpoint_changed", details=_details(endpoint, before=before)
    )
    return endpoint


@transaction.atomic
def remove_endpoint(*, actor: User | None, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint and its delivery log; the audit log keeps that it existed."""
    record_admin_action(
        actor=actor,
        action="webhook_endpoint_removed",
        details=_details(endpoint, deliveries=endpoint.deliveries.count()),
    )
    endpoint.delete()


@transaction.atomic
def resend_delivery(*, actor: User | None, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again, with the same webhook-id and body and a new round of attempts;
    audited. One being sent right now is left to finish."""
    found = (
        WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery_id)
    )
    if found.status == WebhookDelivery.Status.SENDING:
        raise ActionRefused(_("This delivery is being sent right now."))
    if not found.endpoint.active:
        raise ActionRefused(_("Turn the endpoint on before sending it anything again."))
    found.status = WebhookDelivery.Status.PENDING
    found.attempts = 0
    found.next_attempt_at = timezone.now()
    found.save(update_fields=["status", "attempts", "next_attempt_at"])
    record_admin_action(
        actor=actor,
        action="webhook_delivery_resent",
        details=_details(found.endpoint, event_id=found.event_id, event_type=found.event_type),
    )
    delivery.queue_deliveries([found.pk])
    return found
