"""Access-log entries of format 2: the bytes a leaf commits to and the commitments inside them.

Standard library only, so that anyone can recompute a leaf from an entry's fields with no
database and no app (``python -m infomediary.verify`` does; ``docs/LOG_FORMAT.md`` gives the
same definition for other languages). A leaf hash is RFC 9162's: ``SHA-256(0x00 || canonical)``.

The canonical form is binary: the magic line, then ``seq`` and the time in microseconds as
unsigned 64-bit big-endian integers, then each field as a 4-byte big-endian length and its
bytes (text in UTF-8), in the order of :data:`FIELDS`. An absent hash is an empty field.

Instead of raw identifiers and personal content, an entry commits to:

- ``customer``: ``SHA-256(CUSTOMER_TAG || opening || customer_id)``, where the 32-byte
  ``opening`` is derived per entry from a key only the log holds. Without the opening the
  commitment names no one and links no two entries; the customer's export gives their
  openings, so they (and only they) can show an entry is theirs.
- ``detail``: ``SHA-256(DETAIL_TAG || plaintext)`` of the sealed detail's plaintext, which
  holds a random salt: the customer checks their decrypted detail offline, and nobody can
  test a guess of it from the hash.
- ``reason``: a structured reason (a catalogue code and parameters, canonical JSON), never a
  rendered sentence.
- ``members``: for an aggregate entry (a count, an offer's audience), the root of a Merkle tree
  over the members' records (see :func:`member_leaf_hash`), so a customer proves they were
  counted without revealing anyone else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from infomediary.tlog import merkle

VERSION = 2
MAGIC = b"infomediary/log-entry/v2\n"
CUSTOMER_TAG = b"infomediary/log/customer/v2\x00"
DETAIL_TAG = b"infomediary/log/detail/v2\x00"
MEMBER_TAG = b"infomediary/log/member/v2\x00"
#: The order of the length-prefixed fields after ``seq`` and ``time``.
FIELDS = (
    "actor_type",
    "actor_id",
    "customer",
    "action",
    "categories",
    "purpose",
    "outcome",
    "reason",
    "request",
    "detail",
    "members",
    "prev",
)
#: Member records are 16 bytes; a member tree's leaf is a bucket of this many records.
RECORD_SIZE = 16
BUCKET_RECORDS = 64
_U64 = 1 << 64


class EntryError(ValueError):
    """An entry's fields cannot be encoded (a number out of range, a hash of the wrong size)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """The fields of one format-2 entry, as they are committed to."""

    seq: int
    time_us: int
    actor_type: str
    actor_id: str
    customer: bytes | None
    action: str
    categories: str
    purpose: str
    outcome: str
    reason: str
    request: str
    detail: bytes | None
    members: bytes | None
    prev: bytes

    def canonical(self) -> bytes:
        return canonical(
            self.seq,
            self.time_us,
            self.actor_type,
            self.actor_id,
            self.customer,
            self.action,
            self.categories,
            self.purpose,
            self.outcome,
            self.reason,
            self.request,
            self.detail,
            self.members,
            self.prev,
        )

    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.canonical())


def _field(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _hash_field(value: bytes | None, name: str) -> bytes:
    if value is None:
        return b"\x00\x00\x00\x00"
    if len(value) != merkle.HASH_SIZE:
        raise EntryError(f"{name} must be a {merkle.HASH_SIZE}-byte hash")
    return b"\x00\x00\x00\x20" + value


def canonical(
    seq: int,
    time_us: int,
    actor_type: str,
    actor_id: str,
    customer: bytes | None,
    action: str,
    categories: str,
    purpose: str,
    outcome: str,
    reason: str,
    request: str,
    detail: bytes | None,
    members: bytes | None,
    prev: bytes,
) -> bytes:
    """The canonical bytes of a format-2 entry (see the module's description)."""
    if not (0 <= seq < _U64 and 0 <= time_us < _U64):
        raise EntryError("seq and time must be unsigned 64-bit numbers")
    if len(prev) != merkle.HASH_SIZE:
        raise EntryError(f"prev must be a {merkle.HASH_SIZE}-byte hash")
    return b"".join(
        (
            MAGIC,
            seq.to_bytes(8, "big"),
            time_us.to_bytes(8, "big"),
            _field(actor_type.encode()),
            _field(actor_id.encode()),
            _hash_field(customer, "customer"),
            _field(action.encode()),
            _field(categories.encode()),
            _field(purpose.encode()),
            _field(outcome.encode()),
            _field(reason.encode()),
            _field(request.encode()),
            _hash_field(detail, "detail"),
            _hash_field(members, "members"),
            b"\x00\x00\x00\x20" + prev,
        )
    )


def customer_commitment(opening: bytes, customer_id: str) -> bytes:
    """What an entry commits to for its customer: a hiding, binding commitment."""
    return hashlib.sha256(CUSTOMER_TAG + opening + customer_id.encode()).digest()


def detail_hash(plaintext: bytes) -> bytes:
    """What an entry commits to for its detail: the hash of the plaintext (salt included)."""
    return hashlib.sha256(DETAIL_TAG + plaintext).digest()


def member_record(opening: bytes, ordinal: int) -> bytes:
    """A member's record in a member tree: ``SHA-256(MEMBER_TAG || opening || ordinal)``, cut
    to 16 bytes, the ordinal as 4 bytes big-endian. The 16-byte ``opening`` is the log's to
    give (to that member only): without it a record names no one."""
    if len(opening) != RECORD_SIZE or not 0 <= ordinal < 1 << 32:
        raise EntryError("a member's opening is 16 bytes and an ordinal 32 bits")
    return hashlib.sha256(MEMBER_TAG + opening + ordinal.to_bytes(4, "big")).digest()[:RECORD_SIZE]


def member_leaf_hash(bucket: bytes) -> bytes:
    """A member tree's leaf: a bucket of :data:`BUCKET_RECORDS` 16-byte member records.

    Records are pseudorandom (the log's per-entry key applied to each member's ordinal, and to
    padding), so a bucket shown to one member reveals nothing of the others; the tree is padded
    to a power of two of buckets and its leaves are ordered by hash, so a proof reveals neither
    the exact count nor a member's rank."""
    if len(bucket) != RECORD_SIZE * BUCKET_RECORDS:
        raise EntryError(f"a member bucket holds {BUCKET_RECORDS} records of {RECORD_SIZE} bytes")
    return merkle.leaf_hash(bucket)


def verify_membership(
    record: bytes, bucket: bytes, leaf_index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    """Check that ``record`` is one of ``bucket``'s records and that the bucket is leaf
    ``leaf_index`` of the member tree of ``size`` leaves with ``root``; raise ProofError."""
    if len(record) != RECORD_SIZE or not any(
        bucket[i : i + RECORD_SIZE] == record for i in range(0, len(bucket), RECORD_SIZE)
    ):
        raise merkle.ProofError("the member record is not in its bucket")
    merkle.verify_inclusion(leaf_index, size, member_leaf_hash(bucket), proof, root)
