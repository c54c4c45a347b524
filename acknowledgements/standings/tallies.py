"""Each person's standing in each run of a policy, and tallies of them, kept as people sign.

A *run* is a material revision and the minor revisions after it: while a run is in effect, a
signature of any of its revisions covers a person (coverage.py). Signing and declining are
only possible on the revision in effect (signing/facts.py), so at any moment a person is
covered exactly when they signed some revision of the run in effect then, by then; and they
declined it when they declined one of its revisions by then. The first signature and the
first decline in each run are therefore all the dashboard needs to count anyone at any moment.

- models.RunStanding keeps those two times per person and run.
- models.AudienceSpan cuts each person's time where their audiences change (memberships.py):
  the census counts the spans open at a moment, by audiences, instead of every person.
- models.CoverageTally counts the people covered in a run by audiences: +1 in the 15-minute
  slot (UTC) of a first signature, in the audiences the person had then; -1 and +1 at the
  moment they move to other audiences or leave. Every time zone's offset is a whole number of
  slots, so a slot falls on one calendar day wherever the dashboard is read.

The census (reports/census.py) adds up the tallies before the moment and reads standings only
where the tallies cannot answer: the moment's own slot, people who came into scope recently
(late or not), declines. All of it is derived, never evidence: `rebuild()` recomputes it from
the acknowledgements, the ledger's declines and the memberships, and tests check that what is
kept as things happen equals a rebuild.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import batched

from django.apps import apps as installed_apps
from django.db import connection
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.utils import timezone

from acknowledgements.models import PolicyRevision
from acknowledgements.standings import memberships
from acknowledgements.standings.memberships import Span, audience_ids, audience_key
from acknowledgements.write_batch import WriteBatch

__all__ = [
    "add_signature",
    "audience_ids",
    "audience_key",
    "rebuild",
    "record",
    "refresh_people",
    "runs",
    "slot_of",
]


def run_of_sql(revision: str) -> str:
    """SQL for the run of the revision row `revision`: the latest material revision of its policy
    at or before it in coverage's order (effective, published, id), else the policy's first.

    Only revisions in effect are signed, and a revision published later takes effect later, so
    a signed revision's run never changes.
    """
    revisions = _table("PolicyRevision")
    published, material = PolicyRevision.Status.PUBLISHED, PolicyRevision.Change.MATERIAL
    position = PolicyRevision.sql_publication_position
    order = PolicyRevision.sql_publication_order
    return (
        f"COALESCE((SELECT m.id FROM {revisions} m WHERE m.policy_id = {revision}.policy_id"  # noqa: S608 - quoted names and the model's constants only
        f" AND m.status = '{published}' AND m.change = '{material}'"
        f" AND {position('m')} <= {position(revision)}"
        f" ORDER BY {order('m', descending=True)} LIMIT 1),"
        f" (SELECT m.id FROM {revisions} m WHERE m.policy_id = {revision}.policy_id"
        f" AND m.status = '{published}' ORDER BY {order('m')} LIMIT 1))"
    )


SLOT = dt.timedelta(minutes=15)


def slot_of(moment: dt.datetime) -> dt.datetime:
    """The start of the 15-minute slot (UTC) holding `moment`."""
    utc = moment.astimezone(dt.UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


type TallyRow = tuple[int, str, dt.datetime, dt.datetime]  # run, audiences, slot, at


def contributions(person_spans: Iterable[Span], run_id: int, signed_at: dt.datetime):
    """What one person's first signature in a run adds to the tallies, given their spans:
    +1 where they were when they signed (at the slot's start), then -1 and +1 at each move."""
    slot = slot_of(signed_at)
    for span in person_spans:
        if span.end is not None and span.end <= signed_at:
            continue
        yield (run_id, span.key, slot, slot if span.start <= signed_at else span.start), 1
        if span.end is not None:
            yield (run_id, span.key, slot, span.end), -1


def record(
    *,
    person_id: int,
    run_id: int,
    signed_at: dt.datetime | None = None,
    declined_at: dt.datetime | None = None,
) -> None:
    """A signature or a decline in a run (signing/facts.py reads the run): the first of each counts."""
    ops = connection.ops
    standings = _table("RunStanding")
    signed = ops.adapt_datetimefield_value(signed_at)
    sql = (
        f"INSERT INTO {standings} (person_id, run_id, signed_at, declined_at)"  # noqa: S608 - quoted names only
        " VALUES (%s, %s, %s, %s) ON CONFLICT (person_id, run_id) DO UPDATE SET"
        f" signed_at = COALESCE({standings}.signed_at, excluded.signed_at),"
        f" declined_at = COALESCE({standings}.declined_at, excluded.declined_at)"
        " RETURNING CASE WHEN signed_at = %s THEN 1 ELSE 0 END"
    )
    params = [person_id, run_id, signed, ops.adapt_datetimefield_value(declined_at), signed]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (first_signature,) = cursor.fetchone()
    if signed_at is not None and first_signature:
        person_spans = _model("AudienceSpan").objects.filter(person_id=person_id)
        found = person_spans.exclude(end__lte=signed_at).order_by("start")
        spans = [Span(*row) for row in found.values_list("audience_key", "start", "end")]
        _count(Counter(dict(contributions(spans, run_id, signed_at))))


def add_signature(
    batch: WriteBatch, *, person_id: int, run_id: int, signed_at: dt.datetime, spans: Iterable[Span]
) -> None:
    """`record` of a signature as two statements of the signing's write batch, given the
    person's spans (signing/facts.py reads them): the standing, then the tallies, which count
    only if this signature is the run's first for the person, as its standing now says."""
    ops = connection.ops
    standings = _table("RunStanding")
    signed = ops.adapt_datetimefield_value(signed_at)
    batch.add(
        f"INSERT INTO {standings} (person_id, run_id, signed_at, declined_at)"  # noqa: S608 - quoted names only
        " VALUES (%s, %s, %s, NULL) ON CONFLICT (person_id, run_id) DO UPDATE SET"
        f" signed_at = COALESCE({standings}.signed_at, excluded.signed_at)",
        [person_id, run_id, signed],
    )
    rows = _tally_rows(Counter(dict(contributions(spans, run_id, signed_at))))
    if rows:
        batch.add(
            *_tallies_upsert(
                rows,
                # Only if this signature is the run's first for the person.
                condition=(
                    f"EXISTS (SELECT 1 FROM {standings} WHERE person_id = %s AND run_id = %s"  # noqa: S608 - quoted names only
                    " AND signed_at = %s)",
                    [person_id, run_id, signed],
                ),
            )
        )


# Rows per statement: 5,000 parameters, far below SQLite's limit of 32,766.
COUNT_CHUNK = 1_000


def _count(changes: Counter[TallyRow]) -> None:
    """Add to the tallies (run, audiences, slot, at) -> people, a statement per 1,000 rows."""
    with connection.cursor() as cursor:
        for rows in batched(_tally_rows(changes), COUNT_CHUNK):
            cursor.execute(*_tallies_upsert(list(rows)))


def _tallies_upsert(
    rows: list[list], condition: tuple[str, list] = ("TRUE", [])
) -> tuple[str, list]:
    """One statement adding `rows` (each a distinct run, audiences, slot, at) to the tallies,
    when `condition` (SQL, parameters) holds."""
    tallies = _table("CoverageTally")
    where, where_params = condition
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    return (
        f"INSERT INTO {tallies} (run_id, audience_key, slot, at, people)"  # noqa: S608 - quoted names and placeholders only
        f" SELECT * FROM (VALUES {values}) AS change WHERE {where}"
        f" ON CONFLICT (run_id, audience_key, slot, at) DO UPDATE SET people = {tallies}.people"
        " + excluded.people",
        [*(value for row in rows for value in row), *where_params],
    )


def _tally_rows(changes: Counter[TallyRow]) -> list[list]:
    ops = connection.ops
    return [
        [run_id, key, ops.adapt_datetimefield_value(slot), ops.adapt_datetimefield_value(at), n]
        for (run_id, key, slot, at), n in changes.items()
        if n
    ]


def refresh_people(person_ids: Iterable[int], *, at: dt.datetime | None = None) -> None:
    """Bring these people's memberships, audience spans and the tallies of their signatures in
    step with their audiences, active flag, leaving and joining dates, in a few statements."""
    ids = set(person_ids)
    if not ids:
        return
    memberships.sync(ids, at=at or timezone.now())
    AudienceSpan = _model("AudienceSpan")
    kept: dict[int, list[tuple]] = defaultdict(list)
    for person_id, *row in (
        AudienceSpan.objects.filter(person_id__in=ids)
        .order_by("start")
        .values_list("person_id", "audience_key", "start", "end", "joined")
    ):
        kept[person_id].append(tuple(row))
    joined = dict(_model("User").objects.filter(pk__in=ids).values_list("pk", "date_joined"))
    now = {
        pk: memberships.spans(stretches)
        for pk, stretches in memberships.stretches_of(joined).items()
    }
    changed = {
        pk for pk in now if [(s.key, s.start, s.end, joined[pk]) for s in now[pk]] != kept[pk]
    }
    if not changed:
        return
    before = {pk: [Span(key, start, end) for key, start, end, _ in kept[pk]] for pk in changed}
    changes: Counter[TallyRow] = Counter()
    signed = _model("RunStanding").objects.filter(person_id__in=changed, signed_at__isnull=False)
    for person_id, run_id, signed_at in signed.values_list("person_id", "run_id", "signed_at"):
        changes.subtract(dict(contributions(before[person_id], run_id, signed_at)))
        changes.update(dict(contributions(now[person_id], run_id, signed_at)))
    _count(changes)
    AudienceSpan.objects.filter(person_id__in=changed).delete()
    AudienceSpan.objects.bulk_create(
        (
            AudienceSpan(
                person_id=pk, audience_key=s.key, start=s.start, end=s.end, joined=joined[pk]
            )
            for pk in changed
            for s in now[pk]
        ),
        batch_size=5_000,
    )


def rebuild(apps=installed_apps) -> int:
    """Recompute spans, standings and tallies from the memberships and the evidence; the
    standings made."""
    RunStanding, AudienceSpan = _model("RunStanding", apps), _model("AudienceSpan", apps)
    CoverageTally = _model("CoverageTally", apps)
    User = _model("User", apps)
    AudienceSpan.objects.all().delete()
    CoverageTally.objects.all().delete()
    RunStanding.objects.all().delete()
    joined = dict(User.objects.values_list("pk", "date_joined"))
    rows: dict[int, list] = defaultdict(list)
    for person_id, *row in (
        _model("Membership", apps)
        .objects.values_list("person_id", "audience_id", "began_at", "ended_at")
        .iterator(chunk_size=10_000)
    ):
        rows[person_id].append(row)
    spans = {pk: memberships.spans(memberships.stretches(rows[pk], joined[pk])) for pk in rows}
    AudienceSpan.objects.bulk_create(
        (
            AudienceSpan(
                person_id=pk, audience_key=s.key, start=s.start, end=s.end, joined=joined[pk]
            )
            for pk, person_spans in spans.items()
            for s in person_spans
        ),
        batch_size=5_000,
    )
    run_of_revision = runs()
    if not run_of_revision:
        return 0
    q = connection.ops.quote_name
    run_of = "CASE revision_id " + " ".join(
        f"WHEN {r} THEN {run}" for r, run in run_of_revision.items()
    )
    run_of += " END"
    ids = ", ".join(str(r) for r in run_of_revision)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(RunStanding._meta.db_table)} (person_id, run_id, signed_at,"  # noqa: S608 - ids and quoted names only
            " declined_at) SELECT person_id, run_id, MIN(signed_at), MIN(declined_at) FROM ("
            f"SELECT person_id, {run_of} AS run_id, signed_at, NULL AS declined_at"
            f" FROM {q(_model('Acknowledgement', apps)._meta.db_table)}"
            f" WHERE revision_id IN ({ids})"
            f" UNION ALL SELECT person_id, {run_of}, NULL, recorded_at"
            f" FROM {q(_model('LedgerEntry', apps)._meta.db_table)}"
            f" WHERE kind = 'declined' AND person_id IS NOT NULL AND revision_id IN ({ids})"
            ") e GROUP BY person_id, run_id"
        )
        made = cursor.rowcount
    tallies: Counter[TallyRow] = Counter()
    signed = RunStanding.objects.filter(signed_at__isnull=False)
    for person_id, run_id, signed_at in signed.values_list(
        "person_id", "run_id", "signed_at"
    ).iterator(chunk_size=10_000):
        tallies.update(dict(contributions(spans.get(person_id, []), run_id, signed_at)))
    CoverageTally.objects.bulk_create(
        (
            CoverageTally(run_id=run_id, audience_key=key, slot=slot, at=at, people=people)
            for (run_id, key, slot, at), people in tallies.items()
            if people
        ),
        batch_size=5_000,
    )
    return made


def runs() -> dict[int, int]:
    """Each published revision's id mapped to its run's, by run_of_sql."""
    revisions = _table("PolicyRevision")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.id, {run_of_sql('r')} FROM {revisions} r"  # noqa: S608 - quoted names and the model's constants only
            f" WHERE r.status = '{PolicyRevision.Status.PUBLISHED}'"
        )
        return dict(cursor.fetchall())


def _model(name: str, apps=installed_apps):
    return apps.get_model("acknowledgements", name)


def _table(name: str) -> str:
    return connection.ops.quote_name(_model(name)._meta.db_table)


# --- Kept in step as audiences and people change -----------------------------------------------------------------


def _memberships_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action == "pre_clear" and reverse:  # an audience emptied: remember who was in it
        instance._members_before_clear = list(instance.members.values_list("pk", flat=True))
    elif action in ("post_add", "post_remove", "post_clear"):
        if not reverse:
            refresh_people([instance.pk])
        elif action == "post_clear":
            refresh_people(getattr(instance, "_members_before_clear", []))
        else:
            refresh_people(pk_set or [])


def _person_saved(sender, instance, created, update_fields, **kwargs) -> None:
    # Leaving, returning or a new joining date changes when the person's memberships count.
    watched = {"is_active", "date_joined", "left_at"}
    if not created and (update_fields is None or watched & set(update_fields)):
        refresh_people([instance.pk])


def _audience_deleting(sender, instance, **kwargs) -> None:
    instance._members_before_delete = list(instance.members.values_list("pk", flat=True))


def _audience_deleted(sender, instance, **kwargs) -> None:
    refresh_people(getattr(instance, "_members_before_delete", []))


def connect_signals() -> None:
    User, Audience = _model("User"), _model("Audience")
    m2m_changed.connect(_memberships_changed, sender=User.audiences.through)
    post_save.connect(_person_saved, sender=User)
    pre_delete.connect(_audience_deleting, sender=Audience)
    post_delete.connect(_audience_deleted, sender=Audience)
