"""On PostgreSQL the database itself refuses to change evidence, and concurrent writers never fork
the chain. (Tampering with the triggers switched off and `verify_ledger` are in test_ledger.py.)
"""

import importlib
import re
import threading
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from acknowledgements.evidence import chain_check, ledger
from acknowledgements.models import (
    Acknowledgement,
    Audience,
    CoverageTally,
    LedgerEntry,
    PolicyRevision,
    Receipt,
)
from acknowledgements.signing import facts as signing_facts
from tests.conftest import sign_through_service

pytestmark = pytest.mark.postgres

EVIDENCE_TABLES = [
    "acknowledgements_ledgerentry",
    "acknowledgements_acknowledgement",
    "acknowledgements_receipt",
]
REFUSED = re.compile(r"append-only|not allowed|cannot change")
THREAD_TIMEOUT = 60


@pytest.fixture
def evidence(enforced_triggers, signer, revision, sign, django_capture_on_commit_callbacks):
    """A signature with its receipt: rows in every append-only table, triggers on."""
    with django_capture_on_commit_callbacks(execute=True):
        acknowledgement = sign(signer, revision)
    return SimpleNamespace(
        acknowledgement=acknowledgement, receipt=Receipt.objects.get(), revision=revision
    )


def refused(action: Callable[[], object]) -> str:
    """Run a statement that must be refused, in a savepoint so the test's transaction survives."""
    with pytest.raises(DatabaseError) as raised, transaction.atomic():
        action()
    message = str(raised.value)
    assert REFUSED.search(message), message
    return message


def execute(sql: str, params=()) -> Callable[[], None]:
    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    return run


def table_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in [*EVIDENCE_TABLES, "acknowledgements_policyrevision_audiences"]:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


# --- Evidence is append-only -----------------------------------------------------------------


@pytest.mark.parametrize("table", EVIDENCE_TABLES)
def test_evidence_tables_refuse_update_delete_and_truncate(evidence, table):
    counts = table_counts()
    assert counts[table] >= 1  # the row triggers have something to refuse

    update = refused(execute(f"UPDATE {table} SET id = id"))
    delete = refused(execute(f"DELETE FROM {table}"))
    truncate = refused(execute(f"TRUNCATE {table} CASCADE"))

    assert f"UPDATE on {table} is not allowed: evidence is append-only" in update
    assert f"DELETE on {table} is not allowed: evidence is append-only" in delete
    assert "TRUNCATE on acknowledgements_" in truncate and "append-only" in truncate
    assert table_counts() == counts


def test_the_orm_cannot_change_evidence_either(evidence):
    acknowledgement, receipt = evidence.acknowledgement, evidence.receipt
    entry = acknowledgement.ledger_entry
    counts = table_counts()

    refused(lambda: LedgerEntry.objects.filter(pk=entry.pk).update(kind="declined"))
    refused(lambda: LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).delete())
    entry.payload = ledger.canonical_bytes({"forged": True})
    refused(entry.save)
    refused(lambda: Acknowledgement.objects.update(signed_at=timezone.now()))
    refused(lambda: Receipt.objects.update(sha256="0" * 64))
    refused(lambda: Receipt.objects.all().delete())
    refused(receipt.delete)

    assert table_counts() == counts
    assert chain_check.verify_chain().intact
    assert Receipt.objects.get().sha256 == receipt.sha256


def test_replica_mode_does_not_switch_the_triggers_off(evidence):
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        for table in EVIDENCE_TABLES:
            refused(execute(f"UPDATE {table} SET id = id"))
            refused(execute(f"DELETE FROM {table}"))
        refused(execute("UPDATE acknowledgements_policyrevision SET body = 'forged'"))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET session_replication_role")
    assert chain_check.verify_chain().intact


def unlinked_entry() -> LedgerEntry:
    """An entry recorded in the test's transaction, which never commits: it stays unlinked."""
    with transaction.atomic():
        return ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})


def test_an_unlinked_entry_can_receive_its_chain_columns_once(enforced_triggers):
    entry = unlinked_entry()
    refused(lambda: LedgerEntry.objects.filter(pk=entry.pk).update(payload=b"{}"))
    # Linking may not smuggle in another change at the same time.
    refused(
        lambda: LedgerEntry.objects.filter(pk=entry.pk).update(
            sequence=99, previous_hash="0" * 64, row_hash="1" * 64, kind="signed"
        )
    )
    refused(lambda: LedgerEntry.objects.filter(pk=entry.pk).update(sequence=99))

    assert ledger.link_pending() >= 1
    entry.refresh_from_db()
    assert entry.sequence is not None and chain_check.verify_chain().intact
    refused(lambda: LedgerEntry.objects.filter(pk=entry.pk).update(sequence=entry.sequence + 1))
    refused(lambda: LedgerEntry.objects.filter(pk=entry.pk).update(row_hash="1" * 64))
    refused(
        lambda: LedgerEntry.objects.filter(pk=entry.pk).update(
            sequence=None, previous_hash=None, row_hash=None
        )
    )


def test_the_migration_enables_every_trigger_always():
    migration = importlib.import_module("acknowledgements.migrations.0003_append_only_triggers")
    statements = migration._triggers()
    created = {
        (match[2], match[1])
        for s in statements
        if (match := re.match(r"CREATE TRIGGER (\w+) .* ON (\w+)", s))
    }
    always = {
        (match[1], match[2])
        for s in statements
        if (match := re.match(r"ALTER TABLE (\w+) ENABLE ALWAYS TRIGGER (\w+)", s))
    }
    assert created and created == always
    assert {table for table, _ in created} >= {
        *EVIDENCE_TABLES,
        "acknowledgements_policyrevision",
        "acknowledgements_policyrevision_audiences",
    }


# --- Published revisions are frozen ----------------------------------------------------------


def test_a_published_revision_cannot_change(enforced_triggers, revision, audiences):
    refused(
        execute(
            "UPDATE acknowledgements_policyrevision SET body = 'forged' WHERE id = %s",
            [revision.pk],
        )
    )
    refused(execute("DELETE FROM acknowledgements_policyrevision WHERE id = %s", [revision.pk]))
    refused(execute("TRUNCATE acknowledgements_policyrevision CASCADE"))
    revision.body = "Forged text."
    refused(revision.save)
    refused(
        lambda: PolicyRevision.objects.filter(pk=revision.pk).update(
            status=PolicyRevision.Status.DRAFT
        )
    )

    revision.refresh_from_db()
    assert revision.is_published
    assert "Be excellent." in revision.body


def test_the_audiences_of_a_published_revision_cannot_change(
    enforced_triggers, revision, audiences
):
    table = "acknowledgements_policyrevision_audiences"
    before = set(revision.audiences.values_list("slug", flat=True))

    refused(lambda: revision.audiences.add(audiences["contractors"]))
    refused(lambda: revision.audiences.remove(audiences["employees"]))
    refused(revision.audiences.clear)
    refused(lambda: revision.audiences.set([audiences["partners"]]))
    refused(
        execute(
            f"INSERT INTO {table} (policyrevision_id, audience_id) VALUES (%s, %s)",
            [revision.pk, audiences["clients"].pk],
        )
    )
    refused(execute(f"UPDATE {table} SET audience_id = %s", [audiences["clients"].pk]))
    refused(execute(f"DELETE FROM {table} WHERE policyrevision_id = %s", [revision.pk]))
    refused(lambda: Audience.objects.filter(slug="employees").delete())

    assert set(revision.audiences.values_list("slug", flat=True)) == before


def test_truncate_cannot_empty_the_audiences_of_a_published_revision(enforced_triggers, revision):
    refused(execute("TRUNCATE acknowledgements_policyrevision_audiences"))

    assert revision.audiences.exists()


def test_an_audience_cannot_be_moved_into_a_published_revision(
    enforced_triggers, revision, policy, audiences
):
    draft = PolicyRevision.objects.create(policy=policy, version="9.0-draft", body="Draft.")
    draft.audiences.set([audiences["contractors"]])

    refused(
        execute(
            "UPDATE acknowledgements_policyrevision_audiences SET policyrevision_id = %s "
            "WHERE policyrevision_id = %s",
            [revision.pk, draft.pk],
        )
    )

    assert set(revision.audiences.values_list("slug", flat=True)) == {"employees"}


def test_a_draft_can_still_be_edited_and_deleted(enforced_triggers, policy, audiences):
    draft = PolicyRevision.objects.create(policy=policy, version="2.0", body="First words.")
    draft.audiences.set([audiences["employees"]])

    draft.body = "Better words."
    draft.save()
    draft.audiences.add(audiences["contractors"])
    draft.audiences.remove(audiences["employees"])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE acknowledgements_policyrevision SET change_summary = 'edited' WHERE id = %s",
            [draft.pk],
        )
    draft.refresh_from_db()
    assert draft.body == "Better words."
    assert draft.change_summary == "edited"
    assert list(draft.audiences.values_list("slug", flat=True)) == ["contractors"]

    draft.delete()

    assert not PolicyRevision.objects.filter(version="2.0").exists()


# --- Concurrent writers ----------------------------------------------------------------------


def run_at_once(count: int, work: Callable[[int], object]) -> list[object]:
    """Run work(0..count-1) in threads released together; each thread uses its own connection."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=THREAD_TIMEOUT)
            results[index] = work(index)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a writer never finished"
    assert errors == []
    return results


def test_concurrent_appends_keep_one_gapless_chain(evidence_db):
    before = LedgerEntry.objects.count()

    def append_ten(thread: int) -> list[int]:
        ids = []
        for n in range(10):
            with transaction.atomic():
                entry = ledger.append(
                    kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"thread": thread, "n": n}
                )
            ids.append(entry.pk)
        return ids

    results = run_at_once(8, append_ten)

    # Every commit linked its entries (or found another thread linking them): none is left.
    rows = list(LedgerEntry.objects.order_by("sequence").values_list("sequence", "pk"))
    assert len(rows) == before + 80
    assert [sequence for sequence, _pk in rows] == list(range(1, before + 81))
    assert sorted(pk for _sequence, pk in rows[before:]) == sorted(
        pk for ids in results for pk in ids
    )
    chain = chain_check.verify_chain()
    assert chain.intact, chain.summary()
    assert chain.rows_checked == before + 80


def test_simultaneous_submissions_of_one_signature_record_it_once(
    evidence_db, make_person, make_policy, publish
):
    person = make_person("Ada Lovelace", email="ada@example.com")
    revision = publish(make_policy(), "1.0")

    acknowledgements = run_at_once(4, lambda _: sign_through_service(person, revision))

    assert len({a.pk for a in acknowledgements}) == 1
    assert len({a.receipt_number for a in acknowledgements}) == 1
    assert Acknowledgement.objects.count() == 1
    events = LedgerEntry.objects.filter(person=person)
    assert events.filter(kind=LedgerEntry.Kind.SIGNED).count() == 1
    assert events.filter(kind=LedgerEntry.Kind.CONSENTED).count() == 1
    # The receipt task ran once, after the one commit that created the signature.
    assert Receipt.objects.count() == 1
    assert events.filter(kind=LedgerEntry.Kind.RECEIPT_ISSUED).count() == 1
    assert (
        Receipt.objects.get().acknowledgement.receipt_number == acknowledgements[0].receipt_number
    )
    assert CoverageTally.objects.get(run=revision).people == 1
    chain = chain_check.verify_chain()
    assert chain.intact, chain.summary()


def test_different_people_signing_at_once_all_succeed(
    evidence_db, make_person, make_policy, publish
):
    people = [make_person(f"Signer Number{i}", email=f"signer{i}@example.com") for i in range(4)]
    revision = publish(make_policy(), "1.0")

    acknowledgements = run_at_once(len(people), lambda i: sign_through_service(people[i], revision))

    assert {a.person_id for a in acknowledgements} == {p.pk for p in people}
    assert len({a.receipt_number for a in acknowledgements}) == len(people)
    assert Acknowledgement.objects.count() == len(people)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.SIGNED).count() == len(people)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CONSENTED).count() == len(people)
    assert Receipt.objects.count() == len(people)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.RECEIPT_ISSUED).count() == len(people)
    sequences = list(LedgerEntry.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))
    chain = chain_check.verify_chain()
    assert chain.intact, chain.summary()
    # The dashboard's tally took every one of the simultaneous first signatures.
    tallies = CoverageTally.objects.filter(run=revision)
    assert sum(tallies.values_list("people", flat=True)) == len(people)


def test_the_signing_statement_is_prepared_once_per_connection(evidence_db, signer, revision):
    def facts():
        return signing_facts.read(
            signer,
            policy_slug=revision.policy.slug,
            version=revision.version,
            moment=timezone.now(),
        )

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_prepared_statements")
            return [name for (name,) in cursor.fetchall()]

    first = facts()
    assert prepared() == [signing_facts.PREPARED_NAME]
    assert facts() == first  # executed again, not prepared again (that would fail)

    connection.close()  # a new session has no prepared statements: it prepares again
    assert facts() == first
    assert prepared() == [signing_facts.PREPARED_NAME]
    assert first.revision == revision and first.applies and not first.signed


def test_signature_tables_carry_only_the_indexes_queries_use(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE tablename IN "
            "('acknowledgements_acknowledgement', 'acknowledgements_ledgerentry')"
        )
        columns = {
            (table, re.search(r"USING btree \((.*)\)", definition).group(1))
            for table, definition in cursor.fetchall()
        }

    assert columns == {
        ("acknowledgements_acknowledgement", "id"),
        ("acknowledgements_acknowledgement", "person_id, revision_id, renewal"),
        ("acknowledgements_acknowledgement", "revision_id, signed_at, person_id"),
        ("acknowledgements_acknowledgement", "ledger_entry_id"),
        ("acknowledgements_acknowledgement", "receipt_number"),
        ("acknowledgements_ledgerentry", "id"),
        ("acknowledgements_ledgerentry", "sequence"),
        ("acknowledgements_ledgerentry", "row_hash"),
        ("acknowledgements_ledgerentry", "person_id, kind, revision_id"),
        ("acknowledgements_ledgerentry", "kind, recorded_at"),
        ("acknowledgements_ledgerentry", "actor_id"),
        ("acknowledgements_ledgerentry", "revision_id"),
    }
