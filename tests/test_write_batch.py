"""Rows written together (acknowledgements/write_batch.py), and the signature written that way."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from acknowledgements.evidence import ledger, signature_columns
from acknowledgements.models import Acknowledgement, ClientDetails, LedgerEntry, RunStanding
from acknowledgements.write_batch import LastId, WriteBatch
from tests.conftest import sign_through_service

pytestmark = pytest.mark.django_db


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
def test_a_signature_costs_two_round_trips_on_postgresql(signer, revision, policy, publish):
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
    # The person's lock and the facts; every row of the signature. (The receipt task is queued
    # once the test's transaction would commit: the tests' task backend runs it then. The
    # database backend, in production, adds its INSERT.)
    assert len(statements) == 2, [sql[:80] for sql in statements]
    assert statements[0].startswith("SELECT pg_advisory_xact_lock(")
    assert "EXECUTE portal_signing_facts(" in statements[0]
    assert 'INSERT INTO "acknowledgements_acknowledgement"' in statements[1]
    stored = Acknowledgement.objects.get(pk=acknowledgement.pk)
    assert (stored.receipt_number, stored.ledger_entry_id) == (
        acknowledgement.receipt_number,
        acknowledgement.ledger_entry_id,
    )
    assert RunStanding.objects.get(person=signer, run=later).signed_at == stored.signed_at
