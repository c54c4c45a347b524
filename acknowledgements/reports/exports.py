"""Exports an external auditor can take away: CSV (streamed), XLSX, a PDF summary, an audit ZIP.

The builders only read. Views and the export_acknowledgements command record each export with
services.record_export and then serve or write what these functions produce.

The signatures CSV carries fields of each signature's ledger payload (the name and email as
recorded at signing) and the IP address and user agent kept beside it (checked against the
payload's salted commitments; "removed after the retention period" once they are gone). On
PostgreSQL the database writes it: one `COPY ... TO STDOUT (FORMAT csv)` whose SQL extracts
those fields, checks the commitments and neutralises formulas exactly as the Python writer
does, streamed a block at a time. Elsewhere (SQLite on a laptop) Python builds the rows. Both
give the same bytes for the same data, and memory stays flat however many rows there are.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    F,
    Func,
    JSONField,
    OuterRef,
    QuerySet,
    StringAgg,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Collate
from django.template.loader import render_to_string
from django.utils import timezone

from acknowledgements.evidence import ledger
from acknowledgements.evidence.client_evidence import client_facts
from acknowledgements.evidence.payload import NOT_RECORDED, lookup, shown
from acknowledgements.models import Acknowledgement, LedgerEntry, Policy, Receipt, User
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import document as receipt_document
from acknowledgements.reports import charts, figures
from acknowledgements.reports.figures import (
    PeopleFilter,
    PolicyFigures,
    audience_names,
    shown_client,
)
from acknowledgements.standings.coverage import Timeline

BLOCK_ROWS = 2_000
CLIENT_DETAIL_FIELDS = ("ip", "ip_salt", "user_agent", "user_agent_salt")
# A builder reports its progress every this many rows (a background export saves it for its page).
PROGRESS_ROWS = 1_000
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


def signature_records(queryset: QuerySet[Acknowledgement]) -> Iterator[tuple]:
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


def acknowledgements_csv(queryset) -> Iterator[bytes]:
    """The signatures CSV (UTF-8, CRLF): written by PostgreSQL's COPY there, by Python elsewhere."""
    if connections[queryset.db].vendor == "postgresql":
        return copied_acknowledgements_csv(queryset)
    return python_acknowledgements_csv(queryset)


def python_acknowledgements_csv(queryset) -> Iterator[bytes]:
    header = [h for h, _w in ACKNOWLEDGEMENT_COLUMNS]
    return (block.encode("utf-8") for block in csv_blocks(header, signature_records(queryset)))


# --- Signatures by COPY (PostgreSQL) ---------------------------------------------------------------

COPY_BLOCK_BYTES = 256 * 1024
# Blocks written by the COPY thread and not sent yet: the bound keeps memory flat when the client
# reads more slowly than the database writes.
COPY_QUEUE_BLOCKS = 4
COPY_POLL_SECONDS = 0.1


def _sql_shown(*path: str) -> str:
    """payload.shown(payload.lookup(evidence, *path)) in SQL, on the jsonb column s.evidence.

    `#>` is NULL when a step is missing or is not an object, where `lookup` returns None.
    Strings, booleans, JSON null and integers come out as `shown` writes them; a JSON object,
    array or non-integer number (never written there by the actions) would come out as
    PostgreSQL prints JSON, not as Python's json.dumps does.
    """
    json_path = "'{" + ",".join(path) + "}'"
    value = f"s.csv_evidence #> {json_path}"
    return (
        f"COALESCE(CASE jsonb_typeof({value})"
        f" WHEN 'string' THEN s.csv_evidence #>> {json_path}"
        f" WHEN 'boolean' THEN CASE WHEN ({value})::boolean THEN 'yes' ELSE 'no' END"
        f" WHEN 'null' THEN NULL ELSE ({value})::text END, '{NOT_RECORDED}')"
    )


def _sql_client(name: str) -> str:
    """figures.shown_client(evidence.client_facts(...)[name]) in SQL, on the subquery's columns.

    The payload commits to the value (`<name>_sha256`) and the raw value and its salt are kept
    in ClientDetails (s.csv_<name>, s.csv_<name>_salt) until the retention period removes them;
    entries written before commitments existed carry the value itself.
    """
    committed_key = f"{name}_sha256"
    committed = f"s.csv_evidence #> '{{client,{committed_key}}}'"
    value, salt = f"s.csv_{name}", f"s.csv_{name}_salt"
    recomputed = f"encode(sha256(convert_to({salt} || {value}, 'UTF8')), 'hex')"
    return (
        "CASE"
        f" WHEN NOT COALESCE(jsonb_typeof(s.csv_evidence -> 'client') = 'object'"
        f" AND (s.csv_evidence -> 'client') ? '{committed_key}', false)"
        f" THEN {_sql_shown('client', name)}"
        f" WHEN jsonb_typeof({committed}) = 'null' THEN '{NOT_RECORDED}'"
        f" WHEN {salt} IS NULL THEN '{figures.REMOVED}'"
        f" WHEN {value} IS NOT NULL AND {recomputed} = s.csv_evidence #>> '{{client,{committed_key}}}'"
        f" THEN {value}"
        # Python writes a missing value as "None" here (a commitment without a value: never
        # written by the services, kept identical all the same).
        f" ELSE COALESCE({value}, 'None') || ' {figures.CLIENT_MISMATCH}' END"
    )


def _sql_cell(expression: str, *, neutralised: bool = True) -> str:
    """A CSV cell as `_text` writes it: `neutralise`d, and empty text as NULL, because COPY
    quotes an empty string ("") where Python's csv writer writes nothing."""
    if neutralised:
        # The %s is FORMULA_TRIGGERS, given as a parameter (a tuple reads as an IN list).
        expression = (
            f"CASE WHEN left({expression}, 1) IN %s THEN '''' || {expression} ELSE {expression} END"
        )
    return f"NULLIF({expression}, '')"


def signatures_copy_sql(queryset) -> tuple[str, list[Any]]:
    """A SELECT whose `COPY ... (FORMAT csv)` rows are `python_acknowledgements_csv`'s rows."""
    through = User.audiences.through
    grouped = (
        through.objects.filter(user_id=OuterRef("person_id"))
        .order_by()
        .values("user_id")
        .annotate(
            names=StringAgg(
                "audience__name",
                delimiter=Value("; "),
                # Code point order ("C"), as Python's sorted() in figures.audience_names.
                order_by=Collate(F("audience__name"), "C"),
            )
        )
    )
    # The stubs lose an annotation made after values() (typeddjango/django-stubs#3509).
    names = grouped.values("names")  # type: ignore[misc]
    audiences = Subquery(names[:1], output_field=TextField())
    rows = queryset.values(
        csv_number=F("receipt_number"),
        csv_evidence=Func(
            F("ledger_entry__payload"),
            template="convert_from(%(expressions)s, 'UTF8')::jsonb",
            output_field=JSONField(),
        ),
        csv_audiences=audiences,
        csv_policy=F("revision__policy__name"),
        csv_version=F("revision__version"),
        csv_sha=F("revision__text_sha256"),
        csv_signed_at=F("signed_at"),
        csv_sequence=F("ledger_entry__sequence"),
        csv_row_hash=F("ledger_entry__row_hash"),
        **{
            f"csv_{name}": F(f"ledger_entry__client_details__{name}")
            for name in CLIENT_DETAIL_FIELDS
        },
    )
    inner, inner_params = rows.query.get_compiler(using=queryset.db).as_sql()
    cells = [
        _sql_cell("s.csv_number"),
        _sql_cell(_sql_shown("person", "email")),
        _sql_cell(_sql_shown("person", "name")),
        _sql_cell("s.csv_audiences"),
        _sql_cell("s.csv_policy"),
        _sql_cell("s.csv_version"),
        _sql_cell("s.csv_sha"),
        # ledger.utc_iso: microseconds and a Z; `_text` never neutralises a datetime.
        _sql_cell(
            """to_char(s.csv_signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
            neutralised=False,
        ),
        _sql_cell(_sql_client("ip")),
        _sql_cell(_sql_client("user_agent")),
        _sql_cell(_sql_shown("authentication", "method")),
        _sql_cell("s.csv_sequence::text"),
        _sql_cell("s.csv_row_hash"),
    ]
    if len(cells) != len(ACKNOWLEDGEMENT_COLUMNS):
        raise AssertionError("one SQL cell per column of ACKNOWLEDGEMENT_COLUMNS")
    # The inner query keeps its ORDER BY (ledger order), so PostgreSQL keeps it a subquery: each
    # payload is converted and parsed once, however many fields are taken from it.
    # Only constant fragments and Django's compiled SQL; every value is a parameter.
    sql = f"SELECT {', '.join(cells)} FROM ({inner}) AS s ORDER BY s.csv_sequence"  # noqa: S608
    triggers = [FORMULA_TRIGGERS] * sum(cell.count(" IN %s ") for cell in cells)
    return sql, [*triggers, *inner_params]


class _CopyRows:
    """The file COPY writes to: each write is one row (PostgreSQL sends one CopyData message per
    row), ended by a bare LF; it is ended by CRLF, as Python's csv writer does, and rows are
    handed on in blocks of about COPY_BLOCK_BYTES."""

    def __init__(self, hand_on: Callable[[bytes], None]) -> None:
        self.hand_on = hand_on
        self.rows: list[bytes] = []
        self.size = 0

    def write(self, row: bytes) -> None:
        self.rows.append(row[:-1])
        self.size += len(row)
        if self.size >= COPY_BLOCK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.hand_on(b"\r\n".join(self.rows) + b"\r\n")
            self.rows, self.size = [], 0


_COPY_DONE = object()


def copied_acknowledgements_csv(queryset) -> Iterator[bytes]:
    """The header (by Python's csv writer), then PostgreSQL's COPY of `signatures_copy_sql`.

    psycopg2's copy_expert only returns when the COPY is over, so it runs in a thread on the
    request's connection while this generator hands its blocks to the response; nothing else
    uses that connection meanwhile. Stopped early (the client went away), it cancels the COPY.
    """
    yield from python_acknowledgements_csv(queryset.none())
    try:
        sql, params = signatures_copy_sql(queryset)
    except EmptyResultSet:
        # Django writes no SQL for a filter that can match nothing (people in scope of a policy
        # with no revision in effect, say): there is no row to copy, the header was the file.
        return
    connection = connections[queryset.db]
    blocks: queue.Queue[Any] = queue.Queue(maxsize=COPY_QUEUE_BLOCKS)
    stopped = threading.Event()

    def hand_on(item: Any) -> None:
        while not stopped.is_set():
            try:
                blocks.put(item, timeout=COPY_POLL_SECONDS)
                return
            except queue.Full:
                continue

    with connection.cursor() as cursor:
        statement = cursor.mogrify(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params)
        raw_cursor = cursor.cursor

        def copy() -> None:
            try:
                rows = _CopyRows(hand_on)
                raw_cursor.copy_expert(statement, rows)
                rows.flush()
                hand_on(_COPY_DONE)
            except BaseException as error:  # handed to the generator, which raises it
                hand_on(error)

        thread = threading.Thread(target=copy, name="csv-copy", daemon=True)
        thread.start()
        try:
            while (block := blocks.get()) is not _COPY_DONE:
                if isinstance(block, BaseException):
                    raise block
                yield block
        finally:
            if thread.is_alive():
                stopped.set()
                connection.connection.cancel()
            thread.join()


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


Progress = Callable[[int], None]


class _Counter:
    """Counts rows written and tells `progress` every PROGRESS_ROWS of them."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0

    def add(self, rows: int = 1) -> None:
        before, self.done = self.done, self.done + rows
        if self.progress and before // PROGRESS_ROWS != self.done // PROGRESS_ROWS:
            self.progress(self.done)


def write_acknowledgements_xlsx(
    target: IO[bytes],
    queryset,
    *,
    about: list[tuple[str, str]],
    progress: Progress | None = None,
) -> int:
    """Write the signatures as a workbook (dates as real cells in UTC); return the row count.

    openpyxl's write-only mode keeps memory flat but cannot stream while it writes: the caller
    gives a file (a temporary one, or the file of a background export). `progress` is called
    with the number of rows written so far, every PROGRESS_ROWS rows.
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
    counter = _Counter(progress)
    for record in signature_records(queryset):
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
        counter.add()
    count = counter.done

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
    if policy is None:
        raise ValueError("A summary is of one policy's figures.")
    uid = f"pdf-{policy.slug}"
    context: dict[str, Any] = {
        "figures": policy_figures,
        "company_name": settings.PORTAL_COMPANY_NAME,
        "generated_at": timezone.now(),
        "generated_by": generated_by,
        "moment_utc": ledger.utc_iso(policy_figures.moment),
        "zone_name": timezone.get_current_timezone_name(),
        "fonts": {
            role: (receipt_document.FONTS_DIR / name).as_uri()
            for role, name in receipt_document.FONT_FILES.items()
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
    fetcher = receipt_document.font_fetcher()
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
    head = (
        LedgerEntry.objects.filter(recorded_at__lte=moment, sequence__isnull=False)
        .order_by("-sequence")
        .values_list("sequence", "row_hash", "recorded_at")
        .first()
    )
    if head is None:
        return None
    sequence, row_hash, recorded_at = head
    if sequence is None or row_hash is None:
        # Linking sets sequence and row_hash together; the database allows no other change.
        raise RuntimeError("The ledger's head has a sequence but no row hash.")
    return sequence, row_hash, recorded_at


def write_package(
    target: IO[bytes],
    *,
    policy: Policy,
    timeline: Timeline,
    moment: dt.datetime,
    filters: PeopleFilter | None = None,
    exported_by: str,
    progress: Progress | None = None,
) -> PackageSummary:
    """Write the audit ZIP: signatures, their sealed receipts as stored, the ledger up to the
    moment, its verification, the sealing certificates and a README to check it all offline.

    `progress` is told the rows written so far (signatures, receipts and ledger rows; see
    `package_rows`)."""
    import zipfile

    filters = filters or PeopleFilter()
    signatures = figures.signatures(policy, timeline, moment, filters)
    head = ledger_head(moment)
    counter = _Counter(progress)
    identity = receipt_authority.load_sealing_identity()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:

        def write_text(name: str, blocks: Iterable[str | bytes]) -> None:
            with zf.open(_zip_info(name), "w", force_zip64=True) as out:
                for block in blocks:
                    out.write(block if isinstance(block, bytes) else block.encode("utf-8"))

        signature_count = signatures.count()
        write_text("acknowledgements.csv", acknowledgements_csv(signatures))
        counter.add(signature_count)
        write_text("people.csv", people_csv(figures.people(timeline, moment, filters)))
        receipt_count = _write_receipts(zf, signatures, counter)
        write_text("client-details.csv", client_details_csv(signatures))
        ledger_rows = _write_ledger(zf, head[0] if head else 0, counter)
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


def package_rows(
    *, policy: Policy, timeline: Timeline, moment: dt.datetime, filters: PeopleFilter
) -> int:
    """How many rows `write_package` reports when it is done: signatures, receipts, ledger rows."""
    signatures = figures.signatures(policy, timeline, moment, filters)
    head = ledger_head(moment)
    receipts_stored = Receipt.objects.filter(acknowledgement__in=signatures.order_by().values("pk"))
    return signatures.count() + receipts_stored.count() + (head[0] if head else 0)


def _write_receipts(zf, signatures, counter: _Counter) -> int:
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
        counter.add()
    zf.writestr(_zip_info("receipts/SHA256SUMS"), sums.getvalue())
    return count


def _write_ledger(zf, up_to: int, counter: _Counter) -> int:
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
                counter.add()
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


def export_metadata(
    *, policy: Policy, moment: dt.datetime, exported_by: str, filters: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """The rows that open an export's workbook: what it covers, who made it, when."""
    rows = [("Policy", policy.name), ("As of (UTC)", ledger.utc_iso(moment) or "")]
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
