"""Every policy's counts and signatures per day at a moment, in one SQL statement.

The dashboard needs, for each policy, how many people in scope are signed, declined, overdue or
pending (in total and per audience) and how many covering signatures were made each day. Asked
policy by policy with `coverage.with_status`, that is a pass over everyone per policy and per
figure. Here the database makes one pass over the people instead: for each active person who
had joined by the moment, their audiences, and per policy whether a signature covers them,
whether they declined and whether their due date has passed, and the day they signed each
covering revision. People alike in all of these are counted together, which leaves a few
thousand groups; Python applies `coverage.status_of` to each, so the rule that decides a status
stays in coverage.py.

Hand-written SQL because the ORM cannot group the result of a grouped query (audiences and
signatures per person, then people per combination) in one statement. It uses only what SQLite
and PostgreSQL share, and Django's own backend operations for dates and time zones.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db import connections, router

from ..coverage import Timeline, late_after, status_of
from ..models import Acknowledgement, LedgerEntry, User

# Yes/no facts travel as bits of integer columns, which group faster than a column each (SQLite
# and PostgreSQL both have `&`); 30 bits keep every column within a 32-bit integer.
BITS_PER_COLUMN = 30


@dataclass
class PolicyCensus:
    """One policy's people in scope by (audience id, status); audience None is everyone."""

    people: Counter[tuple[int | None, str]] = field(default_factory=Counter)
    signatures_per_day: Counter[dt.date] = field(default_factory=Counter)


def take(
    timelines: Mapping[int, Timeline], moment: dt.datetime, zone: dt.tzinfo
) -> dict[int, PolicyCensus]:
    """The census of every policy (keyed by id) whose timeline has a current revision.

    The current revisions' audiences must have been loaded (prefetched) with the timelines.
    """
    in_effect = {pk: t for pk, t in timelines.items() if t.current is not None}
    census = {pk: PolicyCensus() for pk in in_effect}
    scopes = {pk: {a.pk for a in t.current.audiences.all()} for pk, t in in_effect.items()}
    if not any(scopes.values()):  # nobody can be in scope of anything
        return census
    query = _Query(in_effect, scopes, moment, zone)
    connection = connections[router.db_for_read(User)]
    with connection.cursor() as cursor:
        cursor.execute(*query.sql(connection))
        rows = cursor.fetchall()
    for row in rows:
        query.count(row, census)
    return census


def _chunks(items: list) -> list[list]:
    return [
        items[start : start + BITS_PER_COLUMN] for start in range(0, len(items), BITS_PER_COLUMN)
    ]


def _unpack(columns: list[int], count: int) -> list[bool]:
    return [bool(columns[n // BITS_PER_COLUMN] >> (n % BITS_PER_COLUMN) & 1) for n in range(count)]


class _Query:
    """Builds the statement and reads its rows back (columns are named by position)."""

    def __init__(self, timelines, scopes, moment, zone):
        self.timelines: dict[int, Timeline] = timelines
        self.scopes: dict[int, set[int]] = scopes
        self.moment: dt.datetime = moment
        self.zone: dt.tzinfo = zone
        self.audiences: list[int] = sorted(set().union(*scopes.values()))
        self.policies: list[int] = sorted(timelines)
        self.covering: list[tuple[int, int]] = sorted(
            (revision, pk) for pk in self.policies for revision in timelines[pk].covering_ids
        )
        # Per policy: covered, declined, late.
        self.facts = 3 * len(self.policies)

    def sql(self, connection) -> tuple[str, list]:
        """The statement and its parameters, which follow the order of the text."""
        ops = connection.ops
        q = ops.quote_name
        moment = ops.adapt_datetimefield_value(self.moment)
        user, membership = User._meta.db_table, User.audiences.through._meta.db_table
        signature, ledger = Acknowledgement._meta.db_table, LedgerEntry._meta.db_table
        tzname = getattr(self.zone, "key", None) or str(self.zone)

        def ids(items) -> str:
            """Ids are integers from the database: written into the text, not parameters."""
            return ", ".join(str(int(item)) for item in items)

        params: list = []
        facts = []
        for n, pk in enumerate(self.policies):
            signed = " OR ".join(
                f"s.signed_{i} IS NOT NULL" for i, (_r, p) in enumerate(self.covering) if p == pk
            )
            cutoff = late_after(self.timelines[pk], self.moment)
            facts += [
                f"CASE WHEN {signed} THEN 1 ELSE 0 END",
                f"COALESCE(d.declined_{n}, 0)",
                "CASE WHEN u.date_joined < %s THEN 1 ELSE 0 END" if cutoff else "0",
            ]
            if cutoff:
                params.append(ops.adapt_datetimefield_value(cutoff))
        columns = [f"m.audiences_{c} AS audiences_{c}" for c in range(len(_chunks(self.audiences)))]
        columns += [
            " + ".join(f"({fact}) * {1 << bit}" for bit, fact in enumerate(chunk))
            + f" AS facts_{c}"
            for c, chunk in enumerate(_chunks(facts))
        ]
        for i in range(len(self.covering)):
            day, day_params = ops.datetime_cast_date_sql(f"s.signed_{i}", (), tzname)
            columns.append(f"{day} AS day_{i}")
            params += day_params

        # Each person's audiences among those of the current revisions; people in none of them
        # are in scope of nothing, and the inner join leaves them out.
        member_of = ", ".join(
            "SUM(CASE audience_id "
            + " ".join(f"WHEN {int(a)} THEN {1 << bit}" for bit, a in enumerate(chunk))
            + f" ELSE 0 END) AS audiences_{c}"
            for c, chunk in enumerate(_chunks(self.audiences))
        )
        joins = [
            f"JOIN (SELECT user_id, {member_of} FROM {q(membership)}"  # noqa: S608 - ids and quoted names only
            f" WHERE audience_id IN ({ids(self.audiences)}) GROUP BY user_id) m"
            " ON m.user_id = u.id"
        ]
        # When they signed each covering revision, one row per signer however many revisions
        # cover a policy (a person signs a revision once, so each column holds one time at most).
        signed_at = ", ".join(
            f"MAX(CASE WHEN revision_id = {int(revision)} THEN signed_at END) AS signed_{i}"
            for i, (revision, _policy) in enumerate(self.covering)
        )
        joins.append(
            f"LEFT JOIN (SELECT person_id, {signed_at} FROM {q(signature)}"  # noqa: S608 - ids and quoted names only
            f" WHERE revision_id IN ({ids(r for r, _p in self.covering)}) AND signed_at <= %s"
            " GROUP BY person_id) s ON s.person_id = u.id"
        )
        params.append(moment)
        declined_of = ", ".join(
            f"MAX(CASE WHEN revision_id IN ({ids(self.timelines[pk].covering_ids)})"
            f" THEN 1 ELSE 0 END) AS declined_{n}"
            for n, pk in enumerate(self.policies)
        )
        joins.append(
            f"LEFT JOIN (SELECT person_id, {declined_of} FROM {q(ledger)}"  # noqa: S608 - ids and quoted names only
            f" WHERE kind = %s AND revision_id IN ({ids(r for r, _p in self.covering)})"
            " AND recorded_at <= %s GROUP BY person_id) d ON d.person_id = u.id"
        )
        params += [LedgerEntry.Kind.DECLINED.value, moment]
        person = (
            f"SELECT {', '.join(columns)} FROM {q(user)} u {' '.join(joins)}"  # noqa: S608 - ids and quoted names only
            " WHERE u.is_active = %s AND u.date_joined <= %s"
        )
        params += [True, moment]

        # People alike in all of that are counted together (a few thousand groups)...
        names = [column.rsplit(" AS ", 1)[1] for column in columns]
        audiences = [name for name in names if name.startswith("audiences_")]
        facts = [name for name in names if name.startswith("facts_")]
        alike = (
            f"SELECT {', '.join(names)}, COUNT(*) AS people FROM ({person}) person"  # noqa: S608 - ids and quoted names only
            f" GROUP BY {', '.join(names)}"
        )
        # ...then summed by audiences and facts, and per covering revision by signing day for
        # the people in scope of its policy (the other columns are left empty).
        totals = [
            f"SELECT NULL AS revision, NULL AS day, {', '.join(audiences + facts)}, CAST(SUM(people) AS BIGINT)"  # noqa: S608 - ids and quoted names only
            f" FROM alike GROUP BY {', '.join(audiences + facts)}"
        ]
        blank = ", ".join(["NULL"] * len(audiences + facts))
        for i, (revision, pk) in enumerate(self.covering):
            in_scope = " OR ".join(
                f"(audiences_{c} & {mask}) <> 0"
                for c, chunk in enumerate(_chunks(self.audiences))
                if (mask := sum(1 << bit for bit, a in enumerate(chunk) if a in self.scopes[pk]))
            )
            totals.append(
                f"SELECT {int(revision)}, day_{i}, {blank}, CAST(SUM(people) AS BIGINT) FROM alike"  # noqa: S608 - ids and quoted names only
                f" WHERE day_{i} IS NOT NULL AND ({in_scope}) GROUP BY day_{i}"
            )
        return f"WITH alike AS ({alike}) {' UNION ALL '.join(totals)}", params

    def count(self, row: tuple, census: dict[int, PolicyCensus]) -> None:
        """Add one row of totals to the census of the policies it concerns."""
        revision, day, *values, people = row
        if revision is not None:
            policy = dict(self.covering)[revision]
            census[policy].signatures_per_day[_as_date(day)] += people
            return
        audience_columns = len(_chunks(self.audiences))
        in_audience = _unpack(values[:audience_columns], len(self.audiences))
        member_of = {a for a, member in zip(self.audiences, in_audience, strict=True) if member}
        facts = _unpack(values[audience_columns:], self.facts)
        for n, pk in enumerate(self.policies):
            audiences = member_of & self.scopes[pk]
            if not audiences:
                continue
            covered, declined, late = facts[3 * n : 3 * n + 3]
            status = status_of(covered=covered, declined=declined, late=late)
            census[pk].people[None, status] += people
            for audience in audiences:
                census[pk].people[audience, status] += people


def _as_date(day) -> dt.date:
    """PostgreSQL returns dates; SQLite returns them as ISO text."""
    return day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
