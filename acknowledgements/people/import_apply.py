"""Applying a planned import (import_plan.py): batch by batch, each batch one transaction with
bulk statements and one `people_imported` ledger row listing every change of the batch with
its values before and after."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from itertools import batched
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from acknowledgements.evidence import ledger
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.models import Audience, User
from acknowledgements.notifications import scope
from acknowledgements.people.import_plan import (
    BATCH,
    Outcome,
    Plan,
    PlannedRow,
    Progress,
    plan_import,
)
from acknowledgements.standings import memberships, tallies


def _shown(value: Any) -> Any:
    """A value as the audit record states it (times in UTC ISO 8601)."""
    return ledger.utc_iso(value) if isinstance(value, dt.datetime) else value


def apply_import(
    data: bytes,
    *,
    actor: User | None,
    filename: str,
    now: dt.datetime | None = None,
    progress: Progress = None,
    inviting: bool = False,
) -> Plan:
    """Apply the file as `plan_import` reads it now: batch by batch, each batch one transaction
    with one audited ledger row. Managers are set last, so that a manager added by the same
    file exists by then. `progress` is told how many changed rows are written after each batch.
    Whoever a batch brings into a policy's scope unsigned is told by email, except the people
    added when `inviting` (their invitation names what they must sign)."""
    plan = plan_import(data, now=now)
    audiences = dict(Audience.objects.values_list("slug", "pk"))
    applied = [r for r in plan.rows if r.outcome not in (Outcome.REFUSED, Outcome.UNCHANGED)]
    done = 0
    for batch in batched(applied, BATCH):
        _apply_batch(
            list(batch), audiences=audiences, actor=actor, filename=filename, inviting=inviting
        )
        done += len(batch)
        if progress:
            progress(done)
    _set_managers([r for r in applied if "manager" in r.changes or r.outcome == Outcome.CREATE])
    return plan


@transaction.atomic
def _apply_batch(
    batch: list[PlannedRow],
    *,
    audiences: dict[str, int],
    actor: User | None,
    filename: str,
    inviting: bool,
) -> None:
    since = timezone.now()
    created = [r for r in batch if r.outcome == Outcome.CREATE]
    unusable = make_password(None)  # a new person chooses a password from an invitation
    people = User.objects.bulk_create(
        User(
            email=r.values["email"],
            full_name=r.values["full_name"],
            password=unusable,
            date_joined=r.values["joined_at"],
            external_id=r.values["external_id"],
            employee_number=r.values["employee_number"],
        )
        for r in created
    )
    for row, person in zip(created, people, strict=True):
        row.person_id = person.pk
    EmailAddress.objects.bulk_create(
        EmailAddress(user_id=r.person_id, email=r.values["email"], primary=True, verified=False)
        for r in created
    )
    changed = [r for r in batch if r.outcome != Outcome.CREATE]
    _update_people(changed)
    _replace_memberships(
        [r for r in batch if r.outcome == Outcome.CREATE or "audiences" in r.changes], audiences
    )
    # Their membership history and the census are brought in step as the portal's own pages
    # do, the whole batch at one moment.
    moved = [
        r.person_id
        for r in changed
        if r.person_id and {"audiences", "active", "left_at", "joined_at"} & set(r.changes)
    ]
    added = [r.person_id for r in created if r.person_id]
    with memberships.changes_by(f"import:{filename}"):
        tallies.refresh_people([*moved, *added], at=since)
    scope.after_scope_change([*moved, *([] if inviting else added)], since)
    record_admin_action(
        actor=actor,
        action="people_imported",
        details={
            "file": filename,
            "rows": [
                {
                    "line": r.line,
                    "key": r.key,
                    "outcome": r.outcome.value,
                    "changes": {
                        f: {"before": _shown(b), "after": _shown(a)}
                        for f, (b, a) in r.changes.items()
                    }
                    if r.outcome != Outcome.CREATE
                    else {f: _shown(v) for f, v in r.values.items()},
                }
                for r in batch
            ],
        },
    )


COLUMN_OF = {
    "email": "email",
    "full_name": "full_name",
    "joined_at": "date_joined",
    "external_id": "external_id",
    "employee_number": "employee_number",
    "active": "is_active",
    "left_at": "left_at",
}


def _update_people(rows: list[PlannedRow]) -> None:
    people = User.objects.in_bulk([r.person_id for r in rows])
    fields: set[str] = set()
    for row in rows:
        person = people[row.person_id]
        for name, (_before, after) in row.changes.items():
            if name in COLUMN_OF:
                setattr(person, COLUMN_OF[name], after)
                fields.add(COLUMN_OF[name])
    if fields:
        User.objects.bulk_update(
            [people[r.person_id] for r in rows], sorted(fields), batch_size=500
        )
    moved = {row.person_id: row.values["email"] for row in rows if "email" in row.changes}
    if moved:
        EmailAddress.objects.filter(user_id__in=moved).delete()
        EmailAddress.objects.bulk_create(
            EmailAddress(user_id=pk, email=email, primary=True, verified=False)
            for pk, email in moved.items()
        )


def _replace_memberships(rows: list[PlannedRow], audiences: dict[str, int]) -> None:
    through = User.audiences.through
    through.objects.filter(user_id__in=[r.person_id for r in rows]).delete()
    through.objects.bulk_create(
        through(user_id=r.person_id, audience_id=audiences[slug])
        for r in rows
        for slug in r.values["audiences"]
    )


def _set_managers(rows: Iterable[PlannedRow]) -> None:
    rows = list(rows)
    named = {r.values["manager"] for r in rows if r.values.get("manager")}
    ids = dict(User.objects.filter(email__in=named).values_list("email", "pk"))
    for batch in batched(rows, BATCH):
        people = User.objects.in_bulk([r.person_id for r in batch])
        for row in batch:
            people[row.person_id].manager_id = ids.get(row.values.get("manager") or "")
        with transaction.atomic():
            User.objects.bulk_update(list(people.values()), ["manager"], batch_size=500)
