"""The RFC 9162 Merkle tree: the published vectors (every valid proof verifies, every
corrupted one is refused), the recursive definition, and proofs built from stored subtrees."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infomediary.tlog.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

#: transparency-dev/merkle's testdata (Apache 2.0, unchanged: vectors/README.md).
VECTORS = Path(__file__).resolve().parent / "vectors"


def vectors(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def decoded(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def test_the_vectors_are_there() -> None:
    assert len(vectors("inclusion")) > 50
    assert len(vectors("consistency")) > 50


def _inclusion(path: Path) -> tuple[dict[str, Any], bool]:
    case = json.loads(path.read_text())
    try:
        verify_inclusion(
            case["leafIdx"],
            case["treeSize"],
            decoded(case["leafHash"]),
            [decoded(node) for node in case["proof"] or []],
            decoded(case["root"]),
        )
    except ProofError:
        return case, False
    return case, True


def _consistency(path: Path) -> tuple[dict[str, Any], bool]:
    case = json.loads(path.read_text())
    try:
        verify_consistency(
            case["size1"],
            case["size2"],
            decoded(case["root1"]),
            decoded(case["root2"]),
            [decoded(node) for node in case["proof"] or []],
        )
    except ProofError:
        return case, False
    return case, True


def test_every_inclusion_vector() -> None:
    wrong = []
    for path in vectors("inclusion"):
        case, verified = _inclusion(path)
        if verified == case["wantErr"]:
            wrong.append(str(path.relative_to(VECTORS)))
    assert wrong == []


def test_every_consistency_vector() -> None:
    wrong = []
    for path in vectors("consistency"):
        case, verified = _consistency(path)
        if verified == case["wantErr"]:
            wrong.append(str(path.relative_to(VECTORS)))
    assert wrong == []


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, as written."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_the_root_is_the_recursive_definition(n: int) -> None:
    leaves = leaves_of(n)
    tree = MemoryTree(leaves)
    assert root_of(leaves) == mth(leaves) == tree.root()
    if n:
        m = max(1, n // 3)
        assert tree.root(m) == mth(leaves[:m])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_proof_verifies_and_every_altered_one_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=200))
    leaves = leaves_of(n)
    tree = MemoryTree(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = inclusion_proof(tree, index, n)
    verify_inclusion(index, n, leaves[index], proof, tree.root())
    if proof:
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        altered = list(proof)
        node = bytearray(altered[at])
        node[bit // 8] ^= 1 << (bit % 8)
        altered[at] = bytes(node)
        with pytest.raises(ProofError):
            verify_inclusion(index, n, leaves[index], altered, tree.root())
        with pytest.raises(ProofError):
            verify_inclusion(index, n, leaves[index], proof[:-1], tree.root())
    with pytest.raises(ProofError):
        verify_inclusion(index, n, leaf_hash(b"another"), proof, tree.root())
    first = data.draw(st.integers(min_value=1, max_value=n))
    proof = consistency_proof(tree, first, n)
    verify_consistency(first, n, tree.root(first), tree.root(), proof)
    if proof:
        altered = [*proof[:-1], hashlib.sha256(proof[-1]).digest()]
        with pytest.raises(ProofError):
            verify_consistency(first, n, tree.root(first), tree.root(), altered)
    if first < n:
        with pytest.raises(ProofError):  # a rewritten history: another first root
            verify_consistency(first, n, leaf_hash(b"rewritten"), tree.root(), proof)


def test_bad_requests_are_refused() -> None:
    tree = MemoryTree(leaves_of(5))
    for index, size in ((5, 5), (-1, 5), (0, 0)):
        with pytest.raises(ProofError):
            inclusion_proof(tree, index, size)
    for first, second in ((0, 5), (6, 5), (-1, 3)):
        with pytest.raises(ProofError):
            consistency_proof(tree, first, second)
    with pytest.raises(ProofError):
        tree.root(6)
    assert MemoryTree().root() == EMPTY_ROOT


def test_a_proof_reads_a_logarithmic_number_of_stored_hashes() -> None:
    """Proofs of a 1,000,000-leaf tree come from stored perfect subtrees, not rehashing."""
    n = 1_000_000
    tree = MemoryTree(leaves_of(n))
    reads = 0
    perfect = tree.perfect_hash

    def counted(level: int, index: int) -> bytes:
        nonlocal reads
        reads += 1
        return perfect(level, index)

    tree.perfect_hash = counted  # type: ignore[method-assign]
    proof = inclusion_proof(tree, 765_432, n)
    assert reads <= 2 * 20
    reads = 0
    verify_consistency(
        123_457, n, tree.root(123_457), tree.root(), consistency_proof(tree, 123_457, n)
    )
    assert reads <= 6 * 20
    verify_inclusion(765_432, n, leaf_hash((765_432).to_bytes(4, "big")), proof, tree.root())


def test_it_loads_nothing_but_the_standard_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, infomediary.tlog.merkle; "
        "print(sorted(m for m in ('flask', 'sqlalchemy', 'cryptography') if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[4],
    )
    assert found.stdout.strip() == "[]"
