"""A signer checks their receipt without the portal: they download the root certificate from
/verify/, compare its fingerprint, and run the page's recipe with system tools, as printed."""

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from acknowledgements.models import Receipt
from tests.browser.conftest import sign_in

TOOLS = ("openssl", "certutil", "pdfsig", "pdfdetach", "sha256sum")


def sign_as_the_demo_employee(page, portal) -> None:
    sign_in(page, portal, "employee@example.com")
    page.get_by_role("link", name="Read and sign", exact=True).click()
    page.get_by_label("I have read and understood this policy").check()
    page.get_by_label("I agree to sign policy acknowledgements electronically").check()
    page.get_by_label("Full name", exact=True).fill("Demo Employee")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(
        page.get_by_role("heading", name="Thank you, your signature is recorded")
    ).to_be_visible()


def test_a_signer_checks_their_receipt_offline_with_the_pages_recipe(
    portal, page, screenshot, csp_violations, tmp_path
):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (poppler-utils, libnss3-tools, openssl)")
    sign_as_the_demo_employee(page, portal)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download receipt (PDF)").click()
    download_info.value.save_as(tmp_path / "receipt.pdf")
    with Receipt.objects.get().pdf.open("rb") as stored:
        assert (tmp_path / "receipt.pdf").read_bytes() == stored.read()

    page.get_by_role("link", name="Verify a receipt").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Root certificate (sealing-root.pem)").click()
    download_info.value.save_as(tmp_path / "sealing-root.pem")
    shown_fingerprint = page.locator(".trust-roots code").first.inner_text()
    screenshot("offline-recipe")
    recipe = page.locator("#offline pre code").inner_text()

    result = subprocess.run(
        ["bash", "-e", "-c", recipe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"sha256 Fingerprint={shown_fingerprint}" in output
    assert "Signature Validation: Signature is Valid." in output
    assert "Certificate Validation: Certificate is Trusted." in output
    assert "Total document signed" in output
    for attachment in ("evidence.json", "checkpoint.txt", "inclusion-proof.json"):
        assert (tmp_path / attachment).exists(), attachment
    assert csp_violations == []


def test_a_look_alike_seal_fails_the_pages_trust_step(portal, page, tmp_path):
    """A CA with the same names seals a copy: with the page's root trusted, pdfsig tells them
    apart, and so does the fingerprint the page shows."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (poppler-utils, libnss3-tools, openssl)")
    from django.conf import settings

    from acknowledgements.receipts import authority, local_ca
    from acknowledgements.receipts import document as receipt_document
    from acknowledgements.receipts import seal as receipt_seal

    sign_as_the_demo_employee(page, portal)
    acknowledgement = Receipt.objects.get().acknowledgement
    entry = acknowledgement.ledger_entry
    pems = local_ca.generate_local_ca(settings.PORTAL_COMPANY_NAME)
    look_alike = authority._identity_from_pem(
        key_pem=pems["seal_key"],
        cert_pem=pems["seal_cert"],
        root_pem=pems["root_cert"],
        password=None,
    )
    document = receipt_document.ReceiptDocument(
        receipt_number=acknowledgement.receipt_number,
        payload=bytes(entry.payload),
        payload_sha256=entry.payload_sha256,
        sequence=entry.sequence,
        previous_hash=entry.previous_hash,
        row_hash=entry.row_hash,
        policy_source=acknowledgement.revision.body,
        policy_html=acknowledgement.revision.body_html,
        verify_url=f"{portal}/verify/",
    )
    # pyHanko runs an event loop of its own: not in this thread, where Playwright's runs.
    with ThreadPoolExecutor(1) as sealer:
        sealed = sealer.submit(receipt_seal.render_and_seal, document, look_alike).result()
    (tmp_path / "receipt.pdf").write_bytes(sealed)
    (tmp_path / "look-alike-root.pem").write_bytes(pems["root_cert"])

    page.goto(f"{portal}/verify/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Root certificate (sealing-root.pem)").click()
    download_info.value.save_as(tmp_path / "sealing-root.pem")
    shown = page.locator(".trust-roots code").first.inner_text()
    recipe = page.locator("#offline pre code").inner_text()
    result = subprocess.run(
        ["bash", "-c", recipe], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    assert "Signature Validation: Signature is Valid." in output  # a seal, intact...
    assert "Certificate Validation: Certificate is Trusted." not in output  # ...not this portal's
    assert "Certificate issuer isn't Trusted" in output
    other = subprocess.run(
        ["openssl", "x509", "-in", "look-alike-root.pem", "-noout", "-fingerprint", "-sha256"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown not in other
