"""Who must sign what: the timeline of a policy's revisions and each person's standing."""

import datetime as dt
from uuid import uuid4

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from acknowledgements.models import Policy, PolicyRevision
from acknowledgements.signing import actions as signing_actions
from acknowledgements.signing import facts as signing_facts
from acknowledgements.standings.coverage import Status, Timeline, standings_for
from tests.conftest import client_evidence

DAY = dt.timedelta(days=1)
MATERIAL = PolicyRevision.Change.MATERIAL
MINOR = PolicyRevision.Change.MINOR
PUBLISHED = PolicyRevision.Status.PUBLISHED


def days_ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def standing_of(person, policy):
    return next(s for s in standings_for(person) if s.policy == policy)


# --- Timeline.at on revisions built by hand (published at chosen moments) -----------------------

T0 = dt.datetime(2025, 1, 1, 9, 0, tzinfo=dt.UTC)
HAND_BUILT = Policy(name="Hand-built Policy", slug="hand-built")


def published(pk: int, version: str, change: str, *, effective: int, published_on: int):
    """A published revision in memory, effective and published `n` days after T0."""
    return PolicyRevision(
        pk=pk,
        policy=HAND_BUILT,
        version=version,
        change=change,
        status=PolicyRevision.Status.PUBLISHED,
        effective_at=T0 + effective * DAY,
        published_at=T0 + published_on * DAY,
    )


def test_minor_revision_becomes_current_and_keeps_the_material_baseline():
    v1 = published(1, "1.0", MATERIAL, effective=0, published_on=0)
    v11 = published(2, "1.1", MINOR, effective=10, published_on=10)

    timeline = Timeline.at([v11, v1], T0 + 20 * DAY)

    assert timeline.current == v11
    assert timeline.baseline == v1
    assert timeline.covering_ids == {1, 2}
    assert timeline.upcoming is None


def test_material_revision_resets_what_covers():
    v1 = published(1, "1.0", MATERIAL, effective=0, published_on=0)
    v11 = published(2, "1.1", MINOR, effective=10, published_on=10)
    v2 = published(3, "2.0", MATERIAL, effective=20, published_on=20)

    timeline = Timeline.at([v1, v11, v2], T0 + 30 * DAY)

    assert (timeline.current, timeline.baseline) == (v2, v2)
    assert timeline.covering_ids == {3}


def test_future_revision_is_upcoming_and_the_previous_stays_current():
    v1 = published(1, "1.0", MATERIAL, effective=0, published_on=0)
    v2 = published(2, "2.0", MATERIAL, effective=30, published_on=5)

    before = Timeline.at([v1, v2], T0 + 10 * DAY)
    after = Timeline.at([v1, v2], T0 + 31 * DAY)

    assert (before.current, before.upcoming, before.covering_ids) == (v1, v2, {1})
    assert (after.current, after.upcoming, after.covering_ids) == (v2, None, {2})


def test_as_of_a_past_moment_ignores_what_was_published_later():
    v1 = published(1, "1.0", MATERIAL, effective=0, published_on=0)
    # Back-dated: effective from day 10, but only published on day 40.
    v2 = published(2, "2.0", MATERIAL, effective=10, published_on=40)

    on_day_20 = Timeline.at([v1, v2], T0 + 20 * DAY)
    on_day_50 = Timeline.at([v1, v2], T0 + 50 * DAY)

    assert (on_day_20.current, on_day_20.covering_ids) == (v1, {1})
    assert (on_day_50.current, on_day_50.covering_ids) == (v2, {2})


def test_before_anything_is_in_effect_there_is_no_current_revision():
    v1 = published(1, "1.0", MATERIAL, effective=10, published_on=0)

    timeline = Timeline.at([v1], T0 + 5 * DAY)

    assert (timeline.current, timeline.baseline, timeline.upcoming) == (None, None, v1)
    assert timeline.covering_ids == frozenset()


def test_drafts_do_not_count():
    v1 = published(1, "1.0", MATERIAL, effective=0, published_on=0)
    draft = PolicyRevision(
        pk=2, policy=HAND_BUILT, version="2.0", change=MATERIAL, effective_at=T0 + DAY
    )

    timeline = Timeline.at([v1, draft], T0 + 10 * DAY)

    assert timeline.current == v1
    assert timeline.upcoming is None


def test_upcoming_is_the_next_revision_to_come_into_effect():
    v1 = published(1, "1.0", MATERIAL, effective=0, published_on=0)
    v2 = published(2, "2.0", MATERIAL, effective=30, published_on=5)
    v3 = published(3, "3.0", MATERIAL, effective=60, published_on=5)

    timeline = Timeline.at([v1, v2, v3], T0 + 10 * DAY)

    assert timeline.current == v1
    assert timeline.upcoming == v2


# --- signing_facts.read: Timeline.at's choice of the current revision, as SQL -------------

# A revision as (effective day, publication day or None for a draft), days after T0; few days
# so that ties on both dates (decided by id) come up often.
REVISION = st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 4)))


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(revisions=st.lists(REVISION, min_size=1, max_size=5), day=st.integers(0, 5))
def test_the_current_revision_in_sql_agrees_with_the_timeline(signer, revisions, day):
    policy = Policy.objects.create(name=f"Policy {uuid4().hex}", slug=f"p{uuid4().hex}")
    for number, (effective, published_on) in enumerate(revisions):
        PolicyRevision.objects.create(
            policy=policy,
            version=f"{number}.0",
            body="Text.",
            body_html="<p>Text.</p>",
            text_sha256="0" * 64,
            effective_at=T0 + effective * DAY,
            status=PolicyRevision.Status.DRAFT if published_on is None else PUBLISHED,
            published_at=None if published_on is None else T0 + published_on * DAY,
        )
    moment = T0 + day * DAY + dt.timedelta(hours=1)
    rows = list(PolicyRevision.objects.filter(policy=policy))

    current_in_sql = []
    for revision in rows:
        facts = signing_facts.read(
            signer, policy_slug=policy.slug, version=revision.version, moment=moment
        )
        if facts.revision.is_published and facts.in_effect and not facts.replaced:
            current_in_sql.append(revision)

    expected = Timeline.at(rows, moment).current
    assert current_in_sql == ([expected] if expected else [])


# --- standings_for on the database ------------------------------------------------------------


def test_minor_revision_keeps_an_earlier_signature(signer, policy, publish, sign):
    v1 = publish(policy, "1.0", effective_at=days_ago(60))
    acknowledgement = sign(signer, v1)
    v11 = publish(policy, "1.1", change=MINOR, effective_at=days_ago(30))

    standing = standing_of(signer, policy)

    assert standing.status == Status.SIGNED
    assert not standing.must_sign
    assert standing.current == v11
    assert standing.timeline.baseline == v1
    assert standing.covering_acknowledgement == acknowledgement
    assert not standing.overdue


def test_material_revision_makes_an_earlier_signature_stop_counting(signer, policy, publish, sign):
    v1 = publish(policy, "1.0", effective_at=days_ago(60))
    sign(signer, v1)
    publish(policy, "1.1", change=MINOR, effective_at=days_ago(30))
    v2 = publish(policy, "2.0", change=MATERIAL, due_days=14)

    standing = standing_of(signer, policy)

    assert standing.status == Status.PENDING
    assert standing.must_sign
    assert standing.current == standing.timeline.baseline == v2
    assert standing.covering_acknowledgement is None
    assert standing.due_at == v2.effective_at + 14 * DAY
    assert not standing.overdue


def test_only_someone_who_signed_before_a_material_change_is_asked_to_sign_again(
    signer, make_person, policy, publish, sign
):
    newcomer = make_person("New Comer")
    v1 = publish(policy, "1.0", effective_at=days_ago(60))
    assert not standing_of(signer, policy).signed_an_earlier_run  # a first version
    first = sign(signer, v1)
    publish(policy, "1.1", change=MINOR, effective_at=days_ago(30))
    assert not standing_of(signer, policy).signed_an_earlier_run  # still covered
    publish(policy, "2.0", change=MATERIAL)

    again = standing_of(signer, policy)
    assert again.signed_an_earlier_run
    assert again.earlier_acknowledgement == first
    assert not standing_of(newcomer, policy).signed_an_earlier_run


def test_material_revision_past_its_due_date_is_overdue(signer, policy, publish, sign):
    v1 = publish(policy, "1.0", effective_at=days_ago(60))
    sign(signer, v1)
    v2 = publish(policy, "2.0", change=MATERIAL, effective_at=days_ago(20), due_days=14)

    standing = standing_of(signer, policy)

    assert standing.status == Status.OVERDUE
    assert standing.overdue
    assert standing.due_at == v2.effective_at + 14 * DAY


def test_signing_the_new_material_revision_covers_again(signer, policy, publish, sign):
    sign(signer, publish(policy, "1.0", effective_at=days_ago(60)))
    v2 = publish(policy, "2.0", effective_at=days_ago(20), due_days=14)

    acknowledgement = sign(signer, v2)

    standing = standing_of(signer, policy)
    assert standing.status == Status.SIGNED
    assert standing.covering_acknowledgement == acknowledgement
    assert not standing.overdue


def test_a_published_future_revision_is_upcoming_and_the_signature_still_counts(
    signer, policy, publish, sign
):
    v1 = publish(policy, "1.0", effective_at=days_ago(60))
    sign(signer, v1)
    v2 = publish(policy, "2.0", change=MATERIAL, effective_at=timezone.now() + 7 * DAY)

    standing = standing_of(signer, policy)

    assert standing.status == Status.SIGNED
    assert standing.current == v1
    assert standing.timeline.upcoming == v2


def test_standing_as_of_a_past_moment(signer, policy, publish, sign):
    v1 = publish(policy, "1.0", effective_at=days_ago(60), due_days=90)
    before_signing = timezone.now()
    acknowledgement = sign(signer, v1)
    after_signing = timezone.now()
    publish(policy, "2.0", change=MATERIAL, due_days=0)

    then_unsigned = next(iter(standings_for(signer, moment=before_signing)))
    then_signed = next(iter(standings_for(signer, moment=after_signing)))
    now = next(iter(standings_for(signer)))

    assert then_unsigned.status == Status.PENDING
    assert then_unsigned.covering_acknowledgement is None
    assert then_unsigned.current == v1
    assert then_signed.status == Status.SIGNED
    assert then_signed.covering_acknowledgement == acknowledgement
    assert then_signed.current == v1
    assert now.status == Status.OVERDUE
    assert now.current.version == "2.0"


def test_nothing_is_listed_before_the_first_revision_was_published(signer, policy, publish):
    before_publishing = timezone.now()
    publish(policy, "1.0")

    assert standings_for(signer, moment=before_publishing) == []
    assert len(standings_for(signer)) == 1


@pytest.mark.parametrize(
    ("joined_days_ago", "expected_status"),
    [(365, Status.OVERDUE), (5, Status.PENDING)],
    ids=["joined-before-the-revision", "joined-after-the-revision"],
)
def test_due_date_counts_from_the_later_of_effective_date_and_joining(
    make_person, policy, publish, joined_days_ago, expected_status
):
    person = make_person("Joan Clarke", joined=days_ago(joined_days_ago))
    revision = publish(policy, "1.0", effective_at=days_ago(30), due_days=14)

    standing = standing_of(person, policy)

    start = max(revision.effective_at, person.date_joined)
    assert standing.due_at == start + 14 * DAY
    assert standing.status == expected_status
    assert standing.overdue is (expected_status == Status.OVERDUE)


def test_declined_person_is_declined_and_still_must_sign(signer, policy, publish):
    revision = publish(policy, "1.0", effective_at=days_ago(2), due_days=14)
    entry = signing_actions.record_decline(
        person=signer, revision=revision, reason="No", client=client_evidence()
    )

    standing = standing_of(signer, policy)

    assert standing.status == Status.DECLINED
    assert standing.declined_at == entry.recorded_at
    assert standing.must_sign
    assert not standing.overdue


def test_a_decline_does_not_stop_the_clock(signer, policy, publish):
    revision = publish(policy, "1.0", effective_at=days_ago(30), due_days=14)
    signing_actions.record_decline(
        person=signer, revision=revision, reason="", client=client_evidence()
    )

    standing = standing_of(signer, policy)

    assert standing.status == Status.DECLINED
    assert standing.overdue


def test_signing_after_declining_counts_as_signed(signer, policy, publish, sign):
    revision = publish(policy, "1.0")
    signing_actions.record_decline(
        person=signer, revision=revision, reason="", client=client_evidence()
    )

    sign(signer, revision)

    assert standing_of(signer, policy).status == Status.SIGNED


def test_policies_for_other_audiences_are_not_listed(make_person, make_policy, publish):
    employee = make_person("Ada Lovelace", audience="employees")
    contractor = make_person("Charles Babbage", audience="contractors")
    nobody = make_person("Ghost", audience=None)
    everyone = make_policy(
        "code-of-conduct", name="Code of Conduct", audience_slugs=("employees", "contractors")
    )
    contractors_only = make_policy(
        "contractor-terms", name="Contractor Terms", audience_slugs=("contractors",)
    )
    publish(everyone, "1.0")
    publish(contractors_only, "1.0")

    assert [s.policy for s in standings_for(employee)] == [everyone]
    assert [s.policy for s in standings_for(contractor)] == [everyone, contractors_only]
    assert standings_for(nobody) == []
