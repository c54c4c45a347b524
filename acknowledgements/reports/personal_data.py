"""Everything the portal holds about one person, as a ZIP they can download (read-only)."""

from __future__ import annotations

import json
import tempfile
import zipfile

from django.utils import timezone

from acknowledgements.evidence import ledger
from acknowledgements.models import (
    Acknowledgement,
    ClientDetails,
    ConcernReport,
    LedgerEntry,
    Notification,
    User,
)

README = """Your data from the {company} policy portal, exported {moment}.

profile.json        your account: email, name, audiences, language, roles
evidence.jsonl      every ledger entry about you, one per line: the payload exactly as
                    recorded (UTF-8 JSON) with its SHA-256 and chain position, and
                    client_details: the IP address and user agent kept beside it with the
                    salts that open the payload's client.ip_sha256 and
                    client.user_agent_sha256 (SHA-256 of the salt followed by the value);
                    null once they were removed after the retention period (a "redacted"
                    entry records when)
notifications.json  the emails the portal queued or sent you
concerns.json       concerns you reported
receipts/           the sealed receipt of each of your signatures (PDF)
"""


def _dump(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _client_details(details: ClientDetails | None) -> dict | None:
    if details is None:
        return None
    return {
        "ip": details.ip,
        "ip_salt": details.ip_salt,
        "user_agent": details.user_agent,
        "user_agent_salt": details.user_agent_salt,
    }


def build_archive(person: User, company: str) -> tempfile.SpooledTemporaryFile:
    """A ZIP in a temporary file, positioned at its start."""
    moment = timezone.now()
    archive = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - the response closes it
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("README.txt", README.format(company=company, moment=ledger.utc_iso(moment)))
        bundle.writestr(
            "profile.json",
            _dump(
                {
                    "id": person.pk,
                    "email": person.email,
                    "full_name": person.full_name,
                    "audiences": sorted(a.name for a in person.audiences.all()),
                    "roles": sorted(g.name for g in person.groups.all()),
                    "preferred_language": person.preferred_language,
                    "date_joined": ledger.utc_iso(person.date_joined),
                    "last_login": ledger.utc_iso(person.last_login),
                    "gate_exemption": person.gate_exemption or None,
                }
            ),
        )
        lines = []
        entries = LedgerEntry.objects.filter(person=person).select_related("client_details")
        for entry in entries.order_by("id"):
            details = getattr(entry, "client_details", None)
            lines.append(
                _dump(
                    {
                        "sequence": entry.sequence,
                        "kind": entry.kind,
                        "payload": bytes(entry.payload).decode("utf-8"),
                        "payload_sha256": entry.payload_sha256,
                        "previous_hash": entry.previous_hash,
                        "row_hash": entry.row_hash,
                        "client_details": _client_details(details),
                    }
                ).replace("\n", "")
            )
        bundle.writestr("evidence.jsonl", "\n".join(lines) + ("\n" if lines else ""))
        bundle.writestr(
            "notifications.json",
            _dump(
                list(
                    Notification.objects.filter(person=person)
                    .order_by("pk")
                    .values(
                        "kind",
                        "status",
                        "created_at",
                        "sent_at",
                        "revision__policy__name",
                        "revision__version",
                    )
                )
            ),
        )
        bundle.writestr(
            "concerns.json",
            _dump(
                list(
                    ConcernReport.objects.filter(reporter=person).values(
                        "category", "description", "status", "anonymous", "created_at"
                    )
                )
            ),
        )
        for acknowledgement in Acknowledgement.objects.filter(
            person=person, receipt__isnull=False
        ).select_related("receipt"):
            with acknowledgement.receipt.pdf.open("rb") as pdf:
                bundle.writestr(
                    f"receipts/{acknowledgement.receipt_number}.pdf",
                    pdf.read(),
                    compress_type=zipfile.ZIP_STORED,
                )
    archive.seek(0)
    return archive
