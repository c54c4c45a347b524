"""The ledger as a transparency log: RFC 9162 hashing and proofs, signed checkpoints, the stored
tree, the public endpoints, witnesses' kept checkpoints, and every way of tampering they catch."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.db import connection, transaction

from acknowledgements.evidence import chain_check, ledger, merkle, protection, transparency
from acknowledgements.models import LedgerCheckpoint, LedgerEntry, LedgerTreeNode
from tests.conftest import set_evidence_triggers

# --- RFC 9162 §2.1, transcribed literally as the reference the module is held against ---------


def reference_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_mth(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_mth(leaves[:k])]


def reference_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [reference_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*reference_subproof(m, leaves[:k], whole), reference_mth(leaves[k:])]
    return [*reference_subproof(m - k, leaves[k:], False), reference_mth(leaves[:k])]


def some_leaves(count: int, seed: int = 0) -> list[bytes]:
    return [hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(count)]


def test_roots_and_proofs_equal_the_rfc_for_every_tree_up_to_64_leaves():
    leaves = some_leaves(64)
    tree = merkle.LeafList(leaves)
    for size in range(1, 65):
        root = reference_mth(leaves[:size])
        assert merkle.root_hash(tree, size) == root
        for index in range(size):
            path = merkle.inclusion_path(tree, index, size)
            assert path == reference_path(index, leaves[:size])
            assert merkle.verify_inclusion(
                leaf=leaves[index], index=index, size=size, path=path, root=root
            )
        for first in range(1, size + 1):
            proof = merkle.consistency_path(tree, first, size)
            assert proof == reference_subproof(first, leaves[:size], True)
            assert merkle.verify_consistency(
                first=first,
                second=size,
                first_root=reference_mth(leaves[:first]),
                second_root=root,
                path=proof,
            )


def test_random_larger_trees_agree_with_the_rfc():
    chance = random.Random(9162)
    leaves = some_leaves(1_500, seed=1)
    tree = merkle.LeafList(leaves)
    for _ in range(40):
        size = chance.randint(65, len(leaves))
        index, first = chance.randrange(size), chance.randint(1, size)
        root = reference_mth(leaves[:size])
        path = merkle.inclusion_path(tree, index, size)
        assert path == reference_path(index, leaves[:size])
        assert merkle.verify_inclusion(
            leaf=leaves[index], index=index, size=size, path=path, root=root
        )
        proof = merkle.consistency_path(tree, first, size)
        assert proof == reference_subproof(first, leaves[:size], True)
        assert merkle.verify_consistency(
            first=first,
            second=size,
            first_root=reference_mth(leaves[:first]),
            second_root=root,
            path=proof,
        )


def test_an_independent_implementation_computes_the_same_roots_and_paths():
    from pymerkle import InmemoryTree  # RFC 9162 hashing: 0x00 leaves, 0x01 nodes

    leaves = some_leaves(70, seed=2)
    other = InmemoryTree(algorithm="sha256")
    for leaf in leaves:
        other.append_entry(leaf)
    tree = merkle.LeafList(leaves)
    for size in range(1, 71):
        assert merkle.root_hash(tree, size) == other.get_root(size)
        for index in range(0, size, 7):
            # pymerkle counts leaves from 1; its path starts with the leaf's own hash.
            theirs = other.prove_inclusion(index + 1, size).serialize()["path"]
            ours = [value.hex() for value in merkle.inclusion_path(tree, index, size)]
            assert [merkle.leaf_hash(leaves[index]).hex(), *ours] == theirs


@pytest.mark.parametrize(
    "change",
    ["another leaf", "another index", "another size", "a swapped hash", "a dropped hash"],
)
def test_an_altered_inclusion_proof_fails(change):
    leaves = some_leaves(37, seed=3)
    tree = merkle.LeafList(leaves)
    root = merkle.root_hash(tree, 37)
    claim = {
        "leaf": leaves[12],
        "index": 12,
        "size": 37,
        "path": merkle.inclusion_path(tree, 12, 37),
    }
    if change == "another leaf":
        claim["leaf"] = leaves[13]
    elif change == "another index":
        claim["index"] = 13
    elif change == "another size":
        # (the size is bound to the root by the signed checkpoint; alone, a size with the same
        # shape of path, such as 38, would pass: ReceiptProof.verifies compares them)
        claim["size"] = 13
    elif change == "a swapped hash":
        claim["path"] = merkle.inclusion_path(tree, 13, 37)  # the proof of another entry
    else:
        claim["path"] = claim["path"][:-1]
    assert not merkle.verify_inclusion(**claim, root=root)


def test_an_altered_consistency_proof_fails():
    leaves = some_leaves(40, seed=4)
    tree = merkle.LeafList(leaves)
    proof = merkle.consistency_path(tree, 13, 40)
    roots = {size: merkle.root_hash(tree, size) for size in (13, 14, 40)}
    good = {"first": 13, "second": 40, "first_root": roots[13], "second_root": roots[40]}
    assert merkle.verify_consistency(**good, path=proof)
    assert not merkle.verify_consistency(**good, path=proof[::-1])
    assert not merkle.verify_consistency(**good | {"first_root": roots[14]}, path=proof)
    rewritten = merkle.LeafList([*leaves[:5], b"\x00" * 32, *leaves[6:]])
    assert not merkle.verify_consistency(
        **good | {"second_root": merkle.root_hash(rewritten, 40)},
        path=merkle.consistency_path(rewritten, 13, 40),
    )


def test_a_growing_frontier_has_the_root_of_every_size():
    leaves = some_leaves(300, seed=5)
    frontier = merkle.Frontier()
    for size, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        if size % 37 == 0 or size == len(leaves):
            assert frontier.root() == reference_mth(leaves[:size])


# --- Signed notes --------------------------------------------------------------------------------


def a_key(name: str = "example.org/log") -> transparency.LogKey:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return transparency.LogKey(name=name, public=public, private=private)


def test_a_checkpoint_is_a_c2sp_signed_note():
    key = a_key()
    body = transparency.Checkpoint(origin=key.name, size=5, root=b"\x07" * 32).body()
    note = key.sign(body)

    text, signature_line = note.split("\n\n")
    assert text + "\n" == body == f"example.org/log\n5\n{base64.b64encode(b'\x07' * 32).decode()}\n"
    # "— <name> <base64(key id || signature)>", the key id the first 4 bytes of
    # SHA-256(name || "\n" || 0x01 || public key).
    dash, name, value = signature_line.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", key.name)
    raw = base64.b64decode(value)
    assert raw[:4] == hashlib.sha256(key.name.encode() + b"\n\x01" + key.public).digest()[:4]
    assert len(raw) == 4 + 64
    assert transparency.read_signed_checkpoint(note, [key]) == transparency.Checkpoint(
        key.name, 5, b"\x07" * 32
    )
    verifier = transparency.parse_verifier(key.verifier)
    assert (verifier.name, verifier.public) == (key.name, key.public)


def test_openssl_verifies_a_checkpoint_signature(tmp_path):
    """An auditor needs no portal code: the signature is plain Ed25519 over the note's text."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key = a_key()
    body = transparency.Checkpoint(origin=key.name, size=9, root=b"\x01" * 32).body()
    note = key.sign(body)
    (tmp_path / "body").write_text(body)
    signature = base64.b64decode(note.rsplit(" ", 1)[1])[4:]
    (tmp_path / "sig").write_bytes(signature)
    (tmp_path / "key.pem").write_bytes(
        Ed25519PrivateKey.from_private_bytes(
            key.private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "key.pem", "-rawin"]
    good = subprocess.run([*verify, "-in", "body", "-sigfile", "sig"], cwd=tmp_path, check=False)
    assert good.returncode == 0
    (tmp_path / "body").write_text(body.replace("\n9\n", "\n10\n"))
    forged = subprocess.run(
        [*verify, "-in", "body", "-sigfile", "sig"], cwd=tmp_path, capture_output=True, check=False
    )
    assert forged.returncode != 0


@pytest.mark.parametrize("forgery", ["changed size", "another key", "no signature", "garbage"])
def test_a_forged_checkpoint_is_refused(forgery):
    key, other = a_key(), a_key()
    note = key.sign(transparency.Checkpoint(key.name, 5, b"\x07" * 32).body())
    if forgery == "changed size":
        note = note.replace("\n5\n", "\n6\n", 1)
    elif forgery == "another key":
        note = a_key(key.name).sign(transparency.Checkpoint(key.name, 5, b"\x07" * 32).body())
    elif forgery == "no signature":
        note = note.split("\n\n")[0] + "\n\n"
    else:
        note = "\x00" * 30
    with pytest.raises(transparency.NoteError):
        transparency.read_signed_checkpoint(note, [key, other])


# --- The log in the database ---------------------------------------------------------------------


def append_entries(count: int) -> None:
    """Record `count` events in one transaction, linked and checkpointed as their commit does."""
    with transaction.atomic():
        for n in range(count):
            ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": n})
    ledger.link_pending()
    transparency.checkpoint()


def stored_leaves() -> list[bytes]:
    hashes = LedgerEntry.objects.order_by("sequence").values_list("row_hash", flat=True)
    return [bytes.fromhex(value) for value in hashes]


def test_checkpoints_grow_with_the_ledger_and_their_stored_tree_is_the_rfcs(db):
    sizes = []
    for batch in (1, 254, 1, 3, 300, 1, 460):  # crossing tiles of 256 in every way
        append_entries(batch)
        sizes.append(sum((1, 254, 1, 3, 300, 1, 460)[: len(sizes) + 1]))
    leaves = stored_leaves()
    checkpoints = list(LedgerCheckpoint.objects.order_by("tree_size"))
    assert [cp.tree_size for cp in checkpoints] == sizes
    key = transparency.log_key()
    for cp in checkpoints:
        signed = transparency.read_signed_checkpoint(cp.note, [key])
        assert signed.root == bytes.fromhex(cp.root_hash) == reference_mth(leaves[: cp.tree_size])
    # Every complete subtree of 256 leaves and more is stored, and nothing else.
    size = sizes[-1]
    expected = {
        (level, index)
        for level in range(transparency.TILE_LEVEL, size.bit_length())
        for index in range(size >> level)
    }
    assert set(LedgerTreeNode.objects.values_list("level", "index")) == expected
    chance = random.Random(1)
    for cp in checkpoints:
        for index in {0, cp.tree_size - 1, chance.randrange(cp.tree_size)}:
            path = transparency.inclusion_proof(index, cp.tree_size)
            assert path == reference_path(index, leaves[: cp.tree_size])
        for earlier in checkpoints:
            if earlier.tree_size <= cp.tree_size:
                proof = transparency.consistency_proof(earlier.tree_size, cp.tree_size)
                assert proof == reference_subproof(
                    earlier.tree_size, leaves[: cp.tree_size], True
                ) or earlier.tree_size in (0, cp.tree_size)
    assert transparency.verify_log() == []


def test_a_proof_costs_a_few_statements_whatever_the_size(db, django_assert_max_num_queries):
    append_entries(1_100)
    append_entries(3)
    # The latest checkpoint, the stored nodes the path needs, and the leaves of at most two
    # tiles: the leaf's own and the partial one at the end.
    for index, size, first in ((700, 1_103, 1_100), (5, 1_103, 1_100), (1_101, 1_103, 1_100)):
        with django_assert_max_num_queries(4):
            transparency.inclusion_proof(index, size)
        with django_assert_max_num_queries(4):
            transparency.consistency_proof(first, size)


def test_the_link_task_checkpoints_what_it_linked(evidence_db):
    with transaction.atomic():
        ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})
    assert LedgerCheckpoint.objects.get().tree_size == 1


def test_proofs_beyond_the_latest_checkpoint_are_refused(db):
    append_entries(3)
    with transaction.atomic():
        ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 4})
    ledger.link_pending()  # linked, not yet checkpointed
    with pytest.raises(ValueError, match="3 checkpointed leaves"):
        transparency.inclusion_proof(3, 4)


# --- Tampering the log catches (the chain alone would not) ----------------------------------------


def tamper(sql: str, params=()) -> None:
    set_evidence_triggers(False)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    set_evidence_triggers(True)


def rewrite_and_rehash(from_sequence: int) -> None:
    """What someone with the database and without the log's key can do: change a payload and
    recompute every later hash, so that the chain alone verifies."""
    rows = list(
        LedgerEntry.objects.filter(sequence__gte=from_sequence)
        .order_by("sequence")
        .values_list("sequence", "payload", "previous_hash")
    )
    previous = rows[0][2]
    for sequence, payload, _previous in rows:
        body = bytes(payload)
        if sequence == from_sequence:
            body = ledger.canonical_bytes({**json.loads(body), "n": "forged"})
        payload_sha256 = ledger.sha256_hex(body)
        row_hash = ledger.chain_hash(
            sequence=sequence, previous_hash=previous, payload_sha256=payload_sha256
        )
        tamper(
            "UPDATE acknowledgements_ledgerentry SET payload = %s, payload_sha256 = %s,"
            " previous_hash = %s, row_hash = %s WHERE sequence = %s",
            [body, payload_sha256, previous, row_hash, sequence],
        )
        previous = row_hash


def verify_ledger(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_ledger", *args, stdout=out, stderr=out)
    except SystemExit as exited:
        return int(exited.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_a_rewritten_and_rehashed_history_is_caught(db):
    append_entries(300)
    append_entries(20)
    rewrite_and_rehash(from_sequence=10)
    assert chain_check.verify_chain().intact  # the chain alone is fooled

    code, output = verify_ledger()
    assert code == 1
    assert "no longer hash to the root signed in checkpoint 300" in output
    assert "tree node 8/0 (leaves 0..255) does not match" in output


def test_a_truncated_tail_is_caught(db):
    append_entries(12)
    tamper("DELETE FROM acknowledgements_ledgerentry WHERE sequence > 9")
    assert chain_check.verify_chain().intact

    code, output = verify_ledger()
    assert code == 1
    assert "checkpoint 12 covers more entries than the ledger holds (9): entries were removed" in (
        output
    )


def test_a_forged_checkpoint_row_is_caught(db):
    append_entries(5)
    forged = a_key(transparency.origin()).sign(
        transparency.Checkpoint(transparency.origin(), 5, reference_mth(stored_leaves())).body()
    )
    tamper("UPDATE acknowledgements_ledgercheckpoint SET note = %s", [forged])

    code, output = verify_ledger()
    assert code == 1
    assert "checkpoint 5 is not genuine" in output


def test_a_kept_checkpoint_proves_the_ledger_extends_it(db, tmp_path):
    append_entries(40)
    kept = tmp_path / "checkpoint.txt"
    kept.write_text(transparency.latest().note)
    append_entries(7)

    code, output = verify_ledger("--checkpoint", str(kept))
    assert code == 0, output
    assert "The ledger extends the kept checkpoint." in output

    rewrite_and_rehash(from_sequence=3)
    code, output = verify_ledger("--checkpoint", str(kept))
    assert code == 1
    assert "Kept checkpoint: the ledger's first 40 entries hash to" in output
    assert "the ledger was rewritten since" in output


def test_a_kept_checkpoint_signed_with_another_key_is_refused(db, tmp_path):
    append_entries(4)
    kept = tmp_path / "checkpoint.txt"
    kept.write_text(
        a_key(transparency.origin()).sign(
            transparency.Checkpoint(transparency.origin(), 4, reference_mth(stored_leaves())).body()
        )
    )
    code, output = verify_ledger("--checkpoint", str(kept))
    assert code == 1
    assert "the kept checkpoint cannot be trusted" in output


def test_a_kept_checkpoint_larger_than_the_ledger_means_entries_were_removed(db, tmp_path):
    append_entries(8)
    kept = tmp_path / "checkpoint.txt"
    kept.write_text(transparency.latest().note)
    tamper("DELETE FROM acknowledgements_ledgercheckpoint")
    tamper("DELETE FROM acknowledgements_ledgertreenode")
    tamper("DELETE FROM acknowledgements_ledgerentry WHERE sequence > 6")

    code, output = verify_ledger("--checkpoint", str(kept))
    assert code == 1
    assert "covers 8 entries but the ledger holds 6: entries were removed" in output


def test_an_unreadable_kept_checkpoint_is_a_clear_error(db, tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Cannot read the checkpoint"):
        call_command("verify_ledger", "--checkpoint", str(tmp_path / "missing.txt"))


# --- The public endpoints ------------------------------------------------------------------------


def test_the_endpoints_serve_checkpoints_keys_and_proofs_anyone_can_check(db, client):
    assert client.get("/ledger/checkpoint").status_code == 404
    append_entries(30)
    append_entries(270)
    leaves = stored_leaves()

    key = transparency.parse_verifier(client.get("/ledger/key").content.decode())
    latest = client.get("/ledger/checkpoint")
    assert latest["Content-Type"] == "text/plain; charset=utf-8"
    checkpoint = transparency.read_signed_checkpoint(latest.content.decode(), [key])
    assert (checkpoint.size, checkpoint.root) == (300, reference_mth(leaves))

    listed = client.get("/ledger/checkpoints/").json()
    assert [item["tree_size"] for item in listed["checkpoints"]] == [30, 300]
    first_note = client.get("/ledger/checkpoints/30").content.decode()
    first = transparency.read_signed_checkpoint(first_note, [key])

    inclusion = client.get("/ledger/proof/inclusion", {"index": 17, "size": 300}).json()
    assert merkle.verify_inclusion(
        leaf=leaves[17],
        index=17,
        size=300,
        path=[base64.b64decode(h) for h in inclusion["hashes"]],
        root=checkpoint.root,
    )
    consistency = client.get("/ledger/proof/consistency", {"from": 30, "to": 300}).json()
    assert merkle.verify_consistency(
        first=30,
        second=300,
        first_root=first.root,
        second_root=checkpoint.root,
        path=[base64.b64decode(h) for h in consistency["hashes"]],
    )


@pytest.mark.parametrize(
    ("url", "params", "message"),
    [
        ("/ledger/proof/inclusion", {"index": "x", "size": 3}, "index must be a whole number"),
        ("/ledger/proof/inclusion", {"size": 3}, "index must be a whole number"),
        ("/ledger/proof/inclusion", {"index": 3, "size": 3}, "smaller than the size"),
        ("/ledger/proof/inclusion", {"index": 0, "size": 4}, "beyond them"),
        ("/ledger/proof/inclusion", {"index": 0, "size": "9" * 40}, "size must be a whole"),
        ("/ledger/proof/inclusion", {"index": "-1", "size": 3}, "index must be a whole number"),
        ("/ledger/proof/consistency", {"from": 3, "to": 2}, "must not be larger than to"),
        ("/ledger/proof/consistency", {"from": 1, "to": 5}, "beyond them"),
        ("/ledger/checkpoints/", {"after": "soon"}, "after must be a whole number"),
    ],
)
def test_bad_parameters_get_a_400_naming_them(db, client, url, params, message):
    append_entries(3)
    response = client.get(url, params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_nul_byte_in_a_parameter_is_refused(db, client):
    append_entries(3)
    assert client.get("/ledger/proof/inclusion", {"index": "\x00", "size": 3}).status_code == 400


def test_an_unknown_checkpoint_is_a_404(db, client):
    append_entries(2)
    assert client.get("/ledger/checkpoints/3").status_code == 404
    assert client.get("/ledger/checkpoints/" + "9" * 30).status_code == 404


# --- Protection of the new tables (PostgreSQL) ---------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE acknowledgements_ledgertreenode SET hash = '\\x00'",
        "DELETE FROM acknowledgements_ledgertreenode",
        "TRUNCATE acknowledgements_ledgertreenode",
        "UPDATE acknowledgements_ledgercheckpoint SET root_hash = 'x'",
        "UPDATE acknowledgements_ledgercheckpoint SET note = 'x'",
        "DELETE FROM acknowledgements_ledgercheckpoint",
        "TRUNCATE acknowledgements_ledgercheckpoint",
    ],
)
def test_the_database_refuses_changes_to_the_log(enforced_triggers, sql):
    from django.db import DatabaseError

    append_entries(300)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


@pytest.mark.postgres
def test_a_checkpoint_may_receive_its_timestamp_and_witness_time_once(enforced_triggers):
    from django.db import DatabaseError
    from django.utils import timezone

    append_entries(2)
    checkpoint = transparency.latest()
    LedgerCheckpoint.objects.filter(pk=checkpoint.pk).update(
        timestamp_token=b"token", witnessed_at=timezone.now()
    )
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerCheckpoint.objects.filter(pk=checkpoint.pk).update(timestamp_token=b"other")


@pytest.mark.postgres
def test_a_weakened_log_trigger_is_named(enforced_triggers):
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE acknowledgements_ledgercheckpoint"
            " ENABLE TRIGGER acknowledgements_ledgercheckpoint_no_change"
        )
    assert protection.weakened() == [
        "trigger acknowledgements_ledgercheckpoint_no_change on acknowledgements_ledgercheckpoint"
        " is ENABLE (fires only in origin sessions), not ENABLE ALWAYS"
    ]


# --- Receipts carry their checkpoint and proof --------------------------------------------------


@pytest.fixture
def receipt_pdf(signer, revision, sign, django_capture_on_commit_callbacks) -> bytes:
    from acknowledgements.models import Receipt

    with django_capture_on_commit_callbacks(execute=True):
        sign(signer, revision)
    ledger.link_pending()
    with Receipt.objects.get().pdf.open("rb") as stored:
        return stored.read()


def attachments_of(pdf: bytes) -> dict[str, bytes]:
    from acknowledgements.receipts import seal

    return seal.inspect_receipt(pdf, trust_roots_pem=[]).attachments


def test_a_receipt_carries_the_first_checkpoint_that_includes_its_signature(receipt_pdf):
    from acknowledgements.models import Acknowledgement

    attached = attachments_of(receipt_pdf)
    entry = Acknowledgement.objects.get().ledger_entry
    checkpoint = transparency.read_signed_checkpoint(attached["checkpoint.txt"].decode())
    proof = transparency.parse_receipt_proof(attached["inclusion-proof.json"])
    assert (proof.sequence, proof.row_hash, proof.tree_size) == (
        entry.sequence,
        entry.row_hash,
        checkpoint.size,
    )
    assert checkpoint.size == min(
        LedgerCheckpoint.objects.filter(tree_size__gte=entry.sequence).values_list(
            "tree_size", flat=True
        )
    )
    assert proof.verifies(checkpoint)
    assert json.loads(attached["inclusion-proof.json"])["hashing"] == transparency.HASHING_RULE


def test_the_attached_proof_checks_out_from_the_files_pdfdetach_extracts(receipt_pdf, tmp_path):
    """What an auditor does without the portal: extract, then check with the RFC's algorithm."""
    if shutil.which("pdfdetach") is None:
        pytest.skip("pdfdetach (poppler-utils) is not installed")
    (tmp_path / "receipt.pdf").write_bytes(receipt_pdf)
    subprocess.run(["pdfdetach", "-saveall", "receipt.pdf"], cwd=tmp_path, check=True)
    proof = json.loads((tmp_path / "inclusion-proof.json").read_text())
    lines = (tmp_path / "checkpoint.txt").read_text().split("\n")
    root = base64.b64decode(lines[2])
    assert int(lines[1]) == proof["tree_size"]
    assert merkle.verify_inclusion(
        leaf=bytes.fromhex(proof["row_hash"]),
        index=proof["leaf_index"],
        size=proof["tree_size"],
        path=[base64.b64decode(h) for h in proof["hashes"]],
        root=root,
    )


def log_check_of(pdf: bytes):
    from acknowledgements.receipts import verification

    verdict = verification.verify_receipt(pdf)
    return next(c for c in verdict.checks if c.name == "In the ledger's signed log"), verdict


def test_a_receipt_verifies_against_later_checkpoints(receipt_pdf):
    append_entries(300)
    check, verdict = log_check_of(receipt_pdf)
    assert verdict.genuine, [(c.name, c.detail) for c in verdict.checks if not c.passed]
    assert "which the latest checkpoint (" in check.detail


def test_a_receipt_anchors_the_history_before_it(receipt_pdf):
    """A rewritten and re-hashed history passes the chain, not the receipt sealed before it."""
    append_entries(5)
    rewrite_and_rehash(from_sequence=1)
    assert chain_check.verify_chain().intact

    check, verdict = log_check_of(receipt_pdf)
    assert not verdict.genuine
    assert not check.passed
    assert check.detail.startswith("The ledger is damaged: its entry")


def test_a_receipt_notices_a_rewrite_after_it_too(receipt_pdf):
    from acknowledgements.models import Acknowledgement

    append_entries(5)
    signed = Acknowledgement.objects.get().ledger_entry.sequence
    rewrite_and_rehash(from_sequence=signed + 2)
    # The sealed entry is untouched, but the rows after it no longer hash to the latest signed
    # checkpoint, which the proof from the receipt's checkpoint to it is computed from.
    check, verdict = log_check_of(receipt_pdf)
    assert not verdict.genuine
    assert check.detail == (
        f"The ledger is damaged: it no longer extends the checkpoint of {signed} entries this "
        "receipt carries; its history was changed after the receipt was issued."
    )
    code, output = verify_ledger()
    assert code == 1 and "no longer hash to the root signed in checkpoint" in output


# --- A damaged ledger is visible ----------------------------------------------------------------


def test_a_damaged_ledger_shows_a_banner_to_those_who_answer_for_it(
    db, client, logged_in, auditor, signer
):
    from acknowledgements.models import LedgerCheck
    from tests.pages import text_of

    append_entries(3)
    assert verify_ledger()[0] == 0
    assert LedgerCheck.objects.get().intact
    logged_in(auditor)
    assert "The evidence ledger did not verify." not in text_of(client.get("/reports/"))

    original = bytes(LedgerEntry.objects.get(sequence=2).payload)
    tamper(
        "UPDATE acknowledgements_ledgerentry SET payload = %s WHERE sequence = 2",
        [ledger.canonical_bytes({"forged": True})],
    )
    assert verify_ledger()[0] == 1
    latest = LedgerCheck.objects.order_by("-checked_at", "-pk").first()
    assert not latest.intact and "sequence 2 fails" in latest.problems[0]
    page = text_of(client.get("/reports/"))
    assert "The evidence ledger did not verify." in page
    assert "sequence 2 fails: payload changed" in page

    client.logout()
    logged_in(signer)
    assert "The evidence ledger did not verify." not in text_of(client.get("/"))

    tamper("UPDATE acknowledgements_ledgerentry SET payload = %s WHERE sequence = 2", [original])
    assert verify_ledger()[0] == 0  # repaired from a backup: the banner goes at once
    client.logout()
    logged_in(auditor)
    assert "The evidence ledger did not verify." not in text_of(client.get("/reports/"))
