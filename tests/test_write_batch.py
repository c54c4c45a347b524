"""Rows written together (acknowledgements/write_batch.py), and the signature written that way."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.tasks import task
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from acknowledgements import jobs
from acknowledgements.evidence import ledger, signature_columns
from acknowledgements.models import Acknowledgement, ClientDetails, LedgerEntry, RunStanding
from acknowledgements.write_batch import LastId, WriteBatch
from tests.conftest import sign_through_service

pytestmark = pytest.mark.django_db

DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@task(priority=7)
def batched_task(number: str) -> None:
    raise AssertionError("only queued by these tests, never run")


def test_rows_naming_earlier_rows_are_written_in_order_with_their_values(signer):
    recorded_at = timezone.now() - dt.timedelta(minutes=5)
    values = ledger.entry_values(
        kind=LedgerEntry.Kind.VIEWED,
        payload={"note": "written in a batch"},
        person=signer,
        revision=None,
        recorded_at=recorded_at,
    )
    with transaction.atomic():
        batch = WriteBatch(LedgerEntry)
        batch.insert(LedgerEntry, **values)
        batch.insert(
            ClientDetails,
            ledger_entry_id=LastId(LedgerEntry),
            ip="198.51.100.7",
            ip_salt="s" * 64,
            user_agent=None,
            user_agent_salt="t" * 64,
        )
        (entry_id,) = batch.run(LastId(LedgerEntry))

    entry = LedgerEntry.objects.get(pk=entry_id)
    assert bytes(entry.payload) == values["payload"]
    assert entry.payload_sha256 == ledger.sha256_hex(values["payload"])
    assert (entry.kind, entry.person_id, entry.recorded_at) == ("viewed", signer.pk, recorded_at)
    details = ClientDetails.objects.get(ledger_entry_id=entry_id)
    assert (details.ip, details.user_agent) == ("198.51.100.7", None)
    assert batch.statements == []  # sent, not kept for a second run


def test_a_batch_refuses_to_run_outside_a_transaction(evidence_db):
    batch = WriteBatch(RunStanding)
    batch.add("SELECT 1", [])
    with pytest.raises(RuntimeError, match="inside a transaction"):
        batch.run()


def test_only_columns_can_be_inserted():
    with pytest.raises(TypeError, match="is not a column"):
        WriteBatch(Acknowledgement).insert(LedgerEntry, client_details=None)


def test_a_failing_statement_writes_none_of_the_batch(signer, revision):
    sign_through_service(signer, revision)
    before = LedgerEntry.objects.count()
    with pytest.raises(IntegrityError), transaction.atomic():
        batch = WriteBatch(LedgerEntry)
        batch.insert(
            LedgerEntry,
            **ledger.entry_values(
                kind=LedgerEntry.Kind.VIEWED,
                payload={},
                person=signer,
                revision=None,
                recorded_at=timezone.now(),
            ),
        )
        # The same receipt number again: the unique constraint refuses the second statement.
        batch.insert(
            Acknowledgement,
            person_id=signer.pk,
            revision_id=revision.pk,
            ledger_entry_id=LastId(LedgerEntry),
            receipt_number=Acknowledgement.objects.get().receipt_number,
            signed_at=timezone.now(),
            renewal=1,
            **signature_columns.columns_of({}),
        )
        batch.run()
    assert LedgerEntry.objects.count() == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="round trips are PostgreSQL's")
def test_a_signature_costs_two_round_trips_on_postgresql(
    settings, signer, revision, policy, publish
):
    settings.TASKS = DATABASE_TASKS  # as in production: the receipt task is a row
    # Consented and the facts statement prepared on this connection, as for anyone signing a
    # later revision.
    sign_through_service(signer, revision)
    later = publish(policy, "2.0")
    with CaptureQueriesContext(connection) as captured:
        acknowledgement = sign_through_service(signer, later)

    # The test's own transaction makes the action's a savepoint: those statements are not its.
    statements = [
        query["sql"]
        for query in captured.captured_queries
        if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    # The person's lock and the facts; every row of the signature, its receipt task included.
    assert len(statements) == 2, [sql[:80] for sql in statements]
    assert statements[0].startswith("SELECT pg_advisory_xact_lock(")
    assert "EXECUTE portal_signing_facts(" in statements[0]
    assert 'INSERT INTO "acknowledgements_acknowledgement"' in statements[1]
    assert 'INSERT INTO "django_tasks_database_dbtaskresult"' in statements[1]
    queued = DBTaskResult.objects.filter(task_path__endswith=".issue_receipt_task")
    assert {"args": [acknowledgement.receipt_number], "kwargs": {}} in [
        row.args_kwargs for row in queued
    ]
    stored = Acknowledgement.objects.get(pk=acknowledgement.pk)
    assert (stored.receipt_number, stored.ledger_entry_id) == (
        acknowledgement.receipt_number,
        acknowledgement.ledger_entry_id,
    )
    assert RunStanding.objects.get(person=signer, run=later).signed_at == stored.signed_at


def test_a_new_instance_is_inserted_with_its_defaults_as_save_would():
    before = timezone.now()
    with transaction.atomic():
        batch = WriteBatch(DBTaskResult)
        # Neither the status, the worker ids nor the time it was queued given.
        batch.insert_new(
            DBTaskResult(
                args_kwargs={"args": [], "kwargs": {}},
                task_path="tests.test_write_batch.batched_task",
                backend_name="default",
                run_after=before,
            )
        )
        batch.run()

    row = DBTaskResult.objects.get()
    assert (row.status, row.worker_ids, row.return_value) == ("READY", [], None)
    assert row.enqueued_at >= before  # auto_now_add, applied as save applies it


def test_a_task_queued_in_a_batch_is_the_row_the_backend_queues(settings):
    settings.TASKS = DATABASE_TASKS
    with transaction.atomic():
        by_backend = batched_task.enqueue("VK-AAAA-BBBB-CCCC").db_result
        batch = WriteBatch(DBTaskResult)
        jobs.enqueue_in_batch(batch, batched_task, "VK-AAAA-BBBB-CCCC")
        batch.run()

    rows = list(DBTaskResult.objects.order_by("enqueued_at"))
    assert len(rows) == 2
    assert rows[0].pk == by_backend.pk

    def comparable(row):
        fields = DBTaskResult._meta.local_concrete_fields
        return {f.attname: getattr(row, f.attname) for f in fields if f.attname != "id"}

    first, second = comparable(rows[0]), comparable(rows[1])
    assert second.pop("enqueued_at") >= first.pop("enqueued_at")
    assert first == second
    assert second["args_kwargs"] == {"args": ["VK-AAAA-BBBB-CCCC"], "kwargs": {}}
    assert second["priority"] == 7
    assert list(DBTaskResult.objects.ready()) == rows  # the worker would take both


def test_without_the_database_queue_a_batched_task_is_queued_on_commit(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        batch = WriteBatch(DBTaskResult)
        jobs.enqueue_in_batch(batch, batched_task, "VK-AAAA-BBBB-CCCC")
        assert batch.statements == []
    assert len(callbacks) == 1
    assert not DBTaskResult.objects.exists()
