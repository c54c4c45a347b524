"""An administrator registers a webhook endpoint and copies its secret, shown once; a person
signs, and the receiver gets the signed event, which the endpoint's delivery log shows."""

import re

from playwright.sync_api import expect

from acknowledgements.models import WebhookEndpoint
from tests.browser.conftest import sign_in
from tests.test_webhooks import Receiver, running


def test_an_endpoint_is_registered_told_of_a_signature_and_its_log_shows_it(
    portal, browser, page, screenshot, csp_violations, axe_violations, settings
):
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = True  # the receiver listens on 127.0.0.1
    with running(Receiver()) as receiver:
        sign_in(page, portal, "admin@example.com")
        page.goto(f"{portal}/manage/integrations/")
        page.get_by_role("link", name="Register and manage webhooks").click()
        expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
        assert axe_violations() == []

        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label(re.compile(r"revision\.published")).uncheck()
        page.get_by_role("button", name="Register the endpoint").click()
        shown = page.get_by_test_id("webhook-secret")
        secret = shown.inner_text().strip()
        assert secret.startswith("whsec_")
        receiver.secret = secret
        screenshot("registered")
        assert axe_violations() == []

        # Shown once: the list never shows it again.
        page.goto(f"{portal}/manage/integrations/webhooks/")
        expect(page.get_by_test_id("webhook-secret")).to_have_count(0)
        assert secret not in page.content()

        signer = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        signing = signer.new_page()
        sign_in(signing, portal, "employee@example.com")
        signing.get_by_role("link", name="Read and sign", exact=True).click()
        signing.get_by_label("I have read and understood this policy").check()
        signing.get_by_label("I agree to sign policy acknowledgements electronically").check()
        signing.get_by_label("Full name", exact=True).fill("Demo Employee")
        signing.get_by_role("button", name="Sign", exact=True).click()
        expect(
            signing.get_by_role("heading", name="Thank you, your signature is recorded")
        ).to_be_visible()
        signer.close()

        [message] = receiver.verified(secret)
        assert message["type"] == "acknowledgement.signed"
        assert message["data"]["person"]["email"] == "employee@example.com"

        page.get_by_role("link", name=receiver.url).click()
        log = page.get_by_test_id("delivery-log")
        row = log.get_by_role("row", name=re.compile(r"acknowledgement\.signed"))
        expect(row).to_contain_text("Delivered")
        expect(row).to_contain_text("204")
        expect(row.get_by_role("cell").nth(2)).to_have_text("1")  # attempts
        screenshot("log")
        assert axe_violations() == []

        row.get_by_role("button", name=re.compile("^Resend")).click()
        expect(page.get_by_text("is queued to be sent again")).to_be_visible()
        assert len(receiver.received) == 2
        assert WebhookEndpoint.objects.get().deliveries.get().status == "delivered"
    assert csp_violations == []
