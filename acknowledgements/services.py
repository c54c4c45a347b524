"""Every state change of the portal. Views, commands and tasks call these, so each rule lives once."""

from __future__ import annotations

import secrets
import unicodedata
from functools import partial

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from . import ledger, policy_text, receipts, tasks
from .coverage import Timeline
from .evidence import ClientEvidence
from .models import Acknowledgement, Audience, LedgerEntry, Policy, PolicyRevision, Receipt, User
from .statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT

RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


class ActionRefused(Exception):
    """A request the rules do not allow; the message is shown to the person as it is."""


# --- Reading and signing -----------------------------------------------------------------------


def comparable_name(name: str) -> str:
    """A name folded for comparison: case, accents and runs of spaces do not count."""
    decomposed = unicodedata.normalize("NFKD", name)
    without_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(without_marks.casefold().split())


def typed_name_matches(typed: str, person: User) -> bool:
    return bool(comparable_name(typed)) and comparable_name(typed) == comparable_name(
        person.full_name
    )


def signable_revision(*, person: User, policy: Policy, version: str) -> PolicyRevision:
    """The revision a person may sign: published, current for its policy, in their audiences."""
    revisions = list(policy.revisions.published().prefetch_related("audiences"))
    timeline = Timeline.at(revisions, timezone.now())
    revision = next((r for r in revisions if r.version == version), None)
    if revision is None:
        raise ActionRefused(_("This version of the policy is not published."))
    if revision != timeline.current:
        if revision.effective_at > timezone.now():
            raise ActionRefused(_("This version is not in effect yet."))
        raise ActionRefused(
            _("This version has been replaced; please read and sign the current version.")
        )
    audience_ids = set(person.audiences.values_list("pk", flat=True))
    if not timeline.applies_to(audience_ids):
        raise ActionRefused(_("This policy does not apply to you."))
    return revision


def has_consented(person: User) -> bool:
    return LedgerEntry.objects.filter(person=person, kind=LedgerEntry.Kind.CONSENTED).exists()


def first_viewed_at(person: User, revision: PolicyRevision):
    return (
        LedgerEntry.objects.filter(person=person, revision=revision, kind=LedgerEntry.Kind.VIEWED)
        .order_by("sequence")
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


def _text_snapshot(revision: PolicyRevision) -> dict:
    return {
        "sha256": revision.text_sha256,
        "language": "en",
        "authoritative_language": "en",
        "hashed": "Markdown source, UTF-8, LF line endings",
    }


@transaction.atomic
def record_view(*, person: User, revision: PolicyRevision, client: ClientEvidence) -> None:
    """Record the first time a person opens a revision they must sign; later views add nothing."""
    if first_viewed_at(person, revision) is not None:
        return
    ledger.lock_chain()
    if first_viewed_at(person, revision) is not None:  # another request won the race
        return
    ledger.append(
        kind=LedgerEntry.Kind.VIEWED,
        person=person,
        revision=revision,
        payload={
            "person": _person_snapshot(person),
            "policy": _revision_snapshot(revision),
            "text": _text_snapshot(revision),
            **client.as_payload(),
        },
    )


def _new_receipt_number() -> str:
    chars = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(12))
    return f"VK-{chars[:4]}-{chars[4:8]}-{chars[8:]}"


@transaction.atomic
def record_acknowledgement(
    *,
    person: User,
    revision: PolicyRevision,
    typed_name: str,
    checkbox_ticked: bool,
    consent_accepted: bool,
    client: ClientEvidence,
) -> Acknowledgement:
    """Sign a revision for a person; signing it again returns the first record unchanged."""
    signable_revision(person=person, policy=revision.policy, version=revision.version)
    # Taking the chain lock first serialises concurrent submissions for the same person, so the
    # existence check below sees a signature committed a moment ago (double click, two tabs).
    ledger.lock_chain()
    existing = Acknowledgement.objects.filter(person=person, revision=revision).first()
    if existing:
        return existing
    if not checkbox_ticked:
        raise ActionRefused(_("Tick the box to confirm that you agree."))
    if not typed_name_matches(typed_name, person):
        raise ActionRefused(_("Type your full name exactly as it appears on your account."))
    consented_at = (
        LedgerEntry.objects.filter(person=person, kind=LedgerEntry.Kind.CONSENTED)
        .order_by("sequence")
        .values_list("recorded_at", flat=True)
        .first()
    )
    if consented_at is None:
        if not consent_accepted:
            raise ActionRefused(_("Accept electronic signing to sign."))
        consented_at = ledger.append(
            kind=LedgerEntry.Kind.CONSENTED,
            person=person,
            payload={
                "person": _person_snapshot(person),
                "consent": CURRENT_ESIGN_CONSENT.as_evidence(),
                **client.as_payload(),
            },
        ).recorded_at
    receipt_number = _new_receipt_number()
    signed_at = timezone.now()
    entry = ledger.append(
        recorded_at=signed_at,
        kind=LedgerEntry.Kind.SIGNED,
        person=person,
        revision=revision,
        payload={
            "receipt_number": receipt_number,
            "company": _company(),
            "person": _person_snapshot(person),
            "policy": _revision_snapshot(revision),
            "text": _text_snapshot(revision),
            "attestation": CURRENT_ATTESTATION.as_evidence(),
            "consent": {
                "version": CURRENT_ESIGN_CONSENT.version,
                "sha256": CURRENT_ESIGN_CONSENT.sha256,
                "accepted_at": ledger.utc_iso(consented_at),
            },
            "typed_name": typed_name,
            "checkbox_ticked": True,
            "first_viewed_at": ledger.utc_iso(first_viewed_at(person, revision)),
            "signed_at": ledger.utc_iso(signed_at),
            **client.as_payload(),
        },
    )
    acknowledgement = Acknowledgement.objects.create(
        person=person,
        revision=revision,
        ledger_entry=entry,
        receipt_number=receipt_number,
        signed_at=signed_at,
    )
    transaction.on_commit(partial(tasks.issue_receipt.enqueue, acknowledgement.pk))
    return acknowledgement


@transaction.atomic
def record_decline(
    *, person: User, revision: PolicyRevision, reason: str, client: ClientEvidence
) -> LedgerEntry:
    """Record that a person declined a revision; it does not sign it and leaves them pending."""
    signable_revision(person=person, policy=revision.policy, version=revision.version)
    ledger.lock_chain()
    if Acknowledgement.objects.filter(person=person, revision=revision).exists():
        raise ActionRefused(_("You have already signed this version."))
    return ledger.append(
        kind=LedgerEntry.Kind.DECLINED,
        person=person,
        revision=revision,
        payload={
            "person": _person_snapshot(person),
            "policy": _revision_snapshot(revision),
            "text": _text_snapshot(revision),
            "reason": reason.strip() or None,
            **client.as_payload(),
        },
    )


def _company() -> str:
    return settings.PORTAL_COMPANY_NAME


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
) -> PolicyRevision:
    """Draft a new revision of a policy; drafts change freely until published."""
    revision = PolicyRevision.objects.create(
        policy=policy,
        version=version,
        body=policy_text.normalise(body),
        change=change,
        change_summary=change_summary,
        effective_at=effective_at or timezone.now(),
        due_days=due_days,
        created_by=actor,
    )
    revision.audiences.set(audiences if audiences is not None else policy.audiences.all())
    _audit(
        actor=actor,
        action="draft_created",
        revision=revision,
        details={"policy": policy.slug, "version": version, "change": change},
    )
    return revision


@transaction.atomic
def publish_revision(*, actor: User | None, revision: PolicyRevision) -> PolicyRevision:
    """Freeze a draft's text, HTML and hash and publish it; publishing twice is refused."""
    revision = PolicyRevision.objects.select_for_update().get(pk=revision.pk)
    if revision.is_published:
        raise ActionRefused(_("This revision is already published."))
    revision.body = policy_text.normalise(revision.body)
    revision.body_html = policy_text.render_html(revision.body)
    revision.text_sha256 = policy_text.text_sha256(revision.body)
    revision.status = PolicyRevision.Status.PUBLISHED
    revision.published_at = timezone.now()
    revision.published_by = actor
    revision.save()
    _audit(
        actor=actor,
        action="revision_published",
        revision=revision,
        details={
            "policy": revision.policy.slug,
            "version": revision.version,
            "change": revision.change,
            "text_sha256": revision.text_sha256,
            "effective_at": ledger.utc_iso(revision.effective_at),
            "due_days": revision.due_days,
            "audiences": sorted(a.slug for a in revision.audiences.all()),
        },
    )
    return revision


# --- Receipts ----------------------------------------------------------------------------------


def issue_receipt(*, acknowledgement_id: int) -> Receipt:
    """Render, seal and store the receipt of a signature once; a repeated call returns it."""
    acknowledgement = Acknowledgement.objects.select_related(
        "ledger_entry", "revision__policy", "person"
    ).get(pk=acknowledgement_id)
    existing = Receipt.objects.filter(acknowledgement=acknowledgement).first()
    if existing:
        return existing
    identity = receipts.load_sealing_identity()
    entry = acknowledgement.ledger_entry
    revision = acknowledgement.revision
    # Rendering takes a while and needs no lock: it happens before the transaction.
    pdf = receipts.issue_receipt(
        receipts.ReceiptDocument(
            receipt_number=acknowledgement.receipt_number,
            payload=bytes(entry.payload),
            payload_sha256=entry.payload_sha256,
            sequence=entry.sequence,
            previous_hash=entry.previous_hash,
            row_hash=entry.row_hash,
            policy_source=revision.body,
            policy_html=revision.body_html,
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
    ledger.lock_chain()
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
    transaction.on_commit(partial(tasks.email_receipt.enqueue, receipt.pk))
    return receipt
