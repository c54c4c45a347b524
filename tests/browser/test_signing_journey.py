import re

from django.core.management import call_command
from playwright.sync_api import expect

from acknowledgements.models import Acknowledgement
from tests.browser.conftest import sign_in


def test_employee_signs_downloads_and_verifies_the_receipt(
    portal, page, screenshot, csp_violations, tmp_path
):
    sign_in(page, portal, "employee@example.com")
    page.get_by_role("link", name="Read and sign", exact=True).click()
    expect(page.get_by_role("heading", name="Sign version 1.1")).to_be_visible()

    # A wrong name is refused next to the field and records nothing.
    page.get_by_label("I have read and understood this policy").check()
    page.get_by_label("I agree to sign policy acknowledgements electronically").check()
    page.get_by_label("Full name", exact=True).fill("Somebody Else")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(
        page.locator("#id_typed_name_error").get_by_text(
            "This does not match the name on your account"
        )
    ).to_be_visible()
    screenshot("wrong-name")
    assert not Acknowledgement.objects.exists()

    page.get_by_label("I have read and understood this policy").check()
    page.get_by_label("I agree to sign policy acknowledgements electronically").check()
    page.get_by_label("Full name", exact=True).fill("  demo   EMPLOYEE ")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(
        page.get_by_role("heading", name="Thank you, your signature is recorded")
    ).to_be_visible()
    acknowledgement = Acknowledgement.objects.get()
    expect(page.get_by_text(acknowledgement.receipt_number)).to_be_visible()
    expect(page.get_by_text(acknowledgement.revision.text_sha256)).to_be_visible()
    screenshot("confirmation")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download receipt (PDF)").click()
    receipt = tmp_path / "receipt.pdf"
    download_info.value.save_as(receipt)
    assert receipt.read_bytes().startswith(b"%PDF")

    page.get_by_role("link", name="My policies", exact=True).click()
    expect(page.get_by_text("Signed version 1.1")).to_be_visible()

    page.get_by_role("link", name="Verify a receipt").click()
    page.get_by_label("Receipt PDF").set_input_files(str(receipt))
    page.get_by_role("button", name="Check receipt").click()
    expect(page.get_by_role("heading", name="Genuine receipt")).to_be_visible()
    screenshot("verified")

    tampered = tmp_path / "tampered.pdf"
    data = bytearray(receipt.read_bytes())
    position = data.index(b"/Producer")
    data[position + 2] ^= 0x01  # one byte inside the sealed content
    tampered.write_bytes(bytes(data))
    page.get_by_label("Receipt PDF").set_input_files(str(tampered))
    page.get_by_role("button", name="Check receipt").click()
    expect(
        page.get_by_role("heading", name=re.compile("Not genuine|Not a receipt"))
    ).to_be_visible()
    screenshot("tampered")
    assert csp_violations == []
    call_command("verify_ledger")
