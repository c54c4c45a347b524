"""The lists behind the dashboard's numbers: everyone in scope with their status (filtered,
sorted, a page at a time), the signatures and the declines, as querysets the pages and the
exports read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DateTimeField,
    F,
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

from acknowledgements.models import (
    Acknowledgement,
    Audience,
    LedgerEntry,
    Membership,
    Policy,
    User,
)
from acknowledgements.standings import coverage
from acknowledgements.standings.coverage import Status, Timeline

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def _scoped(timeline: Timeline, moment: dt.datetime) -> QuerySet[coverage.PersonWithStatus]:
    scoped = coverage.with_status(coverage.people_in_scope(timeline, moment), timeline, moment)
    return scoped.annotate(audience_list=audience_names_at(moment))


# --- Lists behind the numbers --------------------------------------------------------------------


_STATUS_RANK = (
    Status.OVERDUE,
    Status.LAPSED,
    Status.DECLINED,
    Status.RENEWAL_DUE,
    Status.PENDING,
    Status.SIGNED,
)
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
    if filters.audience:  # the audience they were in at that moment
        members = coverage.memberships_open_at(moment, [filters.audience.pk])
        queryset = queryset.filter(pk__in=members.values("person_id"))
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
        came_into_scope=Value(None, output_field=DateTimeField()),
        covered_at=Value(None, output_field=DateTimeField()),
        covering_version=Value(None, output_field=CharField()),
        declined=Value(False, output_field=BooleanField()),
        due_at=Value(None, output_field=DateTimeField()),
        lapsed_at=Value(None, output_field=DateTimeField()),
        status=Value("", output_field=CharField()),
        audience_list=Value(None, output_field=CharField()),
    )


AUDIENCE_SEPARATOR = "\x1f"  # ASCII unit separator: no audience name contains it


def audience_names_at(moment: dt.datetime, person_field: str = "pk") -> Subquery:
    """The audiences the person was in at `moment`, joined by AUDIENCE_SEPARATOR (see
    `audience_names`): what a list or an export "as of" that moment shows."""
    grouped = (
        Membership.objects.filter(
            Q(ended_at__isnull=True) | Q(ended_at__gt=moment),
            person_id=OuterRef(person_field),
            began_at__lte=moment,
        )
        .order_by()
        .values("person_id")
        .annotate(names=StringAgg("audience__name", delimiter=Value(AUDIENCE_SEPARATOR)))
    )
    return Subquery(grouped.values("names")[:1], output_field=CharField())


def audience_names(aggregated: str | None, separator: str = "; ") -> str:
    """Sorted, readable audience names from `audience_names_at` (SQLite cannot order them)."""
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
    return queryset.annotate(audience_list=audience_names_at(moment, "person_id")).order_by(
        "ledger_entry_id"
    )


def declines() -> QuerySet[LedgerEntry]:
    """Every recorded decline, newest first."""
    return (
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.DECLINED)
        .select_related("person", "revision__policy")
        .order_by("-id")
    )
