"""A signer reports a concern with a screenshot; an administrator picks it up."""

from playwright.sync_api import expect

from acknowledgements.models import ConcernReport
from tests.browser.conftest import sign_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_a_signer_reports_a_concern_and_the_administrator_reviews_it(
    portal, page, screenshot, csp_violations, tmp_path, mailoutbox
):
    screenshot_file = tmp_path / "phishing.png"
    screenshot_file.write_bytes(PNG)
    fake_pdf = tmp_path / "invoice.pdf"
    fake_pdf.write_bytes(b"MZ\x90\x00 not a PDF")

    sign_in(page, portal, "contractor@example.com")
    page.get_by_role("link", name="Report a concern").click()
    expect(page.get_by_role("heading", level=1, name="Report a concern")).to_be_visible()
    page.get_by_label("Suspicious activity").check()
    page.get_by_label("What happened").fill(
        "An email asked me to confirm my password on a look-alike login page."
    )
    page.get_by_label("Attachment (optional)").set_input_files(str(fake_pdf))
    page.get_by_role("button", name="Send the report").click()

    # A file that is not what its name says is refused next to the field; nothing is stored.
    expect(
        page.locator("#id_attachment_error").get_by_text("invoice.pdf is not a real PDF file")
    ).to_be_visible()
    expect(page.get_by_label("What happened")).to_have_value(
        "An email asked me to confirm my password on a look-alike login page."
    )
    screenshot("refused-attachment")
    assert not ConcernReport.objects.exists()

    page.get_by_label("Attachment (optional)").set_input_files(str(screenshot_file))
    page.get_by_label("Hide my name from the policy administrators").check()
    page.get_by_role("button", name="Send the report").click()
    expect(page.get_by_role("heading", level=1, name="Thank you for your report")).to_be_visible()
    expect(page.get_by_text("It was sent to the compliance officer (compliance@")).to_be_visible()
    screenshot("thanks")
    report = ConcernReport.objects.get()
    assert report.anonymous and report.category == "suspicious"
    (email,) = [m for m in mailoutbox if m.subject.startswith("Concern #")]
    assert email.to == ["compliance@voipkonnec.com"]
    assert "contractor@example.com" not in email.body
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, portal, "admin@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Manage").click()
    page.get_by_role("link", name="1 new concern to look at").click()
    expect(page.get_by_role("heading", level=1, name="Concerns")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="look-alike login page")
    expect(row).to_contain_text("Anonymous")
    expect(row).not_to_contain_text("Demo Contractor")
    with page.expect_download() as download_info:
        row.get_by_role("link", name="Download the attachment").click()
    assert download_info.value.path().read_bytes() == PNG
    screenshot("concerns")

    row.get_by_label(f"Status of concern #{report.pk}").select_option(label="In review")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Concern #{report.pk} is now “In review”.")).to_be_visible()
    report.refresh_from_db()
    assert report.status == ConcernReport.Status.IN_REVIEW
    # Back on the list of new concerns, which no longer holds it.
    expect(page.get_by_text("No concern has this status.")).to_be_visible()
    page.get_by_label("Status").select_option(label="In review")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("row").filter(has_text="look-alike login page")).to_be_visible()
    screenshot("in-review")
    assert csp_violations == []
