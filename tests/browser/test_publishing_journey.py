"""The issue's journey: the administrator publishes the demo 2.0, the employee who signed 1.1
is asked to sign again, sees what changed, signs, and the banner goes away."""

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from acknowledgements.models import Acknowledgement, Notification, PolicyRevision, User
from tests.browser.conftest import sign_in
from tests.conftest import sign_through_service

PHONE = {"width": 360, "height": 800}
DESKTOP = {"width": 1280, "height": 900}


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()


@pytest.fixture
def employee_signed_1_1(portal):
    """The demo employee signed 1.1 (before the browser starts: sealing the receipt runs an
    event loop of its own, which Playwright's would block)."""
    return sign_through_service(
        User.objects.get(email="employee@example.com"),
        PolicyRevision.objects.get(policy__slug="acceptable-use-policy", version="1.1"),
    )


def test_administrator_publishes_2_0_and_the_employee_signs_it_again(
    portal, employee_signed_1_1, page, screenshot, csp_violations
):
    employee = employee_signed_1_1.person
    in_scope = User.objects.filter(is_active=True, audiences__isnull=False).distinct().count()

    # The administrator finds the 2.0 draft left by seed_demo.
    sign_in(page, portal, "admin@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Manage").click()
    expect(page.get_by_role("heading", level=1, name="Manage policies")).to_be_visible()
    policy_card = page.get_by_role("region", name="Acceptable Use Policy")
    expect(policy_card).to_contain_text("Version 1.1")
    screenshot("manage-home")
    policy_card.get_by_role("link", name="Draft 2.0").click()

    # The revision page: its summary and the diff against 1.1.
    expect(page.get_by_role("heading", level=1, name="Draft 2.0")).to_be_visible()
    expect(page.get_by_text("New section 4h on the misuse of generative AI tools")).to_be_visible()
    expect(page.get_by_role("heading", name="Changes from version 1.1 to 2.0")).to_be_visible()
    added = page.locator(".revision-diff ins", has_text="Misuse of Generative AI Tools")
    expect(added).to_be_visible()
    assert added.evaluate("e => getComputedStyle(e).textDecorationLine") == "underline"
    screenshot("diff")
    page.set_viewport_size(PHONE)
    expect(added).to_be_visible()
    screenshot("diff-phone")
    page.set_viewport_size(DESKTOP)

    # The draft form, with its live preview (looked at, left unsaved).
    page.get_by_role("link", name="Edit draft").click()
    expect(page.get_by_role("heading", level=1, name="Edit draft 2.0")).to_be_visible()
    expect(page.get_by_label("Version", exact=True)).to_have_value("2.0")
    expect(page.get_by_label("Email everyone about this minor change")).to_be_disabled()
    page.get_by_label("Minor: wording, spelling or layout only").check()
    expect(page.get_by_label("Email everyone about this minor change")).to_be_enabled()
    page.get_by_label("Material: the rules changed").check()
    text = page.get_by_label("Policy text (Markdown)")
    text.press("Control+End")
    text.press_sequentially("\n\n## 11. Preview check <script>x</script>\n")
    preview = page.locator("#preview")
    expect(preview.get_by_role("heading", name="11. Preview check")).to_be_visible()
    expect(page.get_by_text("Preview updated.")).to_be_visible()
    assert preview.locator("script").count() == 0
    screenshot("draft-form")
    page.set_viewport_size(PHONE)
    screenshot("draft-form-phone")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("link", name="Cancel").click()

    # Publishing states its effect first.
    page.get_by_role("link", name="Publish…").click()
    expect(page.get_by_role("heading", level=1, name="Publish version 2.0?")).to_be_visible()
    impact = page.get_by_role("region", name="What happens when you publish")
    expect(impact).to_contain_text(
        re.compile(
            rf"{in_scope} people in .*Employees.* will be emailed and asked to sign it again\."
        )
    )
    expect(impact).to_contain_text(re.compile(r"Due by \d+ \w+ \d{4}: \d+ days to sign"))
    expect(impact).to_contain_text("Signatures of version 1.1 stop counting from then.")
    screenshot("publish-confirmation")
    page.get_by_role("button", name="Publish version 2.0").click()

    expect(page.get_by_text("Acceptable Use Policy 2.0 is published.")).to_be_visible()
    expect(page.get_by_role("heading", level=1, name="Version 2.0")).to_be_visible()
    emails = page.get_by_role("region", name="Emails")
    expect(emails).to_contain_text(f"{in_scope} of {in_scope} emails processed")
    expect(emails).to_contain_text("Every email was sent.")
    screenshot("progress")
    sent = Notification.objects.filter(revision__version="2.0", status="sent")
    assert sent.count() == in_scope
    sign_out(page)

    # The employee is asked to sign again and sees what changed since 1.1.
    sign_in(page, portal, "employee@example.com")
    banner = page.get_by_role("region", name="Signatures due")
    expect(banner).to_contain_text(
        re.compile(r"Action needed:\s+please sign Acceptable Use Policy 2\.0 by \d+ \w+ \d{4}\.")
    )
    screenshot("employee-banner")
    banner.get_by_role("link", name="Read and sign").click()
    changes = page.get_by_role("region", name="What changed since you signed")
    expect(changes).to_contain_text("You signed version 1.1")
    expect(changes).to_contain_text("New section 4h on the misuse of generative AI tools")
    expect(changes.locator("ins", has_text="Misuse of Generative AI Tools")).to_be_visible()
    changes_box = changes.bounding_box()
    text_box = page.locator("article.policy-text").bounding_box()
    assert changes_box["y"] < text_box["y"]  # above the full text
    screenshot("what-changed")

    page.get_by_label("I have read and understood this policy").check()
    page.get_by_label("Full name", exact=True).fill("Demo Employee")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(
        page.get_by_role("heading", name="Thank you, your signature is recorded")
    ).to_be_visible()
    expect(page.get_by_role("region", name="Signatures due")).to_have_count(0)
    page.get_by_role("link", name="My policies", exact=True).click()
    expect(page.get_by_text("Signed version 2.0")).to_be_visible()
    expect(page.get_by_role("region", name="Signatures due")).to_have_count(0)
    screenshot("signed-2-0")

    signatures = Acknowledgement.objects.filter(person=employee).order_by("signed_at")
    assert [a.revision.version for a in signatures] == ["1.1", "2.0"]
    assert csp_violations == []
    call_command("verify_ledger")


def test_administrator_creates_a_policy_and_exempts_a_service_account(
    portal, page, screenshot, csp_violations
):
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/")
    page.get_by_role("link", name="New policy").click()
    page.wait_for_load_state()  # the page's script fills the short name as the name is typed
    page.get_by_label("Name", exact=True).fill("Clean Desk Policy")
    expect(page.get_by_label("Short name for its address")).to_have_value("clean-desk-policy")
    page.get_by_label("Third parties").check()
    screenshot("new-policy")
    page.get_by_role("button", name="Create policy").click()
    expect(page.get_by_text("Clean Desk Policy was created.")).to_be_visible()
    expect(page.get_by_role("heading", level=1, name="Clean Desk Policy")).to_be_visible()
    screenshot("policy")

    page.get_by_role("link", name="Draft a new revision").first.click()
    page.get_by_label("Version", exact=True).fill("1.0")
    page.get_by_label("Policy text (Markdown)").fill(
        "# Clean Desk Policy\n\n## 1. Rule\n\nLock it.\n"
    )
    page.get_by_label("What changed").fill("First version.")
    expect(page.locator("#preview").get_by_role("heading", name="1. Rule")).to_be_visible()
    page.get_by_label("Takes effect on").fill("2020-01-01T09:00")
    page.get_by_role("button", name="Save as draft").click()
    expect(
        page.locator("#id_effective_at_error").get_by_text(
            "cannot take effect before it is published"
        )
    ).to_be_visible()
    screenshot("draft-error")
    page.set_viewport_size(PHONE)
    screenshot("draft-error-phone")
    page.set_viewport_size(DESKTOP)
    assert not PolicyRevision.objects.filter(policy__slug="clean-desk-policy").exists()

    page.get_by_label("Takes effect on").fill("2099-01-01T09:00")
    page.get_by_role("button", name="Save as draft").click()
    expect(page.get_by_role("heading", level=1, name="Draft 1.0")).to_be_visible()
    expect(
        page.get_by_text("This is the first version: there is nothing to compare it with.")
    ).to_be_visible()
    page.get_by_role("link", name="Publish…").click()
    expect(page.get_by_role("region", name="What happens when you publish")).to_contain_text(
        re.compile(r"It takes effect on 1 January 2099")
    )
    page.get_by_role("button", name="Publish version 1.0").click()
    expect(page.get_by_text("Clean Desk Policy 1.0 is published.")).to_be_visible()
    page.get_by_role("navigation", name="Manage").get_by_role("link", name="Policies").click()
    expect(page.get_by_role("region", name="Clean Desk Policy")).to_contain_text(
        re.compile(r"Scheduled\s*Version 1.0, takes effect on 1 January 2099")
    )

    page.get_by_role("navigation", name="Manage").get_by_role("link", name="People").click()
    page.get_by_label("Name or email").fill("partner@")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("caption")).to_have_text("1 person")
    screenshot("people")
    page.get_by_role("link", name="Demo Partner").click()
    page.get_by_label("Contractors").check()
    page.get_by_role("button", name="Save audiences").click()
    expect(page.get_by_text("The audiences of Demo Partner are saved.")).to_be_visible()
    page.get_by_label("Reason for the exemption").fill("Shared kiosk account")
    page.get_by_role("button", name="Exempt from the gate").click()
    expect(page.get_by_text("Demo Partner is exempt from the signing gate.")).to_be_visible()
    expect(page.get_by_text("Reason: Shared kiosk account")).to_be_visible()
    screenshot("person")
    partner = User.objects.get(email="partner@example.com")
    assert partner.gate_exemption == "Shared kiosk account"
    assert sorted(a.slug for a in partner.audiences.all()) == ["contractors", "partners"]
    assert csp_violations == []
