"""Every policy's counts and signatures per day at a moment, in one SQL statement.

The dashboard needs, for each policy, how many people in scope are signed, declined, overdue or
pending (in total and per audience) and how many covering signatures were made each day. Asked
policy by policy with `coverage.with_status`, that is a pass over everyone per policy and per
figure. Here the database makes one pass over the people instead: one row per active person
who had joined by the moment, with their audiences, the time they signed each covering revision
and whether they declined one; the rows are then grouped twice (by those facts, and by signing
day). Python applies `coverage.status_of` to the few hundred groups, so the rule that decides a
status stays in coverage.py.

Hand-written SQL because the ORM cannot group the result of a grouped query (audiences per
person, then people per combination of facts) in one statement. It uses only what SQLite and
PostgreSQL share, and Django's own backend operations for dates and time zones.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db import connections, router

from ..coverage import Timeline, late_after, status_of
from ..models import Acknowledgement, LedgerEntry, User

# Bits 0-29 keep every sum within a 32-bit integer.
AUDIENCES_PER_COLUMN = 30


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
    audiences = sorted(set().union(*scopes.values()))
    if not audiences:  # nobody can be in scope of anything
        return census
    query = _Query(in_effect, audiences, scopes, moment, zone)
    connection = connections[router.db_for_read(User)]
    with connection.cursor() as cursor:
        cursor.execute(*query.sql(connection))
        rows = cursor.fetchall()
    for row in rows:
        query.count(row, census)
    return census


class _Query:
    """Builds the statement and reads its rows back (columns are named by position)."""

    def __init__(self, timelines, audiences, scopes, moment, zone):
        self.timelines: dict[int, Timeline] = timelines
        self.audiences: list[int] = audiences
        self.scopes: dict[int, set[int]] = scopes
        self.moment: dt.datetime = moment
        self.zone: dt.tzinfo = zone
        self.policies = sorted(timelines)
        # Each person's audiences as bits, AUDIENCES_PER_COLUMN to a column (SQLite and
        # PostgreSQL both have `&`): grouping by one number costs less than by one flag each.
        self.columns = [
            audiences[start : start + AUDIENCES_PER_COLUMN]
            for start in range(0, len(audiences), AUDIENCES_PER_COLUMN)
        ]
        self.scope_bits = {
            pk: [
                sum(1 << bit for bit, a in enumerate(chunk) if a in scopes[pk])
                for chunk in self.columns
            ]
            for pk in self.policies
        }
        self.covering = sorted(
            (revision, pk) for pk in self.policies for revision in timelines[pk].covering_ids
        )

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

        # One row per person in some current revision's audiences (an inner join leaves out
        # the others): their audiences, then per policy whether a signature covers them,
        # whether they declined and whether their due date has passed, then the day they
        # signed each covering revision (NULL if they did not).
        columns = [f"m.audiences_{c}" for c in range(len(self.columns))]
        params: list = []
        for n, pk in enumerate(self.policies):
            signed = " OR ".join(
                f"s.signed_{i} IS NOT NULL" for i, (_r, p) in enumerate(self.covering) if p == pk
            )
            columns += [
                f"CASE WHEN {signed} THEN 1 ELSE 0 END AS covered_{n}",
                f"COALESCE(d.declined_{n}, 0) AS declined_{n}",
            ]
            cutoff = late_after(self.timelines[pk], self.moment)
            if cutoff:
                columns.append(f"CASE WHEN u.date_joined < %s THEN 1 ELSE 0 END AS late_{n}")
                params.append(ops.adapt_datetimefield_value(cutoff))
            else:
                columns.append(f"0 AS late_{n}")
        for i in range(len(self.covering)):
            day, day_params = ops.datetime_cast_date_sql(f"s.signed_{i}", (), tzname)
            columns.append(f"{day} AS day_{i}")
            params += day_params
        member_of = ", ".join(
            f"SUM(CASE audience_id {' '.join(f'WHEN {int(a)} THEN {1 << bit}' for bit, a in enumerate(chunk))}"
            f" ELSE 0 END) AS audiences_{c}"
            for c, chunk in enumerate(self.columns)
        )
        joins = [
            f"JOIN (SELECT user_id, {member_of} FROM {q(membership)}"  # noqa: S608 - ids and quoted names only
            f" WHERE audience_id IN ({ids(self.audiences)}) GROUP BY user_id) m"
            " ON m.user_id = u.id"
        ]
        # The covering signatures, one row per signer whatever the number of revisions (a
        # person signs a revision once, so each column holds at most one time).
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

        # Grouped once by those facts...
        facts = [f"audiences_{c}" for c in range(len(self.columns))]
        for n in range(len(self.policies)):
            facts += [f"covered_{n}", f"declined_{n}", f"late_{n}"]
        groups = [
            f"SELECT NULL AS revision, NULL AS day, {', '.join(facts)}, COUNT(*) FROM person"  # noqa: S608 - ids and quoted names only
            f" GROUP BY {', '.join(facts)}"
        ]
        # ...and once per covering revision by signing day, for the people in scope of its
        # policy (the facts columns are left empty).
        blank = ", ".join(["NULL"] * len(facts))
        for i, (revision, pk) in enumerate(self.covering):
            in_scope = " OR ".join(
                f"(audiences_{c} & {mask}) <> 0"
                for c, mask in enumerate(self.scope_bits[pk])
                if mask
            )
            groups.append(
                f"SELECT {int(revision)}, day_{i}, {blank}, COUNT(*) FROM person"  # noqa: S608 - ids and quoted names only
                f" WHERE day_{i} IS NOT NULL AND ({in_scope}) GROUP BY day_{i}"
            )
        return f"WITH person AS ({person}) {' UNION ALL '.join(groups)}", params

    def count(self, row: tuple, census: dict[int, PolicyCensus]) -> None:
        revision, day, *facts, people = row
        if revision is not None:
            policy = dict(self.covering)[revision]
            census[policy].signatures_per_day[_as_date(day)] += people
            return
        member_of = {
            a
            for chunk, bits in zip(self.columns, facts, strict=False)
            for bit, a in enumerate(chunk)
            if bits & (1 << bit)
        }
        policy_facts = facts[len(self.columns) :]
        for n, pk in enumerate(self.policies):
            audiences = member_of & self.scopes[pk]
            if not audiences:
                continue
            covered, declined, late = policy_facts[3 * n : 3 * n + 3]
            status = status_of(covered=bool(covered), declined=bool(declined), late=bool(late))
            census[pk].people[None, status] += people
            for audience in audiences:
                census[pk].people[audience, status] += people


def _as_date(day) -> dt.date:
    """PostgreSQL returns dates; SQLite returns them as ISO text."""
    return day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
