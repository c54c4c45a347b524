"""The people list as a file: the columns an HR export has, so that an exported list can be
edited and imported back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from acknowledgements.evidence import ledger
from acknowledgements.models import User
from acknowledgements.reports.exports import csv_blocks

# Audiences are listed by slug, separated by AUDIENCE_SEPARATOR; dates are UTC ISO 8601.
DIRECTORY_COLUMNS = [
    "email",
    "full_name",
    "audiences",
    "joined_at",
    "manager_email",
    "external_id",
    "employee_number",
    "active",
    "left_at",
]
AUDIENCE_SEPARATOR = ";"


def directory_people() -> QuerySet[User]:
    return User.objects.select_related("manager").prefetch_related("audiences").order_by("email")


def _row(person: User) -> list[Any]:
    return [
        person.email,
        person.full_name,
        AUDIENCE_SEPARATOR.join(sorted(a.slug for a in person.audiences.all())),
        ledger.utc_iso(person.date_joined),
        person.manager.email if person.manager else "",
        person.external_id or "",
        person.employee_number,
        "yes" if person.is_active else "no",
        ledger.utc_iso(person.left_at) or "",
    ]


def directory_csv(people: QuerySet[User]) -> Iterator[str]:
    """Everyone in `people` as CSV blocks, read a chunk at a time."""
    return csv_blocks(DIRECTORY_COLUMNS, (_row(p) for p in people.iterator(chunk_size=2_000)))
