"""An administrator makes a token for the company directory, which provisions people with it over
SCIM until the administrator revokes it; the page shows the token once and when it was last used.
"""

import json
import re
import urllib.error
import urllib.request

from playwright.sync_api import expect

from tests.browser.conftest import sign_in

SCIM_JSON = "application/scim+json"


def list_users(portal: str, secret: str) -> tuple[int, dict]:
    """GET /scim/v2/Users as the directory sends it: over HTTP, with the token as bearer."""
    request = urllib.request.Request(
        f"{portal}/scim/v2/Users?count=1",
        headers={"Authorization": f"Bearer {secret}", "Accept": SCIM_JSON},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def test_a_token_is_shown_once_used_by_the_directory_and_revoked(
    portal, page, screenshot, csp_violations, axe_violations
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal)
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/integrations/")
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()
    expect(page.get_by_text("No token yet.")).to_be_visible()
    assert axe_violations() == []

    page.get_by_label("Name").fill("Entra ID")
    page.get_by_role("button", name="Create the token").click()
    expect(page.get_by_role("heading", name="The token Entra ID")).to_be_visible()
    expect(
        page.get_by_text(
            "it is shown only this once, and the portal keeps no copy it could show again"
        )
    ).to_be_visible()
    row = page.get_by_role("row", name=re.compile(r"^Entra ID\b"))
    expect(row).to_contain_text("Never")  # not used yet
    screenshot("created")
    assert axe_violations() == []

    # The administrator copies the token as shown, as they would to paste it into the directory.
    shown = page.get_by_test_id("token-secret")
    shown.click(click_count=3)
    page.keyboard.press("ControlOrMeta+C")
    secret = page.evaluate("navigator.clipboard.readText()").strip()
    assert secret == shown.inner_text().strip() and len(secret) >= 32

    status, listing = list_users(portal, secret)
    assert status == 200, listing
    assert listing["totalResults"] >= 1

    # Shown once: the page that lists the tokens never shows it again.
    page.goto(f"{portal}/manage/integrations/")
    assert secret not in page.content()
    expect(page.get_by_test_id("token-secret")).to_have_count(0)
    last_used = row.get_by_role("cell").nth(2)
    expect(last_used.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    expect(last_used).not_to_contain_text("Never")
    screenshot("used")

    row.get_by_role("button", name="Revoke Entra ID").click()
    expect(
        page.get_by_text("The token Entra ID is revoked: it can no longer be used.")
    ).to_be_visible()
    expect(row.get_by_role("button", name="Revoke Entra ID")).to_have_count(0)
    screenshot("revoked")
    assert axe_violations() == []

    status, refusal = list_users(portal, secret)
    assert status == 401, refusal
    assert csp_violations == []
