"""Reminders sent by hand: by a policy administrator from a report list, or by a manager to one
of their direct reports from the team page.

A person gets at most one such reminder per policy and day (the portal's day, TIME_ZONE), and
only while they still have to sign: the others asked for are skipped and counted. Each request
is one audited `reminders_sent` ledger row; the emails are Notification rows sent by the same
task as every other (sending.py), so a retried task never sends one twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from acknowledgements import jobs
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import Notification, Policy, User
from acknowledgements.notifications import sending
from acknowledgements.standings import coverage


def direct_reports(manager: User) -> QuerySet[User]:
    """The active people whose manager this is: all a manager may see and remind."""
    return User.objects.filter(manager=manager, is_active=True)


def reminder_day(moment: dt.datetime) -> int:
    """The day a reminder is sent on, as its Notification occasion: at most one a day."""
    return timezone.localdate(moment, timezone.get_default_timezone()).toordinal()


def reminded_on(policy_ids: Collection[int], day: int) -> QuerySet[Notification]:
    """Reminders sent by hand about these policies on that day (any revision of each)."""
    return Notification.objects.filter(
        kind=Notification.Kind.MANUAL_REMINDER,
        occasion=day,
        revision__policy_id__in=list(policy_ids),
    )


@dataclass(frozen=True)
class Reminded:
    """What a request to remind people came to."""

    queued: int
    already_reminded: int  # must still sign, but were reminded about the policy today
    nothing_to_sign: int  # signed, out of scope, or gone

    @property
    def skipped(self) -> int:
        return self.already_reminded + self.nothing_to_sign


@transaction.atomic
def send_manual_reminders(
    *,
    actor: User,
    policy: Policy,
    person_ids: QuerySet | Collection[int],
    moment: dt.datetime | None = None,
) -> Reminded:
    """Email a reminder to those of these people who must still sign the policy, unless they
    were reminded about it today (audited, even when nobody needed one)."""
    moment = moment or timezone.now()
    asked = person_ids.count() if isinstance(person_ids, QuerySet) else len(set(person_ids))
    timeline = coverage.timeline_for(policy, moment)
    queued = must_sign = 0
    if timeline.current is not None:
        day = reminder_day(moment)
        in_scope = coverage.people_in_scope(timeline, moment).filter(
            pk__in=person_ids, is_active=True
        )
        waiting = coverage.with_status(in_scope, timeline, moment).exclude(
            status=coverage.Status.SIGNED
        )
        must_sign = waiting.count()
        today = reminded_on([policy.pk], day).filter(person=OuterRef("pk"))
        queued = sending.queue_emails(
            revision=timeline.current,
            kind=Notification.Kind.MANUAL_REMINDER,
            person_ids=waiting.filter(~Exists(today)).values_list("pk", flat=True),
            occasion=day,
        )
    # Another request at the same moment may have queued some of them first: never below 0.
    reminded = Reminded(queued, max(0, must_sign - queued), max(0, asked - must_sign))
    record_admin_action(
        actor=actor,
        action="reminders_sent",
        revision=timeline.current,
        subject=_only_person(person_ids),
        details={
            "policy": policy.slug,
            "version": timeline.current.version if timeline.current else None,
            "count": reminded.queued,
            "skipped": reminded.skipped,
        },
    )
    if queued:
        jobs.enqueue_with_transaction(sending.send_notifications)
    return reminded


def _only_person(person_ids: QuerySet | Collection[int]) -> User | None:
    """The person a reminder of one person concerns, so that their history lists it."""
    if isinstance(person_ids, QuerySet) or len(person_ids) != 1:
        return None
    return User.objects.filter(pk=next(iter(person_ids))).first()


class NotYourReport(ActionRefused):
    """A manager may remind their own direct reports only."""


def remind_direct_report(*, manager: User, person: User, policy: Policy) -> Reminded:
    """A manager's reminder to one of their direct reports (anyone else is refused)."""
    if not direct_reports(manager).filter(pk=person.pk).exists():
        raise NotYourReport(_("You can remind only the people who report to you."))
    return send_manual_reminders(actor=manager, policy=policy, person_ids=[person.pk])
