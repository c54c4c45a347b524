"""What the read API (and every webhook body) says about each resource: one function per
resource, building a JSON-ready dict from model objects.

The API's schemas (api/schemas.py) describe these dicts and the webhooks send them, so a field
is added, renamed or dropped here and nowhere else. Times are UTC ISO 8601 strings with a Z
suffix (the ledger's own spelling), ids are integers, policies are named by their slug.

Callers load what the functions read: `revision.policy` and `revision.audiences` for a
revision, `ack.revision__policy`, `ack.person`, `ack.ledger_entry` and `ack.receipt` for an
acknowledgement (select_related / prefetch_related), so that a page of them costs no query per
row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.urls import reverse
from django.utils import timezone

from acknowledgements.evidence.ledger import utc_iso
from acknowledgements.models import (
    Acknowledgement,
    LedgerCheckpoint,
    Policy,
    PolicyRevision,
    Receipt,
    User,
)

if TYPE_CHECKING:
    from acknowledgements.reports.figures import Completion, PolicyFigures
    from acknowledgements.standings.coverage import PersonWithStatus, Standing

type Fields = dict[str, Any]


def moment(value: dt.datetime | None) -> str | None:
    """A time as every field of the API writes it (UTC, ISO 8601, Z); None stays None."""
    return utc_iso(value)


def revision_fields(revision: PolicyRevision) -> Fields:
    """A published revision: its version, kind of change, dates and the SHA-256 of its text."""
    return {
        "id": revision.pk,
        "policy": revision.policy.slug,
        "version": revision.version,
        "change": revision.change,
        "change_summary": revision.change_summary,
        "effective_at": moment(revision.effective_at),
        "due_days": revision.due_days,
        "due_at": moment(revision.due_at),
        "published_at": moment(revision.published_at),
        "text_sha256": revision.text_sha256,
        "audiences": sorted(audience.slug for audience in revision.audiences.all()),
    }


def policy_fields(policy: Policy, revisions: Iterable[PolicyRevision]) -> Fields:
    """A policy with its published revisions (in publication order, oldest first) and the one
    in effect now (`current_version`, None before the first takes effect)."""
    revisions = sorted(revisions, key=lambda revision: revision.publication_position)
    now = timezone.now()
    in_effect = [revision for revision in revisions if revision.effective_at <= now]
    return {
        "id": policy.pk,
        "slug": policy.slug,
        "name": policy.name,
        "current_version": in_effect[-1].version if in_effect else None,
        "revisions": [revision_fields(revision) for revision in revisions],
    }


def person_fields(person: User) -> Fields:
    """Who a person is, as other systems know them (email, external id, employee number)."""
    return {
        "id": person.pk,
        "email": person.email,
        "full_name": person.full_name,
        "external_id": person.external_id,
        "employee_number": person.employee_number,
        "active": person.is_active,
        "left_at": moment(person.left_at),
    }


def person_status_fields(person: PersonWithStatus, *, audiences: Iterable[str]) -> Fields:
    """A person in a policy's scope with their status at a moment, from the annotations of
    coverage.with_status (as reports.lists.people gives them) and the audiences they were in."""
    return {
        "person": person_fields(person),
        "status": person.status,
        "audiences": sorted(audiences),
        "came_into_scope_at": moment(person.came_into_scope),
        "due_at": moment(person.due_at),
        "covered_at": moment(person.covered_at),
        "covering_version": person.covering_version,
        "declined": bool(person.declined),
    }


def standing_fields(standing: Standing) -> Fields:
    """One person's position toward one policy (coverage.standings_for)."""
    covering = standing.covering_acknowledgement
    return {
        "policy": standing.policy.slug,
        "policy_name": standing.policy.name,
        "current_version": standing.current.version,
        "status": standing.status,
        "came_into_scope_at": moment(standing.came_into_scope),
        "due_at": moment(standing.due_at),
        "covered_at": moment(covering.signed_at) if covering else None,
        "covering_version": covering.revision.version if covering else None,
        "covering_receipt_number": covering.receipt_number if covering else None,
        "declined_at": moment(standing.declined_at),
        "overdue": standing.overdue,
        "lapses_at": moment(standing.lapses_at),
    }


def receipt_url(ack: Acknowledgement, base_url: str) -> str:
    """Where a token holder downloads the acknowledgement's sealed receipt."""
    path = reverse("acknowledgements:api:receipt_download", args=[ack.receipt_number])
    return base_url.rstrip("/") + path


def receipt_fields(receipt: Receipt | None, ack: Acknowledgement, base_url: str) -> Fields | None:
    """The sealed PDF of an acknowledgement; None while it is being prepared."""
    if receipt is None:
        return None
    return {
        "sha256": receipt.sha256,
        "issued_at": moment(receipt.issued_at),
        "timestamped": receipt.timestamped,
        "url": receipt_url(ack, base_url),
    }


def acknowledgement_fields(ack: Acknowledgement, base_url: str) -> Fields:
    """A signature: who signed which revision when, its receipt and its place in the ledger
    (`ledger_sequence` is None for the moments before the entry is linked into the chain)."""
    revision = ack.revision
    return {
        "receipt_number": ack.receipt_number,
        "signed_at": moment(ack.signed_at),
        "policy": revision.policy.slug,
        "revision_id": revision.pk,
        "version": revision.version,
        "person": person_fields(ack.person),
        "ledger_sequence": ack.ledger_entry.sequence,
        "receipt": receipt_fields(getattr(ack, "receipt", None), ack, base_url),
    }


def counts_fields(completion: Completion) -> Fields:
    """How many people in scope are signed, pending, overdue, declined, due for renewal or
    lapsed (they add up)."""
    return {
        "total": completion.total,
        "signed": completion.signed,
        "pending": completion.pending,
        "overdue": completion.overdue,
        "declined": completion.declined,
        "renewal_due": completion.renewal_due,
        "lapsed": completion.lapsed,
    }


def figures_fields(figures: PolicyFigures) -> Fields:
    """A policy's completion at a moment, in all and per audience: the dashboard's figures."""
    current = figures.timeline.current
    return {
        "policy": figures.policy.slug if figures.policy else None,
        "as_of": moment(figures.moment),
        "current_version": current.version if current else None,
        "due_at": moment(figures.due_at),
        "counts": counts_fields(figures.completion),
        "audiences": [
            {
                "audience": row.audience.slug,
                "name": row.audience.name,
                "counts": counts_fields(row.completion),
            }
            for row in figures.audiences
        ],
    }


def checkpoint_fields(checkpoint: LedgerCheckpoint) -> Fields:
    """A signed checkpoint of the ledger's transparency log: its size, root hash and the signed
    note (C2SP tlog-checkpoint) exactly as the portal serves it at /ledger/checkpoint."""
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "note": checkpoint.note,
        "created_at": moment(checkpoint.created_at),
        "timestamped": checkpoint.timestamp_token is not None,
    }
