"""The ledger as a transparency log: the Merkle tree over its row hashes and signed checkpoints.

Leaf i (from 0) is the 32 raw bytes of the row hash of the ledger entry with sequence i + 1;
the tree is RFC 9162's (evidence/merkle.py). After the link task links entries it signs a
checkpoint (C2SP tlog-checkpoint: origin, tree size, base64 root hash) as a C2SP signed note
with the log's Ed25519 key. Every checkpoint is kept. A receipt carries the one that first
included its signature with the inclusion proof to it; whoever keeps a checkpoint can later
ask for a consistency proof that today's ledger extends it, so a history rewritten and
re-hashed inside the database no longer goes unnoticed.

Proofs are computed from stored nodes: every complete subtree of 2**TILE_LEVEL leaves or more
has its hash in LedgerTreeNode, written when its last leaf is checkpointed, so a proof reads
O(log n) nodes and at most two tiles of leaves whatever the ledger's size.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Max, Q

from acknowledgements.evidence import merkle
from acknowledgements.models import LedgerCheckpoint, LedgerEntry, LedgerTreeNode

logger = logging.getLogger(__name__)
T = TypeVar("T")

TILE_LEVEL = 8  # subtrees of 256 leaves and up are stored
TILE = 1 << TILE_LEVEL
ED25519 = b"\x01"  # the signed-note signature type of Ed25519
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space open each signature line
# Serialises checkpointing (not linking, which has its own lock): one checkpoint per size.
CHECKPOINT_LOCK_ID = 7_482_019_002
LOCAL_KEY_NAME = "ledger-key.pem"


class NoteError(ValueError):
    """A checkpoint or a key that cannot be read or whose signature does not verify."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{text[:40]!r} is not base64.") from None


# --- Keys and signed notes (C2SP signed-note) --------------------------------------------------


@dataclass(frozen=True)
class LogKey:
    """A signed-note key: its name (the log's origin) and Ed25519 key; public-only to verify."""

    name: str
    public: bytes  # 32 raw bytes
    private: Ed25519PrivateKey | None = None

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n" + ED25519 + self.public).digest()[:4]

    @property
    def verifier(self) -> str:
        """The verifier key, `name+keyid+base64(type || public key)`, as /ledger/key serves it."""
        return f"{self.name}+{self.key_id.hex()}+{b64(ED25519 + self.public)}"

    def sign(self, body: str) -> str:
        """The signed note: the body, a blank line, and this key's signature line."""
        if self.private is None:
            raise RuntimeError("A verifier key cannot sign.")
        signature = self.private.sign(body.encode())
        return f"{body}\n{SIGNATURE_PREFIX}{self.name} {b64(self.key_id + signature)}\n"


def parse_verifier(text: str) -> LogKey:
    """A LogKey (public only) from a verifier key string; NoteError when it is not one."""
    name, sep, rest = text.strip().partition("+")
    key_id_hex, sep2, key_b64 = rest.partition("+")
    if not (sep and sep2 and name):
        raise NoteError("A verifier key reads name+keyid+key.")
    key = unb64(key_b64)
    if len(key) != 33 or key[:1] != ED25519:
        raise NoteError("Only Ed25519 verifier keys are supported.")
    parsed = LogKey(name=name, public=key[1:])
    if parsed.key_id.hex() != key_id_hex.lower():
        raise NoteError("The verifier key's id does not match its name and key.")
    return parsed


def open_note(note: str, keys: list[LogKey]) -> str:
    """The body of a signed note carrying a valid signature by one of `keys`; NoteError else."""
    body, sep, signatures = note.rpartition("\n\n")
    if not sep:
        raise NoteError("A signed note has its text, a blank line, then its signatures.")
    body += "\n"
    if not signatures.endswith("\n"):
        raise NoteError("A signed note ends with a newline.")
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"Not a signature line: {line[:60]!r}.")
        name, _space, value = line.removeprefix(SIGNATURE_PREFIX).rpartition(" ")
        signature = unb64(value)
        for key in keys:
            if key.name == name and signature[:4] == key.key_id:
                try:
                    Ed25519PublicKey.from_public_bytes(key.public).verify(
                        signature[4:], body.encode()
                    )
                except InvalidSignature:
                    raise NoteError(f"The signature by {name} does not verify.") from None
                return body
    raise NoteError("The note is not signed by this ledger's key.")


def log_key() -> LogKey:
    """The key the log signs checkpoints with: PORTAL_LEDGER_KEY, else one made locally."""
    return _load_key(settings.PORTAL_LEDGER_KEY, str(settings.PORTAL_LEDGER_KEY_DIR), origin())


@functools.cache
def _load_key(configured: str, local_dir: str, name: str) -> LogKey:
    path = Path(configured) if configured else Path(local_dir) / LOCAL_KEY_NAME
    if not path.exists():
        if configured:
            raise ImproperlyConfigured(f"PORTAL_LEDGER_KEY names {path}, which does not exist.")
        _create_local_key(path)
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as error:
        raise ImproperlyConfigured(f"The ledger key {path} cannot be read: {error}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"The ledger key {path} is not an Ed25519 private key.")
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return LogKey(name=name, public=public, private=private)


def clear_key_cache() -> None:
    _load_key.cache_clear()


def _create_local_key(path: Path) -> None:
    """Make an Ed25519 key at `path` unless another process just did (link() never replaces)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(pem)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.link(tmp_name, path)
    except FileExistsError:
        return
    finally:
        os.unlink(tmp_name)
    logger.warning(
        "Created a local key at %s to sign the ledger's checkpoints. Production should set "
        "PORTAL_LEDGER_KEY, back the key up, and publish /ledger/key to whoever keeps "
        "checkpoints.",
        path,
    )


def origin() -> str:
    return settings.PORTAL_LEDGER_ORIGIN


# --- Checkpoints (C2SP tlog-checkpoint) --------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{b64(self.root)}\n"


def parse_checkpoint(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("A checkpoint has an origin, a tree size and a root hash, one per line.")
    if not lines[1].isascii() or not lines[1].isdigit() or (lines[1] != "0" and lines[1][0] == "0"):
        raise NoteError(f"{lines[1][:40]!r} is not a tree size.")
    root = unb64(lines[2])
    if len(root) != 32:
        raise NoteError("The root hash is not 32 bytes.")
    return Checkpoint(origin=lines[0], size=int(lines[1]), root=root)


def read_signed_checkpoint(note: str, keys: list[LogKey] | None = None) -> Checkpoint:
    """A checkpoint whose signature verifies with the log's key (or `keys`); NoteError else."""
    keys = keys if keys is not None else [log_key()]
    checkpoint = parse_checkpoint(open_note(note, keys))
    if checkpoint.origin not in {key.name for key in keys}:
        raise NoteError(f"The checkpoint names another log: {checkpoint.origin!r}.")
    return checkpoint


# --- The tree in the database ------------------------------------------------------------------


def leaf(row_hash: str | None) -> bytes:
    """A linked entry's leaf: the 32 raw bytes of its row hash."""
    if row_hash is None:
        raise RuntimeError("An entry with a sequence has no row hash.")
    return bytes.fromhex(row_hash)


def _leaves(start: int, end: int) -> list[bytes]:
    """The raw row hashes of leaves start..end-1 (sequences start+1..end)."""
    hashes = (
        LedgerEntry.objects.filter(sequence__gt=start, sequence__lte=end)
        .order_by("sequence")
        .values_list("row_hash", flat=True)
    )
    leaves = [leaf(value) for value in hashes]
    if len(leaves) != end - start:
        raise RuntimeError(f"Ledger entries {start + 1}..{end} are not all linked.")
    return leaves


class StoredTree:
    """Subtree hashes of the log at `size` leaves, from stored nodes and at most a few tiles.

    `prefetched(size, walk)` runs a proof's walk twice: once only to learn which nodes and
    tiles it reads, then over them fetched in two queries, rather than one query per node.
    """

    def __init__(self, size: int, nodes: dict[tuple[int, int], bytes] | None = None):
        self.size = size
        self.nodes = dict(nodes or {})
        self._tiles: dict[int, list[bytes]] = {}
        self._planning = False

    @classmethod
    def prefetched(cls, size: int, walk: Callable[[StoredTree], T]) -> T:
        plan = cls(size)
        plan._planning = True
        walk(plan)
        tree = cls(size)
        tree._load(set(plan.nodes), set(plan._tiles))
        return walk(tree)

    def _load(self, nodes: set[tuple[int, int]], tiles: set[int]) -> None:
        if nodes:
            wanted = Q()
            for level, index in nodes:
                wanted |= Q(level=level, index=index)
            for level, index, value in LedgerTreeNode.objects.filter(wanted).values_list(
                "level", "index", "hash"
            ):
                self.nodes[(level, index)] = bytes(value)
        for tile in tiles:
            self._tiles[tile] = _leaves(
                tile << TILE_LEVEL, min((tile + 1) << TILE_LEVEL, self.size)
            )

    def perfect(self, start: int, level: int) -> bytes:
        if start + (1 << level) > self.size:
            raise ValueError(f"Leaves {start}..{start + (1 << level) - 1} are past the tree.")
        if level >= TILE_LEVEL:
            key = (level, start >> level)
            if self._planning:
                self.nodes[key] = merkle.EMPTY_ROOT
            elif key not in self.nodes:
                stored = LedgerTreeNode.objects.filter(level=level, index=key[1]).first()
                if stored is None:
                    raise RuntimeError(f"Tree node {key} is missing: the log needs rebuilding.")
                self.nodes[key] = bytes(stored.hash)
            return self.nodes[key]
        tile = start >> TILE_LEVEL
        if self._planning:
            self._tiles[tile] = []
            return merkle.EMPTY_ROOT
        if tile not in self._tiles:
            self._tiles[tile] = _leaves(
                tile << TILE_LEVEL, min((tile + 1) << TILE_LEVEL, self.size)
            )
        offset = start - (tile << TILE_LEVEL)
        leaves = self._tiles[tile][offset : offset + (1 << level)]
        return merkle.perfect_root([merkle.leaf_hash(leaf) for leaf in leaves])


def _new_nodes(old_size: int, new_size: int) -> dict[tuple[int, int], bytes]:
    """The stored nodes that leaves old_size..new_size-1 complete, computed from the leaves of
    their tiles and the nodes already stored."""
    first_tile, end_tile = old_size >> TILE_LEVEL, new_size >> TILE_LEVEL
    nodes: dict[tuple[int, int], bytes] = {}
    if end_tile <= first_tile:
        return nodes
    leaves = _leaves(first_tile << TILE_LEVEL, end_tile << TILE_LEVEL)
    for tile in range(first_tile, end_tile):
        chunk = leaves[(tile - first_tile) << TILE_LEVEL : (tile - first_tile + 1) << TILE_LEVEL]
        nodes[(TILE_LEVEL, tile)] = merkle.perfect_root([merkle.leaf_hash(leaf) for leaf in chunk])
    stored: dict[tuple[int, int], bytes] = {}  # older nodes a new one is built on
    level = TILE_LEVEL + 1
    while (new_size >> level) > (old_size >> level):
        for index in range(old_size >> level, new_size >> level):
            left, right = (level - 1, 2 * index), (level - 1, 2 * index + 1)
            if left not in nodes:  # only a left child can be older than this checkpoint
                node = LedgerTreeNode.objects.get(level=left[0], index=left[1])
                stored[left] = bytes(node.hash)
            nodes[(level, index)] = merkle.node_hash(nodes.get(left) or stored[left], nodes[right])
        level += 1
    return nodes


def latest() -> LedgerCheckpoint | None:
    return LedgerCheckpoint.objects.order_by("-tree_size").first()


def checkpoint() -> LedgerCheckpoint | None:
    """Sign a checkpoint of everything linked, unless the latest already covers it; the latest
    checkpoint (None while the ledger is empty)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHECKPOINT_LOCK_ID])
        # SQLite: the IMMEDIATE transaction already holds the database's write lock.
        previous = latest()
        old_size = previous.tree_size if previous else 0
        size = LedgerEntry.objects.aggregate(size=Max("sequence"))["size"] or 0
        if size <= old_size:
            return previous
        nodes = _new_nodes(old_size, size)
        LedgerTreeNode.objects.bulk_create(
            LedgerTreeNode(level=level, index=index, hash=value)
            for (level, index), value in nodes.items()
            if level >= TILE_LEVEL
        )
        root = merkle.root_hash(StoredTree(size, nodes), size)
        note = log_key().sign(Checkpoint(origin=origin(), size=size, root=root).body())
        return LedgerCheckpoint.objects.create(tree_size=size, root_hash=root.hex(), note=note)


def checkpoint_including(sequence: int) -> LedgerCheckpoint:
    """The first checkpoint that includes the linked entry `sequence`, signing one if needed."""
    first = LedgerCheckpoint.objects.filter(tree_size__gte=sequence).order_by("tree_size").first()
    if first is None:
        first = checkpoint()
    if first is None or first.tree_size < sequence:
        raise RuntimeError(f"Ledger entry {sequence} is not linked yet.")
    return first


def _checked_sizes(*sizes: int) -> None:
    """Proofs are served for checkpointed sizes only: the tree beyond is not signed yet."""
    head = latest()
    limit = head.tree_size if head else 0
    for size in sizes:
        if size > limit:
            raise ValueError(f"The log has {limit} checkpointed leaves; {size} is beyond them.")


def inclusion_proof(index: int, size: int) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf `index` (sequence index + 1) in the tree of `size`."""
    _checked_sizes(size)
    return StoredTree.prefetched(size, lambda tree: merkle.inclusion_path(tree, index, size))


def consistency_proof(first: int, second: int) -> list[bytes]:
    """The RFC 9162 consistency proof that the tree of `second` leaves extends that of `first`."""
    _checked_sizes(first, second)
    return StoredTree.prefetched(second, lambda tree: merkle.consistency_path(tree, first, second))


def root_at(size: int) -> bytes:
    """The root of the log at a checkpointed size, from stored nodes (O(log n))."""
    _checked_sizes(size)
    return StoredTree.prefetched(size, lambda tree: merkle.root_hash(tree, size))


# --- Verification: the stored tree and checkpoints against the ledger's rows -------------------


def verify_log() -> list[str]:
    """Recompute the tree from every row hash in one pass; what disagrees, one sentence each.

    Checks each stored node, and each checkpoint's root and signature, against the rows as they
    are now: a history rewritten and re-hashed after a checkpoint no longer matches it.
    """
    key = log_key()
    checkpoints = iter(LedgerCheckpoint.objects.order_by("tree_size").only("tree_size", "note"))
    pending = next(checkpoints, None)
    stored = {
        (level, index): bytes(value)
        for level, index, value in LedgerTreeNode.objects.values_list("level", "index", "hash")
    }
    problems: list[str] = []
    frontier = merkle.Frontier()
    rows = (
        LedgerEntry.objects.filter(sequence__isnull=False)
        .order_by("sequence")
        .values_list("row_hash", flat=True)
        .iterator(chunk_size=5_000)
    )
    for row_hash in rows:
        for level, index, value in frontier.append(leaf(row_hash), report_from=TILE_LEVEL):
            kept = stored.pop((level, index), None)
            if kept is not None and kept != value:
                problems.append(
                    f"tree node {level}/{index} (leaves {index << level}.."
                    f"{((index + 1) << level) - 1}) does not match the ledger's rows"
                )
        while pending is not None and pending.tree_size == frontier.size:
            problems += _checkpoint_problems(pending.note, frontier.root(), frontier.size, key)
            pending = next(checkpoints, None)
    if pending is not None:
        problems.append(
            f"checkpoint {pending.tree_size} covers more entries than the ledger holds "
            f"({frontier.size}): entries were removed"
        )
    problems += [f"tree node {level}/{index} is past the ledger's end" for level, index in stored]
    return problems


def _checkpoint_problems(note: str, root: bytes, size: int, key: LogKey) -> list[str]:
    try:
        checkpoint = read_signed_checkpoint(note, [key])
    except NoteError as error:
        return [f"checkpoint {size} is not genuine: {error}"]
    if checkpoint.size != size:
        return [f"checkpoint {size} states another size, {checkpoint.size}"]
    if checkpoint.root != root:
        return [
            f"the ledger's first {size} entries no longer hash to the root signed in checkpoint "
            f"{size}: they were changed after it"
        ]
    return []


def check_kept_checkpoint(note: str) -> list[str]:
    """Whether the ledger extends a checkpoint someone kept: what differs, one sentence each."""
    try:
        kept = read_signed_checkpoint(note)
    except NoteError as error:
        return [f"the kept checkpoint cannot be trusted: {error}"]
    size = LedgerEntry.objects.aggregate(size=Max("sequence"))["size"] or 0
    if size < kept.size:
        return [
            f"the kept checkpoint covers {kept.size} entries but the ledger holds {size}: "
            f"entries were removed"
        ]
    frontier = merkle.Frontier()
    for row_hash in (
        LedgerEntry.objects.filter(sequence__lte=kept.size)
        .order_by("sequence")
        .values_list("row_hash", flat=True)
        .iterator(chunk_size=5_000)
    ):
        frontier.append(leaf(row_hash))
    if frontier.root() != kept.root:
        return [
            f"the ledger's first {kept.size} entries hash to {frontier.root().hex()}, not to the "
            f"kept checkpoint's root {kept.root.hex()}: the ledger was rewritten since"
        ]
    return []


# --- The proof a receipt carries ---------------------------------------------------------------

HASHING_RULE = (
    "RFC 9162 section 2.1 with SHA-256: leaf i is the 32 raw bytes of the row hash of ledger "
    "entry i + 1, hashed as SHA-256(0x00 || leaf); a node is SHA-256(0x01 || left || right)"
)


@dataclass(frozen=True)
class ReceiptProof:
    """Where a receipt's signature sits in the log, and the proof of it, as attached."""

    sequence: int
    row_hash: str
    tree_size: int
    hashes: list[bytes]

    def to_json(self) -> bytes:
        return (
            json.dumps(
                {
                    "sequence": self.sequence,
                    "leaf_index": self.sequence - 1,
                    "row_hash": self.row_hash,
                    "tree_size": self.tree_size,
                    "hashes": [b64(value) for value in self.hashes],
                    "hashing": HASHING_RULE,
                    "checkpoint": "checkpoint.txt",
                },
                indent=2,
            ).encode()
            + b"\n"
        )

    def verifies(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.size == self.tree_size and merkle.verify_inclusion(
            leaf=bytes.fromhex(self.row_hash),
            index=self.sequence - 1,
            size=self.tree_size,
            path=self.hashes,
            root=checkpoint.root,
        )


def parse_receipt_proof(data: bytes) -> ReceiptProof:
    """The proof attached to a receipt (untrusted input); NoteError when it is not one."""
    try:
        fields = json.loads(data)
        proof = ReceiptProof(
            sequence=int(fields["sequence"]),
            row_hash=str(fields["row_hash"]),
            tree_size=int(fields["tree_size"]),
            hashes=[unb64(str(value)) for value in fields["hashes"]],
        )
        bytes.fromhex(proof.row_hash)
    except (ValueError, KeyError, TypeError, RecursionError):
        raise NoteError("The inclusion proof cannot be read.") from None
    if len(proof.row_hash) != 64 or not 0 < proof.sequence <= proof.tree_size:
        raise NoteError("The inclusion proof names no leaf of its tree.")
    return proof


def receipt_proof(*, sequence: int, row_hash: str) -> tuple[LedgerCheckpoint, ReceiptProof]:
    """The first checkpoint that includes a linked entry, and the proof to attach to a receipt."""
    first = checkpoint_including(sequence)
    hashes = inclusion_proof(sequence - 1, first.tree_size)
    return first, ReceiptProof(sequence, row_hash, first.tree_size, hashes)
