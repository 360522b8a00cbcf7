"""The member tree of an aggregate log entry: what it commits to instead of the member bitmap.

For an entry of sequence number ``seq`` the log derives a 128-bit member key from its
commitment key; a member's *opening* is that key's AES block cipher applied to the member's
ordinal (``12 zero bytes || ordinal``, big-endian), and its record is
:func:`infomediary.tlog.entry.member_record` of the opening and the ordinal, so the member,
given their opening, checks that a record is their ordinal's; padding records are the cipher
applied to ``0x01 || 11 zero bytes || j``. Records are grouped in buckets of 64, in ordinal
order, then padding to a power of two of buckets; the buckets' RFC 9162 leaf hashes are
sorted and the root of the tree over them is what the entry commits to
(:mod:`infomediary.tlog.entry`).

So: a record reveals nothing without its opening (AES is a pseudorandom permutation); a
bucket shown to one member holds 63 such records; the tree's size says the count only to
within a power of two of buckets; sorted leaves hide which bucket, and so the rank, a
member's is. Building the tree of a million members is one AES call over 16 MB, a million
short hashes and about 16,000 bucket hashes (about half a second).
A record binds an ordinal; that the ordinal is a given customer's is the log's statement.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from hashlib import sha256

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pyroaring import BitMap

from infomediary.tlog import merkle
from infomediary.tlog.entry import (
    BUCKET_RECORDS,
    MEMBER_TAG,
    RECORD_SIZE,
    member_leaf_hash,
    member_record,
)

_BUCKET_BYTES = RECORD_SIZE * BUCKET_RECORDS


def _be32(values: array[int]) -> bytes:
    if sys.byteorder == "little":
        values = array("I", values)
        values.byteswap()
    return values.tobytes()


def _blocks(ordinals: array[int], padding: int) -> bytes:
    """The cipher's input: one 16-byte block per member, then one per padding record."""
    n = len(ordinals)
    buf = bytearray(RECORD_SIZE * (n + padding))
    members = _be32(ordinals)
    for k in range(4):
        buf[12 + k : RECORD_SIZE * n : RECORD_SIZE] = members[k::4]
    if padding:
        pad = _be32(array("I", range(padding)))
        start = RECORD_SIZE * n
        buf[start::RECORD_SIZE] = b"\x01" * padding
        for k in range(4):
            buf[start + 12 + k :: RECORD_SIZE] = pad[k::4]
    return bytes(buf)


def _encrypt(key: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - a PRP, not a mode of encryption
    return encryptor.update(data) + encryptor.finalize()


def bucket_count(members: int) -> int:
    """Buckets in the tree of ``members`` members: a power of two, at least one."""
    needed = max(1, -(-members // BUCKET_RECORDS))
    return 1 << (needed - 1).bit_length()


@dataclass(frozen=True, slots=True)
class MemberTree:
    key: bytes
    ordinals: array[int]
    buckets: tuple[bytes, ...]  # in leaf order (sorted by leaf hash)
    leaves: tuple[bytes, ...]

    @property
    def root(self) -> bytes:
        return merkle.root_of(self.leaves)

    def opening(self, ordinal: int) -> bytes:
        return _encrypt(self.key, bytes(12) + ordinal.to_bytes(4, "big"))

    def record(self, ordinal: int) -> bytes:
        return member_record(self.opening(ordinal), ordinal)

    def proof(self, ordinal: int) -> MembershipProof | None:
        """The proof that ``ordinal`` is a member, or None when it is not one."""
        if not _contains(self.ordinals, ordinal):
            return None
        record = self.record(ordinal)
        for index, bucket in enumerate(self.buckets):
            if any(
                bucket[i : i + RECORD_SIZE] == record for i in range(0, len(bucket), RECORD_SIZE)
            ):
                tree = merkle.MemoryTree(list(self.leaves))
                nodes = merkle.inclusion_proof(tree, index, len(self.leaves))
                return MembershipProof(
                    record,
                    bucket,
                    index,
                    len(self.leaves),
                    tuple(nodes),
                    self.opening(ordinal),
                    ordinal,
                )
        return None  # pragma: no cover - a member's record is always in one bucket


def _contains(ordinals: array[int], ordinal: int) -> bool:
    at = bisect_left(ordinals, ordinal)
    return at < len(ordinals) and ordinals[at] == ordinal


@dataclass(frozen=True, slots=True)
class MembershipProof:
    record: bytes
    bucket: bytes
    leaf_index: int
    size: int
    nodes: tuple[bytes, ...]
    opening: bytes
    ordinal: int


def member_tree(key: bytes, members: bytes) -> MemberTree:
    """The member tree of a serialized roaring bitmap of ordinals, under a 16-byte key."""
    ordinals = BitMap.deserialize(members).to_array()
    n = len(ordinals)
    buckets = bucket_count(n)
    cipher = _encrypt(key, _blocks(ordinals, buckets * BUCKET_RECORDS - n))
    numbers = _be32(ordinals)
    tag = MEMBER_TAG
    records = (
        b"".join(
            [
                sha256(tag + cipher[16 * i : 16 * i + 16] + numbers[4 * i : 4 * i + 4]).digest()[
                    :16
                ]
                for i in range(n)
            ]
        )
        + cipher[RECORD_SIZE * n :]
    )
    chunks = [records[i : i + _BUCKET_BYTES] for i in range(0, len(records), _BUCKET_BYTES)]
    ordered = sorted((member_leaf_hash(chunk), chunk) for chunk in chunks)
    return MemberTree(
        key,
        ordinals,
        tuple(chunk for _, chunk in ordered),
        tuple(leaf for leaf, _ in ordered),
    )
