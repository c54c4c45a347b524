"""Coming into a policy's scope and leaving it: the email, the due date, the gate and the
figures "as of" a moment, all from the audiences people had then (standings/memberships.py)."""

import datetime as dt
from collections import Counter

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from acknowledgements.models import Membership, Notification
from acknowledgements.people import actions as people_actions
from acknowledgements.people import import_apply
from acknowledgements.reports import census, lists
from acknowledgements.standings import coverage

DAY = dt.timedelta(days=1)
STATUSES = (
    coverage.Status.SIGNED,
    coverage.Status.PENDING,
    coverage.Status.OVERDUE,
    coverage.Status.DECLINED,
)
POLICY_URL = "/policies/test-policy/"


@pytest.fixture
def contractors_policy(make_policy, publish):
    """A policy for contractors, in effect for 60 days with 14 days to sign."""
    policy = make_policy(
        "contractor-terms", name="Contractor Terms", audience_slugs=("contractors",)
    )
    publish(policy, "1.0", due_days=14, effective_at=timezone.now() - 60 * DAY)
    return policy


@pytest.fixture
def moved(
    make_person, admin_user, audiences, contractors_policy, django_capture_on_commit_callbacks
):
    """An employee of a year moved into the contractors audience 2 days ago."""
    person = make_person("Mo Mover", email="mo@example.com")
    moved_at = timezone.now() - 2 * DAY
    with (
        time_machine.travel(moved_at, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        people_actions.set_person_audiences(
            actor=admin_user,
            person=person,
            audiences=[audiences["employees"], audiences["contractors"]],
        )
    person.moved_at = moved_at
    return person


def test_coming_into_scope_starts_the_due_date_then_not_at_joining(moved, contractors_policy):
    (standing,) = [s for s in coverage.standings_for(moved) if s.policy.pk == contractors_policy.pk]
    assert standing.came_into_scope == moved.moved_at
    assert standing.due_at == moved.moved_at + 14 * DAY
    assert standing.status == coverage.Status.PENDING  # joined a year ago, yet not overdue
    timeline = coverage.timeline_for(contractors_policy)
    (listed,) = lists.people(timeline, timezone.now())
    assert (listed.came_into_scope, listed.due_at) == (moved.moved_at, moved.moved_at + 14 * DAY)


def test_coming_into_scope_sends_one_action_needed_email(moved, mailoutbox, contractors_policy):
    (notice,) = Notification.objects.filter(person=moved)
    assert notice.kind == Notification.Kind.IN_SCOPE
    assert notice.status == Notification.Status.SENT
    (email,) = [m for m in mailoutbox if "Contractor Terms" in m.subject]
    due = timezone.localtime(moved.moved_at + 14 * DAY)
    assert email.subject == f"Action needed: sign Contractor Terms 1.0 by {due:%-d %B %Y}"
    assert "now applies to you" in email.body
    assert POLICY_URL.replace("test-policy", "contractor-terms") in email.body


def test_coming_back_into_scope_does_not_email_again_for_the_same_revision(
    moved, admin_user, audiences, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        people_actions.set_person_audiences(
            actor=admin_user, person=moved, audiences=[audiences["employees"]]
        )
        people_actions.set_person_audiences(
            actor=admin_user,
            person=moved,
            audiences=[audiences["employees"], audiences["contractors"]],
        )
    assert Notification.objects.filter(person=moved).count() == 1


def test_a_signed_person_coming_into_scope_is_not_emailed(
    make_person, admin_user, audiences, contractors_policy, sign, django_capture_on_commit_callbacks
):
    person = make_person(audience="contractors")
    sign(person, contractors_policy.revisions.get())
    with django_capture_on_commit_callbacks(execute=True):
        people_actions.set_person_audiences(
            actor=admin_user,
            person=person,
            audiences=[audiences["employees"], audiences["contractors"]],
        )
    assert not Notification.objects.filter(person=person).exists()


def test_moving_between_audiences_of_one_scope_keeps_the_due_date(
    make_person, admin_user, audiences, make_policy, publish, django_capture_on_commit_callbacks
):
    policy = make_policy("everyone", name="Everyone", audience_slugs=("employees", "contractors"))
    publish(policy, "1.0", due_days=14, effective_at=timezone.now() - 60 * DAY)
    person = make_person()  # an employee for a year: overdue
    with django_capture_on_commit_callbacks(execute=True):
        people_actions.set_person_audiences(
            actor=admin_user,
            person=person,
            audiences=[audiences["employees"], audiences["contractors"]],
        )
    (standing,) = coverage.standings_for(person)
    assert standing.status == coverage.Status.OVERDUE
    assert not Notification.objects.filter(person=person).exists()


def test_the_gate_lets_in_a_person_new_to_the_scope(logged_in, moved):
    assert logged_in(moved).get("/acknowledgements/").status_code == 200


def test_as_of_before_the_change_counts_the_audiences_people_had_then(
    moved, contractors_policy, audiences
):
    before, after = moved.moved_at - DAY, timezone.now()
    for moment, in_scope in [(before, 0), (after, 1)]:
        timeline = coverage.timeline_for(contractors_policy, moment)
        assert lists.people(timeline, moment).count() == in_scope
        found = census.take({0: timeline}, moment, dt.UTC)[0]
        assert sum(found.people[None, s] for s in STATUSES) == in_scope
        assert sum(found.people[audiences["contractors"].pk, s] for s in STATUSES) == (in_scope)


def test_a_leaver_counts_until_their_leaving_date_in_past_views(
    make_person, admin_user, policy, publish
):
    revision = publish(policy, "1.0", effective_at=timezone.now() - 30 * DAY, due_days=60)
    stayer, leaver = make_person("Stay Er"), make_person("Lea Ver")
    left_at = timezone.now() - 3 * DAY
    people_actions.deactivate_person(actor=admin_user, person=leaver, left_at=left_at)
    timeline = coverage.timeline_for(revision.policy, timezone.now())

    def counted(moment) -> Counter:
        found = census.take({0: coverage.timeline_for(revision.policy, moment)}, moment, dt.UTC)
        return Counter({s: n for (a, s), n in found[0].people.items() if a is None and n})

    employees = {stayer.pk, admin_user.pk}
    assert counted(left_at - DAY) == Counter({coverage.Status.PENDING: 3})
    assert counted(timezone.now()) == Counter({coverage.Status.PENDING: 2})
    assert {p.pk for p in lists.people(timeline, left_at - DAY)} == employees | {leaver.pk}
    assert {p.pk for p in lists.people(timeline, timezone.now())} == employees
    (ended,) = Membership.objects.filter(person=leaver)
    assert (ended.ended_at, ended.ended_by) == (left_at, admin_user.email)


def test_a_returner_comes_into_scope_again_and_is_told(
    make_person, admin_user, revision, mailoutbox, django_capture_on_commit_callbacks
):
    person = make_person()
    people_actions.deactivate_person(actor=admin_user, person=person)
    with django_capture_on_commit_callbacks(execute=True):
        returned = timezone.now()
        people_actions.reactivate_person(actor=admin_user, person=person)
    (standing,) = coverage.standings_for(person)
    assert standing.came_into_scope >= returned
    assert Notification.objects.get(person=person).kind == Notification.Kind.IN_SCOPE


def test_an_import_tells_the_people_it_brings_into_scope_unless_it_invites_them(
    make_person, contractors_policy, django_capture_on_commit_callbacks
):
    make_person("Ann Existing", email="ann@example.com")
    data = (
        b"email,full_name,audiences\n"
        b"ann@example.com,Ann Existing,employees;contractors\n"
        b"new@example.com,New Contractor,contractors\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        import_apply.apply_import(data, actor=None, filename="hr.csv", inviting=True)
    told = set(
        Notification.objects.filter(kind=Notification.Kind.IN_SCOPE).values_list(
            "person__email", flat=True
        )
    )
    assert told == {"ann@example.com"}  # the new person's invitation names the policy instead
    history = Membership.objects.get(person__email="new@example.com")
    assert history.begun_by == "import:hr.csv"


def test_the_history_survives_a_rebuild_of_the_dashboard(moved, contractors_policy):
    moment = timezone.now()
    timeline = coverage.timeline_for(contractors_policy, moment)
    before = census.take({0: timeline}, moment, dt.UTC)[0].people
    call_command("rebuild_run_standings", verbosity=0)
    assert census.take({0: timeline}, moment, dt.UTC)[0].people == before


def test_the_dashboard_says_which_audiences_it_counts(moved, logged_in, auditor):
    page = logged_in(auditor).get("/reports/").content.decode()
    assert "audiences they were in at that moment" in page
