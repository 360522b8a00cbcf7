"""RFC 9162 §2.1 Merkle trees: the tree hash, inclusion and consistency proofs, and their
verification.

Leaves are leaf hashes, ``SHA-256(0x00 || entry)`` (:func:`leaf_hash`), in log order, index 0
first; an interior node is ``SHA-256(0x01 || left || right)``. The tree of ``n`` leaves splits
at ``k``, the largest power of two below ``n``: ``MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))``,
and the tree of no leaves hashes to ``SHA-256("")``.

Proofs are built from a :class:`Subtrees` source: anything that gives the hash of the leaves
``[start, end)`` for the ranges the RFC's algorithms ask for. Each such range is a run of
perfect subtrees (sizes that are powers of two, aligned to their size), so a store that keeps
every perfect subtree's hash (or tiles of them) answers any proof of a 1,000,000-leaf log
with about 2 log2(n) hashes read and no rehashing; :class:`MemoryTree` is such a store in
memory. Verification (:func:`verify_inclusion`, :func:`verify_consistency`) needs only the
proof, the sizes and the hashes, as RFC 9162 §2.1.3.2 and §2.1.4.2 give them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not prove what it claims, or a request no proof can answer."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size`` >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of(leaves: Iterable[bytes]) -> bytes:
    """MTH of the leaf hashes, in one pass with a stack of perfect subtrees (O(log n) memory)."""
    stack: list[tuple[int, bytes]] = []  # (size, hash) of perfect subtrees, largest first
    for leaf in leaves:
        size, node = 1, leaf
        while stack and stack[-1][0] == size:
            left = stack.pop()[1]
            size, node = size * 2, node_hash(left, node)
        stack.append((size, node))
    if not stack:
        return EMPTY_ROOT
    node = stack.pop()[1]
    while stack:
        node = node_hash(stack.pop()[1], node)
    return node


class Subtrees(Protocol):
    """Where proofs read subtree hashes from."""

    def range_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)``, for ``0 <= start < end <= size``."""
        ...


def _perfect_runs(start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` as the perfect subtrees RFC 9162 splits it into, left to right:
    (level, index) with the subtree covering ``[index << level, (index + 1) << level)``."""
    size = end - start
    if size == 1:
        return [(0, start)]
    if size & (size - 1) == 0 and start % size == 0:
        return [(size.bit_length() - 1, start >> (size.bit_length() - 1))]
    k = split(size)
    return _perfect_runs(start, start + k) + _perfect_runs(start + k, end)


def range_hash_from(perfect: PerfectSource, start: int, end: int) -> bytes:
    """MTH of ``[start, end)`` from the hashes of perfect subtrees (right to left, as the
    tree's shape nests them)."""
    runs = _perfect_runs(start, end)
    node = perfect.perfect_hash(*runs[-1])
    for level, index in reversed(runs[:-1]):
        node = node_hash(perfect.perfect_hash(level, index), node)
    return node


class PerfectSource(Protocol):
    def perfect_hash(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree of ``2**level`` leaves starting at
        ``index << level``."""
        ...


class MemoryTree:
    """Leaf hashes held in memory, with every perfect subtree's hash kept as leaves are
    appended (``levels[l][i]``): proofs read O(log n) of them."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            row = self.levels[level]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(row[-2], row[-1]))
            level += 1

    def perfect_hash(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def range_hash(self, start: int, end: int) -> bytes:
        return range_hash_from(self, start, end)

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"size {size} is outside the tree (0 to {self.size})")
        return EMPTY_ROOT if size == 0 else self.range_hash(0, size)


# -- building proofs --------------------------------------------------------------------------


def inclusion_proof(tree: Subtrees, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index < start + k:
            proof.append(tree.range_hash(start + k, end))
            end = start + k
        else:
            proof.append(tree.range_hash(start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(tree: Subtrees, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1 (empty for equal sizes)."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    proof: list[bytes] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = split(end - start)
        if m <= k:
            proof.append(tree.range_hash(start + k, end))
            end = start + k
        else:
            proof.append(tree.range_hash(start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append(tree.range_hash(start, end))
    proof.reverse()
    return proof


# -- verifying proofs -------------------------------------------------------------------------


def _hashes(proof: Sequence[bytes] | None) -> list[bytes]:
    found = list(proof or [])
    if any(len(node) != HASH_SIZE for node in found):
        raise ProofError("a proof node is not a SHA-256 hash")
    return found


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    nodes = _hashes(proof)
    fn, sn, node = index, size - 1, leaf
    for sibling in nodes:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    return node


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``leaf`` is at ``index`` of the tree of ``size``
    leaves whose root is ``root``."""
    if len(leaf) != HASH_SIZE:
        raise ProofError("the leaf is not a SHA-256 hash")
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"the inclusion proof of index {index} does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes] | None
) -> None:
    """Raise :class:`ProofError` unless the tree of ``second`` leaves with ``second_root``
    extends the tree of ``first`` leaves with ``first_root`` (RFC 9162 §2.1.4.2). A proof
    from the empty tree proves nothing and is refused; equal sizes need equal roots and no
    proof."""
    nodes = list(proof or [])
    if first > second:
        raise ProofError(f"size {first} is larger than size {second}: a log never shrinks")
    if first == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if first == second:
        if nodes:
            raise ProofError("equal sizes need an empty proof")
        if first_root != second_root:
            raise ProofError(f"two different roots for size {first}")
        return
    nodes = _hashes(nodes)
    if not nodes:
        raise ProofError("the consistency proof is empty")
    if first & (first - 1) == 0:  # an exact power of two: the first tree is a proof node
        nodes = [first_root, *nodes]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for node in nodes[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(node, fr), node_hash(node, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if fr != first_root:
        raise ProofError(f"the consistency proof does not lead to the root of size {first}")
    if sr != second_root:
        raise ProofError(f"the consistency proof does not lead to the root of size {second}")


# -- appending with a frontier ----------------------------------------------------------------


def frontier_sizes(size: int) -> list[int]:
    """The levels of the perfect subtrees on the right edge of a tree of ``size`` leaves,
    largest first: the set bits of ``size``."""
    return [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]


def append_leaf(
    frontier: Sequence[bytes], size: int, leaf: bytes
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Add leaf number ``size`` to a tree whose right edge is ``frontier`` (the hashes of its
    perfect subtrees, largest first). Returns the new frontier and the interior nodes the leaf
    completes, as (level, index, hash): the nodes a store keeps so that proofs rehash nothing."""
    levels = frontier_sizes(size)
    if len(levels) != len(frontier):
        raise ValueError("the frontier does not match the tree's size")
    stack = list(zip(levels, frontier, strict=True))
    level, node, index = 0, leaf, size
    completed: list[tuple[int, int, bytes]] = []
    while stack and stack[-1][0] == level:
        left = stack.pop()[1]
        node, level, index = node_hash(left, node), level + 1, index >> 1
        completed.append((level, index, node))
    stack.append((level, node))
    return [hash_ for _, hash_ in stack], completed


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The root of the tree whose right edge is ``frontier``."""
    if not frontier:
        return EMPTY_ROOT
    node = frontier[-1]
    for left in reversed(frontier[:-1]):
        node = node_hash(left, node)
    return node
