"""The read API's JSON, described for its OpenAPI schema: one schema per dict that
api/representation.py builds (the same field names), plus the pages and the problem details.

Times are strings in the format `date-time` (UTC, with a Z): representation.py writes them
once, and the API sends them as written, to the microsecond, as the webhooks do.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from ninja import Schema
from pydantic import AwareDatetime, BeforeValidator, Field, WithJsonSchema

Moment = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Status = Literal["signed", "pending", "overdue", "declined", "renewal_due", "lapsed"]
# The moments the reports accept (forms/reports.py; a test keeps the two equal): Python's
# datetimes end at the years 1 and 9999, which a moment moved to another zone would leave.
EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(9998, 12, 31)
_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_8601_only(value: object) -> object:
    """Pydantic would also read a number as seconds since 1970: a parameter is ISO 8601 only."""
    if isinstance(value, str) and not _ISO_8601.match(value):
        raise ValueError("Enter an ISO 8601 time with its offset, e.g. 2026-03-31T17:00:00Z.")
    return value


# A moment asked for in a parameter: ISO 8601, with its offset.
MomentParam = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only)]


class Revision(Schema):
    id: int
    policy: str = Field(description="The policy's slug.")
    version: str
    change: Literal["material", "minor"] = Field(
        description="material: everyone must sign again; minor: earlier signatures carry over."
    )
    change_summary: str
    effective_at: Moment
    due_days: int = Field(description="Days people in scope have to sign once it takes effect.")
    due_at: Moment = Field(description="effective_at plus due_days.")
    published_at: Moment
    text_sha256: str = Field(description="SHA-256 of the authoritative text (UTF-8, LF).")
    audiences: list[str] = Field(description="The slugs of the audiences it applies to.")


class Policy(Schema):
    id: int
    slug: str
    name: str
    current_version: str | None = Field(description="The revision in effect now, if any.")
    revisions: list[Revision] = Field(description="Published revisions, oldest first.")


class PolicyList(Schema):
    items: list[Policy]


class Person(Schema):
    id: int
    email: str
    full_name: str
    external_id: str | None
    employee_number: str
    active: bool
    left_at: Moment | None


class PersonStatus(Schema):
    person: Person
    status: Status
    audiences: list[str] = Field(description="The audiences they were in at that moment.")
    came_into_scope_at: Moment
    due_at: Moment
    covered_at: Moment | None = Field(description="When they signed the revision covering them.")
    covering_version: str | None
    declined: bool


class PeoplePage(Schema):
    policy: str
    as_of: Moment
    current_version: str | None
    items: list[PersonStatus]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    next: str | None = Field(description="The next page's address; null on the last page.")


class Standing(Schema):
    policy: str
    policy_name: str
    current_version: str
    status: Status
    came_into_scope_at: Moment | None
    due_at: Moment
    covered_at: Moment | None
    covering_version: str | None
    covering_receipt_number: str | None
    declined_at: Moment | None
    overdue: bool
    lapses_at: Moment | None = Field(
        description="Under a renewal period: when the covering signature stops counting, or "
        "when the last one did (status renewal_due or lapsed); null otherwise."
    )


class PersonStandings(Schema):
    person: Person
    as_of: Moment
    policies: list[Standing] = Field(description="Every policy that applies to them then.")


class Receipt(Schema):
    sha256: str = Field(description="SHA-256 of the sealed PDF.")
    issued_at: Moment
    timestamped: bool
    url: str = Field(description="Download it with the same bearer token.")


class Acknowledgement(Schema):
    receipt_number: str
    signed_at: Moment
    policy: str
    revision_id: int
    version: str
    person: Person
    ledger_sequence: int | None = Field(
        description="Its place in the evidence ledger (null for the moment before it is linked)."
    )
    receipt: Receipt | None = Field(description="null while the receipt is being prepared.")


class AcknowledgementPage(Schema):
    items: list[Acknowledgement]
    next_cursor: str | None
    next: str | None


class Counts(Schema):
    total: int
    signed: int
    pending: int
    overdue: int
    declined: int
    renewal_due: int
    lapsed: int


class AudienceCounts(Schema):
    audience: str
    name: str
    counts: Counts


class Figures(Schema):
    policy: str
    as_of: Moment
    current_version: str | None
    due_at: Moment | None
    counts: Counts
    audiences: list[AudienceCounts] = Field(
        description="Per audience; a person in two audiences counts in both."
    )


class Checkpoint(Schema):
    tree_size: int = Field(description="How many ledger entries the log held.")
    root_hash: str = Field(description="The Merkle tree's root (RFC 9162), in hex.")
    note: str = Field(description="The signed note (C2SP tlog-checkpoint), exactly as signed.")
    created_at: Moment
    timestamped: bool = Field(description="Whether an RFC 3161 timestamp was added.")


class InvalidParam(Schema):
    name: str
    reason: str
    location: str = Field(description="query or path.")


class Problem(Schema):
    """Problem details (RFC 9457), sent as application/problem+json."""

    type: str
    title: str
    status: int
    detail: str
    invalid_params: list[InvalidParam] | None = None
