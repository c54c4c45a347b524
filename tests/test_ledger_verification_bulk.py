"""The full ledger check finds the same first failure, for the same reason, whichever way it
walks: row by row (SQLite) or streamed through one COPY (PostgreSQL), where only the rows the
stream cannot pass are judged row by row. Run this file on both databases."""

import datetime as dt
import hashlib
import json
import os
import random
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection, transaction
from hypothesis import given
from hypothesis import strategies as st

from acknowledgements.evidence import chain_check, ledger
from acknowledgements.models import LedgerEntry
from tests.conftest import set_evidence_triggers

TABLE = "acknowledgements_ledgerentry"


def append_events(*payloads: dict) -> list[LedgerEntry]:
    with transaction.atomic():
        entries = [
            ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload=payload)
            for payload in payloads
        ]
    ledger.link_pending()
    for entry in entries:
        entry.refresh_from_db()
    return entries


def tamper(sql: str, params=()) -> None:
    set_evidence_triggers(False)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    set_evidence_triggers(True)


def rewrite_payload(sequence: int, body: bytes) -> None:
    """Replace a payload and recompute its row's hashes, as an attacker covering tracks would."""
    entry = LedgerEntry.objects.get(sequence=sequence)
    payload_sha256 = hashlib.sha256(body).hexdigest()
    row_hash = ledger.chain_hash(
        sequence=sequence, previous_hash=entry.previous_hash, payload_sha256=payload_sha256
    )
    tamper(
        f"UPDATE {TABLE} SET payload = %s, payload_sha256 = %s, row_hash = %s WHERE sequence = %s",
        [body, payload_sha256, row_hash, sequence],
    )


def canonical_payload(sequence: int, **changes) -> bytes:
    payload = json.loads(bytes(LedgerEntry.objects.get(sequence=sequence).payload))
    return ledger.canonical_bytes({**payload, **changes})


def row_by_row() -> chain_check.ChainVerification:
    """The walk every row takes on SQLite, whichever database this runs on."""
    return chain_check._walk(chain_check._rows(None), up_to=None)


TAMPERING = {
    "payload replaced": (
        lambda: tamper(
            f"UPDATE {TABLE} SET payload = %s WHERE sequence = 3",
            [ledger.canonical_bytes({"forged": True})],
        ),
        3,
        "payload changed: its SHA-256 does not match the stored hash",
    ),
    "payload hash in capitals": (
        lambda: tamper(
            f"UPDATE {TABLE} SET payload_sha256 = upper(payload_sha256) WHERE sequence = 2"
        ),
        2,
        "payload changed: its SHA-256 does not match the stored hash",
    ),
    "a row deleted": (
        lambda: tamper(f"DELETE FROM {TABLE} WHERE sequence = 2"),
        2,
        "row missing (the next row found is 3)",
    ),
    "the first row deleted": (
        lambda: tamper(f"DELETE FROM {TABLE} WHERE sequence = 1"),
        1,
        "row missing (the next row found is 2)",
    ),
    "a row renumbered 0": (
        lambda: tamper(f"UPDATE {TABLE} SET sequence = 0 WHERE sequence = 1"),
        1,
        "row missing (the next row found is 0)",
    ),
    "previous hash changed": (
        lambda: tamper(f"UPDATE {TABLE} SET previous_hash = %s WHERE sequence = 4", ["f" * 64]),
        4,
        "broken link: previous hash does not match the row before it",
    ),
    "previous hash removed": (
        lambda: tamper(f"UPDATE {TABLE} SET previous_hash = NULL WHERE sequence = 4"),
        4,
        "broken link: previous hash does not match the row before it",
    ),
    "previous hash shortened": (
        lambda: tamper(
            f"UPDATE {TABLE} SET previous_hash = substr(previous_hash, 1, 63) WHERE sequence = 5"
        ),
        5,
        "broken link: previous hash does not match the row before it",
    ),
    "row hash changed": (
        lambda: tamper(f"UPDATE {TABLE} SET row_hash = %s WHERE sequence = 5", ["f" * 64]),
        5,
        "row hash changed: it does not match the recomputed hash",
    ),
    "payload and its hash rewritten": (
        lambda: tamper(
            f"UPDATE {TABLE} SET payload = %s, payload_sha256 = %s WHERE sequence = 2",
            [
                ledger.canonical_bytes({"forged": True}),
                hashlib.sha256(ledger.canonical_bytes({"forged": True})).hexdigest(),
            ],
        ),
        2,
        "row hash changed: it does not match the recomputed hash",
    ),
    "payload rewritten with every hash of its row": (
        lambda: rewrite_payload(3, canonical_payload(3, n=99)),
        4,
        "broken link: previous hash does not match the row before it",
    ),
    "payload with spaces": (
        lambda: rewrite_payload(
            3, json.dumps(json.loads(canonical_payload(3)), sort_keys=True).encode()
        ),
        3,
        "the payload is not in canonical form",
    ),
    "payload keys out of order": (
        lambda: rewrite_payload(
            2,
            json.dumps(
                dict(reversed(json.loads(canonical_payload(2)).items())), separators=(",", ":")
            ).encode(),
        ),
        2,
        "the payload is not in canonical form",
    ),
    "payload with an escaped letter": (
        lambda: rewrite_payload(
            2, canonical_payload(2, name="é").replace("é".encode(), b"\\u00e9")
        ),
        2,
        "the payload is not in canonical form",
    ),
    "payload with a float written otherwise": (
        lambda: rewrite_payload(2, canonical_payload(2, ratio=1e16).replace(b"1e+16", b"1e16")),
        2,
        "the payload is not in canonical form",
    ),
    "payload with -0": (
        lambda: rewrite_payload(2, canonical_payload(2, n=0).replace(b'"n":0', b'"n":-0')),
        2,
        "the payload is not in canonical form",
    ),
    "payload with a key twice": (
        lambda: rewrite_payload(2, canonical_payload(2).replace(b'"n":1', b'"n":1,"n":1')),
        2,
        "the payload is not in canonical form",
    ),
    "payload not JSON": (
        lambda: rewrite_payload(4, canonical_payload(4)[:-1]),
        4,
        "the payload is not valid JSON",
    ),
    "payload not UTF-8": (
        lambda: rewrite_payload(4, canonical_payload(4, name="é").replace("é".encode(), b"\xe9")),
        4,
        "the payload is not valid JSON",
    ),
    "payload a JSON list": (
        lambda: rewrite_payload(4, b"[1,2]"),
        4,
        "the payload is not a JSON object",
    ),
    "payload with NaN": (
        lambda: rewrite_payload(4, canonical_payload(4).replace(b'"n":3', b'"n":NaN')),
        4,
        "the payload is not in canonical form",
    ),
    "payload with a lone surrogate": (
        lambda: rewrite_payload(4, canonical_payload(4, name="x").replace(b'"x"', b'"\\ud800"')),
        4,
        "the payload is not in canonical form",
    ),
    "kind column changed": (
        lambda: tamper(f"UPDATE {TABLE} SET kind = 'signed' WHERE sequence = 1"),
        1,
        "column 'event' disagrees with the payload ('signed' != 'admin_action')",
    ),
    "person column set": (
        lambda: tamper(f"UPDATE {TABLE} SET person_id = actor_id WHERE sequence = 3"),
        3,
        "column 'person_id' disagrees with the payload",
    ),
    "time column moved": (
        lambda: tamper(
            f"UPDATE {TABLE} SET recorded_at = %s WHERE sequence = 6",
            [LedgerEntry.objects.get(sequence=6).recorded_at + dt.timedelta(microseconds=1)],
        ),
        6,
        "column 'recorded_at' disagrees with the payload",
    ),
    "payload's person changed to match nothing": (
        lambda: rewrite_payload(5, canonical_payload(5, person_id="1")),
        5,
        "column 'person_id' disagrees with the payload (None != '1')",
    ),
}


def tampered_ledger(admin_user, case: str) -> tuple[int, str]:
    """Six entries, then the case's tampering; returns where and why the check must fail."""
    tampering, failed_at, reason = TAMPERING[case]
    with transaction.atomic():
        for n in range(6):
            ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": n}, actor=admin_user)
    ledger.link_pending()
    tampering()
    return failed_at, reason


def verified_in_two_halves(up_to: int | None = None) -> chain_check.ChainVerification:
    """verify_chain split in two halves, the second streamed by a forked child, as in a new
    process of one thread: this one may hold threads of other tests' servers for the whole
    session, and a process with threads never forks (chain_check._can_fork)."""
    database = connection.settings_dict
    url = (
        f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )
    script = (
        "import json, django\n"
        "django.setup()\n"
        "from acknowledgements.evidence import chain_check\n"
        "chain_check.VERIFY_SPLIT_ROWS = 2\n"
        "assert chain_check._can_fork(), 'a new process of one thread forks'\n"
        f"found = chain_check.verify_chain(up_to={up_to!r})\n"
        "print(json.dumps([found.rows_checked, found.head_hash, found.failed_sequence,"
        " found.problem]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "aup_portal.settings"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return chain_check.ChainVerification(*json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("case", TAMPERING)
def test_every_kind_of_tampering_is_reported_alike(db, admin_user, case):
    failed_at, reason = tampered_ledger(admin_user, case)

    result = chain_check.verify_chain()

    assert result.failed_sequence == failed_at
    assert reason in result.problem
    assert result == row_by_row()
    assert result.rows_checked == failed_at - 1


@pytest.mark.postgres
@pytest.mark.parametrize("case", TAMPERING)
def test_every_kind_of_tampering_is_reported_alike_in_two_halves(evidence_db, admin_user, case):
    """A large ledger is streamed in two halves at once, the second by a forked process."""
    failed_at, reason = tampered_ledger(admin_user, case)

    result = verified_in_two_halves()

    assert result.failed_sequence == failed_at
    assert reason in result.problem
    assert result == row_by_row()


@pytest.mark.postgres
def test_an_intact_chain_in_two_halves(evidence_db):
    entries = append_events(*({"n": n} for n in range(9)))
    assert verified_in_two_halves() == chain_check.ChainVerification(9, entries[-1].row_hash)
    assert verified_in_two_halves(up_to=5) == chain_check.ChainVerification(5, entries[4].row_hash)
    assert verified_in_two_halves(up_to=12) == chain_check.ChainVerification(
        9, entries[-1].row_hash, 10, "row missing"
    )


def test_an_intact_chain_is_reported_alike(db):
    entries = append_events(*({"n": n, "text": 'é " \\ \n \u2028 😀'} for n in range(7)))
    result = chain_check.verify_chain()
    assert result == chain_check.ChainVerification(7, entries[-1].row_hash)
    assert result == row_by_row()
    assert chain_check.verify_chain(up_to=4) == chain_check.ChainVerification(
        4, entries[3].row_hash
    )
    assert chain_check.verify_chain(up_to=9) == chain_check.ChainVerification(
        7, entries[-1].row_hash, 8, "row missing"
    )
    assert chain_check.verify_chain(up_to=0) == chain_check.ChainVerification(
        0, ledger.GENESIS_HASH
    )


def test_an_empty_ledger_is_intact(db):
    assert chain_check.verify_chain() == chain_check.ChainVerification(0, ledger.GENESIS_HASH)


def test_payloads_the_stream_cannot_pass_are_judged_row_by_row(db):
    # Floats are canonical in Python's own notation, which the stream leaves to _row_problem.
    entries = append_events({"n": 1}, {"ratio": 1.5}, {"n": 3}, {"big": 10**30}, {"n": 5})
    assert chain_check.verify_chain() == chain_check.ChainVerification(5, entries[-1].row_hash)

    tamper(f"UPDATE {TABLE} SET kind = 'signed' WHERE sequence = 3")
    result = chain_check.verify_chain()
    assert (result.failed_sequence, result.rows_checked) == (3, 2)
    assert result == row_by_row()


@pytest.mark.postgres
def test_the_stream_reads_rows_however_the_copy_cuts_them(db):
    append_events(*({"n": n} for n in range(5)))
    tamper(f"UPDATE {TABLE} SET previous_hash = NULL WHERE sequence = 4")
    messages: list[bytes] = []

    class Keep:
        def write(self, data: bytes) -> None:
            messages.append(bytes(data))

    with connection.cursor() as cursor:
        statement = cursor.cursor.mogrify(*chain_check._stream_statement(None))
        cursor.cursor.copy_expert(statement, Keep())
    everything = b"".join(messages)
    cuts = sorted(random.Random(7).sample(range(1, len(everything)), 40))
    for chunks in (
        messages,
        [everything],
        [everything[i:j] for i, j in zip([0, *cuts], [*cuts, len(everything)], strict=True)],
        [everything[i : i + 1] for i in range(len(everything))],
    ):
        stream = chain_check._StreamedRows()
        for chunk in chunks:
            stream.write(chunk)
        assert (stream.checked, stream.stopped) == (3, True)
        assert stream.doubtful == [chain_check._Doubt(4, 4, stream.head.decode())]


# Text that UTF-8 can hold: the ledger's own payloads never have lone surrogates.
texts = st.text(st.characters(exclude_categories=["Cs"]))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


@given(value=json_values, style=st.sampled_from(["canonical", "ascii", "spaced", "unsorted"]))
def test_what_the_stream_passes_is_canonical(value, style):
    value = {"value": value}  # a payload is an object
    body = {
        "canonical": lambda: ledger.canonical_bytes(value),
        "ascii": lambda: json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),
        "spaced": lambda: json.dumps(value, sort_keys=True, ensure_ascii=False).encode(),
        "unsorted": lambda: json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
    }[style]()
    passes = chain_check._canonical_payload(body) is not None
    canonical = ledger.canonical_bytes(json.loads(body)) == body
    assert passes <= canonical
    if not holds_float(value):  # floats are left to Python's notation, row by row
        assert passes == canonical


def holds_float(value) -> bool:
    if isinstance(value, dict):
        return any(holds_float(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_float(item) for item in value)
    return isinstance(value, float)
