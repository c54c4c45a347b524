"""Is this receipt genuine? Every check an auditor would make, each with its result in words."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from acknowledgements.evidence import (
    chain_check,
    checks,
    client_evidence,
    ledger,
    merkle,
    transparency,
)
from acknowledgements.models import ClientDetails, LedgerCheck, LedgerEntry, Receipt
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import document as receipt_document
from acknowledgements.receipts import seal as receipt_seal


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    # Compares the receipt with what the database holds, so that a damaged ledger alone can
    # fail it; the checks of the seal itself do not depend on the ledger.
    ledger_dependent: bool = False


@dataclass
class ReceiptVerdict:
    checks: list[Check] = field(default_factory=list)
    receipt_number: str | None = None
    is_receipt: bool = True
    # The latest full check of the ledger, when it found damage: a failed check may then be
    # the ledger's fault, not the receipt's, and the page says so.
    ledger_damage: LedgerCheck | None = None

    @property
    def genuine(self) -> bool:
        return self.is_receipt and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def unconfirmed(self) -> bool:
        """Not genuine only by checks a damaged ledger could fail: neither proven nor forged.

        An untrusted or broken seal, or a file changed after sealing, is never excused by the
        ledger's damage.
        """
        return (
            self.ledger_damage is not None
            and self.is_receipt
            and not self.genuine
            and all(c.passed or c.ledger_dependent for c in self.checks)
        )

    def add(self, name: str, passed: bool, detail: str, ledger_dependent: bool = False) -> bool:
        self.checks.append(Check(name, passed, detail, ledger_dependent))
        return passed


def _receipt_number(evidence: bytes | None) -> str | None:
    """The receipt number claimed by an attached evidence.json (untrusted input)."""
    if not evidence:
        return None
    try:
        payload = json.loads(evidence)
    except (ValueError, RecursionError):
        return None
    value = payload.get("receipt_number") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


def _issued_entry(acknowledgement) -> LedgerEntry | None:
    """The hash-chained record of the receipt issued for an acknowledgement."""
    for entry in LedgerEntry.objects.filter(
        person_id=acknowledgement.person_id,
        revision_id=acknowledgement.revision_id,
        kind=LedgerEntry.Kind.RECEIPT_ISSUED,
    ):
        if ledger.decode(entry).get("receipt_number") == acknowledgement.receipt_number:
            return entry
    return None


def verify_receipt(data: bytes) -> ReceiptVerdict:
    """Check an uploaded receipt against its seal, the stored receipt and the ledger."""
    identity = receipt_authority.load_sealing_identity()
    report = receipt_seal.inspect_receipt(data, trust_roots_pem=trusted_roots(identity))
    verdict = ReceiptVerdict(ledger_damage=checks.damage())
    if not report.is_pdf or not report.sealed:
        verdict.is_receipt = False
        verdict.add(_("Portal seal present"), False, report.problem or _("No seal was found."))
        return verdict
    verdict.add(
        _("Seal intact"),
        report.intact,
        _("The file has not changed since it was sealed.") if report.intact else report.problem,
    )
    if report.trusted:
        trust_detail = _("The seal chains to this portal's own root certificate.")
    elif not report.intact:
        # A broken seal cannot vouch for anything, whoever made it.
        trust_detail = _("Cannot be confirmed: the seal no longer matches the file.")
    else:
        trust_detail = _("The seal was not made by a certificate this portal trusts.")
    verdict.add(_("Sealed by this portal"), report.trusted, trust_detail)
    verdict.add(
        _("Seal covers the whole file"),
        report.covers_whole_file,
        _("Nothing was added after sealing.")
        if report.covers_whole_file
        else _("Content was appended to the file after it was sealed."),
    )
    number = verdict.receipt_number = _receipt_number(report.evidence_json)
    stored = (
        Receipt.objects.select_related("acknowledgement__ledger_entry")
        .filter(acknowledgement__receipt_number=number)
        .first()
        if number
        else None
    )
    file_sha256 = ledger.sha256_hex(data)
    issued = _issued_entry(stored.acknowledgement) if stored else None
    # The ledger's record of the issued file is what counts: it is hash-chained.
    matches = (
        stored is not None
        and issued is not None
        and ledger.decode(issued).get("pdf_sha256") == file_sha256 == stored.sha256
    )
    if not verdict.add(
        _("Matches the stored receipt"),
        matches,
        _("The file's SHA-256 equals the one the ledger recorded when the receipt was issued.")
        if matches
        else _("No receipt with this content was issued by this portal."),
        ledger_dependent=True,
    ):
        return verdict
    # A match needs both the stored receipt and the ledger's record of issuing it.
    assert stored is not None and issued is not None
    entry = stored.acknowledgement.ledger_entry
    evidence_matches = ledger.sha256_hex(report.evidence_json or b"") == entry.payload_sha256
    verdict.add(
        _("Evidence matches the ledger"),
        evidence_matches,
        _("The attached evidence.json hashes to ledger entry %(sequence)s.")
        % {"sequence": entry.sequence}
        if evidence_matches
        else _("The attached evidence differs from the ledger's record."),
        ledger_dependent=True,
    )
    if evidence_matches:
        verdict.add(*client_details_check(entry))
    issued = ledger.ensure_linked(issued)
    assert entry.sequence is not None and issued.sequence is not None  # linked before a receipt
    chain = chain_check.verify_entries([entry.sequence, issued.sequence])
    verdict.add(
        _("Ledger entries intact"),
        chain.intact,
        _(
            "The signature (entry %(signed)s) and the issued receipt (entry %(issued)s) hash to "
            "what the ledger stores, and link to the entries before them."
        )
        % {"signed": entry.sequence, "issued": issued.sequence}
        if chain.intact
        else _("The ledger is damaged: sequence %(sequence)s fails: %(problem)s.")
        % {"sequence": chain.failed_sequence, "problem": _ledger_problem(chain.problem)},
        ledger_dependent=True,
    )
    verdict.add(_("In the ledger's signed log"), *log_check(report, entry))
    return verdict


def log_check(report: receipt_seal.SealReport, entry: LedgerEntry) -> tuple[bool, str, bool]:
    """Whether the receipt's signature is in the ledger's signed log, and still is, and whether
    a failure is the ledger's (its entry or history changed) rather than the receipt's.

    The receipt carries the signed checkpoint that first included its signature and the proof
    of it, sealed: the receipt is an anchor. The ledger must still hold that entry with the
    sealed row hash, still hash to the checkpoint's root, and its latest checkpoint must extend
    the receipt's. O(log n) stored hashes, whatever the ledger's size.
    """
    note = report.attachments.get(receipt_document.CHECKPOINT_FILENAME)
    attached_proof = report.attachments.get(receipt_document.INCLUSION_PROOF_FILENAME)
    if note is None or attached_proof is None:
        return (
            True,
            _("Issued before the ledger's checkpoints: this receipt carries no proof."),
            False,
        )
    try:
        checkpoint = transparency.read_signed_checkpoint(note.decode("utf-8", "replace"))
        proof = transparency.parse_receipt_proof(attached_proof)
    except transparency.NoteError:
        return (
            False,
            _("The attached checkpoint is not signed by this portal's ledger key."),
            False,
        )
    if not proof.verifies(checkpoint):
        return (
            False,
            _("The attached proof does not lead to the attached checkpoint's root."),
            False,
        )
    if (proof.sequence, proof.row_hash) != (entry.sequence, entry.row_hash):
        return (
            False,
            _(
                "The ledger is damaged: its entry %(sequence)s is no longer the one sealed in "
                "this receipt."
            )
            % {"sequence": proof.sequence},
            True,
        )
    latest = transparency.latest()
    try:
        now = transparency.read_signed_checkpoint(latest.note) if latest else None
        still_included = transparency.inclusion_proof(proof.sequence - 1, checkpoint.size)
        extended = now is not None and merkle.verify_consistency(
            first=checkpoint.size,
            second=now.size,
            first_root=checkpoint.root,
            second_root=now.root,
            path=transparency.consistency_proof(checkpoint.size, now.size),
        )
    except (transparency.NoteError, ValueError, RuntimeError):
        extended, still_included = False, []
    if not extended or not merkle.verify_inclusion(
        leaf=bytes.fromhex(entry.row_hash or ""),
        index=proof.sequence - 1,
        size=checkpoint.size,
        path=still_included,
        root=checkpoint.root,
    ):
        return (
            False,
            _(
                "The ledger is damaged: it no longer extends the checkpoint of %(size)s entries "
                "this receipt carries; its history was changed after the receipt was issued."
            )
            % {"size": checkpoint.size},
            True,
        )
    assert now is not None
    return (
        True,
        _(
            "Entry %(sequence)s is in the ledger's signed checkpoint of %(size)s entries, which "
            "the latest checkpoint (%(latest)s entries) extends."
        )
        % {"sequence": proof.sequence, "size": checkpoint.size, "latest": now.size},
        False,
    )


def client_details_check(entry: LedgerEntry) -> tuple[str, bool, str]:
    """Whether the IP address and user agent kept for an entry open its commitments.

    Their removal after the retention period is not a failure: the receipt stays genuine. Their
    absence without a recorded removal is. Never shows the values themselves: anyone may upload
    a receipt.
    """
    details = ClientDetails.objects.filter(ledger_entry=entry).first()
    facts = client_evidence.client_facts(ledger.decode(entry), details).values()
    states = {fact.state for fact in facts}
    name = _("IP address and user agent")
    if any(fact.matches is False for fact in facts):
        return (
            name,
            False,
            _(
                "The IP address or user agent the portal keeps does not match the salted "
                "SHA-256 recorded in the evidence."
            ),
        )
    if "held" in states:
        return (
            name,
            True,
            _(
                "The IP address and user agent the portal keeps for this signature match the "
                "salted SHA-256 recorded in the evidence."
            ),
        )
    if "removed" in states and not client_evidence.removal_recorded(entry):
        return (
            name,
            False,
            _(
                "Missing, with no recorded removal: the portal no longer keeps the IP address "
                "and user agent of this signature, and the ledger records no removal of them "
                "after the retention period."
            ),
        )
    if "removed" in states:
        return (
            name,
            True,
            _(
                "Removed after the retention period, as the ledger records; the salted "
                "SHA-256 in the evidence can no longer be checked against a value."
            ),
        )
    if "in_payload" in states:
        return (
            name,
            True,
            _("Recorded in the evidence itself (signed before they were kept apart)."),
        )
    return name, True, _("Not recorded.")


# evidence/ledger.py words its verdicts in English for the command line; the ones with fixed wording are
# translated here for the verification page, any other is shown as evidence/ledger.py wrote it.
_LEDGER_PROBLEMS = {
    "payload changed: its SHA-256 does not match the stored hash": gettext_lazy(
        "payload changed: its SHA-256 does not match the stored hash"
    ),
    "broken link: previous hash does not match the row before it": gettext_lazy(
        "broken link: previous hash does not match the row before it"
    ),
    "row hash changed: it does not match the recomputed hash": gettext_lazy(
        "row hash changed: it does not match the recomputed hash"
    ),
    "the payload is not valid JSON": gettext_lazy("the payload is not valid JSON"),
    "the payload is not in canonical form": gettext_lazy("the payload is not in canonical form"),
    "row missing": gettext_lazy("row missing"),
}


def _ledger_problem(problem: str) -> str:
    return str(_LEDGER_PROBLEMS.get(problem, problem))


def trusted_roots(identity: receipt_authority.SealingIdentity) -> list[bytes]:
    """The current sealing root, plus former roots kept trusted after a rotation."""
    return [identity.root_pem] + [
        Path(path).read_bytes() for path in settings.PORTAL_SEALING_FORMER_ROOTS
    ]


@dataclass(frozen=True)
class TrustRoot:
    """A root certificate a genuine seal chains to, as /verify/ shows it."""

    number: int  # 0: the current root; 1..: former roots, in the order configured
    subject: str
    fingerprint: str  # SHA-256 of the DER, upper-case hex pairs with colons, as openssl prints it
    not_after: dt.datetime


def trust_roots() -> list[TrustRoot]:
    shown = []
    for number, pem in enumerate(trusted_roots(receipt_authority.load_sealing_identity())):
        certificate = x509.load_pem_x509_certificate(pem)
        shown.append(
            TrustRoot(
                number=number,
                subject=certificate.subject.rfc4514_string(),
                fingerprint=receipt_document.certificate_fingerprint(pem),
                not_after=certificate.not_valid_after_utc,
            )
        )
    return shown
