"""Every figure of the reports against a scenario built by hand, at moments before and after."""

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from acknowledgements.models import Audience, LedgerEntry, PolicyRevision
from acknowledgements.people import actions as people_actions
from acknowledgements.policies import actions as policy_actions
from acknowledgements.reports import charts, figures, lists
from acknowledgements.reports import history as report_history
from acknowledgements.reports.figures import Completion
from acknowledgements.reports.lists import PeopleFilter
from acknowledgements.signing import actions as signing_actions
from acknowledgements.standings import coverage
from tests.conftest import client_evidence

DAY = dt.timedelta(days=1)
MINOR = PolicyRevision.Change.MINOR


def at(policy, moment):
    return coverage.timeline_for(policy, moment)


def completion(policy, moment) -> Completion:
    return figures.completion(at(policy, moment), moment)


def by_audience(policy, moment) -> dict[str, Completion]:
    return {
        row.audience.slug: row.completion
        for row in figures.completion_by_audience(at(policy, moment), moment)
    }


def decline(person, revision, moment):
    with time_machine.travel(moment, tick=False):
        return signing_actions.record_decline(
            person=person, revision=revision, reason="Not yet", client=client_evidence()
        )


@pytest.fixture
def scenario(make_policy, make_person, publish, sign, audiences):
    """Sixty days of a policy for employees and contractors.

    day 0   1.0 (material, due in 10 days); Alice and Bob sign on days 1 and 2, Carol declines
            on day 3, Dave (in both audiences) does nothing
    day 20  1.1 (minor); Dave signs it on day 21: it covers him, 1.0's signatures carry over
    day 40  2.0 (material, due in 7 days); Alice signs on day 41, Carol on day 42, Bob declines
            on day 43
    day 45  Erin joins (due day 52); day 57 Frank joins the contractors (due day 64)
    """
    t0 = (timezone.now() - 60 * DAY).replace(microsecond=0)
    policy = make_policy(audience_slugs=("employees", "contractors"))
    people = {
        "alice": make_person("Alice Archer", email="alice@example.com"),
        "bob": make_person("Bob Baker", email="bob@example.com"),
        "carol": make_person("Carol Cole", email="carol@example.com", audience="contractors"),
        "dave": make_person("Dave Dunn", email="dave@example.com"),
        "erin": make_person("Erin Eve", email="erin@example.com", joined=t0 + 45 * DAY),
        "frank": make_person(
            "Frank Fox", email="frank@example.com", audience="contractors", joined=t0 + 57 * DAY
        ),
    }
    with time_machine.travel(people["dave"].date_joined, tick=False):
        people["dave"].audiences.add(audiences["contractors"])
    v1 = publish(policy, "1.0", effective_at=t0, due_days=10)

    def sign_at(name, revision, day):
        with time_machine.travel(t0 + day * DAY, tick=False):
            return sign(people[name], revision)

    sign_at("alice", v1, 1)
    sign_at("bob", v1, 2)
    decline(people["carol"], v1, t0 + 3 * DAY)
    v11 = publish(policy, "1.1", change=MINOR, effective_at=t0 + 20 * DAY)
    sign_at("dave", v11, 21)
    v2 = publish(policy, "2.0", effective_at=t0 + 40 * DAY, due_days=7)
    sign_at("alice", v2, 41)
    sign_at("carol", v2, 42)
    decline(people["bob"], v2, t0 + 43 * DAY)
    return {"t0": t0, "policy": policy, "people": people, "v1": v1, "v11": v11, "v2": v2}


def test_before_the_first_revision_nothing_is_in_scope(scenario):
    moment = scenario["t0"] - DAY
    assert completion(scenario["policy"], moment) == Completion()
    assert figures.completion_by_audience(at(scenario["policy"], moment), moment) == []
    assert figures.signatures_over_time(at(scenario["policy"], moment), moment) is None


def test_after_the_first_due_date_signed_declined_and_overdue(scenario):
    moment = scenario["t0"] + 15 * DAY  # Erin and Frank have not joined yet
    assert completion(scenario["policy"], moment) == Completion(
        total=4, signed=2, pending=0, overdue=1, declined=1
    )
    assert by_audience(scenario["policy"], moment) == {
        "contractors": Completion(total=2, signed=0, pending=0, overdue=1, declined=1),
        "employees": Completion(total=3, signed=2, pending=0, overdue=1, declined=0),
    }


def test_before_the_first_due_date_the_silent_are_pending(scenario):
    moment = scenario["t0"] + 2 * DAY + dt.timedelta(hours=1)
    assert completion(scenario["policy"], moment) == Completion(
        total=4, signed=2, pending=2, overdue=0, declined=0
    )


def test_a_minor_revision_carries_earlier_signatures_over(scenario):
    moment = scenario["t0"] + 39 * DAY
    timeline = at(scenario["policy"], moment)
    assert (timeline.current, timeline.baseline) == (scenario["v11"], scenario["v1"])
    assert completion(scenario["policy"], moment) == Completion(
        total=4, signed=3, pending=0, overdue=0, declined=1
    )
    people = {p.email: p for p in lists.people(timeline, moment)}
    assert people["alice@example.com"].covering_version == "1.0"
    assert people["dave@example.com"].covering_version == "1.1"


def test_a_material_revision_starts_again(scenario):
    moment = scenario["t0"] + 44 * DAY  # 2.0 is due on day 47; Erin joins on day 45
    assert completion(scenario["policy"], moment) == Completion(
        total=4, signed=2, pending=1, overdue=0, declined=1
    )


def test_now_with_late_joiners(scenario):
    moment = timezone.now()
    assert completion(scenario["policy"], moment) == Completion(
        total=6, signed=2, pending=1, overdue=2, declined=1
    )
    assert by_audience(scenario["policy"], moment) == {
        "contractors": Completion(total=3, signed=1, pending=1, overdue=1, declined=0),
        "employees": Completion(total=4, signed=1, pending=0, overdue=2, declined=1),
    }
    now = completion(scenario["policy"], moment)
    parts = {p.status: (p.count, round(p.percent, 2)) for p in now.parts}
    assert parts == {
        "signed": (2, 33.33),
        "pending": (1, 16.67),
        "overdue": (2, 33.33),
        "declined": (1, 16.67),
    }


def test_the_figures_agree_with_each_persons_standing(scenario):
    """The database-side counts and coverage.standings_for apply the same rule."""
    for day in (1.5, 15, 25, 44, 50, 59):
        moment = scenario["t0"] + day * DAY
        timeline = at(scenario["policy"], moment)
        listed = {p.email: p.status for p in lists.people(timeline, moment)}
        for person in scenario["people"].values():
            standing = next((s for s in coverage.standings_for(person, moment=moment)), None)
            expected = standing.status if standing and person.date_joined <= moment else None
            assert listed.get(person.email) == expected, (day, person.email)


def test_signatures_per_day_since_the_baseline(scenario):
    moment = timezone.now()
    signatures = figures.signatures_over_time(at(scenario["policy"], moment), moment)
    t0 = scenario["t0"]
    assert signatures.unit == "day"
    assert signatures.since == (t0 + 40 * DAY).date()
    assert signatures.until == moment.date()
    counts = {b.start: b.count for b in signatures.buckets if b.count}
    assert counts == {(t0 + 41 * DAY).date(): 1, (t0 + 42 * DAY).date(): 1}
    assert signatures.total == 2
    assert len(signatures.buckets) == (moment.date() - (t0 + 40 * DAY).date()).days + 1

    then = t0 + 30 * DAY  # 1.1 is current: signatures of 1.0 and 1.1 count, from day 0
    earlier = figures.signatures_over_time(at(scenario["policy"], then), then)
    assert {b.start: b.count for b in earlier.buckets if b.count} == {
        (t0 + DAY).date(): 1,
        (t0 + 2 * DAY).date(): 1,
        (t0 + 21 * DAY).date(): 1,
    }


def test_signatures_per_day_in_the_viewers_time_zone(scenario):
    t0, moment = scenario["t0"], timezone.now()
    alice_signed, carol_signed = t0 + 41 * DAY, t0 + 42 * DAY
    # A zone where these signatures fall on another calendar day than in UTC.
    name = "Pacific/Kiritimati" if alice_signed.hour >= 10 else "Pacific/Pago_Pago"
    zone = zoneinfo.ZoneInfo(name)
    signatures = figures.signatures_over_time(at(scenario["policy"], moment), moment, zone)
    local = {timezone.localtime(when, zone).date() for when in (alice_signed, carol_signed)}
    assert local != {alice_signed.date(), carol_signed.date()}
    assert {b.start for b in signatures.buckets if b.count} == local
    assert signatures.since == timezone.localtime(scenario["v2"].effective_at, zone).date()


def test_long_spans_are_counted_per_week_then_per_month(policy, publish, make_person, sign):
    start = timezone.now() - 200 * DAY
    revision = publish(policy, "1.0", effective_at=start)
    person = make_person()
    with time_machine.travel(start + 3 * DAY, tick=False):
        sign(person, revision)
    moment = timezone.now()
    weekly = figures.signatures_over_time(at(policy, moment), moment)
    assert weekly.unit == "week"
    assert weekly.total == 1
    assert all(b.start.weekday() == 0 for b in weekly.buckets[1:])
    assert sum(1 for b in weekly.buckets if b.count) == 1

    later = start + 800 * DAY
    with time_machine.travel(later, tick=False):
        monthly = figures.signatures_over_time(at(policy, later), later)
    assert monthly.unit == "month"
    assert all(b.start.day == 1 for b in monthly.buckets[1:])
    assert monthly.total == 1


def test_people_filters_and_sorting(scenario):
    moment = timezone.now()
    timeline = at(scenario["policy"], moment)
    t0 = scenario["t0"]

    def emails(**filters):
        return [p.email for p in lists.people(timeline, moment, PeopleFilter(**filters))]

    assert emails(status="overdue") == ["dave@example.com", "erin@example.com"]
    assert emails(status="declined") == ["bob@example.com"]
    assert emails(audience=scenario["people"]["frank"].audiences.get()) == [
        "carol@example.com",
        "dave@example.com",
        "frank@example.com",
    ]
    assert emails(signed_from=(t0 + 42 * DAY).date(), signed_to=(t0 + 42 * DAY).date()) == [
        "carol@example.com"
    ]
    assert emails(signed_from=(t0 + 41 * DAY).date()) == ["alice@example.com", "carol@example.com"]
    assert emails(search="FOX") == ["frank@example.com"]
    assert emails(search="carol@") == ["carol@example.com"]
    assert emails(sort="-name")[0] == "frank@example.com"
    assert emails(sort="status")[:3] == ["dave@example.com", "erin@example.com", "bob@example.com"]
    assert emails(sort="-signed")[:2] == ["carol@example.com", "alice@example.com"]
    assert emails(sort="due")[-1] == "frank@example.com"


def test_signatures_for_exports_honour_the_moment_and_filters(scenario):
    policy, t0 = scenario["policy"], scenario["t0"]
    now = timezone.now()

    def numbers(moment, **filters):
        rows = lists.signatures(policy, at(policy, moment), moment, PeopleFilter(**filters))
        return [(a.person.email, a.revision.version) for a in rows.select_related("person")]

    assert numbers(t0 + 30 * DAY) == [
        ("alice@example.com", "1.0"),
        ("bob@example.com", "1.0"),
        ("dave@example.com", "1.1"),
    ]
    assert len(numbers(now)) == 5
    assert numbers(now, status="signed") == [
        ("alice@example.com", "1.0"),
        ("alice@example.com", "2.0"),
        ("carol@example.com", "2.0"),
    ]
    assert numbers(now, signed_from=(t0 + 40 * DAY).date()) == [
        ("alice@example.com", "2.0"),
        ("carol@example.com", "2.0"),
    ]


def test_person_history_lists_every_event_up_to_the_moment(scenario):
    carol, t0 = scenario["people"]["carol"], scenario["t0"]
    history = report_history.person_history(carol, timezone.now())
    kinds = [event.entry.kind for event in history.events]
    assert kinds == ["declined", "consented", "signed"]
    declined = dict(history.events[0].facts)
    assert declined["Reason given"] == "Not yet"
    signed = dict(history.events[2].facts)
    assert signed["Name at signing"] == "Carol Cole"
    assert signed["IP address"] == "192.0.2.10"
    assert [a.revision.version for a in history.acknowledgements] == ["2.0"]
    assert [s.status for s in history.standings] == ["signed"]

    earlier = report_history.person_history(carol, t0 + 10 * DAY)
    assert [event.entry.kind for event in earlier.events] == ["declined"]
    assert earlier.acknowledgements == []
    assert [s.status for s in earlier.standings] == ["declined"]


def test_audit_log_decodes_and_filters_actions(scenario, admin_user):
    people_actions.set_gate_exemption(
        actor=admin_user, person=scenario["people"]["bob"], reason="kiosk"
    )
    everything = report_history.describe(report_history.audit_entries())
    actions = [event.action for event in everything]
    assert actions[0] == "gate_exemption_granted"
    assert "superseded" in actions and "revision_published" in actions
    granted = everything[0]
    assert granted.actor["email"] == "grace@example.com"
    assert ("reason", "kiosk") in granted.details
    assert ("person / email", "bob@example.com") in granted.details

    published = report_history.audit_entries(action="revision_published")
    assert published.count() == 3
    assert report_history.audit_entries(action="superseded").count() == 1  # 2.0 superseded 1.1
    assert report_history.audit_entries(actor="grace").count() == 1
    assert (
        report_history.audit_entries(since=timezone.now() - dt.timedelta(minutes=5))
        .filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
        .count()
        >= 1
    )
    assert "gate_exemption_granted" in report_history.audit_actions()


def test_charts_describe_what_they_draw(scenario):
    moment = timezone.now()
    result = completion(scenario["policy"], moment)
    bar = charts.stacked_bar("p1", result, title="Status")
    assert [s.part.status for s in bar.segments] == ["signed", "pending", "overdue", "declined"]
    assert sum(float(s.width) for s in bar.segments) == pytest.approx(bar.width, abs=0.05)
    assert bar.desc == (
        "6 people in scope: Signed 2 (33.3 %); Pending 1 (16.7 %); Overdue 2 (33.3 %); "
        "Declined 1 (16.7 %)."
    )
    fills = {s.fill for s in bar.segments}
    assert fills == {"#1d6b3a", "url(#p1-dots)", "url(#p1-hatch)", "url(#p1-cross)"}
    signatures = figures.signatures_over_time(at(scenario["policy"], moment), moment)
    chart = charts.signatures_chart("p1-daily", signatures, title="Signatures")
    assert len(chart.columns) == 2
    assert (chart.width, chart.height) == (640, 200)
    for column in chart.columns:
        assert chart.left <= float(column.x) < float(column.x) + float(column.width) <= chart.right
        assert float(column.width) <= charts.MAX_COLUMN_WIDTH
    assert chart.desc.startswith("2 signatures from ")
    assert [count for _period, count in chart.rows if count] == [1, 1]


# --- A fixed number of queries, however many people and revisions ---------------------------------


def _population(make_person, publish, sign, policy, people: int, revisions: int):
    published = [
        publish(policy, f"1.{n}", change=MINOR if n else "material") for n in range(revisions)
    ]
    for n in range(people):
        person = make_person(f"Person {n}")
        if n % 2:
            sign(person, published[-1])
        elif n % 3 == 0:
            signing_actions.record_decline(
                person=person, revision=published[-1], reason="", client=client_evidence()
            )


@pytest.mark.parametrize("people,revisions", [(3, 1), (30, 4)])
def test_dashboard_figures_take_a_fixed_number_of_queries(
    make_policy, make_person, publish, sign, people, revisions
):
    policy = make_policy()
    _population(make_person, publish, sign, policy, people, revisions)
    moment = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        dashboard = figures.dashboard(moment)
    assert dashboard[0].completion.total == people
    # Published revisions and their audiences, renewal periods, policies, then one for every
    # policy's statuses, audiences and signatures per day.
    assert len(queries) == 5

    timeline = at(policy, moment)
    with CaptureQueriesContext(connection) as queries:
        first_page = list(lists.people(timeline, moment).prefetch_related("audiences")[:50])
    assert len(first_page) == people
    assert len(queries) == 2


def test_many_audiences_and_policies_are_counted_like_a_few(
    make_policy, make_person, publish, sign
):
    """The dashboard packs audiences and policies into bits, 30 to a number: past 30 of them
    (and past 10 policies, three facts each) the figures stay the same."""
    extra = [Audience.objects.create(name=f"Team {n:02d}", slug=f"team-{n:02d}") for n in range(32)]
    first, last = extra[0], extra[-1]
    policies = [
        make_policy(f"policy-{n:02d}", name=f"Policy {n:02d}", audience_slugs=("employees",))
        for n in range(10)
    ]
    wide = make_policy("wide", name="Wide", audience_slugs=("employees",))
    wide.audiences.set(extra)
    revisions = [publish(policy, "1.0") for policy in policies]
    wide_revision = policy_actions.create_draft(
        actor=None,
        policy=wide,
        version="1.0",
        body="# Wide\n\nText.\n",
        change="material",
        effective_at=timezone.now() - DAY,
        due_days=14,
        audiences=extra,
    )
    with time_machine.travel(timezone.now() - DAY, tick=True):
        wide_revision = policy_actions.publish_revision(actor=None, revision=wide_revision)
    both = make_person("Both Teams", audience=None)
    both.audiences.set([first, last])
    only_last = make_person("Last Team", audience=None)
    only_last.audiences.set([last])
    employee = make_person("Employee")
    sign(both, wide_revision)
    sign(employee, revisions[-1])

    found = {f.policy.slug: f for f in figures.dashboard(timezone.now())}
    assert found["wide"].completion == Completion(total=2, signed=1, pending=1)
    rows = {row.audience.slug: row.completion for row in found["wide"].audiences}
    assert rows[first.slug] == Completion(total=1, signed=1)
    assert rows[last.slug] == Completion(total=2, signed=1, pending=1)
    assert rows["team-15"] == Completion()
    assert found["wide"].signatures.total == 1
    assert found["policy-09"].completion == Completion(total=1, signed=1)
    assert found["policy-00"].completion == Completion(total=1, pending=1)
