"""A receipt's document: the PDF/A-3b rendered from its evidence, with evidence.json and the signed text attached.

Bytes in, bytes out: no request, no models. The sealed bytes a caller stores are the evidence; a receipt is
never re-rendered to stand in for the original (rendering changes between WeasyPrint versions).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from django.template.loader import render_to_string

from acknowledgements.evidence.payload import NOT_RECORDED, lookup, shown

EVIDENCE_FILENAME = "evidence.json"


TEMPLATE_NAME = "acknowledgements/receipt/receipt.html"


CLIENT_DETAILS_NOTE = (
    "Recorded at signing and kept by the portal apart from the ledger, for as long as its "
    "retention rules allow, so that they can be removed without changing this receipt. While "
    "they are kept, the verification page and the signer's personal data download check them "
    "against the salted SHA-256 printed above."
)


_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*")


FONTS_DIR = Path(__file__).resolve().parent / "fonts"


FONT_FILES = {
    "regular": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
}


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
    policy_version = lookup(payload, "policy", "version")
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
        return shown(lookup(payload, *path))

    def utc(*path: str) -> str:
        return _display_time(lookup(payload, *path))

    def flag(*path: str, yes: str = "yes", no: str = "no") -> str:
        value = lookup(payload, *path)
        if isinstance(value, bool):
            return yes if value else no
        return shown(value)

    def binding_text() -> str:
        shown = lookup(payload, "text", "language")
        binding = lookup(payload, "text", "authoritative_language")
        if shown is None or binding is None:
            return NOT_RECORDED
        if shown == binding:
            return f"The person read and signed the authoritative text ({binding})."
        return (
            f"The person read and signed the {shown} translation; the {binding} text, "
            "whose SHA-256 is printed below it, is the authoritative one."
        )

    def language_tag(*path: str) -> str:
        value = lookup(payload, *path)
        return value if isinstance(value, str) and _LANGUAGE_TAG.fullmatch(value) else ""

    def client_rows() -> list[dict[str, str]]:
        client = lookup(payload, "client")
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
        "company": company if isinstance(company := lookup(payload, "company"), str) else "",
        "person_name": text("person", "name"),
        "policy_label": f"{text('policy', 'name')}, version {text('policy', 'version')}",
        "signed_at": utc("signed_at"),
        "sections": sections,
        "payload_sha256": document.payload_sha256,
        "policy_filename": _policy_filename(lookup(payload, "policy", "version")),
        "evidence_filename": EVIDENCE_FILENAME,
        "verify_url": document.verify_url,
        # segno draws only the modules, no text from the URL: safe to insert unescaped.
        "qr_svg": qr.svg_inline(scale=3, border=0, dark="#111", omitsize=False),
        "policy_html": document.policy_html,
        "fonts": {role: (FONTS_DIR / name).as_uri() for role, name in FONT_FILES.items()},
    }


def _display_time(value: Any) -> str:
    """An aware ISO 8601 time printed in UTC; anything else printed exactly as recorded."""
    if not isinstance(value, str):
        return shown(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return shown(value)
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
