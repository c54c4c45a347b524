"""A signer's first week: after a material change, someone who signed before is asked to sign
*again* while a newcomer is simply asked to sign; the policy page leads to the concern form
(section 8, reporting incidents), whose thank-you page gives the report's reference number."""

import re

import pytest
from playwright.sync_api import expect

from acknowledgements.models import ConcernReport, PolicyRevision, User
from acknowledgements.policies import actions as policy_actions
from tests.browser.conftest import sign_in
from tests.conftest import sign_through_service

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def look(page, name: str, screenshot, axe_violations) -> None:
    """Screenshots at both widths, and no axe violation at either."""
    assert axe_violations() == [], name
    screenshot(name)
    page.set_viewport_size(PHONE)
    screenshot(f"{name}-phone")
    assert axe_violations() == [], name
    page.set_viewport_size(DESKTOP)


@pytest.fixture
def material_change(portal):
    """The employee signed 1.1, then 2.0 was published (before the browser starts: sealing the
    receipt runs an event loop of its own, which Playwright's would block)."""
    revisions = PolicyRevision.objects.filter(policy__slug="acceptable-use-policy")
    sign_through_service(
        User.objects.get(email="employee@example.com"), revisions.get(version="1.1")
    )
    return policy_actions.publish_revision(actor=None, revision=revisions.get(version="2.0"))


def test_the_home_page_says_who_must_sign_again(
    portal, material_change, page, screenshot, axe_violations, csp_violations
):
    sign_in(page, portal, "employee@example.com")
    card = page.get_by_role("listitem").filter(has_text="Acceptable Use Policy")
    expect(card).to_contain_text(re.compile(r"Updated — please sign again: due \d+ \w+ \d{4}"))
    expect(card).not_to_contain_text("Not signed yet")
    look(page, "signed-before", screenshot, axe_violations)
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, portal, "contractor@example.com")
    card = page.get_by_role("listitem").filter(has_text="Acceptable Use Policy")
    expect(card).to_contain_text(re.compile(r"Not signed yet: due \d+ \w+ \d{4}"))
    expect(card).not_to_contain_text("again")
    look(page, "never-signed", screenshot, axe_violations)
    assert csp_violations == []


def test_the_policy_page_leads_to_the_concern_form_and_its_reference(
    portal, page, screenshot, axe_violations, csp_violations
):
    sign_in(page, portal, "contractor@example.com")
    page.goto(f"{portal}/policies/acceptable-use-policy/")
    expect(page.get_by_role("heading", name="8. Reporting Incidents")).to_be_visible()
    aside = page.get_by_role("complementary", name="Report an incident")
    expect(aside).to_be_visible()
    look(page, "policy", screenshot, axe_violations)
    # On a phone it follows the text, where section 8 is read.
    page.set_viewport_size(PHONE)
    text_box = page.locator("article.policy-text").bounding_box()
    assert aside.bounding_box()["y"] > text_box["y"] + text_box["height"]
    page.set_viewport_size(DESKTOP)

    page.goto(f"{portal}/policies/acceptable-use-policy/v/1.0/")
    expect(page.get_by_role("complementary", name="Report an incident")).to_be_visible()
    look(page, "earlier-revision", screenshot, axe_violations)

    page.get_by_role("complementary", name="Report an incident").get_by_role(
        "link", name="Report a concern"
    ).click()
    expect(page.get_by_role("heading", level=1, name="Report a concern")).to_be_visible()
    page.get_by_label("Suspicious activity").check()
    page.get_by_label("What happened").fill("A stranger followed me through the badge door.")
    page.get_by_role("button", name="Send the report").click()

    report = ConcernReport.objects.get()
    expect(page.get_by_role("heading", level=1, name="Thank you for your report")).to_be_visible()
    expect(page.get_by_text(f"Its reference number is #{report.pk}.")).to_be_visible()
    look(page, "thanks", screenshot, axe_violations)
    assert csp_violations == []
