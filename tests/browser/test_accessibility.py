"""Every page a signer, an administrator or an auditor sees passes axe-core's WCAG A/AA rules."""

from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in

SIGNER_PAGES = [
    "/",
    "/policies/acceptable-use-policy/",
    "/policies/acceptable-use-policy/v/1.0/",
    "/acknowledgements/",
    "/verify/",
    "/accounts/password/change/",
    "/accounts/2fa/",
]


def test_sign_in_page_has_no_violations(portal, page, axe_violations):
    page.goto(f"{portal}/accounts/login/")
    assert axe_violations() == []
    page.get_by_role("button", name="Sign in").click()  # errors shown in the form
    assert axe_violations() == []


def test_signer_pages_have_no_violations(portal, page, axe_violations, screenshot):
    sign_in(page, portal, "employee@example.com")
    failures = {}
    for path in SIGNER_PAGES:
        page.goto(f"{portal}{path}")
        if found := axe_violations():
            failures[path] = found
    assert failures == {}


def test_signing_form_errors_have_no_violations(portal, page, axe_violations):
    sign_in(page, portal, "employee@example.com")
    page.goto(f"{portal}/policies/acceptable-use-policy/")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(
        page.locator("#id_agree_error").get_by_text("Tick the box to confirm that you agree.")
    ).to_be_visible()
    assert axe_violations() == []


def focused(page) -> dict:
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {
                tag: el.tagName.toLowerCase(),
                name: el.getAttribute('name') || '',
                text: (el.innerText || el.value || '').trim().slice(0, 60),
                outline: style.outlineStyle + ' ' + style.outlineWidth,
            };
        }"""
    )


def test_signing_with_the_keyboard_alone(portal, page, screenshot):
    sign_in(page, portal, "employee@example.com")
    page.goto(f"{portal}/policies/acceptable-use-policy/")

    page.keyboard.press("Tab")
    first = focused(page)
    assert first["text"] == "Skip to main content"
    assert first["outline"] != "none 0px", "focus must be visible"

    # Tab through the page until the attestation checkbox, as a keyboard user would.
    order = []
    for _ in range(200):
        page.keyboard.press("Tab")
        now = focused(page)
        order.append(now)
        if now["name"] == "agree":
            break
    assert order[-1]["name"] == "agree", "the attestation checkbox must be reachable by Tab"
    assert order[-1]["outline"] != "none 0px"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "typed_name"
    page.keyboard.type("Demo Employee")
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "consent"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Sign"
    screenshot("keyboard-focus-on-sign")
    page.keyboard.press("Enter")
    expect(
        page.get_by_role("heading", name="Thank you, your signature is recorded")
    ).to_be_visible()


ADMIN_PAGES = [
    "/manage/",
    "/manage/policies/acceptable-use-policy/",
    "/manage/policies/acceptable-use-policy/revisions/new/",
    "/manage/policies/new/",
    "/manage/people/",
    "/manage/concerns/",
    "/concerns/new/",
    "/preferences/",
]
AUDITOR_PAGES = [
    "/reports/",
    "/reports/policies/acceptable-use-policy/people/",
    "/reports/policies/acceptable-use-policy/people/?status=pending",
    "/reports/audit-log/",
    "/reports/declines/",
    "/reports/exports/",
    "/reports/policies/acceptable-use-policy/export/acknowledgements.xlsx",
]


def _violations_on(page, portal, paths, axe_violations) -> dict:
    failures = {}
    for path in paths:
        page.goto(f"{portal}{path}")
        if found := axe_violations():
            failures[path] = found
    return failures


def test_administrator_pages_have_no_violations(portal, page, axe_violations):
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/")
    page.get_by_role("link", name="2.0").first.click()
    revision_page = page.url.removeprefix(portal)
    assert _violations_on(page, portal, [*ADMIN_PAGES, revision_page], axe_violations) == {}


def test_auditor_pages_have_no_violations(portal, page, axe_violations):
    sign_in(page, portal, "auditor@example.com")
    assert _violations_on(page, portal, AUDITOR_PAGES, axe_violations) == {}


def test_text_reflows_at_320_css_pixels(portal, browser):
    """WCAG 1.4.10: no horizontal scrolling at 320 px (what 1280 px at 400% zoom shows)."""
    context = browser.new_context(viewport={"width": 320, "height": 640})
    narrow = context.new_page()
    sign_in(narrow, portal, "employee@example.com")
    too_wide = {}
    for path in ["/", "/policies/acceptable-use-policy/", "/acknowledgements/", "/verify/"]:
        narrow.goto(f"{portal}{path}")
        width = narrow.evaluate("document.documentElement.scrollWidth")
        if width > 320:
            too_wide[path] = width
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = path.strip("/").replace("/", "-") or "home"
        narrow.screenshot(path=str(ARTIFACTS / f"reflow-320-{name}.png"), full_page=True)
    context.close()
    assert too_wide == {}
