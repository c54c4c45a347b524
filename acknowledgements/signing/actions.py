"""Reading and signing: a first view, a signature and a decline, each recorded in the ledger with the client's details."""

from __future__ import annotations

import datetime as dt
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from acknowledgements import jobs
from acknowledgements.evidence import ledger, signature_columns
from acknowledgements.evidence.client_evidence import ClientEvidence
from acknowledgements.evidence.snapshots import person_snapshot, revision_snapshot, text_snapshot
from acknowledgements.evidence.statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT
from acknowledgements.exceptions import ActionRefused, ConsentRequired
from acknowledgements.models import (
    AUTHORITATIVE_LANGUAGE,
    Acknowledgement,
    ClientDetails,
    LedgerEntry,
    PolicyRevision,
    RenewalPeriod,
    SignatureTerm,
    User,
)
from acknowledgements.receipts import actions as receipt_actions
from acknowledgements.signing import facts as signing_facts
from acknowledgements.signing.names import name_refusal, signature_name, typed_name_matches
from acknowledgements.standings import renewal, tallies
from acknowledgements.templatetags.policy_names import policy_name
from acknowledgements.webhooks import events as webhook_events
from acknowledgements.write_batch import LastId, WriteBatch

RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


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
            "person": person_snapshot(person),
            "policy": revision_snapshot(revision),
            "text": text_snapshot(revision, language),
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
    facts = signing_facts.read(
        person, policy_slug=policy_slug, version=version, moment=timezone.now(), lock=True
    )
    revision = facts.revision
    if facts.refusal:
        raise ActionRefused(facts.refusal)
    if facts.signed:
        return Acknowledgement.objects.filter(person=person, revision=revision).latest("renewal")
    if not checkbox_ticked:
        raise ActionRefused(_("Tick the box to confirm that you agree."))
    if refusal := name_refusal(typed_name):
        raise ActionRefused(refusal)
    typed_name = signature_name(typed_name)
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
                "person": person_snapshot(person),
                "consent": CURRENT_ESIGN_CONSENT.as_evidence(statement_language),
            },
        )
        accepted, accepted_at = ledger.decode(consent), consent.recorded_at
    else:
        raise ConsentRequired(_("Accept electronic signing to sign."))
    accepted = accepted.get("consent") or {}
    receipt_number = _new_receipt_number()
    signed_at = timezone.now()
    lapses_at = (
        renewal.lapse_of(signed_at, facts.renewal, client.browser_time_zone)
        if facts.renewal
        else None
    )
    sealed = client.sealed()
    payload = {
        "receipt_number": receipt_number,
        "company": _company(),
        "person": person_snapshot(person),
        "policy": revision_snapshot(revision),
        "text": text_snapshot(revision, language),
        "attestation": CURRENT_ATTESTATION.as_evidence(statement_language),
        "consent": {
            "version": accepted.get("version"),
            "language": accepted.get("language"),
            # The exact wording accepted, beside its hash, as for the attestation.
            "text": accepted.get("text"),
            "sha256": accepted.get("sha256"),
            "accepted_at": ledger.utc_iso(accepted_at),
        },
        "typed_name": typed_name,
        "checkbox_ticked": True,
        "first_viewed_at": ledger.utc_iso(facts.first_viewed_at),
        "signed_at": ledger.utc_iso(signed_at),
        # Only under a renewal period, so that every other payload keeps its bytes.
        **renewal_evidence(facts.renewal, lapses_at),
        **sealed.payload,
    }
    acknowledgement = _insert_signature(
        person=person,
        facts=facts,
        payload=payload,
        details=sealed.details_fields(),
        signature={
            "receipt_number": receipt_number,
            "signed_at": signed_at,
            "renewal": facts.signatures,
            **signature_columns.columns_of(payload),
        },
        lapses_at=lapses_at,
    )
    if facts.webhooks_active:
        webhook_events.emit(webhook_events.ACKNOWLEDGEMENT_SIGNED, acknowledgement.pk)
    return acknowledgement


def _insert_signature(
    *,
    person: User,
    facts: signing_facts.SigningFacts,
    payload: dict,
    details: dict,
    signature: dict,
    lapses_at: dt.datetime | None,
) -> Acknowledgement:
    """Every row of a signature in one round trip (write_batch.py): the ledger entry, the
    client's details, the acknowledgement, its renewal term, its receipt task (which links the
    entry into the chain first), the standings."""
    signed_at = signature["signed_at"]
    batch = WriteBatch(Acknowledgement)
    entry = LastId(LedgerEntry)
    batch.insert(
        LedgerEntry,
        **ledger.entry_values(
            kind=LedgerEntry.Kind.SIGNED,
            payload=payload,
            person=person,
            revision=facts.revision,
            recorded_at=signed_at,
        ),
    )
    batch.insert(ClientDetails, ledger_entry_id=entry, **details)
    batch.insert(
        Acknowledgement,
        person_id=person.pk,
        revision_id=facts.revision.pk,
        ledger_entry_id=entry,
        **signature,
    )
    if facts.renewal and lapses_at:
        batch.insert(
            SignatureTerm,
            acknowledgement_id=LastId(Acknowledgement),
            period_id=facts.renewal.pk,
            person_id=person.pk,
            run_id=facts.signable_run_id,
            signed_at=signed_at,
            lapses_at=lapses_at,
        )
    jobs.enqueue_in_batch(batch, receipt_actions.issue_receipt_task, signature["receipt_number"])
    # Last: the tally rows it updates are shared with everyone signing the same run in the
    # same quarter of an hour, and stay locked until the commit.
    tallies.add_signature(
        batch,
        person_id=person.pk,
        run_id=facts.signable_run_id,
        signed_at=signed_at,
        spans=facts.spans,
    )
    entry_id, acknowledgement_id = batch.run(entry, LastId(Acknowledgement))
    acknowledgement = Acknowledgement(
        pk=acknowledgement_id,
        person=person,
        revision=facts.revision,
        ledger_entry_id=entry_id,
        **signature,
    )
    acknowledgement._state.adding = False  # as if loaded: it is in the database
    acknowledgement._state.db = batch.connection.alias
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
    """Record that a person declined a revision; it does not sign it and leaves them pending.

    A person declines a revision once: declining it again records nothing and says so.
    """
    # As for a signature: serialised with the person's other submissions, then one statement
    # says whether the revision may be signed and whether it was already.
    ledger.lock_person(person)
    facts = check_signable(person=person, revision=revision)
    if facts.signed:
        raise ActionRefused(_("You have already signed this version."))
    if LedgerEntry.objects.filter(
        person=person, revision=revision, kind=LedgerEntry.Kind.DECLINED
    ).exists():
        raise ActionRefused(
            _(
                "Your decline of %(policy)s %(version)s is already recorded; administrators "
                "can see it."
            )
            % {"policy": policy_name(revision), "version": revision.version}
        )
    entry = _append_from_client(
        client=client,
        kind=LedgerEntry.Kind.DECLINED,
        person=person,
        revision=revision,
        payload={
            "person": person_snapshot(person),
            "policy": revision_snapshot(revision),
            "text": text_snapshot(revision, language),
            "reason": reason.strip() or None,
        },
    )
    webhook_events.emit(webhook_events.ACKNOWLEDGEMENT_DECLINED, entry.pk)
    tallies.record(person_id=person.pk, run_id=facts.signable_run_id, declined_at=entry.recorded_at)
    return entry


def renewal_evidence(period: RenewalPeriod | None, lapses_at: dt.datetime | None) -> dict:
    """What a signature's evidence says of its renewal: every how many months, until when."""
    if period is None or lapses_at is None:
        return {}
    return {"renewal": {"every_months": period.months, "counts_until": ledger.utc_iso(lapses_at)}}


def _company() -> str:
    return settings.PORTAL_COMPANY_NAME
