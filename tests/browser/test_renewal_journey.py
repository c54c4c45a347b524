"""Periodic re-acknowledgement: an administrator has the Acceptable Use Policy renewed every
month instead of every year (a wrong value is refused and changes nothing); five weeks later,
the employee who signed that day is asked to sign again, signs, and sees until when the new
signature counts."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from django.utils.dateformat import format as date_format
from playwright.sync_api import expect

from acknowledgements.models import Acknowledgement, PolicyRevision, User
from acknowledgements.standings import renewal
from tests.browser.conftest import sign_in
from tests.conftest import client_evidence, sign_through_service

DAY = dt.timedelta(days=1)


@pytest.fixture
def signed_today(portal):
    """The employee signed 1.1 today (before the browser starts: sealing the receipt runs an
    event loop of its own, which Playwright's would block)."""
    employee = User.objects.get(email="employee@example.com")
    current = PolicyRevision.objects.get(policy__slug="acceptable-use-policy", version="1.1")
    return sign_through_service(employee, current, client=client_evidence(browser_time_zone="UTC"))


def test_an_administrator_asks_for_monthly_renewal_and_a_lapsed_signer_signs_again(
    portal, signed_today, page, screenshot, axe_violations, csp_violations
):
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/policies/acceptable-use-policy/")
    renewal_card = page.get_by_role("region", name="Renewal")
    expect(renewal_card).to_contain_text("every 12 months")

    field = renewal_card.get_by_label("Re-acknowledge every (months)")
    field.fill("-1")
    renewal_card.get_by_role("button", name="Save renewal period").click()
    expect(page.locator("#id_months_error")).to_have_text(
        "Ensure this value is greater than or equal to 0."
    )
    screenshot("renewal-refused")

    page.get_by_role("region", name="Renewal").get_by_label("Re-acknowledge every (months)").fill(
        "1"
    )
    page.get_by_role("button", name="Save renewal period").click()
    expect(page.get_by_text("is re-acknowledged every month;")).to_be_visible()
    expect(page.get_by_role("region", name="Renewal")).to_contain_text(
        "Signers re-acknowledge this policy every month"
    )
    assert axe_violations() == []
    screenshot("renewal-set")
    page.get_by_role("button", name="Sign out").click()

    # Five weeks on, the month since the employee's signature has passed.
    lapse = renewal.months_later(signed_today.signed_at, 1, "UTC")
    later = lapse + 5 * DAY
    with time_machine.travel(later, tick=True):
        sign_in(page, portal, "employee@example.com")
        card = page.get_by_role("listitem").filter(has_text="Acceptable Use Policy")
        due = date_format(timezone.localtime(lapse + 30 * DAY), "j M Y")  # 1.0 gives 30 days
        expect(card).to_contain_text(f"Time to sign again: due {due}")
        screenshot("renewal-due")

        page.get_by_role("link", name="Read and sign", exact=True).click()
        page.get_by_label("I have read and understood this policy").check()
        page.get_by_label("Full name", exact=True).fill("Demo Employee")
        page.get_by_role("button", name="Sign", exact=True).click()
        expect(
            page.get_by_role("heading", name="Thank you, your signature is recorded")
        ).to_be_visible()
        renewed = Acknowledgement.objects.filter(person__email="employee@example.com").latest(
            "signed_at"
        )
        assert renewed.pk != signed_today.pk

        page.get_by_role("link", name="My policies", exact=True).click()
        until = date_format(
            timezone.localtime(renewal.months_later(renewed.signed_at, 1, None)), "j M Y"
        )
        expect(page.get_by_text(f"counts until {until}")).to_be_visible()
        screenshot("renewed")
    assert csp_violations == []
