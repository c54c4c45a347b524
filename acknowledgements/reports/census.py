"""Every policy's counts and signatures per day at a moment, in one SQL statement.

The dashboard needs, for each policy, how many people in scope are signed, declined, overdue or
pending (in total and per audience) and how many people became covered each day. It reads two
narrow tables kept for it (run_standings.py), in one statement:

- the active people who had joined by the moment, counted by audiences and, per policy,
  whether they joined before its late cut-off (coverage.late_after);
- the standings in the runs in effect at the moment of people who had signed or declined by
  then, counted by run, audiences, late, covered, declined and day of signing.

The people who neither signed nor declined are the first count less the second. Python applies
`coverage.status_of` to each group, so the rule that decides a status stays in coverage.py.
Hand-written SQL because the ORM cannot give both groupings in one statement; it uses only what
SQLite and PostgreSQL share, and Django's own backend operations for dates and time zones.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db import connections, router

from ..coverage import Timeline, late_after, status_of
from ..models import RunStanding, User
from ..run_standings import audience_ids

# Per-policy yes/no facts travel as bits of integer columns, which group faster than a column
# each; 30 bits keep every column within a 32-bit integer.
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
    scopes = {pk: {a.pk for a in t.current.audiences.all()} for pk, t in in_effect.items()}
    if not any(scopes.values()):  # nobody can be in scope of anything
        return {pk: PolicyCensus() for pk in in_effect}
    query = _Query(in_effect, scopes, moment, zone)
    connection = connections[router.db_for_read(User)]
    with connection.cursor() as cursor:
        cursor.execute(*query.sql(connection))
        return query.count(cursor.fetchall())


def _chunks(items: list) -> list[list]:
    return [
        items[start : start + BITS_PER_COLUMN] for start in range(0, len(items), BITS_PER_COLUMN)
    ]


def _unpack(columns: list[int], count: int) -> list[bool]:
    return [bool(columns[n // BITS_PER_COLUMN] >> (n % BITS_PER_COLUMN) & 1) for n in range(count)]


class CensusOutOfStep(RuntimeError):
    """The standings count more people than there are: they need run_standings.rebuild()."""


class _Query:
    """Builds the statement and reads its rows back (columns are named by position)."""

    def __init__(self, timelines, scopes, moment, zone):
        self.timelines: dict[int, Timeline] = timelines
        self.scopes: dict[int, set[int]] = scopes
        self.moment: dt.datetime = moment
        self.zone: dt.tzinfo = zone
        self.policies: list[int] = sorted(timelines)
        self.runs: dict[int, int] = {timelines[pk].baseline.pk: pk for pk in self.policies}
        self.cutoffs: dict[int, dt.datetime | None] = {
            pk: late_after(timelines[pk], moment) for pk in self.policies
        }
        self.late_columns = len(_chunks(self.policies))

    def sql(self, connection) -> tuple[str, list]:
        """The statement and its parameters, which follow the order of the text."""
        ops = connection.ops
        q = ops.quote_name
        moment = ops.adapt_datetimefield_value(self.moment)
        tzname = getattr(self.zone, "key", None) or str(self.zone)

        def joined_before(column: str, pk: int, params: list) -> str:
            if self.cutoffs[pk] is None:
                return "0"
            params.append(ops.adapt_datetimefield_value(self.cutoffs[pk]))
            return f"CASE WHEN {column} < %s THEN 1 ELSE 0 END"

        # Everyone who counts at the moment, by audiences and late-or-not for each policy.
        people_params: list = []
        late_bits = [
            " + ".join(
                f"({joined_before('date_joined', pk, people_params)}) * {1 << bit}"
                for bit, pk in enumerate(chunk)
            )
            for chunk in _chunks(self.policies)
        ]
        blanks = ", ".join(["NULL"] * 3)
        people = (
            f"SELECT NULL AS run, audience_key, {', '.join(late_bits)}, {blanks}, COUNT(*)"  # noqa: S608 - quoted names only
            f" FROM {q(User._meta.db_table)} WHERE is_active = %s AND date_joined <= %s"
            " AND audience_key <> '' GROUP BY audience_key"
            + "".join(f", {n + 3}" for n in range(self.late_columns))
        )
        people_params += [True, moment]

        # Who had signed or declined by then, in the runs in effect then.
        standing_params: list = []
        late = (
            "CASE run_id "
            + " ".join(
                f"WHEN {int(run)} THEN {joined_before('joined', pk, standing_params)}"
                for run, pk in self.runs.items()
            )
            + " END"
        )
        day, day_params = ops.datetime_cast_date_sql("signed_at", (), tzname)
        others = ", ".join(["0"] * (self.late_columns - 1))
        standing_params += [moment, moment, moment, *day_params]
        standings = (
            f"SELECT run_id, audience_key, {late}{', ' + others if others else ''},"  # noqa: S608 - ids and quoted names only
            " CASE WHEN signed_at <= %s THEN 1 ELSE 0 END,"
            " CASE WHEN declined_at <= %s THEN 1 ELSE 0 END,"
            f" CASE WHEN signed_at <= %s THEN {day} END, COUNT(*)"
            f" FROM {q(RunStanding._meta.db_table)}"
            f" WHERE run_id IN ({', '.join(str(int(run)) for run in self.runs)})"
            " AND active = %s AND joined <= %s AND audience_key <> ''"
            " AND (signed_at <= %s OR declined_at <= %s)"
            " GROUP BY " + ", ".join(str(n) for n in range(1, self.late_columns + 6))
        )
        standing_params += [True, moment, moment, moment]
        return f"{people} UNION ALL {standings}", people_params + standing_params

    def count(self, rows: list[tuple]) -> dict[int, PolicyCensus]:
        """The census of each policy from the statement's rows."""
        census = {pk: PolicyCensus() for pk in self.policies}
        # People per (policy, audiences, late), less those who signed or declined.
        silent: Counter[tuple[int, str, bool]] = Counter()
        for run, key, *values in rows:
            lates, (covered, declined, day, people) = values[: self.late_columns], values[-4:]
            if run is None:
                late_of = _unpack(lates, len(self.policies))
                for n, pk in enumerate(self.policies):
                    silent[pk, key, late_of[n]] += people
                continue
            pk = self.runs[run]
            late = bool(lates[0])
            silent[pk, key, late] -= people
            status = status_of(covered=bool(covered), declined=bool(declined), late=late)
            if self._tally(census[pk], pk, key, status, people) and covered:
                census[pk].signatures_per_day[_as_date(day)] += people
        for (pk, key, late), people in silent.items():
            if people < 0:
                raise CensusOutOfStep(
                    "The run standings count more people than there are: run "
                    "`manage.py rebuild_run_standings`."
                )
            status = status_of(covered=False, declined=False, late=late)
            self._tally(census[pk], pk, key, status, people)
        return census

    def _tally(self, census: PolicyCensus, pk: int, key: str, status: str, people: int) -> bool:
        """Count people with these audiences in the policy's scope; False if they are not."""
        audiences = audience_ids(key) & self.scopes[pk]
        if not audiences:
            return False
        census.people[None, status] += people
        for audience in audiences:
            census.people[audience, status] += people
        return True


def _as_date(day) -> dt.date:
    """PostgreSQL returns dates; SQLite returns them as ISO text."""
    return day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
