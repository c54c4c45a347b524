"""Who must sign what, and who is covered: the rules in one place (read-only).

- The *current* revision of a policy at a moment is the latest published revision whose
  effective date has passed.
- Its *baseline* is the latest material revision in effect at that moment (the first revision
  counts as material). A person is covered when they signed the baseline or any later
  revision in effect: a minor revision carries earlier signatures over.
- A person is in a policy's scope at a moment when they are in one of its current revision's
  audiences then (memberships.py keeps who was in which audience when; a leaver's memberships
  end on their leaving date).
- A person must be covered by the baseline's effective date (or the moment they came into the
  scope, if later) plus the baseline's `due_days`; after that, not being covered is *overdue*.
- Where the policy is renewed every N months (renewal.py), a signature counts only until it
  lapses; a person whose every signature of the run has lapsed is *due for renewal* until the
  lapse plus `due_days`, then *lapsed* (overdue, as far as the gate and reminders go).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING, TypedDict

from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Greatest
from django.utils import timezone

from acknowledgements.models import (
    Acknowledgement,
    LedgerEntry,
    Membership,
    Policy,
    PolicyRevision,
    RenewalPeriod,
    SignatureTerm,
    User,
)
from acknowledgements.standings import memberships, renewal

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class Status:
    SIGNED = "signed"
    PENDING = "pending"
    OVERDUE = "overdue"
    DECLINED = "declined"
    RENEWAL_DUE = "renewal_due"  # every signature of the run lapsed; still within due_days
    LAPSED = "lapsed"  # due for renewal past due_days: overdue


# The statuses after which a person is overdue (the gate, reminders, escalation).
OVERDUE_STATUSES = frozenset({Status.OVERDUE, Status.LAPSED})


@dataclass(frozen=True)
class Timeline:
    """A policy's published revisions seen from one moment."""

    current: PolicyRevision | None
    baseline: PolicyRevision | None
    covering_ids: frozenset[int]  # revisions whose signature covers a person at that moment
    upcoming: PolicyRevision | None  # published, but effective only later
    renewal: RenewalPeriod | None = None  # in force at that moment, when signatures lapse

    @classmethod
    def at(
        cls,
        revisions: Iterable[PolicyRevision],
        moment: dt.datetime,
        periods: Iterable[RenewalPeriod] | None = None,
    ) -> Timeline:
        """From one policy's published revisions (as they were published by `moment`) and its
        renewal periods (by default the revisions' policy's: prefetch
        `policy__renewal_periods` with the revisions to read them without a query).
        """
        revisions = list(revisions)
        published = sorted(
            # published_at is set on every published revision (published_revision_is_frozen).
            (
                r
                for r in revisions
                if r.is_published and r.published_at is not None and r.published_at <= moment
            ),
            key=attrgetter("publication_position"),
        )
        in_effect = [r for r in published if r.effective_at <= moment]
        later = [r for r in published if r.effective_at > moment]
        if not in_effect:
            return cls(None, None, frozenset(), later[0] if later else None)
        baseline = next((r for r in reversed(in_effect) if r.is_material), in_effect[0])
        covering = frozenset(
            r.pk for r in in_effect if r.publication_position >= baseline.publication_position
        )
        if periods is None:
            policy = baseline.policy
            periods = policy.renewal_periods.all() if policy.pk is not None else ()
        return cls(
            in_effect[-1],
            baseline,
            covering,
            later[0] if later else None,
            renewal.in_force(periods, moment),
        )

    @property
    def grace(self) -> dt.timedelta:
        """How long a person has to sign: after coming into scope, or after a lapse."""
        assert self.baseline is not None
        return dt.timedelta(days=self.baseline.due_days)

    @cached_property
    def audience_ids(self) -> frozenset[int]:
        """The current revision's audiences: who is in them is in the policy's scope."""
        return (
            frozenset(a.pk for a in self.current.audiences.all()) if self.current else frozenset()
        )


def due_at(baseline: PolicyRevision, came_into_scope: dt.datetime) -> dt.datetime:
    start = max(baseline.effective_at, came_into_scope)
    return start + dt.timedelta(days=baseline.due_days)


@dataclass(frozen=True)
class Standing:
    """One person's position toward one policy."""

    policy: Policy
    timeline: Timeline
    status: str
    due_at: dt.datetime
    covering_acknowledgement: Acknowledgement | None
    declined_at: dt.datetime | None
    overdue: bool  # not covered after the due date (a decline does not stop the clock)
    came_into_scope: dt.datetime | None = None
    # Their latest signature of a revision that no longer covers them (an earlier run's).
    earlier_acknowledgement: Acknowledgement | None = None
    # Under a renewal period: when the covering signature lapses, or when the last one did.
    lapses_at: dt.datetime | None = None

    @property
    def current(self) -> PolicyRevision:
        assert self.timeline.current is not None
        return self.timeline.current

    @property
    def must_sign(self) -> bool:
        return self.status != Status.SIGNED

    @property
    def last_signed(self) -> Acknowledgement | None:
        return self.covering_acknowledgement

    @property
    def renewing(self) -> bool:
        """Signed this run, but every signature has lapsed: asked to sign it *again*."""
        return self.status in (Status.RENEWAL_DUE, Status.LAPSED)

    @property
    def signed_an_earlier_run(self) -> bool:
        """Not covered, but signed before a material change: asked to sign *again*."""
        return self.covering_acknowledgement is None and self.earlier_acknowledgement is not None


def _published_revisions_by_policy() -> dict[int, list[PolicyRevision]]:
    by_policy: dict[int, list[PolicyRevision]] = defaultdict(list)
    revisions = (
        PolicyRevision.objects.published()
        .select_related("policy")
        .prefetch_related("audiences", "policy__renewal_periods")
    )
    for revision in revisions:
        by_policy[revision.policy_id].append(revision)
    return by_policy


def standings_for(person: User, *, moment: dt.datetime | None = None) -> list[Standing]:
    """Every policy in effect that applies to the person, with their status, in a few queries."""
    moment = moment or timezone.now()
    stretches = memberships.stretches_of({person.pk: person.date_joined})[person.pk]
    if not any(s.open_at(moment) for s in stretches):
        return []  # auditors, service accounts, leavers: no policy applies, no more queries
    acknowledgements = list(
        Acknowledgement.objects.filter(person=person, signed_at__lte=moment)
        .select_related("revision")
        .order_by("signed_at")
    )
    declines = dict(
        LedgerEntry.objects.filter(
            person=person, kind=LedgerEntry.Kind.DECLINED, recorded_at__lte=moment
        )
        .order_by("recorded_at")
        .values_list("revision_id", "recorded_at")
    )
    timelines = [Timeline.at(r, moment) for r in _published_revisions_by_policy().values()]
    lapses = _lapses(person, [t.renewal for t in timelines if t.renewal], moment)
    standings = []
    for timeline in timelines:
        came_into_scope = memberships.came_into_scope(stretches, timeline.audience_ids, moment)
        if came_into_scope is None:
            continue
        # A timeline that applies has a current revision, and so a baseline.
        assert timeline.current is not None and timeline.baseline is not None
        signed = [ack for ack in acknowledgements if ack.revision_id in timeline.covering_ids]
        # Under a renewal period a signature counts until its lapse (none kept yet: it counts).
        lapse = {
            ack.pk: lapses.get((ack.pk, timeline.renewal.pk)) if timeline.renewal else None
            for ack in signed
        }
        counting = [ack for ack in signed if _counts(lapse[ack.pk], moment)]
        covering_ack = max(counting, key=lambda ack: ack.signed_at, default=None)
        lapses_of_run = [lapsed for ack in signed if (lapsed := lapse[ack.pk]) is not None]
        last_lapse = max(lapses_of_run, default=None)
        earlier = [
            ack
            for ack in acknowledgements
            if ack.revision.policy_id == timeline.current.policy_id
            and ack.revision_id not in timeline.covering_ids
        ]
        declined_at = max(
            (declines[r] for r in timeline.covering_ids if r in declines), default=None
        )
        renewing = covering_ack is None and last_lapse is not None
        if renewing:
            assert last_lapse is not None
            due = last_lapse + timeline.grace
        else:
            due = due_at(timeline.baseline, came_into_scope)
        status = status_of(
            covered=covering_ack is not None,
            declined=declined_at is not None,
            late=moment > due,
            renewing=renewing,
        )
        standings.append(
            Standing(
                policy=timeline.current.policy,
                timeline=timeline,
                status=status,
                due_at=due,
                covering_acknowledgement=covering_ack,
                declined_at=declined_at,
                overdue=covering_ack is None and moment > due,
                came_into_scope=came_into_scope,
                earlier_acknowledgement=max(earlier, key=lambda ack: ack.signed_at, default=None),
                lapses_at=last_lapse
                if not counting or all(lapse[ack.pk] for ack in counting)
                else None,
            )
        )
    return sorted(standings, key=lambda s: s.policy.name)


def _counts(lapse: dt.datetime | None, moment: dt.datetime) -> bool:
    return lapse is None or lapse > moment


def _lapses(
    person: User, periods: list[RenewalPeriod], moment: dt.datetime
) -> dict[tuple[int, int], dt.datetime]:
    """When each of the person's signatures lapses under these periods: (signature, period)."""
    if not periods:
        return {}
    terms = SignatureTerm.objects.filter(
        person=person, period__in=periods, signed_at__lte=moment
    ).values_list("acknowledgement_id", "period_id", "lapses_at")
    return {(ack, period): lapses_at for ack, period, lapses_at in terms}


def standing_for(person: User, policy: Policy) -> Standing | None:
    return next((s for s in standings_for(person) if s.policy.pk == policy.pk), None)


# --- The same rules as queries over everyone (reports, reminders, fan-out) -----------------------


def timeline_for(policy: Policy, moment: dt.datetime | None = None) -> Timeline:
    revisions = policy.revisions.published().prefetch_related("audiences")
    # Read afresh: a policy instance passed around may hold periods prefetched before a change.
    periods = RenewalPeriod.objects.filter(policy_id=policy.pk)
    return Timeline.at(list(revisions), moment or timezone.now(), periods)


def memberships_open_at(moment: dt.datetime, audience_ids: Iterable[int]) -> QuerySet[Membership]:
    """The memberships of these audiences that had begun and not ended at `moment`.

    (One that began before the person joined counts from their joining date: callers compare
    `date_joined` too.) The audience ids go into the SQL as values: PostgreSQL then knows how
    many people they hold, where a subquery would leave it guessing (and choosing nested loops
    over 100,000).
    """
    return Membership.objects.filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=moment),
        began_at__lte=moment,
        audience_id__in=list(audience_ids),
    )


def people_in_scope(timeline: Timeline, moment: dt.datetime | None = None) -> QuerySet[User]:
    """People in the current revision's audiences at `moment` (who had joined, and not left)."""
    if timeline.current is None:
        return User.objects.none()
    moment = moment or timezone.now()
    members = memberships_open_at(moment, timeline.audience_ids)
    return User.objects.filter(date_joined__lte=moment, pk__in=members.values("person_id"))


def _came_into_scope(audience_ids: Iterable[int], moment: dt.datetime) -> Greatest:
    """`memberships.came_into_scope` as SQL, for people in scope."""
    earliest = (
        memberships_open_at(moment, audience_ids)
        .filter(person=OuterRef("pk"))
        .order_by("began_at")
        .values("began_at")[:1]
    )
    return Greatest(F("date_joined"), Subquery(earliest), output_field=DateTimeField())


def due_dates(
    baseline: PolicyRevision,
    audience_ids: Iterable[int],
    person_ids: Iterable[int],
    moment: dt.datetime | None = None,
) -> dict[int, dt.datetime]:
    """Each person's due date for the baseline, in scope of these audiences, in one query (one
    no longer in scope: as if from the day they joined, for an email queued before they left)."""
    moment = moment or timezone.now()
    people = User.objects.filter(pk__in=list(person_ids)).annotate(
        came=_came_into_scope(audience_ids, moment)
    )
    return {
        pk: due_at(baseline, came or joined)
        for pk, joined, came in people.values_list("pk", "date_joined", "came")
    }


def _covering_signatures(timeline: Timeline, moment: dt.datetime) -> QuerySet[Acknowledgement]:
    signatures = Acknowledgement.objects.filter(
        person=OuterRef("pk"), revision_id__in=timeline.covering_ids, signed_at__lte=moment
    )
    if timeline.renewal is None:
        return signatures
    # (Signatures of the run, so the terms of the run's alone: one index range.)
    lapsed = SignatureTerm.objects.filter(
        acknowledgement=OuterRef("pk"),
        period=timeline.renewal,
        run=timeline.baseline,
        lapses_at__lte=moment,
    )
    return signatures.filter(~Exists(lapsed))


def _lapsed_terms(timeline: Timeline, moment: dt.datetime) -> QuerySet[SignatureTerm]:
    """The person's signatures of the run that had lapsed by `moment` (renewal.py)."""
    assert timeline.baseline is not None
    return SignatureTerm.objects.filter(
        person=OuterRef("pk"),
        period=timeline.renewal,
        run=timeline.baseline,
        signed_at__lte=moment,
        lapses_at__lte=moment,
    )


def _declines(timeline: Timeline, moment: dt.datetime) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(
        person=OuterRef("pk"),
        kind=LedgerEntry.Kind.DECLINED,
        revision_id__in=timeline.covering_ids,
        recorded_at__lte=moment,
    )


NOBODY = Q(pk__in=[])


def late_after(timeline: Timeline, moment: dt.datetime) -> dt.datetime | None:
    """Who came into scope before this is overdue at `moment` unless covered; None: nobody is.

    `due_at` is the later of the baseline's effective date and coming into scope, plus
    `due_days`; it has passed exactly when both of them lie more than `due_days` before the
    moment. Said this way, the database compares times with a constant instead of computing
    every due date.
    """
    assert timeline.baseline is not None
    cutoff = moment - dt.timedelta(days=timeline.baseline.due_days)
    return cutoff if timeline.baseline.effective_at < cutoff else None


def status_of(*, covered: bool, declined: bool, late: bool, renewing: bool = False) -> str:
    """Signed beats renewing beats declined beats overdue (a decline does not stop the clock,
    but says why; one who signed the run and let it lapse is asked to renew, whatever they
    declined since). `late`: past the due date, of the renewal when renewing."""
    if covered:
        return Status.SIGNED
    if renewing:
        return Status.LAPSED if late else Status.RENEWAL_DUE
    if declined:
        return Status.DECLINED
    return Status.OVERDUE if late else Status.PENDING


def _by_status(
    *, covered: Q, declined: Q, late: Q, renewing: Q = NOBODY, renewal_late: Q = NOBODY
) -> dict[str, Q]:
    """`status_of` as SQL: for each status, the condition that gives it (they exclude each other)."""
    first = ~covered & ~renewing
    return {
        Status.SIGNED: covered,
        Status.LAPSED: ~covered & renewing & renewal_late,
        Status.RENEWAL_DUE: ~covered & renewing & ~renewal_late,
        Status.DECLINED: first & declined,
        Status.OVERDUE: first & ~declined & late,
        Status.PENDING: first & ~declined & ~late,
    }


def status_conditions(timeline: Timeline, moment: dt.datetime) -> dict[str, Q]:
    """For each status, the condition on a person in scope that gives it, for filtering.

    Filtering on these rather than on the `status` annotation lets the database answer "who is
    overdue" with anti-joins over the signatures and declines instead of a CASE per person.
    """
    cutoff = late_after(timeline, moment)
    renewing = {}
    if timeline.renewal is not None:
        lapsed = _lapsed_terms(timeline, moment)
        recently = lapsed.filter(lapses_at__gte=moment - timeline.grace)
        renewing = {"renewing": Q(Exists(lapsed)), "renewal_late": ~Q(Exists(recently))}
    return _by_status(
        covered=Q(Exists(_covering_signatures(timeline, moment))),
        declined=Q(Exists(_declines(timeline, moment))),
        late=came_into_scope_before(timeline, moment, cutoff) if cutoff else NOBODY,
        **renewing,
    )


def came_into_scope_before(timeline: Timeline, moment: dt.datetime, cutoff: dt.datetime) -> Q:
    """People in scope at `moment` who came into it before `cutoff` (< moment)."""
    earlier = memberships_open_at(moment, timeline.audience_ids).filter(
        person=OuterRef("pk"), began_at__lt=cutoff
    )
    return Q(date_joined__lt=cutoff) & Q(Exists(earlier))


class StatusAnnotations(TypedDict):
    """What `with_status` adds to each person."""

    came_into_scope: dt.datetime
    covered_at: dt.datetime | None
    covering_version: str | None
    declined: bool
    due_at: dt.datetime
    lapsed_at: dt.datetime | None
    status: str


type PersonWithStatus = WithAnnotations[User, StatusAnnotations]


def with_status(
    people: QuerySet[User], timeline: Timeline, moment: dt.datetime
) -> QuerySet[PersonWithStatus]:
    """Annotate each person with `came_into_scope`, `covered_at`, `covering_version`, `declined`,
    `lapsed_at` (their last signature's lapse, when every one has lapsed), `due_at` and `status`.

    The same rule as `standings_for`, as one query. To filter on a status, use
    `status_conditions` (see there why).
    """
    assert timeline.baseline is not None
    covering = _covering_signatures(timeline, moment).order_by("-signed_at")
    first_due = Greatest(Value(timeline.baseline.effective_at), F("came_into_scope")) + Value(
        timeline.grace
    )
    if timeline.renewal is None:
        lapsed_at: Value | Subquery = Value(None, output_field=DateTimeField())
        due: Case | ExpressionWrapper = ExpressionWrapper(first_due, output_field=DateTimeField())
    else:
        last_lapse = _lapsed_terms(timeline, moment).order_by("-lapses_at").values("lapses_at")
        lapsed_at = Subquery(last_lapse[:1])
        due = Case(
            When(
                Q(covered_at__isnull=True, lapsed_at__isnull=False),
                then=F("lapsed_at") + Value(timeline.grace),
            ),
            default=first_due,
            output_field=DateTimeField(),
        )
    # From the annotations, so that a page of people costs a lookup per person shown rather
    # than a pass over everyone's signatures.
    by_status = _by_status(
        covered=Q(covered_at__isnull=False),
        declined=Q(declined=True),
        late=Q(due_at__lt=moment),
        renewing=Q(lapsed_at__isnull=False),
        renewal_late=Q(due_at__lt=moment),
    )
    return (
        people.annotate(
            came_into_scope=_came_into_scope(timeline.audience_ids, moment),
            covered_at=Subquery(covering.values("signed_at")[:1]),
            covering_version=Subquery(covering.values("revision__version")[:1]),
            declined=Exists(_declines(timeline, moment)),
            lapsed_at=lapsed_at,
        )
        .annotate(
            due_at=due,
        )
        .annotate(
            status=Case(
                *(When(condition, then=Value(status)) for status, condition in by_status.items()),
                output_field=CharField(),
            ),
        )
    )


def uncovered_people(
    timeline: Timeline, moment: dt.datetime | None = None
) -> QuerySet[PersonWithStatus]:
    """People in scope without a signature that covers them at `moment` (annotated as above)."""
    moment = moment or timezone.now()
    covered = status_conditions(timeline, moment)[Status.SIGNED]
    return with_status(people_in_scope(timeline, moment), timeline, moment).filter(~covered)
