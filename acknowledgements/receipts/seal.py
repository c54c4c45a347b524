"""Sealing a receipt with the portal's certificate, and inspecting one: its seal, its coverage and its attachments."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import x509 as asn1_x509
from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import (
    DecodeLimits,
    DocumentDecodeBudget,
    StreamDecodeLimits,
)
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.constants import ESIC_EXTENSION_1
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import SignatureCoverageLevel, validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from acknowledgements.receipts import untrusted_pdf
from acknowledgements.receipts.authority import SealingIdentity
from acknowledgements.receipts.document import EVIDENCE_FILENAME, ReceiptDocument, render_receipt

# Uploads are hostile input that trips the PDF parser all the time: why a file could not be
# read is logged at DEBUG, so that neither the server's log nor `manage.py verify_receipt`
# prints a traceback for what is a verdict.
logger = logging.getLogger(__name__)


class _OfflineRevocationInfo(logging.Filter):
    """pyHanko warns on every seal that embeds validation info without fetching: for the local
    CA that is the design (its CRL is at hand), not news for the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_OfflineRevocationInfo())


SEAL_FIELD_NAME = "PortalSeal"


DEFAULT_MAX_RECEIPT_BYTES = 5 * 1024 * 1024


_POLICY_ATTACHMENT = re.compile(r"policy(-[^/\\]*)?\.md")


_NAME_TREE_MAX_NODES = 64


_NAME_TREE_MAX_ENTRIES = 64


# A receipt decodes to well under a megabyte; these bound what a crafted upload can inflate to
# (pyHanko's defaults allow 256 MiB per stream).
_UPLOAD_DECODE_LIMITS = DecodeLimits(
    per_stream=StreamDecodeLimits(max_output_size=8 * 1024 * 1024),
    document_budget=DocumentDecodeBudget(base_allowance=16 * 1024 * 1024, max_ratio=4),
)


def render_and_seal(document: ReceiptDocument, identity: SealingIdentity) -> bytes:
    """Render the receipt, naming the root its seal chains to, and seal it; the result is the
    evidence to store."""
    document = dataclasses.replace(document, sealing_root_pem=identity.root_pem)
    return seal_pdf(render_receipt(document), identity)


class _Pdf17Signer(signers.PdfSigner):
    """A PdfSigner that keeps the receipt at PDF 1.7, as PDF/A-3 requires.

    For ECDSA on P-256 pyHanko declares the ISO/TS 32002 extension, which raises the
    catalog's /Version to 2.0. PAdES (declared by the ESIC extension) already allows ECDSA in
    PDF 1.7, so only that extension is registered.
    """

    def register_extensions(self, pdf_out: Any, *, md_algorithm: str) -> None:
        pdf_out.ensure_output_version(version=(1, 7))
        pdf_out.register_extension(ESIC_EXTENSION_1)


def seal_pdf(pdf: bytes, identity: SealingIdentity) -> bytes:
    """Add an invisible PAdES B-LT certification seal that allows no further changes.

    The seal's chain and revocation information (the local CA's CRL, or what an operator's CA
    publishes) go into the document security store of the sealed revision itself: the receipt
    validates offline with revocation checking required, and the seal still covers the whole
    file. With PORTAL_TSA_URL set, the seal carries an RFC 3161 timestamp; when the authority
    fails, the failure is logged and the seal is made without one (never with a made-up time).
    """
    company = settings.PORTAL_COMPANY_NAME
    metadata = signers.PdfSignatureMetadata(
        field_name=SEAL_FIELD_NAME,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason="Acknowledgement receipt sealed by the policy portal; no changes are allowed.",
        location=f"{company} Policy Portal",
        embed_validation_info=True,
        validation_context=_revocation_context(identity),
        # A DSS added after the seal would leave the seal short of the whole file.
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False
        ),
    )
    tsa_url = getattr(settings, "PORTAL_TSA_URL", "")
    if tsa_url:
        try:
            return _sign(pdf, metadata, identity, _TimeStamper(tsa_url, timeout=10))
        except Exception:
            # Any failure of the remote authority (network, HTTP, malformed token) must not
            # stop the receipt: seal it without a timestamp and say so in the log.
            logger.warning(
                "The timestamp authority %s failed; sealing the receipt without a timestamp.",
                tsa_url,
                exc_info=True,
            )
    return _sign(pdf, metadata, identity, None)


def _revocation_context(identity: SealingIdentity) -> ValidationContext:
    """What the seal's chain is checked against before sealing; its CRLs go into the receipt."""
    roots = list(load_certs_from_pemder_data(identity.root_pem))
    if identity.crls:
        # The local CA's own CRL is all its chain needs: sealing never goes online, and a seal
        # whose revocation status cannot be shown is refused rather than made.
        return ValidationContext(
            trust_roots=roots,
            crls=list(identity.crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
        )
    # An operator's CA publishes its own CRLs or OCSP responses: they are fetched, and one that
    # cannot be reached does not stop the receipt, which then carries what could be had.
    return ValidationContext(trust_roots=roots, allow_fetching=True, revocation_mode="soft-fail")


class _TimeStamper(HTTPTimeStamper):
    """A timestamp authority whose own chain is not checked against the seal's roots.

    pyHanko would validate the authority's certificates with the seal's validation context
    before sealing, and fail: the authority does not chain to the portal's root. Its token
    carries its certificates; vouching for the authority is the verifier's trust list's job.
    """

    async def validation_paths(self, validation_context: ValidationContext) -> AsyncIterator[Any]:
        return
        yield


def _sign(
    pdf: bytes,
    metadata: signers.PdfSignatureMetadata,
    identity: SealingIdentity,
    timestamper: HTTPTimeStamper | None,
) -> bytes:
    signer = _Pdf17Signer(
        metadata,
        signer=identity.signer,
        timestamper=timestamper,
        new_field_spec=fields.SigFieldSpec(SEAL_FIELD_NAME),  # no box: invisible, PDF/A-safe
    )
    output = signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)))
    return output.getvalue()


@dataclass(frozen=True)
class SealReport:
    """What a receipt's bytes prove; problem is "" or the first failure, in the active language."""

    is_pdf: bool
    sealed: bool
    intact: bool
    trusted: bool
    covers_whole_file: bool
    signer_fingerprint: str
    timestamped: bool  # an intact RFC 3161 timestamp token is on the seal (its TSA not judged)
    evidence_json: bytes | None
    policy_source: str | None
    problem: str
    # Every embedded file by name (the checkpoint and inclusion proof among them): untrusted
    # unless the seal is intact and covers the whole file.
    attachments: dict[str, bytes] = field(default_factory=dict)
    # Of untrusted_pdf.UPLOAD_STEPS: how much reading the check took.
    steps: int = 0

    @property
    def ok(self) -> bool:
        return not self.problem


def inspect_receipt(data: bytes, *, trust_roots_pem: list[bytes]) -> SealReport:
    """Check a receipt's seal against the given roots; never raises, whatever the bytes."""
    limit = getattr(settings, "PORTAL_MAX_RECEIPT_UPLOAD_BYTES", DEFAULT_MAX_RECEIPT_BYTES)
    if len(data) > limit:
        return _report(
            is_pdf=False,
            problem=_("The file is larger than %(limit)s bytes; it is not a receipt.")
            % {"limit": number_format(limit, force_grouping=True)},
        )
    try:
        roots = [cert for pem in trust_roots_pem for cert in load_certs_from_pemder_data(pem)]
    except Exception:
        logger.exception("The trust roots given to inspect_receipt cannot be read.")
        return _report(
            is_pdf=False,
            problem=_("The portal's trust roots cannot be read: nothing was checked."),
        )
    budget = untrusted_pdf.ParseBudget(untrusted_pdf.UPLOAD_STEPS)
    try:
        report = _inspect(data, roots, budget)
    except Exception:
        # Hostile input can trip any corner of a PDF parser; it is a verdict, not a crash.
        logger.debug("A receipt could not be inspected.", exc_info=True)
        report = _report(is_pdf=False, problem=_("The file is not a PDF that can be checked."))
    # pyHanko turns some errors into verdicts of its own: a file that ran out of steps, or
    # that is built unlike any receipt, is judged by that, whatever came of the rest.
    if budget.exhausted:
        report = _report(
            problem=_("The PDF is far more complex than any receipt; it was not checked further.")
        )
    return dataclasses.replace(report, steps=min(budget.spent, untrusted_pdf.UPLOAD_STEPS))


def _changed_after_sealing() -> str:
    return _("The seal does not match the file's contents: it was changed after sealing.")


def _report(**fields_: Any) -> SealReport:
    defaults: dict[str, Any] = {
        "is_pdf": True,
        "sealed": False,
        "intact": False,
        "trusted": False,
        "covers_whole_file": False,
        "signer_fingerprint": "",
        "timestamped": False,
        "evidence_json": None,
        "policy_source": None,
        "problem": "",
    }
    return SealReport(**{**defaults, **fields_})


def _inspect(
    data: bytes, roots: list[asn1_x509.Certificate], budget: untrusted_pdf.ParseBudget
) -> SealReport:
    if data.lstrip(b"\x00\t\n\f\r ")[:5] != b"%PDF-":
        return _report(is_pdf=False, problem=_("The file is not a PDF."))
    try:
        reader = untrusted_pdf.BoundedPdfReader(
            data, budget=budget, decode_limits=_UPLOAD_DECODE_LIMITS
        )
        reader.root  # noqa: B018 - a file without a readable catalog is not a PDF
    except Exception:
        logger.debug("A file could not be read as a PDF.", exc_info=True)
        return _report(
            is_pdf=False,
            problem=_("The file is damaged or incomplete: it cannot be read as a PDF."),
        )

    try:
        attachments = _attachments(reader)
    except Exception:
        logger.debug("A PDF's attachments could not be read.", exc_info=True)
        attachments = {}
    evidence = attachments.get(EVIDENCE_FILENAME)
    policy_bytes = next(
        (body for name, body in attachments.items() if _POLICY_ATTACHMENT.fullmatch(name)), None
    )
    policy_source = None
    if policy_bytes is not None:
        with contextlib.suppress(UnicodeDecodeError):
            policy_source = policy_bytes.decode("utf-8")
    found = {"evidence_json": evidence, "policy_source": policy_source, "attachments": attachments}

    try:
        seals = [
            sig for sig in reader.embedded_regular_signatures if sig.field_name == SEAL_FIELD_NAME
        ]
    except Exception:
        logger.debug("A PDF's signatures could not be read.", exc_info=True)
        return _report(**found, problem=_("The PDF's signatures cannot be read."))
    if not seals:
        return _report(**found, problem=_("The PDF has no portal seal."))

    seal = seals[0]
    untrusted_pdf.refuse_tangled_certificates(seal, budget)
    fingerprint = ""
    with contextlib.suppress(Exception):
        fingerprint = hashlib.sha256(seal.signer_cert.dump()).hexdigest()
    # Judged as of the signing time the seal itself signs: a seal certificate lasts a few years
    # and is then renewed, and what it sealed meanwhile stays genuine. Only a key of the
    # portal's own chain can claim that time, and verification also matches the file against
    # the ledger's record of it, which no backdated seal can forge.
    sealed_at = None
    with contextlib.suppress(Exception):
        sealed_at = seal.self_reported_timestamp
    if sealed_at is not None and sealed_at.tzinfo is None:
        sealed_at = None
    # No fetching and no revocation lookups: verification must work offline, from the roots alone.
    context = ValidationContext(
        trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail", moment=sealed_at
    )
    try:
        # Without pyHanko's analysis of what later revisions changed: it takes about a second
        # for any appended update, and says nothing the verdict uses, which is "content was
        # appended" as soon as the seal does not cover the whole file.
        status = validate_pdf_signature(seal, signer_validation_context=context, skip_diff=True)
    except Exception:
        logger.debug("A portal seal could not be validated.", exc_info=True)
        return _report(
            **found,
            sealed=True,
            signer_fingerprint=fingerprint,
            problem=_changed_after_sealing(),
        )

    intact = bool(status.intact and status.valid)
    covers = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    trusted = bool(status.trusted)
    stamp = status.timestamp_validity
    if not intact:
        problem = _changed_after_sealing()
    elif not covers:
        problem = _("Content was appended after the seal.")
    elif not trusted:
        problem = _("The seal was made by a certificate this portal does not trust.")
    elif evidence is None:
        problem = _("The sealed PDF has no %(filename)s attachment.") % {
            "filename": EVIDENCE_FILENAME
        }
    else:
        problem = ""
    return _report(
        **found,
        sealed=True,
        intact=intact,
        trusted=trusted,
        covers_whole_file=covers,
        signer_fingerprint=fingerprint,
        timestamped=bool(stamp is not None and stamp.intact and stamp.valid),
        problem=problem,
    )


def _attachments(reader: untrusted_pdf.BoundedPdfReader) -> dict[str, bytes]:
    """The embedded files listed in the catalog's /Names /EmbeddedFiles tree, by file name."""
    tree = _entry(_entry(reader.root, "/Names"), "/EmbeddedFiles")
    found: dict[str, bytes] = {}
    for name, filespec in _name_tree_entries(tree):
        if len(found) >= _NAME_TREE_MAX_ENTRIES:
            break
        filename = _entry(filespec, "/UF") or _entry(filespec, "/F") or name
        stream = _entry(_entry(filespec, "/EF"), "/F")
        if isinstance(stream, generic.StreamObject) and isinstance(filename, str):
            found.setdefault(str(filename), reader.decoded(stream))
    return found


def _entry(node: Any, key: str) -> Any:
    """node[key] dereferenced, or None when node is not a dictionary or lacks the key."""
    if not isinstance(node, generic.DictionaryObject):
        return None
    try:
        return node[key]
    except KeyError:
        return None


def _name_tree_entries(root: Any) -> Iterator[tuple[str, Any]]:
    """Walk a name tree, visiting a bounded number of nodes so a crafted tree cannot loop."""
    pending = [root]
    for _step in range(_NAME_TREE_MAX_NODES):
        if not pending:
            return
        node = pending.pop(0)
        if not isinstance(node, generic.DictionaryObject):
            continue
        pairs = _entry(node, "/Names")
        if isinstance(pairs, generic.ArrayObject):
            for index in range(0, min(len(pairs), 2 * _NAME_TREE_MAX_ENTRIES) - 1, 2):
                yield str(pairs[index]), pairs[index + 1]
        kids = _entry(node, "/Kids")
        if isinstance(kids, generic.ArrayObject):
            pending.extend(kids[index] for index in range(min(len(kids), _NAME_TREE_MAX_NODES)))
