"""Exports an external auditor can take away: CSV (streamed), XLSX, a PDF summary, an audit ZIP.

The builders only read. Views and the export_acknowledgements command record each export with
services.record_export and then serve or write what these functions produce.

CSV rows are built in Python from each signature's ledger payload (the name and email as
recorded at signing) and the IP address and user agent kept beside it (checked against the
payload's salted commitments; "removed after the retention period" once they are gone), a block
of rows at a time, so memory stays flat however many rows there are, on SQLite and PostgreSQL
alike.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import IO, Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from .. import ledger, receipts
from ..coverage import Timeline
from ..evidence import client_facts
from ..models import Acknowledgement, LedgerEntry, Policy, Receipt, User
from . import charts, figures
from .figures import PeopleFilter, PolicyFigures, audience_names, lookup, shown, shown_client

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


def neutralise(value: str) -> str:
    """Prefix an apostrophe to text a spreadsheet would run as a formula."""
    return f"'{value}" if value.startswith(FORMULA_TRIGGERS) else value


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return ledger.utc_iso(value) or ""
    if value is None:
        return ""
    return neutralise(str(value))


def csv_blocks(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text in blocks of BLOCK_ROWS rows: few yields, and never the whole file in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow([_text(value) for value in row])
        if count % BLOCK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- Signatures ----------------------------------------------------------------------------------


def signature_records(queryset: Iterable[Acknowledgement] | Any) -> Iterator[tuple]:
    """One tuple per signature in ACKNOWLEDGEMENT_COLUMNS order; signed_at stays a datetime."""
    ledger.link_pending()  # each row carries its chain position
    rows = (
        queryset.annotate(audience_list=figures.current_audience_names("person_id"))
        .values_list(
            "receipt_number",
            "ledger_entry__payload",
            "audience_list",
            "revision__policy__name",
            "revision__version",
            "revision__text_sha256",
            "signed_at",
            "ledger_entry__sequence",
            "ledger_entry__row_hash",
            *(f"ledger_entry__client_details__{name}" for name in CLIENT_DETAIL_FIELDS),
        )
        .iterator(chunk_size=BLOCK_ROWS)
    )
    for row in rows:
        number, payload, audiences, policy, version, sha, signed_at, sequence, row_hash = row[:9]
        evidence = json.loads(bytes(payload))
        kept = dict(zip(CLIENT_DETAIL_FIELDS, row[9:], strict=True))
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
            shown_client(client["ip"]),
            shown_client(client["user_agent"]),
            shown(lookup(evidence, "authentication", "method")),
            sequence,
            row_hash,
        )


def acknowledgements_csv(queryset) -> Iterator[str]:
    return csv_blocks([h for h, _w in ACKNOWLEDGEMENT_COLUMNS], signature_records(queryset))


def people_records(queryset) -> Iterator[tuple]:
    """One tuple per person of a `figures.people` queryset, in PEOPLE_COLUMNS order."""
    rows = (
        queryset.annotate(audience_list=figures.current_audience_names())
        .values_list(
            "full_name",
            "email",
            "audience_list",
            "status",
            "covered_at",
            "covering_version",
            "declined",
            "due_at",
            "pk",
        )
        .iterator(chunk_size=BLOCK_ROWS)
    )
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
    return csv_blocks(PEOPLE_COLUMNS, people_records(queryset))


# --- XLSX ----------------------------------------------------------------------------------------


def write_acknowledgements_xlsx(
    target: IO[bytes], queryset, *, about: list[tuple[str, str]]
) -> int:
    """Write the signatures as a workbook (dates as real cells in UTC); return the row count.

    openpyxl's write-only mode keeps memory flat but cannot stream while it writes: the caller
    gives a file (a temporary one for a download).
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Acknowledgements")
    sheet.freeze_panes = "A2"
    for index, (_header, width) in enumerate(ACKNOWLEDGEMENT_COLUMNS, 1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    bold = Font(bold=True)

    def header_cell(text: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=text)
        cell.font = bold
        return cell

    sheet.append([header_cell(header) for header, _width in ACKNOWLEDGEMENT_COLUMNS])
    count = 0
    for count, record in enumerate(signature_records(queryset), 1):  # noqa: B007
        cells: list[Any] = []
        for index, value in enumerate(record):
            if index == SIGNED_AT_COLUMN:
                # Excel has no time zones: naive UTC, as the header says.
                cell = WriteOnlyCell(sheet, value=value.astimezone(dt.UTC).replace(tzinfo=None))
                cell.number_format = XLSX_DATE_FORMAT
                cells.append(cell)
            elif isinstance(value, int):
                cells.append(value)
            else:
                cells.append(neutralise(str(value)))
        sheet.append(cells)

    info = workbook.create_sheet("About this export")
    info.column_dimensions["A"].width = 28
    info.column_dimensions["B"].width = 90
    info.append([header_cell("Field"), header_cell("Value")])
    for key, value in [*about, ("Rows", str(count))]:
        info.append([neutralise(key), neutralise(value)])
    workbook.save(target)
    return count


# --- PDF summary ---------------------------------------------------------------------------------

SUMMARY_TEMPLATE = "acknowledgements/reports_pdf/summary.html"


def summary_context(policy_figures: PolicyFigures, *, generated_by: str) -> dict[str, Any]:
    policy = policy_figures.policy
    uid = f"pdf-{policy.slug}"
    context: dict[str, Any] = {
        "figures": policy_figures,
        "company_name": settings.PORTAL_COMPANY_NAME,
        "generated_at": timezone.now(),
        "generated_by": generated_by,
        "moment_utc": ledger.utc_iso(policy_figures.moment),
        "zone_name": timezone.get_current_timezone_name(),
        "fonts": {
            role: (receipts.FONTS_DIR / name).as_uri() for role, name in receipts.FONT_FILES.items()
        },
        "status_bar": charts.stacked_bar(
            uid, policy_figures.completion, title=f"{policy.name}: status of everyone in scope"
        ),
        "audience_bars": [
            (
                row,
                charts.stacked_bar(
                    f"{uid}-{row.audience.slug}",
                    row.completion,
                    title=f"{row.audience.name}: status",
                    height=18,
                    width=200,
                ),
            )
            for row in policy_figures.audiences
        ],
        "signatures_chart": (
            charts.signatures_chart(
                f"{uid}-daily",
                policy_figures.signatures,
                title=f"{policy.name}: signatures over time",
            )
            if policy_figures.signatures
            else None
        ),
    }
    return context


def summary_pdf(policy_figures: PolicyFigures, *, generated_by: str) -> bytes:
    """Render the one-policy summary for a board or an external auditor (fetches nothing)."""
    import weasyprint

    html = render_to_string(
        SUMMARY_TEMPLATE, summary_context(policy_figures, generated_by=generated_by)
    )
    # Reused from receipts: it serves the bundled fonts and refuses every other URL.
    fetcher = receipts.font_fetcher()
    return weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf(pdf_tags=True)


# --- The audit package ---------------------------------------------------------------------------

README_TEMPLATE = "acknowledgements/reports/package_readme.txt"
# Kept to ten lines of the standard library so an auditor can read all of it before running it.
VERIFY_SCRIPT = r"""import hashlib, json, sys
sha = lambda text: hashlib.sha256(text.encode("utf-8")).hexdigest()
previous, count = "0" * 64, 0
for count, line in enumerate(open(sys.argv[1] if sys.argv[1:] else "ledger.jsonl", encoding="utf-8", newline="\n"), 1):
    row = json.loads(line)
    expected = (count, sha(row["payload"]), previous, sha(f"{row['sequence']}\n{previous}\n{sha(row['payload'])}"))
    if (row["sequence"], row["payload_sha256"], row["previous_hash"], row["row_hash"]) != expected:
        sys.exit(f"FAILED at line {count} (sequence {row['sequence']}): the row does not match its hashes")
    previous = row["row_hash"]
print(f"OK: {count} rows verify; the head row hash is {previous}")
"""


@dataclass(frozen=True)
class PackageSummary:
    signatures: int
    receipts: int
    ledger_rows: int
    head_sequence: int | None
    head_hash: str


def _zip_info(name: str, *, stored: bool = False):
    import zipfile

    info = zipfile.ZipInfo(name, date_time=timezone.now().astimezone(dt.UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def ledger_head(moment: dt.datetime) -> tuple[int, str, dt.datetime] | None:
    """The last ledger row recorded by `moment`: the chain is exported up to and including it.

    Entries are linked moments after they are recorded, so the highest sequence among those
    recorded by `moment` is taken after linking any still waiting.
    """
    ledger.link_pending()
    return (
        LedgerEntry.objects.filter(recorded_at__lte=moment, sequence__isnull=False)
        .order_by("-sequence")
        .values_list("sequence", "row_hash", "recorded_at")
        .first()
    )


def write_package(
    target: IO[bytes],
    *,
    policy: Policy,
    timeline: Timeline,
    moment: dt.datetime,
    filters: PeopleFilter | None = None,
    exported_by: str,
) -> PackageSummary:
    """Write the audit ZIP: signatures, their sealed receipts as stored, the ledger up to the
    moment, its verification, the sealing certificates and a README to check it all offline."""
    import zipfile

    filters = filters or PeopleFilter()
    signatures = figures.signatures(policy, timeline, moment, filters)
    head = ledger_head(moment)
    identity = receipts.load_sealing_identity()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:

        def write_text(name: str, blocks: Iterable[str]) -> None:
            with zf.open(_zip_info(name), "w", force_zip64=True) as out:
                for block in blocks:
                    out.write(block.encode("utf-8"))

        signature_count = signatures.count()
        write_text("acknowledgements.csv", acknowledgements_csv(signatures))
        write_text("people.csv", people_csv(figures.people(timeline, moment, filters)))
        receipt_count = _write_receipts(zf, signatures)
        write_text("client-details.csv", client_details_csv(signatures))
        ledger_rows = _write_ledger(zf, head[0] if head else 0)
        verification = ledger.verify_chain(up_to=head[0]) if head else None
        write_text("verification.txt", [_verification_text(verification, moment)])
        write_text("chain-head.txt", [_head_text(head, moment)])
        zf.writestr(_zip_info("sealing-root.pem"), identity.root_pem)
        zf.writestr(_zip_info("sealing-certificate.pem"), identity.certificate_pem)
        zf.writestr(_zip_info("verify_ledger.py"), VERIFY_SCRIPT)
        readme = render_to_string(
            README_TEMPLATE,
            {
                "policy": policy,
                "moment": moment,
                "moment_utc": ledger.utc_iso(moment),
                "generated_at": ledger.utc_iso(timezone.now()),
                "exported_by": exported_by,
                "filters": filters.as_record(),
                "signatures": signature_count,
                "receipts": receipt_count,
                "ledger_rows": ledger_rows,
                "head": head,
                "fingerprint": identity.fingerprint,
                "verify_script": VERIFY_SCRIPT,
            },
        )
        zf.writestr(_zip_info("README.txt"), readme)
    return PackageSummary(
        signatures=signature_count,
        receipts=receipt_count,
        ledger_rows=ledger_rows,
        head_sequence=head[0] if head else None,
        head_hash=head[1] if head else ledger.GENESIS_HASH,
    )


CLIENT_DETAILS_COLUMNS = [
    "Ledger sequence",
    "Receipt number",
    "IP address",
    "IP address salt",
    "User agent",
    "User agent salt",
]


def client_details_csv(signatures) -> Iterator[str]:
    """The raw IP address and user agent still kept for each signature, with the salts that
    open the payload's commitments; signatures whose details were removed have no row."""
    rows = (
        signatures.filter(ledger_entry__client_details__isnull=False)
        .order_by("ledger_entry__sequence")
        .values_list(
            "ledger_entry__sequence",
            "receipt_number",
            *(f"ledger_entry__client_details__{name}" for name in CLIENT_DETAIL_FIELDS),
        )
        .iterator(chunk_size=BLOCK_ROWS)
    )
    return csv_blocks(CLIENT_DETAILS_COLUMNS, rows)


def _write_receipts(zf, signatures) -> int:
    """Copy each stored sealed receipt byte for byte (never re-rendered), plus SHA256SUMS."""
    storage = Receipt._meta.get_field("pdf").storage
    rows = (
        Receipt.objects.filter(acknowledgement__in=signatures.order_by().values("pk"))
        .order_by("acknowledgement__ledger_entry__sequence")
        .values_list("acknowledgement__receipt_number", "pdf", "sha256")
        .iterator(chunk_size=BLOCK_ROWS)
    )
    sums, count = io.StringIO(), 0
    for number, name, sha256 in rows:
        # PDFs are compressed already: stored, not deflated.
        with (
            storage.open(name, "rb") as source,
            zf.open(_zip_info(f"receipts/{number}.pdf", stored=True), "w") as out,
        ):
            shutil.copyfileobj(source, out, length=1024 * 1024)
        sums.write(f"{sha256}  {number}.pdf\n")
        count += 1
    zf.writestr(_zip_info("receipts/SHA256SUMS"), sums.getvalue())
    return count


def _write_ledger(zf, up_to: int) -> int:
    """ledger.jsonl (every column, the payload as its exact text) and ledger-payloads.txt (the
    payload bytes alone, one per line, for sha256sum); both in sequence order."""
    rows = (
        LedgerEntry.objects.filter(sequence__lte=up_to)
        .order_by("sequence")
        .values_list(
            "sequence",
            "kind",
            "recorded_at",
            "payload",
            "payload_sha256",
            "previous_hash",
            "row_hash",
        )
        .iterator(chunk_size=LEDGER_BLOCK_ROWS)
    )
    count = 0
    # Canonical payloads never contain a raw line break (JSON escapes them), so one per line.
    with tempfile.TemporaryFile() as payloads:
        with zf.open(_zip_info("ledger.jsonl"), "w", force_zip64=True) as out:
            for sequence, kind, recorded_at, payload, payload_sha, previous, row_hash in rows:
                body = bytes(payload)
                line = {
                    "sequence": sequence,
                    "kind": kind,
                    "recorded_at": ledger.utc_iso(recorded_at),
                    "payload_sha256": payload_sha,
                    "previous_hash": previous,
                    "row_hash": row_hash,
                    "payload": body.decode("utf-8"),
                }
                out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode())
                out.write(b"\n")
                payloads.write(body + b"\n")
                count += 1
        payloads.seek(0)
        with zf.open(_zip_info("ledger-payloads.txt"), "w", force_zip64=True) as out:
            shutil.copyfileobj(payloads, out, length=1024 * 1024)
    return count


def _verification_text(result: ledger.ChainVerification | None, moment: dt.datetime) -> str:
    checked = ledger.utc_iso(timezone.now())
    if result is None:
        return f"No ledger row was recorded by {ledger.utc_iso(moment)}: nothing to verify.\n"
    return (
        f"{result.summary()}\n\n"
        f"Checked by the portal at {checked} with ledger.verify_chain: every row from sequence 1 "
        f"to {result.rows_checked} was read from the database, its payload hashed, its link to "
        f"the previous row and its row hash recomputed, and its columns compared with the "
        f"payload.\nRun verify_ledger.py (see README.txt) to check the same without the portal.\n"
    )


def _head_text(head: tuple[int, str, dt.datetime] | None, moment: dt.datetime) -> str:
    if head is None:
        return f"as_of: {ledger.utc_iso(moment)}\nsequence: 0\nrow_hash: {ledger.GENESIS_HASH}\n"
    sequence, row_hash, recorded_at = head
    return (
        f"as_of: {ledger.utc_iso(moment)}\n"
        f"sequence: {sequence}\n"
        f"row_hash: {row_hash}\n"
        f"recorded_at: {ledger.utc_iso(recorded_at)}\n"
    )


def exported_by(actor: User | None, command: str = "") -> str:
    if actor is None:
        return f"manage.py {command}" if command else "the portal"
    return f"{actor.full_name} <{actor.email}>" if actor.full_name else actor.email
