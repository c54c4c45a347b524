"""Checkpoints sent to witnesses once a day, and timestamped by an RFC 3161 authority when set,
with or without witnesses; the tokens are published beside the checkpoints."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
import zipfile

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from acknowledgements.evidence import ledger, transparency
from acknowledgements.models import LedgerCheckpoint, LedgerEntry
from acknowledgements.notifications import witnesses
from tests.test_receipts import running_test_tsa

WITNESSES = ["auditor@audit-firm.example", "board@voipkonnec.example"]


def record(count: int = 3) -> None:
    with transaction.atomic():
        for n in range(count):
            ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": n})
    ledger.link_pending()


def test_the_latest_checkpoint_goes_to_every_witness_once_a_day(db, settings):
    settings.PORTAL_CHECKPOINT_WITNESSES = WITNESSES
    settings.PORTAL_TSA_URL = ""
    record(3)

    out = io.StringIO()
    call_command("witness_checkpoint", stdout=out)
    assert out.getvalue() == "Sent checkpoint 3 to 2 witness(es).\n"
    (message,) = mail.outbox
    assert message.to == WITNESSES
    assert message.subject == "Ledger checkpoint: 3 entries"
    attached = {name: content for name, content, _type in message.attachments}
    assert set(attached) == {"checkpoint.txt", "ledger-key.txt"}
    checkpoint = transparency.read_signed_checkpoint(
        attached["checkpoint.txt"], [transparency.parse_verifier(attached["ledger-key.txt"])]
    )
    assert checkpoint.size == 3
    assert attached["checkpoint.txt"] in message.body
    assert LedgerCheckpoint.objects.get(tree_size=3).witnessed_at is not None

    record(2)  # within the day: nothing more is sent, though the ledger grew
    out = io.StringIO()
    call_command("witness_checkpoint", stdout=out)
    assert out.getvalue().startswith("Nothing sent: a checkpoint was sent at ")
    assert len(mail.outbox) == 1

    with time_machine.travel(timezone.now() + dt.timedelta(days=1, minutes=1)):
        call_command("witness_checkpoint", stdout=io.StringIO())
    assert len(mail.outbox) == 2
    assert "checkpoint.txt" in [name for name, *_ in mail.outbox[1].attachments]
    assert mail.outbox[1].subject == "Ledger checkpoint: 5 entries"


def test_now_sends_again_within_the_day(db, settings):
    settings.PORTAL_CHECKPOINT_WITNESSES = WITNESSES[:1]
    settings.PORTAL_TSA_URL = ""
    record(1)
    call_command("witness_checkpoint", stdout=io.StringIO())
    call_command("witness_checkpoint", "--now", stdout=io.StringIO())
    assert len(mail.outbox) == 2


def test_without_witnesses_or_entries_nothing_is_sent(db, settings):
    settings.PORTAL_CHECKPOINT_WITNESSES = []
    assert witnesses.witness().reason == "the ledger is empty"
    record(1)
    assert witnesses.witness().reason == "PORTAL_CHECKPOINT_WITNESSES is empty"
    assert mail.outbox == []


def openssl_verifies(note: str, token: bytes, tmp_path) -> bool:
    """Whether `openssl ts -verify` accepts the token over the note (skips without openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    (tmp_path / "checkpoint.txt").write_text(note)
    (tmp_path / "checkpoint.tsr").write_bytes(token)
    # The authority's certificate travels in the token; this test authority is self-signed.
    certificates = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", "checkpoint.tsr", "-print_certs"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    ).stdout
    (tmp_path / "tsa.pem").write_bytes(certificates)
    checked = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            "checkpoint.tsr",
            "-token_in",
            "-CAfile",
            "tsa.pem",
            "-data",
            "checkpoint.txt",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    return checked.returncode == 0 and "Verification: OK" in checked.stdout


def test_a_checkpoint_sent_is_timestamped_and_openssl_verifies_it(db, settings, tmp_path):
    settings.PORTAL_CHECKPOINT_WITNESSES = WITNESSES[:1]
    record(4)
    with running_test_tsa() as url:
        settings.PORTAL_TSA_URL = url
        result = witnesses.witness()
    assert result.timestamped
    stored = LedgerCheckpoint.objects.get(tree_size=4)
    attached = {name: content for name, content, _type in mail.outbox[0].attachments}
    assert attached["checkpoint.tsr"] == bytes(stored.timestamp_token)
    assert openssl_verifies(attached["checkpoint.txt"], attached["checkpoint.tsr"], tmp_path)
    forged = attached["checkpoint.txt"].replace("\n4\n", "\n5\n")
    assert not openssl_verifies(forged, attached["checkpoint.tsr"], tmp_path)


def test_without_witnesses_the_latest_checkpoint_is_still_timestamped_and_published(
    db, settings, client, tmp_path
):
    settings.PORTAL_CHECKPOINT_WITNESSES = []
    record(4)
    out = io.StringIO()
    with running_test_tsa() as url:
        settings.PORTAL_TSA_URL = url
        call_command("witness_checkpoint", stdout=out)

    assert out.getvalue() == (
        "Checkpoint 4 is timestamped; nothing sent: PORTAL_CHECKPOINT_WITNESSES is empty.\n"
    )
    assert mail.outbox == []
    stored = LedgerCheckpoint.objects.get(tree_size=4)
    assert stored.timestamp_token and stored.witnessed_at is None
    # Anyone finds the token beside the checkpoint it proves, and checks one against the other.
    (listed,) = client.get("/ledger/checkpoints/").json()["checkpoints"]
    assert listed["timestamp_url"] == "http://testserver/ledger/checkpoints/4.tsr"
    token = client.get("/ledger/checkpoints/4.tsr")
    assert token.status_code == 200
    assert token["Content-Type"] == "application/timestamp-reply"
    assert token.content == bytes(stored.timestamp_token)
    note = client.get("/ledger/checkpoints/4").content.decode()
    assert openssl_verifies(note, token.content, tmp_path)


def test_each_new_checkpoint_gets_its_own_token_and_none_is_replaced(db, settings, client):
    settings.PORTAL_CHECKPOINT_WITNESSES = []
    record(2)
    with running_test_tsa() as url:
        settings.PORTAL_TSA_URL = url
        witnesses.witness()
        first = bytes(LedgerCheckpoint.objects.get(tree_size=2).timestamp_token)
        assert witnesses.witness().timestamped  # the ledger did not grow: the same token
        record(1)
        witnesses.witness()

    assert bytes(LedgerCheckpoint.objects.get(tree_size=2).timestamp_token) == first
    assert LedgerCheckpoint.objects.get(tree_size=3).timestamp_token
    listed = client.get("/ledger/checkpoints/").json()["checkpoints"]
    assert [item["timestamp_url"] is not None for item in listed] == [True, True]


def test_a_checkpoint_without_a_timestamp_has_no_token_to_download(db, settings, client):
    settings.PORTAL_TSA_URL = ""
    record(1)
    witnesses.witness()

    (listed,) = client.get("/ledger/checkpoints/").json()["checkpoints"]
    assert listed["timestamp_url"] is None
    assert client.get("/ledger/checkpoints/1.tsr").status_code == 404
    assert client.get("/ledger/checkpoints/9.tsr").status_code == 404


def test_a_failing_authority_does_not_stop_the_witnesses(db, settings):
    from tests.test_receipts import refused_port

    settings.PORTAL_CHECKPOINT_WITNESSES = WITNESSES[:1]
    settings.PORTAL_TSA_URL = f"http://127.0.0.1:{refused_port()}/tsa"
    record(1)
    result = witnesses.witness()
    assert result.sent_to and not result.timestamped
    assert [name for name, *_ in mail.outbox[0].attachments] == ["checkpoint.txt", "ledger-key.txt"]


def test_the_audit_package_carries_the_tokens_of_its_checkpoints(db, settings, policy):
    from acknowledgements.reports import audit_package
    from acknowledgements.standings import coverage

    settings.PORTAL_CHECKPOINT_WITNESSES = []
    record(2)
    with running_test_tsa() as url:
        settings.PORTAL_TSA_URL = url
        stamped = witnesses.witness().checkpoint
    settings.PORTAL_TSA_URL = ""
    record(1)
    unstamped = witnesses.witness().checkpoint
    assert stamped is not None and unstamped is not None
    moment = timezone.now()
    target = io.BytesIO()

    audit_package.write_package(
        target,
        policy=policy,
        timeline=coverage.timeline_for(policy, moment),
        moment=moment,
        exported_by="test",
    )

    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        token = archive.read(f"checkpoints/{stamped.tree_size}.tsr")
    assert token == bytes(LedgerCheckpoint.objects.get(pk=stamped.pk).timestamp_token)
    assert f"checkpoints/{unstamped.tree_size}.txt" in names
    assert f"checkpoints/{unstamped.tree_size}.tsr" not in names
