"""The signatures CSV: `acknowledgements_csv` has PostgreSQL write it where it can, with one
`COPY ... TO STDOUT (FORMAT csv)` of the values each signature's Acknowledgement row stores from
its payload (evidence/signature_columns.py), the client commitments opened with the details kept
beside them and formulas neutralised exactly as the Python writer (exports.py), which reads
every payload, does; streamed a block at a time: the same bytes for the same data, and memory
flat however many rows there are. Elsewhere (SQLite on a laptop) Python writes it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    BooleanField,
    ExpressionWrapper,
    F,
    Func,
    Q,
    TextField,
    Value,
)
from django.db.models.lookups import Exact

from acknowledgements.evidence import client_evidence
from acknowledgements.evidence.signature_columns import client_columns
from acknowledgements.reports import figures, lists
from acknowledgements.reports.exports import (
    ACKNOWLEDGEMENT_COLUMNS,
    FORMULA_TRIGGERS,
    python_acknowledgements_csv,
)

# --- Signatures by COPY (PostgreSQL) ---------------------------------------------------------------

COPY_BLOCK_BYTES = 256 * 1024
# Blocks written by the COPY thread and not sent yet: the bound keeps memory flat when the client
# reads more slowly than the database writes.
COPY_QUEUE_BLOCKS = 4
COPY_POLL_SECONDS = 0.1
DETAILS = "ledger_entry__client_details"
LEDGER_ORDER = ("ledger_entry_id",)  # lists.signatures' order


def _client_columns(name: str) -> dict[str, Any]:
    """The inner query's columns `_sql_client` reads for a client value: its commitment, what
    the payload shows without one, the raw value kept in ClientDetails and whether it opens the
    commitment (NULL never does)."""
    committed, shown = client_columns(name)
    value = F(f"{DETAILS}__{name}")
    opened = Func(
        F(f"{DETAILS}__{name}_salt"),
        value,
        template="encode(sha256(convert_to(%(expressions)s, 'UTF8')), 'hex')",
        arg_joiner=" || ",
        output_field=TextField(),
    )
    return {
        f"csv_{name}_committed": F(committed),
        f"csv_{name}_shown": F(shown),
        f"csv_{name}_value": value,
        f"csv_{name}_opens": ExpressionWrapper(
            Exact(opened, F(committed)), output_field=BooleanField()
        ),
    }


def _sql_neutralised(expression: str) -> str:
    """`neutralise` in SQL. The %s is FORMULA_TRIGGERS, given as a parameter (a tuple reads as
    an IN list)."""
    return f"CASE WHEN left({expression}, 1) IN %s THEN '''' || {expression} ELSE {expression} END"


def _sql_client(name: str) -> str:
    """history.shown_client(evidence.client_facts(...)[name]), neutralised, from the columns of
    `_client_columns`.

    Without a commitment, the value is what the payload shows (`<name>_shown`). With one, the
    raw value and its salt are read from ClientDetails, whose row the Python writer takes for
    absent when it has no IP address salt (`csv_gone`): then the details were removed after the
    retention period if a "redacted" event of the person lists the entry (`removed`, joined), or
    are missing; a kept value is shown if it opens the commitment, and marked if it does not
    (Python writes a missing value as "None" there).
    """
    value = f"s.csv_{name}_value"
    marked = f"(COALESCE({value}, 'None') || ' {figures.CLIENT_MISMATCH}')"
    return (
        f"CASE WHEN s.csv_{name}_committed IS NULL THEN {_sql_neutralised(f's.csv_{name}_shown')}"
        " WHEN s.csv_gone THEN CASE WHEN s.csv_sequence_number = ANY(removed.sequences)"
        f" THEN '{figures.REMOVED}' ELSE '{figures.MISSING}' END"
        f" WHEN s.csv_{name}_opens THEN {_sql_neutralised(value)}"
        f" ELSE {_sql_neutralised(marked)} END"
    )


def signatures_copy_sql(queryset) -> tuple[str, list[Any]]:
    """A SELECT whose `COPY ... (FORMAT csv)` rows are `python_acknowledgements_csv`'s rows."""
    # The names `lists.signatures` joined, sorted in code point order ("C") and joined by "; ",
    # as Python's sorted() in lists.audience_names.
    audiences = Func(
        F("audience_list"),
        Value(lists.AUDIENCE_SEPARATOR),
        template="NULLIF(array_to_string(ARRAY(SELECT a FROM unnest(string_to_array("
        "%(expressions)s)) AS a ORDER BY a COLLATE \"C\"), '; '), '')",
        output_field=TextField(),
    )
    kept_salt = f"{DETAILS}__ip_salt"
    rows = queryset.values(
        csv_entry=F("ledger_entry_id"),
        csv_person=F("ledger_entry__person_id"),
        csv_sequence_number=F("ledger_entry__sequence"),
        csv_number=F("receipt_number"),
        csv_email=F("email_at_signing"),
        csv_name=F("name_at_signing"),
        csv_audiences=audiences,
        csv_policy=F("revision__policy__name"),
        csv_version=F("revision__version"),
        csv_sha=F("revision__text_sha256"),
        csv_signed_at=F("signed_at"),
        csv_gone=ExpressionWrapper(
            Q(**{f"{kept_salt}__isnull": True}) | Q(**{kept_salt: ""}),
            output_field=BooleanField(),
        ),
        **_client_columns("ip"),
        **_client_columns("user_agent"),
        csv_method=F("authentication_method"),
        csv_row_hash=F("ledger_entry__row_hash"),
    )
    if tuple(rows.query.order_by) != LEDGER_ORDER:
        raise AssertionError(f"the COPY keeps the order the Python writer reads, {LEDGER_ORDER}")
    inner, inner_params = rows.query.get_compiler(using=queryset.db).as_sql()
    cells = [
        _sql_neutralised("s.csv_number"),
        _sql_neutralised("s.csv_email"),
        _sql_neutralised("s.csv_name"),
        _sql_neutralised("s.csv_audiences"),
        _sql_neutralised("s.csv_policy"),
        _sql_neutralised("s.csv_version"),
        _sql_neutralised("s.csv_sha"),
        # ledger.utc_iso: microseconds and a Z; `_text` never neutralises a datetime.
        """to_char(s.csv_signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
        _sql_client("ip"),
        _sql_client("user_agent"),
        _sql_neutralised("s.csv_method"),
        _sql_neutralised("s.csv_sequence_number::text"),
        _sql_neutralised("s.csv_row_hash"),
    ]
    if len(cells) != len(ACKNOWLEDGEMENT_COLUMNS):
        raise AssertionError("one SQL cell per column of ACKNOWLEDGEMENT_COLUMNS")
    # The inner query keeps its ORDER BY (ledger order, in which the Python writer reads the
    # rows), so PostgreSQL keeps it a subquery: each value is computed once (each commitment
    # opened once), however many times its cells name it, and the rows come out in order. The
    # recorded removals are read only for rows whose details are gone, a person at a time (the
    # sequences their "redacted" events list), by a lateral join that keeps that order: the
    # ORDER BY below sorts nothing. COPY writes an empty string as "", where Python's csv writer
    # writes nothing: hence NULLIF.
    # Only constant fragments and Django's compiled SQL; every value is a parameter.
    removals = client_evidence.recorded_removals_sql("postgresql")
    sql = (
        f"SELECT {', '.join(f"NULLIF({cell}, '')" for cell in cells)}"  # noqa: S608
        f" FROM ({inner}) AS s LEFT JOIN LATERAL (SELECT array_agg(removal.sequence) AS sequences"
        f" FROM ({removals}) AS removal WHERE s.csv_gone AND removal.person_id = s.csv_person)"
        " AS removed ON true ORDER BY s.csv_entry"
    )
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
    """The header (by Python's csv writer, below the warning of a damaged ledger), then
    PostgreSQL's COPY of `signatures_copy_sql`."""
    # The header is written now, in the request and its language, as the Python path writes it.
    header = b"".join(python_acknowledgements_csv(queryset.none()))
    return _copied_rows(queryset, header)


def _copied_rows(queryset, header: bytes) -> Iterator[bytes]:
    """`header`, then the COPY's rows.

    psycopg2's copy_expert only returns when the COPY is over, so it runs in a thread on the
    request's connection while this generator hands its blocks to the response; nothing else
    uses that connection meanwhile. Stopped early (the client went away), it cancels the COPY.
    """
    yield header
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


def acknowledgements_csv(queryset) -> Iterator[bytes]:
    """The signatures CSV (UTF-8, CRLF): written by PostgreSQL's COPY there, by Python elsewhere."""
    if connections[queryset.db].vendor == "postgresql":
        return copied_acknowledgements_csv(queryset)
    return python_acknowledgements_csv(queryset)
