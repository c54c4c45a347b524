"""Who was in which audience, from when to when: the history behind `User.audiences`.

`sync` brings the history in step with the present: a membership begins when a person is put in
an audience and ends when they are taken out of it, or on their leaving date when they leave; a
returner's memberships begin again. Every door that changes audiences (the people pages, the
import, SCIM, single sign-on, the Django admin) reaches it through tallies.refresh_people.

A person *comes into a policy's scope* at the later of their joining date and the earliest
beginning among their memberships, open at the moment, of the policy's audiences (coverage.py
counts their due date from then). So a person added to an audience today is given the policy's
full time to sign from today, whatever their joining date; one moved between two audiences of
the same policy counts from the membership they kept, or from the move if they kept none.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.apps import apps as installed_apps
from django.db.models import Q
from django.utils import timezone

AUDIENCE_SEPARATOR = ","

_changed_by: ContextVar[str] = ContextVar("membership_changed_by", default="")


@contextmanager
def changes_by(label: str) -> Iterator[None]:
    """Memberships begun or ended inside this block say `label` made the change."""
    token = _changed_by.set(label[:300])
    try:
        yield
    finally:
        _changed_by.reset(token)


def audience_key(audience_ids: Iterable[int]) -> str:
    """A set of audiences as the census groups people by it: sorted ids, "" for none."""
    return AUDIENCE_SEPARATOR.join(str(pk) for pk in sorted(set(audience_ids)))


def audience_ids(key: str) -> frozenset[int]:
    return frozenset(int(pk) for pk in key.split(AUDIENCE_SEPARATOR) if pk)


@dataclass(frozen=True)
class Stretch:
    """One membership as it counts: not before the person joined (end None: still open)."""

    audience_id: int
    begins: dt.datetime
    ends: dt.datetime | None

    @classmethod
    def of(
        cls, audience_id: int, began: dt.datetime, ended: dt.datetime | None, joined: dt.datetime
    ) -> Stretch | None:
        begins = max(began, joined)
        ends = None if ended is None else max(ended, joined)
        if ends is not None and ends <= begins:
            return None  # over before the person joined
        return cls(audience_id, begins, ends)

    def open_at(self, moment: dt.datetime) -> bool:
        return self.begins <= moment and (self.ends is None or self.ends > moment)


def stretches(rows: Iterable[tuple[int, dt.datetime, dt.datetime | None]], joined: dt.datetime):
    """A person's memberships (audience id, began, ended) as they count."""
    found = (Stretch.of(audience, began, ended, joined) for audience, began, ended in rows)
    return [s for s in found if s is not None]


def came_into_scope(
    person_stretches: Iterable[Stretch], audience_ids: frozenset[int], moment: dt.datetime
) -> dt.datetime | None:
    """When the person came into the scope of these audiences, if they are in it at `moment`."""
    return min(
        (s.begins for s in person_stretches if s.audience_id in audience_ids and s.open_at(moment)),
        default=None,
    )


@dataclass(frozen=True)
class Span:
    """A stretch of time in which a person was in exactly the audiences of `key`."""

    key: str
    start: dt.datetime
    end: dt.datetime | None


def spans(person_stretches: list[Stretch]) -> list[Span]:
    """The person's time cut where their audiences change; none where they have none."""
    points = sorted(
        {s.begins for s in person_stretches} | {s.ends for s in person_stretches if s.ends}
    )
    found: list[Span] = []
    for n, start in enumerate(points):
        end = points[n + 1] if n + 1 < len(points) else None
        key = audience_key(s.audience_id for s in person_stretches if s.open_at(start))
        if not key:
            continue
        if found and found[-1].key == key and found[-1].end == start:
            found[-1] = Span(key, found[-1].start, end)
        else:
            found.append(Span(key, start, end))
    return found


def sync(person_ids: set[int], *, at: dt.datetime | None = None, apps=installed_apps) -> None:
    """Begin and end these people's memberships so that their history ends in the present:
    the audiences they are in now, all ended on the leaving date of a person who left."""
    at = at or timezone.now()
    User, Membership = (apps.get_model("acknowledgements", n) for n in ("User", "Membership"))
    by = _changed_by.get()
    wanted: dict[int, set[int]] = defaultdict(set)
    for person_id, audience_id in User.audiences.through.objects.filter(
        user_id__in=person_ids
    ).values_list("user_id", "audience_id"):
        wanted[person_id].add(audience_id)
    live: dict[int, dict[int, Any]] = defaultdict(dict)  # Membership rows (apps: historical)
    for membership in Membership.objects.filter(person_id__in=person_ids).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=at)
    ):
        live[membership.person_id][membership.audience_id] = membership
    ended, begun = [], []
    for person_id, active, left_at in User.objects.filter(pk__in=person_ids).values_list(
        "pk", "is_active", "left_at"
    ):
        for audience_id, membership in live[person_id].items():
            if audience_id not in wanted[person_id]:
                end = at
            elif not active:
                end = left_at or at
            elif membership.ended_at is not None:  # came back before the leaving date
                membership.ended_at, membership.ended_by = None, ""
                ended.append(membership)
                continue
            else:
                continue
            end = max(end, membership.began_at)
            if membership.ended_at is None or membership.ended_at > end:
                membership.ended_at, membership.ended_by = end, by
                ended.append(membership)
        if active:
            begun += [
                Membership(person_id=person_id, audience_id=a, began_at=at, begun_by=by)
                for a in wanted[person_id] - set(live[person_id])
            ]
    Membership.objects.bulk_update(ended, ["ended_at", "ended_by"], batch_size=1_000)
    Membership.objects.bulk_create(begun, batch_size=1_000)


def stretches_of(
    joined: dict[int, dt.datetime], *, apps=installed_apps
) -> dict[int, list[Stretch]]:
    """The memberships, as they count, of the people whose joining dates are given (by id), in
    one query."""
    Membership = apps.get_model("acknowledgements", "Membership")
    rows: dict[int, list] = defaultdict(list)
    for person_id, *row in Membership.objects.filter(person_id__in=list(joined)).values_list(
        "person_id", "audience_id", "began_at", "ended_at"
    ):
        rows[person_id].append(row)
    return {pk: stretches(rows[pk], joined[pk]) for pk in joined}
