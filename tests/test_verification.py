"""Is this receipt genuine? The verdict, the public /verify/ page and `manage.py verify_receipt`."""

import datetime as dt
import io
import logging
import os
import re
import subprocess
import sys
import zlib
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from acknowledgements.evidence import checks, ledger
from acknowledgements.models import (
    Acknowledgement,
    ClientDetails,
    LedgerCheck,
    LedgerEntry,
    Receipt,
)
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import document as receipt_document
from acknowledgements.receipts import seal as receipt_seal
from acknowledgements.receipts import untrusted_pdf, verification
from tests.conftest import set_evidence_triggers
from tests.pages import text_of

ROOT = Path(__file__).resolve().parent.parent
VERIFY_URL = "/verify/"
CHECK_NAMES = [
    "Seal intact",
    "Sealed by this portal",
    "Seal covers the whole file",
    "Matches the stored receipt",
    "Evidence matches the ledger",
    "IP address and user agent",
    "Ledger entries intact",
    "In the ledger's signed log",
]
SEALING_SETTINGS = (
    "PORTAL_SEALING_KEY",
    "PORTAL_SEALING_CERT",
    "PORTAL_SEALING_ROOT",
    "PORTAL_SEALING_KEY_PASSWORD",
    "PORTAL_SEALING_DIR",
)


@pytest.fixture
def genuine(signer, revision, sign, django_capture_on_commit_callbacks) -> SimpleNamespace:
    """One real signature whose receipt was issued, sealed and stored by the on-commit tasks."""
    with django_capture_on_commit_callbacks(execute=True):
        acknowledgement = sign(signer, revision)
    # The test's transaction never commits, so its entries are linked here as a commit would.
    ledger.link_pending()
    acknowledgement = Acknowledgement.objects.select_related("ledger_entry").get(
        pk=acknowledgement.pk
    )
    receipt = Receipt.objects.get()
    with receipt.pdf.open("rb") as stored:
        pdf = stored.read()
    return SimpleNamespace(acknowledgement=acknowledgement, receipt=receipt, pdf=pdf)


def upload(client, data: bytes, name: str = "receipt.pdf"):
    return client.post(
        VERIFY_URL, {"receipt": SimpleUploadedFile(name, data, content_type="application/pdf")}
    )


def failed_checks(verdict) -> list[str]:
    return [check.name for check in verdict.checks if not check.passed]


def signed_ranges(pdf: bytes) -> list[range]:
    start1, length1, start2, length2 = map(
        int, re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", pdf).groups()
    )
    return [range(start1, start1 + length1), range(start2, start2 + length2)]


def flip_a_signed_byte(pdf: bytes) -> bytes:
    """Change one byte in the middle of a content stream: covered by the seal, not its signature."""
    first_range = signed_ranges(pdf)[0]
    candidates = []
    for match in re.finditer(rb"stream\r?\n", pdf):
        start = match.end()
        end = pdf.find(b"endstream", start)
        header = pdf[pdf.rfind(b" obj", 0, match.start()) : match.start()]
        if any(kind in header for kind in (b"/ObjStm", b"/XRef", b"/EmbeddedFile", b"/Metadata")):
            continue
        if end > start and end in first_range:
            candidates.append((end - start, start))
    assert candidates, "no content stream found inside the sealed byte range"
    length, start = max(candidates)
    position = start + length // 2
    assert position in first_range
    tampered = bytearray(pdf)
    tampered[position] ^= 0x01
    return bytes(tampered)


def with_appended_update(pdf: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    writer.set_info(
        generic.DictionaryObject(
            {generic.NameObject("/Title"): generic.TextStringObject("Edited receipt")}
        )
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def document_of(genuine: SimpleNamespace, fingerprint: str) -> receipt_document.ReceiptDocument:
    """The fields the portal rendered into the genuine receipt."""
    entry = genuine.acknowledgement.ledger_entry
    revision = genuine.acknowledgement.revision
    return receipt_document.ReceiptDocument(
        receipt_number=genuine.acknowledgement.receipt_number,
        payload=bytes(entry.payload),
        payload_sha256=entry.payload_sha256,
        sequence=entry.sequence,
        previous_hash=entry.previous_hash,
        row_hash=entry.row_hash,
        policy_source=revision.body,
        policy_html=revision.body_html,
        verify_url="http://testserver/verify/",
        seal_fingerprint=fingerprint,
    )


def run_verify_receipt(path) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = 0
    try:
        call_command("verify_receipt", str(path), stdout=out, stderr=err)
    except SystemExit as exited:
        code = exited.code
    return code, out.getvalue(), err.getvalue()


# --- The verdict -----------------------------------------------------------------------------


def test_a_genuine_receipt_passes_every_check(genuine):
    verdict = verification.verify_receipt(genuine.pdf)

    assert verdict.genuine
    assert verdict.is_receipt
    assert verdict.receipt_number == genuine.acknowledgement.receipt_number
    assert [check.name for check in verdict.checks] == CHECK_NAMES
    assert all(check.passed for check in verdict.checks)
    for check in verdict.checks:
        assert check.detail.strip(), check.name
        # A sentence for a person, not a code: several words ending with a full stop.
        assert len(check.detail.split()) >= 4 and check.detail.endswith("."), check.detail
    details = {check.name: check.detail for check in verdict.checks}
    entry = genuine.acknowledgement.ledger_entry
    assert str(entry.sequence) in details["Evidence matches the ledger"]
    # The signature's entry and the hash-chained record of the issued file are recomputed.
    issued = LedgerEntry.objects.get(kind=LedgerEntry.Kind.RECEIPT_ISSUED)
    assert issued.sequence > entry.sequence
    assert details["Ledger entries intact"] == (
        f"The signature (entry {entry.sequence}) and the issued receipt (entry "
        f"{issued.sequence}) hash to what the ledger stores, and link to the entries before them."
    )
    # The receipt carries the first checkpoint that includes its signature.
    assert details["In the ledger's signed log"].startswith(
        f"Entry {entry.sequence} is in the ledger's signed checkpoint of {entry.sequence} entries"
    )


def test_a_changed_byte_is_not_genuine_and_names_the_broken_seal(genuine):
    verdict = verification.verify_receipt(flip_a_signed_byte(genuine.pdf))

    assert not verdict.genuine
    assert verdict.is_receipt
    assert "Seal intact" in failed_checks(verdict)
    assert "Matches the stored receipt" in failed_checks(verdict)
    seal = next(check for check in verdict.checks if check.name == "Seal intact")
    assert "changed after sealing" in seal.detail


def test_a_changed_byte_does_not_blame_another_certificate(genuine):
    tampered = flip_a_signed_byte(genuine.pdf)
    identity = receipt_authority.load_sealing_identity()
    report = receipt_seal.inspect_receipt(tampered, trust_roots_pem=[identity.root_pem])
    assert report.signer_fingerprint == identity.fingerprint  # it is this portal's certificate

    verdict = verification.verify_receipt(tampered)

    # A broken seal vouches for nothing, but the verdict must not blame another certificate.
    sealed_by = next(c for c in verdict.checks if c.name == "Sealed by this portal")
    assert not sealed_by.passed
    assert sealed_by.detail
    assert "not made by a certificate this portal trusts" not in sealed_by.detail


def test_an_appended_update_is_not_genuine(genuine):
    verdict = verification.verify_receipt(with_appended_update(genuine.pdf))

    assert not verdict.genuine
    failed = failed_checks(verdict)
    assert "Seal covers the whole file" in failed
    assert "Matches the stored receipt" in failed
    assert "Seal intact" not in failed  # the sealed revision itself is untouched
    cover = next(c for c in verdict.checks if c.name == "Seal covers the whole file")
    assert "appended" in cover.detail


@pytest.fixture
def other_portal(settings, tmp_path) -> receipt_authority.SealingIdentity:
    """The sealing identity of another portal (its own local CA); this portal's stays in use."""
    ours = {name: getattr(settings, name) for name in SEALING_SETTINGS}
    for name in SEALING_SETTINGS[:-1]:
        setattr(settings, name, "")
    settings.PORTAL_SEALING_DIR = tmp_path / "other-portal"
    receipt_authority.clear_sealing_identity_cache()
    other = receipt_authority.load_sealing_identity()
    for name, value in ours.items():  # back to this portal's identity
        setattr(settings, name, value)
    receipt_authority.clear_sealing_identity_cache()
    assert other.fingerprint != receipt_authority.load_sealing_identity().fingerprint
    return other


def pdf_with_evidence(evidence: bytes) -> bytes:
    """A minimal one-page PDF whose only attachment is the given evidence.json."""
    data = zlib.compress(evidence, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
        b"<< /Names [(evidence.json) 5 0 R] >>",
        b"<< /Type /Filespec /F (evidence.json) /UF (evidence.json) /EF << /F 6 0 R >> >>",
        b"<< /Type /EmbeddedFile /Filter /FlateDecode /Length %d >>\nstream\n%b\nendstream"
        % (len(data), data),
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%b\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_a_receipt_sealed_by_another_portal_is_not_genuine(genuine, other_portal):
    forged = receipt_seal.render_and_seal(
        document_of(genuine, other_portal.fingerprint), other_portal
    )

    verdict = verification.verify_receipt(forged)

    assert not verdict.genuine
    assert verdict.receipt_number == genuine.acknowledgement.receipt_number
    failed = failed_checks(verdict)
    assert "Sealed by this portal" in failed
    assert "Matches the stored receipt" in failed
    assert "Seal intact" not in failed


def test_a_forged_seal_with_odd_evidence_is_not_genuine(db, other_portal):
    forged = receipt_seal.seal_pdf(pdf_with_evidence(b'["VK-0000-0000-0000"]'), other_portal)

    verdict = verification.verify_receipt(forged)

    assert not verdict.genuine
    assert verdict.receipt_number is None
    assert "Sealed by this portal" in failed_checks(verdict)


def test_deeply_nested_evidence_is_a_verdict_not_a_crash(db, other_portal, client):
    # Anyone can seal a PDF with a key of their own; its attachments are hostile input.
    forged = receipt_seal.seal_pdf(pdf_with_evidence(b"[" * 100_000), other_portal)

    verdict = verification.verify_receipt(forged)

    assert not verdict.genuine
    assert verdict.receipt_number is None
    response = upload(client, forged)
    assert response.status_code == 200
    assert "Not genuine" in text_of(response)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"hello", "The file is not a PDF."),
        (b"", "The file is not a PDF."),
        (b"%PDF-1.7\n%%EOF\n", "The file is damaged or incomplete: it cannot be read as a PDF."),
    ],
    ids=["text", "empty", "header-only"],
)
def test_what_is_not_a_receipt_says_why(db, data, problem):
    verdict = verification.verify_receipt(data)

    assert not verdict.genuine
    assert not verdict.is_receipt
    assert [(c.name, c.passed, c.detail) for c in verdict.checks] == [
        ("Portal seal present", False, problem)
    ]


def test_half_a_receipt_is_not_genuine(genuine):
    verdict = verification.verify_receipt(genuine.pdf[: len(genuine.pdf) // 2])

    assert not verdict.genuine
    assert failed_checks(verdict)
    assert all(check.detail for check in verdict.checks)


def test_a_tampered_ledger_fails_the_chain_check(genuine):
    # The entry just before the signature's: verification recomputes it with the signature's
    # (an entry further back is the full check's business: verify_ledger, hourly).
    before = genuine.acknowledgement.ledger_entry.sequence - 1
    set_evidence_triggers(False)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE acknowledgements_ledgerentry SET payload = %s WHERE sequence = %s",
            [ledger.canonical_bytes({"forged": True}), before],
        )
    set_evidence_triggers(True)

    verdict = verification.verify_receipt(genuine.pdf)

    assert not verdict.genuine
    assert failed_checks(verdict) == ["Ledger entries intact"]
    chain = verdict.checks[-2]
    assert f"The ledger is damaged: sequence {before} fails" in chain.detail
    assert "payload changed" in chain.detail


def test_a_receipt_that_differs_from_the_ledgers_record_is_not_genuine(genuine):
    # The portal re-renders the receipt (which EVIDENCE.md forbids) and the stored hash is
    # changed to match it, behind the application's back. The ledger still records the original.
    identity = receipt_authority.load_sealing_identity()
    rerendered = receipt_seal.render_and_seal(document_of(genuine, identity.fingerprint), identity)
    assert rerendered != genuine.pdf
    set_evidence_triggers(False)
    Receipt.objects.filter(pk=genuine.receipt.pk).update(sha256=ledger.sha256_hex(rerendered))
    set_evidence_triggers(True)
    recorded = ledger.decode(LedgerEntry.objects.get(kind=LedgerEntry.Kind.RECEIPT_ISSUED))
    assert recorded["pdf_sha256"] == genuine.receipt.sha256 != ledger.sha256_hex(rerendered)

    verdict = verification.verify_receipt(rerendered)

    assert not verdict.genuine
    assert failed_checks(verdict) == ["Matches the stored receipt"]


def test_a_tampered_receipt_record_fails_the_chain_check(genuine):
    # The row that records the issued file comes after the signature: it is checked too.
    issued = LedgerEntry.objects.get(kind=LedgerEntry.Kind.RECEIPT_ISSUED)
    forged = ledger.canonical_bytes({**ledger.decode(issued), "timestamped": True})
    set_evidence_triggers(False)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE acknowledgements_ledgerentry SET payload = %s WHERE id = %s",
            [forged, issued.pk],
        )
    set_evidence_triggers(True)

    verdict = verification.verify_receipt(genuine.pdf)

    assert not verdict.genuine
    assert failed_checks(verdict) == ["Ledger entries intact"]
    assert f"sequence {issued.sequence} fails" in verdict.checks[-2].detail


# --- In a damaged ledger ---------------------------------------------------------------------

UNCONFIRMED = "Cannot be confirmed: the ledger is damaged"


def record_ledger_damage() -> LedgerCheck:
    """A full check of the ledger that found damage, as verify_ledger records it."""
    check = LedgerCheck.objects.create(
        intact=False,
        rows_checked=3,
        problems=["Sequence 1 fails: payload changed: its SHA-256 does not match the stored hash."],
    )
    checks.forget_latest()
    return check


def tamper_with_the_entry_before(genuine) -> None:
    before = genuine.acknowledgement.ledger_entry.sequence - 1
    set_evidence_triggers(False)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE acknowledgements_ledgerentry SET payload = %s WHERE sequence = %s",
            [ledger.canonical_bytes({"forged": True}), before],
        )
    set_evidence_triggers(True)


def test_a_receipt_failing_only_because_of_a_damaged_ledger_cannot_be_confirmed(
    genuine, client, tmp_path
):
    tamper_with_the_entry_before(genuine)
    record_ledger_damage()

    verdict = verification.verify_receipt(genuine.pdf)
    response = upload(client, genuine.pdf)

    assert not verdict.genuine and verdict.unconfirmed
    assert failed_checks(verdict) == ["Ledger entries intact"]
    text = text_of(response)
    assert UNCONFIRMED in text
    assert "Not genuine" not in text and "Genuine receipt" not in text
    assert "this receipt cannot be fully confirmed, which does not mean it is forged" in text
    # The command says the same, and still exits 1.
    path = tmp_path / "receipt.pdf"
    path.write_bytes(genuine.pdf)
    errors = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("verify_receipt", str(path), stdout=StringIO(), stderr=errors)
    assert exited.value.code == 1
    assert errors.getvalue().startswith("Cannot be confirmed, the ledger is damaged: ")


def test_without_a_recorded_damage_a_ledger_failure_is_not_genuine(genuine, client):
    # The hourly check has not run since the damage: nothing excuses the failed check yet.
    tamper_with_the_entry_before(genuine)
    LedgerCheck.objects.create(intact=True, rows_checked=3, problems=[])
    checks.forget_latest()

    text = text_of(upload(client, genuine.pdf))

    assert "Not genuine" in text and UNCONFIRMED not in text


def test_a_changed_receipt_is_not_genuine_in_a_damaged_ledger(genuine, client):
    record_ledger_damage()

    verdict = verification.verify_receipt(flip_a_signed_byte(genuine.pdf))
    text = text_of(upload(client, flip_a_signed_byte(genuine.pdf)))

    assert "Seal intact" in failed_checks(verdict)
    assert not verdict.unconfirmed
    assert "Not genuine" in text and UNCONFIRMED not in text


def test_a_forged_seal_is_not_genuine_in_a_damaged_ledger(genuine, other_portal, client):
    tamper_with_the_entry_before(genuine)
    record_ledger_damage()
    forged = receipt_seal.render_and_seal(
        document_of(genuine, other_portal.fingerprint), other_portal
    )

    verdict = verification.verify_receipt(forged)
    text = text_of(upload(client, forged))

    assert "Sealed by this portal" in failed_checks(verdict)
    assert not verdict.unconfirmed
    assert "Not genuine" in text and UNCONFIRMED not in text


def test_an_appended_update_is_not_genuine_in_a_damaged_ledger(genuine):
    record_ledger_damage()

    verdict = verification.verify_receipt(with_appended_update(genuine.pdf))

    assert "Seal covers the whole file" in failed_checks(verdict)
    assert not verdict.genuine and not verdict.unconfirmed


def test_client_details_deleted_without_a_recorded_removal_fail_their_check(genuine, client):
    # Client details may be deleted (retention does it), but only a "redacted" ledger event
    # says the removal was the retention period's.
    ClientDetails.objects.filter(ledger_entry=genuine.acknowledgement.ledger_entry).delete()
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REDACTED).exists()

    verdict = verification.verify_receipt(genuine.pdf)

    assert not verdict.genuine
    assert failed_checks(verdict) == ["IP address and user agent"]
    check = next(c for c in verdict.checks if c.name == "IP address and user agent")
    assert check.detail.startswith("Missing, with no recorded removal")
    assert "Removed after the retention period" not in check.detail
    page = text_of(upload(client, genuine.pdf))
    assert "Missing, with no recorded removal" in page


def test_a_removal_recorded_for_another_signature_does_not_cover_this_one(
    genuine, make_person, sign
):
    other = make_person("Other Person")
    other_entry = sign(other, genuine.acknowledgement.revision).ledger_entry
    ledger.link_pending()
    other_entry.refresh_from_db()
    ledger.append(
        kind=LedgerEntry.Kind.REDACTED,
        person=other,
        payload={"removed": ["ip", "user_agent"], "entries": [other_entry.sequence]},
    )
    ClientDetails.objects.filter(
        ledger_entry__in=[other_entry, genuine.acknowledgement.ledger_entry]
    ).delete()

    verdict = verification.verify_receipt(genuine.pdf)

    assert failed_checks(verdict) == ["IP address and user agent"]


# --- The /verify/ page -----------------------------------------------------------------------


def test_the_page_shows_the_upload_form(client):
    response = client.get(VERIFY_URL)

    text = response.content.decode()
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in text
    assert 'type="file"' in text and 'name="receipt"' in text
    assert "Genuine receipt" not in text and "Not genuine" not in text


def test_the_page_confirms_a_genuine_receipt_and_changes_nothing(genuine, client):
    rows = (LedgerEntry.objects.count(), Receipt.objects.count())
    verdict = verification.verify_receipt(genuine.pdf)

    response = upload(client, genuine.pdf)

    text = text_of(response)
    assert response.status_code == 200
    assert "Genuine receipt" in text
    assert "Not genuine" not in text and "Not a receipt" not in text
    assert genuine.acknowledgement.receipt_number in text
    for check in verdict.checks:
        assert f"Passed {check.name}: {check.detail}" in text
    assert "Failed" not in text
    assert (LedgerEntry.objects.count(), Receipt.objects.count()) == rows


def test_the_page_names_the_failing_check_of_a_changed_receipt(genuine, client):
    rows = LedgerEntry.objects.count()

    response = upload(client, flip_a_signed_byte(genuine.pdf))

    text = text_of(response)
    assert response.status_code == 200
    assert "Not genuine" in text
    assert "Genuine receipt" not in text
    assert "Failed Seal intact: The seal does not match the file's contents" in text
    assert LedgerEntry.objects.count() == rows


def test_the_page_reports_an_appended_update(genuine, client):
    response = upload(client, with_appended_update(genuine.pdf))

    text = text_of(response)
    assert response.status_code == 200
    assert "Not genuine" in text
    assert "Failed Seal covers the whole file: Content was appended" in text


@pytest.mark.parametrize(
    ("make", "verdict"),
    [
        (lambda pdf: b"hello", "Not a receipt"),
        (lambda pdf: pdf[: len(pdf) // 2], "Not"),
        (lambda pdf: pdf + b"\n% appended\n", "Not genuine"),
    ],
    ids=["text", "truncated", "trailing-bytes"],
)
def test_the_page_explains_a_bad_file_without_an_error(genuine, client, make, verdict):
    response = upload(client, make(genuine.pdf))

    text = text_of(response)
    assert response.status_code == 200
    assert f"✗ {verdict}" in text
    assert "Genuine receipt" not in text
    assert "Failed" in text  # each failing check is listed with its reason


def test_the_page_refuses_an_empty_file_with_a_reason(db, client):
    response = upload(client, b"")

    assert response.status_code == 400
    assert "The submitted file is empty." in text_of(response)
    assert "Genuine receipt" not in text_of(response)


def test_the_page_refuses_an_oversized_file(db, client, settings):
    settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES = 1000

    response = upload(client, b"%PDF-1.7\n" + bytes(2000))

    text = text_of(response)
    assert response.status_code == 400
    assert "This file is larger than any receipt" in text
    assert "Genuine receipt" not in text and "Not genuine" not in text


def test_the_oversized_message_states_the_real_limit(db, client, settings):
    settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES = 1000

    text = text_of(upload(client, b"%PDF-1.7\n" + bytes(2000)))

    assert "0 MB" not in text
    assert "(1000 bytes at most)" in text


def test_a_post_without_a_file_is_a_field_error(db, client):
    response = client.post(VERIFY_URL, {})

    text = text_of(response)
    assert response.status_code == 400
    assert "This field is required." in text
    assert "Genuine receipt" not in text


# --- manage.py verify_receipt ----------------------------------------------------------------


def test_the_command_confirms_a_genuine_receipt(genuine, tmp_path):
    path = tmp_path / "receipt.pdf"
    path.write_bytes(genuine.pdf)

    code, out, err = run_verify_receipt(path)

    assert code == 0
    lines = out.splitlines()
    for name in CHECK_NAMES:
        assert any(line.startswith(f"PASS  {name}: ") for line in lines), name
    assert "FAIL" not in out
    assert f"Genuine receipt {genuine.acknowledgement.receipt_number}." in out
    assert err == ""


def test_the_command_fails_a_tampered_receipt(genuine, tmp_path):
    path = tmp_path / "receipt.pdf"
    path.write_bytes(flip_a_signed_byte(genuine.pdf))

    code, out, err = run_verify_receipt(path)

    assert code == 1
    assert "FAIL  Seal intact: " in out
    assert "Genuine receipt" not in out
    assert err == (
        "Not genuine: The seal does not match the file's contents: it was changed after sealing.\n"
    )


def test_the_command_says_when_a_file_is_not_a_receipt(db, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello")

    code, out, err = run_verify_receipt(path)

    assert code == 1
    assert "FAIL  Portal seal present: The file is not a PDF." in out
    assert err == "Not genuine: The file is not a PDF.\n"


def test_the_command_refuses_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("verify_receipt", str(tmp_path / "missing.pdf"))


def test_the_command_refuses_a_folder(db, tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*: Is a directory\."):
        call_command("verify_receipt", str(tmp_path))


def with_appended_revision(pdf: bytes) -> bytes:
    """A second revision written by hand after the seal: a new object, its cross-reference
    section and a second %%EOF, as any PDF editor may append."""
    trailer = PdfFileReader(io.BytesIO(pdf)).trailer
    size = int(trailer["/Size"])
    root = trailer.raw_get("/Root")
    previous = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    out = bytearray(pdf if pdf.endswith(b"\n") else pdf + b"\n")
    offset = len(out)
    out += b"%d 0 obj\n<< /Title (Edited) >>\nendobj\n" % size
    xref = len(out)
    out += b"xref\n%d 1\n%010d 00000 n \n" % (size, offset)
    out += b"trailer\n<< /Size %d /Root %d %d R /Info %d 0 R /Prev %d >>\n" % (
        size + 1,
        root.idnum,
        root.generation,
        size,
        previous,
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def with_a_broken_xref(pdf: bytes) -> bytes:
    """The last startxref points past the end of the file."""
    end = pdf.rindex(b"startxref")
    return pdf[:end] + b"startxref\n%d\n%%%%EOF\n" % (len(pdf) * 2)


def with_a_mangled_xref(pdf: bytes) -> bytes:
    """The last startxref is not a number."""
    end = pdf.rindex(b"startxref")
    return pdf[:end] + b"startxref\nendobj\n%%EOF\n"


APPENDED = "Not genuine: Content was appended to the file after it was sealed."
DAMAGED = "Not genuine: The file is damaged or incomplete: it cannot be read as a PDF."
DAMAGED_FILES = {
    "update-by-pyhanko": (with_appended_update, APPENDED),
    "update-by-hand": (with_appended_revision, APPENDED),
    "bytes-after-the-end": (lambda pdf: pdf + b"appended after the seal\n", APPENDED),
    "truncated-in-half": (lambda pdf: pdf[: len(pdf) // 2], DAMAGED),
    "truncated-end": (lambda pdf: pdf[:-8], DAMAGED),
    "xref-out-of-range": (with_a_broken_xref, DAMAGED),
    "xref-not-a-number": (with_a_mangled_xref, DAMAGED),
    "not-a-pdf": (lambda pdf: b"hello, this is text", "Not genuine: The file is not a PDF."),
    "empty": (lambda pdf: b"", "Not genuine: The file is not a PDF."),
}


@pytest.mark.parametrize(("damage", "verdict"), DAMAGED_FILES.values(), ids=DAMAGED_FILES)
def test_the_command_gives_one_verdict_for_a_damaged_file(
    genuine, tmp_path, caplog, damage, verdict
):
    path = tmp_path / "receipt.pdf"
    path.write_bytes(damage(genuine.pdf))

    with caplog.at_level(logging.INFO):
        code, out, err = run_verify_receipt(path)

    assert code == 1
    assert err == verdict + "\n"
    assert "Genuine receipt" not in out
    assert "Traceback" not in out + err
    # Nothing the command's run logs (to the console, in production) carries a traceback.
    assert not [record.getMessage() for record in caplog.records if record.exc_info]


@pytest.fixture(scope="module")
def empty_portal_database(tmp_path_factory) -> str:
    """A migrated SQLite database of its own, for `manage.py` run in another process."""
    url = f"sqlite:///{tmp_path_factory.mktemp('portal') / 'db.sqlite3'}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


@pytest.mark.parametrize(
    "case", ["update-by-pyhanko", "update-by-hand", "truncated-in-half", "xref-not-a-number"]
)
def test_manage_py_verify_receipt_prints_a_verdict_not_a_traceback(
    genuine, tmp_path, settings, empty_portal_database, case
):
    damage, verdict = DAMAGED_FILES[case]
    path = tmp_path / "receipt.pdf"
    path.write_bytes(damage(genuine.pdf))

    # The same sealing root as the test's portal, so that the seal is this portal's.
    result = subprocess.run(
        [sys.executable, "manage.py", "verify_receipt", str(path)],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": empty_portal_database,
            "PORTAL_SEALING_DIR": str(settings.PORTAL_SEALING_DIR),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines()[-1] == verdict
    assert "Genuine receipt" not in result.stdout


# --- Whatever the bytes ----------------------------------------------------------------------

FUZZ = hypothesis_settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_raise(db, data):
    verdict = verification.verify_receipt(data)

    assert not verdict.genuine
    assert verdict.checks and all(check.detail for check in verdict.checks)


@FUZZ
@given(
    start=st.floats(min_value=0, max_value=1),
    stop=st.floats(min_value=0, max_value=1),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    mask=st.integers(min_value=1, max_value=255),
    mutate=st.booleans(),
)
def test_cut_or_mutated_receipts_never_raise(genuine, start, stop, where, mask, mutate):
    pdf = genuine.pdf
    if mutate:
        changed = bytearray(pdf)
        changed[int(where * len(pdf))] ^= mask
        data = bytes(changed)
    else:
        low, high = sorted((int(start * len(pdf)), int(stop * len(pdf))))
        data = pdf[low:high]
        if data == pdf:
            data = pdf[1:]

    verdict = verification.verify_receipt(data)

    assert not verdict.genuine
    assert verdict.checks and all(check.detail for check in verdict.checks)


# --- Heavy files: a bounded amount of work, whatever the bytes ---------------------------------

TOO_COMPLEX = "The PDF is far more complex than any receipt; it was not checked further."


def with_appended_annotation(pdf: bytes) -> bytes:
    """A note added on the first page, as a PDF editor saves it: an incremental update."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    note = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/Text"),
            generic.NameObject("/Rect"): generic.ArrayObject(
                [generic.NumberObject(n) for n in (10, 10, 50, 50)]
            ),
            generic.NameObject("/Contents"): generic.TextStringObject("Approved"),
        }
    )
    page[generic.NameObject("/Annots")] = generic.ArrayObject([writer.add_object(note)])
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def with_appended_pages(pdf: bytes, count: int) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    for _ in range(count):
        writer.insert_page(
            generic.DictionaryObject(
                {
                    generic.NameObject("/Type"): generic.NameObject("/Page"),
                    generic.NameObject("/MediaBox"): generic.ArrayObject(
                        [generic.NumberObject(n) for n in (0, 0, 595, 842)]
                    ),
                }
            )
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    "append",
    [with_appended_annotation, lambda pdf: with_appended_pages(pdf, 200)],
    ids=["annotation", "200-pages"],
)
def test_a_receipt_edited_after_sealing_is_not_genuine(genuine, append):
    verdict = verification.verify_receipt(append(genuine.pdf))

    assert not verdict.genuine
    assert verdict.is_receipt
    failed = failed_checks(verdict)
    assert "Seal covers the whole file" in failed
    assert "Matches the stored receipt" in failed
    assert "Seal intact" not in failed and "Sealed by this portal" not in failed


def plain_pdf(objects: list[bytes], *, trailer: bytes = b"") -> bytes:
    """A PDF of the given objects (1 is the catalog) with a classic cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%b\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %b>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer,
        xref,
    )
    return bytes(out)


def many_pages(size: int) -> bytes:
    """An ordinary document of about `size` bytes: pages of text, no seal."""
    text = b"BT /F1 9 Tf 20 800 Td (" + b"Lorem ipsum dolor sit amet. " * 60 + b") Tj ET"
    pages = max(1, size // (len(text) + 150))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for _ in range(pages):
        kids.append(b"%d 0 R" % (len(objects) + 1))
        objects.append(b"<< /Type /Page /Parent 2 0 R /Contents %d 0 R >>" % (len(objects) + 2))
        objects.append(b"<< /Length %d >>\nstream\n%b\nendstream" % (len(text), text))
    objects[1] = b"<< /Type /Pages /Count %d /Kids [%b] >>" % (pages, b" ".join(kids))
    return plain_pdf(objects)


def test_a_large_document_is_not_a_receipt(db, settings):
    document = many_pages(4 * 1024 * 1024)
    assert len(document) < settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES

    verdict = verification.verify_receipt(document)

    assert not verdict.is_receipt
    assert [(c.name, c.passed, c.detail) for c in verdict.checks] == [
        ("Portal seal present", False, "The PDF has no portal seal.")
    ]
    larger = verification.verify_receipt(many_pages(20 * 1024 * 1024))
    assert not larger.is_receipt
    assert (
        larger.checks[0].detail == "The file is larger than 5,242,880 bytes; it is not a receipt."
    )


def xref_stream_pdf(entries: int, widths: bytes = b"[1 2 1]") -> bytes:
    """Two objects, and a cross-reference stream declaring `entries` entries (zeros, compressed
    to almost nothing), or with widths of zero no data at all."""
    out = bytearray(b"%PDF-1.7\n")
    catalog = len(out)
    out += b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    pages = len(out)
    out += b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    xref = len(out)
    rows = b""
    if widths == b"[1 2 1]":
        rows = b"\x00" * 4 + b"".join(
            b"\x01" + o.to_bytes(2, "big") + b"\x00" for o in (catalog, pages, xref)
        )
        rows = zlib.compress(rows + b"\x00" * 4 * (entries - 4), 9)
    out += b"3 0 obj\n<< /Type /XRef /Size %d /W %b /Root 1 0 R%b /Length %d >>\nstream\n" % (
        entries,
        widths,
        b" /Filter /FlateDecode" if rows else b"",
        len(rows),
    )
    out += rows + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def form_in_an_object_stream(fields: int) -> bytes:
    """A form whose fields all sit in one object stream (pyHanko rereads its table per object)."""
    writer = PdfFileWriter(stream_xrefs=True)
    stream = writer.prepare_object_stream()
    refs = [
        writer.add_object(
            generic.DictionaryObject({generic.NameObject("/T"): generic.TextStringObject(f"f{n}")}),
            obj_stream=stream,
        )
        for n in range(fields)
    ]
    writer.root[generic.NameObject("/AcroForm")] = generic.DictionaryObject(
        {generic.NameObject("/Fields"): generic.ArrayObject(refs)}
    )
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def attachment_encoded_with(filters: bytes, data: bytes) -> bytes:
    return plain_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 3 0 R >> >>",
            b"<< /Type /Pages /Kids [] /Count 0 >>",
            b"<< /Names [(evidence.json) 4 0 R] >>",
            b"<< /Type /Filespec /F (evidence.json) /EF << /F 5 0 R >> >>",
            b"<< /Type /EmbeddedFile %b /Length %d >>\nstream\n%b\nendstream"
            % (filters, len(data), data),
        ]
    )


@pytest.mark.parametrize(
    "make",
    [
        # Each took pyHanko 20 to 35 seconds before reading was bounded.
        lambda: plain_pdf([b"<< /Type /Catalog /Junk [" + b"0 " * 2_400_000 + b"] >>"]),
        lambda: plain_pdf([b"<< /Type /Catalog /Junk <" + b"0a" * 2_400_000 + b"> >>"]),
        lambda: xref_stream_pdf(1_000_000),
        lambda: xref_stream_pdf(10_000_000, widths=b"[0 0 0]"),
        lambda: form_in_an_object_stream(50_000),
        # Decoded by pure Python at one to two seconds a megabyte: never used by receipts.
        lambda: attachment_encoded_with(b"/Filter /ASCII85Decode", b"z" * 1_000_000 + b"~>"),
    ],
    ids=["array", "hex-string", "xref-entries", "xref-no-data", "object-stream", "ascii85"],
)
def test_a_pdf_too_complex_for_a_receipt_is_not_read_to_the_end(db, client, make):
    data = make()

    verdict = verification.verify_receipt(data)

    assert not verdict.is_receipt
    assert [(c.name, c.passed, c.detail) for c in verdict.checks] == [
        ("Portal seal present", False, TOO_COMPLEX)
    ]
    if len(data) <= 2 * 1024 * 1024:
        page = text_of(upload(client, data))
        assert "✗ Not a receipt" in page and TOO_COMPLEX in page


def tangled_signer(names: int) -> signers.SimpleSigner:
    """A signer whose certificate comes with `names` certificates all named alike, each issued
    by the next: every one is a candidate issuer of every other."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tangle")])
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(names)]
    now = dt.datetime.now(dt.UTC)

    def certificate(subject, public_key, issuer_key, *, ca: bool):
        built = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256())
        )
        return asn1_x509.Certificate.load(built.public_bytes(serialization.Encoding.DER))

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Signer")])
    return signers.SimpleSigner(
        signing_cert=certificate(leaf_name, leaf_key.public_key(), keys[0], ca=False),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            leaf_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
        cert_registry=SimpleCertificateStore.from_certs(
            [
                certificate(name, keys[n].public_key(), keys[(n + 1) % names], ca=True)
                for n in range(names)
            ]
        ),
    )


def test_a_seal_whose_certificates_tangle_is_not_checked(db):
    # Eight certificates named alike took pyhanko-certvalidator 35 seconds to try every path.
    seal_metadata = signers.PdfSignatureMetadata(field_name=receipt_seal.SEAL_FIELD_NAME)
    sealed = signers.PdfSigner(seal_metadata, signer=tangled_signer(8)).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf_with_evidence(b"{}")))
    )

    verdict = verification.verify_receipt(sealed.getvalue())

    assert not verdict.is_receipt
    assert verdict.checks[0].detail == TOO_COMPLEX


def test_a_receipt_of_a_long_policy_is_checked_in_full(
    signer, policy, publish, sign, django_capture_on_commit_callbacks
):
    # About 40 pages of policy (60 KB): the reading budget leaves room for several times more.
    demo = Path(__file__).resolve().parent.parent / "acknowledgements" / "demo"
    body = "\n\n".join(path.read_text() for path in sorted(demo.glob("*.md"))) * 2
    revision = publish(policy, "7.0", body=body)
    with django_capture_on_commit_callbacks(execute=True):
        sign(signer, revision)
    ledger.link_pending()
    with Receipt.objects.get().pdf.open("rb") as stored:
        pdf = stored.read()

    verdict = verification.verify_receipt(pdf)

    assert verdict.genuine, [(c.name, c.detail) for c in verdict.checks if not c.passed]
    identity = receipt_authority.load_sealing_identity()
    report = receipt_seal.inspect_receipt(pdf, trust_roots_pem=[identity.root_pem])
    assert report.steps < untrusted_pdf.UPLOAD_STEPS / 4
