"""Reminders sent by hand (administrators from the report lists, managers from /team/), the
managers' team page, and escalation of long-overdue people to their managers."""

import datetime as dt
import json
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from acknowledgements.models import Escalation, LedgerEntry, Notification, User
from acknowledgements.notifications import escalation, reminders
from acknowledgements.policies import actions as policy_actions
from acknowledgements.roles import AUDITORS, POLICY_ADMINISTRATORS
from acknowledgements.standings import coverage
from tests.conftest import PASSWORD
from tests.pages import text_of

DAY = dt.timedelta(days=1)
PEOPLE_URL = "/reports/policies/test-policy/people/"
REMIND_URL = "/reports/policies/test-policy/people/remind/"


# --- Helpers and fixtures ---------------------------------------------------------------------


def signed_in(user: User) -> Client:
    """A client of its own per person, signed in through the real sign-in form."""
    client = Client()
    # Followed to the page after it, which shows (and so clears) the "signed in" message.
    response = client.post(
        "/accounts/login/", {"login": user.email, "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain, "sign-in failed"
    return client


def audit_rows(action: str = "reminders_sent") -> list[tuple[LedgerEntry, dict]]:
    entries = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).order_by("pk")
    rows = [(entry, json.loads(bytes(entry.payload))) for entry in entries]
    return [(entry, payload) for entry, payload in rows if payload["action"] == action]


def manual_reminders() -> list[str]:
    return sorted(
        Notification.objects.filter(kind=Notification.Kind.MANUAL_REMINDER).values_list(
            "person__email", flat=True
        )
    )


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def overdue_revision(policy, publish):
    """1.0 took effect 30 days ago with 14 days to sign: everyone unsigned is 16 days overdue."""
    return publish(policy, "1.0", effective_at=timezone.now() - 30 * DAY, due_days=14)


@pytest.fixture
def admin(make_person, overdue_revision, sign):
    """A policy administrator who has signed (the signing gate lets them through)."""
    person = make_person("Grace Hopper", email="grace@example.com", role=POLICY_ADMINISTRATORS)
    sign(person, overdue_revision)
    return person


@pytest.fixture
def overdue_people(make_person, overdue_revision):
    return [
        make_person(name, email=f"{name.split()[0].lower()}@example.com")
        for name in ("Ada Lovelace", "Blaise Pascal", "Charles Babbage")
    ]


@pytest.fixture
def manager(make_person, overdue_revision, sign):
    person = make_person("Mary Manager", email="mary@example.com")
    sign(person, overdue_revision)
    return person


@pytest.fixture
def team_of(make_person):
    def make(manager: User, *names: str) -> list[User]:
        people = []
        for name in names:
            person = make_person(name, email=f"{name.split()[0].lower()}@example.com")
            person.manager = manager
            person.save(update_fields=["manager"])
            people.append(person)
        return people

    return make


# --- Reminders from the report lists ---------------------------------------------------------------


def test_an_administrator_reminds_one_person_of_the_overdue_list(
    admin, overdue_people, mailoutbox, django_capture_on_commit_callbacks, overdue_revision
):
    ada = overdue_people[0]
    client = signed_in(admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{REMIND_URL}?status=overdue", {"person": ada.pk})

    assert response.status_code == 302
    assert response["Location"] == f"{PEOPLE_URL}?status=overdue"
    assert shown_messages(client.get(response["Location"])) == ["Reminder queued for 1 person."]
    (email,) = mailoutbox
    assert email.to == ["ada@example.com"]
    assert email.subject == "Reminder: please sign Test Policy 1.0"
    due = coverage.standings_for(ada)[0].due_at
    assert f"Due date: {due:%-d %B %Y}." in email.body
    assert "Hello Ada Lovelace," in email.body
    assert "http://testserver/policies/test-policy/" in email.body
    notification = Notification.objects.get(kind=Notification.Kind.MANUAL_REMINDER)
    assert notification.status == Notification.Status.SENT
    assert notification.occasion == timezone.now().date().toordinal()


def test_the_overdue_list_offers_the_reminders_to_administrators_only(
    admin, make_person, overdue_people, overdue_revision, sign
):
    sign(overdue_people[2], overdue_revision)
    auditor = make_person("Alan Turing", email="alan@example.com", audience=None, role=AUDITORS)

    overdue = signed_in(admin).get(PEOPLE_URL, {"status": "overdue"}).content.decode()
    everyone = signed_in(admin).get(PEOPLE_URL).content.decode()
    as_of = signed_in(admin).get(PEOPLE_URL, {"as_of": timezone.now().isoformat()})
    for_auditor = signed_in(auditor).get(PEOPLE_URL, {"status": "overdue"}).content.decode()

    assert 'name="everyone"' in overdue and "Remind everyone listed (2)" in overdue
    assert overdue.count('name="selected"') == 2  # the two overdue people, not the signer
    # Unfiltered: a button on each row that needs it, no selection and no "everyone".
    assert everyone.count('name="person"') == 2
    assert 'name="selected"' not in everyone and 'name="everyone"' not in everyone
    assert 'id="remind-form"' not in as_of.content.decode()  # the past is not reminded
    assert 'id="remind-form"' not in for_auditor and "Reminder" not in for_auditor


def test_an_administrator_reminds_the_people_ticked(
    admin, overdue_people, mailoutbox, django_capture_on_commit_callbacks
):
    ada, blaise, _charles = overdue_people

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(admin).post(
            f"{REMIND_URL}?status=overdue", {"selected": [ada.pk, blaise.pk]}, follow=True
        )

    assert shown_messages(response) == ["Reminder queued for 2 people."]
    assert manual_reminders() == ["ada@example.com", "blaise@example.com"]
    assert sorted(m.to[0] for m in mailoutbox) == ["ada@example.com", "blaise@example.com"]


def test_nothing_ticked_reminds_nobody_and_says_so(admin, overdue_people):
    response = signed_in(admin).post(f"{REMIND_URL}?status=overdue", {}, follow=True)

    assert shown_messages(response) == ["Tick the people to remind, or remind everyone listed."]
    assert manual_reminders() == [] and audit_rows() == []


def test_everyone_listed_is_everyone_the_filters_match_not_just_the_page(
    admin, make_person, overdue_people, overdue_revision, sign, django_capture_on_commit_callbacks
):
    many = [make_person(f"Zed Person {n:02d}", email=f"zed{n:02d}@example.com") for n in range(52)]
    sign(many[0], overdue_revision)  # signed: not on the overdue list
    make_person("Carla Contractor", email="carla@example.com", audience="contractors")

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(admin).post(
            f"{REMIND_URL}?status=overdue&q=zed&page=2", {"everyone": "1"}, follow=True
        )

    assert shown_messages(response) == ["Reminder queued for 51 people."]
    assert manual_reminders() == sorted(p.email for p in many[1:])


def test_a_person_is_reminded_at_most_once_a_day_per_policy(
    admin, overdue_people, overdue_revision, mailoutbox, django_capture_on_commit_callbacks
):
    ada = overdue_people[0]
    client = signed_in(admin)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(REMIND_URL, {"person": ada.pk}, follow=True)

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(f"{REMIND_URL}?status=overdue", {"person": ada.pk}, follow=True)
        everyone = client.post(f"{REMIND_URL}?status=overdue", {"everyone": "1"}, follow=True)

    assert shown_messages(again) == [
        "No reminder was queued. 1 person had already been reminded today."
    ]
    assert shown_messages(everyone) == [
        "Reminder queued for 2 people. 1 person had already been reminded today."
    ]
    assert [m.to[0] for m in mailoutbox].count("ada@example.com") == 1

    with time_machine.travel(timezone.now() + DAY, tick=False):
        tomorrow = reminders.send_manual_reminders(
            actor=admin, policy=overdue_revision.policy, person_ids=[ada.pk]
        )
    assert (tomorrow.queued, tomorrow.skipped) == (1, 0)


def test_the_day_is_the_portals_day(settings, admin, overdue_people, overdue_revision):
    """At 23:30 and 00:30 UTC, two days in UTC but one in Paris: the second is skipped."""
    settings.TIME_ZONE = "Europe/Paris"
    ada = overdue_people[0]
    evening = dt.datetime.combine(timezone.now().date(), dt.time(23, 30), tzinfo=dt.UTC)

    first = reminders.send_manual_reminders(
        actor=admin, policy=overdue_revision.policy, person_ids=[ada.pk], moment=evening
    )
    second = reminders.send_manual_reminders(
        actor=admin, policy=overdue_revision.policy, person_ids=[ada.pk], moment=evening + DAY / 24
    )

    assert (first.queued, second.queued, second.already_reminded) == (1, 0, 1)


def test_only_people_who_must_still_sign_are_reminded(
    admin, make_person, overdue_people, overdue_revision, sign
):
    ada, blaise, _ = overdue_people
    sign(blaise, overdue_revision)
    contractor = make_person("Carla Contractor", audience="contractors")

    reminded = reminders.send_manual_reminders(
        actor=admin,
        policy=overdue_revision.policy,
        person_ids=[ada.pk, blaise.pk, contractor.pk, 999_999],
    )

    assert (reminded.queued, reminded.already_reminded, reminded.nothing_to_sign) == (1, 0, 3)
    assert manual_reminders() == ["ada@example.com"]


def test_each_reminder_request_is_one_audit_row(admin, overdue_people, overdue_revision, sign):
    ada, blaise, charles = overdue_people
    sign(charles, overdue_revision)
    client = signed_in(admin)
    client.post(REMIND_URL, {"person": ada.pk}, follow=True)

    response = client.post(REMIND_URL, {"selected": [ada.pk, blaise.pk, charles.pk]}, follow=True)

    assert shown_messages(response) == [
        "Reminder queued for 1 person. 1 person had already been reminded today. "
        "1 person has nothing to sign."
    ]
    (one, _), (selection, payload) = audit_rows()
    assert payload["actor"]["email"] == "grace@example.com"
    assert payload["details"] == {
        "policy": "test-policy",
        "version": "1.0",
        "count": 1,
        "skipped": 2,
    }
    assert selection.revision_id == overdue_revision.pk and selection.person_id is None
    assert one.person_id == ada.pk  # a reminder of one person is in their history


@pytest.mark.parametrize("role", ["signer", "auditor"])
def test_people_who_do_not_administer_policies_cannot_remind(
    role, make_person, overdue_people, overdue_revision, sign
):
    person = make_person(
        "Someone Else",
        email="someone@example.com",
        audience=None if role == "auditor" else "employees",
        role=AUDITORS if role == "auditor" else None,
    )
    if role == "signer":
        sign(person, overdue_revision)
    client = signed_in(person)

    one = client.post(REMIND_URL, {"person": overdue_people[0].pk})
    everyone = client.post(f"{REMIND_URL}?status=overdue", {"everyone": "1"})

    assert one.status_code == everyone.status_code == 403
    assert manual_reminders() == [] and audit_rows() == []


# --- The team page ----------------------------------------------------------------------------------


def test_a_manager_sees_their_direct_reports_only(
    manager, make_person, team_of, overdue_revision, sign
):
    _ada, blaise = team_of(manager, "Ada Lovelace", "Blaise Pascal")
    sign(blaise, overdue_revision)
    other_manager = make_person("Otto Other", email="otto@example.com")
    team_of(other_manager, "Charles Babbage")
    make_person("Dora Nobody", email="dora@example.com")
    gone = team_of(manager, "Evan Left")[0]
    gone.is_active = False
    gone.save(update_fields=["is_active"])

    response = signed_in(manager).get("/team/")

    text = text_of(response)
    assert response.status_code == 200
    assert "Ada Lovelace ada@example.com Test Policy 1.0 ! Overdue" in text
    assert "Blaise Pascal blaise@example.com Test Policy 1.0 ✓ Signed" in text
    for stranger in ("Charles", "Dora", "Evan", "Otto"):
        assert stranger not in text
    html = response.content.decode()
    assert html.count('action="/team/remind/"') == 1  # Ada's: Blaise has signed
    assert 'href="/team/" aria-current="page">My team</a>' in html


def test_people_without_reports_get_a_404_and_no_team_link(
    make_person, team_of, overdue_revision, sign
):
    signer = make_person("Ada Lovelace", email="ada@example.com")
    sign(signer, overdue_revision)
    former = make_person("Fred Former", email="fred@example.com")
    sign(former, overdue_revision)
    left = team_of(former, "Evan Left")[0]
    left.is_active = False
    left.save(update_fields=["is_active"])

    for person in (signer, former):
        client = signed_in(person)
        assert client.get("/team/").status_code == 404
        assert "My team" not in client.get("/").content.decode()


def test_a_manager_reminds_a_report_once_a_day(
    manager, team_of, mailoutbox, django_capture_on_commit_callbacks
):
    (ada,) = team_of(manager, "Ada Lovelace")
    client = signed_in(manager)

    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/team/remind/", {"person": ada.pk, "policy": "test-policy"})
    page = client.get(first["Location"])
    again = client.post("/team/remind/", {"person": ada.pk, "policy": "test-policy"}, follow=True)

    assert first["Location"] == "/team/"
    assert shown_messages(page) == ["Reminder queued for Ada Lovelace about Test Policy."]
    assert (
        "Reminded today" in text_of(page) and 'action="/team/remind/"' not in page.content.decode()
    )
    assert shown_messages(again) == ["Ada Lovelace was already reminded about Test Policy today."]
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]
    ((entry, payload), (_, second)) = audit_rows()
    assert payload["actor"]["email"] == "mary@example.com" and entry.person_id == ada.pk
    assert (payload["details"]["count"], second["details"]["skipped"]) == (1, 1)


def test_a_manager_cannot_remind_someone_elses_report(
    manager, make_person, team_of, overdue_revision, sign
):
    team_of(manager, "Ada Lovelace")
    other_manager = make_person("Otto Other", email="otto@example.com")
    (charles,) = team_of(other_manager, "Charles Babbage")
    outsider = make_person("Dora Nobody", email="dora@example.com")
    sign(outsider, overdue_revision)

    theirs = signed_in(manager).post(
        "/team/remind/", {"person": charles.pk, "policy": "test-policy"}
    )
    nobody = signed_in(outsider).post(
        "/team/remind/", {"person": charles.pk, "policy": "test-policy"}
    )
    admin_list = signed_in(manager).post(REMIND_URL, {"person": charles.pk})

    assert theirs.status_code == nobody.status_code == 404
    assert admin_list.status_code == 403
    assert manual_reminders() == [] and audit_rows() == []
    with pytest.raises(reminders.NotYourReport):
        reminders.remind_direct_report(
            manager=manager, person=charles, policy=overdue_revision.policy
        )
    assert manual_reminders() == []


def test_a_reminder_without_a_person_is_a_bad_request(manager, team_of):
    team_of(manager, "Ada Lovelace")

    response = signed_in(manager).post("/team/remind/", {"policy": "test-policy"})

    assert response.status_code == 400 and manual_reminders() == []


# --- Escalation to managers ------------------------------------------------------------------------


@pytest.fixture
def escalate_after_week(settings):
    settings.PORTAL_ESCALATE_AFTER_DAYS = 7


def escalation_emails(mailoutbox) -> list:
    return [m for m in mailoutbox if m.subject.startswith("Overdue in your team")]


def test_three_overdue_reports_make_one_email_naming_all_three(
    escalate_after_week, manager, team_of, mailoutbox, overdue_revision
):
    team = team_of(manager, "Ada Lovelace", "Blaise Pascal", "Charles Babbage")

    assert escalation.queue_escalations() == 3
    assert escalation.send_escalations() == 1

    (email,) = mailoutbox
    assert email.to == ["mary@example.com"]
    assert email.subject == "Overdue in your team: 3 policy signatures are late"
    due = f"{overdue_revision.due_at:%-d %B %Y}"
    for person in team:
        assert (
            f"- {person.full_name} <{person.email}>: Test Policy 1.0, due on {due} "
            "(16 days overdue)" in email.body
        )
    assert "http://testserver/team/" in email.body
    html = email.alternatives[0].content
    assert "Blaise Pascal" in html and "http://testserver/team/" in html
    assert set(Escalation.objects.values_list("status", flat=True)) == {"sent"}


def test_a_person_is_escalated_once_per_revision_and_due_date(
    escalate_after_week, manager, team_of, mailoutbox
):
    team_of(manager, "Ada Lovelace")

    for day in range(3):
        with time_machine.travel(timezone.now() + day * DAY + DAY / 2, tick=False):
            escalation.queue_escalations()
            escalation.send_escalations()

    assert len(mailoutbox) == 1
    assert Escalation.objects.count() == 1


def test_further_overdue_reports_within_a_day_wait_for_one_digest(
    escalate_after_week, manager, team_of, make_person, mailoutbox
):
    team_of(manager, "Ada Lovelace")
    escalation.queue_escalations()
    escalation.send_escalations()
    # Two more come to be a week overdue later that day (they came into scope later).
    later = [
        make_person(name, email=f"{name.split()[0].lower()}@example.com", joined=joined)
        for name, joined in (
            ("Blaise Pascal", timezone.now() - 21 * DAY - DAY / 4),
            ("Charles Babbage", timezone.now() - 21 * DAY - DAY / 2),
        )
    ]
    for person in later:
        person.manager = manager
        person.save(update_fields=["manager"])

    with time_machine.travel(timezone.now() + DAY / 2, tick=False):
        assert escalation.queue_escalations() == 2
        assert escalation.send_escalations() == 0  # Mary had one less than a day ago
    with time_machine.travel(timezone.now() + DAY + DAY / 24, tick=False):
        assert escalation.send_escalations() == 1

    first, digest = mailoutbox
    assert "Ada Lovelace" in first.body and "Blaise" not in first.body
    assert digest.subject == "Overdue in your team: 2 policy signatures are late"
    assert "Blaise Pascal" in digest.body and "Charles Babbage" in digest.body
    assert "Ada" not in digest.body


def test_not_overdue_long_enough_is_not_escalated(settings, manager, team_of, mailoutbox):
    settings.PORTAL_ESCALATE_AFTER_DAYS = 20  # they are 16 days overdue
    team_of(manager, "Ada Lovelace")

    assert escalation.queue_escalations() == 0
    with time_machine.travel(timezone.now() + 5 * DAY, tick=False):
        assert escalation.queue_escalations() == 1


def test_someone_who_signs_before_the_email_goes_is_left_out(
    escalate_after_week, manager, team_of, mailoutbox, overdue_revision, sign
):
    ada, _blaise = team_of(manager, "Ada Lovelace", "Blaise Pascal")
    escalation.queue_escalations()
    sign(ada, overdue_revision)

    escalation.send_escalations()

    (email,) = mailoutbox
    assert "Blaise Pascal" in email.body and "Ada" not in email.body
    assert Escalation.objects.get(person=ada).status == Escalation.Status.WITHDRAWN


def test_escalation_is_off_when_the_setting_is_empty(settings, manager, team_of, mailoutbox):
    settings.PORTAL_ESCALATE_AFTER_DAYS = None
    team_of(manager, "Ada Lovelace")

    out = StringIO()
    call_command("send_reminders", stdout=out)

    assert escalation.queue_escalations() == 0
    assert not Escalation.objects.exists()
    assert escalation_emails(mailoutbox) == []
    assert "escalation" not in out.getvalue()


def test_the_scheduled_command_escalates(escalate_after_week, manager, team_of, mailoutbox):
    team_of(manager, "Ada Lovelace", "Blaise Pascal")
    out = StringIO()

    call_command("send_reminders", stdout=out)
    call_command("send_reminders", stdout=StringIO())

    assert "Queued 2 escalation(s); emailed 1 manager(s)." in out.getvalue()
    (email,) = escalation_emails(mailoutbox)
    assert email.to == ["mary@example.com"]


def test_an_email_cut_off_after_its_hand_over_is_never_sent_again(
    escalate_after_week, manager, team_of, mailoutbox
):
    team_of(manager, "Ada Lovelace")
    escalation.queue_escalations()
    # A worker claimed it, handed it to the server, and stopped before recording the answer.
    Escalation.objects.update(
        status=Escalation.Status.SENDING,
        claim="gone",
        sent_at=timezone.now(),
        next_attempt_at=timezone.now() - DAY / 24,
    )

    assert escalation.send_escalations() == 0

    assert mailoutbox == []
    assert Escalation.objects.get().status == Escalation.Status.FAILED


def test_a_claim_that_ran_out_before_the_hand_over_is_sent(
    escalate_after_week, manager, team_of, mailoutbox
):
    team_of(manager, "Ada Lovelace")
    escalation.queue_escalations()
    Escalation.objects.update(
        status=Escalation.Status.SENDING,
        claim="gone",
        attempts=1,
        next_attempt_at=timezone.now() - DAY / 24,
    )

    assert escalation.send_escalations() == 1

    assert len(mailoutbox) == 1
    assert Escalation.objects.get().status == Escalation.Status.SENT


def test_a_lapsed_signature_is_escalated_once_per_renewal(
    escalate_after_week, policy, publish, make_person, sign, mailoutbox
):
    """Renewed every month: each lapse has a due date of its own, and so an escalation."""
    start = timezone.now() - 90 * DAY
    revision = publish(policy, "1.0", effective_at=start, due_days=14)
    mary = make_person("Mary Manager", email="mary@example.com", audience=None)
    ada = make_person("Ada Lovelace", email="ada@example.com")
    ada.manager = mary
    ada.save(update_fields=["manager"])
    with time_machine.travel(start + DAY, tick=False):
        policy_actions.set_renewal_period(actor=None, policy=policy, months=1)
        sign(ada, revision)
    (standing,) = coverage.standings_for(ada)
    assert standing.status == coverage.Status.LAPSED

    assert escalation.queue_escalations() == 1
    assert escalation.send_escalations() == 1
    assert Escalation.objects.get().due_at == standing.due_at
    sign(ada, revision)  # renewed: covered for another month
    assert escalation.queue_escalations() == 0

    with time_machine.travel(timezone.now() + 60 * DAY, tick=False):
        (lapsed_again,) = coverage.standings_for(ada)
        assert escalation.queue_escalations() == 1
        assert escalation.send_escalations() == 1

    assert sorted(Escalation.objects.values_list("due_at", flat=True)) == [
        standing.due_at,
        lapsed_again.due_at,
    ]
    _first, second = mailoutbox
    assert "Ada Lovelace <ada@example.com>: Test Policy 1.0" in second.body
