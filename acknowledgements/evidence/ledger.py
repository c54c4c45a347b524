"""The evidence ledger: canonical payload bytes, the hash chain, and its verification.

Each entry stores its payload as canonical JSON bytes (sorted keys, no insignificant
whitespace, UTF-8, times as UTC ISO 8601) exactly as hashed. The chain:

    payload_sha256 = SHA-256(payload bytes)
    row_hash       = SHA-256("<sequence>\\n<previous_hash>\\n<payload_sha256>")

with previous_hash of the first entry being 64 zeros. The payload repeats the row's kind,
person, revision and time, so every column an auditor reads is covered by the hashes.

Appending and linking are two steps. `append` inserts the entry with its payload and payload
hash, and takes no global lock: signatures from many people commit side by side. When the
transaction commits, a background task (`link_ledger`, below) runs `link_pending`, which gives
every unlinked entry, in the order they were inserted, its sequence number, previous hash and
row hash, many at a time under one advisory lock (SQLite: its single write lock), so the chain
never forks and the lock is held for one short UPDATE per batch rather than for every signing
transaction. Whatever reads chain positions (receipts, exports, verification) links first.
The database lets a row be linked once and never changed after (migration 0009). Whatever
must not happen twice for one person (a second signature from a double click, a second
consent) is serialised by `lock_person` instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.db import connection, transaction
from django.tasks import task
from django.utils import timezone

from acknowledgements.evidence import transparency
from acknowledgements.models import LedgerEntry, PolicyRevision, User

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = 1
# Arbitrary constants naming the ledger's advisory locks among any others in the database.
CHAIN_LOCK_ID = 7_482_019_001
PERSON_LOCK_SPACE = 748_201  # pg_advisory_xact_lock(PERSON_LOCK_SPACE, person id)
# Entries linked per UPDATE: large enough that a burst of signatures is linked in one short
# transaction, small enough that the lock is never held for long.
LINK_BATCH = 500


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


def lock_person(person: User) -> None:
    """Serialise, until the transaction ends, what one person's requests may do twice at once."""
    if sql := person_lock_sql(person, connection):
        with connection.cursor() as cursor:
            cursor.execute(sql)


def person_lock_sql(person: User, using) -> str:
    """`lock_person` as a statement to send ahead of the caller's own, or "" where the
    transaction holds the lock already (SQLite: opened IMMEDIATE, settings)."""
    if using.vendor != "postgresql":
        return ""
    return f"SELECT pg_advisory_xact_lock({PERSON_LOCK_SPACE:d}, {int(person.pk):d})"


def append(
    *,
    kind: str,
    payload: dict[str, Any],
    person: User | None = None,
    actor: User | None = None,
    revision: PolicyRevision | None = None,
    recorded_at: dt.datetime | None = None,
    linked_by_caller: bool = False,
) -> LedgerEntry:
    """Record one evidence event; call inside the transaction that needs it.

    The entry is linked into the chain by a task queued when that transaction commits, unless
    `linked_by_caller`: the caller queues a task of its own that links first (a signature's
    receipt task), which saves queueing a second one.
    `recorded_at` (default: now) lets a caller put the same server time in its own rows.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Ledger appends must run inside a transaction.")
    entry = LedgerEntry.objects.create(
        **entry_values(
            kind=kind,
            payload=payload,
            person=person,
            actor=actor,
            revision=revision,
            recorded_at=recorded_at or timezone.now(),
        )
    )
    if not linked_by_caller:
        _link_after_commit()
    return entry


def entry_values(
    *,
    kind: str,
    payload: dict[str, Any],
    person: User | None,
    actor: User | None = None,
    revision: PolicyRevision | None,
    recorded_at: dt.datetime,
) -> dict[str, Any]:
    """A new entry's columns: the payload in canonical form, repeating the columns, and its
    hash. It is linked into the chain later (`link_pending`); a caller inserting the row
    itself (signing/actions.py, in its write batch) queues the task that links it."""
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
    return {
        "kind": kind,
        "person_id": person.pk if person else None,
        "actor_id": actor.pk if actor else None,
        "revision_id": revision.pk if revision else None,
        "recorded_at": recorded_at,
        "payload": body,
        "payload_sha256": sha256_hex(body),
    }


def _link_after_commit() -> None:
    """Have the transaction's new entries linked once it commits (one task per transaction)."""
    pending = transaction.get_connection().run_on_commit
    if not any(callback is _enqueue_link for _sids, callback, _robust in pending):
        # Robust: the evidence is committed already, and the request must still succeed if the
        # task cannot be queued; the next link (any later commit's, a receipt's, verify_ledger)
        # links these entries too.
        transaction.on_commit(_enqueue_link, robust=True)


def _enqueue_link() -> None:
    link_ledger.enqueue()


@task()
def link_ledger() -> None:
    link_pending()
    transparency.checkpoint()


def _link_batch() -> int:
    """Link up to LINK_BATCH entries in one transaction under the chain lock; how many."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_ID])
        # SQLite: the IMMEDIATE transaction already holds the database's write lock.
        pending = list(
            LedgerEntry.objects.filter(sequence__isnull=True)
            .order_by("id")
            .only("id", "payload_sha256")[:LINK_BATCH]
        )
        if not pending:
            return 0
        head = (
            LedgerEntry.objects.filter(sequence__isnull=False)
            .order_by("-sequence")
            .values_list("sequence", "row_hash")
            .first()
        )
        sequence, previous_hash = head or (0, GENESIS_HASH)
        if sequence is None or previous_hash is None:
            # Linking sets sequence and row_hash together; the database allows no other change.
            raise RuntimeError("The ledger's head has a sequence but no row hash.")
        for entry in pending:
            sequence += 1
            entry.sequence, entry.previous_hash = sequence, previous_hash
            entry.row_hash = chain_hash(
                sequence=sequence, previous_hash=previous_hash, payload_sha256=entry.payload_sha256
            )
            previous_hash = entry.row_hash
        LedgerEntry.objects.bulk_update(pending, ["sequence", "previous_hash", "row_hash"])
        return len(pending)


def link_pending() -> int:
    """Give every committed, unlinked entry its place in the chain; returns how many."""
    linked = 0
    while count := _link_batch():
        linked += count
    return linked


def ensure_linked(entry: LedgerEntry) -> LedgerEntry:
    """The entry with its chain columns, linking it (and all before it) first if needed."""
    if entry.sequence is None:
        link_pending()
        entry.refresh_from_db(fields=["sequence", "previous_hash", "row_hash"])
    return entry


def decode(entry: LedgerEntry) -> dict[str, Any]:
    return json.loads(bytes(entry.payload))
