"""Receipts as an auditor checks them: what the PDF says, its seal, its attachments, its format."""

import contextlib
import hashlib
import io
import json
import logging
import re
import shutil
import socket
import stat
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pyhanko.keys import load_private_key_from_pemder_data
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps import DummyTimeStamper

from acknowledgements.evidence.payload import NOT_RECORDED
from acknowledgements.receipts.authority import clear_sealing_identity_cache, load_sealing_identity
from acknowledgements.receipts.document import ReceiptDocument, render_receipt
from acknowledgements.receipts.seal import inspect_receipt, seal_pdf
from acknowledgements.receipts.seal import render_and_seal as issue_receipt

POLICY_SOURCE = (
    "# Acceptable Use Policy\n\n"
    "1. Purpose\n\nUse Voipkonnec's systems lawfully.\n\n"
    "2. Scope\n\nEveryone who uses them.\n"
)
POLICY_HTML = (
    "<h1>Acceptable Use Policy</h1><ol><li>Purpose</li></ol>"
    "<p>Use Voipkonnec's systems lawfully.</p>"
    '<ol start="2"><li>Scope</li></ol><p>Everyone who uses them.</p>'
)
ATTESTATION = "I have read, understood and agree to comply with this Acceptable Use Policy."
TEXT_SHA256 = hashlib.sha256(POLICY_SOURCE.encode()).hexdigest()
NO_LOCAL_CA_SETTINGS = {
    "PORTAL_SEALING_KEY": "",
    "PORTAL_SEALING_CERT": "",
    "PORTAL_SEALING_ROOT": "",
    "PORTAL_SEALING_KEY_PASSWORD": "",
    "PORTAL_TSA_URL": "",
}


def evidence(**changes: object) -> dict:
    payload = {
        "schema": 1,
        "event": "signed",
        "receipt_number": "VK-7F3K-9Q2M-XD4P",
        "person": {"id": 12, "email": "employee@example.com", "name": "Demo Employee"},
        "authentication": {
            "method": "password",
            "authenticated_at": "2026-11-28T13:40:02Z",
            "mfa": False,
        },
        "session_key_sha256": hashlib.sha256(b"session").hexdigest(),
        "policy": {
            "slug": "acceptable-use-policy",
            "name": "Acceptable Use Policy",
            "version": "1.1",
            "revision_id": 2,
            "effective_at": "2026-11-01T00:00:00Z",
            "material": False,
        },
        "text": {
            "sha256": TEXT_SHA256,
            "language": "en",
            "authoritative_language": "en",
            "hashed": "Markdown source, UTF-8, LF line endings",
        },
        "attestation": {
            "version": "1",
            "text": ATTESTATION,
            "sha256": hashlib.sha256(ATTESTATION.encode()).hexdigest(),
        },
        "consent": {
            "version": "1",
            "sha256": hashlib.sha256(b"consent").hexdigest(),
            "accepted_at": "2026-11-28T13:41:00Z",
        },
        "typed_name": "Demo Employee",
        "checkbox_ticked": True,
        "first_viewed_at": "2026-11-28T13:40:30Z",
        "signed_at": "2026-11-28T13:41:05Z",
        "browser_time_zone": "Europe/Paris",
        "client": {
            "ip": "127.0.0.1",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            "request_id": "5d0c1c8e-4a47-4b0e-9a55-1e9f6c1f3b2a",
        },
        "company": "Voipkonnec",
    }
    payload.update(changes)
    return payload


def receipt_document(payload: dict, **changes: object) -> ReceiptDocument:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    document = ReceiptDocument(
        receipt_number="VK-7F3K-9Q2M-XD4P",
        payload=body,
        payload_sha256=hashlib.sha256(body).hexdigest(),
        sequence=42,
        previous_hash=hashlib.sha256(b"previous").hexdigest(),
        row_hash=hashlib.sha256(b"row").hexdigest(),
        policy_source=POLICY_SOURCE,
        policy_html=POLICY_HTML,
        verify_url="https://policies.example.com/verify/",
    )
    return replace(document, **changes)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """The PDF's text as pdftotext extracts it, whitespace collapsed."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True
    )
    return " ".join(result.stdout.decode().split())


def page_text(pdf: bytes, tmp_path: Path, page: int) -> str:
    """One page's text as pdftotext extracts it, in reading order, whitespace collapsed."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-f", str(page), "-l", str(page), str(path), "-"],
        capture_output=True,
        check=True,
    )
    return " ".join(result.stdout.decode().split())


def without_spaces(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One receipt issued by a fresh local CA, shared by the read-only tests below."""
    with override_settings(
        PORTAL_SEALING_DIR=tmp_path_factory.mktemp("sealing"), **NO_LOCAL_CA_SETTINGS
    ):
        identity = load_sealing_identity()
        document = receipt_document(evidence(), seal_fingerprint=identity.fingerprint)
        pdf = issue_receipt(document, identity)
    return SimpleNamespace(identity=identity, document=document, pdf=pdf)


@pytest.fixture
def local_ca(settings, tmp_path: Path) -> Path:
    """Point the portal at an empty sealing directory (a local CA is made on first use)."""
    for name, value in NO_LOCAL_CA_SETTINGS.items():
        setattr(settings, name, value)
    settings.PORTAL_SEALING_DIR = tmp_path / "sealing"
    return settings.PORTAL_SEALING_DIR


# --- The sealed receipt --------------------------------------------------------------------


def test_receipt_prints_the_evidence(sealed: SimpleNamespace, tmp_path: Path) -> None:
    text = pdf_text(sealed.pdf, tmp_path)

    assert "Acknowledgement receipt" in text
    assert "VK-7F3K-9Q2M-XD4P" in text
    assert "Demo Employee" in text
    assert "employee@example.com" in text
    assert ATTESTATION in text
    assert (
        "Demo Employee signed Acceptable Use Policy, version 1.1, on 28 November 2026 at "
        "14:41:05 (Europe/Paris, UTC+01:00), 13:41:05 UTC."
    ) in text
    assert "Signed at 2026-11-28T13:41:05Z" in text
    assert "Browser time zone Europe/Paris" in text
    for digest in (
        TEXT_SHA256,
        sealed.document.payload_sha256,
        sealed.document.previous_hash,
        sealed.document.row_hash,
        sealed.identity.fingerprint,
    ):
        assert digest in without_spaces(text)
    assert "python manage.py verify_receipt receipt.pdf" in text
    assert "pdfdetach -saveall receipt.pdf" in text
    assert "https://policies.example.com/verify/" in without_spaces(text)
    assert "Receipt VK-7F3K-9Q2M-XD4P · page 1 of" in text
    # The appendix keeps the policy's own numbering.
    assert "2. Scope" in text


def test_sealed_receipt_verifies_and_carries_its_evidence(sealed: SimpleNamespace) -> None:
    report = inspect_receipt(sealed.pdf, trust_roots_pem=[sealed.identity.root_pem])

    assert report.problem == ""
    assert report.is_pdf and report.sealed and report.intact and report.trusted
    assert report.covers_whole_file
    assert report.signer_fingerprint == sealed.identity.fingerprint
    assert report.timestamped is False
    assert report.evidence_json == sealed.document.payload
    assert hashlib.sha256(report.evidence_json).hexdigest() == sealed.document.payload_sha256
    assert report.policy_source == POLICY_SOURCE


def test_receipt_is_pdf_a_3b_and_stays_pdf_1_7_after_sealing(sealed: SimpleNamespace) -> None:
    assert sealed.pdf.startswith(b"%PDF-1.7\n")
    reader = PdfFileReader(io.BytesIO(sealed.pdf))
    xmp = reader.root["/Metadata"].data.decode()
    assert re.search(r'pdfaid:part(="3"|>3<)', xmp)
    assert re.search(r'pdfaid:conformance(="B"|>B<)', xmp)
    # PDF/A-3 is based on PDF 1.7; a catalog /Version of 2.0 would contradict it.
    assert "/Version" not in reader.root
    # PDF/A wants the Info dictionary and the XMP to agree.
    assert f'pdf:Producer="{reader.trailer["/Info"]["/Producer"]}"' in xmp
    files = [reader.root["/AF"][index] for index in range(len(reader.root["/AF"]))]
    relationships = {str(spec["/UF"]): str(spec["/AFRelationship"]) for spec in files}
    assert relationships == {"evidence.json": "/Data", "policy-1.1.md": "/Source"}


def test_poppler_sees_a_valid_seal_over_the_whole_file(
    sealed: SimpleNamespace, tmp_path: Path
) -> None:
    if shutil.which("pdfsig") is None:
        pytest.skip("pdfsig (poppler-utils) is not installed")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(sealed.pdf)
    output = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout

    assert "Signature Field Name: PortalSeal" in output
    assert "Signature is Valid" in output
    assert "Total document signed" in output


def test_receipt_says_where_to_download_its_root_and_prints_its_fingerprint(
    sealed: SimpleNamespace, tmp_path: Path
) -> None:
    text = pdf_text(sealed.pdf, tmp_path)
    root = x509.load_pem_x509_certificate(sealed.identity.root_pem)
    digest = root.fingerprint(hashes.SHA256()).hex().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    assert "http://testserver/verify/sealing-root.pem" in without_spaces(text)
    # In the integrity table and beside the address; a line may break inside the first.
    assert without_spaces(text).count(fingerprint) == 2
    assert "audit package" not in text
    # The offline recipe trusts the downloaded root before checking the seal, as /verify/'s.
    assert 'certutil -A -d sql:nssdb -n portal-root -t ",C," -a -i sealing-root.pem' in text
    assert "pdfsig -nssdir sql:nssdb receipt.pdf" in text


def test_an_unsealed_rendering_names_no_root(tmp_path: Path) -> None:
    text = pdf_text(render_receipt(receipt_document(evidence())), tmp_path)

    assert f"Sealing root certificate SHA-256 {NOT_RECORDED}" in text


# --- Tampering -----------------------------------------------------------------------------


def signed_ranges(pdf: bytes) -> list[range]:
    start1, length1, start2, length2 = map(
        int, re.search(rb"/ByteRange \[\s*(\d+) (\d+) (\d+) (\d+)", pdf).groups()
    )
    return [range(start1, start1 + length1), range(start2, start2 + length2)]


def test_one_changed_byte_breaks_the_seal(sealed: SimpleNamespace) -> None:
    position = sealed.pdf.index(b"stream", 2000) + 40  # inside a page's compressed content
    tampered = bytearray(sealed.pdf)
    tampered[position] ^= 0x01

    report = inspect_receipt(bytes(tampered), trust_roots_pem=[sealed.identity.root_pem])

    assert report.sealed and not report.intact
    assert report.problem == (
        "The seal does not match the file's contents: it was changed after sealing."
    )


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(where=st.floats(min_value=0, max_value=1, exclude_max=True), mask=st.integers(1, 255))
def test_no_changed_signed_byte_goes_unnoticed(
    sealed: SimpleNamespace, where: float, mask: int
) -> None:
    # Only the signed ranges: the gap between them holds the signature's own zero padding,
    # which no seal can cover (the ledger's SHA-256 of the stored file covers it).
    positions = [position for span in signed_ranges(sealed.pdf) for position in span]
    tampered = bytearray(sealed.pdf)
    tampered[positions[int(where * len(positions))]] ^= mask

    report = inspect_receipt(bytes(tampered), trust_roots_pem=[sealed.identity.root_pem])

    assert report.problem
    assert not (report.intact and report.covers_whole_file and report.trusted)


def test_an_appended_update_is_reported(sealed: SimpleNamespace) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed.pdf))
    writer.set_info(
        generic.DictionaryObject(
            {generic.NameObject("/Title"): generic.TextStringObject("Edited receipt")}
        )
    )
    updated = io.BytesIO()
    writer.write(updated)

    report = inspect_receipt(updated.getvalue(), trust_roots_pem=[sealed.identity.root_pem])

    assert report.sealed and report.intact
    assert report.covers_whole_file is False
    assert report.problem == "Content was appended after the seal."


def test_bytes_after_the_end_of_file_are_reported(sealed: SimpleNamespace) -> None:
    report = inspect_receipt(
        sealed.pdf + b"\n% appended\n", trust_roots_pem=[sealed.identity.root_pem]
    )

    assert report.problem
    assert report.covers_whole_file is False


def test_a_seal_by_another_certificate_is_not_trusted(
    sealed: SimpleNamespace, local_ca: Path
) -> None:
    stranger = load_sealing_identity()  # a different local CA, in another directory
    assert stranger.fingerprint != sealed.identity.fingerprint
    forged = issue_receipt(sealed.document, stranger)

    report = inspect_receipt(forged, trust_roots_pem=[sealed.identity.root_pem])

    assert report.sealed and report.intact and report.covers_whole_file
    assert report.trusted is False
    assert report.signer_fingerprint == stranger.fingerprint
    assert report.problem == "The seal was made by a certificate this portal does not trust."


def test_an_unsealed_receipt_has_no_seal(sealed: SimpleNamespace) -> None:
    report = inspect_receipt(
        render_receipt(sealed.document), trust_roots_pem=[sealed.identity.root_pem]
    )

    assert report.is_pdf and not report.sealed
    assert report.problem == "The PDF has no portal seal."
    assert report.evidence_json == sealed.document.payload


def deflate_bomb_pdf() -> bytes:
    """A tiny PDF whose embedded evidence.json inflates to 64 MiB through two Flate layers."""
    bomb = zlib.compress(zlib.compress(bytes(64 * 1024 * 1024), 9), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
        b"<< /Names [(evidence.json) 5 0 R] >>",
        b"<< /Type /Filespec /F (evidence.json) /UF (evidence.json) /EF << /F 6 0 R >> >>",
        b"<< /Type /EmbeddedFile /Filter [/FlateDecode /FlateDecode] /Length %d >>\n"
        b"stream\n%b\nendstream" % (len(bomb), bomb),
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


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: b"", id="empty"),
        pytest.param(lambda: b"hello, world", id="text"),
        pytest.param(lambda: bytes(range(256)) * 40, id="binary"),
        pytest.param(lambda: b"%PDF-1.7\n", id="header-only"),
        pytest.param(lambda: b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R", id="truncated"),
        pytest.param(deflate_bomb_pdf, id="deflate-bomb"),
    ],
)
def test_anything_that_is_not_a_receipt_gets_a_verdict_not_an_exception(
    make: Callable[[], bytes], sealed: SimpleNamespace
) -> None:
    report = inspect_receipt(make(), trust_roots_pem=[sealed.identity.root_pem])

    assert report.problem
    assert not report.sealed
    assert report.evidence_json is None


def test_truncated_receipts_get_a_verdict(sealed: SimpleNamespace) -> None:
    for size in (len(sealed.pdf) // 2, len(sealed.pdf) - 10):
        report = inspect_receipt(sealed.pdf[:size], trust_roots_pem=[sealed.identity.root_pem])
        assert report.problem


def test_unreadable_trust_roots_give_a_verdict(sealed: SimpleNamespace) -> None:
    report = inspect_receipt(sealed.pdf, trust_roots_pem=[b"-----BEGIN CERTIFICATE-----\nxx"])

    assert report.problem == "The portal's trust roots cannot be read: nothing was checked."
    assert not report.trusted


def test_uploads_above_the_limit_are_refused_unread(sealed: SimpleNamespace, settings) -> None:
    settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES = len(sealed.pdf) - 1

    report = inspect_receipt(sealed.pdf, trust_roots_pem=[sealed.identity.root_pem])

    assert report.is_pdf is False
    assert "larger than" in report.problem


# --- What the receipt prints ---------------------------------------------------------------


def test_hostile_evidence_prints_as_text(tmp_path: Path) -> None:
    hostile = evidence(
        typed_name="<script>alert(1)</script>",
        person={"id": 12, "email": "x@example.com", "name": "=cmd|' /C calc'!A0"},
        client={
            "ip": "127.0.0.1",
            "user_agent": '<img src="http://example.invalid/track.png">',
            "request_id": "</td></tr></table><h1>forged</h1>",
        },
    )

    text = pdf_text(render_receipt(receipt_document(hostile)), tmp_path)

    assert "<script>alert(1)</script>" in text
    assert "=cmd|' /C calc'!A0" in text
    assert '<img src="http://example.invalid/track.png">' in text
    assert "</td></tr></table><h1>forged</h1>" in text


def test_a_receipt_fetches_nothing_but_its_own_fonts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = "file:///usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
    policy_html = (
        f"<style>@font-face {{ font-family: Other; src: url({outside}); }}</style>"
        '<p style="background: url(http://example.invalid/x.png)">Network</p>'
        '<p style="background: url(file:///etc/hostname)">Local file</p>'
        '<p style="background: url(data:image/png;base64,iVBORw0KGgo=)">Data</p>'
    )
    # WeasyPrint logs refused images as errors and refused fonts at debug level.
    with caplog.at_level(logging.DEBUG, logger="weasyprint"):
        pdf = render_receipt(receipt_document(evidence(), policy_html=policy_html))

    refused = [r.getMessage() for r in caplog.records if "may not fetch" in r.getMessage()]
    for url in (outside, "http://example.invalid/x.png", "file:///etc/hostname", "data:image"):
        assert any(url in message for message in refused), url
    assert "Network" in pdf_text(pdf, tmp_path)


def test_missing_evidence_prints_not_recorded(tmp_path: Path) -> None:
    sparse = {
        "schema": 1,
        "event": "signed",
        "person": {"id": 12, "email": None},
        "signed_at": None,
        "first_viewed_at": "2026-11-28T13:40:30",  # no zone recorded
    }

    text = pdf_text(render_receipt(receipt_document(sparse)), tmp_path)

    assert "Name not recorded" in text
    assert "Email not recorded" in text
    assert "Signed at not recorded" in text
    assert "Typed name not recorded" in text
    assert "Attestation statement not recorded" in text
    assert "Company not recorded" in text
    assert text.count(NOT_RECORDED) >= 30
    # A time without a zone is printed as recorded, never labelled UTC.
    assert "2026-11-28T13:40:30" in text
    assert "2026-11-28 13:40:30 UTC" not in text
    assert "2026-11-28T13:40:30Z" not in text
    assert "Demo Employee" not in text
    # The summary claims nothing the ledger did not record.
    assert text.startswith(
        "Acknowledgement receipt Receipt number VK-7F3K-9Q2M-XD4P Not every detail of this "
        "signature was recorded: the technical evidence below shows what was."
    )


# Recorded to the microsecond, as the ledger records every time.
SIGNED_AT = "2026-12-04T13:03:07.482113Z"


def ada(**changes: object) -> dict:
    return evidence(
        person={"id": 12, "email": "ada@example.com", "name": "Ada Lovelace"},
        typed_name="Ada Lovelace",
        signed_at=SIGNED_AT,
        **changes,
    )


def test_page_one_opens_with_who_signed_what_and_when(tmp_path: Path) -> None:
    document = receipt_document(ada(), seal_fingerprint="ab" * 32)
    first_page = page_text(render_receipt(document), tmp_path, 1)

    summary = (
        "Ada Lovelace signed Acceptable Use Policy, version 1.1, on 4 December 2026 at "
        "14:03:07 (Europe/Paris, UTC+01:00), 13:03:07 UTC."
    )
    check = (
        "To check that this receipt is genuine and unchanged, upload this PDF to the portal's "
        "verification page or scan the QR code: https://policies.example.com/verify/"
    )
    assert first_page.startswith(
        f"VOIPKONNEC Acknowledgement receipt Receipt number VK-7F3K-9Q2M-XD4P {summary} {check}"
    )
    # The technical evidence comes after the summary, under its own heading.
    evidence_at = first_page.index("Technical evidence")
    assert first_page.index(check) < evidence_at
    for label in ("Person id 12", "Revision id 2", "Text SHA-256"):
        assert first_page.index(label) > evidence_at, label
    text = pdf_text(render_receipt(document), tmp_path)
    for detail in ("Chain position 42", "Request id", "Row hash", document.payload_sha256):
        assert text.index(detail) > text.index("Technical evidence"), detail
    # Times to the second: the exact recorded value stays in the attached evidence.json.
    assert "Signed at 2026-12-04T13:03:07Z" in text
    assert "Authenticated at 2026-11-28T13:40:02Z" in text
    assert "482113" not in text
    assert SIGNED_AT.encode() in document.payload


@pytest.mark.parametrize(
    ("zone", "portal_zone", "when"),
    [
        pytest.param(
            "Europe/Paris",
            "UTC",
            "on 4 December 2026 at 14:03:07 (Europe/Paris, UTC+01:00), 13:03:07 UTC.",
            id="browser-zone",
        ),
        pytest.param(
            "Pacific/Auckland",
            "UTC",
            "on 5 December 2026 at 02:03:07 (Pacific/Auckland, UTC+13:00), 4 December 2026 at "
            "13:03:07 UTC.",
            id="another-day-than-in-utc",
        ),
        pytest.param(
            None,
            "America/St_Johns",
            "on 4 December 2026 at 09:33:07 (America/St_Johns, UTC-03:30), 13:03:07 UTC.",
            id="no-browser-zone-portal-zone",
        ),
        pytest.param(
            "Mars/Olympus_Mons",
            "America/St_Johns",
            "on 4 December 2026 at 09:33:07 (America/St_Johns, UTC-03:30), 13:03:07 UTC.",
            id="invalid-browser-zone-portal-zone",
        ),
        pytest.param(None, "UTC", "on 4 December 2026 at 13:03:07 UTC.", id="utc-only"),
    ],
)
def test_the_summary_shows_the_persons_zone_else_the_portals_and_always_utc(
    tmp_path: Path, settings, zone: str | None, portal_zone: str, when: str
) -> None:
    settings.TIME_ZONE = portal_zone
    document = receipt_document(ada(browser_time_zone=zone))

    first_page = page_text(render_receipt(document), tmp_path, 1)

    assert f"Ada Lovelace signed Acceptable Use Policy, version 1.1, {when}" in first_page


def test_a_person_who_signed_in_french_gets_a_french_receipt(tmp_path: Path) -> None:
    document = receipt_document(ada(locale="fr"))
    pdf = render_receipt(document)
    first_page = page_text(pdf, tmp_path, 1)

    assert first_page.startswith(
        "VOIPKONNEC Accusé de réception Numéro d\u2019accusé de réception VK-7F3K-9Q2M-XD4P "
        "Ada Lovelace a signé Acceptable Use Policy, version 1.1, le 4 décembre 2026 à "
        "14:03:07 (Europe/Paris, UTC+01:00), soit 13:03:07 UTC."
    )
    assert first_page.index("Preuves techniques") > first_page.index("soit 13:03:07 UTC.")
    assert "Signé le 2026-12-04T13:03:07Z" in first_page + pdf_text(pdf, tmp_path)
    assert "Accusé de réception VK-7F3K-9Q2M-XD4P · page 1 sur" in first_page
    assert "Technical evidence" not in pdf_text(pdf, tmp_path)
    # Only the words change: the evidence attached is the ledger's, byte for byte.
    assert inspect_receipt(pdf, trust_roots_pem=[]).evidence_json == document.payload


FRENCH_NAME = "Politique d\u2019utilisation acceptable"


def read_in_french(**text: object) -> dict:
    """The text part of the evidence of someone who read the French translation."""
    return {
        "sha256": TEXT_SHA256,
        "language": "fr",
        "authoritative_language": "en",
        "authoritative_sha256": hashlib.sha256(b"english").hexdigest(),
        "hashed": "Markdown source, UTF-8, LF line endings",
        **text,
    }


def test_the_receipt_names_the_policy_as_the_person_read_it(tmp_path: Path) -> None:
    french = receipt_document(ada(locale="fr", text=read_in_french(title=FRENCH_NAME)))
    pdf = render_receipt(french)

    assert page_text(pdf, tmp_path, 1).startswith(
        "VOIPKONNEC Accusé de réception Numéro d\u2019accusé de réception VK-7F3K-9Q2M-XD4P "
        f"Ada Lovelace a signé {FRENCH_NAME}, version 1.1, le 4 décembre 2026 à "
    )
    assert f"{FRENCH_NAME}, version 1.1. Le texte ci-dessous" in pdf_text(pdf, tmp_path)
    # The English name stays in the evidence of what was signed, beside the name shown.
    english = pdf_text(
        render_receipt(receipt_document(ada(text=read_in_french(title=FRENCH_NAME)))), tmp_path
    )
    assert f"Ada Lovelace signed {FRENCH_NAME}, version 1.1, on 4 December 2026" in english
    assert "Policy Acceptable Use Policy Version 1.1" in english
    assert f"Language shown fr Policy name shown {FRENCH_NAME}" in english


def test_evidence_without_the_name_shown_names_the_policy_in_english(tmp_path: Path) -> None:
    # Recorded before translations had a name: the person saw the English one.
    document = receipt_document(ada(locale="fr", text=read_in_french()))

    text = pdf_text(render_receipt(document), tmp_path)

    assert "Ada Lovelace a signé Acceptable Use Policy, version 1.1, le " in text
    assert "Acceptable Use Policy, version 1.1. Le texte ci-dessous" in text


@pytest.mark.parametrize(
    ("locale", "summary"),
    [
        (
            "fr",
            "Ada Lovelace a signé Acceptable Use Policy, version 1.1, le 1er décembre 2026 à "
            "00:30:00 (Europe/Paris, UTC+01:00), soit le 30 novembre 2026 à 23:30:00 UTC.",
        ),
        (
            "en",
            "Ada Lovelace signed Acceptable Use Policy, version 1.1, on 1 December 2026 at "
            "00:30:00 (Europe/Paris, UTC+01:00), 30 November 2026 at 23:30:00 UTC.",
        ),
    ],
)
def test_dates_are_written_as_the_receipts_language_writes_them(
    tmp_path: Path, locale: str, summary: str
) -> None:
    document = receipt_document(
        evidence(
            person={"id": 12, "email": "ada@example.com", "name": "Ada Lovelace"},
            signed_at="2026-11-30T23:30:00.000001Z",
            locale=locale,
        )
    )

    assert summary in page_text(render_receipt(document), tmp_path, 1)


def test_render_refuses_a_payload_that_does_not_match_its_hash() -> None:
    document = receipt_document(evidence())
    with pytest.raises(ValueError, match="payload_sha256"):
        render_receipt(replace(document, payload=document.payload + b" "))


# --- The sealing identity ------------------------------------------------------------------


def test_local_ca_is_created_once_and_reused(
    local_ca: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"):
        first = load_sealing_identity()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(local_ca) in warnings[0].getMessage()
    assert "PORTAL_SEALING_KEY" in warnings[0].getMessage()

    assert stat.S_IMODE(local_ca.stat().st_mode) == 0o700
    assert stat.S_IMODE((local_ca / "seal.key").stat().st_mode) == 0o600
    # The root key is kept apart from the folder the server signs from.
    assert [path.name for path in local_ca.glob("*.key")] == ["seal.key"]
    root_keys = local_ca.with_name("sealing-root")
    assert stat.S_IMODE(root_keys.stat().st_mode) == 0o700
    (root_key,) = root_keys.glob("*.key")
    assert stat.S_IMODE(root_key.stat().st_mode) == 0o600
    files_before = {path.name: path.read_bytes() for path in local_ca.iterdir()}

    caplog.clear()
    clear_sealing_identity_cache()  # as a new process would
    with caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"):
        second = load_sealing_identity()

    assert second.fingerprint == first.fingerprint
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert {path.name: path.read_bytes() for path in local_ca.iterdir()} == files_before


def test_concurrent_first_uses_create_one_local_ca(
    local_ca: Path, caplog: pytest.LogCaptureFixture
) -> None:
    barrier = threading.Barrier(4)

    def first_use() -> str:
        barrier.wait()
        return load_sealing_identity().fingerprint

    with (
        caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"),
        ThreadPoolExecutor(max_workers=4) as pool,
    ):
        fingerprints = set(pool.map(lambda _: first_use(), range(4)))

    assert len(fingerprints) == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_local_ca_certificates_have_the_usages_pyhanko_requires(local_ca: Path) -> None:
    identity = load_sealing_identity()
    seal = x509.load_pem_x509_certificate(identity.certificate_pem)
    root = x509.load_pem_x509_certificate(identity.root_pem)

    assert identity.fingerprint == seal.fingerprint(hashes.SHA256()).hex()
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    usage = seal.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert seal.issuer == root.subject
    assert "receipt seal" in seal.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert seal.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ("Voipkonnec")


def test_configured_key_and_certificates_are_used(local_ca: Path, settings, tmp_path) -> None:
    generated = load_sealing_identity()
    encrypted_key = tmp_path / "seal-encrypted.key"
    key = serialization.load_pem_private_key((local_ca / "seal.key").read_bytes(), None)
    encrypted_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    )
    settings.PORTAL_SEALING_KEY = str(encrypted_key)
    settings.PORTAL_SEALING_KEY_PASSWORD = "correct horse"
    settings.PORTAL_SEALING_CERT = str(local_ca / "seal.pem")
    settings.PORTAL_SEALING_ROOT = str(local_ca / "root-ca.pem")
    settings.PORTAL_SEALING_DIR = tmp_path / "unused"

    configured = load_sealing_identity()

    assert configured.fingerprint == generated.fingerprint
    assert not settings.PORTAL_SEALING_DIR.exists()
    document = receipt_document(evidence())
    report = inspect_receipt(
        issue_receipt(document, configured), trust_roots_pem=[generated.root_pem]
    )
    assert report.problem == ""


def test_half_configured_sealing_is_refused(local_ca: Path, settings) -> None:
    settings.PORTAL_SEALING_KEY = str(local_ca / "seal.key")
    with pytest.raises(ImproperlyConfigured, match="PORTAL_SEALING_ROOT"):
        load_sealing_identity()


# --- Timestamps ----------------------------------------------------------------------------


def test_an_unreachable_timestamp_authority_seals_without_a_timestamp(
    sealed: SimpleNamespace, settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.PORTAL_TSA_URL = f"http://127.0.0.1:{refused_port()}/tsa"
    pdf = render_receipt(sealed.document)

    with caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"):
        stamped = seal_pdf(pdf, sealed.identity)

    report = inspect_receipt(stamped, trust_roots_pem=[sealed.identity.root_pem])
    assert report.problem == ""
    assert report.timestamped is False
    assert any("timestamp authority" in r.getMessage() for r in caplog.records)


def test_a_timestamp_authority_token_is_embedded(sealed: SimpleNamespace, settings) -> None:
    with running_test_tsa() as url:
        settings.PORTAL_TSA_URL = url
        stamped = seal_pdf(render_receipt(sealed.document), sealed.identity)

    report = inspect_receipt(stamped, trust_roots_pem=[sealed.identity.root_pem])
    assert report.problem == ""
    assert report.timestamped is True


def refused_port() -> int:
    """A local port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_test_tsa() -> Iterator[str]:
    """An RFC 3161 authority on localhost that answers with pyHanko's DummyTimeStamper."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(key, hashes.SHA256())
    )
    stamper = DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER)),
        tsa_key=load_private_key_from_pemder_data(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            passphrase=None,
        ),
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            request = tsp.TimeStampReq.load(self.rfile.read(length))
            body = stamper.request_tsa_response(request).dump()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # keep the test output clean

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
