"""Policies, drafts, publishing and translations. Every change is audited; a published revision never changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.tasks import task
from django.utils import timezone
from django.utils.translation import gettext as _

from acknowledgements import jobs
from acknowledgements.evidence import ledger
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    AUTHORITATIVE_LANGUAGE,
    Audience,
    LedgerEntry,
    Policy,
    PolicyRevision,
    RenewalPeriod,
    RevisionTranslation,
    User,
)
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.people.actions import replace_audiences
from acknowledgements.policies import text as policy_text
from acknowledgements.policies.versions import check_version_label
from acknowledgements.standings import coverage, renewal
from acknowledgements.webhooks import events as webhook_events


@transaction.atomic
def create_policy(
    *, actor: User | None, name: str, slug: str, owner: User | None, audiences: list[Audience]
) -> Policy:
    """Create a policy that applies to the given audiences; the act is audited.

    A slug already taken is refused (ActionRefused), also when another request took it a
    moment ago, after the form had checked it.
    """
    try:
        # A savepoint: the unique slug's refusal leaves the caller's transaction usable.
        with transaction.atomic():
            policy = Policy.objects.create(name=name, slug=slug, owner=owner)
    except IntegrityError:
        if not Policy.objects.filter(slug=slug).exists():
            raise
        raise ActionRefused(_("Another policy already uses this short name.")) from None
    policy.audiences.set(audiences)
    record_admin_action(
        actor=actor,
        action="policy_created",
        details={"policy": slug, "name": name, "audiences": sorted(a.slug for a in audiences)},
    )
    return policy


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
    record_admin_action(
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
        record_admin_action(
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
    record_admin_action(
        actor=actor,
        action="draft_deleted",
        details={
            "policy": revision.policy.slug,
            "version": revision.version,
            "draft_id": revision.pk,
        },
    )
    revision.delete()


@transaction.atomic
def set_policy_audiences(*, actor: User | None, policy: Policy, audiences: list[Audience]) -> None:
    """Change which audiences a policy applies to (its future drafts start from these)."""
    replace_audiences(
        actor=actor,
        members=policy.audiences,
        audiences=audiences,
        action="policy_audiences_changed",
        subject={"policy": policy.slug},
    )


@transaction.atomic
def set_renewal_period(*, actor: User | None, policy: Policy, months: int) -> bool:
    """Ask the policy's signers to re-acknowledge it every `months` months from now on (0:
    never); returns whether it changed. Setting the period in force again records nothing."""
    Policy.objects.select_for_update().filter(pk=policy.pk).first()  # one change at a time
    now = timezone.now()
    previous = renewal.renewal_months(policy.renewal_periods.all(), now)
    if months == previous:
        return False
    RenewalPeriod.objects.create(policy=policy, months=months, starts_at=now, set_by=actor)
    record_admin_action(
        actor=actor,
        action="renewal_period_set",
        details={"policy": policy.slug, "months": months, "previous_months": previous},
    )
    if months:
        jobs.enqueue_with_transaction(fill_signature_terms, policy.pk)
    return True


@task()
def fill_signature_terms(policy_id: int) -> None:
    """Keep when each signature of the policy lapses under its new period (renewal.py)."""
    renewal.fill_terms(policy_id=policy_id)


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
        will_email=revision.is_announced,
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
    record_admin_action(
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
    if revision.is_announced:
        jobs.enqueue_with_transaction(notification_actions.announce_revision, revision.pk)
    webhook_events.emit(webhook_events.REVISION_PUBLISHED, revision.pk)
    return revision


def _freeze(translation: RevisionTranslation) -> None:
    translation.body = policy_text.normalise(translation.body)
    translation.body_html = policy_text.render_html(translation.body)
    translation.text_sha256 = policy_text.text_sha256(translation.body)


@transaction.atomic
def save_translation(
    *, actor: User | None, revision: PolicyRevision, language: str, body: str, title: str = ""
) -> RevisionTranslation:
    """Add (or, while the revision is a draft, change) a translation of its text and of its
    policy's name (blank: readers see the English name); audited.

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
    translation.title = " ".join(title.split())
    translation.body = policy_text.normalise(body)
    translation.created_by = translation.created_by or actor
    if revision.is_published:
        _freeze(translation)  # a translation of a published revision is final when written
    translation.save()
    record_admin_action(
        actor=actor,
        action="translation_saved",
        revision=revision if revision.is_published else None,
        details={
            "policy": revision.policy.slug,
            "version": revision.version,
            "language": language,
            "name": translation.title,
            "text_sha256": translation.text_sha256 or None,
        },
    )
    return translation
