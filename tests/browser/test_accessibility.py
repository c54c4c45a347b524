"""Every page a signer, an administrator or an auditor sees passes axe-core's WCAG A/AA rules."""

from playwright.sync_api import expect

from tests.browser.conftest import sign_in

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
    expect(page.get_by_text("Tick the box to confirm that you agree.")).to_be_visible()
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
