import hashlib
import json
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from acknowledgements.evidence import chain_check, ledger, merkle, transparency
from acknowledgements.models import LedgerEntry
from tests.conftest import set_evidence_triggers


def append_events(count: int, **payload):
    """Record events and link them, as their transaction's commit does in the portal."""
    with transaction.atomic():
        entries = [
            ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": n, **payload})
            for n in range(count)
        ]
    ledger.link_pending()
    for entry in entries:
        entry.refresh_from_db()
    return entries


def test_canonical_bytes_are_sorted_compact_utf8():
    assert ledger.canonical_bytes({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_entries_form_a_chain(db):
    first, second = append_events(2)
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.previous_hash == ledger.GENESIS_HASH
    assert second.previous_hash == first.row_hash
    assert first.payload_sha256 == hashlib.sha256(bytes(first.payload)).hexdigest()
    expected = hashlib.sha256(f"2\n{first.row_hash}\n{second.payload_sha256}".encode()).hexdigest()
    assert second.row_hash == expected


def test_an_entry_is_linked_as_its_transaction_commits(evidence_db):
    with transaction.atomic():
        first = ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})
        second = ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 2})
        # Until the commit the entries have their payload hash but no place in the chain.
        assert (first.sequence, first.previous_hash, first.row_hash) == (None, None, None)
        assert first.payload_sha256 == hashlib.sha256(bytes(first.payload)).hexdigest()
    linked = list(LedgerEntry.objects.values_list("pk", "sequence"))
    assert linked == [(first.pk, 1), (second.pk, 2)]
    assert chain_check.verify_chain().rows_checked == 2


def test_a_rolled_back_entry_leaves_no_gap(evidence_db):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})
        1 / 0  # noqa: B018 - the transaction fails after the append
    with transaction.atomic():
        kept = ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 2})
    assert LedgerEntry.objects.get().pk == kept.pk
    assert LedgerEntry.objects.get().sequence == 1


def test_verify_ledger_links_entries_still_waiting(db, capsys):
    with transaction.atomic():
        ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})
    call_command("verify_ledger")
    out = capsys.readouterr().out
    assert "Linked 1 entries that were waiting for their place." in out
    assert "Ledger intact: 1 rows checked" in out


def test_ensure_linked_links_everything_up_to_the_entry(db):
    with transaction.atomic():
        first = ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})
        second = ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 2})
    assert ledger.ensure_linked(second).sequence == 2
    first.refresh_from_db()
    assert second.previous_hash == first.row_hash


def test_a_backlog_is_linked_in_batches(db, monkeypatch):
    monkeypatch.setattr(ledger, "LINK_BATCH", 2)
    with transaction.atomic():
        for n in range(5):
            ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": n})

    assert ledger.link_pending() == 5
    assert not LedgerEntry.objects.filter(sequence=None).exists()
    assert chain_check.verify_chain().rows_checked == 5


def test_one_link_task_per_committed_transaction(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})
        ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 2})
    assert [callback.__name__ for callback in callbacks] == ["_enqueue_link"]


def test_a_link_task_that_cannot_be_queued_loses_nothing(evidence_db, monkeypatch):

    def refuse():
        raise ConnectionError("the task queue is down")

    monkeypatch.setattr(ledger, "link_ledger", SimpleNamespace(enqueue=refuse))
    with transaction.atomic():  # commits: the failed enqueue is logged, not raised
        entry = ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})
    assert LedgerEntry.objects.get(pk=entry.pk).sequence is None

    monkeypatch.undo()
    with transaction.atomic():  # the next commit's link takes the waiting entry along
        ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 2})
    assert LedgerEntry.objects.get(pk=entry.pk).sequence == 1
    assert chain_check.verify_chain().rows_checked == 2


def test_payload_covers_the_columns(db):
    (entry,) = append_events(1)
    payload = json.loads(bytes(entry.payload))
    assert payload["event"] == "admin_action"
    assert payload["recorded_at"] == ledger.utc_iso(entry.recorded_at)
    assert payload["recorded_at"].endswith("Z")


def test_append_outside_a_transaction_is_refused(evidence_db):
    with pytest.raises(RuntimeError):
        ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={})


def test_intact_chain_verifies(db, capsys):
    entries = append_events(5)
    result = chain_check.verify_chain()
    assert result.intact and result.rows_checked == 5 and result.head_hash == entries[-1].row_hash
    call_command("verify_ledger")
    root = transparency.b64(merkle.root_hash(merkle.LeafList(leaves_of(entries)), 5))
    assert capsys.readouterr().out.strip().splitlines() == [
        f"Ledger intact: 5 rows checked, head hash {entries[-1].row_hash}.",
        f"Transparency log intact: checkpoint 5, root {root}.",
    ]


def leaves_of(entries) -> list[bytes]:
    return [bytes.fromhex(entry.row_hash) for entry in entries]


def tamper(sql: str, params=()):
    """Change the ledger behind the application's back, as an attacker with SQL access could."""
    set_evidence_triggers(False)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    set_evidence_triggers(True)


def verify_ledger_exit() -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("verify_ledger", stdout=out, stderr=out)
    return exited.value.code, out.getvalue()


@pytest.mark.parametrize(
    ("sql", "failed_at", "reason"),
    [
        (
            "UPDATE acknowledgements_ledgerentry SET payload = %s WHERE sequence = 3",
            3,
            "payload changed",
        ),
        ("DELETE FROM acknowledgements_ledgerentry WHERE sequence = 2", 2, "row missing"),
        (
            "UPDATE acknowledgements_ledgerentry SET previous_hash = %s WHERE sequence = 4",
            4,
            "broken link",
        ),
        (
            "UPDATE acknowledgements_ledgerentry SET row_hash = %s WHERE sequence = 5",
            5,
            "row hash changed",
        ),
        (
            "UPDATE acknowledgements_ledgerentry SET kind = 'signed' WHERE sequence = 1",
            1,
            "column 'event' disagrees",
        ),
    ],
)
def test_every_kind_of_tampering_is_reported(db, sql, failed_at, reason):
    append_events(6)
    params = []
    if "payload" in sql:
        params = [ledger.canonical_bytes({"forged": True})]
    elif "%s" in sql:
        params = ["f" * 64]
    tamper(sql, params)
    result = chain_check.verify_chain()
    assert not result.intact
    assert result.failed_sequence == failed_at
    assert reason in result.problem
    code, output = verify_ledger_exit()
    assert code == 1
    assert f"sequence {failed_at} fails" in output and reason in output


def test_payload_rewritten_with_matching_hash_breaks_the_next_link(db):
    append_events(3)
    forged = ledger.canonical_bytes({"forged": True})
    tamper(
        "UPDATE acknowledgements_ledgerentry SET payload = %s, payload_sha256 = %s WHERE sequence = 2",
        [forged, hashlib.sha256(forged).hexdigest()],
    )
    result = chain_check.verify_chain()
    assert result.failed_sequence == 2
    assert "row hash changed" in result.problem


def test_verification_can_stop_at_a_row(db):
    append_events(4)
    tamper("DELETE FROM acknowledgements_ledgerentry WHERE sequence = 4")
    assert chain_check.verify_chain(up_to=3).intact
    assert not chain_check.verify_chain(up_to=4).intact
