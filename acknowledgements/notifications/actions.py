"""Queueing the portal's emails: announcements of a revision, reminders before a due date, overdue notices."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.tasks import task
from django.utils import timezone

from acknowledgements import jobs
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.models import (
    Announcement,
    Notification,
    Policy,
    PolicyRevision,
    User,
)
from acknowledgements.notifications import sending
from acknowledgements.standings import coverage, renewal


def queue_announcements(*, revision: PolicyRevision) -> int:
    """One announcement row per person in the revision's audiences; queuing again adds none."""
    kind = (
        Notification.Kind.ANNOUNCEMENT if revision.is_material else Notification.Kind.MINOR_NOTICE
    )
    people = (
        User.objects.filter(is_active=True, audiences__in=revision.audiences.all())
        .distinct()
        .values_list("pk", flat=True)
    )
    return sending.queue_emails(revision=revision, kind=kind, person_ids=people)


def queue_reminders(*, moment: dt.datetime | None = None) -> int:
    """Queue reminders at the configured days before each due date, and overdue notices; under
    a renewal period, a notice when a signature lapses, and signature terms still missing.

    Each goes to a person at most once per revision and offset (the table's unique key).
    """
    moment = moment or timezone.now()
    renewal.fill_terms()  # those a signature raced with a new period for (renewal.py)
    queued = 0
    for policy in Policy.objects.all():
        timeline = coverage.timeline_for(policy, moment)
        if timeline.current is None:
            continue
        uncovered = coverage.uncovered_people(timeline, moment)
        if timeline.renewal is not None:  # told once, when their signature lapses
            queued += sending.queue_emails(
                revision=timeline.current,
                kind=Notification.Kind.RENEWAL_DUE,
                person_ids=_with_occasions(uncovered.filter(lapsed_at__isnull=False)),
            )
        for days in settings.PORTAL_REMINDER_DAYS:
            window = uncovered.filter(
                due_at__gt=moment, due_at__lte=moment + dt.timedelta(days=days)
            )
            queued += sending.queue_emails(
                revision=timeline.current,
                kind=Notification.Kind.REMINDER,
                person_ids=_with_occasions(window),
                days_before_due=days,
            )
        queued += sending.queue_emails(
            revision=timeline.current,
            kind=Notification.Kind.OVERDUE,
            person_ids=_with_occasions(uncovered.filter(due_at__lte=moment)),
        )
    return queued


def _with_occasions(people):
    """Each person's id and their email's occasion: a renewal's is its lapse (once each)."""
    for pk, lapsed_at in people.values_list("pk", "lapsed_at").iterator(chunk_size=5_000):
        yield pk, renewal.occasion(lapsed_at) if lapsed_at else 0


def retry_failed_notifications(*, actor: User | None, revision: PolicyRevision) -> int:
    """Queue a revision's failed emails again (an administrator's decision, audited)."""
    with transaction.atomic():
        count = Notification.objects.filter(
            revision=revision, status=Notification.Status.FAILED
        ).update(status=Notification.Status.QUEUED, next_attempt_at=timezone.now())
        if count:
            record_admin_action(
                actor=actor,
                action="notifications_retried",
                revision=revision,
                details={
                    "policy": revision.policy.slug,
                    "version": revision.version,
                    "count": count,
                },
            )
            jobs.enqueue_with_transaction(sending.send_notifications)
    return count


@task()
def announce_revision(revision_id: int) -> None:
    revision = PolicyRevision.objects.get(pk=revision_id)
    # The emails' rows, the record that they were queued and the sending task commit together:
    # a worker stopped mid-way leaves none of them, and resume_announcements starts again.
    with transaction.atomic():
        queue_announcements(revision=revision)
        Announcement.objects.bulk_create([Announcement(revision=revision)], ignore_conflicts=True)
        jobs.enqueue_with_transaction(sending.send_notifications)


def resume_announcements() -> int:
    """Queue the announcing task again for every published revision to be announced whose
    emails were never queued (its worker stopped mid-way); returns how many.

    A task still waiting in the queue is queued a second time: harmless, since announcing a
    revision again adds no email (queue_announcements).
    """
    lost = list(
        PolicyRevision.objects.published()
        .announced()
        .filter(announcement__isnull=True)
        .values_list("pk", flat=True)
    )
    for revision_id in lost:
        jobs.enqueue_with_transaction(announce_revision, revision_id)
    return len(lost)
