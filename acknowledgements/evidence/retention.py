"""Removing the raw client details (IP address, user agent) kept past the retention period."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from acknowledgements.evidence import ledger
from acknowledgements.models import (
    ClientDetails,
    LedgerEntry,
    User,
)

REDACTION_BATCH = 1_000


@dataclass(frozen=True)
class Redaction:
    entries: int  # ledger entries whose raw IP address and user agent were removed
    events: int  # redaction events appended to the ledger


def redact_client_details() -> Redaction:
    """Remove the raw IP addresses and user agents kept longer than the retention period.

    The entries' payloads keep their salted commitments, so the chain and every receipt stay
    valid; each person's removal is itself a ledger event listing the entries it covers.
    Without a retention period (PORTAL_CLIENT_DETAILS_RETENTION_DAYS empty or 0) nothing is
    removed; running it again removes nothing more.
    """
    days = settings.PORTAL_CLIENT_DETAILS_RETENTION_DAYS
    total = Redaction(0, 0)
    if not days:
        return total
    cutoff = timezone.now() - dt.timedelta(days=days)
    ledger.link_pending()  # redaction events name the entries by their chain position
    while (batch := _redact_batch(cutoff=cutoff, days=days)).entries:
        total = Redaction(total.entries + batch.entries, total.events + batch.events)
    return total


@transaction.atomic
def _redact_batch(*, cutoff: dt.datetime, days: int) -> Redaction:
    # The rows are locked: a second run at the same time waits, then finds them gone.
    # (details id, entry sequence, person id): the person is None on entries about no one.
    due: list[tuple[int, int | None, int | None]] = list(
        ClientDetails.objects.select_for_update(of=("self",))
        .filter(ledger_entry__recorded_at__lt=cutoff, ledger_entry__sequence__isnull=False)
        # Person by person, so that a person's entries mostly fall in one batch and one event.
        .order_by("ledger_entry__person_id", "ledger_entry__sequence")
        .values_list("pk", "ledger_entry__sequence", "ledger_entry__person_id")[:REDACTION_BATCH]
    )
    by_person: dict[int | None, list[int]] = {}
    for _pk, sequence, person_id in due:
        assert sequence is not None  # the query takes linked entries only
        by_person.setdefault(person_id, []).append(sequence)
    people = User.objects.in_bulk([pk for pk in by_person if pk is not None])
    for person_id, sequences in by_person.items():
        ledger.append(
            kind=LedgerEntry.Kind.REDACTED,
            person=people.get(person_id),
            payload={
                "removed": ["ip", "user_agent"],
                "entries": sequences,
                "retention_days": days,
                "recorded_before": ledger.utc_iso(cutoff),
                "rule": (
                    "the raw IP address and user agent of these entries, and the salts of their "
                    "commitments, were deleted after the retention period; the salted SHA-256 "
                    "commitments in the entries' payloads are unchanged"
                ),
            },
        )
    ClientDetails.objects.filter(pk__in=[pk for pk, _seq, _person in due]).delete()
    return Redaction(len(due), len(by_person))
