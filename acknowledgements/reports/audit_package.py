"""The audit package: a ZIP an auditor checks without the portal (the signatures, every sealed
receipt, the ledger up to the moment with a verifier script, and a README saying how)."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.template.loader import render_to_string
from django.utils import timezone

from acknowledgements.evidence import ledger
from acknowledgements.models import LedgerEntry, Policy, Receipt
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.reports import lists
from acknowledgements.reports.documents import Progress, RowCounter
from acknowledgements.reports.exports import (
    BLOCK_ROWS,
    CLIENT_DETAIL_FIELDS,
    LEDGER_BLOCK_ROWS,
    csv_blocks,
    people_csv,
)
from acknowledgements.reports.lists import PeopleFilter
from acknowledgements.reports.signatures_csv import acknowledgements_csv
from acknowledgements.standings.coverage import Timeline

# --- The audit package ---------------------------------------------------------------------------

README_TEMPLATE = "acknowledgements/reports/package_readme.txt"
# Kept to ten lines of the standard library so an auditor can read all of it before running it.
VERIFY_SCRIPT = r"""import hashlib, json, sys
sha = lambda text: hashlib.sha256(text.encode("utf-8")).hexdigest()
previous, count = "0" * 64, 0
for count, line in enumerate(open(sys.argv[1] if sys.argv[1:] else "ledger.jsonl", encoding="utf-8", newline="\n"), 1):
    row = json.loads(line)
    expected = (count, sha(row["payload"]), previous, sha(f"{row['sequence']}\n{previous}\n{sha(row['payload'])}"))
    if (row["sequence"], row["payload_sha256"], row["previous_hash"], row["row_hash"]) != expected:
        sys.exit(f"FAILED at line {count} (sequence {row['sequence']}): the row does not match its hashes")
    previous = row["row_hash"]
print(f"OK: {count} rows verify; the head row hash is {previous}")
"""


@dataclass(frozen=True)
class PackageSummary:
    signatures: int
    receipts: int
    ledger_rows: int
    head_sequence: int | None
    head_hash: str


def _zip_info(name: str, *, stored: bool = False):
    import zipfile

    info = zipfile.ZipInfo(name, date_time=timezone.now().astimezone(dt.UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def ledger_head(moment: dt.datetime) -> tuple[int, str, dt.datetime] | None:
    """The last ledger row recorded by `moment`: the chain is exported up to and including it.

    Entries are linked moments after they are recorded, so the highest sequence among those
    recorded by `moment` is taken after linking any still waiting.
    """
    ledger.link_pending()
    head = (
        LedgerEntry.objects.filter(recorded_at__lte=moment, sequence__isnull=False)
        .order_by("-sequence")
        .values_list("sequence", "row_hash", "recorded_at")
        .first()
    )
    if head is None:
        return None
    sequence, row_hash, recorded_at = head
    if sequence is None or row_hash is None:
        # Linking sets sequence and row_hash together; the database allows no other change.
        raise RuntimeError("The ledger's head has a sequence but no row hash.")
    return sequence, row_hash, recorded_at


def write_package(
    target: IO[bytes],
    *,
    policy: Policy,
    timeline: Timeline,
    moment: dt.datetime,
    filters: PeopleFilter | None = None,
    exported_by: str,
    progress: Progress | None = None,
) -> PackageSummary:
    """Write the audit ZIP: signatures, their sealed receipts as stored, the ledger up to the
    moment, its verification, the sealing certificates and a README to check it all offline.

    `progress` is told the rows written so far (signatures, receipts and ledger rows; see
    `package_rows`)."""
    import zipfile

    filters = filters or PeopleFilter()
    signatures = lists.signatures(policy, timeline, moment, filters)
    head = ledger_head(moment)
    counter = RowCounter(progress)
    identity = receipt_authority.load_sealing_identity()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:

        def write_text(name: str, blocks: Iterable[str | bytes]) -> None:
            with zf.open(_zip_info(name), "w", force_zip64=True) as out:
                for block in blocks:
                    out.write(block if isinstance(block, bytes) else block.encode("utf-8"))

        signature_count = signatures.count()
        write_text("acknowledgements.csv", acknowledgements_csv(signatures))
        counter.add(signature_count)
        write_text("people.csv", people_csv(lists.people(timeline, moment, filters)))
        receipt_count = _write_receipts(zf, signatures, counter)
        write_text("client-details.csv", client_details_csv(signatures))
        write_text("client-details.jsonl", client_details_jsonl(signatures))
        ledger_rows = _write_ledger(zf, head[0] if head else 0, counter)
        verification = ledger.verify_chain(up_to=head[0]) if head else None
        write_text("verification.txt", [_verification_text(verification, moment)])
        write_text("chain-head.txt", [_head_text(head, moment)])
        zf.writestr(_zip_info("sealing-root.pem"), identity.root_pem)
        zf.writestr(_zip_info("sealing-certificate.pem"), identity.certificate_pem)
        zf.writestr(_zip_info("verify_ledger.py"), VERIFY_SCRIPT)
        readme = render_to_string(
            README_TEMPLATE,
            {
                "policy": policy,
                "moment": moment,
                "moment_utc": ledger.utc_iso(moment),
                "generated_at": ledger.utc_iso(timezone.now()),
                "exported_by": exported_by,
                "filters": filters.as_record(),
                "signatures": signature_count,
                "receipts": receipt_count,
                "ledger_rows": ledger_rows,
                "head": head,
                "fingerprint": identity.fingerprint,
                "verify_script": VERIFY_SCRIPT,
            },
        )
        zf.writestr(_zip_info("README.txt"), readme)
    return PackageSummary(
        signatures=signature_count,
        receipts=receipt_count,
        ledger_rows=ledger_rows,
        head_sequence=head[0] if head else None,
        head_hash=head[1] if head else ledger.GENESIS_HASH,
    )


CLIENT_DETAILS_COLUMNS = [
    "Ledger sequence",
    "Receipt number",
    "IP address",
    "IP address salt",
    "User agent",
    "User agent salt",
]


def _client_details(signatures) -> Iterator[tuple]:
    """The raw IP address and user agent still kept for each signature, with the salts that
    open the payload's commitments; signatures whose details were removed have no row."""
    return (
        signatures.filter(ledger_entry__client_details__isnull=False)
        .order_by("ledger_entry__sequence")
        .values_list(
            "ledger_entry__sequence",
            "receipt_number",
            *(f"ledger_entry__client_details__{name}" for name in CLIENT_DETAIL_FIELDS),
        )
        .iterator(chunk_size=BLOCK_ROWS)
    )


def client_details_csv(signatures) -> Iterator[str]:
    """For a spreadsheet: a cell that would start a formula starts with ' instead."""
    return csv_blocks(CLIENT_DETAILS_COLUMNS, _client_details(signatures))


def client_details_jsonl(signatures) -> Iterator[str]:
    """The same rows as JSON, one a line, with every value exactly as kept: what the
    commitments are checked against (a user agent may itself begin with ' or =)."""
    keys = ["sequence", "receipt_number", *CLIENT_DETAIL_FIELDS]
    for row in _client_details(signatures):
        yield json.dumps(dict(zip(keys, row, strict=True)), ensure_ascii=False) + "\n"


def package_rows(
    *, policy: Policy, timeline: Timeline, moment: dt.datetime, filters: PeopleFilter
) -> int:
    """How many rows `write_package` reports when it is done: signatures, receipts, ledger rows."""
    signatures = lists.signatures(policy, timeline, moment, filters)
    head = ledger_head(moment)
    receipts_stored = Receipt.objects.filter(acknowledgement__in=signatures.order_by().values("pk"))
    return signatures.count() + receipts_stored.count() + (head[0] if head else 0)


def _write_receipts(zf, signatures, counter: RowCounter) -> int:
    """Copy each stored sealed receipt byte for byte (never re-rendered), plus SHA256SUMS."""
    storage = Receipt._meta.get_field("pdf").storage
    rows = (
        Receipt.objects.filter(acknowledgement__in=signatures.order_by().values("pk"))
        .order_by("acknowledgement__ledger_entry__sequence")
        .values_list("acknowledgement__receipt_number", "pdf", "sha256")
        .iterator(chunk_size=BLOCK_ROWS)
    )
    sums, count = io.StringIO(), 0
    for number, name, sha256 in rows:
        # PDFs are compressed already: stored, not deflated.
        with (
            storage.open(name, "rb") as source,
            zf.open(_zip_info(f"receipts/{number}.pdf", stored=True), "w") as out,
        ):
            shutil.copyfileobj(source, out, length=1024 * 1024)
        sums.write(f"{sha256}  {number}.pdf\n")
        count += 1
        counter.add()
    zf.writestr(_zip_info("receipts/SHA256SUMS"), sums.getvalue())
    return count


def _write_ledger(zf, up_to: int, counter: RowCounter) -> int:
    """ledger.jsonl (every column, the payload as its exact text) and ledger-payloads.txt (the
    payload bytes alone, one per line, for sha256sum); both in sequence order."""
    rows = (
        LedgerEntry.objects.filter(sequence__lte=up_to)
        .order_by("sequence")
        .values_list(
            "sequence",
            "kind",
            "recorded_at",
            "payload",
            "payload_sha256",
            "previous_hash",
            "row_hash",
        )
        .iterator(chunk_size=LEDGER_BLOCK_ROWS)
    )
    count = 0
    # Canonical payloads never contain a raw line break (JSON escapes them), so one per line.
    with tempfile.TemporaryFile() as payloads:
        with zf.open(_zip_info("ledger.jsonl"), "w", force_zip64=True) as out:
            for sequence, kind, recorded_at, payload, payload_sha, previous, row_hash in rows:
                body = bytes(payload)
                line = {
                    "sequence": sequence,
                    "kind": kind,
                    "recorded_at": ledger.utc_iso(recorded_at),
                    "payload_sha256": payload_sha,
                    "previous_hash": previous,
                    "row_hash": row_hash,
                    "payload": body.decode("utf-8"),
                }
                out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode())
                out.write(b"\n")
                payloads.write(body + b"\n")
                count += 1
                counter.add()
        payloads.seek(0)
        with zf.open(_zip_info("ledger-payloads.txt"), "w", force_zip64=True) as out:
            shutil.copyfileobj(payloads, out, length=1024 * 1024)
    return count


def _verification_text(result: ledger.ChainVerification | None, moment: dt.datetime) -> str:
    checked = ledger.utc_iso(timezone.now())
    if result is None:
        return f"No ledger row was recorded by {ledger.utc_iso(moment)}: nothing to verify.\n"
    return (
        f"{result.summary()}\n\n"
        f"Checked by the portal at {checked} with ledger.verify_chain: every row from sequence 1 "
        f"to {result.rows_checked} was read from the database, its payload hashed, its link to "
        f"the previous row and its row hash recomputed, and its columns compared with the "
        f"payload.\nRun verify_ledger.py (see README.txt) to check the same without the portal.\n"
    )


def _head_text(head: tuple[int, str, dt.datetime] | None, moment: dt.datetime) -> str:
    if head is None:
        return f"as_of: {ledger.utc_iso(moment)}\nsequence: 0\nrow_hash: {ledger.GENESIS_HASH}\n"
    sequence, row_hash, recorded_at = head
    return (
        f"as_of: {ledger.utc_iso(moment)}\n"
        f"sequence: {sequence}\n"
        f"row_hash: {row_hash}\n"
        f"recorded_at: {ledger.utc_iso(recorded_at)}\n"
    )
