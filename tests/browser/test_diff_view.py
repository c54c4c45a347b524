"""What changed between two versions, as people read it: the signer asked to sign again and the
administrator looking at a draft both see the formatted text with the changes marked, not its
Markdown; the administrator opens the source diff with one click, and on a phone each stacked
cell of it names the version it comes from."""

import pytest
from playwright.sync_api import expect

from acknowledgements.models import PolicyRevision, User
from acknowledgements.policies import actions as policy_actions
from tests.browser.conftest import sign_in
from tests.conftest import sign_through_service

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
OLD_WORDING = "All users are expected to adhere"
NEW_WORDING = "All users must adhere"


@pytest.fixture
def draft_2_0(portal):
    """The demo's 2.0 draft, with one sentence of 1.1 reworded as well as its new sections."""
    draft = PolicyRevision.objects.get(policy__slug="acceptable-use-policy", version="2.0")
    return policy_actions.update_draft(
        actor=None,
        revision=draft,
        audiences=list(draft.audiences.all()),
        body=draft.body.replace(OLD_WORDING, NEW_WORDING),
    )


@pytest.fixture
def asked_to_sign_again(draft_2_0):
    """The employee signed 1.1, then 2.0 was published (before the browser starts: sealing the
    receipt runs an event loop of its own, which Playwright's would block)."""
    sign_through_service(
        User.objects.get(email="employee@example.com"),
        PolicyRevision.objects.get(policy__slug="acceptable-use-policy", version="1.1"),
    )
    return policy_actions.publish_revision(actor=None, revision=draft_2_0)


def look(page, name: str, screenshot, axe_violations) -> None:
    """Screenshots at both widths, and no axe violation at either."""
    assert axe_violations() == [], name
    screenshot(name)
    page.set_viewport_size(PHONE)
    screenshot(f"{name}-phone")
    assert axe_violations() == [], name
    page.set_viewport_size(DESKTOP)


def expect_marked(diff) -> None:
    """The new section is underlined as added, the reworded words struck through and underlined."""
    added = diff.locator("ins", has_text="h. Misuse of Generative AI Tools")
    expect(added).to_be_visible()
    assert added.evaluate("e => getComputedStyle(e).textDecorationLine") == "underline"
    removed = diff.locator("del", has_text="are expected to")
    expect(removed).to_be_visible()
    assert removed.evaluate("e => getComputedStyle(e).textDecorationLine") == "line-through"
    expect(diff.locator("ins", has_text="must")).to_be_visible()
    # Read aloud, each change says what it is.
    expect(added).to_contain_text("added:")
    expect(removed).to_contain_text("removed:")
    # The formatting shows as formatting: bold text, no Markdown marks.
    expect(diff.locator("strong", has_text="Compliance:")).to_be_visible()
    assert "###" not in diff.inner_text()
    assert "**" not in diff.inner_text()


def test_the_signer_sees_the_changes_as_formatted_text(
    asked_to_sign_again, portal, page, screenshot, axe_violations, csp_violations
):
    sign_in(page, portal, "employee@example.com")
    page.goto(f"{portal}/policies/acceptable-use-policy/")
    changes = page.get_by_role("region", name="What changed since you signed")
    expect(changes).to_contain_text("You signed version 1.1")

    expect_marked(changes.locator(".rendered-diff"))
    expect(changes).to_contain_text("removed text")
    expect(changes).to_contain_text("added text")
    # The policy's own headings stay the only ones: the diff's are styled text.
    expect(changes.get_by_role("heading", name="Misuse of Generative AI Tools")).to_have_count(0)
    changes.scroll_into_view_if_needed()
    look(page, "changes-since-signed", screenshot, axe_violations)
    assert csp_violations == []


def test_the_administrator_sees_the_formatted_diff_and_the_source_one_click_away(
    draft_2_0, portal, page, screenshot, axe_violations, csp_violations
):
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/revisions/{draft_2_0.pk}/")
    section = page.get_by_role("region", name="Changes from version 1.1 to 2.0")
    expect_marked(section.locator(".rendered-diff"))

    source = section.locator(".source-diff .diff")
    expect(source).to_be_hidden()
    section.get_by_text("Show the Markdown source diff").click()
    expect(source).to_be_visible()
    expect(source.locator("ins", has_text="### h. Misuse of Generative AI Tools")).to_be_visible()
    look(page, "revision-diff", screenshot, axe_violations)

    # On a phone the two columns stack: no column heading is left over a column it does not
    # describe, and each changed cell names its own version.
    page.set_viewport_size(PHONE)
    expect(source.locator(".diff__head")).to_be_hidden()
    changed = source.locator(".diff__row--changed", has_text="must adhere")
    expect(changed.locator(".diff__cell--old .diff__label")).to_have_text("Version 1.1")
    expect(changed.locator(".diff__cell--old")).to_contain_text(OLD_WORDING)
    expect(changed.locator(".diff__cell--new .diff__label")).to_have_text("Version 2.0")
    expect(changed.locator(".diff__cell--new")).to_contain_text(NEW_WORDING)
    added = source.locator(".diff__row--added", has_text="### h. Misuse")
    expect(added.locator(".diff__cell--new .diff__label")).to_have_text("Version 2.0")
    expect(added.locator(".diff__cell--old")).to_be_hidden()
    # A blank line added or removed is not labelled: a label always sits over some text.
    labelled = source.locator(".diff__label").evaluate_all(
        """labels => labels.map(label => [...label.parentElement.childNodes]
            .filter(node => !node.classList || node.classList.contains("diff__label") === false
                && node.classList.contains("visually-hidden") === false)
            .map(node => node.textContent).join("").trim())"""
    )
    assert labelled and all(labelled)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    expect(changed.locator(".diff__label")).to_have_count(2)
    expect(changed.locator(".diff__label").first).to_be_hidden()
    assert csp_violations == []
