"""Acknowledgement receipts: render a PDF/A-3b, seal it with the portal's certificate, inspect one.

Bytes in, bytes out: this module never sees a request and imports no models. The sealed bytes a
caller stores are the evidence; a receipt is never re-rendered to stand in for the original
(rendering changes between WeasyPrint versions).
"""

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import (
    DecodeLimits,
    DocumentDecodeBudget,
    StreamDecodeLimits,
)
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.constants import ESIC_EXTENSION_1
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import SignatureCoverageLevel, validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

logger = logging.getLogger(__name__)

SEAL_FIELD_NAME = "PortalSeal"
EVIDENCE_FILENAME = "evidence.json"
TEMPLATE_NAME = "acknowledgements/receipt/receipt.html"
NOT_RECORDED = "not recorded"
CLIENT_DETAILS_NOTE = (
    "Recorded at signing and kept by the portal apart from the ledger, for as long as its "
    "retention rules allow, so that they can be removed without changing this receipt. While "
    "they are kept, the verification page and the signer's personal data download check them "
    "against the salted SHA-256 printed above."
)
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*")
DEFAULT_MAX_RECEIPT_BYTES = 5 * 1024 * 1024
FONTS_DIR = Path(__file__).resolve().parent / "fonts"
FONT_FILES = {
    "regular": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
}

_LOCAL_CA_FILES = {
    "root_key": "root-ca.key",
    "root_cert": "root-ca.pem",
    "seal_key": "seal.key",
    # Written last: its presence means the local CA is complete.
    "seal_cert": "seal.pem",
}
_ROOT_VALIDITY = timedelta(days=365 * 30)
_SEAL_VALIDITY = timedelta(days=365 * 20)
_POLICY_ATTACHMENT = re.compile(r"policy(-[^/\\]*)?\.md")
_NAME_TREE_MAX_NODES = 64
_NAME_TREE_MAX_ENTRIES = 64
# A receipt decodes to well under a megabyte; these bound what a crafted upload can inflate to
# (pyHanko's defaults allow 256 MiB per stream).
_UPLOAD_DECODE_LIMITS = DecodeLimits(
    per_stream=StreamDecodeLimits(max_output_size=16 * 1024 * 1024),
    document_budget=DocumentDecodeBudget(base_allowance=64 * 1024 * 1024, max_ratio=20),
)


# --- Sealing identity ------------------------------------------------------------------------


@dataclass(frozen=True)
class SealingIdentity:
    """Key and certificate that seal receipts, plus the root(s) a verifier must trust."""

    signer: signers.SimpleSigner
    certificate_pem: bytes
    root_pem: bytes
    fingerprint: str  # SHA-256 hex of the sealing certificate's DER


def load_sealing_identity() -> SealingIdentity:
    """Load the configured sealing key; without one, create (once) and reuse a local CA.

    Cached per process for each combination of the PORTAL_SEALING_* settings.
    """
    return _load_identity(
        key_path=settings.PORTAL_SEALING_KEY,
        cert_path=settings.PORTAL_SEALING_CERT,
        root_path=settings.PORTAL_SEALING_ROOT,
        key_password=getattr(settings, "PORTAL_SEALING_KEY_PASSWORD", ""),
        sealing_dir=str(settings.PORTAL_SEALING_DIR),
    )


def clear_sealing_identity_cache() -> None:
    """Forget loaded identities, e.g. after the key files were rotated."""
    _load_identity.cache_clear()


@functools.cache
def _load_identity(
    *, key_path: str, cert_path: str, root_path: str, key_password: str, sealing_dir: str
) -> SealingIdentity:
    if key_path or cert_path or root_path:
        if not (key_path and cert_path and root_path):
            raise ImproperlyConfigured(
                "PORTAL_SEALING_KEY, PORTAL_SEALING_CERT and PORTAL_SEALING_ROOT must be set "
                "together (or all left empty to use a local sealing CA)."
            )
        return _identity_from_pem(
            key_pem=_read_configured(key_path, "PORTAL_SEALING_KEY"),
            cert_pem=_read_configured(cert_path, "PORTAL_SEALING_CERT"),
            root_pem=_read_configured(root_path, "PORTAL_SEALING_ROOT"),
            password=key_password.encode() if key_password else None,
        )
    files = _ensure_local_ca(Path(sealing_dir))
    return _identity_from_pem(
        key_pem=files["seal_key"].read_bytes(),
        cert_pem=files["seal_cert"].read_bytes(),
        root_pem=files["root_cert"].read_bytes(),
        password=None,
    )


def _read_configured(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"{setting} names a file that cannot be read: {exc}") from exc


def _identity_from_pem(
    *, key_pem: bytes, cert_pem: bytes, root_pem: bytes, password: bytes | None
) -> SealingIdentity:
    """Build the signer; the certificate file may carry intermediates after the sealing cert."""
    try:
        chain = list(load_certs_from_pemder_data(cert_pem))
        roots = list(load_certs_from_pemder_data(root_pem))
        signing_key = load_private_key_from_pemder_data(key_pem, passphrase=password)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"The sealing key or certificates cannot be read: {exc}"
        ) from exc
    if not chain or not roots:
        raise ImproperlyConfigured("The sealing certificate or root certificate file is empty.")
    signing_cert = chain[0]
    if signing_cert.public_key.dump() != _public_key_der(key_pem, password):
        raise ImproperlyConfigured("The sealing key does not belong to the sealing certificate.")
    key_usage = signing_cert.key_usage_value
    if key_usage is None or "non_repudiation" not in key_usage.native:
        # pyHanko judges a seal without this bit untrusted: fail at start-up, not at verification.
        raise ImproperlyConfigured(
            "The sealing certificate needs the non-repudiation (content commitment) key usage."
        )
    registry = SimpleCertificateStore()
    registry.register_multiple([*chain[1:], *roots])
    signer = signers.SimpleSigner(
        signing_cert=signing_cert, signing_key=signing_key, cert_registry=registry
    )
    return SealingIdentity(
        signer=signer,
        certificate_pem=cert_pem,
        root_pem=root_pem,
        fingerprint=hashlib.sha256(signing_cert.dump()).hexdigest(),
    )


def _public_key_der(key_pem: bytes, password: bytes | None) -> bytes:
    load = (
        serialization.load_pem_private_key
        if key_pem.lstrip().startswith(b"-----")
        else serialization.load_der_private_key
    )
    return (
        load(key_pem, password=password)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _ensure_local_ca(directory: Path) -> dict[str, Path]:
    """Return the local CA's files, creating them under an exclusive lock if absent."""
    files = {role: directory / name for role, name in _LOCAL_CA_FILES.items()}
    if files["seal_cert"].exists():
        _require_complete(files)
        return files
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    else:
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    lock_fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Another process may be creating the same CA: wait for it, then reuse its files.
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if files["seal_cert"].exists():
            _require_complete(files)
            return files
        pems = _generate_local_ca(settings.PORTAL_COMPANY_NAME)
        for role, path in files.items():
            _write_atomically(path, pems[role], mode=0o600 if role.endswith("_key") else 0o644)
    finally:
        os.close(lock_fd)  # closing releases the lock
    logger.warning(
        "Created a local sealing CA at %s to seal receipts. Production should configure "
        "PORTAL_SEALING_KEY, PORTAL_SEALING_CERT and PORTAL_SEALING_ROOT instead, and keep "
        "this root certificate with the audit package.",
        directory,
    )
    return files


def _require_complete(files: dict[str, Path]) -> None:
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        # Never silently replace a CA that may already have sealed receipts.
        raise ImproperlyConfigured(f"The local sealing CA is incomplete; missing: {missing}")


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _generate_local_ca(company: str) -> dict[str, bytes]:
    """Make an EC P-256 root CA and a sealing certificate it issues; return the four PEMs."""
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    seal_key = ec.generate_private_key(ec.SECP256R1())

    def name(common_name: str) -> x509.Name:
        # X.509 caps both attributes at 64 characters.
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, company[:64]),
            ]
        )

    root_name = name(f"{company} Policy Portal local sealing root")
    seal_name = name(f"{company} Policy Portal receipt seal")
    no_usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(**{**no_usage, "key_cert_sign": True, "crl_sign": True}), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    seal_cert = (
        x509.CertificateBuilder()
        .subject_name(seal_name)
        .issuer_name(root_name)
        .public_key(seal_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _SEAL_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(**{**no_usage, "digital_signature": True, "content_commitment": True}),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(seal_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    return {
        "root_key": key_pem(root_key),
        "root_cert": root_cert.public_bytes(serialization.Encoding.PEM),
        "seal_key": key_pem(seal_key),
        "seal_cert": seal_cert.public_bytes(serialization.Encoding.PEM),
    }


# --- Rendering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptDocument:
    """What a receipt shows: the ledger row's evidence, the signed text and where to verify."""

    receipt_number: str
    payload: bytes  # canonical evidence JSON, attached verbatim as evidence.json
    payload_sha256: str
    sequence: int
    previous_hash: str
    row_hash: str
    policy_source: str  # the Markdown the person signed, attached as policy-<version>.md
    policy_html: str  # that text rendered and sanitised (trusted HTML), printed as an appendix
    verify_url: str
    seal_fingerprint: str = ""


def issue_receipt(document: ReceiptDocument, identity: SealingIdentity) -> bytes:
    """Render the receipt and seal it; the result is the evidence to store."""
    return seal_pdf(render_receipt(document), identity)


def render_receipt(document: ReceiptDocument) -> bytes:
    """Render the unsealed PDF/A-3b with evidence.json and the policy source attached.

    Refuses a document whose payload does not hash to payload_sha256 or is not a JSON object.
    """
    # Imported here so that processes which only verify receipts never load WeasyPrint (~1 s).
    import weasyprint

    if hashlib.sha256(document.payload).hexdigest() != document.payload_sha256.lower():
        raise ValueError("The payload does not hash to payload_sha256.")
    payload = json.loads(document.payload)
    if not isinstance(payload, dict):
        raise ValueError("The payload is not a JSON object.")

    html = render_to_string(TEMPLATE_NAME, _template_context(document, payload))
    now = datetime.now(UTC)
    policy_version = _lookup(payload, "policy", "version")
    # Given the portal's fetcher: without one, each attachment builds WeasyPrint's default
    # fetcher, whose SSL context costs ~20 ms to create, for data that needs no fetching.
    fetcher = font_fetcher()
    attachments = [
        weasyprint.Attachment(
            string=document.payload,
            url_fetcher=fetcher,
            name=EVIDENCE_FILENAME,
            description=f"Evidence recorded for receipt {document.receipt_number} (canonical JSON)",
            created=now,
            modified=now,
            relationship="Data",
        ),
        weasyprint.Attachment(
            string=document.policy_source.encode(),
            url_fetcher=fetcher,
            name=_policy_filename(policy_version),
            description="Policy text as signed (Markdown source, UTF-8)",
            created=now,
            modified=now,
            relationship="Source",
        ),
    ]
    with warnings.catch_warnings():
        # WeasyPrint 70 opens its bundled sRGB profile for the PDF/A output intent and never
        # closes it; the ResourceWarning fires inside write_pdf. Nothing else is silenced.
        warnings.filterwarnings(
            "ignore", message=r"unclosed file .*sRGB2014\.icc", category=ResourceWarning
        )
        return weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf(
            pdf_variant="pdf/a-3b",
            # Tagged structure (headings, tables, reading order): allowed by PDF/A-3b, which
            # does not require it, and kept intact by the seal. Not a PDF/UA claim.
            pdf_tags=True,
            # Policy numbering (<ol start="3">) is an HTML attribute; without the hints every
            # numbered section of the signed text would print as "1.".
            presentational_hints=True,
            attachments=attachments,
            finisher=_tidy_pdf,
        )


def _tidy_pdf(_document: Any, pdf: Any) -> None:
    """Fix two WeasyPrint 70 PDF/A details before the file is written.

    - It lists every attachment twice in the catalog's /AF array.
    - pyHanko's seal rewrites the XMP producer to "pyHanko" but appends to the Info producer;
      PDF/A needs the two to agree, so the Info entry is left for pyHanko to write.
    """
    import pydyf

    if "AF" in pdf.catalog:
        pdf.catalog["AF"] = pydyf.Array(dict.fromkeys(pdf.catalog["AF"]))
    pdf.info.pop("Producer", None)


@functools.cache
def font_fetcher() -> Any:
    """A WeasyPrint URL fetcher that serves the bundled fonts and refuses everything else."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    fonts_dir = FONTS_DIR.resolve()

    class BundledFontsOnly(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            parts = urlsplit(url)
            if parts.scheme == "file" and parts.netloc in ("", "localhost"):
                path = Path(url2pathname(unquote(parts.path))).resolve()
                if path.parent == fonts_dir and path.name in FONT_FILES.values():
                    return URLFetcherResponse(
                        url, body=path.read_bytes(), headers={"Content-Type": "font/ttf"}
                    )
            raise ValueError(f"A PDF may not fetch {url[:200]!r}")

    return BundledFontsOnly(allowed_protocols=["file"])


def _template_context(document: ReceiptDocument, payload: dict[str, Any]) -> dict[str, Any]:
    import segno

    def row(label: str, value: str, kind: str = "text", lang: str = "") -> dict[str, str]:
        return {"label": label, "value": value, "kind": kind, "lang": lang}

    def text(*path: str) -> str:
        return _display(_lookup(payload, *path))

    def utc(*path: str) -> str:
        return _display_time(_lookup(payload, *path))

    def flag(*path: str, yes: str = "yes", no: str = "no") -> str:
        value = _lookup(payload, *path)
        if isinstance(value, bool):
            return yes if value else no
        return _display(value)

    def binding_text() -> str:
        shown = _lookup(payload, "text", "language")
        binding = _lookup(payload, "text", "authoritative_language")
        if shown is None or binding is None:
            return NOT_RECORDED
        if shown == binding:
            return f"The person read and signed the authoritative text ({binding})."
        return (
            f"The person read and signed the {shown} translation; the {binding} text, "
            "whose SHA-256 is printed below it, is the authoritative one."
        )

    def language_tag(*path: str) -> str:
        value = _lookup(payload, *path)
        return value if isinstance(value, str) and _LANGUAGE_TAG.fullmatch(value) else ""

    def client_rows() -> list[dict[str, str]]:
        client = _lookup(payload, "client")
        if isinstance(client, dict) and ("ip" in client or "user_agent" in client):
            # Evidence recorded before commitments existed holds the raw values itself.
            return [
                row("IP address", text("client", "ip"), "mono"),
                row("User agent", text("client", "user_agent"), "mono"),
            ]
        # A stored receipt can never be changed or deleted, so it must not carry a value the
        # portal may have to forget: like the ledger, it shows only the salted commitments.
        return [
            row("IP address (salted SHA-256)", text("client", "ip_sha256"), "mono"),
            row("User agent (salted SHA-256)", text("client", "user_agent_sha256"), "mono"),
            row("How they were hashed", text("client", "commitment")),
            row("IP address and user agent", CLIENT_DETAILS_NOTE),
        ]

    sections = [
        {
            "title": "Who signed",
            "rows": [
                row("Name", text("person", "name")),
                row("Email", text("person", "email")),
                row("Person id", text("person", "id")),
                row("Authentication", text("authentication", "method")),
                row("Authenticated at", utc("authentication", "authenticated_at")),
                row("Multi-factor authentication", flag("authentication", "mfa")),
                row("Session key SHA-256", text("session_key_sha256"), "mono"),
            ],
        },
        {
            "title": "What was signed",
            "rows": [
                row("Company", text("company")),
                row("Policy", text("policy", "name")),
                row("Version", text("policy", "version")),
                row("Policy identifier", text("policy", "slug"), "mono"),
                row("Revision id", text("policy", "revision_id")),
                row("Effective from", utc("policy", "effective_at")),
                row("Material revision", flag("policy", "material")),
                row("Binding text", binding_text()),
                row("Language shown", text("text", "language")),
                row("Authoritative language", text("text", "authoritative_language")),
                row("Text SHA-256", text("text", "sha256"), "mono"),
                row(
                    "Authoritative text SHA-256",
                    text("text", "authoritative_sha256"),
                    "mono",
                ),
                row("What was hashed", text("text", "hashed")),
            ],
        },
        {
            "title": "What the person agreed to",
            "rows": [
                # The statement exactly as shown to the person, in the language they signed in.
                row(
                    "Attestation statement",
                    text("attestation", "text"),
                    "quote",
                    lang=language_tag("attestation", "language"),
                ),
                row("Attestation version", text("attestation", "version")),
                row("Attestation language", text("attestation", "language")),
                row("Attestation SHA-256", text("attestation", "sha256"), "mono"),
                row(
                    "Authoritative attestation SHA-256",
                    text("attestation", "authoritative_sha256"),
                    "mono",
                ),
                row("E-signing consent version", text("consent", "version")),
                row("E-signing consent language", text("consent", "language")),
                row("E-signing consent SHA-256", text("consent", "sha256"), "mono"),
                row("Consent accepted at", utc("consent", "accepted_at")),
                row("Typed name", text("typed_name")),
                row("Checkbox", flag("checkbox_ticked", yes="ticked", no="not ticked")),
            ],
        },
        {
            "title": "When and from where",
            "rows": [
                row("First viewed at", utc("first_viewed_at")),
                row("Signed at", utc("signed_at")),
                row("Browser time zone", text("browser_time_zone")),
                *client_rows(),
                row("Request id", text("client", "request_id"), "mono"),
            ],
        },
        {
            "title": "Integrity",
            "rows": [
                row("Event", text("event")),
                row("Evidence schema", text("schema")),
                row("Evidence (payload) SHA-256", document.payload_sha256, "mono"),
                row("Chain position", str(document.sequence)),
                row("Previous row hash", document.previous_hash or NOT_RECORDED, "mono"),
                row("Row hash", document.row_hash or NOT_RECORDED, "mono"),
                row(
                    "Sealing certificate SHA-256",
                    document.seal_fingerprint or NOT_RECORDED,
                    "mono",
                ),
            ],
        },
    ]
    qr = segno.make(document.verify_url, error="m")
    return {
        "receipt_number": document.receipt_number,
        # The masthead only repeats a recorded company; the table says when it was not recorded.
        "company": company if isinstance(company := _lookup(payload, "company"), str) else "",
        "person_name": text("person", "name"),
        "policy_label": f"{text('policy', 'name')}, version {text('policy', 'version')}",
        "signed_at": utc("signed_at"),
        "sections": sections,
        "payload_sha256": document.payload_sha256,
        "policy_filename": _policy_filename(_lookup(payload, "policy", "version")),
        "evidence_filename": EVIDENCE_FILENAME,
        "verify_url": document.verify_url,
        # segno draws only the modules, no text from the URL: safe to insert unescaped.
        "qr_svg": qr.svg_inline(scale=3, border=0, dark="#111", omitsize=False),
        "policy_html": document.policy_html,
        "fonts": {role: (FONTS_DIR / name).as_uri() for role, name in FONT_FILES.items()},
    }


def _lookup(payload: dict[str, Any], *path: str) -> Any:
    """The value at path, or None when a key is missing or a parent is not an object."""
    value: Any = payload
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _display(value: Any) -> str:
    """Print what the ledger recorded; a missing or null value is "not recorded"."""
    if value is None:
        return NOT_RECORDED
    if isinstance(value, str):
        return value if value else "(empty)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _display_time(value: Any) -> str:
    """An aware ISO 8601 time printed in UTC; anything else printed exactly as recorded."""
    if not isinstance(value, str):
        return _display(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _display(value)
    if moment.tzinfo is None:
        return value  # no zone was recorded: labelling it UTC would invent one
    moment = moment.astimezone(UTC)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return f"{moment:%Y-%m-%d %H:%M:%S}{fraction} UTC"


def _policy_filename(version: Any) -> str:
    if isinstance(version, str | int) and not isinstance(version, bool) and str(version):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", str(version)).strip(".-")
        if safe:
            return f"policy-{safe}.md"
    return "policy.md"


# --- Sealing ---------------------------------------------------------------------------------


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
    """Add an invisible PAdES certification seal that allows no further changes.

    With PORTAL_TSA_URL set, the seal carries an RFC 3161 timestamp; when the authority fails,
    the failure is logged and the seal is made without one (never with a made-up time).
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
    )
    tsa_url = getattr(settings, "PORTAL_TSA_URL", "")
    if tsa_url:
        try:
            return _sign(pdf, metadata, identity, HTTPTimeStamper(tsa_url, timeout=10))
        except Exception:
            # Any failure of the remote authority (network, HTTP, malformed token) must not
            # stop the receipt: seal it without a timestamp and say so in the log.
            logger.warning(
                "The timestamp authority %s failed; sealing the receipt without a timestamp.",
                tsa_url,
                exc_info=True,
            )
    return _sign(pdf, metadata, identity, None)


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


# --- Inspection ------------------------------------------------------------------------------


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
    try:
        return _inspect(data, roots)
    except Exception:
        # Hostile input can trip any corner of a PDF parser; it is a verdict, not a crash.
        logger.info("A receipt could not be inspected.", exc_info=True)
        return _report(is_pdf=False, problem=_("The file is not a PDF that can be checked."))


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


def _inspect(data: bytes, roots: list[asn1_x509.Certificate]) -> SealReport:
    if data.lstrip(b"\x00\t\n\f\r ")[:5] != b"%PDF-":
        return _report(is_pdf=False, problem=_("The file is not a PDF."))
    try:
        reader = PdfFileReader(io.BytesIO(data), decode_limits=_UPLOAD_DECODE_LIMITS)
        reader.root  # noqa: B018 - a file without a readable catalog is not a PDF
    except Exception:
        logger.info("A file could not be read as a PDF.", exc_info=True)
        return _report(is_pdf=False, problem=_("The file is not a PDF."))

    try:
        attachments = _attachments(reader)
    except Exception:
        logger.info("A PDF's attachments could not be read.", exc_info=True)
        attachments = {}
    evidence = attachments.get(EVIDENCE_FILENAME)
    policy_bytes = next(
        (body for name, body in attachments.items() if _POLICY_ATTACHMENT.fullmatch(name)), None
    )
    policy_source = None
    if policy_bytes is not None:
        with contextlib.suppress(UnicodeDecodeError):
            policy_source = policy_bytes.decode("utf-8")
    found = {"evidence_json": evidence, "policy_source": policy_source}

    try:
        seals = [
            sig for sig in reader.embedded_regular_signatures if sig.field_name == SEAL_FIELD_NAME
        ]
    except Exception:
        logger.info("A PDF's signatures could not be read.", exc_info=True)
        return _report(**found, problem=_("The PDF's signatures cannot be read."))
    if not seals:
        return _report(**found, problem=_("The PDF has no portal seal."))

    seal = seals[0]
    fingerprint = ""
    with contextlib.suppress(Exception):
        fingerprint = hashlib.sha256(seal.signer_cert.dump()).hexdigest()
    # No fetching and no revocation lookups: verification must work offline, from the roots alone.
    context = ValidationContext(
        trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail"
    )
    try:
        status = validate_pdf_signature(seal, signer_validation_context=context)
    except Exception:
        logger.info("A portal seal could not be validated.", exc_info=True)
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


def _attachments(reader: PdfFileReader) -> dict[str, bytes]:
    """The embedded files listed in the catalog's /Names /EmbeddedFiles tree, by file name."""
    tree = _entry(_entry(reader.root, "/Names"), "/EmbeddedFiles")
    found: dict[str, bytes] = {}
    for name, filespec in _name_tree_entries(tree):
        if len(found) >= _NAME_TREE_MAX_ENTRIES:
            break
        filename = _entry(filespec, "/UF") or _entry(filespec, "/F") or name
        stream = _entry(_entry(filespec, "/EF"), "/F")
        if isinstance(stream, generic.StreamObject) and isinstance(filename, str):
            found.setdefault(str(filename), stream.data)
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
