"""A manager opens their team page, sees a direct report overdue and reminds them; then an
administrator reminds everyone on a policy's overdue list, and is told that the manager's
reminder of the day already reached one of them."""

import datetime as dt

import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from acknowledgements.models import Audience, Notification, User
from acknowledgements.policies import actions as policy_actions
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

DAY = dt.timedelta(days=1)


def _team_rules_overdue_for(*names: str) -> list[User]:
    """ "Team Rules" for employees, in effect for 60 days with 14 to sign, and these employees,
    in the company all that time and unsigned: overdue."""
    employees = Audience.objects.get(slug="employees")
    with time_machine.travel(timezone.now() - 60 * DAY, tick=False):
        policy = policy_actions.create_policy(
            actor=None, name="Team Rules", slug="team-rules", owner=None, audiences=[employees]
        )
        draft = policy_actions.create_draft(
            actor=None,
            policy=policy,
            version="1.0",
            body="# Team Rules\n\nLock your screen when you leave your desk.\n",
            change="material",
            effective_at=timezone.now(),
            due_days=14,
        )
        policy_actions.publish_revision(actor=None, revision=draft)
        people = []
        for name in names:
            person = User.objects.create_user(
                email=f"{name.split()[0].lower()}@example.com", password=PASSWORD, full_name=name
            )
            person.audiences.add(employees)
            people.append(person)
    return people


def test_a_manager_reminds_an_overdue_report_and_an_administrator_reminds_everyone_listed(
    portal, browser, page, screenshot, csp_violations, axe_violations, mailoutbox
):
    rita, _otto = _team_rules_overdue_for("Rita Report", "Otto Overdue")
    rita.manager = User.objects.get(email="employee@example.com")
    rita.save(update_fields=["manager"])
    mailoutbox.clear()

    # The manager: "My team" in the menu, Rita overdue, one press to remind her.
    sign_in(page, portal, "employee@example.com")
    page.get_by_role("link", name="My team").click()
    expect(page).to_have_url(f"{portal}/team/")
    row = page.get_by_role("row", name="Rita Report")
    expect(row.filter(has_text="Team Rules 1.0")).to_contain_text("Overdue")
    screenshot("team")
    assert axe_violations() == []
    page.get_by_role("button", name="Remind Rita Report to sign Team Rules").click()
    expect(page.get_by_text("Reminder queued for Rita Report about Team Rules.")).to_be_visible()
    expect(
        page.get_by_role("row", name="Rita Report").filter(has_text="Team Rules 1.0")
    ).to_contain_text("Reminded today")
    screenshot("reminded")
    (email,) = [m for m in mailoutbox if m.to == ["rita@example.com"]]
    assert email.subject == "Reminder: please sign Team Rules 1.0"
    assert "/policies/team-rules/" in email.body

    # The administrator: everyone on the overdue list, every page of it, in one press.
    page.context.clear_cookies()
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/reports/policies/team-rules/people/?status=overdue")
    expect(page.get_by_role("link", name="Otto Overdue")).to_be_visible()
    assert axe_violations() == []
    page.get_by_role("button", name="Remind everyone listed (2)").click()
    expect(
        page.get_by_text("Reminder queued for 1 person. 1 person had already been reminded today.")
    ).to_be_visible()
    screenshot("everyone-listed")
    reminded = Notification.objects.filter(kind=Notification.Kind.MANUAL_REMINDER)
    assert sorted(reminded.values_list("person__email", flat=True)) == [
        "otto@example.com",
        "rita@example.com",
    ]
    assert csp_violations == []
