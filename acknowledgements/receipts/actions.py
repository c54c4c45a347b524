"""Issuing a signature's sealed receipt once, recovering receipts a stopped worker left undone, and auditing receipt downloads."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.tasks import task
from django.urls import reverse
from django.utils import timezone

from acknowledgements import jobs
from acknowledgements.evidence import ledger, transparency
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.evidence.snapshots import person_snapshot
from acknowledgements.models import (
    Acknowledgement,
    LedgerEntry,
    Receipt,
    User,
)
from acknowledgements.notifications import sending
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import document as receipt_document
from acknowledgements.receipts import seal as receipt_seal


@transaction.atomic
def record_receipt_access(*, actor: User, acknowledgement: Acknowledgement) -> LedgerEntry | None:
    """Record a receipt downloaded by someone other than its signer; the signer's own are not."""
    if actor.pk == acknowledgement.person_id:
        return None
    return record_admin_action(
        actor=actor,
        action="receipt_downloaded",
        revision=acknowledgement.revision,
        details={
            "receipt_number": acknowledgement.receipt_number,
            "person": person_snapshot(acknowledgement.person),
            "policy": acknowledgement.revision.policy.slug,
            "version": acknowledgement.revision.version,
        },
    )


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
        ).values_list("receipt_number", flat=True)
    )
    for receipt_number in missing:
        issue_receipt_task.enqueue(receipt_number)
    return Recovery(linked=linked, receipts_queued=len(missing))


def issue_receipt(*, receipt_number: str) -> Receipt:
    """Render, seal and store the receipt of a signature once; a repeated call returns it."""
    acknowledgement = Acknowledgement.objects.select_related(
        "ledger_entry", "revision__policy", "person"
    ).get(receipt_number=receipt_number)
    existing = Receipt.objects.filter(acknowledgement=acknowledgement).first()
    if existing:
        return existing
    identity = receipt_authority.load_sealing_identity()
    entry = ledger.ensure_linked(acknowledgement.ledger_entry)  # the receipt shows its place
    if entry.sequence is None or entry.previous_hash is None or entry.row_hash is None:
        raise RuntimeError(f"Ledger entry {entry.pk} is still unlinked after linking the ledger.")
    checkpoint, proof = transparency.receipt_proof(sequence=entry.sequence, row_hash=entry.row_hash)
    revision = acknowledgement.revision
    signed_text = revision.text_in(ledger.decode(entry)["text"]["language"])
    # Rendering takes a while and needs no lock: it happens before the transaction.
    pdf = receipt_seal.render_and_seal(
        receipt_document.ReceiptDocument(
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
            checkpoint_note=checkpoint.note,
            inclusion_proof=proof.to_json(),
        ),
        identity,
    )
    return _store_receipt(acknowledgement=acknowledgement, pdf=pdf, identity=identity)


@transaction.atomic
def _store_receipt(
    *, acknowledgement: Acknowledgement, pdf: bytes, identity: receipt_authority.SealingIdentity
) -> Receipt:
    ledger.lock_person(acknowledgement.person)
    existing = Receipt.objects.filter(acknowledgement=acknowledgement).first()
    if existing:  # another worker finished first; its sealed bytes are the evidence
        return existing
    pdf_sha256 = ledger.sha256_hex(pdf)
    timestamped = receipt_seal.inspect_receipt(pdf, trust_roots_pem=[identity.root_pem]).timestamped
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
    jobs.enqueue_with_transaction(sending.email_receipt, receipt.pk)
    return receipt


@task()
def issue_receipt_task(receipt_number: str | int) -> None:
    """Queued by a signature with its receipt number, known before its rows are written."""
    if isinstance(receipt_number, int):  # queued before an upgrade, by the acknowledgement's id
        receipt_number = Acknowledgement.objects.get(pk=receipt_number).receipt_number
    issue_receipt(receipt_number=receipt_number)
