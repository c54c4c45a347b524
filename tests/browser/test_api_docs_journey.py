"""An administrator makes a read token, opens the read API's documentation at /api/v1/docs and
tries an endpoint with the token from the page itself: the documentation runs under the portal's
Content-Security-Policy, loads nothing from another site, and lists every endpoint."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import sign_in

ENDPOINTS = [
    "/api/v1/policies",
    "/api/v1/policies/{slug}",
    "/api/v1/policies/{slug}/figures",
    "/api/v1/policies/{slug}/people",
    "/api/v1/people/status",
    "/api/v1/acknowledgements",
    "/api/v1/acknowledgements/{receipt_number}",
    "/api/v1/acknowledgements/{receipt_number}/receipt.pdf",
    "/api/v1/ledger/checkpoint",
]


def test_the_documentation_lists_the_endpoints_and_tries_one_with_a_token(
    portal, page, screenshot, csp_violations
):
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(portal) else elsewhere.append(request.url),
    )

    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/integrations/")
    page.get_by_label("Name").fill("HR system")
    page.get_by_label("Read API").check()
    page.get_by_role("button", name="Create the token").click()
    expect(page.get_by_role("heading", name="The token HR system")).to_be_visible()
    secret = page.get_by_test_id("token-secret").inner_text().strip()
    assert secret.startswith("aup_read_")
    page.locator('main a[href$="/api/v1/docs"]').click()

    expect(page.get_by_role("heading", name=re.compile("Policy portal read API"))).to_be_visible()
    for path in ENDPOINTS:
        expect(page.locator(f'.opblock-summary-path[data-path="{path}"]')).to_have_count(1)
    screenshot("docs")

    # Authorize with the token, then try the list of policies from the page.
    page.get_by_role("button", name=re.compile("Authorize")).first.click()
    page.locator(".modal-ux input[type=text], .modal-ux input[type=password]").first.fill(secret)
    page.locator(".modal-ux button.modal-btn.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    operation = page.locator("#operations-Policies-list_policies")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table tbody .response-col_status").first
    expect(live).to_contain_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text("acceptable-use-policy")
    screenshot("tried")

    assert csp_violations == []
    assert errors == []
    assert elsewhere == []
