"""The audit package: a ZIP an auditor checks without the portal (the signatures, every sealed
receipt, the ledger up to the moment, the log's signed checkpoints and consistency proofs, a
verifier script, and a README saying how)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.core.exceptions import ObjectDoesNotExist
from django.template.loader import render_to_string
from django.utils import timezone

from acknowledgements.evidence import chain_check, ledger, transparency
from acknowledgements.models import LedgerCheckpoint, LedgerEntry, Policy, Receipt
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

logger = logging.getLogger(__name__)

# --- The audit package ---------------------------------------------------------------------------

README_TEMPLATE = "acknowledgements/reports/package_readme.txt"
CHECKPOINT_BLOCK = 1_000  # checkpoints read at a time: a log may hold one per few entries
# README.txt step 3 (a test runs it as printed): each checkpoint's Ed25519 signature, by openssl.
# The signed text is the note up to its blank line; the signature line's value is base64 of the
# 4-byte key id and the signature; the verifier key's third field is base64 of 0x01 and the
# 32-byte public key, which after MCowBQYDK2VwAyEA (base64 of 302a300506032b6570032100, the
# DER prefix of an Ed25519 SubjectPublicKeyInfo) is a public key openssl reads.
OPENSSL_RECIPE = """\
      cut -d+ -f3- ledger-key.txt | base64 -d | tail -c 32 > key.raw
      { printf MCowBQYDK2VwAyEA | base64 -d; cat key.raw; } > key.der
      openssl pkey -pubin -inform DER -in key.der -out key.pem
      for note in checkpoints/*.txt; do
        sed '/^$/,$d' "$note" > note.txt
        signature=$(grep "^\u2014 $(cut -d+ -f1 ledger-key.txt) " "$note" | cut -d' ' -f3)
        echo "$signature" | base64 -d | tail -c +5 > note.sig
        printf '%s: ' "$note"
        openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in note.txt -sigfile note.sig
      done
"""
# The bundled verifier: standard library only and commented, so that an auditor can read all of
# it before running it.
VERIFY_SCRIPT = r'''"""Check this audit package's ledger without the portal (Python 3, standard library only).

Run in the package's folder: python3 verify_ledger.py [ledger.jsonl]. It checks, in order:
1. the chain: each line's payload hash, its link to the line before and its row hash, and that
   its sequence, kind and recorded_at are the payload's (only the payload is hashed);
2. the checkpoints' Ed25519 signatures against ledger-key.txt, with openssl when installed;
3. the Merkle root (RFC 9162) of the first N row hashes against each checkpoints/N.txt;
4. each line of consistency-proofs.jsonl (RFC 9162 section 2.1.4.2), which shows that the
   checkpoints, and the ledger itself, are the beginning of the latest checkpoint's tree.
At the first failure it says where, and exits with status 1.
"""

import base64
import glob
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# README.txt step 3, printed when openssl is not installed.
OPENSSL_RECIPE = """@OPENSSL_RECIPE@"""


def fail(message):
    sys.exit(f"FAILED at {message}")


def sha(data):
    return hashlib.sha256(data).digest()


def text_sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def node(left, right):
    return sha(b"\x01" + left + right)


def consistent(first, second, first_root, second_root, path):
    """RFC 9162 section 2.1.4.2, step by step: does the tree of `second` extend `first`'s?"""
    if not 0 < first < second or not path:
        return False
    if first & (first - 1) == 0:  # first is a power of two: its root opens the path
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# A checkpoint is a signed note: origin, tree size, base64 root; a blank line; signature lines.
notes = {}  # file -> (size, root, body, signature lines)
for file in sorted(glob.glob("checkpoints/*.txt")):
    body, _blank, signatures = Path(file).read_text("utf-8").partition("\n\n")
    _origin, size, root = body.split("\n")
    notes[file] = (int(size), base64.b64decode(root), body + "\n", signatures.splitlines())
signed = {size: root for size, root, _body, _lines in notes.values()}
proofs = [json.loads(line) for line in Path("consistency-proofs.jsonl").read_text().splitlines()]
wanted = set(signed) | {proof["from"] for proof in proofs}  # the sizes whose root is needed

# 1. The chain. Meanwhile the Merkle tree grows leaf by leaf: `frontier` holds the root of each
# perfect subtree (one per set bit of the row count), and the root at any size follows from it.
previous, count, frontier, roots = "0" * 64, 0, [], {}
with open(sys.argv[1] if sys.argv[1:] else "ledger.jsonl", encoding="utf-8", newline="\n") as rows:
    for count, line in enumerate(rows, 1):
        row = json.loads(line)
        where = f"line {count} (sequence {row['sequence']})"
        payload_sha = text_sha(row["payload"])
        expected = (count, payload_sha, previous, text_sha(f"{count}\n{previous}\n{payload_sha}"))
        stored = (row["sequence"], row["payload_sha256"], row["previous_hash"], row["row_hash"])
        if stored != expected:
            fail(f"{where}: the row does not match its hashes")
        payload = json.loads(row["payload"])
        for field, key in (("kind", "event"), ("recorded_at", "recorded_at")):
            if row[field] != payload.get(key):
                fail(
                    f"{where}: its {field} {row[field]!r} is not the payload's {key} "
                    f"{payload.get(key)!r}"
                )
        previous = row["row_hash"]
        level, value = 0, sha(b"\x00" + bytes.fromhex(previous))  # the leaf: the raw row hash
        while frontier and frontier[-1][0] == level:
            level, value = level + 1, node(frontier.pop()[1], value)
        frontier.append((level, value))
        if count in wanted:
            for _level, left in reversed(frontier[:-1]):
                value = node(left, value)
            roots[count] = value
print(f"OK: {count} rows verify; the head row hash is {previous}")

# 2. Signatures. The standard library has no Ed25519: openssl checks them, as in OPENSSL_RECIPE.
name, key_id, key = Path("ledger-key.txt").read_text().strip().split("+", 2)
der = bytes.fromhex("302a300506032b6570032100") + base64.b64decode(key)[1:]  # the key's SPKI
openssl = shutil.which("openssl")
with tempfile.TemporaryDirectory() as scratch:
    pem, text, sig = (Path(scratch, part) for part in ("key.pem", "note.txt", "note.sig"))
    pem.write_text(
        f"-----BEGIN PUBLIC KEY-----\n{base64.b64encode(der).decode()}\n-----END PUBLIC KEY-----\n"
    )
    for file, (_size, _root, body, lines) in notes.items():
        mine = [line.split(" ")[2] for line in lines if line.startswith(f"\u2014 {name} ")]
        signature = base64.b64decode(mine[0]) if mine else b""
        if not body.startswith(name + "\n") or signature[:4].hex() != key_id:
            fail(f"{file}: it is not signed by the key in ledger-key.txt")
        text.write_bytes(body.encode("utf-8"))
        sig.write_bytes(signature[4:])  # without the key id
        verify = [openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pem, "-rawin", "-in", text]
        if openssl and subprocess.run([*verify, "-sigfile", sig], capture_output=True).returncode:
            fail(f"{file}: its signature does not verify")
if openssl:
    print(f"OK: the signatures of {len(notes)} checkpoints verify (checked with openssl)")
else:
    print(
        f"NOT CHECKED: the checkpoints' signatures (openssl is not installed). With openssl, "
        f"in this folder:\n{OPENSSL_RECIPE}"
    )

# 3. The roots signed in the checkpoints within the ledger (only the latest may reach further).
for file, (size, root, _body, _lines) in notes.items():
    if size > count and file != "checkpoints/latest.txt":
        fail(f"{file}: ledger shorter than checkpoint ({count} rows, not {size}): entries removed")
    if size <= count and roots[size] != root:
        fail(f"{file}: the first {size} rows do not hash to its root: entries rewritten")

# 4. Consistency proofs, from a checkpoint (or the ledger itself) to a later checkpoint.
for number, proof in enumerate(proofs, 1):
    first, second = proof["from"], proof["to"]
    where = f"line {number} of consistency-proofs.jsonl (from {first} to {second})"
    if first not in signed and first > count:
        fail(f"{where}: ledger shorter than the proof ({count} rows): entries removed")
    hashes = [base64.b64decode(value) for value in proof["hashes"]]
    first_root = signed.get(first, roots.get(first))
    if second not in signed or not consistent(first, second, first_root, signed[second], hashes):
        fail(f"{where}: the proof does not verify: the later tree does not extend the earlier")
if count and not {count} & (set(signed) | {proof["from"] for proof in proofs}):
    fail(f"line {count}: no checkpoint or consistency proof covers the ledger's last rows")
print(f"OK: {len(notes)} checkpoint files and {len(proofs)} consistency proofs match the ledger")
'''.replace("@OPENSSL_RECIPE@", OPENSSL_RECIPE)


@dataclass(frozen=True)
class PackageSummary:
    signatures: int
    receipts: int
    ledger_rows: int
    head_sequence: int | None
    head_hash: str
    verified: bool  # the chain up to the head and the transparency log both verified


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
    try:
        # As the link task does after linking: the latest checkpoint then covers the head.
        transparency.checkpoint()
    except (RuntimeError, ObjectDoesNotExist):
        # A damaged log cannot be extended; verification.txt says what is wrong with it.
        logger.exception("No checkpoint could be signed for the audit package.")
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
        latest = _write_log(zf, head[0] if head else 0)
        chain = chain_check.verify_chain(up_to=head[0]) if head else None
        log_problems = transparency.verify_log() + latest.problems
        verified = (chain is None or chain.intact) and not log_problems
        write_text("verification.txt", [_verification_text(chain, log_problems, moment)])
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
                "verified": verified,
                "checkpoints": latest,
                "hashing_rule": transparency.HASHING_RULE,
                "openssl_recipe": OPENSSL_RECIPE,
                "example": _examples(signatures),
            },
        )
        zf.writestr(_zip_info("README.txt"), readme)
    return PackageSummary(
        signatures=signature_count,
        receipts=receipt_count,
        ledger_rows=ledger_rows,
        head_sequence=head[0] if head else None,
        head_hash=head[1] if head else ledger.GENESIS_HASH,
        verified=verified,
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


def _verification_text(
    chain: chain_check.ChainVerification | None, log_problems: list[str], moment: dt.datetime
) -> str:
    """The verdict on the first line (NOT intact when either check failed), then the details."""
    checked = ledger.utc_iso(timezone.now())
    if chain is None:
        verdict = f"No ledger row was recorded by {ledger.utc_iso(moment)}: no chain to verify."
    else:
        verdict = chain.summary()
    if log_problems and (chain is None or chain.intact):
        verdict = f"Ledger NOT intact: its transparency log does not verify. {verdict}"
    text = f"{verdict}\n\n"
    if chain is not None:
        text += (
            f"Checked by the portal at {checked} with chain_check.verify_chain: every row from "
            f"sequence 1 to {chain.rows_checked} was read from the database, its payload hashed, "
            f"its link to the previous row and its row hash recomputed, and its columns compared "
            f"with the payload.\n\n"
        )
    text += (
        f"Checked with transparency.verify_log, over the whole log as it stood at {checked} "
        f"(also past this package's head): the Merkle tree recomputed from every row hash, "
        f"compared with each stored tree node and with the root and signature of every signed "
        f"checkpoint.\n"
    )
    if log_problems:
        text += "".join(f"- NOT intact: {problem}.\n" for problem in log_problems)
    else:
        text += "The transparency log is intact.\n"
    return (
        text + "\nRun verify_ledger.py (see README.txt) to check the package without the portal.\n"
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


@dataclass(frozen=True)
class LogFiles:
    """What the package holds of the transparency log, for the README."""

    within_head: int  # checkpoints/<size>.txt files
    latest_size: int | None
    problems: list[str]  # proofs that could not be computed


def _write_log(zf, head_size: int) -> LogFiles:
    """ledger-key.txt, each checkpoint within the head (with its RFC 3161 token, if it has one)
    and the latest as stored, and consistency-proofs.jsonl between them: streamed, whatever the
    number of checkpoints."""
    zf.writestr(_zip_info("ledger-key.txt"), transparency.log_key().verifier + "\n")
    latest = transparency.latest()
    within = LedgerCheckpoint.objects.filter(tree_size__lte=head_size).order_by("tree_size")
    count = 0
    rows = within.values_list("tree_size", "note", "timestamp_token")
    for size, note, token in rows.iterator(chunk_size=CHECKPOINT_BLOCK):
        zf.writestr(_zip_info(f"checkpoints/{size}.txt"), note)
        if token:
            zf.writestr(_zip_info(f"checkpoints/{size}.tsr"), bytes(token))
        count += 1
    if latest is not None:
        zf.writestr(_zip_info("checkpoints/latest.txt"), latest.note)
    sizes = within.values_list("tree_size", flat=True).iterator(chunk_size=CHECKPOINT_BLOCK)
    problems = []
    with zf.open(_zip_info("consistency-proofs.jsonl"), "w", force_zip64=True) as out:
        for first, second in _proof_pairs(sizes, head_size, latest.tree_size if latest else 0):
            try:
                hashes = transparency.consistency_proof(first, second)
            except (RuntimeError, ValueError) as error:  # rows or tree nodes missing
                problems.append(f"no consistency proof from {first} to {second}: {error}")
                continue
            line = {"from": first, "to": second, "hashes": [transparency.b64(h) for h in hashes]}
            out.write(json.dumps(line).encode() + b"\n")
    return LogFiles(
        within_head=count, latest_size=latest.tree_size if latest else None, problems=problems
    )


def _proof_pairs(sizes: Iterable[int], head: int, latest: int) -> Iterator[tuple[int, int]]:
    """Each checkpoint within the head to the next, the last of them to the latest, and the
    head itself to the latest: with it the rows after the last checkpoint are anchored too."""
    previous = None
    for size in sizes:
        if previous is not None:
            yield previous, size
        previous = size
    if previous is not None and previous < latest:
        yield previous, latest
    if previous != head and 0 < head < latest:
        yield head, latest


def _examples(signatures) -> dict[str, object]:
    """A receipt number and a ledger sequence with client details, for the README's commands
    to name (so each can be run as printed); None when the package has none."""
    receipt = (
        Receipt.objects.filter(acknowledgement__in=signatures.order_by().values("pk"))
        .order_by("acknowledgement__ledger_entry__sequence")
        .values_list("acknowledgement__receipt_number", flat=True)
        .first()
    )
    client = (
        signatures.filter(
            ledger_entry__client_details__ip__isnull=False,
            ledger_entry__client_details__user_agent__isnull=False,
        )
        .order_by("ledger_entry__sequence")
        .values_list("ledger_entry__sequence", flat=True)
        .first()
    )
    return {"receipt": receipt, "sequence": client}
