"""The signatures CSV: `acknowledgements_csv` has PostgreSQL write it where it can, with one `COPY ... TO STDOUT (FORMAT csv)` whose SQL extracts
the payload's fields, checks the client commitments and neutralises formulas exactly as the Python
writer (exports.py) does, streamed a block at a time; the same bytes for the same data, and
memory flat however many rows there are. Elsewhere (SQLite on a laptop) Python writes it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    F,
    Func,
    JSONField,
    TextField,
    Value,
)

from acknowledgements.evidence import client_evidence
from acknowledgements.evidence.payload import NOT_RECORDED
from acknowledgements.reports import figures, lists
from acknowledgements.reports.exports import (
    ACKNOWLEDGEMENT_COLUMNS,
    CLIENT_DETAIL_FIELDS,
    FORMULA_TRIGGERS,
    python_acknowledgements_csv,
)

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
    """history.shown_client(evidence.client_facts(...)[name]) in SQL, on the subquery's columns.

    The payload commits to the value (`<name>_sha256`) and the raw value and its salt are kept
    in ClientDetails (s.csv_<name>, s.csv_<name>_salt) until the retention period removes them,
    a removal the ledger records (`removal`: client_evidence.recorded_removals_sql, joined);
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
        f" WHEN {salt} IS NULL AND removal.sequence IS NOT NULL THEN '{figures.REMOVED}'"
        f" WHEN {salt} IS NULL THEN '{figures.MISSING}'"
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
    # The names `lists.signatures` joined, sorted in code point order ("C") and joined by "; ",
    # as Python's sorted() in lists.audience_names.
    audiences = Func(
        F("audience_list"),
        Value(lists.AUDIENCE_SEPARATOR),
        template="NULLIF(array_to_string(ARRAY(SELECT a FROM unnest(string_to_array("
        "%(expressions)s)) AS a ORDER BY a COLLATE \"C\"), '; '), '')",
        output_field=TextField(),
    )
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
        csv_person=F("ledger_entry__person_id"),
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
    # payload is converted and parsed once, however many fields are taken from it. The recorded
    # removals are joined, not looked up row by row, so that each "redacted" event is parsed
    # once; an entry listed twice would repeat its row, which DISTINCT ON folds back (removing
    # the duplicates from the removals instead, a hash aggregate, stalls PostgreSQL 15's
    # parallel plan once it spills to disk).
    # Only constant fragments and Django's compiled SQL; every value is a parameter.
    removals = client_evidence.recorded_removals_sql("postgresql")
    sql = (
        f"SELECT DISTINCT ON (s.csv_sequence, s.csv_number) {', '.join(cells)}"  # noqa: S608
        f" FROM ({inner}) AS s LEFT JOIN ({removals}) AS removal"
        " ON removal.person_id = s.csv_person AND removal.sequence = s.csv_sequence"
        " ORDER BY s.csv_sequence, s.csv_number"
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
