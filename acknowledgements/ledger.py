"""The evidence ledger: canonical payload bytes, the hash chain, and its verification.

Each entry stores its payload as canonical JSON bytes (sorted keys, no insignificant
whitespace, UTF-8, times as UTC ISO 8601) exactly as hashed. The chain:

    payload_sha256 = SHA-256(payload bytes)
    row_hash       = SHA-256("<sequence>\\n<previous_hash>\\n<payload_sha256>")

with previous_hash of the first entry being 64 zeros. The payload repeats the row's kind,
person, revision and time, so every column an auditor reads is covered by the hashes.
Appends are serialised (a transaction-level advisory lock on PostgreSQL; SQLite's IMMEDIATE
transactions hold its single write lock) so the chain never forks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .models import LedgerEntry, PolicyRevision, User

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = 1
# An arbitrary constant naming the ledger's advisory lock among any others in the database.
CHAIN_LOCK_ID = 7_482_019_001
VERIFY_BATCH = 5_000


def utc_iso(moment: dt.datetime | None) -> str | None:
    """An aware datetime as a UTC ISO 8601 string with a Z suffix (None stays None)."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical_bytes(payload: dict[str, Any]) -> bytes:
    """The one serialisation of a payload that is stored and hashed."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chain_hash(*, sequence: int, previous_hash: str, payload_sha256: str) -> str:
    return sha256_hex(f"{sequence}\n{previous_hash}\n{payload_sha256}".encode("ascii"))


def lock_chain() -> None:
    """Serialise appends until the current transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_ID])
    # SQLite: the transaction was opened IMMEDIATE (settings), which already holds the lock.


def append(
    *,
    kind: str,
    payload: dict[str, Any],
    person: User | None = None,
    actor: User | None = None,
    revision: PolicyRevision | None = None,
    recorded_at: dt.datetime | None = None,
) -> LedgerEntry:
    """Append one evidence event to the chain; call inside the transaction that needs it.

    `recorded_at` (default: now) lets a caller put the same server time in its own rows.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Ledger appends must run inside a transaction.")
    lock_chain()
    head = LedgerEntry.objects.order_by("-sequence").values_list("sequence", "row_hash").first()
    sequence, previous_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    recorded_at = recorded_at or timezone.now()
    body = canonical_bytes(
        {
            **payload,
            "schema": SCHEMA_VERSION,
            "event": kind,
            "person_id": person.pk if person else None,
            "actor_id": actor.pk if actor else None,
            "revision_id": revision.pk if revision else None,
            "recorded_at": utc_iso(recorded_at),
        }
    )
    payload_sha256 = sha256_hex(body)
    return LedgerEntry.objects.create(
        sequence=sequence,
        kind=kind,
        person=person,
        actor=actor,
        revision=revision,
        recorded_at=recorded_at,
        payload=body,
        payload_sha256=payload_sha256,
        previous_hash=previous_hash,
        row_hash=chain_hash(
            sequence=sequence, previous_hash=previous_hash, payload_sha256=payload_sha256
        ),
    )


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
            return f"Ledger intact: {self.rows_checked} rows checked, head hash {self.head_hash}."
        return (
            f"Ledger NOT intact: sequence {self.failed_sequence} fails: {self.problem} "
            f"({self.rows_checked} rows checked before it)."
        )


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


def _rows(up_to: int | None) -> Iterator[tuple]:
    rows = LedgerEntry.objects.order_by("sequence")
    if up_to is not None:
        rows = rows.filter(sequence__lte=up_to)
    return rows.values_list(*_VERIFIED_COLUMNS).iterator(chunk_size=VERIFY_BATCH)


def _columns_problem(row: tuple, body: bytes) -> str:
    """Why the row's columns disagree with its payload, or ""."""
    _seq, kind, person_id, actor_id, revision_id, recorded_at, *_ = row
    try:
        payload = json.loads(body)
    except ValueError:
        return "the payload is not valid JSON"
    if body != canonical_bytes(payload):
        return "the payload is not in canonical form"
    expected = {
        "event": kind,
        "person_id": person_id,
        "actor_id": actor_id,
        "revision_id": revision_id,
        "recorded_at": utc_iso(recorded_at),
    }
    for key, value in expected.items():
        if payload.get(key) != value:
            return f"column {key!r} disagrees with the payload ({value!r} != {payload.get(key)!r})"
    return ""


def _row_problem(row: tuple, *, expected_sequence: int, previous_hash: str) -> tuple[int, str]:
    """(failed sequence, why) for a row that does not continue the chain, or (0, "")."""
    sequence, *_, body, payload_sha256, stored_previous, stored_row_hash = row
    body = bytes(body)
    if sequence != expected_sequence:
        return expected_sequence, f"row missing (the next row found is {sequence})"
    if sha256_hex(body) != payload_sha256:
        return sequence, "payload changed: its SHA-256 does not match the stored hash"
    if stored_previous != previous_hash:
        return sequence, "broken link: previous hash does not match the row before it"
    recomputed = chain_hash(
        sequence=sequence, previous_hash=previous_hash, payload_sha256=payload_sha256
    )
    if stored_row_hash != recomputed:
        return sequence, "row hash changed: it does not match the recomputed hash"
    if problem := _columns_problem(row, body):
        return sequence, problem
    return 0, ""


def verify_chain(*, up_to: int | None = None) -> ChainVerification:
    """Walk the chain from the first entry (to `up_to` when given), recomputing every hash."""
    previous_hash, checked = GENESIS_HASH, 0
    for row in _rows(up_to):
        failed_at, problem = _row_problem(
            row, expected_sequence=checked + 1, previous_hash=previous_hash
        )
        if problem:
            return ChainVerification(checked, previous_hash, failed_at, problem)
        previous_hash, checked = row[-1], checked + 1
    if up_to is not None and checked < up_to:
        return ChainVerification(checked, previous_hash, checked + 1, "row missing")
    return ChainVerification(checked, previous_hash)


def decode(entry: LedgerEntry) -> dict[str, Any]:
    return json.loads(bytes(entry.payload))
