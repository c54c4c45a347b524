"""A form sent back with errors says so at its top: "There is a problem", each error a link to
its field, the focus moved there. Nobody is left at the top of a long page while the messages
sit far below, next to the boxes (issue #18)."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in

SIGN_LINKS = ["Tick the box to confirm that you agree.", "Type your full name to sign."]


def summary_of(page):
    return page.locator("[data-error-summary]")


def check_summary(page, axe_violations, name: str) -> list[str]:
    """The summary is shown, focused and announced; each link leads to a field with its error."""
    summary = summary_of(page)
    expect(summary).to_have_count(1)
    expect(summary).to_be_focused()
    expect(summary).to_be_in_viewport()
    expect(summary).to_have_attribute("role", "alert")
    expect(summary).to_have_attribute("tabindex", "-1")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    targets = summary.get_by_role("link").evaluate_all(
        "links => links.map(link => link.getAttribute('href'))"
    )
    for target in targets:
        field = page.locator(target)
        expect(field).to_have_count(1)
        # The error next to the field keeps its id, which the control is described by.
        error_id = re.sub(r"_0$", "", target.removeprefix("#")) + "_error"
        expect(page.locator(f"#{error_id}")).to_be_visible()
    # What the person sees once the page is back: the window, not the whole page.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"error-summary-{name}.png"))
    assert axe_violations() == [], name
    return targets


def test_signing_with_a_missing_field_lands_on_the_summary_in_the_signing_panel(
    portal, page, axe_violations, csp_violations
):
    sign_in(page, portal, "employee@example.com")
    page.goto(f"{portal}/policies/acceptable-use-policy/")
    page.get_by_role("button", name="Sign", exact=True).click()

    # The page comes back at the signing panel, not at its top, some 4,000 px above.
    expect(page).to_have_url(re.compile(r"/sign/#sign-errors$"))
    panel = page.locator("#sign")
    expect(panel.locator("[data-error-summary]")).to_have_count(1)
    targets = check_summary(page, axe_violations, "signing")
    assert targets[:2] == ["#id_agree", "#id_typed_name"]
    expect(summary_of(page).get_by_role("link")).to_contain_text(SIGN_LINKS)
    typed_name = page.locator("#id_typed_name")
    expect(typed_name).to_have_attribute(
        "aria-describedby", "id_typed_name_helptext id_typed_name_error"
    )

    # Each link takes the person to its field, with the focus in it.
    summary_of(page).get_by_role("link", name=SIGN_LINKS[1]).click()
    expect(typed_name).to_be_focused()
    expect(typed_name).to_be_in_viewport()
    summary_of(page).get_by_role("link", name=SIGN_LINKS[0]).click()
    expect(page.locator("#id_agree")).to_be_focused()
    assert csp_violations == []


def test_an_error_of_the_whole_form_is_listed_too(portal, page, axe_violations):
    sign_in(page, portal, "employee@example.com", password="not the password")
    summary = summary_of(page)
    expect(summary).to_contain_text(
        "The email address and/or password you specified are not correct."
    )
    assert check_summary(page, axe_violations, "sign-in") == []


def test_every_form_a_signer_sends_sums_up_its_errors(portal, page, axe_violations):
    sign_in(page, portal, "employee@example.com")
    for name, path, button in [
        ("verify", "/verify/", "Check receipt"),
        ("concern", "/concerns/new/", "Send the report"),
    ]:
        page.goto(f"{portal}{path}")
        page.get_by_role("button", name=button, exact=True).click()
        assert check_summary(page, axe_violations, name), name


def test_every_form_an_administrator_sends_sums_up_its_errors(portal, page, axe_violations):
    sign_in(page, portal, "admin@example.com")
    for name, path, button in [
        ("person-new", "/manage/people/new/", "Add and invite"),
        ("policy-new", "/manage/policies/new/", "Create policy"),
        ("draft-new", "/manage/policies/acceptable-use-policy/revisions/new/", "Save as draft"),
        ("integrations", "/manage/integrations/", "Create the token"),
        ("people-import", "/manage/people/import/", "Check the file"),
    ]:
        page.goto(f"{portal}{path}")
        if name == "draft-new":
            page.get_by_role("textbox", name="Version").fill("")
        page.get_by_role("button", name=button, exact=True).click()
        assert check_summary(page, axe_violations, name), name
