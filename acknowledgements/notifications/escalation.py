"""Telling managers which of their direct reports are long overdue.

A person overdue (or lapsed) for PORTAL_ESCALATE_AFTER_DAYS days who has an active manager gets
one Escalation row per run and due date (its unique key), however often the scheduler looks.
A manager's waiting escalations go out in one email listing everyone; a manager emailed less
than a day ago waits until the day is over, so that the people found overdue meanwhile arrive
together instead of one email each.

Sending follows sending.py: a manager's rows are claimed with a lease, recorded as handed to the
server just before the email goes and as sent once it is accepted. A worker that stops in
between leaves them failed, for nobody can know whether the email left: never sent twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
import secrets
from dataclasses import dataclass
from functools import reduce

from django.conf import settings
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from acknowledgements.models import Escalation, Policy, PolicyRevision, User
from acknowledgements.notifications import sending
from acknowledgements.standings import coverage

logger = logging.getLogger(__name__)

# A manager gets at most one escalation email in this time.
DIGEST_INTERVAL = dt.timedelta(days=1)


def queue_escalations(*, moment: dt.datetime | None = None) -> int:
    """Queue an escalation for each person overdue PORTAL_ESCALATE_AFTER_DAYS days who has an
    active manager, once per run and due date; none while the setting is empty. Returns how
    many are new."""
    after = settings.PORTAL_ESCALATE_AFTER_DAYS
    if after is None:
        return 0
    moment = moment or timezone.now()
    cutoff = moment - dt.timedelta(days=after)
    queued = 0
    for policy in Policy.objects.all():
        timeline = coverage.timeline_for(policy, moment)
        if timeline.current is None:
            continue
        assert timeline.baseline is not None
        conditions = coverage.status_conditions(timeline, moment)
        overdue = reduce(operator.or_, (conditions[s] for s in coverage.OVERDUE_STATUSES))
        people = coverage.people_in_scope(timeline, moment).filter(
            overdue, is_active=True, manager__is_active=True
        )
        late = coverage.with_status(people, timeline, moment).filter(due_at__lt=cutoff)
        existing = Escalation.objects.filter(run=timeline.baseline)
        before = existing.count()
        Escalation.objects.bulk_create(
            (
                Escalation(
                    person_id=person_id, manager_id=manager_id, run=timeline.baseline, due_at=due
                )
                for person_id, manager_id, due in late.values_list("pk", "manager_id", "due_at")
            ),
            batch_size=1_000,
            ignore_conflicts=True,
        )
        queued += existing.count() - before
    return queued


@dataclass(frozen=True)
class OverduePerson:
    """One line of a manager's email: who, which policy (the revision to sign), since when."""

    person: User
    revision: PolicyRevision
    due_at: dt.datetime
    days_overdue: int


def send_escalations(*, now: dt.datetime | None = None) -> int:
    """Email each manager their waiting escalations in one message, unless they were sent one
    less than a day ago; returns how many emails were sent."""
    now = now or timezone.now()
    reclaim_expired_claims(now=now)
    waiting = (
        Escalation.objects.filter(status=Escalation.Status.QUEUED, next_attempt_at__lte=now)
        .exclude(manager_id__in=_recently_emailed(now).values("manager_id"))
        .order_by()
        .values_list("manager_id", flat=True)
        .distinct()
    )
    return sum(_send_to_manager(manager_id, now) for manager_id in list(waiting))


def _recently_emailed(now: dt.datetime):
    """Escalations being sent, or handed to the server less than a day ago."""
    return Escalation.objects.filter(
        Q(status=Escalation.Status.SENDING) | Q(sent_at__gt=now - DIGEST_INTERVAL)
    )


def _claim(manager_id: int, now: dt.datetime) -> str:
    """Claim the manager's waiting escalations until the lease runs out (nothing if another
    worker is sending them one, or did less than a day ago)."""
    claim = secrets.token_hex(16)
    lease = dt.timedelta(seconds=settings.PORTAL_EMAIL_LEASE_SECONDS)
    with transaction.atomic():
        if _recently_emailed(now).filter(manager_id=manager_id).exists():
            return claim
        waiting = Escalation.objects.filter(manager_id=manager_id, status=Escalation.Status.QUEUED)
        if connection.features.has_select_for_update_skip_locked:
            waiting = waiting.select_for_update(skip_locked=True)
        ids = list(waiting.values_list("pk", flat=True))
        Escalation.objects.filter(pk__in=ids, status=Escalation.Status.QUEUED).update(
            status=Escalation.Status.SENDING,
            attempts=F("attempts") + 1,
            next_attempt_at=now + lease,
            claim=claim,
            sent_at=None,
        )
    return claim


def _send_to_manager(manager_id: int, now: dt.datetime) -> int:
    claim = _claim(manager_id, now)
    mine = Escalation.objects.filter(claim=claim, status=Escalation.Status.SENDING)
    rows = list(mine.select_related("person", "manager", "run"))
    if not rows:
        return 0
    lines = {row.pk: line for row in rows if (line := _still_overdue(row, now))}
    withdrawn = [row.pk for row in rows if row.pk not in lines]
    mine.filter(pk__in=withdrawn).update(status=Escalation.Status.WITHDRAWN, claim="")
    if not lines:
        return 0
    manager = rows[0].manager
    message = sending.email_message(
        "email/escalation",
        {
            "manager": manager,
            "people": sorted(lines.values(), key=lambda line: (line.person.full_name, line.due_at)),
            "team_url": sending.absolute_url(reverse("acknowledgements:team")),
        },
        to=manager.email,
        language=manager.preferred_language,
    )
    message_id = make_msgid(domain=DNS_NAME)
    message.extra_headers["Message-ID"] = message_id
    if not mine.update(sent_at=timezone.now(), message_id=message_id):
        return 0  # the claim ran out and was taken back: another worker has them
    try:
        message.send()
    except (OSError, ValueError) as error:  # smtplib errors are OSErrors
        _record_failure(mine, max(row.attempts for row in rows), error, now)
        return 0
    mine.update(status=Escalation.Status.SENT)
    return 1


def _still_overdue(row: Escalation, now: dt.datetime) -> OverduePerson | None:
    """The email's line for the escalation, or None if it should no longer go: the person
    signed, left, or now reports to someone else, or the manager left."""
    person = row.person
    if not (person.is_active and row.manager.is_active and person.manager_id == row.manager_id):
        return None
    standing = next(
        (s for s in coverage.standings_for(person, moment=now) if s.policy.pk == row.run.policy_id),
        None,
    )
    if (
        standing is None
        or standing.status not in coverage.OVERDUE_STATUSES
        or standing.timeline.baseline != row.run
    ):
        return None
    return OverduePerson(person, standing.current, standing.due_at, (now - standing.due_at).days)


def _record_failure(mine, attempts: int, error: Exception, now: dt.datetime) -> None:
    logger.warning("An escalation email could not be sent; it will be retried")
    message = f"{type(error).__name__}: {error}"[:1000]
    if attempts >= settings.PORTAL_EMAIL_MAX_ATTEMPTS:
        mine.update(status=Escalation.Status.FAILED, claim="", sent_at=None, last_error=message)
        return
    mine.update(
        status=Escalation.Status.QUEUED,
        claim="",
        sent_at=None,
        next_attempt_at=now + sending.backoff(attempts),
        last_error=message,
    )


def reclaim_expired_claims(*, now: dt.datetime | None = None) -> int:
    """Take back the escalations of a worker whose claim ran out: queued again if their email
    was never handed to the server, failed (uncertain) if it was. Returns how many failed."""
    now = now or timezone.now()
    expired = Escalation.objects.filter(status=Escalation.Status.SENDING, next_attempt_at__lt=now)
    expired.filter(sent_at__isnull=True).update(
        status=Escalation.Status.QUEUED,
        attempts=F("attempts") - 1,  # this attempt never began
        next_attempt_at=now,
        claim="",
    )
    uncertain = expired.update(
        status=Escalation.Status.FAILED, claim="", last_error=sending.UNCERTAIN
    )
    if uncertain:
        logger.warning("%d escalation(s) may or may not have been delivered", uncertain)
    return uncertain
