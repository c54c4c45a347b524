"""An administrator's first week: a new policy's first draft proposes version 1.0, the publish
page says by which date people must sign, the overview shows who signed each policy, and a
revision's translations panel offers one control per language."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from acknowledgements.models import PolicyRevision, User
from acknowledgements.reports import figures
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
def employee_signed(portal):
    """Someone has signed the demo policy (before the browser starts: sealing the receipt runs
    an event loop of its own, which Playwright's would block)."""
    return sign_through_service(
        User.objects.get(email="employee@example.com"),
        PolicyRevision.objects.get(policy__slug="acceptable-use-policy", version="1.1"),
    )


def test_a_first_version_is_proposed_dated_and_followed(
    portal, employee_signed, page, screenshot, axe_violations, csp_violations
):
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/policies/new/")
    page.wait_for_load_state()  # the page's script fills the short name as the name is typed
    page.get_by_label("Name", exact=True).fill("Clean Desk Policy")
    page.get_by_label("Employees").check()
    page.get_by_role("button", name="Create policy").click()
    expect(page.get_by_text("Clean Desk Policy was created.")).to_be_visible()

    page.get_by_role("link", name="Draft a new revision").first.click()
    expect(page.get_by_label("Version", exact=True)).to_have_value("1.0")
    page.get_by_label("Policy text (Markdown)").fill(
        "# Clean Desk Policy\n\n## 1. Rule\n\nLock it.\n"
    )
    page.get_by_label("What changed").fill("First version.")
    look(page, "draft-1-0", screenshot, axe_violations)
    page.get_by_role("button", name="Save as draft").click()
    expect(page.get_by_role("heading", level=1, name="Draft 1.0")).to_be_visible()

    page.get_by_role("link", name="Publish…").click()
    impact = page.get_by_role("region", name="What happens when you publish")
    expect(impact).to_contain_text(
        re.compile(r"\d+ people in Employees will be emailed and asked to sign it\.")
    )
    expect(impact).to_contain_text(re.compile(r"Due by \d{1,2} \w+ \d{4}: 14 days to sign"))
    expect(impact).not_to_contain_text("again")
    look(page, "publish-1-0", screenshot, axe_violations)
    page.get_by_role("button", name="Publish version 1.0").click()
    expect(page.get_by_text("Clean Desk Policy 1.0 is published.")).to_be_visible()

    # The overview counts as the reports do.
    page.goto(f"{portal}/manage/")
    by_name = {f.policy.name: f.completion for f in figures.dashboard(timezone.now())}
    assert set(by_name) == {"Acceptable Use Policy", "Clean Desk Policy"}
    assert by_name["Acceptable Use Policy"].signed == 1
    for name, done in by_name.items():
        assert done.total, name
        card = page.get_by_role("region", name=name)
        expect(card).to_contain_text(
            f"{done.signed} of {done.total} signed ({round(100 * done.signed / done.total)}%)"
        )
        expect(card).to_contain_text(f"{done.pending} pending")
        expect(card).to_contain_text(f"{done.overdue} overdue")
    look(page, "overview", screenshot, axe_violations)

    # A draft's French translation is edited; a published revision's is read.
    draft = PolicyRevision.objects.get(policy__slug="acceptable-use-policy", version="2.0")
    page.goto(f"{portal}/manage/revisions/{draft.pk}/")
    panel = page.get_by_role("region", name="Translations")
    expect(panel.get_by_role("link", name="Edit the Français translation")).to_be_visible()
    expect(panel.get_by_role("link", name=re.compile("Translate into"))).to_have_count(0)
    panel.scroll_into_view_if_needed()
    look(page, "translations-draft", screenshot, axe_violations)

    published = PolicyRevision.objects.get(policy__slug="acceptable-use-policy", version="1.1")
    page.goto(f"{portal}/manage/revisions/{published.pk}/")
    panel = page.get_by_role("region", name="Translations")
    expect(panel.get_by_role("link", name=re.compile("Translate into|Edit"))).to_have_count(0)
    panel.scroll_into_view_if_needed()
    look(page, "translations-published", screenshot, axe_violations)
    panel.get_by_role("link", name="View the Français translation").click()
    expect(page.get_by_role("article")).to_have_attribute("lang", "fr")

    first = PolicyRevision.objects.get(policy__slug="clean-desk-policy", version="1.0")
    page.goto(f"{portal}/manage/revisions/{first.pk}/")
    panel = page.get_by_role("region", name="Translations")
    expect(panel.get_by_role("link", name="Translate into Français")).to_be_visible()
    look(page, "translations-none", screenshot, axe_violations)
    assert csp_violations == []
