"""Entry format 2: the canonical bytes as docs/LOG_FORMAT.md defines them, and the
commitments an entry holds instead of identifiers and personal content."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infomediary.tlog import entry, merkle

FIELDS: dict[str, Any] = {
    "seq": 41,
    "time_us": 1_764_633_600_123_456,
    "actor_type": "supplier",
    "actor_id": "0e426b19-35e4-44ec-8b32-0dee53afc008",
    "customer": hashlib.sha256(b"c").digest(),
    "action": "read",
    "categories": "identity,interests",
    "purpose": "marketing",
    "outcome": "allowed",
    "reason": '{"code":"text","params":{"text":"policy allows"}}',
    "request": "req-1",
    "detail": hashlib.sha256(b"d").digest(),
    "members": None,
    "prev": hashlib.sha256(b"p").digest(),
}


def by_the_document(fields: dict[str, Any]) -> bytes:
    """The encoding written out from docs/LOG_FORMAT.md's table, independently."""

    def text(value: str) -> bytes:
        raw = value.encode("utf-8")
        return struct.pack(">I", len(raw)) + raw

    def digest(value: bytes | None) -> bytes:
        return struct.pack(">I", 0) if value is None else struct.pack(">I", 32) + value

    return (
        b"infomediary/log-entry/v2\n"
        + struct.pack(">QQ", fields["seq"], fields["time_us"])
        + text(fields["actor_type"])
        + text(fields["actor_id"])
        + digest(fields["customer"])
        + text(fields["action"])
        + text(fields["categories"])
        + text(fields["purpose"])
        + text(fields["outcome"])
        + text(fields["reason"])
        + text(fields["request"])
        + digest(fields["detail"])
        + digest(fields["members"])
        + digest(fields["prev"])
    )


def test_the_canonical_form_is_the_documented_one() -> None:
    assert len(entry.MAGIC) == 25
    assert entry.canonical(**FIELDS) == by_the_document(FIELDS)
    made = entry.Entry(**FIELDS)
    assert made.leaf_hash() == hashlib.sha256(b"\x00" + by_the_document(FIELDS)).digest()
    assert made.leaf_hash() == merkle.leaf_hash(made.canonical())


@given(
    st.sampled_from(
        ["actor_type", "actor_id", "action", "categories", "purpose", "outcome", "reason"]
    ),
    st.text(max_size=40),
)
def test_every_text_field_is_committed_to(name: str, value: str) -> None:
    changed = {**FIELDS, name: value}
    assert (entry.canonical(**changed) == entry.canonical(**FIELDS)) == (value == FIELDS[name])
    assert entry.canonical(**changed) == by_the_document(changed)


def test_bytes_cannot_move_from_one_field_to_the_next() -> None:
    shifted = {**FIELDS, "action": "rea", "categories": "d" + FIELDS["categories"]}
    assert entry.canonical(**shifted) != entry.canonical(**FIELDS)


def test_an_absent_hash_differs_from_any_present_one() -> None:
    for name in ("customer", "detail", "members"):
        present = {**FIELDS, name: bytes(32)}
        absent = {**FIELDS, name: None}
        assert entry.canonical(**present) != entry.canonical(**absent)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": -1}, "unsigned 64-bit"),
        ({"time_us": 1 << 64}, "unsigned 64-bit"),
        ({"prev": b"short"}, "prev must be a 32-byte hash"),
        ({"customer": b"x" * 31}, "customer must be a 32-byte hash"),
        ({"members": b"x" * 33}, "members must be a 32-byte hash"),
    ],
)
def test_fields_that_cannot_be_encoded_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(entry.EntryError, match=message):
        entry.canonical(**{**FIELDS, **change})


def test_the_customer_commitment_binds_the_id_and_hides_it_behind_the_opening() -> None:
    opening = bytes(range(32))
    made = entry.customer_commitment(opening, "cust-1")
    assert made == hashlib.sha256(b"infomediary/log/customer/v2\x00" + opening + b"cust-1").digest()
    assert made != entry.customer_commitment(opening, "cust-2")
    assert made != entry.customer_commitment(bytes(32), "cust-1")


def test_the_detail_hash_is_of_the_plaintext_with_its_salt() -> None:
    one = entry.detail_hash(b'{"salt":"AAAA","x":1}')
    assert (
        one == hashlib.sha256(b"infomediary/log/detail/v2\x00" + b'{"salt":"AAAA","x":1}').digest()
    )
    assert one != entry.detail_hash(b'{"salt":"AAAB","x":1}')


def test_a_membership_proof_verifies_and_any_change_is_refused() -> None:
    size = entry.RECORD_SIZE * entry.BUCKET_RECORDS
    buckets = [bytes((n * 7 + i) % 251 for i in range(size)) for n in range(4)]
    leaves = [entry.member_leaf_hash(b) for b in buckets]
    tree = merkle.MemoryTree(leaves)
    root = tree.root()
    record = buckets[2][16:32]
    proof = merkle.inclusion_proof(tree, 2, 4)
    entry.verify_membership(record, buckets[2], 2, 4, proof, root)
    with pytest.raises(merkle.ProofError, match="not in its bucket"):
        entry.verify_membership(bytes(16), buckets[2], 2, 4, proof, root)
    with pytest.raises(merkle.ProofError, match="not in its bucket"):
        entry.verify_membership(buckets[2][8:24], buckets[2], 2, 4, proof, root)  # unaligned
    with pytest.raises(merkle.ProofError):
        entry.verify_membership(record, buckets[2], 1, 4, proof, root)
    with pytest.raises(entry.EntryError):
        entry.member_leaf_hash(buckets[0][:-1])
