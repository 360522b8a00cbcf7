"""The append-only access log and its head."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime


class LogHead(Base):
    """The single row every append locks: the log's size and the hash of its last entry."""

    __tablename__ = "log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: The hashes of the Merkle tree's right edge, largest subtree first, concatenated.
    frontier: Mapped[bytes | None] = mapped_column(LargeBinary)


class LogNode(Base):
    """The hash of one perfect subtree of the log's Merkle tree: ``2**level`` leaves from
    ``idx << level`` (levels 1 and up: level 0 is each entry's ``leaf_hash``)."""

    __tablename__ = "log_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AccessLogEntry(Base):
    """An append-only access-log entry; see :mod:`infomediary.audit.log` for the hashing.

    ``customer_id`` is deliberately not a foreign key: entries outlive an erased customer.
    """

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_customer_seq", "customer_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(32))
    categories: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(255))
    request_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: An aggregate entry's contributing customer ordinals (a serialized roaring bitmap); the
    #: leaf hash commits to its SHA-256, so the blob needs no second encoding.
    members: Mapped[bytes | None] = mapped_column(LargeBinary)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: The entry's format: NULL for format 1, 2 for :mod:`infomediary.tlog.entry`'s.
    version: Mapped[int | None] = mapped_column(SmallInteger)
    #: Format 2: a keyed commitment of ``customer_id`` (what the leaf commits to instead).
    customer_commitment: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    #: Format 2: the salted SHA-256 of the detail's plaintext (the salt is inside the detail).
    detail_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    #: Format 2, aggregate entries: the root of the Merkle tree over the members.
    member_root: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    #: Format 2: the structured reason, canonical JSON (rendered when shown).
    reason_data: Mapped[str | None] = mapped_column(Text)


class LogCheckpoint(Base):
    """A signed checkpoint of the log (C2SP tlog-checkpoint in a signed note), kept so that
    consistency can be proved between any two."""

    __tablename__ = "log_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
