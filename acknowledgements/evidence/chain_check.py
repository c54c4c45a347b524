"""Verifying the ledger's hash chain: every row, or the few a receipt names.

`verify_chain` walks the chain from its first row, as `manage.py verify_ledger` does hourly:
no row missing, each payload's SHA-256, each link and row hash (ledger.py says how they are
made), the payload in canonical form, and the columns an auditor reads equal to the payload's
copy of them. On PostgreSQL the rows come through one binary COPY that PostgreSQL fills with
the row hashes it recomputes; Python hashes and re-encodes each payload once, and a row that
fails the fast check is judged again by `_row_problem`, the row-by-row check SQLite uses, so
both say the same thing of every tampering. `verify_entries` is the bounded check of a receipt.
"""

from __future__ import annotations

import decimal
import hashlib
import itertools
import json
import multiprocessing
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
from django.db import connection
from django.db.models import Max, QuerySet
from django.utils.translation import gettext as _

from acknowledgements.evidence.ledger import (
    GENESIS_HASH,
    canonical_bytes,
    chain_hash,
    sha256_hex,
    utc_iso,
)
from acknowledgements.models import LedgerEntry

VERIFY_BATCH = 5_000
# Ledgers of this many rows are verified in two halves at once (see _stream): forking costs
# milliseconds, decoding this many payloads about a second.
VERIFY_SPLIT_ROWS = 100_000


@dataclass(frozen=True)
class ChainVerification:
    rows_checked: int
    head_hash: str
    failed_sequence: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.failed_sequence is None

    def summary(self) -> str:
        if self.intact:
            return _("Ledger intact: %(rows)s rows checked, head hash %(hash)s.") % {
                "rows": self.rows_checked,
                "hash": self.head_hash,
            }
        return _(
            "Ledger NOT intact: sequence %(sequence)s fails: %(problem)s "
            "(%(rows)s rows checked before it)."
        ) % {"sequence": self.failed_sequence, "problem": self.problem, "rows": self.rows_checked}


_VERIFIED_COLUMNS = (
    "sequence",
    "kind",
    "person_id",
    "actor_id",
    "revision_id",
    "recorded_at",
    "payload",
    "payload_sha256",
    "previous_hash",
    "row_hash",
)


def _entries(up_to: int | None) -> QuerySet[LedgerEntry, tuple[Any, ...]]:
    rows = LedgerEntry.objects.filter(sequence__isnull=False).order_by("sequence")
    if up_to is not None:
        rows = rows.filter(sequence__lte=up_to)
    return rows.values_list(*_VERIFIED_COLUMNS)


def _rows(up_to: int | None, *, after: int | None = None) -> Iterator[tuple]:
    rows = _entries(up_to)
    if after is not None:
        rows = rows.filter(sequence__gt=after)
    return rows.iterator(chunk_size=VERIFY_BATCH)


# The payload's keys that repeat the row's columns, in the order of _VERIFIED_COLUMNS.
_PAYLOAD_COLUMNS = ("event", "person_id", "actor_id", "revision_id", "recorded_at")


def _columns_problem(row: tuple, body: bytes) -> str:
    """Why the row's columns disagree with its payload, or ""."""
    _seq, kind, person_id, actor_id, revision_id, recorded_at, *_rest = row
    try:
        payload = json.loads(body)
    except ValueError:
        return _("the payload is not valid JSON")
    if not isinstance(payload, dict):
        return _("the payload is not a JSON object")
    try:
        canonical = canonical_bytes(payload)
    except ValueError:  # NaN or a lone surrogate: JSON the portal never writes
        return _("the payload is not in canonical form")
    if body != canonical:
        return _("the payload is not in canonical form")
    columns = (kind, person_id, actor_id, revision_id, utc_iso(recorded_at))
    for key, value in zip(_PAYLOAD_COLUMNS, columns, strict=True):
        if payload.get(key) != value:
            return _("column %(column)r disagrees with the payload (%(value)r != %(recorded)r)") % {
                "column": key,
                "value": value,
                "recorded": payload.get(key),
            }
    return ""


def _row_problem(row: tuple, *, expected_sequence: int, previous_hash: str) -> tuple[int, str]:
    """(failed sequence, why) for a row that does not continue the chain, or (0, "")."""
    sequence, *_columns, body, payload_sha256, stored_previous, stored_row_hash = row
    body = bytes(body)
    if sequence != expected_sequence:
        return expected_sequence, _("row missing (the next row found is %(sequence)s)") % {
            "sequence": sequence
        }
    if sha256_hex(body) != payload_sha256:
        return sequence, _("payload changed: its SHA-256 does not match the stored hash")
    if stored_previous != previous_hash:
        return sequence, _("broken link: previous hash does not match the row before it")
    recomputed = chain_hash(
        sequence=sequence, previous_hash=previous_hash, payload_sha256=payload_sha256
    )
    if stored_row_hash != recomputed:
        return sequence, _("row hash changed: it does not match the recomputed hash")
    if problem := _columns_problem(row, body):
        return sequence, problem
    return 0, ""


def verify_chain(*, up_to: int | None = None) -> ChainVerification:
    """Walk the chain from the first entry (to `up_to` when given), recomputing every hash.

    On PostgreSQL the rows arrive in one COPY and pass the cheaper checks of `_StreamedRows`;
    the rows that do not pass them are judged by `_row_problem`, which judges every row on
    SQLite, so the first failing row and its reason are the same on both.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if hasattr(cursor.cursor, "copy_expert"):  # psycopg2's; psycopg has none
                return _judge(_stream(cursor.cursor, up_to), up_to)
    return _walk(_rows(up_to), up_to=up_to)


def _walk(
    rows: Iterable[tuple], *, up_to: int | None, checked: int = 0, previous_hash: str = GENESIS_HASH
) -> ChainVerification:
    """`_row_problem` on each row in turn, after `checked` rows ending with `previous_hash`."""
    for row in rows:
        failed_at, problem = _row_problem(
            row, expected_sequence=checked + 1, previous_hash=previous_hash
        )
        if problem:
            return ChainVerification(checked, previous_hash, failed_at, problem)
        previous_hash, checked = row[-1], checked + 1
    return _walked(checked, previous_hash, up_to)


def _walked(checked: int, head_hash: str, up_to: int | None) -> ChainVerification:
    if up_to is not None and checked < up_to:
        return ChainVerification(checked, head_hash, checked + 1, _("row missing"))
    return ChainVerification(checked, head_hash)


# --- The streamed check (PostgreSQL) -------------------------------------------------------------
#
# One COPY sends every linked row in sequence order, in COPY's binary format (PostgreSQL's
# documentation, COPY, "Binary Format"): a header, then each row as a 16-bit field count and,
# per field, a 32-bit length (-1 for NULL) and its bytes, then a field count of -1. The database
# recomputes each row hash from the row's own columns, which costs it little; this process
# hashes the payloads (faster here) and decodes each payload once with msgspec, so that both
# processes work at once and no row is decoded twice.

_STREAM_SQL = """
COPY (
    SELECT
        sequence,
        COALESCE(row_hash = encode(sha256(convert_to(
            sequence || E'\\n' || previous_hash || E'\\n' || payload_sha256, 'UTF8'
        )), 'hex'), false),
        previous_hash,
        row_hash,
        payload_sha256,
        '[' || to_json(kind)::text
            || ',' || COALESCE(person_id::text, 'null')
            || ',' || COALESCE(actor_id::text, 'null')
            || ',' || COALESCE(revision_id::text, 'null')
            || ',' || to_json(to_char(
                recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
            ))::text
            || ']',
        payload
    FROM {table}
    WHERE sequence IS NOT NULL {bound}
    ORDER BY sequence
) TO STDOUT (FORMAT binary)
"""
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = struct.Struct("!11sii")  # signature, flags, length of the header extension
_COPY_TRAILER = b"\xff\xff"
# A streamed row up to its last two fields (the columns' JSON and the payload): its field
# count; then each field's length and value: the sequence, whether the row hash is the hash of
# the row's sequence, previous hash and payload hash, the previous, row and payload hashes;
# then the length of the columns' JSON. Any other lengths (a NULL, a hash of another length)
# make a row that does not pass.
_STREAMED_ROW = struct.Struct("!hiqi?i64si64si64si")
_STREAMED_SHAPE = (7, 8, 1, 64, 64, 64)

# Floats decode to Decimals, which encode as JSON strings: a payload holding a float never
# passes here and is judged by _row_problem, by Python's own float formatting. Otherwise
# msgspec's sorted encoding is canonical_bytes' (test_ledger_verification_bulk compares them).
_JSON_DECODER = msgspec.json.Decoder(float_hook=decimal.Decimal)
_JSON_ENCODER = msgspec.json.Encoder(order="sorted")


def _stream_statement(up_to: int | None, *, after: int | None = None) -> tuple[str, list[int]]:
    bounds = [("AND sequence > %s", after), ("AND sequence <= %s", up_to)]
    bound = " ".join(sql for sql, value in bounds if value is not None)
    params = [value for _sql, value in bounds if value is not None]
    return _STREAM_SQL.format(table=LedgerEntry._meta.db_table, bound=bound), params


def _stream(cursor: Any, up_to: int | None) -> _StreamedRows:
    """Every row through `_StreamedRows`: the first half here and, on a large ledger, the
    second half at the same time in a forked process, on a connection of its own."""
    last = _entries(up_to).aggregate(last=Max("sequence"))["last"]
    middle = last // 2 if last is not None and last >= VERIFY_SPLIT_ROWS and _can_fork() else None
    if middle is None:
        whole = _StreamedRows()
        cursor.copy_expert(cursor.mogrify(*_stream_statement(up_to)), whole)
        return whole
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_stream_in_child, args=(sending, middle, up_to), daemon=True)
    child.start()
    sending.close()
    try:
        first = _StreamedRows()
        cursor.copy_expert(cursor.mogrify(*_stream_statement(middle)), first)
        try:
            second = receiving.recv()
        except EOFError:  # the child died: its half is streamed here
            second = _StreamedRows(anchored=True)
            cursor.copy_expert(cursor.mogrify(*_stream_statement(up_to, after=middle)), second)
    finally:
        receiving.close()
        child.join()
    return first.joined(second)


def _can_fork() -> bool:
    """Whether a forked child can stream a half: it needs a second core, and a process of one
    thread (forking another copies locks some thread may hold), outside any transaction (the
    child's connection could not see its rows)."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return False
    return (
        threads == 1
        and (os.cpu_count() or 1) > 1
        and not connection.in_atomic_block
        and "fork" in multiprocessing.get_all_start_methods()
    )


def _stream_in_child(sending: Any, after: int, up_to: int | None) -> None:
    # The parent's connection is the parent's: the child never uses or closes it, and leaves
    # with os._exit (multiprocessing's), which finalises nothing.
    raw = connection.get_new_connection(connection.get_connection_params())
    try:
        raw.autocommit = True
        with raw.cursor() as cursor:
            second = _StreamedRows(anchored=True)
            cursor.copy_expert(cursor.mogrify(*_stream_statement(up_to, after=after)), second)
        sending.send(second)
    finally:
        raw.close()
        sending.close()


def _payload_passes(body: bytes, columns: bytes) -> bool:
    """True only if `_columns_problem` finds nothing: the payload is an object in canonical form
    with the row's columns inside (`columns`: the database's JSON of them)."""
    payload = _canonical_payload(body)
    return (
        type(payload) is dict
        and _JSON_ENCODER.encode([payload.get(key) for key in _PAYLOAD_COLUMNS]) == columns
    )


def _canonical_payload(body: bytes) -> Any:
    """What `body` decodes to, if it is its canonical encoding (None otherwise, or a float)."""
    try:
        payload = _JSON_DECODER.decode(body)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None
    return payload if _JSON_ENCODER.encode(payload) == body else None


class _Doubt(NamedTuple):
    sequence: int  # the row's
    expected: int  # the sequence the chain expected there
    previous_hash: str  # the row hash before it


class _StreamedRows:
    """The COPY's receiver: psycopg2 hands `write` each message, one row each as the server
    sends them (the first after the format's header; other cuts are put together again).

    Each row is checked as `_row_problem` checks it, the costly parts done otherwise: the
    database has recomputed the row hash, the payload is hashed here, and its canonical form
    and columns are checked with msgspec. A row whose payload does not pass is noted
    (`doubtful`) for `_row_problem` to judge, and the walk goes on as if it passed, since
    msgspec leaves some payloads that are canonical (floats) to Python. A row whose sequence,
    link or hashes fail, as they fail in `_row_problem`, is noted and ends the walk (`stopped`).
    """

    def __init__(self, *, anchored: bool = False) -> None:
        self.checked = 0
        self.head = GENESIS_HASH.encode()
        self.doubtful: list[_Doubt] = []
        self.stopped = False
        # A stream of the chain's second half starts from its first row, taken as it is; the
        # first half's stream checks that row's sequence and link (`joined`).
        self.anchored = anchored
        self.anchor: tuple[int, bytes | None] | None = None  # (sequence, previous hash)
        self._header = True
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        if self.stopped:
            return
        if self._header or self._buffer or not self._row(data):
            self._pieces(data)

    def _row(self, data: bytes) -> bool:
        """Check `data` as one row; False, having checked nothing, when it is not one row of
        the expected shape."""
        if len(data) < _STREAMED_ROW.size:
            return False
        (fields, n_sequence, sequence, n_linked, linked, n_previous, previous, n_row, row_hash,
         n_sha, payload_sha256, n_columns) = _STREAMED_ROW.unpack_from(data)  # fmt: skip
        start = _STREAMED_ROW.size + n_columns
        if (
            (fields, n_sequence, n_linked, n_previous, n_row, n_sha) != _STREAMED_SHAPE
            or n_columns < 0
            or int.from_bytes(data[start : start + 4], signed=True) != len(data) - start - 4
        ):
            return False
        expected = self.checked + 1
        body = data[start + 4 :]
        if (
            sequence != expected
            or previous != self.head
            or not linked
            or hashlib.sha256(body).hexdigest().encode() != payload_sha256
        ):
            self._doubt(sequence)
            self.stopped = True
        else:
            if not _payload_passes(body, data[_STREAMED_ROW.size : start]):
                self._doubt(sequence)
            self.checked, self.head = expected, row_hash
        return True

    def _doubt(self, sequence: int) -> None:
        self.doubtful.append(_Doubt(sequence, self.checked + 1, self.head.decode()))

    def _pieces(self, data: bytes) -> None:
        """The header, the trailer, and rows cut or joined otherwise than one per message."""
        self._buffer += data
        if self._header:
            if len(self._buffer) < _COPY_HEADER.size:
                return
            signature, _flags, extension = _COPY_HEADER.unpack_from(self._buffer)
            if signature != _COPY_SIGNATURE:
                raise RuntimeError("The ledger's COPY did not arrive in the binary format.")
            if len(self._buffer) < _COPY_HEADER.size + extension:
                return
            del self._buffer[: _COPY_HEADER.size + extension]
            self._header = False
        while not self.stopped and (end := _row_end(self._buffer)) is not None:
            row = bytes(self._buffer[:end])
            del self._buffer[:end]
            if self.anchored and self.anchor is None and row != _COPY_TRAILER:
                self._anchor(row)
            if row != _COPY_TRAILER and not self._row(row):
                # A NULL or a hash of another length, which _row_problem fails too.
                self._doubt(int.from_bytes(row[6:14], signed=True))
                self.stopped = True

    def _anchor(self, row: bytes) -> None:
        previous = None
        if len(row) >= _STREAMED_ROW.size:
            fields = _STREAMED_ROW.unpack_from(row)
            if fields[5] == 64:  # the previous hash's length (-1: NULL)
                previous = fields[6]
        sequence = int.from_bytes(row[6:14], signed=True)
        self.anchor = (sequence, previous)
        self.checked, self.head = sequence - 1, previous or b""

    def joined(self, second: _StreamedRows) -> _StreamedRows:
        """This stream (the first half) followed by `second`, once its first row (the anchor)
        is known to continue this one."""
        if self.stopped or second.anchor is None:
            return self
        if second.anchor != (self.checked + 1, self.head):
            self._doubt(second.anchor[0])
            self.stopped = True
            return self
        second.doubtful[:0] = self.doubtful
        return second


def _row_end(buffer: bytearray) -> int | None:
    """Where the first row in `buffer` ends (or the trailer); None while it is incomplete."""
    if len(buffer) < 2:
        return None
    fields = int.from_bytes(buffer[:2], signed=True)
    end = 2
    for _field in range(max(fields, 0)):
        if len(buffer) < end + 4:
            return None
        end += 4 + max(int.from_bytes(buffer[end : end + 4], signed=True), 0)
    return end if end <= len(buffer) else None


def _judge(stream: _StreamedRows, up_to: int | None) -> ChainVerification:
    """The streamed walk's verdict, once `_row_problem` has judged the rows it doubted."""
    row = None
    for doubts in itertools.batched(stream.doubtful, VERIFY_BATCH):
        wanted = _entries(up_to).filter(sequence__in=[doubt.sequence for doubt in doubts])
        rows = {entry[0]: entry for entry in wanted}
        for doubt in doubts:
            row = rows.get(doubt.sequence)
            if row is None:  # gone since the COPY
                return ChainVerification(
                    doubt.expected - 1, doubt.previous_hash, doubt.expected, _("row missing")
                )
            failed_at, problem = _row_problem(
                row, expected_sequence=doubt.expected, previous_hash=doubt.previous_hash
            )
            if problem:
                return ChainVerification(
                    doubt.expected - 1, doubt.previous_hash, failed_at, problem
                )
    if stream.stopped and row is not None:
        # The row it stopped at is sound after all: the rest is walked here, row by row.
        return _walk(
            _rows(up_to, after=row[0]),
            up_to=up_to,
            checked=stream.doubtful[-1].expected,
            previous_hash=row[-1],
        )
    return _walked(stream.checked, stream.head.decode(), up_to)


def verify_entries(sequences: Iterable[int]) -> ChainVerification:
    """Recompute the given entries and the ones just before them, and the links between them.

    The bounded check a receipt's verification makes (a few rows, whatever the ledger's size);
    verify_chain walks the whole history, and the transparency log anchors it.
    """
    wanted = sorted({s for sequence in sequences for s in (sequence - 1, sequence) if s >= 1})
    rows = {
        row[0]: row
        for row in LedgerEntry.objects.filter(sequence__in=wanted).values_list(*_VERIFIED_COLUMNS)
    }
    head = GENESIS_HASH
    for checked, sequence in enumerate(wanted):
        row = rows.get(sequence)
        if row is None:
            return ChainVerification(checked, head, sequence, _("row missing"))
        before = rows.get(sequence - 1)
        # The row before one not fetched is not checked here: its stored hash is taken as read.
        previous = GENESIS_HASH if sequence == 1 else before[-1] if before else row[-2]
        failed_at, problem = _row_problem(row, expected_sequence=sequence, previous_hash=previous)
        if problem:
            return ChainVerification(checked, previous, failed_at, problem)
        head = row[-1]
    return ChainVerification(len(wanted), head)
