"""Exports an external auditor can take away, their common parts: the CSV columns and writer
(formulas neutralised), the people CSV, who exported what, and the warning each export opens
with while the ledger is damaged. The signatures CSV is signatures_csv.py, the workbook and PDF
summary documents.py, the audit ZIP audit_package.py (whose own verification says so first).

The builders only read. Views and the export_acknowledgements command record each export
(evidence/audit.record_export) and then serve or write what these functions produce.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

from django.db.models import (
    QuerySet,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from acknowledgements.evidence import checks, ledger
from acknowledgements.evidence.client_evidence import RemovalRecorded, client_facts
from acknowledgements.evidence.payload import lookup, shown
from acknowledgements.models import Acknowledgement, Policy, User
from acknowledgements.reports.history import shown_client
from acknowledgements.reports.lists import audience_names

BLOCK_ROWS = 2_000
CLIENT_DETAIL_FIELDS = ("ip", "ip_salt", "user_agent", "user_agent_salt")
LEDGER_BLOCK_ROWS = 5_000
# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
XLSX_DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"

# (header, XLSX column width)
ACKNOWLEDGEMENT_COLUMNS = [
    ("Receipt number", 20),
    ("Email at signing", 30),
    ("Name at signing", 26),
    ("Audiences (current)", 24),
    ("Policy", 26),
    ("Version", 9),
    ("Text SHA-256", 66),
    ("Signed at (UTC)", 28),
    ("IP address", 16),
    ("User agent", 50),
    ("Authentication method", 22),
    ("Ledger sequence", 10),
    ("Row hash", 66),
]
SIGNED_AT_COLUMN = 7
PEOPLE_COLUMNS = [
    "Name",
    "Email",
    "Audiences (current)",
    "Status",
    "Signed at (UTC)",
    "Version signed",
    "Declined",
    "Due at (UTC)",
    "Person id",
]


def damage_warning() -> str | None:
    """The line every export opens with while the latest ledger check found damage, in the
    active language; None while the ledger verifies, when an export is as it has always been.

    Read when the file is made (a background export's task reads it, not its request).
    """
    check = checks.damage()
    if check is None:
        return None
    problem = check.problems[0] if check.problems else ""
    return _(
        "WARNING: the ledger does not verify (%(problem)s); these figures cannot be relied on "
        "until it is repaired."
    ) % {"problem": problem.rstrip(".")}


def neutralise(value: str) -> str:
    """Prefix an apostrophe to text a spreadsheet would run as a formula."""
    return f"'{value}" if value.startswith(FORMULA_TRIGGERS) else value


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return ledger.utc_iso(value) or ""
    if value is None:
        return ""
    return neutralise(str(value))


def csv_blocks(
    header: list[str], rows: Iterable[Iterable[Any]], *, warning: str | None = None
) -> Iterator[str]:
    """CSV text in blocks of BLOCK_ROWS rows: few yields, and never the whole file in memory.

    A `warning` (damage_warning) is a row of its own above the header.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if warning:
        writer.writerow([warning])
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow([_text(value) for value in row])
        if count % BLOCK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- Signatures ----------------------------------------------------------------------------------


def signature_records(queryset: QuerySet[Acknowledgement]) -> Iterator[tuple]:
    """One tuple per signature of a `lists.signatures` queryset, in ACKNOWLEDGEMENT_COLUMNS order;
    signed_at stays a datetime."""
    ledger.link_pending()  # each row carries its chain position
    recorded = RemovalRecorded("ledger_entry__person_id", "ledger_entry__sequence")
    queryset = queryset.annotate(removal_recorded=recorded)
    rows = queryset.values_list(
        "receipt_number",
        "ledger_entry__payload",
        "audience_list",
        "revision__policy__name",
        "revision__version",
        "revision__text_sha256",
        "signed_at",
        "ledger_entry__sequence",
        "ledger_entry__row_hash",
        "removal_recorded",
        *(f"ledger_entry__client_details__{name}" for name in CLIENT_DETAIL_FIELDS),
    ).iterator(chunk_size=BLOCK_ROWS)
    for row in rows:
        number, payload, audiences, policy, version, sha, signed_at, sequence, row_hash = row[:9]
        removal_recorded = row[9]  # only read when the client details are gone
        evidence = json.loads(bytes(payload))
        kept = dict(zip(CLIENT_DETAIL_FIELDS, row[10:], strict=True))
        client = client_facts(evidence, SimpleNamespace(**kept) if kept["ip_salt"] else None)
        yield (
            number,
            shown(lookup(evidence, "person", "email")),
            shown(lookup(evidence, "person", "name")),
            audience_names(audiences),
            policy,
            version,
            sha,
            signed_at,
            shown_client(client["ip"], removal_recorded=removal_recorded),
            shown_client(client["user_agent"], removal_recorded=removal_recorded),
            shown(lookup(evidence, "authentication", "method")),
            sequence,
            row_hash,
        )


def python_acknowledgements_csv(queryset) -> Iterator[bytes]:
    header = [h for h, _w in ACKNOWLEDGEMENT_COLUMNS]
    # The warning is read now, in the request and its language, not when the stream is read.
    blocks = csv_blocks(header, signature_records(queryset), warning=damage_warning())
    return (block.encode("utf-8") for block in blocks)


def people_records(queryset) -> Iterator[tuple]:
    """One tuple per person of a `lists.people` queryset, in PEOPLE_COLUMNS order."""
    rows = queryset.values_list(
        "full_name",
        "email",
        "audience_list",
        "status",
        "covered_at",
        "covering_version",
        "declined",
        "due_at",
        "pk",
    ).iterator(chunk_size=BLOCK_ROWS)
    for name, email, audiences, status, covered, version, declined, due, pk in rows:
        yield (
            name,
            email,
            audience_names(audiences),
            status,
            covered,
            version or "",
            "yes" if declined else "no",
            due,
            pk,
        )


def people_csv(queryset) -> Iterator[str]:
    return csv_blocks(PEOPLE_COLUMNS, people_records(queryset), warning=damage_warning())


def export_metadata(
    *, policy: Policy, moment: dt.datetime, exported_by: str, filters: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """The rows that open an export's workbook: what it covers, who made it, when."""
    rows = [
        ("Policy", policy.name),
        ("As of (UTC)", ledger.utc_iso(moment) or ""),
        ("Audiences", "as people were in them at that moment"),
    ]
    if filters is not None:
        rows.append(("Filters", ", ".join(f"{k}={v}" for k, v in filters.items()) or "none"))
    return [
        *rows,
        ("Exported by", exported_by),
        ("Exported at (UTC)", ledger.utc_iso(timezone.now()) or ""),
    ]


def exported_by(actor: User | None, command: str = "") -> str:
    if actor is None:
        return f"manage.py {command}" if command else "the portal"
    return f"{actor.full_name} <{actor.email}>" if actor.full_name else actor.email
