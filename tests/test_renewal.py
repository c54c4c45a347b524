"""Periodic re-acknowledgement (standings/renewal.py): a signature counts N months in its
signer's time zone, then the person is due for renewal, then lapsed; reminders, the gate, the
lists and the evidence follow. Time is moved, never slept."""

import datetime as dt
import json
import zoneinfo

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from acknowledgements.models import (
    Acknowledgement,
    LedgerEntry,
    Notification,
    RenewalPeriod,
    SignatureTerm,
)
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import sending
from acknowledgements.policies import actions as policy_actions
from acknowledgements.reports import figures, lists
from acknowledgements.standings import coverage, renewal
from tests.conftest import client_evidence, sign_through_service

UTC = dt.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def at(zone, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


# --- The lapse --------------------------------------------------------------------------------


def test_a_month_later_is_read_on_the_signers_wall_clock():
    # 30 March, 22:00 in New York is already 31 March in UTC: a month later is 30 April in
    # New York (1 May, 02:00 UTC), where counting in UTC would have said 30 April, 02:00 UTC.
    signed = at(NEW_YORK, 2026, 3, 30, 22, 0)
    assert renewal.months_later(signed, 1, "America/New_York") == at(UTC, 2026, 5, 1, 2, 0)
    assert renewal.months_later(signed, 1, "UTC") == at(UTC, 2026, 4, 30, 2, 0)


def test_the_day_is_cut_to_the_months_last_and_daylight_saving_is_followed():
    assert renewal.months_later(at(UTC, 2027, 1, 31, 9), 1, "UTC") == at(UTC, 2027, 2, 28, 9)
    assert renewal.months_later(at(UTC, 2028, 1, 31, 9), 1, "UTC") == at(UTC, 2028, 2, 29, 9)
    assert renewal.months_later(at(UTC, 2026, 11, 30, 9), 3, "UTC") == at(UTC, 2027, 2, 28, 9)
    # Noon in Paris in January (UTC+1) is noon in Paris in July (UTC+2).
    january = at(PARIS, 2026, 1, 15, 12)
    assert renewal.months_later(january, 6, "Europe/Paris") == at(PARIS, 2026, 7, 15, 12)
    # No zone, or one the browser made up: the portal's zone (UTC here).
    assert renewal.months_later(at(UTC, 2026, 1, 15, 12), 12, None) == at(UTC, 2027, 1, 15, 12)
    assert renewal.months_later(at(UTC, 2026, 1, 15, 12), 12, "Mars/Olympus") == at(
        UTC, 2027, 1, 15, 12
    )


# --- A yearly policy over time ----------------------------------------------------------------


@pytest.fixture
def yearly(policy, publish):
    """A policy renewed every month (due_days 14) whose version 1.0 took effect long ago."""
    start = timezone.now() - dt.timedelta(days=400)
    revision = publish(policy, "1.0", effective_at=start, due_days=14)
    with time_machine.travel(start, tick=False):
        policy_actions.set_renewal_period(actor=None, policy=policy, months=1)
    return revision


def sign_at(person, revision, moment, zone="America/New_York"):
    with time_machine.travel(moment, tick=False):
        return sign_through_service(
            person, revision, client=client_evidence(browser_time_zone=zone)
        )


def standing_at(person, moment):
    (standing,) = coverage.standings_for(person, moment=moment)
    return standing


def test_coverage_lapses_on_the_right_day_then_is_due_then_lapsed(make_person, yearly):
    person = make_person("Ada Lovelace", joined=yearly.effective_at)
    signed = at(NEW_YORK, 2026, 3, 30, 22, 0)
    acknowledgement = sign_at(person, yearly, signed)
    lapse = at(UTC, 2026, 5, 1, 2, 0)  # 30 April, 22:00 in New York
    second = dt.timedelta(seconds=1)

    before = standing_at(person, lapse - second)
    assert before.status == coverage.Status.SIGNED
    assert before.lapses_at == lapse
    # On 30 April in UTC (a UTC reading would already have lapsed) it still counts.
    assert standing_at(person, at(UTC, 2026, 4, 30, 12)).status == coverage.Status.SIGNED

    due = standing_at(person, lapse)
    assert due.status == coverage.Status.RENEWAL_DUE
    assert due.due_at == lapse + dt.timedelta(days=14)
    assert not due.overdue and due.renewing

    late = standing_at(person, lapse + dt.timedelta(days=14, seconds=1))
    assert late.status == coverage.Status.LAPSED
    assert late.overdue  # the gate and the banner treat it as any overdue signature

    # Renewing: a new signature and receipt of the same version, counting a month again.
    renewed = sign_at(person, yearly, lapse + dt.timedelta(days=20))
    assert renewed.pk != acknowledgement.pk and renewed.renewal == 1
    evidence = json.loads(bytes(renewed.ledger_entry.payload))
    assert evidence["renewal"]["every_months"] == 1
    again = standing_at(person, lapse + dt.timedelta(days=21))
    assert again.status == coverage.Status.SIGNED
    assert again.covering_acknowledgement == renewed
    assert SignatureTerm.objects.filter(person=person).count() == 2


def test_signing_while_it_counts_records_nothing_new(make_person, yearly):
    person = make_person("Ada Lovelace", joined=yearly.effective_at)
    moment = timezone.now() - dt.timedelta(days=3)
    first = sign_at(person, yearly, moment)
    assert sign_at(person, yearly, moment + dt.timedelta(days=1)) == first
    assert Acknowledgement.objects.filter(person=person).count() == 1


def test_the_gate_sends_a_lapsed_person_to_the_policy(logged_in, make_person, yearly):
    person = make_person("Ada Lovelace", joined=yearly.effective_at)
    sign_at(person, yearly, timezone.now() - dt.timedelta(days=70))
    client = logged_in(person)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("acknowledgements:policy_detail", args=["test-policy"])
    page = client.get(response["Location"]).content.decode()
    assert "Renewal overdue: was due" in page


def test_reminders_and_the_overdue_notice_go_once_per_person_and_renewal(
    make_person, yearly, settings
):
    settings.PORTAL_REMINDER_DAYS = [7]
    person = make_person("Ada Lovelace", joined=yearly.effective_at)
    signed = timezone.now() - dt.timedelta(days=200)
    sign_at(person, yearly, signed, zone="UTC")
    lapse = renewal.months_later(signed, 1, "UTC")
    due = lapse + dt.timedelta(days=14)

    def queued(moment):
        with time_machine.travel(moment, tick=False):
            return notification_actions.queue_reminders(moment=moment)

    assert queued(lapse - dt.timedelta(days=1)) == 0  # still counts
    assert queued(lapse + dt.timedelta(hours=1)) == 1  # "time to sign again"
    assert queued(due - dt.timedelta(days=6)) == 1  # 7 days before the renewal's due date
    assert queued(due - dt.timedelta(days=5)) == 0
    assert queued(due + dt.timedelta(minutes=1)) == 1  # overdue
    assert queued(due + dt.timedelta(days=1)) == 0
    kinds = list(Notification.objects.values_list("kind", "occasion"))
    assert kinds == [
        (Notification.Kind.RENEWAL_DUE, renewal.occasion(lapse)),
        (Notification.Kind.REMINDER, renewal.occasion(lapse)),
        (Notification.Kind.OVERDUE, renewal.occasion(lapse)),
    ]
    # The emails say "again" and the renewal's due date.
    with time_machine.travel(due + dt.timedelta(days=1), tick=False):
        sending.send_notifications.call()
    reminder = next(m for m in mail.outbox if "Reminder" in m.subject)
    assert "no longer counts" in reminder.body
    assert f"{due.day} {due:%B %Y}" in reminder.body
    lapsed = next(m for m in mail.outbox if m.subject.startswith("Time to sign"))
    assert f"counted until {lapse.day} {lapse:%B %Y}" in lapsed.body

    # Renewed, it lapses again a month later: new reminders for the new renewal.
    renewed_at = due + dt.timedelta(days=2)
    sign_at(person, yearly, renewed_at, zone="UTC")
    second_lapse = renewal.months_later(renewed_at, 1, "UTC")
    assert queued(second_lapse + dt.timedelta(days=8)) == 2  # lapsed, and 7 days before due
    assert Notification.objects.filter(occasion=renewal.occasion(second_lapse)).count() == 2


def test_a_period_set_later_lets_old_signatures_count_until_it_began(
    make_person, policy, publish, admin_user
):
    revision = publish(policy, "1.0", effective_at=timezone.now() - dt.timedelta(days=800))
    person = make_person("Ada Lovelace", joined=revision.effective_at)
    sign_at(person, revision, timezone.now() - dt.timedelta(days=700))
    set_at = timezone.now() - dt.timedelta(days=1)
    with time_machine.travel(set_at, tick=False):
        assert policy_actions.set_renewal_period(actor=admin_user, policy=policy, months=12)
        assert not policy_actions.set_renewal_period(actor=admin_user, policy=policy, months=12)
    renewal.fill_terms(policy_id=policy.pk)

    now = standing_at(person, timezone.now())
    assert now.status == coverage.Status.RENEWAL_DUE
    assert now.due_at == set_at + dt.timedelta(days=14)
    # "As of" before the period: the rule then was that signatures do not lapse.
    assert standing_at(person, set_at - dt.timedelta(hours=1)).status == coverage.Status.SIGNED
    # The change is one audited ledger row.
    actions = [
        json.loads(bytes(entry.payload))
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
    ]
    (recorded,) = [a for a in actions if a["action"] == "renewal_period_set"]
    assert recorded["details"] == {"policy": policy.slug, "months": 12, "previous_months": 0}
    # Turned off again: the signature counts again.
    policy_actions.set_renewal_period(actor=admin_user, policy=policy, months=0)
    assert standing_at(person, timezone.now()).status == coverage.Status.SIGNED


def test_lists_and_the_dashboard_count_renewal_due_and_lapsed(make_person, yearly):
    now = timezone.now()
    fresh, due, lapsed = (make_person(n, joined=yearly.effective_at) for n in ("A", "B", "C"))
    sign_at(fresh, yearly, now - dt.timedelta(days=3))
    sign_at(due, yearly, now - dt.timedelta(days=35))
    sign_at(lapsed, yearly, now - dt.timedelta(days=60))
    timeline = coverage.timeline_for(yearly.policy, now)
    statuses = {p.full_name: p.status for p in lists.people(timeline, now)}
    assert statuses == {"A": "signed", "B": "renewal_due", "C": "lapsed"}
    completion = figures.completion(timeline, now)
    assert (completion.signed, completion.renewal_due, completion.lapsed) == (1, 1, 1)
    assert [part.label for part in completion.parts if part.count] == [
        "Signed",
        "Renewal due",
        "Lapsed",
    ]


# --- The administrator's setting -------------------------------------------------------------


@pytest.mark.parametrize("months", ["-1", "121", "yearly", ""])
def test_a_bad_renewal_period_is_refused_and_changes_nothing(client, admin_user, policy, months):
    client.force_login(admin_user)
    url = reverse("acknowledgements:manage_policy_renewal", args=[policy.slug])
    response = client.post(url, {"months": months})
    assert response.status_code == 400
    assert "renewal-errors" in response.content.decode()
    assert not RenewalPeriod.objects.exists()


def test_an_administrator_sets_a_yearly_renewal(client, admin_user, policy, revision):
    client.force_login(admin_user)
    url = reverse("acknowledgements:manage_policy_renewal", args=[policy.slug])
    response = client.post(url, {"months": "12"}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "re-acknowledged every 12 months" in page
    assert "every 12 months (since" in page
    (period,) = RenewalPeriod.objects.all()
    assert (period.months, period.set_by) == (12, admin_user)


def test_a_reminder_sent_by_hand_gives_the_renewals_due_date(make_person, yearly, admin_user):
    from acknowledgements.notifications import reminders

    person = make_person("Ada Lovelace", joined=yearly.effective_at)
    signed = timezone.now() - dt.timedelta(days=40)
    sign_at(person, yearly, signed, zone="UTC")
    due = renewal.months_later(signed, 1, "UTC") + dt.timedelta(days=14)
    reminders.send_manual_reminders(actor=admin_user, policy=yearly.policy, person_ids=[person.pk])
    sending.send_notifications.call()
    (email,) = mail.outbox
    assert f"Due date: {due.day} {due:%B %Y}" in email.body
