"""Building and sending the portal's emails.

Policy notifications are rows (models.Notification) sent in batches. A batch is claimed (status
"sending") before its messages go out; each message is recorded as handed to the mail server
just before it goes and as sent once the server accepts it, one statement per message
(_Recorder), so a restarted worker never sends a row twice. Failures are retried with backoff
up to PORTAL_EMAIL_MAX_ATTEMPTS, then stay visible as failed. When a worker dies mid-batch, its
messages never handed over are queued again when its claim runs out, and the at most one per
connection handed over without a recorded answer is marked failed, not resent: only an
administrator's retry sends it again, because the portal cannot know whether it left.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import secrets
import threading
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.db import connection, transaction
from django.db.models import Case, Count, DateTimeField, F, Min, Q, QuerySet, Value, When
from django.tasks import task
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from acknowledgements import jobs
from acknowledgements.models import (
    Announcement,
    ConcernReport,
    Notification,
    PolicyRevision,
    Receipt,
    User,
)
from acknowledgements.notifications.mail import NAME_STAND_IN, GroupMessage
from acknowledgements.standings import coverage, renewal

logger = logging.getLogger(__name__)

# Keyed by the kind as stored: a Notification's `kind` is its plain string value.
TEMPLATES: dict[str, str] = {
    Notification.Kind.ANNOUNCEMENT: "email/announcement",
    Notification.Kind.MINOR_NOTICE: "email/minor_notice",
    Notification.Kind.REMINDER: "email/reminder",
    Notification.Kind.OVERDUE: "email/overdue",
    Notification.Kind.IN_SCOPE: "email/in_scope",
    Notification.Kind.RENEWAL_DUE: "email/renewal_due",
    Notification.Kind.MANUAL_REMINDER: "email/manual_reminder",
}


def absolute_url(path: str) -> str:
    return f"{settings.PORTAL_BASE_URL}{path}"


@dataclass(frozen=True)
class _Rendered:
    """An email's subject, plain text and HTML as rendered, before it is addressed."""

    subject: str
    text: str
    html: str

    def message(self, to: str) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives(subject=self.subject, body=self.text, to=[to])
        message.attach_alternative(self.html, "text/html")
        return message


def _render(template: str, context: dict, language: str) -> _Rendered:
    """`<template>_subject.txt`, `.txt` and `.html` rendered in `language`."""
    with translation.override(language):
        context = {"company": settings.PORTAL_COMPANY_NAME, **context}
        return _Rendered(
            subject=" ".join(render_to_string(f"{template}_subject.txt", context).split()),
            text=render_to_string(f"{template}.txt", context),
            html=render_to_string(f"{template}.html", context),
        )


def email_message(template: str, context: dict, to: str, language: str) -> EmailMultiAlternatives:
    """A plain-text and HTML email from `<template>_subject.txt`, `.txt` and `.html`."""
    return _render(template, context, language).message(to)


def _baseline(notification: Notification, baselines: dict[int, PolicyRevision]) -> PolicyRevision:
    """The material revision whose due date applies (looked up once per revision in a batch).

    An announcement is about the material revision itself, even before it takes effect;
    reminders and overdue notices follow the coverage rules at the time of sending.
    """
    revision = notification.revision
    if notification.kind == Notification.Kind.ANNOUNCEMENT:
        return revision
    if revision.pk not in baselines:
        baselines[revision.pk] = coverage.timeline_for(revision.policy).baseline or revision
    return baselines[revision.pk]


QUEUE_BLOCK = 5_000


def queue_emails(
    *, revision: PolicyRevision, kind: str, person_ids, days_before_due: int = 0, occasion: int = 0
) -> int:
    """Insert notification rows in blocks; existing ones (unique) are left as they are.

    `person_ids` is a queryset (or an iterable) of ids, or of (id, occasion) pairs where each
    person's email has an occasion of its own (a renewal: renewal.occasion of its lapse). Returns how many rows are
    new (bulk_create with ignore_conflicts cannot tell).
    """
    existing = Notification.objects.filter(
        revision=revision, kind=kind, days_before_due=days_before_due
    )
    before = existing.count()
    block: list[Notification] = []
    items = (
        person_ids.iterator(chunk_size=QUEUE_BLOCK)
        if isinstance(person_ids, QuerySet)
        else person_ids
    )
    for item in items:
        person_id, person_occasion = item if isinstance(item, tuple) else (item, occasion)
        block.append(
            Notification(
                person_id=person_id,
                revision=revision,
                kind=kind,
                days_before_due=days_before_due,
                occasion=person_occasion,
            )
        )
        if len(block) == QUEUE_BLOCK:
            Notification.objects.bulk_create(block, ignore_conflicts=True)
            block = []
    if block:
        Notification.objects.bulk_create(block, ignore_conflicts=True)
    return existing.count() - before


def _due_dates(notifications: list[Notification]) -> list[dt.datetime]:
    """Each notification's due date for its person (one query per revision in the batch)."""
    baselines: dict[int, PolicyRevision] = {}
    by_revision: dict[tuple[int, int], list[Notification]] = defaultdict(list)
    for notification in notifications:
        baseline = _baseline(notification, baselines)
        by_revision[notification.revision_id, baseline.pk].append(notification)
    due: dict[int, dt.datetime] = {}
    for notification in notifications:
        if lapse := renewal.lapse_of_occasion(notification):
            grace = dt.timedelta(days=_baseline(notification, baselines).due_days)
            due[notification.pk] = lapse + grace
    due |= _renewal_due_dates(
        [n for n in notifications if n.kind == Notification.Kind.MANUAL_REMINDER]
    )
    for group in by_revision.values():
        group = [n for n in group if n.pk not in due]
        if not group:
            continue
        revision, baseline = group[0].revision, _baseline(group[0], baselines)
        audience_ids = {a.pk for a in revision.audiences.all()}
        dates = coverage.due_dates(baseline, audience_ids, {n.person_id for n in group})
        due |= {n.pk: dates[n.person_id] for n in group}
    return [due[n.pk] for n in notifications]


def _renewal_due_dates(notifications: list[Notification]) -> dict[int, dt.datetime]:
    """The renewal's due date of each reminder sent by hand to someone whose signature lapsed
    (its occasion is a day, not a lapse): as the coverage rules give it now."""
    due: dict[int, dt.datetime] = {}
    by_policy: dict[int, list[Notification]] = defaultdict(list)
    for notification in notifications:
        by_policy[notification.revision.policy_id].append(notification)
    for group in by_policy.values():
        timeline = coverage.timeline_for(group[0].revision.policy)
        if timeline.renewal is None or timeline.current is None:
            continue
        people = coverage.with_status(
            User.objects.filter(pk__in={n.person_id for n in group}), timeline, timezone.now()
        ).filter(covered_at__isnull=True, lapsed_at__isnull=False)
        renewing = dict(people.values_list("pk", "due_at"))
        due |= {n.pk: renewing[n.person_id] for n in group if n.person_id in renewing}
    return due


def _first_versions(notifications: Iterable[Notification]) -> frozenset[int]:
    """Which of the notifications' revisions are their policy's first published one (one query):
    nobody has signed an earlier version of those, so their announcement does not say "again".
    """
    policy_ids = {n.revision.policy_id for n in notifications}
    first: dict[int, int] = {}
    if policy_ids:
        published = PolicyRevision.objects.published().filter(policy_id__in=policy_ids)
        for pk, policy_id in published.in_publication_order().values_list("pk", "policy_id"):
            first.setdefault(policy_id, pk)
    return frozenset(first.values())


def _render_notification(
    notification: Notification, due_at: dt.datetime, *, first_version: bool = False
) -> GroupMessage:
    """The notification's email for any person of its group.

    Rendering three templates for each of 100,000 people would be most of a fan-out's work, yet
    two notifications of the same kind, revision, language and due date differ only by the
    person's name and address: they are rendered once with a stand-in for the name.
    """
    revision = notification.revision
    rendered = _render(
        TEMPLATES[notification.kind],
        {
            "person": {"full_name": NAME_STAND_IN},
            "revision": revision,
            "policy": revision.policy,
            "due_at": due_at,
            "days_before_due": notification.days_before_due,
            "first_version": first_version,
            "renewal": renewal.lapse_of_occasion(notification) is not None,
            "lapsed_at": renewal.lapse_of_occasion(notification),
            "sign_url": absolute_url(
                reverse("acknowledgements:policy_detail", args=[revision.policy.slug])
            ),
        },
        language=notification.person.preferred_language,
    )
    return GroupMessage(subject=rendered.subject, text=rendered.text, html=rendered.html)


@dataclass
class _Outcome:
    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


class _Recorder:
    """Records each message as handed to the server and as accepted, always on the calling
    thread's database connection: lanes in other threads ask it and wait for the answer, so
    the database work stays in one place (and SQLite, which lets one writer in, is content).

    A message accepted by the server is recorded as sent in the statement that records the
    next hand-over on its connection (one statement per message, not two); the lane's last,
    on its own. Until then it reads as handed over: a worker that dies leaves it in doubt,
    exactly as it leaves the message it is sending, and never more than one per connection.
    """

    def __init__(self, claim: str):
        self.claim = claim
        self.owner = threading.current_thread()
        self.requests: queue.Queue[tuple[tuple, Future]] = queue.Queue()

    def handed(self, pk: int, message_id: str, *, accepted: int | None = None) -> bool:
        """Record the hand-over, and that the server accepted the connection's previous
        message (`accepted`); False if this worker's claim on the new one was lost."""
        return self._ask(("handed", pk, message_id, accepted))

    def accepted(self, pk: int) -> None:
        self._ask(("accepted", pk, "", None))

    def _ask(self, request: tuple) -> bool:
        if threading.current_thread() is self.owner:
            return self._record(*request)
        reply: Future = Future()
        self.requests.put((request, reply))
        return reply.result()

    def _record(self, what: str, pk: int, message_id: str, accepted: int | None) -> bool:
        mine = Notification.objects.filter(claim=self.claim, status=Notification.Status.SENDING)
        if what == "accepted":
            return bool(mine.filter(pk=pk).update(status=Notification.Status.SENT))
        if accepted is None:
            return bool(mine.filter(pk=pk).update(message_id=message_id, sent_at=timezone.now()))
        new = Q(pk=pk)
        updated = mine.filter(pk__in=[pk, accepted]).update(
            status=Case(
                When(pk=accepted, then=Value(Notification.Status.SENT)), default=F("status")
            ),
            message_id=Case(When(new, then=Value(message_id)), default=F("message_id")),
            sent_at=Case(
                When(new, then=Value(timezone.now(), output_field=DateTimeField())),
                default=F("sent_at"),
            ),
        )
        if updated == 1:  # one of the two was taken back after the lease: which one?
            return mine.filter(pk=pk).exists()  # the accepted one is no longer "sending"
        return updated == 2

    def serve(self, lanes: list[Future]) -> None:
        """Answer the lanes' requests until every lane has finished."""
        while not (all(lane.done() for lane in lanes) and self.requests.empty()):
            try:
                request, reply = self.requests.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                reply.set_result(self._record(*request))
            except BaseException as error:  # the lane raises it
                reply.set_exception(error)


def _render_and_send(
    lane: list[tuple[Notification, dt.datetime]],
    recorder: _Recorder,
    first_versions: frozenset[int] = frozenset(),
) -> _Outcome:
    """Render and send one lane's messages over one SMTP connection.

    Each message is recorded as handed to the server just before, and as sent once the
    server has accepted it (with the next hand-over: _Recorder): a worker that dies leaves at
    most one message per connection whose delivery is uncertain. A message whose claim was
    lost (taken back after the lease) is not sent: another worker has it.
    """
    outcome = _Outcome()
    if not lane:
        return outcome
    rendered: dict[tuple, GroupMessage] = {}
    pending: int | None = None  # accepted by the server, recorded with the next hand-over
    with mailers.default as mailer:
        try:
            for notification, due_at in lane:
                person = notification.person
                group = (
                    notification.kind,
                    notification.revision_id,
                    person.preferred_language,
                    due_at,
                    notification.days_before_due,
                    renewal.lapse_of_occasion(notification) is not None,
                )
                if group not in rendered:
                    rendered[group] = _render_notification(
                        notification,
                        due_at,
                        first_version=notification.revision_id in first_versions,
                    )
                message_id = notification.message_id or make_msgid(domain=DNS_NAME)
                mine = recorder.handed(notification.pk, message_id, accepted=pending)
                pending = None
                if not mine:
                    continue
                message = rendered[group].email(
                    person.email, name=person.full_name, message_id=message_id
                )
                try:
                    mailer.send_messages([message])
                except (OSError, ValueError) as error:  # smtplib errors are OSErrors
                    outcome.failed[notification.pk] = f"{type(error).__name__}: {error}"[:1000]
                else:
                    pending = notification.pk
                    outcome.sent.append(notification.pk)
        finally:
            if pending is not None:
                recorder.accepted(pending)
    return outcome


def _send_in_lanes(
    work: list[tuple[Notification, dt.datetime]],
    first_versions: frozenset[int] = frozenset(),
    claim: str = "",
) -> _Outcome:
    """Send over PORTAL_EMAIL_CONNECTIONS connections at once.

    One connection spends most of its time waiting for the server's reply to each command;
    several in parallel keep the worker busy instead. The lanes only render and send; what
    they record goes through this thread (_Recorder).
    """
    lanes = max(1, settings.PORTAL_EMAIL_CONNECTIONS)
    recorder = _Recorder(claim)
    send = partial(_render_and_send, recorder=recorder, first_versions=first_versions)
    if lanes == 1 or len(work) <= 1:
        return send(work)
    total = _Outcome()
    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="email-lane") as pool:
        running = [pool.submit(send, work[i::lanes]) for i in range(lanes)]
        recorder.serve(running)
        for lane in running:
            outcome = lane.result()
            total.sent += outcome.sent
            total.failed |= outcome.failed
    return total


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=settings.PORTAL_EMAIL_LEASE_SECONDS)


def _claim_batch(size: int) -> tuple[str, list[int]]:
    """Claim up to `size` due emails for this worker until its lease runs out."""
    now, claim = timezone.now(), secrets.token_hex(16)
    with transaction.atomic():
        due = Notification.objects.filter(
            status=Notification.Status.QUEUED, next_attempt_at__lte=now
        ).order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            # Several workers take different batches instead of waiting for each other.
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True)[:size])
        Notification.objects.filter(pk__in=ids).update(
            status=Notification.Status.SENDING,
            attempts=F("attempts") + 1,
            next_attempt_at=now + _lease(),
            claim=claim,
            sent_at=None,
        )
    return claim, ids


UNCERTAIN = (
    "The worker sending it stopped after handing it to the mail server and before the server's "
    "answer was recorded: it may or may not have been delivered. A retry sends it with the "
    "same Message-ID, so mail systems can recognise a copy."
)


@dataclass(frozen=True)
class Reclaimed:
    queued_again: int  # never handed to the server: queued again, nobody is sent it twice
    uncertain: int  # handed, the answer never recorded: failed, for an administrator to retry


def reclaim_expired_claims(*, now: dt.datetime | None = None) -> Reclaimed:
    """Take back the emails of workers whose claim ran out (they stopped, or were killed)."""
    now = now or timezone.now()
    expired = Notification.objects.filter(
        status=Notification.Status.SENDING, next_attempt_at__lt=now
    )
    queued_again = expired.filter(sent_at__isnull=True).update(
        status=Notification.Status.QUEUED,
        attempts=F("attempts") - 1,  # this attempt never began
        next_attempt_at=now,
        claim="",
    )
    uncertain = expired.update(status=Notification.Status.FAILED, claim="", last_error=UNCERTAIN)
    if uncertain:
        logger.warning("%d email(s) may or may not have been delivered", uncertain)
    return Reclaimed(queued_again, uncertain)


def backoff(attempts: int) -> dt.timedelta:
    """Wait 1, 4, 16, 64... minutes between attempts."""
    return dt.timedelta(minutes=4 ** (attempts - 1))


def send_batch(*, size: int | None = None) -> int:
    """Send one batch of due notifications; returns how many were taken (0: nothing to do)."""
    reclaim_expired_claims()
    claim, ids = _claim_batch(size or settings.PORTAL_EMAIL_BATCH_SIZE)
    if not ids:
        return 0
    rows = list(
        Notification.objects.filter(pk__in=ids)
        .select_related("person", "revision__policy")
        # The lanes name each policy in the person's language (policy_name) from these.
        .prefetch_related("revision__audiences", "revision__translations")
    )
    attempts = {notification.pk: notification.attempts for notification in rows}
    work = list(zip(rows, _due_dates(rows), strict=True))
    outcome = _send_in_lanes(work, _first_versions(n for n, _ in work), claim)
    _record_failures(outcome.failed, attempts, timezone.now())
    return len(ids)


def _record_failures(failed: dict[int, str], attempts: dict[int, int], now: dt.datetime) -> None:
    if not failed:
        return
    logger.warning("%d notification(s) could not be sent; they will be retried", len(failed))
    give_up = [pk for pk in failed if attempts[pk] >= settings.PORTAL_EMAIL_MAX_ATTEMPTS]
    Notification.objects.filter(pk__in=give_up).update(
        status=Notification.Status.FAILED, claim="", sent_at=None
    )
    for attempt in {attempts[pk] for pk in failed if pk not in give_up}:
        Notification.objects.filter(
            pk__in=[pk for pk in failed if attempts[pk] == attempt and pk not in give_up]
        ).update(
            status=Notification.Status.QUEUED,
            next_attempt_at=now + backoff(attempt),
            claim="",
            sent_at=None,
        )
    # The error text differs per row; failures are rare, so one update each is acceptable.
    for pk, error in failed.items():
        Notification.objects.filter(pk=pk).update(last_error=error)


def resume_sending() -> Reclaimed:
    """Take back expired claims, and queue the sending task if emails are waiting (a worker that
    starts after one was killed picks up its fan-out at once, or when the claim runs out)."""
    reclaimed = reclaim_expired_claims()
    if Notification.objects.filter(status=Notification.Status.QUEUED).exists():
        jobs.enqueue_with_transaction(send_notifications)
    else:
        # A worker killed moments ago still holds its claim: nothing is queued yet, and its
        # task died with it. Come back when the claim runs out, or its emails wait forever.
        _come_back_for_claimed()
    return reclaimed


@dataclass(frozen=True)
class Progress:
    queued: int
    sending: int
    sent: int
    failed: int
    # Published to be announced, and its announcing task has not queued the emails yet (one
    # that was lost is queued again by recover_work, so this does not last).
    preparing: bool = False

    @property
    def total(self) -> int:
        return self.queued + self.sending + self.sent + self.failed

    @property
    def done(self) -> bool:
        return self.queued == 0 and self.sending == 0


def progress(revision: PolicyRevision) -> Progress:
    """How far a revision's emails have gone: their counts in one query, and whether they are
    still to be queued (one more, while they are not counted yet)."""
    counts = Notification.objects.filter(revision=revision).aggregate(
        **{status: Count("pk", filter=Q(status=status)) for status in Notification.Status.values}
    )
    preparing = (
        not any(counts.values())
        and revision.is_published
        and revision.is_announced
        and not Announcement.objects.filter(revision=revision).exists()
    )
    return Progress(**counts, preparing=preparing)


def send_receipt(*, receipt_id: int) -> None:
    """Email a signer their sealed receipt as an attachment."""
    receipt = Receipt.objects.select_related(
        "acknowledgement__person", "acknowledgement__revision__policy"
    ).get(pk=receipt_id)
    acknowledgement = receipt.acknowledgement
    message = email_message(
        "email/receipt",
        {
            "acknowledgement": acknowledgement,
            "revision": acknowledgement.revision,
            "person": acknowledgement.person,
            "my_acknowledgements_url": absolute_url(
                reverse("acknowledgements:my_acknowledgements")
            ),
        },
        to=acknowledgement.person.email,
        language=acknowledgement.person.preferred_language,
    )
    with receipt.pdf.open("rb") as pdf:
        message.attach(
            f"receipt-{acknowledgement.receipt_number}.pdf", pdf.read(), "application/pdf"
        )
    message.send()


def send_concern(*, report_id: int) -> None:
    """Email a concern report to the compliance address (the reporter hidden if they asked)."""
    report = ConcernReport.objects.select_related("reporter").get(pk=report_id)
    message = email_message(
        "email/concern",
        {
            "report": report,
            "manage_url": absolute_url(reverse("acknowledgements:manage_concerns")),
        },
        to=settings.PORTAL_COMPLIANCE_EMAIL,
        language=settings.LANGUAGE_CODE,
    )
    if report.attachment.name:  # the field is "truthy" exactly when it names a file
        with report.attachment.open("rb") as attachment:
            message.attach(report.attachment.name.rsplit("/", 1)[-1], attachment.read())
    message.send()


# A task sends at most this many batches, then enqueues a successor for the rest: each run
# stays short, and several workers share a large fan-out.
BATCHES_PER_RUN = 20


@task()
def send_notifications() -> None:
    for _ in range(BATCHES_PER_RUN):
        if not send_batch():
            _come_back_for_claimed()
            return
    send_notifications.enqueue()


def _come_back_for_claimed() -> None:
    """Emails still claimed by another worker, which may have stopped: look again once its
    claim runs out (where the task backend can wait), so that nothing waits for the hourly
    `send_reminders`."""
    ends = Notification.objects.filter(status=Notification.Status.SENDING).aggregate(
        first=Min("next_attempt_at")
    )["first"]
    if ends is not None and send_notifications.get_backend().supports_defer:
        send_notifications.using(run_after=ends + dt.timedelta(seconds=1)).enqueue()


@task()
def email_receipt(receipt_id: int) -> None:
    send_receipt(receipt_id=receipt_id)


@task()
def email_concern(report_id: int) -> None:
    send_concern(report_id=report_id)
