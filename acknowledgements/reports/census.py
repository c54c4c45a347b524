"""Every policy's counts and signatures per day at a moment, in one SQL statement.

The dashboard needs, for each policy, how many people in scope are signed, declined, overdue or
pending (in total and per audience) and how many of them became covered each day. Evaluating
every person at 100,000 people is a pass over all of them and all their signatures; instead
this statement reads what standings/tallies.py keeps for it:

- part 0: the people in some audience at the moment (their audience spans open then), by
  audiences and, per policy, whether they came into its scope before its late cut-off
  (coverage.late_after): the span's start answers for most; only a span that began since the
  cut-off looks at its memberships;
- part 1: the tallies of people covered in the runs in effect who first signed in the
  15-minute slots before the moment's, by audiences then and day of signing;
- part 2: the few standings the tallies cannot answer: first signed in the moment's slot (not
  in the tallies yet) or later, came into scope since the earliest cut-off (whether a covered
  person is late), or declined; with the audiences they had at the moment;
- part 3, under renewal periods: who let every signature of the run lapse (renewal.py), by
  audiences and whether the renewal's due date has passed.

Python puts these together and applies `coverage.status_of`, so the rule that decides a status
stays in coverage.py; counts that do not add up raise CensusOutOfStep rather than show wrong
figures. Hand-written SQL because the ORM cannot give the three groupings in one statement; it
uses only what SQLite and PostgreSQL share, and Django's own operations for dates and zones.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db import connections, router

from acknowledgements.models import (
    AudienceSpan,
    CoverageTally,
    Membership,
    RunStanding,
    SignatureTerm,
    User,
)
from acknowledgements.standings.coverage import Status, Timeline, late_after, status_of
from acknowledgements.standings.tallies import audience_ids, slot_of

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
    scopes = {
        pk: {a.pk for a in t.current.audiences.all()}
        for pk, t in timelines.items()
        if t.current is not None
    }
    in_effect = {pk: timelines[pk] for pk in scopes}
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
    """The tallies count more people than there are: they need tallies.rebuild()."""


# Bits of the flags of part 2's rows.
COVERED, IN_MOMENTS_SLOT, DECLINED, LATE = 1, 2, 4, 16


class _Query:
    """Builds the statement and reads its rows back (columns are named by position).

    Every row is (part, run, audiences, late bits..., flags, day, people). Part 0 counts the
    people (some rows negative: corrections), part 1 the tallies of the slots before the
    moment's, part 2 the standings the tallies cannot answer (standings/tallies.py says why).
    """

    def __init__(self, timelines, scopes, moment, zone):
        self.scopes: dict[int, set[int]] = scopes
        self.moment: dt.datetime = moment
        self.zone: dt.tzinfo = zone
        self.policies: list[int] = sorted(timelines)
        self.runs: dict[int, int] = {timelines[pk].baseline.pk: pk for pk in self.policies}
        self.cutoffs: dict[int, dt.datetime | None] = {
            pk: late_after(timelines[pk], moment) for pk in self.policies
        }
        self.late_columns = len(_chunks(self.policies))
        self.renewed = {pk: timelines[pk] for pk in self.policies if timelines[pk].renewal}

    def sql(self, connection) -> tuple[str, list]:
        """The statement and its parameters."""
        ops = connection.ops
        q = ops.quote_name
        at = ops.adapt_datetimefield_value
        tzname = getattr(self.zone, "key", None) or str(self.zone)
        moment, slot = at(self.moment), at(slot_of(self.moment))
        runs = ", ".join(str(int(run)) for run in self.runs)
        spans, standings = q(AudienceSpan._meta.db_table), q(RunStanding._meta.db_table)
        terms = q(SignatureTerm._meta.db_table)
        # Fragments and their parameters, in the order of the text.
        sql: list[str] = []
        params: list = []

        def add(text: str, *values) -> None:
            sql.append(text)
            params.extend(values)

        def came_before_cutoff(span: str, pk: int, *, exact: bool = True) -> None:
            """1 when the person of `span` (open at the moment) came into the policy's scope
            before its cut-off. Their memberships all began by the span's start, so a span that
            began before the cut-off answers yes; only a later one looks at the memberships
            (not `exact`: taken as no, for part 0 to correct)."""
            cutoff = self.cutoffs[pk]
            if cutoff is None:
                add("0")
                return
            if not exact:
                add(f"CASE WHEN {span}.start < %s THEN 1 ELSE 0 END", at(cutoff))
                return
            audiences = ", ".join(str(int(a)) for a in sorted(self.scopes[pk])) or "NULL"
            add(
                f"CASE WHEN {span}.start < %s THEN 1 WHEN {span}.joined >= %s THEN 0"  # noqa: S608 - ids and quoted names only
                f" WHEN EXISTS (SELECT 1 FROM {q(Membership._meta.db_table)} m"
                f" WHERE m.person_id = {span}.person_id AND m.audience_id IN ({audiences})"
                " AND m.began_at < %s AND (m.ended_at IS NULL OR m.ended_at > %s))"
                " THEN 1 ELSE 0 END",
                at(cutoff),
                at(cutoff),
                at(cutoff),
                moment,
            )

        def open_at_moment(span: str) -> None:
            add(
                f"{span}.start <= %s AND ({span}.{q('end')} IS NULL OR {span}.{q('end')} > %s)",
                moment,
                moment,
            )

        def day_of(column: str) -> None:
            day, day_params = ops.datetime_cast_date_sql(column, (), tzname)
            add(day, *day_params)

        no_lates = ", ".join(["0"] * self.late_columns)
        late_columns = ", ".join(str(n) for n in range(4, 4 + self.late_columns))
        day_column = 5 + self.late_columns

        # 0: the people in some audience at the moment, by audiences and late or not: every
        # open span as its start says, then the spans begun since the earliest cut-off taken
        # back and counted again as their memberships say. (Asking the memberships of every
        # span would make PostgreSQL expect a costly statement and compile it first.)
        recent = min([c for c in self.cutoffs.values() if c is not None] + [self.moment])
        for sign, exact in ((1, False), (-1, False), (1, True)):
            add(" UNION ALL " if sign < 0 or exact else "")
            add("SELECT 0, CAST(NULL AS BIGINT), s.audience_key")
            for chunk in _chunks(self.policies):
                add(",")
                for bit, pk in enumerate(chunk):
                    add(" + " if bit else "")
                    add("(")
                    came_before_cutoff("s", pk, exact=exact)
                    add(f") * {1 << bit}")
            add(f", 0, CAST(NULL AS DATE), {sign} * COUNT(*) FROM {spans} s WHERE ")
            open_at_moment("s")
            if sign < 0 or exact:
                add(" AND s.start >= %s", at(recent))
            add(f" GROUP BY s.audience_key, {late_columns}")

        # 1: who was covered, by audiences at the moment, having first signed in the slots
        # before the moment's, by the day they signed.
        add(f" UNION ALL SELECT 1, run_id, audience_key, {no_lates}, 0, ")
        day_of("slot")
        add(
            f", SUM(people) FROM {q(CoverageTally._meta.db_table)} WHERE run_id IN ({runs})"
            f" AND slot < %s AND at <= %s GROUP BY run_id, audience_key, {day_column}",
            slot,
            moment,
        )

        # 2: the standings the tallies cannot answer (signed in the moment's slot or later,
        # declined, or came into scope since the earliest late cut-off), with the audiences the
        # person had at the moment; late or not as for part 0, corrected the same way.
        for sign, exact in ((1, False), (-1, False), (1, True)):
            add(f" UNION ALL SELECT 2, r.run_id, s.audience_key, {no_lates}, CASE r.run_id")
            for run, pk in self.runs.items():
                add(f" WHEN {int(run)} THEN ")
                came_before_cutoff("s", pk, exact=exact)
            add(
                f" END * {LATE}"
                f" + CASE WHEN r.signed_at <= %s THEN {COVERED} ELSE 0 END"
                f" + CASE WHEN r.signed_at >= %s THEN {IN_MOMENTS_SLOT} ELSE 0 END"
                f" + CASE WHEN r.declined_at <= %s THEN {DECLINED} ELSE 0 END,"
                " CASE WHEN r.signed_at <= %s THEN ",
                moment,
                slot,
                moment,
                moment,
            )
            day_of("r.signed_at")
            add(
                f" END, {sign} * COUNT(*) FROM picked r JOIN {spans} s ON s.person_id = r.person_id AND "
            )
            open_at_moment("s")
            if sign < 0 or exact:
                add(" AND s.start >= %s", at(recent))
            add(f" GROUP BY r.run_id, s.audience_key, {day_column - 1}, {day_column}")
        # 3: under a renewal period, who let every signature of the run lapse by the moment, by
        # the audiences they had then and past the renewal's due date or not (the tallies count
        # them as covered: they signed the run). A lapse is a moment per signature (renewal.py)
        # that the tallies would have to be rewritten for whenever a period changes; a group
        # over the runs' terms costs one index range instead (bench/ measures it).
        if self.renewed:
            add(f" UNION ALL SELECT 3, x.run_id, s.audience_key, {no_lates}, CASE x.run_id")
            for timeline in self.renewed.values():
                add(
                    " WHEN %s THEN CASE WHEN x.lapsed < %s THEN 1 ELSE 0 END",
                    timeline.baseline.pk,
                    at(self.moment - timeline.grace),
                )
            add(" END, CAST(NULL AS DATE), COUNT(*) FROM (")
            add(
                f"SELECT t.person_id, t.run_id, MAX(t.lapses_at) AS lapsed FROM {terms} t WHERE ("  # noqa: S608 - quoted names only
            )
            for n, timeline in enumerate(self.renewed.values()):
                add(
                    " OR (t.period_id = %s AND t.run_id = %s)"
                    if n
                    else "(t.period_id = %s AND t.run_id = %s)",
                    timeline.renewal.pk,
                    timeline.baseline.pk,
                )
            add(
                ") AND t.signed_at <= %s GROUP BY t.person_id, t.run_id"
                f" HAVING MAX(t.lapses_at) <= %s) x JOIN {spans} s ON s.person_id = x.person_id AND ",
                moment,
                moment,
            )
            open_at_moment("s")
            add(f" GROUP BY x.run_id, s.audience_key, {day_column - 1}")
        # The standings part 2 reads, found once for its three selects.
        columns = "id, person_id, run_id, signed_at, declined_at"
        picked = (
            f"WITH picked AS (SELECT {columns} FROM {standings}"  # noqa: S608 - ids and quoted names only
            f" WHERE run_id IN ({runs}) AND signed_at >= %s"
            f" UNION SELECT {columns} FROM {standings} WHERE run_id IN ({runs})"
            " AND declined_at IS NOT NULL"
            " UNION SELECT r2.id, r2.person_id, r2.run_id, r2.signed_at, r2.declined_at"
            f" FROM {spans} s2 JOIN {standings} r2"
            f" ON r2.person_id = s2.person_id AND r2.run_id IN ({runs})"
            " WHERE s2.start >= %s AND s2.start <= %s) "
        )
        return picked + "".join(sql), [slot, at(recent), moment, *params]

    def count(self, rows: list[tuple]) -> dict[int, PolicyCensus]:
        """The census of each policy from the statement's rows."""
        people: Counter[tuple[int, str, bool]] = Counter()  # (policy, audiences, late)
        covered: Counter[tuple[int, str]] = Counter()
        covered_in_time: Counter[tuple[int, str]] = Counter()  # came into scope since the cut-off
        declined: Counter[tuple[int, str, bool]] = Counter()  # and not covered
        per_day: Counter[tuple[int, str, dt.date]] = Counter()
        # Covered in the tallies, but every signature lapsed: (policy, audiences, renewal late).
        renewing: Counter[tuple[int, str, bool]] = Counter()
        for part, run, key, *values in rows:
            lates, (flags, day, count) = values[: self.late_columns], values[-3:]
            if part == 0:
                for pk, late in zip(self.policies, _unpack(lates, len(self.policies)), strict=True):
                    people[pk, key, late] += count
                continue
            pk = self.runs[run]
            if part == 3:
                renewing[pk, key, bool(flags)] += count
                continue
            if part == 1:
                covered[pk, key] += count
                per_day[pk, key, _as_date(day)] += count
                continue
            if flags & COVERED:
                if flags & IN_MOMENTS_SLOT:  # not in the tallies yet
                    covered[pk, key] += count
                    per_day[pk, key, _as_date(day)] += count
                if not flags & LATE:
                    covered_in_time[pk, key] += count
            elif flags & DECLINED:
                declined[pk, key, bool(flags & LATE)] += count

        census = {pk: PolicyCensus() for pk in self.policies}
        for pk, key in {(pk, key) for pk, key, _late in people} | set(covered):
            audiences = audience_ids(key) & self.scopes[pk]
            if not audiences:
                continue
            # The covered who came into scope before the late cut-off (if there is one yet) are
            # late.
            in_time = covered_in_time[pk, key] if self.cutoffs[pk] else covered[pk, key]
            covered_by_late = {True: covered[pk, key] - in_time, False: in_time}
            counts: Counter[str] = Counter()
            for late in (True, False):
                silent = people[pk, key, late] - covered_by_late[late] - declined[pk, key, late]
                if min(silent, covered_by_late[late]) < 0:
                    raise CensusOutOfStep(
                        "The dashboard's tallies count more people than there are: run "
                        "`manage.py rebuild_run_standings`."
                    )
                counts[status_of(covered=True, declined=False, late=late)] += covered_by_late[late]
                counts[status_of(covered=False, declined=True, late=late)] += declined[
                    pk, key, late
                ]
                counts[status_of(covered=False, declined=False, late=late)] += silent
            # Counted as covered above: they signed the run, but it has lapsed since.
            for late in (True, False):
                counts[Status.SIGNED] -= renewing[pk, key, late]
                counts[status_of(covered=False, declined=False, late=late, renewing=True)] += (
                    renewing[pk, key, late]
                )
            for status, count in counts.items():
                census[pk].people[None, status] += count
                for audience in audiences:
                    census[pk].people[audience, status] += count
        for (pk, key, day), count in per_day.items():
            if audience_ids(key) & self.scopes[pk]:
                census[pk].signatures_per_day[day] += count
        return census


def _as_date(day) -> dt.date:
    """PostgreSQL returns dates; SQLite returns them as ISO text."""
    return day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
