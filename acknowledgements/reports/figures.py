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
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DateTimeField,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    StringAgg,
    Subquery,
    Value,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from acknowledgements.evidence.client_evidence import ClientFact, client_facts
from acknowledgements.evidence.payload import lookup, shown
from acknowledgements.models import (
    Acknowledgement,
    Audience,
    LedgerEntry,
    Notification,
    Policy,
    PolicyRevision,
    User,
)
from acknowledgements.reports import census
from acknowledgements.standings import coverage
from acknowledgements.standings.coverage import Status, Timeline

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

STATUSES = (Status.SIGNED, Status.PENDING, Status.OVERDUE, Status.DECLINED)
STATUS_LABELS = {
    Status.SIGNED: _("Signed"),
    Status.PENDING: _("Pending"),
    Status.OVERDUE: _("Overdue"),
    Status.DECLINED: _("Declined"),
}
REMOVED = "removed after the retention period"
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
    """How many people in scope are signed, pending, overdue or declined (they add up to total)."""

    total: int = 0
    signed: int = 0
    pending: int = 0
    overdue: int = 0
    declined: int = 0

    @property
    def parts(self) -> list[StatusCount]:
        return [StatusCount(s, getattr(self, s), self.total) for s in STATUSES]


def _scoped(timeline: Timeline, moment: dt.datetime) -> QuerySet[coverage.PersonWithStatus]:
    return coverage.with_status(coverage.people_in_scope(timeline, moment), timeline, moment)


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
    """Every policy with its timeline at `moment`, in three queries however many revisions."""
    revisions: dict[int, list[PolicyRevision]] = defaultdict(list)
    for revision in PolicyRevision.objects.published().prefetch_related("audiences"):
        revisions[revision.policy_id].append(revision)
    return [
        (policy, Timeline.at(revisions[policy.pk], moment))
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


# --- Lists behind the numbers --------------------------------------------------------------------


_STATUS_RANK = (Status.OVERDUE, Status.DECLINED, Status.PENDING, Status.SIGNED)
_STATUS_ORDER = Case(
    *(When(status=status, then=Value(rank)) for rank, status in enumerate(_STATUS_RANK)),
    output_field=IntegerField(),
)

SORTS: dict[str, tuple[StrOrPromise, tuple]] = {
    "name": (_("Name (A to Z)"), ("full_name", "email", "pk")),
    "-name": (_("Name (Z to A)"), ("-full_name", "-email", "-pk")),
    "email": (_("Email"), ("email", "pk")),
    "status": (_("Status (overdue first)"), (_STATUS_ORDER.asc(), "due_at", "full_name", "pk")),
    "-signed": (
        _("Signed (latest first)"),
        (F("covered_at").desc(nulls_last=True), "full_name", "pk"),
    ),
    "signed": (
        _("Signed (earliest first)"),
        (F("covered_at").asc(nulls_last=True), "full_name", "pk"),
    ),
    "due": (_("Due date (soonest first)"), ("due_at", "full_name", "pk")),
}
DEFAULT_SORT = "name"


@dataclass(frozen=True)
class PeopleFilter:
    """What an auditor narrowed a list to; the empty filter is everyone in scope."""

    status: str = ""
    audience: Audience | None = None
    signed_from: dt.date | None = None
    signed_to: dt.date | None = None
    search: str = ""
    sort: str = DEFAULT_SORT

    @property
    def narrows_people(self) -> bool:
        return bool(self.status or self.audience or self.search)

    def signed_range(self, zone: dt.tzinfo | None = None) -> tuple[dt.datetime | None, ...]:
        """The dates as [start, end) moments in the viewer's zone (an end date is inclusive)."""
        zone = zone or timezone.get_current_timezone()

        def start_of(day: dt.date | None) -> dt.datetime | None:
            if day is None:
                return None
            return timezone.make_aware(dt.datetime.combine(day, dt.time.min), zone)

        end_day = self.signed_to + dt.timedelta(days=1) if self.signed_to else None
        return start_of(self.signed_from), start_of(end_day)

    @classmethod
    def from_record(cls, record: dict[str, str]) -> PeopleFilter:
        """The filters `as_record` wrote (the default sort; the audience looked up by slug)."""
        audience = Audience.objects.get(slug=record["audience"]) if record.get("audience") else None

        def day(key: str) -> dt.date | None:
            return dt.date.fromisoformat(record[key]) if record.get(key) else None

        return cls(
            status=record.get("status", ""),
            audience=audience,
            signed_from=day("signed_from"),
            signed_to=day("signed_to"),
            search=record.get("search", ""),
        )

    def as_record(self) -> dict[str, str]:
        """The filters that were set, as plain strings for the audit log."""
        values = {
            "status": self.status,
            "audience": self.audience.slug if self.audience else "",
            "signed_from": self.signed_from.isoformat() if self.signed_from else "",
            "signed_to": self.signed_to.isoformat() if self.signed_to else "",
            "search": self.search,
        }
        return {key: value for key, value in values.items() if value}


def people(
    timeline: Timeline, moment: dt.datetime, filters: PeopleFilter = PeopleFilter()
) -> QuerySet[User]:
    """People in scope at `moment`, annotated by coverage.with_status, filtered and sorted.

    With no revision in effect nobody is in scope: the empty list still has the annotations,
    so that an export of it is a file with its header and no rows.
    """
    if timeline.current is None:
        return _nobody()
    queryset = _scoped(timeline, moment)
    if filters.status:
        queryset = queryset.filter(coverage.status_conditions(timeline, moment)[filters.status])
    if filters.audience:
        queryset = queryset.filter(audiences=filters.audience)
    start, end = filters.signed_range()
    if start:
        queryset = queryset.filter(covered_at__gte=start)
    if end:
        queryset = queryset.filter(covered_at__lt=end)
    if filters.search:
        queryset = queryset.filter(
            Q(full_name__icontains=filters.search) | Q(email__icontains=filters.search)
        )
    _label, ordering = SORTS.get(filters.sort, SORTS[DEFAULT_SORT])
    return queryset.order_by(*ordering)


def _nobody() -> QuerySet[coverage.PersonWithStatus]:
    """An empty `with_status` queryset (it asks the database nothing)."""
    return User.objects.none().annotate(
        covered_at=Value(None, output_field=DateTimeField()),
        covering_version=Value(None, output_field=CharField()),
        declined=Value(False, output_field=BooleanField()),
        due_at=Value(None, output_field=DateTimeField()),
        status=Value("", output_field=CharField()),
    )


AUDIENCE_SEPARATOR = "\x1f"  # ASCII unit separator: no audience name contains it


def current_audience_names(person_field: str = "pk") -> Subquery:
    """The person's audiences today, joined by AUDIENCE_SEPARATOR (see `audience_names`)."""
    through = User.audiences.through
    grouped = (
        through.objects.filter(user_id=OuterRef(person_field))
        .order_by()
        .values("user_id")
        .annotate(names=StringAgg("audience__name", delimiter=Value(AUDIENCE_SEPARATOR)))
    )
    # The stubs lose an annotation made after values() (typeddjango/django-stubs#3509).
    names = grouped.values("names")  # type: ignore[misc]
    return Subquery(names[:1], output_field=CharField())


def audience_names(aggregated: str | None, separator: str = "; ") -> str:
    """Sorted, readable audience names from `current_audience_names` (SQLite cannot order them)."""
    return separator.join(sorted(aggregated.split(AUDIENCE_SEPARATOR))) if aggregated else ""


def signatures(
    policy: Policy,
    timeline: Timeline,
    moment: dt.datetime,
    filters: PeopleFilter = PeopleFilter(),
) -> QuerySet[Acknowledgement]:
    """Every signature of the policy's revisions up to `moment`, in ledger order.

    Filters on people (status, audience, search) keep the signatures of the people in scope who
    match; "signed between" applies to each signature's own time.
    """
    queryset = Acknowledgement.objects.filter(revision__policy=policy, signed_at__lte=moment)
    if filters.narrows_people:
        matching = people(timeline, moment, replace(filters, signed_from=None, signed_to=None))
        queryset = queryset.filter(person__in=matching.order_by().values("pk"))
    start, end = filters.signed_range()
    if start:
        queryset = queryset.filter(signed_at__gte=start)
    if end:
        queryset = queryset.filter(signed_at__lt=end)
    return queryset.order_by("ledger_entry_id")


def declines() -> QuerySet[LedgerEntry]:
    """Every recorded decline, newest first."""
    return (
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.DECLINED)
        .select_related("person", "revision__policy")
        .order_by("-id")
    )


# --- One person's history ----------------------------------------------------------------------


def shown_client(fact: ClientFact) -> str:
    """A client value (IP address, user agent) as the evidence holds it today."""
    if fact.state == "removed":
        return REMOVED
    if fact.state == "held" and not fact.matches:
        return f"{fact.value} {CLIENT_MISMATCH}"
    return shown(fact.value)


_EVENT_FACTS: dict[str, list[tuple[StrOrPromise, tuple[str, ...]]]] = {
    LedgerEntry.Kind.VIEWED: [
        (_("IP address"), ("client", "ip")),
        (_("Authentication"), ("authentication", "method")),
    ],
    LedgerEntry.Kind.CONSENTED: [
        (_("Consent version"), ("consent", "version")),
        (_("IP address"), ("client", "ip")),
    ],
    LedgerEntry.Kind.SIGNED: [
        (_("Receipt number"), ("receipt_number",)),
        (_("Name at signing"), ("person", "name")),
        (_("Email at signing"), ("person", "email")),
        (_("Typed name"), ("typed_name",)),
        (_("Authentication"), ("authentication", "method")),
        (_("Multi-factor"), ("authentication", "mfa")),
        (_("IP address"), ("client", "ip")),
        (_("User agent"), ("client", "user_agent")),
    ],
    LedgerEntry.Kind.DECLINED: [
        (_("Reason given"), ("reason",)),
        (_("IP address"), ("client", "ip")),
    ],
    LedgerEntry.Kind.RECEIPT_ISSUED: [
        (_("Receipt number"), ("receipt_number",)),
        (_("Receipt PDF SHA-256"), ("pdf_sha256",)),
        (_("Trusted timestamp"), ("timestamped",)),
    ],
    LedgerEntry.Kind.REDACTED: [
        (_("IP address and user agent removed from entries"), ("entries",)),
        (_("Retention (days)"), ("retention_days",)),
    ],
}


@dataclass(frozen=True)
class Event:
    entry: LedgerEntry
    facts: list[tuple[str, str]]


@dataclass(frozen=True)
class PersonHistory:
    person: User
    moment: dt.datetime
    standings: list[coverage.Standing]
    events: list[Event]
    notifications: list[Notification]
    acknowledgements: list[Acknowledgement]


def person_history(person: User, moment: dt.datetime) -> PersonHistory:
    """Everything recorded about a person up to `moment`, oldest first."""
    entries = (
        LedgerEntry.objects.filter(person=person, recorded_at__lte=moment)
        .select_related("revision__policy", "client_details")
        .order_by("id")
    )
    events = []
    for entry in entries:
        payload = json.loads(bytes(entry.payload))
        client = client_facts(payload, getattr(entry, "client_details", None))
        facts = [
            (
                str(label),
                shown_client(client[path[1]])
                if path[0] == "client" and path[1] in client
                else shown(lookup(payload, *path)),
            )
            for label, path in _EVENT_FACTS.get(entry.kind, [])
        ]
        events.append(Event(entry, facts))
    return PersonHistory(
        person=person,
        moment=moment,
        standings=coverage.standings_for(person, moment=moment),
        events=events,
        notifications=list(
            Notification.objects.filter(person=person, created_at__lte=moment)
            .select_related("revision__policy")
            .order_by("created_at", "pk")
        ),
        acknowledgements=list(
            Acknowledgement.objects.filter(person=person, signed_at__lte=moment)
            .select_related("revision__policy", "receipt")
            .order_by("signed_at")
        ),
    )


# --- The audit log -------------------------------------------------------------------------------


AUDIT_KINDS = (LedgerEntry.Kind.ADMIN_ACTION, LedgerEntry.Kind.SUPERSEDED)
SUPERSEDED_ACTION = "superseded"
_ENVELOPE = {"schema", "event", "person_id", "actor_id", "revision_id", "recorded_at"}


class PayloadText(Func):
    """A top-level text value of a ledger payload, read by the database (for filtering).

    Payloads are stored as canonical UTF-8 JSON bytes; PostgreSQL decodes them with
    convert_from, SQLite with its JSON functions.
    """

    output_field = CharField()

    def __init__(self, key: str) -> None:
        super().__init__(F("payload"), Value(key))

    def as_sql(self, compiler, connection, *args, **extra_context):
        raise NotImplementedError(f"PayloadText is not written for {connection.vendor}.")

    def as_sqlite(self, compiler, connection, **extra_context):
        payload, key = (compiler.compile(e) for e in self.source_expressions)
        return (
            f"json_extract(CAST({payload[0]} AS TEXT), '$.' || {key[0]})",
            (*payload[1], *key[1]),
        )

    def as_postgresql(self, compiler, connection, **extra_context):
        payload, key = (compiler.compile(e) for e in self.source_expressions)
        return (
            f"(convert_from({payload[0]}, 'UTF8')::jsonb ->> {key[0]}::text)",
            (*payload[1], *key[1]),
        )


def audit_entries(
    *,
    action: str = "",
    actor: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[LedgerEntry]:
    """Administrative actions and supersessions, newest first, filtered as asked."""
    queryset = LedgerEntry.objects.filter(kind__in=AUDIT_KINDS)
    if action == SUPERSEDED_ACTION:
        queryset = queryset.filter(kind=LedgerEntry.Kind.SUPERSEDED)
    elif action:
        queryset = (
            queryset.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
            .alias(action=PayloadText("action"))
            .filter(action=action)
        )
    if actor:
        queryset = queryset.filter(
            Q(actor__email__icontains=actor) | Q(actor__full_name__icontains=actor)
        )
    if since:
        queryset = queryset.filter(recorded_at__gte=since)
    if until:
        queryset = queryset.filter(recorded_at__lt=until)
    return queryset.select_related("actor", "revision__policy").order_by("-id")


def audit_actions() -> list[str]:
    """The actions recorded so far, for the audit log's filter."""
    recorded = (
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
        .annotate(action=PayloadText("action"))
        .values_list("action", flat=True)
        .distinct()
        .order_by()
    )
    return sorted({a for a in recorded if a} | {SUPERSEDED_ACTION})


@dataclass(frozen=True)
class AuditEvent:
    entry: LedgerEntry
    action: str
    actor: dict[str, Any] | None  # the actor as recorded at the time (id, email, name)
    details: list[tuple[str, str]]

    @property
    def action_label(self) -> str:
        return self.action.replace("_", " ").capitalize()


def describe(entries: Iterable[LedgerEntry]) -> list[AuditEvent]:
    """Decode audit entries into who, what and the details recorded with them."""
    events = []
    for entry in entries:
        payload = json.loads(bytes(entry.payload))
        if entry.kind == LedgerEntry.Kind.SUPERSEDED:
            action = SUPERSEDED_ACTION
            details = {k: v for k, v in payload.items() if k not in _ENVELOPE}
            actor = None
        else:
            action = str(payload.get("action") or "")
            details = payload.get("details") or {}
            actor = payload.get("actor")
        events.append(AuditEvent(entry, action, actor, _flatten(details)))
    return events


def _flatten(details: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Details as (label, text) pairs; a nested object's keys read "filters / policy"."""
    pairs = []
    for key, value in sorted(details.items()):
        label = f"{prefix}{key.replace('_', ' ')}"
        if isinstance(value, dict) and value:
            pairs.extend(_flatten(value, f"{label} / "))
        else:
            pairs.append((label, shown(value)))
    return pairs
