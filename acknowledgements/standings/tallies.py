"""Each person's standing in each run of a policy, and tallies of them, kept as people sign.

A *run* is a material revision and the minor revisions after it: while a run is in effect, a
signature of any of its revisions covers a person (coverage.py). Signing and declining are
only possible on the revision in effect (signing/facts.py), so at any moment a person is
covered exactly when they signed some revision of the run in effect then, by then; and they
declined it when they declined one of its revisions by then. The first signature and the
first decline in each run are therefore all the dashboard needs to count anyone at any moment.

- models.RunStanding keeps those two times per person and run, with copies of the person's
  audiences, active flag and joining date (kept in step by the signals below).
- models.CoverageTally counts the active people who first signed in a run, by audiences and
  15-minute slot (UTC). Every time zone's offset is a whole number of such slots, so a slot
  falls on one calendar day wherever the dashboard is read.

The census (reports/census.py) adds up the tallies of the slots before the moment and reads
standings only where the tallies cannot answer: the moment's own slot, people who joined
recently (late or not), declines, and people whose joining date was set after they signed.
All of it is derived, never evidence: `rebuild()` recomputes it from the acknowledgements, the
ledger's declines and the people, and tests check that what is kept as things happen equals
a rebuild.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable

from django.apps import apps as installed_apps
from django.db import connection
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from acknowledgements.models import PolicyRevision

AUDIENCE_SEPARATOR = ","


def audience_key(audience_ids: Iterable[int]) -> str:
    """A person's audiences as the census groups them: sorted ids, "" for none."""
    return AUDIENCE_SEPARATOR.join(str(pk) for pk in sorted(set(audience_ids)))


def audience_ids(key: str) -> frozenset[int]:
    return frozenset(int(pk) for pk in key.split(AUDIENCE_SEPARATOR) if pk)


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


def record(
    *,
    person_id: int,
    run_id: int,
    signed_at: dt.datetime | None = None,
    declined_at: dt.datetime | None = None,
) -> None:
    """A signature or a decline in a run (signing/facts.py reads the run): the first of each counts."""
    ops = connection.ops
    standings, people = _table("RunStanding"), _table("User")
    signed = ops.adapt_datetimefield_value(signed_at)
    sql = (
        f"INSERT INTO {standings} (person_id, run_id, audience_key, active, joined, signed_at,"  # noqa: S608 - quoted names only
        " declined_at) SELECT u.id, %s, u.audience_key, u.is_active, u.date_joined, %s, %s"
        f" FROM {people} u WHERE u.id = %s"
        " ON CONFLICT (person_id, run_id) DO UPDATE SET"
        f" signed_at = COALESCE({standings}.signed_at, excluded.signed_at),"
        f" declined_at = COALESCE({standings}.declined_at, excluded.declined_at)"
        " RETURNING audience_key, active, CASE WHEN signed_at = %s THEN 1 ELSE 0 END"
    )
    params = [run_id, signed, ops.adapt_datetimefield_value(declined_at), person_id, signed]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        key, active, first_signature = cursor.fetchone()
    if signed_at is not None and active and first_signature:
        _count({(run_id, key, slot_of(signed_at)): 1})


def _count(changes: dict[tuple[int, str, dt.datetime], int]) -> None:
    """Add to the tallies (run, audiences, slot) -> people; one statement per change."""
    ops = connection.ops
    tallies = _table("CoverageTally")
    sql = (
        f"INSERT INTO {tallies} (run_id, audience_key, slot, people) VALUES (%s, %s, %s, %s)"  # noqa: S608 - quoted names only
        " ON CONFLICT (run_id, audience_key, slot) DO UPDATE"
        f" SET people = {tallies}.people + excluded.people"
    )
    with connection.cursor() as cursor:
        for (run_id, key, slot), people in changes.items():
            if people:
                cursor.execute(sql, [run_id, key, ops.adapt_datetimefield_value(slot), people])


def refresh_people(person_ids: Iterable[int]) -> None:
    """Copy these people's audiences, active flag and joining date to where the census reads
    them, moving their signatures between tallies when their audiences or activity changed."""
    User = _model("User")
    ids = set(person_ids)
    if not ids:
        return
    memberships = defaultdict(set)
    for person_id, audience_id in User.audiences.through.objects.filter(
        user_id__in=ids
    ).values_list("user_id", "audience_id"):
        memberships[person_id].add(audience_id)
    for person in User.objects.filter(pk__in=ids).only("audience_key", "is_active", "date_joined"):
        key = audience_key(memberships[person.pk])
        if key != person.audience_key:
            User.objects.filter(pk=person.pk).update(audience_key=key)
        _copy_to_standings(person.pk, key=key, active=person.is_active, joined=person.date_joined)


def _copy_to_standings(person_id: int, *, key: str, active: bool, joined: dt.datetime) -> None:
    standings = _model("RunStanding").objects.filter(person_id=person_id)
    changes: dict[tuple[int, str, dt.datetime], int] = defaultdict(int)
    for run_id, old_key, was_active, signed_at in standings.filter(
        signed_at__isnull=False
    ).values_list("run_id", "audience_key", "active", "signed_at"):
        if was_active:
            changes[run_id, old_key, slot_of(signed_at)] -= 1
        if active:
            changes[run_id, key, slot_of(signed_at)] += 1
    _count(changes)
    standings.update(audience_key=key, active=active, joined=joined)


def rebuild(apps=installed_apps) -> int:
    """Recompute audience keys, standings and tallies from the evidence; the standings made."""
    User, RunStanding = apps.get_model("acknowledgements", "User"), _model("RunStanding", apps)
    memberships = defaultdict(set)
    for person_id, audience_id in User.audiences.through.objects.values_list(
        "user_id", "audience_id"
    ):
        memberships[person_id].add(audience_id)
    by_key = defaultdict(list)
    for person_id, key in User.objects.values_list("pk", "audience_key"):
        if audience_key(memberships[person_id]) != key:
            by_key[audience_key(memberships[person_id])].append(person_id)
    for key, person_ids in by_key.items():
        for start in range(0, len(person_ids), 10_000):
            User.objects.filter(pk__in=person_ids[start : start + 10_000]).update(audience_key=key)

    runs = _runs()
    CoverageTally = _model("CoverageTally", apps)
    CoverageTally.objects.all().delete()
    RunStanding.objects.all().delete()
    if not runs:
        return 0
    q = connection.ops.quote_name
    run_of = "CASE revision_id " + " ".join(f"WHEN {r} THEN {run}" for r, run in runs.items())
    run_of += " END"
    ids = ", ".join(str(r) for r in runs)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(RunStanding._meta.db_table)} (person_id, run_id, audience_key, active,"  # noqa: S608 - ids and quoted names only
            " joined, signed_at, declined_at)"
            " SELECT e.person_id, e.run_id, u.audience_key, u.is_active, u.date_joined,"
            " MIN(e.signed_at), MIN(e.declined_at) FROM ("
            f"SELECT person_id, {run_of} AS run_id, signed_at, NULL AS declined_at"
            f" FROM {q(_model('Acknowledgement', apps)._meta.db_table)}"
            f" WHERE revision_id IN ({ids})"
            f" UNION ALL SELECT person_id, {run_of}, NULL, recorded_at"
            f" FROM {q(_model('LedgerEntry', apps)._meta.db_table)}"
            f" WHERE kind = 'declined' AND person_id IS NOT NULL AND revision_id IN ({ids})"
            f") e JOIN {q(User._meta.db_table)} u ON u.id = e.person_id"
            " GROUP BY e.person_id, e.run_id, u.audience_key, u.is_active, u.date_joined"
        )
        made = cursor.rowcount
    tallies: Counter[tuple[int, str, dt.datetime]] = Counter()
    signed = RunStanding.objects.filter(active=True, signed_at__isnull=False)
    for run_id, key, signed_at in signed.values_list(
        "run_id", "audience_key", "signed_at"
    ).iterator(chunk_size=10_000):
        tallies[run_id, key, slot_of(signed_at)] += 1
    CoverageTally.objects.bulk_create(
        (
            CoverageTally(run_id=run_id, audience_key=key, slot=slot, people=people)
            for (run_id, key, slot), people in tallies.items()
        ),
        batch_size=5_000,
    )
    return made


def _runs() -> dict[int, int]:
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


# --- Keeping the copies in step -----------------------------------------------------------------


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
    # Recomputed from the memberships rather than taken from `instance`: an instance loaded
    # before its audiences changed would otherwise write back the key it was loaded with.
    watched = {"is_active", "date_joined", "audience_key"}
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
