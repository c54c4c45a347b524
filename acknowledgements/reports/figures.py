"""Figures at a moment: completion per policy and audience, people lists, histories, audit log.

Every number comes from coverage.py's rules (Timeline.at, status_of; people_in_scope and
with_status for the lists) evaluated at the moment asked for, so an "as of" answer is computed
from the signatures and declines recorded by then, never read from a snapshot taken at the
time. Counting happens in the database: the dashboard's counts and charts for every policy are
one statement (census.py) over tallies kept as people sign (standings/tallies.py), which the tests
check against every person's standing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from acknowledgements.models import (
    Audience,
    Policy,
    PolicyRevision,
    RenewalPeriod,
)
from acknowledgements.reports import census
from acknowledgements.standings.coverage import Status, Timeline

if TYPE_CHECKING:
    pass

STATUSES = (
    Status.SIGNED,
    Status.PENDING,
    Status.OVERDUE,
    Status.DECLINED,
    Status.RENEWAL_DUE,
    Status.LAPSED,
)
# Shown only where a renewal period could put anyone in them.
RENEWAL_STATUSES = (Status.RENEWAL_DUE, Status.LAPSED)
STATUS_LABELS = {
    Status.SIGNED: _("Signed"),
    Status.PENDING: _("Pending"),
    Status.OVERDUE: _("Overdue"),
    Status.DECLINED: _("Declined"),
    Status.RENEWAL_DUE: _("Renewal due"),
    Status.LAPSED: _("Lapsed"),
}
# A client value no longer kept: removed as a "redacted" ledger event records, or missing.
REMOVED = "removed after the retention period"
MISSING = "missing, with no recorded removal"
CLIENT_MISMATCH = "(does not match the salted SHA-256 in the ledger)"


# --- Completion ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCount:
    status: str
    count: int
    total: int

    @property
    def label(self) -> str:
        return str(STATUS_LABELS[self.status])

    @property
    def percent(self) -> float:
        return 100 * self.count / self.total if self.total else 0.0


@dataclass(frozen=True)
class Completion:
    """How many people in scope are signed, pending, overdue, declined, due for renewal or
    lapsed (they add up to total)."""

    total: int = 0
    signed: int = 0
    pending: int = 0
    overdue: int = 0
    declined: int = 0
    renewal_due: int = 0
    lapsed: int = 0

    @property
    def parts(self) -> list[StatusCount]:
        """Each status's count; the renewal statuses only when someone is in one."""
        return [
            StatusCount(s, getattr(self, s), self.total)
            for s in STATUSES
            if s not in RENEWAL_STATUSES or getattr(self, s)
        ]


def _tally(counts: Counter, audience: int | None = None) -> Completion:
    by_status = {status: counts[audience, status] for status in STATUSES}
    return Completion(total=sum(by_status.values()), **by_status)


def completion(timeline: Timeline, moment: dt.datetime) -> Completion:
    """The people in scope of the current revision at `moment`, counted by status (one query)."""
    return _policy_figures(None, timeline, moment, None).completion


@dataclass(frozen=True)
class AudienceCompletion:
    audience: Audience
    completion: Completion


def completion_by_audience(timeline: Timeline, moment: dt.datetime) -> list[AudienceCompletion]:
    """The same counts for each audience of the current revision (one query).

    A person in two audiences counts in both rows, so the rows can add up to more than the total.
    """
    return _policy_figures(None, timeline, moment, None).audiences


# --- Signatures over time --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    start: dt.date
    end: dt.date  # inclusive
    count: int


@dataclass(frozen=True)
class SignatureTimeline:
    """Signatures that count toward coverage, per day (per week or month over long spans)."""

    unit: str  # "day", "week" or "month"
    since: dt.date
    until: dt.date
    buckets: list[Bucket]

    @property
    def total(self) -> int:
        return sum(bucket.count for bucket in self.buckets)


DAYS_PER_DAY_CHART = 92
DAYS_PER_WEEK_CHART = 2 * 366


def signatures_over_time(
    timeline: Timeline, moment: dt.datetime, zone: dt.tzinfo | None = None
) -> SignatureTimeline | None:
    """People in scope who became covered, per day in `zone`: each counts on the day of their
    first signature of a revision that covers them (a second signature adds no coverage).

    Counted from the day the baseline (the material revision whose signatures count) took
    effect to the day of `moment`; one query.
    """
    return _policy_figures(None, timeline, moment, zone).signatures


def _signature_timeline(
    timeline: Timeline, moment: dt.datetime, zone: dt.tzinfo, per_day: Counter[dt.date]
) -> SignatureTimeline:
    assert timeline.baseline is not None
    since = timezone.localtime(timeline.baseline.effective_at, zone).date()
    until = max(timezone.localtime(moment, zone).date(), since)
    span = (until - since).days + 1
    if span <= DAYS_PER_DAY_CHART:
        unit, starts = "day", _days(since, until)
    elif span <= DAYS_PER_WEEK_CHART:
        unit, starts = "week", _weeks(since, until)
    else:
        unit, starts = "month", _months(since, until)
    buckets = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - dt.timedelta(days=1) if index + 1 < len(starts) else until
        count = sum(n for day, n in per_day.items() if start <= day <= end)
        buckets.append(Bucket(start, end, count))
    return SignatureTimeline(unit, since, until, buckets)


def _days(since: dt.date, until: dt.date) -> list[dt.date]:
    return [since + dt.timedelta(days=n) for n in range((until - since).days + 1)]


def _weeks(since: dt.date, until: dt.date) -> list[dt.date]:
    monday = since - dt.timedelta(days=since.weekday())
    starts = [since]
    while (monday := monday + dt.timedelta(days=7)) <= until:
        starts.append(monday)
    return starts


def _months(since: dt.date, until: dt.date) -> list[dt.date]:
    starts, month = [since], since.replace(day=1)
    while True:
        month = (month + dt.timedelta(days=32)).replace(day=1)
        if month > until:
            return starts
        starts.append(month)


# --- The dashboard -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyFigures:
    policy: Policy | None
    timeline: Timeline
    moment: dt.datetime
    completion: Completion
    audiences: list[AudienceCompletion] = field(default_factory=list)
    signatures: SignatureTimeline | None = None

    @property
    def in_effect(self) -> bool:
        return self.timeline.current is not None

    @property
    def due_at(self) -> dt.datetime | None:
        """When the baseline falls due for people who had joined by the time it took effect."""
        baseline = self.timeline.baseline
        return baseline.due_at if baseline else None


def _policy_figures(
    policy: Policy | None,
    timeline: Timeline,
    moment: dt.datetime,
    zone: dt.tzinfo | None,
    found: census.PolicyCensus | None = None,
) -> PolicyFigures:
    """One policy's figures from its census (taken here when not given)."""
    if timeline.current is None:
        return PolicyFigures(policy, timeline, moment, Completion())
    zone = zone or timezone.get_current_timezone()
    if found is None:
        found = census.take({0: timeline}, moment, zone)[0]
    audiences = sorted(timeline.current.audiences.all(), key=lambda a: a.name)
    return PolicyFigures(
        policy=policy,
        timeline=timeline,
        moment=moment,
        completion=_tally(found.people),
        audiences=[AudienceCompletion(a, _tally(found.people, a.pk)) for a in audiences],
        signatures=_signature_timeline(timeline, moment, zone, found.signatures_per_day),
    )


def policy_figures(
    policy: Policy, timeline: Timeline, moment: dt.datetime, zone: dt.tzinfo | None = None
) -> PolicyFigures:
    """One policy's completion, per-audience breakdown and signatures over time (one query)."""
    return _policy_figures(policy, timeline, moment, zone)


def timelines(moment: dt.datetime) -> list[tuple[Policy, Timeline]]:
    """Every policy with its timeline at `moment`, in four queries however many revisions."""
    revisions: dict[int, list[PolicyRevision]] = defaultdict(list)
    for revision in PolicyRevision.objects.published().prefetch_related("audiences"):
        revisions[revision.policy_id].append(revision)
    periods: dict[int, list[RenewalPeriod]] = defaultdict(list)
    for period in RenewalPeriod.objects.all():
        periods[period.policy_id].append(period)
    return [
        (policy, Timeline.at(revisions[policy.pk], moment, periods[policy.pk]))
        for policy in Policy.objects.order_by("name", "pk")
    ]


def dashboard(moment: dt.datetime, zone: dt.tzinfo | None = None) -> list[PolicyFigures]:
    """Every policy's figures: three queries for the timelines, one for all the figures."""
    zone = zone or timezone.get_current_timezone()
    policies = timelines(moment)
    found = census.take({policy.pk: timeline for policy, timeline in policies}, moment, zone)
    return [
        _policy_figures(policy, timeline, moment, zone, found.get(policy.pk))
        for policy, timeline in policies
    ]
