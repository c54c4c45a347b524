"""An administrator puts a long-standing employee into the contractors audience: the employee is
told the contractors' policy now applies to them, has its full time to sign it from today, and
the auditor's figures as of just before do not count them there; once they leave, they are no
longer pending."""

import datetime as dt
import time

import time_machine
from django.utils import timezone
from django.utils.dateformat import format as date_format
from playwright.sync_api import expect

from acknowledgements.models import Audience, User
from acknowledgements.policies import actions as policy_actions
from tests.browser.conftest import ARTIFACTS, sign_in

DAY = dt.timedelta(days=1)


def _contractor_terms():
    """A policy for contractors, published and in effect from now, with 14 days to sign."""
    policy = policy_actions.create_policy(
        actor=None,
        name="Contractor Terms",
        slug="contractor-terms",
        owner=None,
        audiences=[Audience.objects.get(slug="contractors")],
    )
    draft = policy_actions.create_draft(
        actor=None,
        policy=policy,
        version="1.0",
        body="# Contractor Terms\n\nContractors keep client data on company devices only.\n",
        change="material",
        effective_at=timezone.now(),
        due_days=14,
    )
    policy_actions.publish_revision(actor=None, revision=draft)
    return policy


def test_a_person_put_into_an_audience_is_told_and_given_the_full_time_to_sign(
    portal, browser, page, screenshot, csp_violations, axe_violations, mailoutbox
):
    with time_machine.travel(timezone.now() - 60 * DAY, tick=False):
        _contractor_terms()
    employee = User.objects.get(email="employee@example.com")
    mailoutbox.clear()
    time.sleep(1.1)  # a moment, to the second, between the demo's people and the move
    before_move = timezone.localtime(timezone.now()).strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.1)

    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/people/{employee.pk}/")
    save = page.get_by_role("button", name="Save audiences")
    page.locator("form", has=save).get_by_label("Contractors", exact=True).check()
    save.click()
    expect(page.get_by_text("The audiences of Demo Employee are saved.")).to_be_visible()
    screenshot("moved")
    assert axe_violations() == []

    due = date_format(timezone.localtime(timezone.now() + 14 * DAY), "j F Y")
    (email,) = [m for m in mailoutbox if m.to == ["employee@example.com"]]
    assert email.subject == f"Action needed: sign Contractor Terms 1.0 by {due}"
    assert "/policies/contractor-terms/" in email.body

    # A year in the company, yet not overdue: the fourteen days count from today.
    person = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB").new_page()
    sign_in(person, portal, "employee@example.com")
    person.goto(f"{portal}/policies/contractor-terms/")
    short_due = date_format(timezone.localtime(timezone.now() + 14 * DAY), "j M Y")
    expect(person.get_by_text(f"Not signed yet: due {short_due}").first).to_be_visible()
    person.screenshot(path=str(ARTIFACTS / "scope-journey-employee.png"), full_page=True)
    person.goto(f"{portal}/acknowledgements/")  # not sent to sign first: nothing is overdue
    expect(person).to_have_url(f"{portal}/acknowledgements/")

    # The auditor: just before the move the contractors' policy did not count them.
    auditor = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(auditor, portal, "auditor@example.com")
    people = f"{portal}/reports/policies/contractor-terms/people/"
    auditor.goto(f"{people}?as_of={before_move}")
    expect(auditor.get_by_text("audiences they were in at that moment")).to_be_visible()
    expect(auditor.get_by_role("cell", name="Demo Contractor")).to_be_visible()
    expect(auditor.get_by_role("cell", name="Demo Employee")).to_have_count(0)
    auditor.screenshot(path=str(ARTIFACTS / "scope-journey-before-the-move.png"), full_page=True)
    pending = f"{people}?status=pending"
    auditor.goto(pending)
    expect(auditor.get_by_role("cell", name="Demo Employee")).to_be_visible()
    auditor.screenshot(path=str(ARTIFACTS / "scope-journey-now.png"), full_page=True)

    # They leave: no longer pending from then on, still pending as of before.
    time.sleep(1.1)
    before_leaving = timezone.localtime(timezone.now()).strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.1)
    page.goto(f"{portal}/manage/people/{employee.pk}/")
    page.get_by_role("button", name="Record as having left").click()
    expect(page.get_by_text("is recorded as having left")).to_be_visible()
    auditor.goto(pending)
    expect(auditor.get_by_role("cell", name="Demo Contractor")).to_be_visible()
    expect(auditor.get_by_role("cell", name="Demo Employee")).to_have_count(0)
    auditor.goto(f"{pending}&as_of={before_leaving}")
    expect(auditor.get_by_role("cell", name="Demo Employee")).to_be_visible()
    assert csp_violations == []
