"""Administrative actions and exports, recorded as ledger rows: who did what, to what, with which details."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from acknowledgements.evidence import ledger
from acknowledgements.evidence.snapshots import person_snapshot
from acknowledgements.models import (
    ExportJob,
    LedgerEntry,
    Policy,
    User,
)


def record_admin_action(
    *,
    actor: User | None,
    action: str,
    details: dict,
    revision=None,
    via: str | None = None,
    subject: User | None = None,
) -> LedgerEntry:
    """Append an `admin_action` row: who (None: the system) did what, with which details, and
    through what when it was not a person (`via`, e.g. "scim token entra"). `subject`, the
    person it concerns, is the entry's person, so that their history can find it."""
    payload = {
        "action": action,
        "actor": person_snapshot(actor) if actor else None,
        "details": details,
    }
    if via is not None:  # left out otherwise, so every other payload keeps its bytes
        payload["via"] = via
    return ledger.append(
        kind=LedgerEntry.Kind.ADMIN_ACTION,
        actor=actor,
        person=subject,
        revision=revision,
        payload=payload,
    )


@transaction.atomic
def record_export(*, actor: User | None, what: str, filters: dict, rows: int) -> LedgerEntry:
    """Record that evidence left the portal: who exported what, with which filters, how many rows.

    Reports never change anything else; this audit row is written before the file is served.
    """
    return record_admin_action(
        actor=actor, action="export", details={"what": what, "filters": filters, "rows": rows}
    )


def export_scope(*, policy: Policy, moment: dt.datetime, **filters: str) -> dict[str, str]:
    """The scope of an export as its audit record states it: the policy, the moment (recorded
    even when it is now) and whatever narrowed it."""
    return {"policy": policy.slug, "as_of": ledger.utc_iso(moment) or "", **filters}


def export_record(job: ExportJob) -> dict[str, str]:
    """The scope of a background export as its audit record states it."""
    return export_scope(policy=job.policy, moment=job.as_of, **job.filters)
