"""IP addresses and user agents: committed to in the ledger, kept apart, removed after N days.

The ledger payload holds a salted SHA-256 of each value; the raw values and salts live in
ClientDetails. After PORTAL_CLIENT_DETAILS_RETENTION_DAYS, redact_client_details deletes them
and records that in the ledger; the chain, the receipts and their verification still hold.
"""

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from types import SimpleNamespace

import pytest
import time_machine
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from acknowledgements.evidence import chain_check, ledger
from acknowledgements.evidence import client_evidence as evidence
from acknowledgements.models import ClientDetails, LedgerEntry, Receipt
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import seal as receipt_seal
from acknowledgements.receipts import verification
from acknowledgements.reports import audit_package, exports, lists, personal_data, signatures_csv
from acknowledgements.reports import history as report_history
from acknowledgements.signing import actions as signing_actions
from acknowledgements.standings.coverage import timeline_for
from tests.conftest import client_evidence
from tests.pages import text_of

DAYS = 30
IP = "192.0.2.10"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


@pytest.fixture(autouse=True)
def _retention(settings):
    settings.PORTAL_CLIENT_DETAILS_RETENTION_DAYS = DAYS


@pytest.fixture
def signed(signer, revision, sign, django_capture_on_commit_callbacks):
    """A view, a consent and a signature with its sealed receipt, all from IP and USER_AGENT."""
    signing_actions.record_view(person=signer, revision=revision, client=client_evidence())
    with django_capture_on_commit_callbacks(execute=True):
        acknowledgement = sign(signer, revision)
    receipt = Receipt.objects.get(acknowledgement=acknowledgement)
    with receipt.pdf.open("rb") as stored:
        pdf = stored.read()
    # The test's transaction never commits, so its entries are linked here as a commit would.
    ledger.link_pending()
    acknowledgement.ledger_entry.refresh_from_db()
    return SimpleNamespace(
        acknowledgement=acknowledgement, entry=acknowledgement.ledger_entry, pdf=pdf
    )


def later(days: int):
    return time_machine.travel(timezone.now() + dt.timedelta(days=days), tick=False)


def redact() -> str:
    out = io.StringIO()
    call_command("redact_client_details", stdout=out)
    return out.getvalue()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def client_entries(person) -> list[LedgerEntry]:
    return list(
        LedgerEntry.objects.filter(
            person=person,
            kind__in=[
                LedgerEntry.Kind.VIEWED,
                LedgerEntry.Kind.CONSENTED,
                LedgerEntry.Kind.SIGNED,
                LedgerEntry.Kind.DECLINED,
            ],
        ).order_by("sequence")
    )


def facts_of(entry: LedgerEntry) -> dict[str, evidence.ClientFact]:
    details = ClientDetails.objects.filter(ledger_entry=entry).first()
    return evidence.client_facts(ledger.decode(entry), details)


# --- While the values are kept ---------------------------------------------------------------


def test_each_entry_commits_to_its_own_salted_values(signed, signer):
    entries = client_entries(signer)
    assert [e.kind for e in entries] == ["viewed", "consented", "signed"]
    salts = set()
    for entry in entries:
        details = ClientDetails.objects.get(ledger_entry=entry)
        client = ledger.decode(entry)["client"]
        assert (details.ip, details.user_agent) == (IP, USER_AGENT)
        assert client["ip_sha256"] == sha256(details.ip_salt + IP)
        assert client["user_agent_sha256"] == sha256(details.user_agent_salt + USER_AGENT)
        assert "ip" not in client and "user_agent" not in client
        assert IP.encode() not in bytes(entry.payload)
        salts |= {details.ip_salt, details.user_agent_salt}
    assert len(salts) == 2 * len(entries)  # a fresh 256-bit salt per value and entry
    assert all(len(salt) == 64 for salt in salts)


def test_kept_values_can_be_checked_against_the_ledger(signed):
    facts = facts_of(signed.entry)
    assert facts["ip"] == evidence.ClientFact(
        "held", IP, facts["ip"].sha256, facts["ip"].salt, True
    )
    assert facts["user_agent"].matches is True

    verdict = verification.verify_receipt(signed.pdf)
    assert verdict.genuine
    check = next(c for c in verdict.checks if c.name == "IP address and user agent")
    assert check.passed and "match the salted SHA-256" in check.detail
    assert IP not in check.detail  # anyone may upload a receipt: the values are never shown


def test_a_changed_kept_value_fails_verification(signed):
    # Behind the application's back: PostgreSQL's trigger refuses it (see the last test), so
    # it is switched off here for the rest of this test's transaction.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                "ALTER TABLE acknowledgements_clientdetails "
                "DISABLE TRIGGER acknowledgements_clientdetails_no_update"
            )
    ClientDetails.objects.filter(ledger_entry=signed.entry).update(ip="198.51.100.7")

    verdict = verification.verify_receipt(signed.pdf)
    assert not verdict.genuine
    check = next(c for c in verdict.checks if c.name == "IP address and user agent")
    assert not check.passed
    assert "does not match" in check.detail


def test_the_receipt_carries_the_commitments_and_never_the_values(signed):
    report = receipt_seal.inspect_receipt(
        signed.pdf, trust_roots_pem=[receipt_authority.load_sealing_identity().root_pem]
    )
    assert report.evidence_json == bytes(signed.entry.payload)
    assert IP.encode() not in signed.pdf and b"TestBrowser" not in signed.pdf
    assert IP.encode() not in report.evidence_json


# --- Removal after N days --------------------------------------------------------------------


def test_values_older_than_the_retention_period_are_removed_and_the_removal_recorded(
    signed, signer
):
    entries = client_entries(signer)
    before = LedgerEntry.objects.count()
    payloads = {e.pk: bytes(e.payload) for e in LedgerEntry.objects.all()}

    with later(DAYS - 1):
        assert "of 0 ledger entries" in redact()
    assert ClientDetails.objects.count() == len(entries)

    with later(DAYS + 1):
        output = redact()

    assert f"of {len(entries)} ledger entries" in output
    assert "1 redaction event(s)" in output
    assert ClientDetails.objects.count() == 0
    # Nothing in the ledger changed; one event was appended.
    assert {e.pk: bytes(e.payload) for e in LedgerEntry.objects.exclude(kind="redacted")} == (
        payloads
    )
    assert LedgerEntry.objects.count() == before + 1
    event = LedgerEntry.objects.get(kind=LedgerEntry.Kind.REDACTED)
    assert event.person == signer
    payload = ledger.decode(event)
    assert payload["entries"] == [e.sequence for e in entries]
    assert payload["removed"] == ["ip", "user_agent"]
    assert payload["retention_days"] == DAYS
    assert "commitments" in payload["rule"]


def test_the_chain_and_the_receipt_still_verify_after_removal(signed):
    with later(DAYS + 1):
        redact()

    assert chain_check.verify_chain().intact
    out = io.StringIO()
    call_command("verify_ledger", stdout=out)
    assert "Ledger intact:" in out.getvalue()

    verdict = verification.verify_receipt(signed.pdf)
    assert verdict.genuine
    check = next(c for c in verdict.checks if c.name == "IP address and user agent")
    assert check.passed and "Removed after the retention period" in check.detail


def test_removed_values_can_no_longer_be_checked(signed):
    committed = ledger.decode(signed.entry)["client"]["ip_sha256"]
    with later(DAYS + 1):
        redact()

    facts = facts_of(signed.entry)
    assert facts["ip"] == evidence.ClientFact("removed", sha256=committed)
    assert facts["user_agent"].state == "removed"
    assert facts["ip"].value is None and facts["ip"].salt is None


def test_values_younger_than_the_retention_period_are_kept(
    signed, signer, make_person, revision, sign
):
    with later(DAYS // 2):
        other = make_person("Grace Young", email="grace.young@example.com")
        recent = sign(other, revision, client=client_evidence(ip="203.0.113.5"))

    with later(DAYS + 1):
        redact()

    assert not ClientDetails.objects.filter(ledger_entry__person=signer).exists()
    kept = ClientDetails.objects.get(ledger_entry=recent.ledger_entry)
    assert kept.ip == "203.0.113.5"
    assert facts_of(recent.ledger_entry)["ip"].matches is True
    assert LedgerEntry.objects.filter(kind="redacted", person=other).count() == 0

    with later(DAYS // 2 + DAYS + 1):
        redact()
    assert ClientDetails.objects.count() == 0
    assert LedgerEntry.objects.filter(kind="redacted", person=other).count() == 1


def test_running_it_again_removes_nothing_and_records_nothing(signed):
    with later(DAYS + 1):
        redact()
        rows = LedgerEntry.objects.count()
        output = redact()

    assert "of 0 ledger entries" in output and "0 redaction event(s)" in output
    assert LedgerEntry.objects.count() == rows
    assert chain_check.verify_chain().intact


def test_without_a_retention_period_nothing_is_removed(signed, settings):
    settings.PORTAL_CLIENT_DETAILS_RETENTION_DAYS = 0
    rows = LedgerEntry.objects.count()
    with later(3650):
        assert "nothing removed" in redact()
    assert ClientDetails.objects.count() == 3
    assert LedgerEntry.objects.count() == rows


# --- What readers show -------------------------------------------------------------------------


def test_reports_exports_and_personal_data_follow_the_removal(signed, signer, revision):
    def csv_row() -> dict:
        moment = timezone.now()
        signatures = lists.signatures(
            revision.policy, timeline_for(revision.policy, moment), moment
        )
        text = b"".join(signatures_csv.acknowledgements_csv(signatures)).decode()
        header, row = list(csv.reader(io.StringIO(text)))
        return dict(zip(header, row, strict=True))

    def signed_facts() -> dict:
        history = report_history.person_history(signer, timezone.now())
        return dict(next(e for e in history.events if e.entry.kind == "signed").facts)

    def my_data() -> list[dict]:
        with (
            personal_data.build_archive(signer, "Voipkonnec") as archive,
            zipfile.ZipFile(archive) as bundle,
        ):
            return [json.loads(line) for line in bundle.read("evidence.jsonl").splitlines()]

    assert csv_row()["IP address"] == IP and csv_row()["User agent"] == USER_AGENT
    assert signed_facts()["IP address"] == IP
    line = next(line for line in my_data() if line["sequence"] == signed.entry.sequence)
    details = line["client_details"]
    client = json.loads(line["payload"])["client"]
    assert client["ip_sha256"] == sha256(details["ip_salt"] + details["ip"])

    with later(DAYS + 1):
        redact()
        history = report_history.person_history(signer, timezone.now())

    assert csv_row()["IP address"] == "removed after the retention period"
    assert csv_row()["User agent"] == "removed after the retention period"
    assert signed_facts()["IP address"] == "removed after the retention period"
    redacted = next(e for e in history.events if e.entry.kind == "redacted")
    assert dict(redacted.facts)["Retention (days)"] == str(DAYS)
    lines = my_data()
    assert all(line["client_details"] is None for line in lines)
    assert lines[-1]["kind"] == "redacted"


def test_the_audit_package_lists_the_kept_values_with_their_salts(signed, policy):
    def package() -> zipfile.ZipFile:
        target = io.BytesIO()
        moment = timezone.now()
        audit_package.write_package(
            target,
            policy=policy,
            timeline=timeline_for(policy, moment),
            moment=moment,
            exported_by="test",
        )
        return zipfile.ZipFile(target)

    rows = package().read("client-details.csv").decode().splitlines()
    assert rows[0].startswith("Ledger sequence,Receipt number,IP address,IP address salt")
    sequence, _number, ip, ip_salt, _ua, _ua_salt = rows[1].split(",", 5)
    assert int(sequence) == signed.entry.sequence and ip == IP
    assert ledger.decode(signed.entry)["client"]["ip_sha256"] == sha256(ip_salt + ip)

    with later(DAYS + 1):
        redact()
        assert package().read("client-details.csv").decode().splitlines()[1:] == []


@pytest.mark.parametrize("user_agent", ["'-starts-with-an-apostrophe", "-dash", "=HYPERLINK(1)"])
def test_the_audit_package_gives_exact_values_to_check_the_commitments(
    make_person, revision, sign, policy, user_agent
):
    person = make_person()
    acknowledgement = sign(person, revision, client=client_evidence(user_agent=user_agent))
    target, moment = io.BytesIO(), timezone.now()
    audit_package.write_package(
        target, policy=policy, timeline=timeline_for(policy, moment), moment=moment, exported_by="t"
    )
    package = zipfile.ZipFile(target)
    (line,) = [
        json.loads(text)
        for text in package.read("client-details.jsonl").decode().splitlines()
        if json.loads(text)["receipt_number"] == acknowledgement.receipt_number
    ]
    committed = ledger.decode(acknowledgement.ledger_entry)["client"]
    assert line["user_agent"] == user_agent  # exactly, where the CSV neutralises it
    assert committed["user_agent_sha256"] == sha256(line["user_agent_salt"] + line["user_agent"])
    assert committed["ip_sha256"] == sha256(line["ip_salt"] + line["ip"])
    csv_rows = list(csv.reader(io.StringIO(package.read("client-details.csv").decode())))
    (csv_row,) = [row for row in csv_rows if row[1] == acknowledgement.receipt_number]
    assert csv_row[4] == exports.neutralise(user_agent)  # "'-x" reads as "-x" there


def test_evidence_recorded_before_commitments_is_read_as_recorded():
    legacy = {"client": {"ip": IP, "user_agent": None, "request_id": "r"}}
    facts = evidence.client_facts(legacy, None)
    assert facts["ip"] == evidence.ClientFact("in_payload", IP)
    assert facts["user_agent"].state == "not_recorded"
    assert report_history.shown_client(facts["ip"]) == IP


# --- Removed, or missing with no recorded removal -------------------------------------------------

REMOVED = "removed after the retention period"
MISSING = "missing, with no recorded removal"


def shown_everywhere(signer, policy, client) -> dict[str, str]:
    """The signature's IP address as the person's history page, the signatures CSV and the audit
    package's copy of it show it."""
    moment = timezone.now()
    signatures = lists.signatures(policy, timeline_for(policy, moment), moment)
    text = b"".join(signatures_csv.acknowledgements_csv(signatures)).decode()
    (row,) = csv.DictReader(io.StringIO(text))
    target = io.BytesIO()
    audit_package.write_package(
        target, policy=policy, timeline=timeline_for(policy, moment), moment=moment, exported_by="t"
    )
    packaged = zipfile.ZipFile(target).read("acknowledgements.csv").decode()
    (packaged_row,) = csv.DictReader(io.StringIO(packaged))
    page = text_of(client.get(f"/reports/people/{signer.pk}/"))
    return {
        "csv": row["IP address"],
        "csv user agent": row["User agent"],
        "package": packaged_row["IP address"],
        "page": MISSING if MISSING in page else REMOVED if REMOVED in page else page,
    }


def test_details_deleted_without_a_recorded_removal_read_as_missing(
    signed, signer, policy, logged_in, auditor
):
    # Deleting a row is allowed (retention does it); only a "redacted" event makes it a removal.
    ClientDetails.objects.filter(ledger_entry=signed.entry).delete()
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REDACTED).exists()

    shown = shown_everywhere(signer, policy, logged_in(auditor))

    assert shown == {"csv": MISSING, "csv user agent": MISSING, "package": MISSING, "page": MISSING}
    assert not evidence.removal_recorded(signed.entry)


def test_details_removed_by_retention_read_as_removed(signed, signer, policy, logged_in, auditor):
    with later(DAYS + 1):
        redact()

    shown = shown_everywhere(signer, policy, logged_in(auditor))

    assert shown == {"csv": REMOVED, "csv user agent": REMOVED, "package": REMOVED, "page": REMOVED}
    assert evidence.removal_recorded(signed.entry)


def test_a_removal_recorded_for_another_person_does_not_cover_a_signature(
    signed, signer, policy, make_person, logged_in, auditor
):
    # The event names the right sequence, but as another person's: the rule wants both.
    ledger.append(
        kind=LedgerEntry.Kind.REDACTED,
        person=make_person("Someone Else"),
        payload={"removed": ["ip", "user_agent"], "entries": [signed.entry.sequence]},
    )
    ClientDetails.objects.filter(ledger_entry=signed.entry).delete()

    shown = shown_everywhere(signer, policy, logged_in(auditor))

    assert set(shown.values()) == {MISSING}
    assert not evidence.removal_recorded(signed.entry)


def test_an_entry_listed_by_two_removals_is_still_one_signature(
    signed, signer, policy, logged_in, auditor
):
    with later(DAYS + 1):
        redact()
    ledger.append(
        kind=LedgerEntry.Kind.REDACTED,
        person=signer,
        payload={"removed": ["ip", "user_agent"], "entries": [signed.entry.sequence]},
    )

    # One CSV row (shown_everywhere unpacks exactly one), read as removed.
    assert set(shown_everywhere(signer, policy, logged_in(auditor)).values()) == {REMOVED}


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_still_refuses_tampering_after_removal(enforced_triggers, signed):
    with later(DAYS + 1):
        redact()
    event = LedgerEntry.objects.get(kind=LedgerEntry.Kind.REDACTED)

    for statement in (
        "UPDATE acknowledgements_ledgerentry SET payload = payload WHERE id = %s",
        "DELETE FROM acknowledgements_ledgerentry WHERE id = %s",
    ):
        for entry in (signed.entry, event):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement, [entry.pk])
    assert chain_check.verify_chain().intact


@pytest.mark.postgres
def test_postgres_lets_kept_values_be_deleted_but_never_changed(enforced_triggers, signed):
    kept = ClientDetails.objects.filter(ledger_entry=signed.entry)
    with pytest.raises(DatabaseError, match="can only be deleted"), transaction.atomic():
        kept.update(ip="198.51.100.7")
    assert kept.get().ip == IP

    with later(DAYS + 1):
        redact()  # deleting is what retention does
    assert not kept.exists()
