"""From a signature to its sealed receipt: the tasks, the stored file, the email, the download."""

import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from acknowledgements.evidence import chain_check, ledger
from acknowledgements.evidence.payload import NOT_RECORDED
from acknowledgements.models import Acknowledgement, LedgerEntry, Receipt
from acknowledgements.receipts import actions as receipt_actions
from acknowledgements.receipts.authority import load_sealing_identity
from acknowledgements.receipts.seal import inspect_receipt
from tests.conftest import client_evidence


@pytest.fixture
def issued(signer, revision, sign, mailoutbox, django_capture_on_commit_callbacks):
    """One signature whose on-commit chain ran: receipt issued, stored and emailed."""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        acknowledgement = sign(signer, revision)
    # The test's transaction never commits, so its entries are linked here as a commit would.
    ledger.link_pending()
    acknowledgement = Acknowledgement.objects.select_related("ledger_entry").get(
        pk=acknowledgement.pk
    )
    receipt = Receipt.objects.get()
    with receipt.pdf.open("rb") as stored:
        pdf = stored.read()
    return SimpleNamespace(
        acknowledgement=acknowledgement,
        receipt=receipt,
        pdf=pdf,
        callbacks=callbacks,
        outbox=mailoutbox,
    )


def receipt_issued_entries():
    return LedgerEntry.objects.filter(kind=LedgerEntry.Kind.RECEIPT_ISSUED)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """The PDF's text as pdftotext extracts it, whitespace collapsed."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: cannot read the receipt's text")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True
    )
    return " ".join(result.stdout.decode().split())


# --- Issuing ---------------------------------------------------------------------------------


def test_signing_issues_one_sealed_receipt_recorded_in_the_ledger(issued, signer):
    acknowledgement, receipt = issued.acknowledgement, issued.receipt

    # Both on-commit steps ran: the receipt task, then (nested) the email task.
    assert len(issued.callbacks) == 2
    assert Receipt.objects.count() == 1
    assert receipt.acknowledgement_id == acknowledgement.pk
    assert receipt.sha256 == hashlib.sha256(issued.pdf).hexdigest()
    assert receipt.seal_fingerprint == load_sealing_identity().fingerprint
    assert receipt.timestamped is False  # no timestamp authority is configured in tests

    entry = receipt_issued_entries().get()
    payload = ledger.decode(entry)
    assert entry.person_id == signer.pk
    assert entry.revision_id == acknowledgement.revision_id
    assert entry.sequence > acknowledgement.ledger_entry.sequence
    assert payload["receipt_number"] == acknowledgement.receipt_number
    assert payload["pdf_sha256"] == receipt.sha256
    assert payload["signed_sequence"] == acknowledgement.ledger_entry.sequence
    assert payload["seal_fingerprint"] == receipt.seal_fingerprint
    assert payload["timestamped"] is False
    assert receipt.issued_at == entry.recorded_at
    assert chain_check.verify_chain().intact

    report = inspect_receipt(issued.pdf, trust_roots_pem=[load_sealing_identity().root_pem])
    assert report.problem == ""
    assert report.signer_fingerprint == receipt.seal_fingerprint


def test_the_receipt_is_emailed_to_the_signer(issued, signer, revision):
    number = issued.acknowledgement.receipt_number

    assert len(issued.outbox) == 1
    message = issued.outbox[0]
    assert message.to == [signer.email]
    assert number in message.subject
    assert revision.policy.name in message.subject

    attachments = [(name, content, mime) for name, content, mime in message.attachments]
    assert len(attachments) == 1
    name, content, mime = attachments[0]
    assert name == f"receipt-{number}.pdf"
    assert mime == "application/pdf"
    assert content == issued.pdf

    text_body = message.body
    ((html_body, html_type),) = message.alternatives
    assert html_type == "text/html"
    for body in (text_body, html_body):
        assert revision.policy.name in body
        assert f"version {revision.version}" in body
        assert number in body
        assert revision.text_sha256 in body
        assert signer.full_name in body


def test_issuing_again_returns_the_same_receipt_and_records_nothing(
    issued, django_capture_on_commit_callbacks
):
    entries = LedgerEntry.objects.count()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = receipt_actions.issue_receipt(receipt_number=issued.acknowledgement.receipt_number)

    assert again.pk == issued.receipt.pk
    assert again.sha256 == issued.receipt.sha256
    assert Receipt.objects.count() == 1
    assert LedgerEntry.objects.count() == entries
    assert receipt_issued_entries().count() == 1
    assert callbacks == []  # no second email queued
    assert len(issued.outbox) == 1


def test_receipt_prints_the_recorded_evidence(issued, signer, revision, tmp_path):
    text = pdf_text(issued.pdf, tmp_path)
    compact = re.sub(r"\s+", "", text)
    evidence = client_evidence()

    assert issued.acknowledgement.receipt_number in text
    assert signer.full_name in text
    assert signer.email in text
    assert revision.text_sha256 in compact
    assert issued.acknowledgement.ledger_entry.payload_sha256 in compact
    assert issued.acknowledgement.ledger_entry.row_hash in compact
    assert issued.receipt.seal_fingerprint in compact
    # Recorded facts are printed as recorded, never as "not recorded". A receipt is kept
    # forever, so the IP address and user agent appear only as their salted commitments.
    client = ledger.decode(issued.acknowledgement.ledger_entry)["client"]
    assert client["ip_sha256"] in compact
    assert client["user_agent_sha256"] in compact
    assert "IP address (salted SHA-256) not recorded" not in text
    assert "User agent (salted SHA-256) not recorded" not in text
    assert evidence.ip not in text
    assert re.sub(r"\s+", "", evidence.user_agent) not in compact
    assert "kept by the portal apart from the ledger" in text
    assert f"Request id {evidence.request_id}" in text
    assert "Browser time zone Europe/Paris" in text
    assert "Typed name Ada Lovelace" in text
    for label in ("Name", "Email", "Signed at", "Typed name", "Company", "Text SHA-256"):
        assert f"{label} {NOT_RECORDED}" not in text


def test_attached_evidence_is_the_ledger_payload_byte_for_byte(issued):
    entry = issued.acknowledgement.ledger_entry
    report = inspect_receipt(issued.pdf, trust_roots_pem=[load_sealing_identity().root_pem])

    assert report.evidence_json == bytes(entry.payload)
    assert hashlib.sha256(report.evidence_json).hexdigest() == entry.payload_sha256
    assert json.loads(report.evidence_json)["receipt_number"] == (
        issued.acknowledgement.receipt_number
    )
    assert report.policy_source == issued.acknowledgement.revision.body


# --- Download and confirmation pages ---------------------------------------------------------


def download(client, number: str):
    response = client.get(f"/acknowledgements/{number}/receipt.pdf")
    # Exhausting the stream makes the test client close the response and its file, as a WSGI
    # server would. Closing it again would fire request_finished and close the connection.
    body = b"".join(response.streaming_content) if response.streaming else b""
    return response, body


def test_the_signer_downloads_their_receipt(issued, signer, logged_in):
    number = issued.acknowledgement.receipt_number

    response, body = download(logged_in(signer), number)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment")
    assert f'filename="receipt-{number}.pdf"' in response["Content-Disposition"]
    assert body == issued.pdf


@pytest.mark.parametrize("who", ["auditor", "admin_user"])
def test_auditors_and_administrators_download_any_receipt(issued, logged_in, request, who):
    response, body = download(
        logged_in(request.getfixturevalue(who)), issued.acknowledgement.receipt_number
    )

    assert response.status_code == 200
    assert body == issued.pdf


def test_another_person_cannot_download_a_receipt(issued, make_person, revision, logged_in):
    other = make_person("Grace Brewster", email="other@example.com")

    response, body = download(logged_in(other), issued.acknowledgement.receipt_number)

    assert response.status_code == 404
    assert body == b""


def test_an_anonymous_visitor_is_sent_to_log_in(issued, client):
    number = issued.acknowledgement.receipt_number

    response, _ = download(client, number)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert f"/acknowledgements/{number}/receipt.pdf" in response["Location"]


def test_confirmation_page_offers_the_receipt_once_it_exists(
    signer, revision, sign, logged_in, django_capture_on_commit_callbacks
):
    client = logged_in(signer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        acknowledgement = sign(signer, revision)
    page = f"/acknowledgements/{acknowledgement.receipt_number}/"

    before = client.get(page)
    assert before.status_code == 200
    assert "being prepared" in before.content.decode()
    assert "Download receipt (PDF)" not in before.content.decode()
    response, _ = download(client, acknowledgement.receipt_number)
    assert response.status_code == 404  # no receipt yet

    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()

    after = client.get(page).content.decode()
    receipt = Receipt.objects.get(acknowledgement=acknowledgement)
    assert "Download receipt (PDF)" in after
    assert f"/acknowledgements/{acknowledgement.receipt_number}/receipt.pdf" in after
    assert receipt.sha256 in after
    assert "being prepared" not in after
    assert Acknowledgement.objects.count() == 1


def test_a_receipt_whose_task_was_lost_is_issued_by_the_recovery(signer, revision, sign):
    # The test's transaction never commits: the receipt task queued on commit never runs, as
    # when a worker stops or the queue refuses the task.
    acknowledgement = sign(signer, revision)
    assert not Receipt.objects.exists()
    waiting = LedgerEntry.objects.filter(sequence=None).count()

    out = io.StringIO()
    call_command("recover_work", stdout=out)  # too early: the task may still be on its way
    assert "receipts queued again: 0;" in out.getvalue()
    assert f"ledger entries linked: {waiting};" in out.getvalue()

    with time_machine.travel(timezone.now() + receipt_actions.RECEIPT_OVERDUE_AFTER, tick=False):
        call_command("recover_work", stdout=out)
        receipt = Receipt.objects.get()
        call_command("recover_work", stdout=out)
    assert receipt.acknowledgement == acknowledgement
    # The fixture's revision is published in the test's transaction, which never commits: its
    # announcing task never ran, so each recovery queues it again.
    assert out.getvalue().splitlines()[-2:] == [
        "Tasks interrupted, queued again: 0; ledger entries linked: 0; "
        "receipts queued again: 1; announcements queued again: 1; "
        "emails queued again: 0, uncertain: 0; webhook deliveries taken back: 0, queued: 0.",
        # The receipt's own entry.
        "Tasks interrupted, queued again: 0; ledger entries linked: 1; "
        "receipts queued again: 0; announcements queued again: 1; "
        "emails queued again: 0, uncertain: 0; webhook deliveries taken back: 0, queued: 0.",
    ]
    assert receipt_issued_entries().count() == 1


def test_a_receipt_task_queued_before_the_upgrade_by_the_acknowledgements_id_still_runs(
    signer, revision, sign
):
    acknowledgement = sign(signer, revision)  # its own task waits for a commit that never comes

    receipt_actions.issue_receipt_task.call(acknowledgement.pk)

    assert Receipt.objects.get().acknowledgement == acknowledgement
    assert receipt_issued_entries().count() == 1


def test_a_receipt_whose_render_failed_for_a_missing_library_is_issued_once_it_is_installed(
    signer, revision, sign, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    import weasyprint

    def library_missing(*args, **kwargs):
        raise OSError("cannot load library 'libgobject-2.0-0'")

    with monkeypatch.context() as missing:
        missing.setattr(weasyprint, "HTML", library_missing)
        with django_capture_on_commit_callbacks(execute=True):
            acknowledgement = sign(signer, revision)
    assert not Receipt.objects.exists()
    assert "libgobject-2.0-0" in caplog.text  # the failed task says why

    # The library is back (the portal restarted): the start-up recovery does not wait.
    out = io.StringIO()
    call_command("recover_work", "--now", stdout=out)
    assert "receipts queued again: 1;" in out.getvalue()
    assert Receipt.objects.get().acknowledgement == acknowledgement
    call_command("recover_work", "--now", stdout=out)
    assert (
        out.getvalue()
        .splitlines()[-1]
        .endswith(
            # The fixture's revision never had its announcing task run (see above).
            "receipts queued again: 0; announcements queued again: 1; "
            "emails queued again: 0, uncertain: 0; webhook deliveries taken back: 0, queued: 0."
        )
    )
    assert receipt_issued_entries().count() == 1


def test_a_signature_queues_one_task_which_also_links_it(
    signer, revision, sign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        acknowledgement = sign(signer, revision)
    # The receipt task links the signature (and the consent) first: no separate link task.
    assert len(callbacks) == 1 and callbacks[0] is not ledger._enqueue_link
    assert LedgerEntry.objects.filter(person=signer, sequence=None).count() == 2

    callbacks[0]()  # the receipt task, run as the queue would

    entry = LedgerEntry.objects.get(pk=acknowledgement.ledger_entry_id)
    assert entry.sequence is not None
    assert (
        not LedgerEntry.objects.filter(person=signer, sequence=None)
        .exclude(kind=LedgerEntry.Kind.RECEIPT_ISSUED)
        .exists()
    )


def test_with_the_database_queue_the_receipt_task_commits_with_the_signature(
    settings, signer, revision, sign, make_person, django_capture_on_commit_callbacks
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    other = make_person("Grace Hopper", email="grace@example.com")

    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            sign(other, revision)
            raise RuntimeError("the request fails after signing")
        acknowledgement = sign(signer, revision)

    # The task is a row of the signature's transaction: rolled back with the first signature,
    # kept with the second, and nothing waits for a commit to queue it.
    queued = DBTaskResult.objects.get()
    assert queued.task_path == "acknowledgements.receipts.actions.issue_receipt_task"
    assert queued.args_kwargs == {"args": [acknowledgement.receipt_number], "kwargs": {}}
    assert callbacks == []
    assert list(Acknowledgement.objects.all()) == [acknowledgement]
