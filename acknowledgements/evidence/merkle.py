"""Merkle tree hashing, inclusion and consistency proofs exactly as RFC 9162 §2.1 defines them.

The ledger's transparency log (evidence/transparency.py) is the tree whose leaf i is the 32 raw
bytes of the row hash of ledger entry i + 1. This module knows nothing of the database: it asks
a `Subtrees` source for the hash of a perfect, aligned subtree (2**level leaves starting at a
multiple of 2**level), which the log answers from stored nodes and a few leaves, and a list
answers by hashing. Every range the RFC's recursions visit splits into such subtrees, so a proof
costs O(log n) lookups whatever the tree's size.

Verification follows the RFC's algorithms (§2.1.3.2 and §2.1.4.2) step by step, so that a
reader can hold the code against the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(size: int) -> int:
    """k, the largest power of two smaller than size (size > 1), where the RFC splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


class Subtrees(Protocol):
    def perfect(self, start: int, level: int) -> bytes:
        """MTH of the 2**level leaves from `start`, a multiple of 2**level."""
        ...


def range_hash(tree: Subtrees, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the RFC's recursion visits (start aligned to its split)."""
    size = end - start
    if size == 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0:  # a power of two: one perfect subtree
        return tree.perfect(start, size.bit_length() - 1)
    k = split_point(size)
    return node_hash(tree.perfect(start, k.bit_length() - 1), range_hash(tree, start + k, end))


def root_hash(tree: Subtrees, size: int) -> bytes:
    return range_hash(tree, 0, size)


def inclusion_path(tree: Subtrees, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]): the sibling hashes from the leaf up to the root."""
    if not 0 <= index < size:
        raise ValueError(f"Leaf {index} is not in a tree of {size} leaves.")
    path = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(range_hash(tree, start + k, end))
            end = start + k
        else:
            path.append(range_hash(tree, start, start + k))
            start += k
    return path[::-1]


def consistency_path(tree: Subtrees, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]): what proves the tree of `second` leaves extends that of `first`."""
    if not 0 <= first <= second:
        raise ValueError(f"No consistency proof from {first} to {second} leaves.")
    if first in (0, second):
        return []
    path = []
    start, end, remaining, whole = 0, second, first, True
    while True:
        if remaining == end - start:  # SUBPROOF(m, D[m], b)
            if not whole:
                path.append(range_hash(tree, start, end))
            break
        k = split_point(end - start)
        if remaining <= k:
            path.append(range_hash(tree, start + k, end))
            end = start + k
        else:
            path.append(range_hash(tree, start, start + k))
            start += k
            remaining -= k
            whole = False
    return path[::-1]


def verify_inclusion(
    *, leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: whether `leaf` (a row hash) is leaf `index` of the tree with `root`."""
    if index >= size or index < 0:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: whether the tree (second, second_root) extends (first, first_root)."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path and first_root == EMPTY_ROOT
    if not path:
        return False
    hashes = list(path)
    if first & (first - 1) == 0:  # first is an exact power of two
        hashes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = hashes[0]
    for c in hashes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


class LeafList:
    """Subtrees of leaves held in memory: for tests, verifiers and small trees."""

    def __init__(self, leaves: Sequence[bytes]):
        self.leaves = leaves

    def perfect(self, start: int, level: int) -> bytes:
        return perfect_root([leaf_hash(leaf) for leaf in self.leaves[start : start + (1 << level)]])


def perfect_root(hashes: list[bytes]) -> bytes:
    """The root over leaf hashes whose count is a power of two, level by level."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


class Frontier:
    """A tree grown one leaf at a time, holding only the roots of its perfect subtrees (one per
    set bit of its size): the root at every size for O(log n) memory, in one pass."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (level, hash), levels decreasing

    def append(
        self, leaf: bytes, *, report_from: int | None = None
    ) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the (level, index, hash) of the perfect subtrees it completes at
        `report_from` or above (none when not asked)."""
        level, index, value = 0, self.size, leaf_hash(leaf)
        completed = []
        while self._stack and self._stack[-1][0] == level:
            value = node_hash(self._stack.pop()[1], value)
            level, index = level + 1, index >> 1
            if report_from is not None and level >= report_from:
                completed.append((level, index, value))
        self._stack.append((level, value))
        self.size += 1
        return completed

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1][1]
        for _level, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value
