"""Every state change of the portal. Views, commands and tasks call these, so each rule lives once."""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import tempfile
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from . import coverage, ledger, policy_text, receipts, run_standings, signing_facts, tasks
from .evidence import ClientEvidence
from .models import (
    AUTHORITATIVE_LANGUAGE,
    Acknowledgement,
    Audience,
    ClientDetails,
    ConcernReport,
    ExportJob,
    LedgerEntry,
    Notification,
    Policy,
    PolicyRevision,
    Receipt,
    RevisionTranslation,
    User,
)
from .reports import exports, figures
from .reports.figures import PeopleFilter
from .statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT

logger = logging.getLogger(__name__)

QUEUE_BLOCK = 5_000
RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


class ActionRefused(Exception):
    """A request the rules do not allow; the message is shown to the person as it is."""


class ConsentRequired(ActionRefused):
    """A first signature without the e-signing consent ticked (shown next to its checkbox)."""


# --- People --------------------------------------------------------------------------------------


def set_preferred_language(*, person: User, language: str) -> None:
    """Save the language a person reads the portal and its emails in."""
    if language not in dict(settings.LANGUAGES):
        raise ActionRefused(_("This language is not available."))
    if person.preferred_language != language:
        person.preferred_language = language
        person.save(update_fields=["preferred_language"])


# --- Reading and signing -----------------------------------------------------------------------


def comparable_name(name: str) -> str:
    """A name folded for comparison: case, accents and runs of spaces do not count."""
    # Upper-casing first folds letters that casefold() alone keeps apart (the Turkish dotless
    # i and I).
    decomposed = unicodedata.normalize("NFKD", name.upper().casefold())
    without_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(without_marks.split())


def typed_name_matches(typed: str, person: User) -> bool:
    return bool(comparable_name(typed)) and comparable_name(typed) == comparable_name(
        person.full_name
    )


def check_signable(*, person: User, revision: PolicyRevision) -> signing_facts.SigningFacts:
    """Refuse (ActionRefused, with the reason) unless the person may sign the revision now;
    otherwise return what the check read (whether they signed it already, among others)."""
    facts = signing_facts.read(
        person, policy_slug=revision.policy.slug, version=revision.version, moment=timezone.now()
    )
    if facts.refusal:
        raise ActionRefused(facts.refusal)
    return facts


def has_consented(person: User) -> bool:
    return LedgerEntry.objects.filter(person=person, kind=LedgerEntry.Kind.CONSENTED).exists()


def first_viewed_at(person: User, revision: PolicyRevision):
    return (
        LedgerEntry.objects.filter(person=person, revision=revision, kind=LedgerEntry.Kind.VIEWED)
        .order_by("recorded_at")
        .values_list("recorded_at", flat=True)
        .first()
    )


def _person_snapshot(person: User) -> dict:
    return {"id": person.pk, "email": person.email, "name": person.full_name}


def _revision_snapshot(revision: PolicyRevision) -> dict:
    return {
        "slug": revision.policy.slug,
        "name": revision.policy.name,
        "version": revision.version,
        "revision_id": revision.pk,
        "effective_at": ledger.utc_iso(revision.effective_at),
        "material": revision.is_material,
    }


def _text_snapshot(revision: PolicyRevision, language: str) -> dict:
    shown_language, shown_sha256 = revision.text_hash_in(language)
    return {
        "sha256": shown_sha256,
        "language": shown_language,
        "authoritative_language": AUTHORITATIVE_LANGUAGE,
        "authoritative_sha256": revision.text_sha256,
        "hashed": "Markdown source, UTF-8, LF line endings",
    }


@transaction.atomic
def record_view(
    *, person: User, revision: PolicyRevision, client: ClientEvidence, language: str = "en"
) -> None:
    """Record the first time a person opens a revision they must sign; later views add nothing."""
    if first_viewed_at(person, revision) is not None:
        return
    ledger.lock_person(person)
    if first_viewed_at(person, revision) is not None:  # another request won the race
        return
    _append_from_client(
        client=client,
        kind=LedgerEntry.Kind.VIEWED,
        person=person,
        revision=revision,
        payload={
            "person": _person_snapshot(person),
            "policy": _revision_snapshot(revision),
            "text": _text_snapshot(revision, language),
        },
    )


def _append_from_client(*, client: ClientEvidence, payload: dict, **entry) -> LedgerEntry:
    """Record an event of the client's request: its payload commits to the IP address and user
    agent, which are kept beside the ledger entry (ClientDetails) for retention to remove."""
    sealed = client.sealed()
    recorded = ledger.append(payload={**payload, **sealed.payload}, **entry)
    ClientDetails.objects.create(ledger_entry=recorded, **sealed.details_fields())
    return recorded


def _new_receipt_number() -> str:
    chars = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(12))
    return f"VK-{chars[:4]}-{chars[4:8]}-{chars[8:]}"


@transaction.atomic
def record_acknowledgement(
    *,
    person: User,
    policy_slug: str,
    version: str,
    typed_name: str,
    checkbox_ticked: bool,
    consent_accepted: bool,
    client: ClientEvidence,
    language: str = AUTHORITATIVE_LANGUAGE,
    statement_language: str | None = None,
) -> Acknowledgement:
    """Sign a policy's version for a person; signing it again returns the first record unchanged.

    The revision is named as the sign URL names it (PolicyRevision.DoesNotExist if there is
    none): finding it is part of the one statement that decides the signature.
    `language` is that of the text the person read, `statement_language` that of the page
    showing the attestation and consent (default: `language`); the ledger records each with
    the SHA-256 of the text shown next to the authoritative English text's.
    """
    # Serialising this person's submissions lets the reads below see a signature committed a
    # moment ago (double click, two tabs), and keeps consent to one row.
    ledger.lock_person(person)
    facts = signing_facts.read(
        person, policy_slug=policy_slug, version=version, moment=timezone.now()
    )
    revision = facts.revision
    if facts.refusal:
        raise ActionRefused(facts.refusal)
    if facts.signed:
        return Acknowledgement.objects.get(person=person, revision=revision)
    if not checkbox_ticked:
        raise ActionRefused(_("Tick the box to confirm that you agree."))
    if not typed_name_matches(typed_name, person):
        raise ActionRefused(_("Type your full name exactly as it appears on your account."))
    statement_language = statement_language or language
    if facts.consent is not None:  # accepted before (perhaps in another language)
        accepted, accepted_at = facts.consent, facts.consent_at
    elif consent_accepted:
        consent = _append_from_client(
            client=client,
            kind=LedgerEntry.Kind.CONSENTED,
            person=person,
            linked_by_caller=True,  # by the receipt task queued below
            payload={
                "person": _person_snapshot(person),
                "consent": CURRENT_ESIGN_CONSENT.as_evidence(statement_language),
            },
        )
        accepted, accepted_at = ledger.decode(consent), consent.recorded_at
    else:
        raise ConsentRequired(_("Accept electronic signing to sign."))
    accepted = accepted.get("consent") or {}
    receipt_number = _new_receipt_number()
    signed_at = timezone.now()
    entry = _append_from_client(
        client=client,
        linked_by_caller=True,  # by the receipt task queued below, which links first
        recorded_at=signed_at,
        kind=LedgerEntry.Kind.SIGNED,
        person=person,
        revision=revision,
        payload={
            "receipt_number": receipt_number,
            "company": _company(),
            "person": _person_snapshot(person),
            "policy": _revision_snapshot(revision),
            "text": _text_snapshot(revision, language),
            "attestation": CURRENT_ATTESTATION.as_evidence(statement_language),
            "consent": {
                "version": accepted.get("version"),
                "language": accepted.get("language"),
                "sha256": accepted.get("sha256"),
                "accepted_at": ledger.utc_iso(accepted_at),
            },
            "typed_name": typed_name,
            "checkbox_ticked": True,
            "first_viewed_at": ledger.utc_iso(facts.first_viewed_at),
            "signed_at": ledger.utc_iso(signed_at),
        },
    )
    acknowledgement = Acknowledgement.objects.create(
        person=person,
        revision=revision,
        ledger_entry=entry,
        receipt_number=receipt_number,
        signed_at=signed_at,
    )
    tasks.enqueue_with_transaction(tasks.issue_receipt, acknowledgement.pk)
    # Last before the commit: the tally row it updates is shared with everyone signing the
    # same run in the same quarter of an hour, and stays locked until the commit.
    run_standings.record(person_id=person.pk, run_id=facts.run_id, signed_at=signed_at)
    return acknowledgement


@transaction.atomic
def record_decline(
    *,
    person: User,
    revision: PolicyRevision,
    reason: str,
    client: ClientEvidence,
    language: str = AUTHORITATIVE_LANGUAGE,
) -> LedgerEntry:
    """Record that a person declined a revision; it does not sign it and leaves them pending."""
    # As for a signature: serialised with the person's other submissions, then one statement
    # says whether the revision may be signed and whether it was already.
    ledger.lock_person(person)
    facts = check_signable(person=person, revision=revision)
    if facts.signed:
        raise ActionRefused(_("You have already signed this version."))
    entry = _append_from_client(
        client=client,
        kind=LedgerEntry.Kind.DECLINED,
        person=person,
        revision=revision,
        payload={
            "person": _person_snapshot(person),
            "policy": _revision_snapshot(revision),
            "text": _text_snapshot(revision, language),
            "reason": reason.strip() or None,
        },
    )
    run_standings.record(person_id=person.pk, run_id=facts.run_id, declined_at=entry.recorded_at)
    return entry


def _company() -> str:
    return settings.PORTAL_COMPANY_NAME


# --- Client details retention --------------------------------------------------------------------

REDACTION_BATCH = 1_000


@dataclass(frozen=True)
class Redaction:
    entries: int  # ledger entries whose raw IP address and user agent were removed
    events: int  # redaction events appended to the ledger


def redact_client_details() -> Redaction:
    """Remove the raw IP addresses and user agents kept longer than the retention period.

    The entries' payloads keep their salted commitments, so the chain and every receipt stay
    valid; each person's removal is itself a ledger event listing the entries it covers.
    Without a retention period (PORTAL_CLIENT_DETAILS_RETENTION_DAYS empty or 0) nothing is
    removed; running it again removes nothing more.
    """
    days = settings.PORTAL_CLIENT_DETAILS_RETENTION_DAYS
    total = Redaction(0, 0)
    if not days:
        return total
    cutoff = timezone.now() - dt.timedelta(days=days)
    ledger.link_pending()  # redaction events name the entries by their chain position
    while (batch := _redact_batch(cutoff=cutoff, days=days)).entries:
        total = Redaction(total.entries + batch.entries, total.events + batch.events)
    return total


@transaction.atomic
def _redact_batch(*, cutoff: dt.datetime, days: int) -> Redaction:
    # The rows are locked: a second run at the same time waits, then finds them gone.
    due = list(
        ClientDetails.objects.select_for_update(of=("self",))
        .filter(ledger_entry__recorded_at__lt=cutoff, ledger_entry__sequence__isnull=False)
        # Person by person, so that a person's entries mostly fall in one batch and one event.
        .order_by("ledger_entry__person_id", "ledger_entry__sequence")
        .values_list("pk", "ledger_entry__sequence", "ledger_entry__person_id")[:REDACTION_BATCH]
    )
    by_person: dict[int | None, list[int]] = {}
    for _pk, sequence, person_id in due:
        by_person.setdefault(person_id, []).append(sequence)
    people = User.objects.in_bulk([pk for pk in by_person if pk is not None])
    for person_id, sequences in by_person.items():
        ledger.append(
            kind=LedgerEntry.Kind.REDACTED,
            person=people.get(person_id),
            payload={
                "removed": ["ip", "user_agent"],
                "entries": sequences,
                "retention_days": days,
                "recorded_before": ledger.utc_iso(cutoff),
                "rule": (
                    "the raw IP address and user agent of these entries, and the salts of their "
                    "commitments, were deleted after the retention period; the salted SHA-256 "
                    "commitments in the entries' payloads are unchanged"
                ),
            },
        )
    ClientDetails.objects.filter(pk__in=[pk for pk, _seq, _person in due]).delete()
    return Redaction(len(due), len(by_person))


# --- Policies and revisions --------------------------------------------------------------------


def _audit(*, actor: User | None, action: str, details: dict, revision=None) -> LedgerEntry:
    return ledger.append(
        kind=LedgerEntry.Kind.ADMIN_ACTION,
        actor=actor,
        revision=revision,
        payload={
            "action": action,
            "actor": _person_snapshot(actor) if actor else None,
            "details": details,
        },
    )


@transaction.atomic
def create_policy(
    *, actor: User | None, name: str, slug: str, owner: User | None, audiences: list[Audience]
) -> Policy:
    """Create a policy that applies to the given audiences; the act is audited."""
    policy = Policy.objects.create(name=name, slug=slug, owner=owner)
    policy.audiences.set(audiences)
    _audit(
        actor=actor,
        action="policy_created",
        details={"policy": slug, "name": name, "audiences": sorted(a.slug for a in audiences)},
    )
    return policy


VERSION_LABEL = re.compile(r"^\d{1,4}(\.\d{1,4}){0,3}$")


def version_key(label: str) -> tuple[int, ...]:
    return tuple(int(part) for part in label.split("."))


def check_version_label(
    *, policy: Policy, version: str, draft: PolicyRevision | None = None
) -> None:
    """A version label is numbers separated by dots, new for its policy and above every published one."""
    if not VERSION_LABEL.match(version):
        raise ActionRefused(
            _("Write the version as numbers separated by dots, such as 2.0 or 2.1.1.")
        )
    others = policy.revisions.exclude(pk=draft.pk) if draft else policy.revisions.all()
    if others.filter(version=version).exists():
        raise ActionRefused(
            _("Version %(version)s of this policy already exists; choose another label.")
            % {"version": version}
        )
    published = [version_key(v) for v in others.published().values_list("version", flat=True)]
    if published and version_key(version) <= max(published):
        latest = ".".join(str(part) for part in max(published))
        raise ActionRefused(
            _(
                "Versions increase: this one must come after the latest published version, %(latest)s."
            )
            % {"latest": latest}
        )


@transaction.atomic
def create_draft(
    *,
    actor: User | None,
    policy: Policy,
    version: str,
    body: str,
    change: str,
    change_summary: str = "",
    effective_at=None,
    due_days: int = 14,
    audiences: list[Audience] | None = None,
    announce: bool = True,
) -> PolicyRevision:
    """Draft a new revision of a policy; drafts change freely until published."""
    check_version_label(policy=policy, version=version)
    revision = PolicyRevision.objects.create(
        policy=policy,
        version=version,
        body=policy_text.normalise(body),
        change=change,
        change_summary=change_summary,
        effective_at=effective_at or timezone.now(),
        due_days=due_days,
        announce=announce,
        created_by=actor,
    )
    revision.audiences.set(audiences if audiences is not None else policy.audiences.all())
    # Drafts can be deleted, so audit rows name them in the payload rather than by reference.
    _audit(
        actor=actor,
        action="draft_created",
        details={
            "policy": policy.slug,
            "version": version,
            "change": change,
            "draft_id": revision.pk,
        },
    )
    return revision


DRAFT_FIELDS = (
    "version",
    "body",
    "change",
    "change_summary",
    "effective_at",
    "due_days",
    "announce",
)


@transaction.atomic
def update_draft(
    *, actor: User | None, revision: PolicyRevision, audiences: list[Audience], **changes
) -> PolicyRevision:
    """Change a draft; a published revision never changes (the database refuses it too)."""
    revision = PolicyRevision.objects.select_for_update().get(pk=revision.pk)
    if revision.is_published:
        raise ActionRefused(_("A published revision cannot be edited; draft a new one instead."))
    unknown = set(changes) - set(DRAFT_FIELDS)
    if unknown:
        raise ValueError(f"Not draft fields: {sorted(unknown)}")
    if "version" in changes:
        check_version_label(policy=revision.policy, version=changes["version"], draft=revision)
    if "body" in changes:
        changes["body"] = policy_text.normalise(changes["body"])
    changed = sorted(name for name, value in changes.items() if getattr(revision, name) != value)
    for name, value in changes.items():
        setattr(revision, name, value)
    revision.save()
    before = {a.slug for a in revision.audiences.all()}
    revision.audiences.set(audiences)
    if before != {a.slug for a in audiences}:
        changed.append("audiences")
    if changed:
        _audit(
            actor=actor,
            action="draft_edited",
            details={
                "policy": revision.policy.slug,
                "version": revision.version,
                "draft_id": revision.pk,
                "changed": changed,
            },
        )
    return revision


@transaction.atomic
def delete_draft(*, actor: User | None, revision: PolicyRevision) -> None:
    """Delete a draft; published revisions are kept forever."""
    revision = PolicyRevision.objects.select_for_update().get(pk=revision.pk)
    if revision.is_published:
        raise ActionRefused(_("A published revision cannot be deleted."))
    _audit(
        actor=actor,
        action="draft_deleted",
        details={
            "policy": revision.policy.slug,
            "version": revision.version,
            "draft_id": revision.pk,
        },
    )
    revision.delete()


def _replace_audiences(*, actor, members, audiences, action: str, subject: dict) -> None:
    """Set a policy's or a person's audiences; an actual change is audited with before/after."""
    before = sorted(a.slug for a in members.all())
    after = sorted(a.slug for a in audiences)
    if before == after:
        return
    members.set(audiences)
    _audit(actor=actor, action=action, details={**subject, "before": before, "after": after})


@transaction.atomic
def set_policy_audiences(*, actor: User | None, policy: Policy, audiences: list[Audience]) -> None:
    """Change which audiences a policy applies to (its future drafts start from these)."""
    _replace_audiences(
        actor=actor,
        members=policy.audiences,
        audiences=audiences,
        action="policy_audiences_changed",
        subject={"policy": policy.slug},
    )


@transaction.atomic
def set_person_audiences(*, actor: User | None, person: User, audiences: list[Audience]) -> None:
    """Change which audiences a person belongs to (and so which policies apply); audited."""
    _replace_audiences(
        actor=actor,
        members=person.audiences,
        audiences=audiences,
        action="person_audiences_changed",
        subject={"person": _person_snapshot(person)},
    )


@dataclass(frozen=True)
class PublicationImpact:
    """What publishing a draft will do, stated on the confirmation page."""

    people_in_scope: int
    must_sign_again: bool
    will_email: bool
    previous: PolicyRevision | None
    effective_at: dt.datetime
    due_at: dt.datetime


def publication_impact(revision: PolicyRevision) -> PublicationImpact:
    now = timezone.now()
    effective_at = max(revision.effective_at, now)
    people = (
        User.objects.filter(is_active=True, audiences__in=revision.audiences.all())
        .distinct()
        .count()
    )
    previous = coverage.timeline_for(revision.policy, now).current
    return PublicationImpact(
        people_in_scope=people,
        must_sign_again=revision.is_material,
        will_email=revision.is_material or revision.announce,
        previous=previous,
        effective_at=effective_at,
        due_at=effective_at + dt.timedelta(days=revision.due_days),
    )


@transaction.atomic
def publish_revision(*, actor: User | None, revision: PolicyRevision) -> PolicyRevision:
    """Freeze a draft's text, HTML and hash and publish it; publishing twice is refused.

    A revision cannot take effect before it is published: an effective date in the past
    becomes now. A material revision (and a minor one marked `announce`) is emailed to
    everyone in its audiences by a background task once the transaction commits.
    """
    revision = PolicyRevision.objects.select_for_update().get(pk=revision.pk)
    if revision.is_published:
        raise ActionRefused(_("This revision is already published."))
    check_version_label(policy=revision.policy, version=revision.version, draft=revision)
    if not revision.audiences.exists():
        raise ActionRefused(_("Choose at least one audience before publishing."))
    now = timezone.now()
    previous = coverage.timeline_for(revision.policy, now).current
    revision.body = policy_text.normalise(revision.body)
    revision.body_html = policy_text.render_html(revision.body)
    revision.text_sha256 = policy_text.text_sha256(revision.body)
    revision.effective_at = max(revision.effective_at, now)
    revision.status = PolicyRevision.Status.PUBLISHED
    revision.published_at = now
    revision.published_by = actor
    # Translations are frozen while the stored revision is still a draft: once it is
    # published, PostgreSQL refuses to change them.
    for translation in revision.translations.all():
        _freeze(translation)
        translation.save()
    revision.save()
    _audit(
        actor=actor,
        action="revision_published",
        revision=revision,
        details={
            "policy": revision.policy.slug,
            "version": revision.version,
            "change": revision.change,
            "change_summary": revision.change_summary,
            "text_sha256": revision.text_sha256,
            "effective_at": ledger.utc_iso(revision.effective_at),
            "due_days": revision.due_days,
            "audiences": sorted(a.slug for a in revision.audiences.all()),
        },
    )
    if previous is not None and revision.is_material:
        ledger.append(
            kind=LedgerEntry.Kind.SUPERSEDED,
            actor=actor,
            revision=previous,
            payload={
                "policy": revision.policy.slug,
                "superseded_version": previous.version,
                "by_version": revision.version,
                "by_revision_id": revision.pk,
                "from": ledger.utc_iso(revision.effective_at),
                "rule": "signatures of earlier revisions no longer count from this time",
            },
        )
    if revision.is_material or revision.announce:
        tasks.enqueue_with_transaction(tasks.announce_revision, revision.pk)
    return revision


def _freeze(translation: RevisionTranslation) -> None:
    translation.body = policy_text.normalise(translation.body)
    translation.body_html = policy_text.render_html(translation.body)
    translation.text_sha256 = policy_text.text_sha256(translation.body)


@transaction.atomic
def save_translation(
    *, actor: User | None, revision: PolicyRevision, language: str, body: str
) -> RevisionTranslation:
    """Add (or, while the revision is a draft, change) a translation of its text; audited.

    A published revision's translation is frozen at once; one that exists is never replaced.
    """
    if language == AUTHORITATIVE_LANGUAGE or language not in dict(settings.LANGUAGES):
        raise ActionRefused(_("Choose a language other than the authoritative English."))
    if not body.strip():
        raise ActionRefused(_("The translation is empty."))
    revision = PolicyRevision.objects.select_for_update().get(pk=revision.pk)
    existing = revision.translations.filter(language=language).first()
    if revision.is_published and existing is not None:
        raise ActionRefused(
            _("This published revision already has a %(language)s translation; it cannot change.")
            % {"language": language}
        )
    translation = existing or RevisionTranslation(revision=revision, language=language)
    translation.body = policy_text.normalise(body)
    translation.created_by = translation.created_by or actor
    if revision.is_published:
        _freeze(translation)  # a translation of a published revision is final when written
    translation.save()
    _audit(
        actor=actor,
        action="translation_saved",
        revision=revision if revision.is_published else None,
        details={
            "policy": revision.policy.slug,
            "version": revision.version,
            "language": language,
            "text_sha256": translation.text_sha256 or None,
        },
    )
    return translation


# --- Notifications -----------------------------------------------------------------------------


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
    return _queue(revision=revision, kind=kind, person_ids=people)


def _queue(*, revision: PolicyRevision, kind: str, person_ids, days_before_due: int = 0) -> int:
    """Insert notification rows in blocks; existing ones (unique) are left as they are.

    Returns how many rows are new (bulk_create with ignore_conflicts cannot tell).
    """
    existing = Notification.objects.filter(
        revision=revision, kind=kind, days_before_due=days_before_due
    )
    before = existing.count()
    block: list[Notification] = []
    for person_id in person_ids.iterator(chunk_size=QUEUE_BLOCK):
        block.append(
            Notification(
                person_id=person_id,
                revision=revision,
                kind=kind,
                days_before_due=days_before_due,
            )
        )
        if len(block) == QUEUE_BLOCK:
            Notification.objects.bulk_create(block, ignore_conflicts=True)
            block = []
    if block:
        Notification.objects.bulk_create(block, ignore_conflicts=True)
    return existing.count() - before


def queue_reminders(*, moment: dt.datetime | None = None) -> int:
    """Queue reminders at the configured days before each due date, and overdue notices.

    Each goes to a person at most once per revision and offset (the table's unique key).
    """
    moment = moment or timezone.now()
    queued = 0
    for policy in Policy.objects.all():
        timeline = coverage.timeline_for(policy, moment)
        if timeline.current is None:
            continue
        uncovered = coverage.uncovered_people(timeline, moment)
        for days in settings.PORTAL_REMINDER_DAYS:
            window = uncovered.filter(
                due_at__gt=moment, due_at__lte=moment + dt.timedelta(days=days)
            )
            queued += _queue(
                revision=timeline.current,
                kind=Notification.Kind.REMINDER,
                person_ids=window.values_list("pk", flat=True),
                days_before_due=days,
            )
        queued += _queue(
            revision=timeline.current,
            kind=Notification.Kind.OVERDUE,
            person_ids=uncovered.filter(due_at__lte=moment).values_list("pk", flat=True),
        )
    return queued


def retry_failed_notifications(*, actor: User | None, revision: PolicyRevision) -> int:
    """Queue a revision's failed emails again (an administrator's decision, audited)."""
    with transaction.atomic():
        count = Notification.objects.filter(
            revision=revision, status=Notification.Status.FAILED
        ).update(status=Notification.Status.QUEUED, next_attempt_at=timezone.now())
        if count:
            _audit(
                actor=actor,
                action="notifications_retried",
                revision=revision,
                details={
                    "policy": revision.policy.slug,
                    "version": revision.version,
                    "count": count,
                },
            )
            tasks.enqueue_with_transaction(tasks.send_notifications)
    return count


# --- The signing gate --------------------------------------------------------------------------


@transaction.atomic
def set_gate_exemption(*, actor: User | None, person: User, reason: str) -> None:
    """Exempt a service or break-glass account from the gate (empty reason lifts it); audited."""
    reason = reason.strip()
    person = User.objects.select_for_update().get(pk=person.pk)
    if person.gate_exemption == reason:
        return
    before = person.gate_exemption
    person.gate_exemption = reason
    person.save(update_fields=["gate_exemption"])
    _audit(
        actor=actor,
        action="gate_exemption_granted" if reason else "gate_exemption_lifted",
        details={"person": _person_snapshot(person), "reason": reason, "previous_reason": before},
    )


# --- Concerns ------------------------------------------------------------------------------------


@transaction.atomic
def report_concern(
    *, reporter: User, category: str, description: str, anonymous: bool, attachment=None
) -> ConcernReport:
    """Store a concern and email it to the compliance address after commit."""
    report = ConcernReport.objects.create(
        reporter=reporter,
        anonymous=anonymous,
        category=category,
        description=description.strip(),
        attachment=attachment or "",
    )
    tasks.enqueue_with_transaction(tasks.email_concern, report.pk)
    return report


@transaction.atomic
def set_concern_status(*, actor: User | None, report: ConcernReport, status: str) -> None:
    """Move a concern between new, in review and closed; audited."""
    report = ConcernReport.objects.select_for_update().get(pk=report.pk)
    if report.status == status:
        return
    before, report.status, report.updated_at = report.status, status, timezone.now()
    report.save(update_fields=["status", "updated_at"])
    _audit(
        actor=actor,
        action="concern_status_changed",
        details={"concern_id": report.pk, "from": before, "to": status},
    )


@transaction.atomic
def record_receipt_access(*, actor: User, acknowledgement: Acknowledgement) -> LedgerEntry | None:
    """Record a receipt downloaded by someone other than its signer; the signer's own are not."""
    if actor.pk == acknowledgement.person_id:
        return None
    return _audit(
        actor=actor,
        action="receipt_downloaded",
        revision=acknowledgement.revision,
        details={
            "receipt_number": acknowledgement.receipt_number,
            "person": _person_snapshot(acknowledgement.person),
            "policy": acknowledgement.revision.policy.slug,
            "version": acknowledgement.revision.version,
        },
    )


# --- Receipts ----------------------------------------------------------------------------------


# A signature without its receipt this long after it was recorded lost its task (a stopped
# worker, a queue that refused it): rendering one takes well under a minute.
RECEIPT_OVERDUE_AFTER = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Recovery:
    linked: int  # ledger entries given their place in the chain
    receipts_queued: int  # signatures whose receipt task is queued again


def recover_interrupted_work(
    *, moment: dt.datetime | None = None, receipts_after: dt.timedelta = RECEIPT_OVERDUE_AFTER
) -> Recovery:
    """Finish what a stopped worker, a lost task or a failed render left undone; safe to repeat.

    Entries still waiting for their place in the chain are linked, and the receipt of every
    signature older than `receipts_after` that has none is queued again (issuing a receipt
    twice stores and records it once). The wait leaves a running worker time to finish; with
    no worker running, as when the portal starts, nothing needs to wait.
    """
    moment = moment or timezone.now()
    linked = ledger.link_pending()
    missing = list(
        Acknowledgement.objects.filter(
            receipt__isnull=True, signed_at__lte=moment - receipts_after
        ).values_list("pk", flat=True)
    )
    for acknowledgement_id in missing:
        tasks.issue_receipt.enqueue(acknowledgement_id)
    return Recovery(linked=linked, receipts_queued=len(missing))


def issue_receipt(*, acknowledgement_id: int) -> Receipt:
    """Render, seal and store the receipt of a signature once; a repeated call returns it."""
    acknowledgement = Acknowledgement.objects.select_related(
        "ledger_entry", "revision__policy", "person"
    ).get(pk=acknowledgement_id)
    existing = Receipt.objects.filter(acknowledgement=acknowledgement).first()
    if existing:
        return existing
    identity = receipts.load_sealing_identity()
    entry = ledger.ensure_linked(acknowledgement.ledger_entry)  # the receipt shows its place
    revision = acknowledgement.revision
    signed_text = revision.text_in(ledger.decode(entry)["text"]["language"])
    # Rendering takes a while and needs no lock: it happens before the transaction.
    pdf = receipts.issue_receipt(
        receipts.ReceiptDocument(
            receipt_number=acknowledgement.receipt_number,
            payload=bytes(entry.payload),
            payload_sha256=entry.payload_sha256,
            sequence=entry.sequence,
            previous_hash=entry.previous_hash,
            row_hash=entry.row_hash,
            policy_source=signed_text.body,
            policy_html=signed_text.body_html,
            verify_url=f"{settings.PORTAL_BASE_URL}{reverse('acknowledgements:verify')}",
            seal_fingerprint=identity.fingerprint,
        ),
        identity,
    )
    return _store_receipt(acknowledgement=acknowledgement, pdf=pdf, identity=identity)


@transaction.atomic
def _store_receipt(
    *, acknowledgement: Acknowledgement, pdf: bytes, identity: receipts.SealingIdentity
) -> Receipt:
    ledger.lock_person(acknowledgement.person)
    existing = Receipt.objects.filter(acknowledgement=acknowledgement).first()
    if existing:  # another worker finished first; its sealed bytes are the evidence
        return existing
    pdf_sha256 = ledger.sha256_hex(pdf)
    timestamped = receipts.inspect_receipt(pdf, trust_roots_pem=[identity.root_pem]).timestamped
    entry = ledger.append(
        kind=LedgerEntry.Kind.RECEIPT_ISSUED,
        person=acknowledgement.person,
        revision=acknowledgement.revision,
        payload={
            "receipt_number": acknowledgement.receipt_number,
            "signed_sequence": acknowledgement.ledger_entry.sequence,
            "pdf_sha256": pdf_sha256,
            "seal_fingerprint": identity.fingerprint,
            "timestamped": timestamped,
        },
    )
    receipt = Receipt(
        acknowledgement=acknowledgement,
        sha256=pdf_sha256,
        seal_fingerprint=identity.fingerprint,
        timestamped=timestamped,
        issued_at=entry.recorded_at,
    )
    receipt.pdf.save(f"{acknowledgement.receipt_number}.pdf", ContentFile(pdf), save=False)
    receipt.save()
    tasks.enqueue_with_transaction(tasks.email_receipt, receipt.pk)
    return receipt


# --- Reports -----------------------------------------------------------------------------------


@transaction.atomic
def record_export(*, actor: User | None, what: str, filters: dict, rows: int) -> LedgerEntry:
    """Record that evidence left the portal: who exported what, with which filters, how many rows.

    Reports never change anything else; this audit row is written before the file is served.
    """
    return _audit(
        actor=actor, action="export", details={"what": what, "filters": filters, "rows": rows}
    )


# --- Exports built in the background -----------------------------------------------------------


def export_record(job: ExportJob) -> dict[str, str]:
    """The scope of a background export as its audit record states it (the moment always)."""
    return {"policy": job.policy.slug, "as_of": ledger.utc_iso(job.as_of) or "", **job.filters}


@transaction.atomic
def request_export(
    *,
    actor: User,
    kind: str,
    policy: Policy,
    as_of: dt.datetime,
    filters: dict[str, str],
    filename: str,
) -> ExportJob:
    """Queue an export for the person who asked; a task builds it and records it when built."""
    job = ExportJob.objects.create(
        requested_by=actor,
        kind=kind,
        policy=policy,
        as_of=as_of,
        filters=filters,
        filename=filename,
    )
    tasks.enqueue_with_transaction(tasks.build_export, job.pk)
    return job


@transaction.atomic
def retry_export(*, actor: User, job: ExportJob) -> ExportJob:
    """Queue a failed export again, for the person who asked it; other states are left alone."""
    job = ExportJob.objects.select_for_update().get(pk=job.pk, requested_by=actor)
    if job.status != ExportJob.Status.FAILED:
        raise ActionRefused(_("Only an export that failed can be tried again."))
    job.status = ExportJob.Status.QUEUED
    job.error = ""
    job.rows_done = 0
    job.rows_total = None
    job.started_at = job.finished_at = None
    job.save()
    tasks.enqueue_with_transaction(tasks.build_export, job.pk)
    return job


# A job still "running" this long after it started was cut off (its worker stopped): even the
# largest audit package takes minutes.
EXPORT_INTERRUPTED_AFTER = dt.timedelta(hours=2)


@dataclass(frozen=True)
class ExportTidying:
    interrupted: int  # jobs left running by a stopped worker, now failed (and retryable)
    removed: int  # finished exports older than the retention period, file and job deleted


def tidy_exports(*, moment: dt.datetime | None = None) -> ExportTidying:
    """Fail the jobs a stopped worker left running, so they can be tried again, and delete the
    files (exports hold personal data) and jobs of exports older than
    PORTAL_EXPORT_RETENTION_DAYS. Their audit records stay in the ledger. Safe to repeat."""
    moment = moment or timezone.now()
    interrupted = ExportJob.objects.filter(
        status=ExportJob.Status.RUNNING, started_at__lt=moment - EXPORT_INTERRUPTED_AFTER
    ).update(
        status=ExportJob.Status.FAILED,
        error="Interrupted: the worker building it stopped. Try again.",
        finished_at=moment,
    )
    expired = ExportJob.objects.filter(
        status__in=[ExportJob.Status.DONE, ExportJob.Status.FAILED],
        finished_at__lt=moment - dt.timedelta(days=settings.PORTAL_EXPORT_RETENTION_DAYS),
    )
    removed = 0
    for job in expired.iterator():
        if job.file:
            job.file.delete(save=False)
        job.delete()
        removed += 1
    return ExportTidying(interrupted=interrupted, removed=removed)


def build_export(*, job_id: int) -> ExportJob | None:
    """Build a queued export into storage, then record it in the audit log, once.

    Not one transaction: the progress saved on the way must be seen by the job's page while
    the file is written. A job that is not queued (delivered twice) is left alone. A failure
    keeps no file and no audit record, and leaves the job failed, to be tried again.
    """
    started = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING,
        started_at=started,
        attempts=F("attempts") + 1,
        rows_done=0,
    )
    if not claimed:
        return None
    job = ExportJob.objects.select_related("policy", "requested_by").get(pk=job_id)

    def progress(rows: int) -> None:
        ExportJob.objects.filter(pk=job_id).update(rows_done=rows)

    try:
        filters = PeopleFilter.from_record(job.filters)
        timeline = coverage.timeline_for(job.policy, job.as_of)
        signatures = figures.signatures(job.policy, timeline, job.as_of, filters)
        by = exports.exported_by(job.requested_by)
        with tempfile.TemporaryFile() as workfile:
            if job.kind == ExportJob.Kind.XLSX:
                job.rows_total = signatures.count()
                job.save(update_fields=["rows_total"])
                rows = exports.write_acknowledgements_xlsx(
                    workfile,
                    signatures,
                    about=[
                        ("Policy", job.policy.name),
                        ("As of (UTC)", ledger.utc_iso(job.as_of) or ""),
                        (
                            "Filters",
                            ", ".join(f"{k}={v}" for k, v in job.filters.items()) or "none",
                        ),
                        ("Exported by", by),
                        ("Exported at (UTC)", ledger.utc_iso(timezone.now()) or ""),
                    ],
                    progress=progress,
                )
                done = rows
            else:
                job.rows_total = exports.package_rows(
                    policy=job.policy, timeline=timeline, moment=job.as_of, filters=filters
                )
                job.save(update_fields=["rows_total"])
                summary = exports.write_package(
                    workfile,
                    policy=job.policy,
                    timeline=timeline,
                    moment=job.as_of,
                    filters=filters,
                    exported_by=by,
                    progress=progress,
                )
                rows = summary.signatures
                done = summary.signatures + summary.receipts + summary.ledger_rows
            job.size = workfile.tell()
            workfile.seek(0)
            job.file.save(job.filename, File(workfile), save=False)
        with transaction.atomic():
            record_export(
                actor=job.requested_by, what=job.kind, filters=export_record(job), rows=rows
            )
            job.status = ExportJob.Status.DONE
            job.rows_done = done
            job.rows_total = max(job.rows_total or 0, done)
            job.finished_at = timezone.now()
            job.save()
    except Exception as error:
        logger.exception("Export job %s failed", job_id)
        if job.file:
            job.file.delete(save=False)
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportJob.Status.FAILED,
            error=f"{type(error).__name__}: {error}"[:2000],
            file="",
            size=None,
            finished_at=timezone.now(),
        )
        job.refresh_from_db()
    return job
