"""The dashboard's run standings and tallies (run_standings.py, reports/census.py).

The census adds tallies and a few standings instead of evaluating every person; here it must
give, for random histories and at any moment, exactly what evaluating every person with
coverage.py's rules gives (lists.people), and the rows kept as things happen must equal a
rebuild from the evidence.
"""

import datetime as dt
import os
import zoneinfo
from collections import Counter
from uuid import uuid4

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    Acknowledgement,
    AudienceSpan,
    CoverageTally,
    PolicyRevision,
    RunStanding,
    User,
)
from acknowledgements.policies import actions as policy_actions
from acknowledgements.reports import census, lists
from acknowledgements.signing import actions as signing_actions
from acknowledgements.standings import coverage, memberships, renewal
from acknowledgements.standings import tallies as run_standings
from tests.conftest import client_evidence

DAY = dt.timedelta(days=1)
MATERIAL, MINOR = PolicyRevision.Change.MATERIAL, PolicyRevision.Change.MINOR
# 5 h 45 min ahead of UTC: a zone whose days start at a quarter past a UTC hour.
KATHMANDU = zoneinfo.ZoneInfo("Asia/Kathmandu")
AUDIENCES = ("employees", "contractors", "partners")


class _RolledBack(Exception):
    """Ends an example's transaction so that the next one starts from an empty database."""


def kept_rows() -> tuple[list, list, list]:
    standings = RunStanding.objects.values_list("person_id", "run_id", "signed_at", "declined_at")
    tallies = CoverageTally.objects.exclude(people=0).values_list(
        "run_id", "audience_key", "slot", "at", "people"
    )
    spans = AudienceSpan.objects.values_list("person_id", "audience_key", "start", "end", "joined")
    return sorted(standings), sorted(tallies), sorted(spans, key=str)


def audiences_at(person, moment) -> set[int]:
    """The audiences the person was in at `moment`, from their membership history."""
    stretches = memberships.stretches_of({person.pk: person.date_joined})[person.pk]
    return {s.audience_id for s in stretches if s.open_at(moment)}


def expected_census(policy, moment, zone) -> census.PolicyCensus:
    """Every person evaluated with coverage.py's rules: the census must agree with this."""
    timeline = coverage.timeline_for(policy, moment)
    expected = census.PolicyCensus()
    if timeline.current is None:
        return expected
    scope = {a.pk for a in timeline.current.audiences.all()}
    for person in lists.people(timeline, moment):
        expected.people[None, person.status] += 1
        for audience in audiences_at(person, moment) & scope:
            expected.people[audience, person.status] += 1
        first = (
            Acknowledgement.objects.filter(
                person=person, revision__in=timeline.covering_ids, signed_at__lte=moment
            )
            .order_by("signed_at")
            .first()
        )
        if first:
            expected.signatures_per_day[timezone.localtime(first.signed_at, zone).date()] += 1
    return expected


def counted(found: census.PolicyCensus) -> tuple[Counter, Counter]:
    """Without the zero counts, which the census may or may not list."""
    return (
        Counter({k: v for k, v in found.people.items() if v}),
        Counter({k: v for k, v in found.signatures_per_day.items() if v}),
    )


# A history over 40 days: revisions (day, material, due days) and what people do on which day
# and at which minute.
REVISIONS = st.lists(
    st.tuples(st.integers(1, 39), st.booleans(), st.sampled_from([3, 10])), max_size=3
)
ACTION = st.tuples(
    st.integers(0, 40),  # day
    st.integers(0, 24 * 60 - 1),  # minute of the day
    st.integers(0, 4),  # person
    st.sampled_from(
        [
            "sign",
            "sign",
            "sign",
            "decline",
            "decline",
            "deactivate",
            "reactivate",
            "audiences",
            "joined",
        ]
    ),
    st.sets(st.sampled_from(AUDIENCES), max_size=2),  # for "audiences"
    st.integers(-30, 45),  # for "joined": the day they joined
)
PERSON = st.tuples(st.sets(st.sampled_from(AUDIENCES), max_size=2), st.integers(-30, 35))
# Renewal periods set on a day (months: 0 turns renewal off); a signature then lapses within
# the history, in its signer's zone.
RENEWALS = st.lists(st.tuples(st.integers(0, 39), st.sampled_from([0, 1, 1])), max_size=2)
ZONES = ("Europe/Paris", "Pacific/Kiritimati", "America/Los_Angeles", "")


@hypothesis_settings(
    max_examples=int(os.environ.get("CENSUS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    people=st.lists(PERSON, min_size=5, max_size=5),
    revisions=REVISIONS,
    actions=st.lists(ACTION, max_size=25),
    moments=st.lists(st.tuples(st.integers(0, 44), st.integers(0, 24 * 60 - 1)), max_size=3),
    # Moments shortly after an action: in the same 15-minute slot, or just past it.
    after_actions=st.lists(st.tuples(st.integers(0, 24), st.integers(0, 20)), max_size=4),
    renewals=RENEWALS,
)
def test_the_census_counts_as_every_persons_standing_does(
    make_policy, audiences, people, revisions, actions, moments, after_actions, renewals
):
    t0 = (timezone.now() - 45 * DAY).replace(second=0, microsecond=0)
    try:
        with transaction.atomic():
            policy = make_policy(
                f"p-{uuid4().hex[:12]}", name=f"Policy {uuid4().hex}", audience_slugs=AUDIENCES
            )
            persons = [
                User.objects.create_user(
                    email=f"{uuid4().hex[:12]}@example.com",
                    password=None,
                    full_name=f"Person {n}",
                    date_joined=t0 + joined * DAY,
                )
                for n, (_, joined) in enumerate(people)
            ]
            with time_machine.travel(t0, tick=False):
                for person, (member_of, _) in zip(persons, people, strict=True):
                    person.audiences.set([audiences[slug] for slug in member_of])
            schedule = [(0, True, 10), *sorted(revisions)]
            events = [(day * 24 * 60, "publish", n) for n, (day, _, _) in enumerate(schedule)]
            events += [
                (day * 24 * 60 + minute, "act", n) for n, (day, minute, *_) in enumerate(actions)
            ]
            events += [(day * 24 * 60 + 7, "renewal", n) for n, (day, _) in enumerate(renewals)]
            for at_minute, what, n in sorted(events):
                moment = t0 + dt.timedelta(minutes=at_minute)
                with time_machine.travel(moment, tick=False):
                    if what == "publish":
                        _, material, due_days = schedule[n]
                        draft = policy_actions.create_draft(
                            actor=None,
                            policy=policy,
                            version=f"{n + 1}.0",
                            body=f"# Policy\n\nVersion {n + 1}.\n",
                            change=MATERIAL if material or n == 0 else MINOR,
                            effective_at=moment,
                            due_days=due_days,
                        )
                        policy_actions.publish_revision(actor=None, revision=draft)
                    elif what == "renewal":
                        policy_actions.set_renewal_period(
                            actor=None, policy=policy, months=renewals[n][1]
                        )
                        renewal.fill_terms(policy_id=policy.pk)  # its task runs after commit
                    else:
                        _act(policy, persons, audiences, moment, *actions[n][2:])

            zone = KATHMANDU
            checked = [timezone.now()] + [
                t0 + day * DAY + dt.timedelta(minutes=minute) for day, minute in moments
            ]
            checked += [
                t0 + dt.timedelta(days=day, minutes=minute + offset)
                for n, offset in after_actions
                if actions
                for day, minute, *_ in [actions[n % len(actions)]]
            ]
            for moment in checked:
                timeline = coverage.timeline_for(policy, moment)
                found = census.take({policy.pk: timeline}, moment, zone).get(policy.pk)
                found = found or census.PolicyCensus()
                assert counted(found) == counted(expected_census(policy, moment, zone)), moment
                assert_each_person_as_evaluated_alone(policy, persons, moment)

            kept = kept_rows()
            run_standings.rebuild()
            assert kept_rows() == kept
            raise _RolledBack
    except _RolledBack:
        pass


def assert_each_person_as_evaluated_alone(policy, persons, moment) -> None:
    """The list's SQL (with_status, status_conditions) gives each person the status and due
    date that standings_for gives them on their own."""
    timeline = coverage.timeline_for(policy, moment)
    listed = {}
    if timeline.current is not None:
        listed = {p.pk: (p.status, p.due_at) for p in lists.people(timeline, moment)}
        for status, condition in coverage.status_conditions(timeline, moment).items():
            found = coverage.people_in_scope(timeline, moment).filter(condition)
            assert {p.pk for p in found} == {pk for pk, (s, _) in listed.items() if s == status}, (
                status,
                moment,
            )
    alone = {}
    for person in User.objects.filter(pk__in=[p.pk for p in persons]):  # as they are now
        standing = next(
            (s for s in coverage.standings_for(person, moment=moment) if s.policy == policy), None
        )
        if standing is not None:
            alone[person.pk] = (standing.status, standing.due_at)
    assert listed == alone, moment


def _act(policy, persons, audiences, moment, person_index, action, member_of, joined_day):
    person = User.objects.get(pk=persons[person_index].pk)
    timeline = coverage.timeline_for(policy, moment)
    if action in ("sign", "decline"):
        if timeline.current is None:
            return
        try:
            if action == "sign":
                signing_actions.record_acknowledgement(
                    person=person,
                    policy_slug=policy.slug,
                    version=timeline.current.version,
                    typed_name=person.full_name,
                    checkbox_ticked=True,
                    consent_accepted=True,
                    client=client_evidence(browser_time_zone=ZONES[moment.minute % len(ZONES)]),
                )
            else:
                signing_actions.record_decline(
                    person=person, revision=timeline.current, reason="", client=client_evidence()
                )
        except ActionRefused:
            pass  # not theirs to sign, or signed already: nothing is recorded
    elif action in ("deactivate", "reactivate"):
        person.is_active = action == "reactivate"
        person.save(update_fields=["is_active"])
    elif action == "audiences":
        if len(member_of) == 1:  # from the audience's side, as a bulk change would be
            audiences[next(iter(member_of))].members.add(person)
        else:
            person.audiences.set([audiences[slug] for slug in member_of])
    else:  # joined: also after they signed, as an administrator may set it
        person.date_joined = moment.replace(hour=0, minute=0) + (joined_day - 20) * DAY
        person.save()


# --- Kept in step -----------------------------------------------------------------------------


@pytest.fixture
def signed_employee(make_person, revision, sign):
    person = make_person("Zoe Signer")
    sign(person, revision)
    return person


def test_a_signature_and_a_decline_are_kept_as_they_happen(make_person, revision, sign):
    signer, decliner = make_person("Sam Signer"), make_person("Dee Decliner")
    acknowledgement = sign(signer, revision)
    signing_actions.record_decline(
        person=decliner, revision=revision, reason="", client=client_evidence()
    )

    standings = {s.person_id: s for s in RunStanding.objects.all()}
    assert standings[signer.pk].signed_at == acknowledgement.signed_at
    assert standings[signer.pk].declined_at is None
    assert standings[decliner.pk].signed_at is None
    assert standings[decliner.pk].declined_at is not None
    assert {s.run_id for s in standings.values()} == {revision.pk}
    (tally,) = CoverageTally.objects.all()
    assert (tally.run_id, tally.people) == (revision.pk, 1)
    assert tally.slot == run_standings.slot_of(acknowledgement.signed_at)


def test_signing_a_minor_revision_after_the_run_began_counts_once(
    make_person, policy, publish, sign
):
    v1 = publish(policy, "1.0", effective_at=timezone.now() - 10 * DAY)
    person = make_person()
    with time_machine.travel(timezone.now() - 5 * DAY, tick=False):
        first = sign(person, v1)
    v11 = publish(policy, "1.1", change=MINOR)
    sign(person, v11)

    (standing,) = RunStanding.objects.all()
    assert (standing.run_id, standing.signed_at) == (v1.pk, first.signed_at)
    assert CoverageTally.objects.get().people == 1


def open_tallies(moment) -> Counter:
    """What the tallies say is covered at `moment`, by audiences (every slot before it)."""
    found: Counter = Counter()
    for key, slot, at, people in CoverageTally.objects.values_list(
        "audience_key", "slot", "at", "people"
    ):
        if slot < run_standings.slot_of(moment) and at <= moment:
            found[key] += people
    return +found


def test_changing_audiences_moves_the_tallies_from_that_moment(signed_employee, audiences):
    before = timezone.now() + dt.timedelta(hours=1)
    with time_machine.travel(timezone.now() + dt.timedelta(hours=2), tick=False):
        signed_employee.audiences.add(audiences["contractors"])
    after = timezone.now() + dt.timedelta(hours=3)
    both = run_standings.audience_key([audiences["employees"].pk, audiences["contractors"].pk])
    assert open_tallies(before) == Counter({str(audiences["employees"].pk): 1})
    assert open_tallies(after) == Counter({both: 1})
    assert list(AudienceSpan.objects.order_by("start").values_list("audience_key", flat=True)) == [
        str(audiences["employees"].pk),
        both,
    ]


def test_tally_changes_larger_than_one_statement_are_all_counted(
    monkeypatch, make_person, revision, sign, audiences
):
    people = [make_person(f"Person {n}", email=f"person{n}@example.com") for n in range(3)]
    for n, person in enumerate(people):  # each in a slot of their own: rows of their own
        with time_machine.travel(timezone.now() + n * run_standings.SLOT, tick=False):
            sign(person, revision)
    monkeypatch.setattr(run_standings, "COUNT_CHUNK", 2)  # each person's move is two rows

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2), tick=False):
        audiences["contractors"].members.add(*people)

    kept = kept_rows()
    run_standings.rebuild()
    assert kept_rows() == kept
    both = run_standings.audience_key([audiences["employees"].pk, audiences["contractors"].pk])
    assert open_tallies(timezone.now() + dt.timedelta(hours=3)) == Counter({both: 3})


def test_emptying_or_deleting_an_audience_moves_its_members(signed_employee, audiences):
    with time_machine.travel(timezone.now() + dt.timedelta(hours=1), tick=False):
        audiences["employees"].members.clear()
    assert not AudienceSpan.objects.filter(end__isnull=True).exists()
    with time_machine.travel(timezone.now() + dt.timedelta(hours=2), tick=False):
        signed_employee.audiences.add(audiences["partners"])
        audiences["partners"].delete()
    assert not AudienceSpan.objects.filter(end__isnull=True).exists()
    assert open_tallies(timezone.now() + dt.timedelta(hours=3)) == Counter()


def test_deactivating_takes_a_person_out_of_the_tallies_from_their_leaving_date(
    signed_employee,
):
    left = timezone.now() + dt.timedelta(hours=1)
    with time_machine.travel(left, tick=False):
        signed_employee.is_active = False
        signed_employee.save()
    assert sum(open_tallies(left - dt.timedelta(minutes=1)).values()) == 1
    assert sum(open_tallies(left + dt.timedelta(hours=1)).values()) == 0
    with time_machine.travel(left + dt.timedelta(hours=2), tick=False):
        signed_employee.is_active = True
        signed_employee.save(update_fields=["is_active"])
    assert sum(open_tallies(left + dt.timedelta(hours=1)).values()) == 0
    assert sum(open_tallies(left + dt.timedelta(hours=3)).values()) == 1


def test_membership_history_says_who_changed_what_and_when(signed_employee, audiences):
    with memberships.changes_by("scim:Entra ID"):
        signed_employee.audiences.set([audiences["contractors"]])
    history = {
        m.audience.slug: (m.begun_by, m.ended_by, m.ended_at is None)
        for m in signed_employee.memberships.select_related("audience")
    }
    assert history == {
        "employees": ("", "scim:Entra ID", False),
        "contractors": ("scim:Entra ID", "", True),
    }


def test_tallies_out_of_step_are_said_so_not_counted(signed_employee, revision):
    CoverageTally.objects.update(people=5)
    moment = timezone.now() + dt.timedelta(hours=1)  # past the signature's slot
    with pytest.raises(census.CensusOutOfStep):
        census.take({0: coverage.timeline_for(revision.policy, moment)}, moment, dt.UTC)
    call_command("rebuild_run_standings", verbosity=0)
    found = census.take({0: coverage.timeline_for(revision.policy, moment)}, moment, dt.UTC)
    assert found[0].people[None, coverage.Status.SIGNED] == 1


def test_slots_start_every_quarter_hour_in_utc():
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    moment = dt.datetime(2026, 11, 28, 10, 29, 59, 999_999, tzinfo=paris)
    assert run_standings.slot_of(moment) == dt.datetime(2026, 11, 28, 9, 15, tzinfo=dt.UTC)
    assert run_standings.slot_of(moment + dt.timedelta(microseconds=1)) == dt.datetime(
        2026, 11, 28, 9, 30, tzinfo=dt.UTC
    )


def test_a_signature_counts_from_its_own_moment_within_its_slot(make_person, policy, publish, sign):
    slot = run_standings.slot_of(timezone.now() - 3 * DAY)
    revision = publish(policy, "1.0", effective_at=slot - DAY)
    person = make_person()
    with time_machine.travel(slot + dt.timedelta(minutes=5), tick=False):
        signed_at = sign(person, revision).signed_at
    timeline = coverage.timeline_for(policy, signed_at)
    for moment, signed in [
        (signed_at - dt.timedelta(microseconds=1), 0),
        (signed_at, 1),  # the tallies do not hold it yet: read from the standing
        (slot + dt.timedelta(minutes=14, seconds=59), 1),
        (slot + run_standings.SLOT, 1),  # from the tallies
    ]:
        found = census.take({0: timeline}, moment, dt.UTC)[0]
        assert found.people[None, coverage.Status.SIGNED] == signed, moment
        assert sum(found.signatures_per_day.values()) == signed, moment
