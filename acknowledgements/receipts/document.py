"""A receipt's document: the PDF/A-3b rendered from its evidence, with evidence.json and the signed text attached.

Bytes in, bytes out: no request, no models. The sealed bytes a caller stores are the evidence; a receipt is
never re-rendered to stand in for the original (rendering changes between WeasyPrint versions).

Page 1 opens with a plain summary in the signer's language (who signed what, when, in their time zone
and in UTC), then prints the technical evidence.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from acknowledgements.evidence.client_evidence import browser_zone
from acknowledgements.evidence.payload import NOT_RECORDED, lookup, shown
from acknowledgements.models import TEXT_SHA256_RULE
from acknowledgements.templatetags.dates import written_date

EVIDENCE_FILENAME = "evidence.json"
CHECKPOINT_FILENAME = "checkpoint.txt"
INCLUSION_PROOF_FILENAME = "inclusion-proof.json"


TEMPLATE_NAME = "acknowledgements/receipt/receipt.html"


CLIENT_DETAILS_NOTE = gettext_lazy(
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
    # The signed checkpoint that first includes the entry, and the proof of it (transparency.py),
    # attached as checkpoint.txt and inclusion-proof.json.
    checkpoint_note: str = ""
    inclusion_proof: bytes = b""
    # The root certificate the seal chains to (render_and_seal sets it from the sealing
    # identity): the receipt prints its fingerprint and where to download it.
    sealing_root_pem: bytes = b""


def render_receipt(document: ReceiptDocument) -> bytes:
    """Render the unsealed PDF/A-3b with evidence.json and the policy source attached.

    Refuses a document whose payload does not hash to payload_sha256 or is not a JSON object.
    """
    # Imported here so that processes which only verify receipts never load WeasyPrint (~1 s).
    import weasyprint

    payload = _checked_payload(document)
    html = receipt_html(document)
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
    if document.checkpoint_note:
        attachments += [
            weasyprint.Attachment(
                string=document.checkpoint_note.encode(),
                url_fetcher=fetcher,
                name=CHECKPOINT_FILENAME,
                description="The ledger's signed checkpoint that first includes this signature",
                created=now,
                modified=now,
                relationship="Supplement",
            ),
            weasyprint.Attachment(
                string=document.inclusion_proof,
                url_fetcher=fetcher,
                name=INCLUSION_PROOF_FILENAME,
                description="The proof that the signature is in that checkpoint (RFC 9162)",
                created=now,
                modified=now,
                relationship="Supplement",
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


def receipt_html(document: ReceiptDocument) -> str:
    """The receipt's HTML, in the language the person signed in (see receipt_language)."""
    payload = _checked_payload(document)
    with translation.override(receipt_language(payload)):
        return render_to_string(TEMPLATE_NAME, _template_context(document, payload))


def receipt_language(payload: dict[str, Any]) -> str:
    """The language of the pages the person signed on, if the portal speaks it; else its own.

    Evidence recorded before the page's language was kept falls back to the language of the
    attestation statement they were shown.
    """
    for recorded in (lookup(payload, "locale"), lookup(payload, "attestation", "language")):
        if isinstance(recorded, str) and _LANGUAGE_TAG.fullmatch(recorded):
            try:
                return translation.get_supported_language_variant(recorded)
            except LookupError:
                continue
    return settings.LANGUAGE_CODE


def _checked_payload(document: ReceiptDocument) -> dict[str, Any]:
    if hashlib.sha256(document.payload).hexdigest() != document.payload_sha256.lower():
        raise ValueError("The payload does not hash to payload_sha256.")
    payload = json.loads(document.payload)
    if not isinstance(payload, dict):
        raise ValueError("The payload is not a JSON object.")
    return payload


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
    """What the template prints, worded in the active language (receipt_html chooses it)."""
    import segno

    def row(label: str, value: str, kind: str = "text", lang: str = "") -> dict[str, str]:
        return {"label": label, "value": value, "kind": kind, "lang": lang}

    def text(*path: str) -> str:
        return shown(lookup(payload, *path))

    def utc(*path: str) -> str:
        return _display_time(lookup(payload, *path))

    def flag(*path: str, yes: str | None = None, no: str | None = None) -> str:
        value = lookup(payload, *path)
        if isinstance(value, bool):
            return (yes or _("yes")) if value else (no or _("no"))
        return shown(value)

    def binding_text() -> str:
        shown = lookup(payload, "text", "language")
        binding = lookup(payload, "text", "authoritative_language")
        if shown is None or binding is None:
            return NOT_RECORDED
        if shown == binding:
            return _("The person read and signed the authoritative text (%(language)s).") % {
                "language": binding
            }
        return _(
            "The person read and signed the %(shown)s translation; the %(binding)s text, "
            "whose SHA-256 is printed below it, is the authoritative one."
        ) % {"shown": shown, "binding": binding}

    def renewal_rows() -> list[dict[str, str]]:
        """Under a renewal period only: how long this signature counts."""
        if lookup(payload, "renewal") is None:
            return []
        return [
            row(_("Counts until"), utc("renewal", "counts_until")),
            row(_("Re-acknowledged every (months)"), text("renewal", "every_months")),
        ]

    def language_tag(*path: str) -> str:
        value = lookup(payload, *path)
        return value if isinstance(value, str) and _LANGUAGE_TAG.fullmatch(value) else ""

    def client_rows() -> list[dict[str, str]]:
        client = lookup(payload, "client")
        if isinstance(client, dict) and ("ip" in client or "user_agent" in client):
            # Evidence recorded before commitments existed holds the raw values itself.
            return [
                row(_("IP address"), text("client", "ip"), "mono"),
                row(_("User agent"), text("client", "user_agent"), "mono"),
            ]
        # A stored receipt can never be changed or deleted, so it must not carry a value the
        # portal may have to forget: like the ledger, it shows only the salted commitments.
        return [
            row(_("IP address (salted SHA-256)"), text("client", "ip_sha256"), "mono"),
            row(_("User agent (salted SHA-256)"), text("client", "user_agent_sha256"), "mono"),
            row(_("How they were hashed"), text("client", "commitment")),
            row(_("IP address and user agent"), str(CLIENT_DETAILS_NOTE)),
        ]

    root_fingerprint = (
        certificate_fingerprint(document.sealing_root_pem)
        if document.sealing_root_pem
        else NOT_RECORDED
    )
    sections = [
        {
            "title": _("Who signed"),
            "rows": [
                row(_("Name"), text("person", "name")),
                row(_("Email"), text("person", "email")),
                row(_("Person id"), text("person", "id")),
                row(_("Authentication"), text("authentication", "method")),
                row(_("Authenticated at"), utc("authentication", "authenticated_at")),
                row(_("Multi-factor authentication"), flag("authentication", "mfa")),
                row(_("Session key SHA-256"), text("session_key_sha256"), "mono"),
            ],
        },
        {
            "title": _("What was signed"),
            "rows": [
                row(_("Company"), text("company")),
                row(_("Policy"), text("policy", "name")),
                row(_("Version"), text("policy", "version")),
                row(_("Policy identifier"), text("policy", "slug"), "mono"),
                row(_("Revision id"), text("policy", "revision_id")),
                row(_("Effective from"), utc("policy", "effective_at")),
                row(_("Material revision"), flag("policy", "material")),
                row(_("Binding text"), binding_text()),
                row(_("Language shown"), text("text", "language")),
                row(
                    _("Policy name shown"),
                    text("text", "title"),
                    lang=language_tag("text", "language"),
                ),
                row(_("Authoritative language"), text("text", "authoritative_language")),
                row(_("Text SHA-256"), text("text", "sha256"), "mono"),
                row(
                    _("Authoritative text SHA-256"),
                    text("text", "authoritative_sha256"),
                    "mono",
                ),
                row(_("What was hashed"), text("text", "hashed")),
            ],
        },
        {
            "title": _("What the person agreed to"),
            "rows": [
                # The statement exactly as shown to the person, in the language they signed in.
                row(
                    _("Attestation statement"),
                    text("attestation", "text"),
                    "quote",
                    lang=language_tag("attestation", "language"),
                ),
                row(_("Attestation version"), text("attestation", "version")),
                row(_("Attestation language"), text("attestation", "language")),
                row(_("Attestation SHA-256"), text("attestation", "sha256"), "mono"),
                row(
                    _("Authoritative attestation SHA-256"),
                    text("attestation", "authoritative_sha256"),
                    "mono",
                ),
                row(
                    _("E-signing consent statement"),
                    text("consent", "text"),
                    "quote",
                    lang=language_tag("consent", "language"),
                ),
                row(_("E-signing consent version"), text("consent", "version")),
                row(_("E-signing consent language"), text("consent", "language")),
                row(_("E-signing consent SHA-256"), text("consent", "sha256"), "mono"),
                row(_("Consent accepted at"), utc("consent", "accepted_at")),
                row(_("Typed name"), text("typed_name")),
                row(
                    _("Checkbox"),
                    flag("checkbox_ticked", yes=_("ticked"), no=_("not ticked")),
                ),
            ],
        },
        {
            "title": _("When and from where"),
            "rows": [
                row(_("First viewed at"), utc("first_viewed_at")),
                row(_("Signed at"), utc("signed_at")),
                *renewal_rows(),
                row(_("Browser time zone"), text("browser_time_zone")),
                *client_rows(),
                row(_("Request id"), text("client", "request_id"), "mono"),
            ],
        },
        {
            "title": _("Integrity"),
            "rows": [
                row(_("Event"), text("event")),
                row(_("Evidence schema"), text("schema")),
                row(_("Evidence (payload) SHA-256"), document.payload_sha256, "mono"),
                row(_("Chain position"), str(document.sequence)),
                row(_("Previous row hash"), document.previous_hash or NOT_RECORDED, "mono"),
                row(_("Row hash"), document.row_hash or NOT_RECORDED, "mono"),
                row(
                    _("Sealing certificate SHA-256"),
                    document.seal_fingerprint or NOT_RECORDED,
                    "mono",
                ),
                row(_("Sealing root certificate SHA-256"), root_fingerprint, "mono"),
            ],
        },
    ]
    qr = segno.make(document.verify_url, error="m")
    policy_name, version = _policy_name_shown(payload), lookup(payload, "policy", "version")
    return {
        "language": translation.get_language(),
        "receipt_number": document.receipt_number,
        # The masthead only repeats a recorded company; the table says when it was not recorded.
        "company": company if isinstance(company := lookup(payload, "company"), str) else "",
        "summary": _summary(payload),
        "policy_label": _("%(policy)s, version %(version)s")
        % {"policy": shown(policy_name), "version": shown(version)},
        "sections": sections,
        "not_recorded": NOT_RECORDED,
        "payload_sha256": document.payload_sha256,
        "policy_filename": _policy_filename(version),
        "text_sha256_rule": TEXT_SHA256_RULE,
        "policy_lang": language_tag("text", "language"),
        "evidence_filename": EVIDENCE_FILENAME,
        "verify_url": document.verify_url,
        # Public, so that a signer can check who sealed the receipt without asking anyone.
        "sealing_root_url": f"{settings.PORTAL_BASE_URL}{reverse('acknowledgements:sealing_root')}",
        "sealing_root_fingerprint": root_fingerprint,
        # segno draws only the modules, no text from the URL: safe to insert unescaped.
        "qr_svg": qr.svg_inline(scale=3, border=0, dark="#111", omitsize=False),
        "policy_html": document.policy_html,
        "page_footer": _css_content(
            _("Receipt %(number)s · page %(page)s of %(pages)s"),
            number="string(receipt-number)",
            page="counter(page)",
            pages="counter(pages)",
        ),
        "fonts": {role: (FONTS_DIR / name).as_uri() for role, name in FONT_FILES.items()},
    }


def certificate_fingerprint(pem: bytes) -> str:
    """A certificate's SHA-256 as `openssl x509 -fingerprint -sha256` prints it (AB:CD:...).

    For a file of several certificates, the first one's.
    """
    certificate = x509.load_pem_x509_certificate(pem)
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _summary(payload: dict[str, Any]) -> str:
    """Who signed what, when: in the person's time zone (else the portal's) and in UTC."""
    name = lookup(payload, "person", "name")
    policy = _policy_name_shown(payload)
    version = lookup(payload, "policy", "version")
    signed_at = _aware_time(lookup(payload, "signed_at"))
    if not (
        isinstance(name, str)
        and name
        and isinstance(policy, str)
        and policy
        and isinstance(version, str | int)
        and not isinstance(version, bool)
        and str(version)
        and signed_at is not None
    ):
        return _(
            "Not every detail of this signature was recorded: the technical evidence below "
            "shows what was."
        )
    summary = _("%(name)s signed %(policy)s, version %(version)s, on %(when)s.") % {
        "name": name,
        "policy": policy,
        "version": version,
        "when": _when(signed_at, lookup(payload, "browser_time_zone")),
    }
    counts_until = _aware_time(lookup(payload, "renewal", "counts_until"))
    if counts_until is None:
        return summary
    return " ".join(
        [
            summary,
            _("The policy is re-acknowledged periodically: this signature counts until %(when)s.")
            % {"when": _when(counts_until, lookup(payload, "browser_time_zone"))},
        ]
    )


def _policy_name_shown(payload: dict[str, Any]) -> Any:
    """The policy's name as the person saw it above the text: in the language they read, if the
    translation gave one. Evidence recorded before names were translated holds only the English
    name, which is what the person saw then."""
    title = lookup(payload, "text", "title")
    return title if isinstance(title, str) and title else lookup(payload, "policy", "name")


# Zones that are UTC itself: a time in one is printed once, as UTC.
_UTC_ZONES = frozenset(
    {"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu"}
)


def _when(moment: datetime, recorded_zone: Any) -> str:
    """A moment for a reader: the date and time in their zone, with UTC beside it."""
    zone_name = (browser_zone(recorded_zone) if isinstance(recorded_zone, str) else None) or (
        settings.TIME_ZONE
    )
    local = moment.astimezone(ZoneInfo(zone_name))
    in_utc = moment.astimezone(UTC)
    if zone_name in _UTC_ZONES:
        return _("%(date)s at %(time)s UTC") % {
            "date": _day(in_utc),
            "time": f"{in_utc:%H:%M:%S}",
        }
    values = {
        "date": _day(local),
        "time": f"{local:%H:%M:%S}",
        "zone": zone_name,
        "offset": _utc_offset(local),
        "utc_date": _day(in_utc),
        "utc_time": f"{in_utc:%H:%M:%S}",
    }
    if local.date() == in_utc.date():
        return _("%(date)s at %(time)s (%(zone)s, %(offset)s), %(utc_time)s UTC") % values
    return (
        _("%(date)s at %(time)s (%(zone)s, %(offset)s), %(utc_date)s at %(utc_time)s UTC") % values
    )


def _day(moment: datetime) -> str:
    """4 December 2026, 1er décembre 2026: kept on one line."""
    return written_date(moment, "j F Y").replace(" ", "\N{NO-BREAK SPACE}")


def _utc_offset(moment: datetime) -> str:
    """UTC+01:00, UTC-03:30, UTC+00:00."""
    minutes = int((moment.utcoffset() or timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _aware_time(value: Any) -> datetime | None:
    """A recorded ISO 8601 time that names its zone, else None (shown exactly as recorded)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return None
        moment.astimezone(UTC)  # a moment at the edge of year 1 or 9999 has no UTC time
    except (ValueError, OverflowError):
        return None
    return moment


def _display_time(value: Any) -> str:
    """An aware ISO 8601 time printed in UTC to the second (evidence.json keeps it exactly);
    anything else printed exactly as recorded."""
    moment = _aware_time(value)
    if moment is None:
        # A time without a zone is printed as recorded: labelling it UTC would invent one.
        return shown(value)
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _css_content(template: str, **functions: str) -> SafeString:
    """A CSS `content` value: the translated text as escaped strings, its placeholders as CSS
    functions (string(), counter()), so that no translation can break out of the style sheet."""
    parts = []
    for index, piece in enumerate(_PLACEHOLDER.split(template)):
        if index % 2:
            parts.append(functions[piece])
        elif piece:
            parts.append('"' + "".join(f"\\{ord(char):06x}" for char in piece) + '"')
    return mark_safe(" ".join(parts))  # noqa: S308 - every character escaped above


def _policy_filename(version: Any) -> str:
    if isinstance(version, str | int) and not isinstance(version, bool) and str(version):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", str(version)).strip(".-")
        if safe:
            return f"policy-{safe}.md"
    return "policy.md"
