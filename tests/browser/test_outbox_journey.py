"""A developer on a laptop (DEBUG on, no SMTP server) signs and reads the receipt email in the
development outbox, among the demo's hundreds of emails."""

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from acknowledgements.models import Acknowledgement
from acknowledgements.notifications import outbox
from tests.browser.conftest import sign_in


@pytest.fixture
def laptop_outbox(settings, tmp_path):
    """Debug on and the outbox as the default mailer, as `make run` has them."""
    settings.DEBUG = True
    settings.MAILERS = {
        "default": {"BACKEND": outbox.BACKEND, "OPTIONS": {"directory": str(tmp_path / "outbox")}}
    }
    return tmp_path / "outbox"


def test_a_developer_finds_the_receipt_email_and_its_pdf_in_the_outbox(
    laptop_outbox, portal, page, screenshot, csp_violations, tmp_path
):
    sign_in(page, portal, "employee@example.com")
    page.get_by_role("link", name="Read and sign", exact=True).click()
    page.get_by_label("I have read and understood this policy").check()
    page.get_by_label("I agree to sign policy acknowledgements electronically").check()
    page.get_by_label("Full name", exact=True).fill("Demo Employee")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(
        page.get_by_role("heading", name="Thank you, your signature is recorded")
    ).to_be_visible()
    acknowledgement = Acknowledgement.objects.select_related("receipt").get()
    number = acknowledgement.receipt_number

    page.goto(f"{portal}/dev/outbox/")
    expect(page.get_by_role("heading", name="Development outbox")).to_be_visible()
    # The receipt was the last email sent: first in the list, above the demo's.
    first_row = page.get_by_role("row").nth(1)
    expect(first_row).to_contain_text("employee@example.com")
    expect(first_row).to_contain_text(f"Your receipt {number}")
    screenshot("outbox")

    first_row.get_by_role("link", name=f"Your receipt {number}").click()
    expect(page.get_by_role("heading", name=f"Your receipt {number}")).to_be_visible()
    email = page.frame_locator("iframe[title='The email as HTML']")
    expect(email.get_by_text("Your sealed receipt is attached.")).to_be_visible()
    expect(email.get_by_text(number)).to_be_visible()
    screenshot("receipt-email")

    with page.expect_download() as download_info:
        page.get_by_role("link", name=f"receipt-{number}.pdf").click()
    attached = tmp_path / "attached.pdf"
    download_info.value.save_as(attached)
    with acknowledgement.receipt.pdf.open("rb") as sealed:
        assert attached.read_bytes() == sealed.read()
    assert download_info.value.suggested_filename == f"receipt-{number}.pdf"

    with page.expect_download() as text_info:
        page.get_by_role("link", name="Download the text").click()
    text = tmp_path / "email.txt"
    text_info.value.save_as(text)
    assert number in text.read_text("utf-8")
    assert csp_violations == []
    call_command("verify_ledger")
