"""The anonymising broker: match entries, the index version, epsilon budgets, released answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import ReleaseKind

from .base import Base, UTCDateTime, one_of, utcnow

# -- the anonymising broker --------------------------------------------------------------------


class MatchEntry(Base):
    """A customer's blinded match tokens, against a dense ordinal for the in-memory bitmaps.

    Tokens are HMACs (index key) of coarsened attribute values and of eligibility facts
    (category x purpose x mode the policy releases). The row outlives erasure with no tokens
    (``customer_id`` set NULL) so every worker learns to drop the ordinal.
    """

    __tablename__ = "match_entries"
    __table_args__ = {"sqlite_autoincrement": True}

    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), unique=True
    )
    tokens: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    version: Mapped[int] = mapped_column(BigInteger, index=True, default=0)


class BrokerState(Base):
    """One row: the match index's version counter (bumped with every match-entry change)."""

    __tablename__ = "broker_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Releases up to this seq are in ``release_postings``; later ones are read from the releases.
    postings_through: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetAccount(Base):
    """Epsilon spent by one supplier (or ``*`` for the global cap) in one period, micro-units."""

    __tablename__ = "budget_accounts"

    supplier_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    spent_micro: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetCharge(Base):
    """Append-only ledger of epsilon charges; charged before computing, never refunded."""

    __tablename__ = "budget_charges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    period: Mapped[int] = mapped_column(Integer)
    epsilon_micro: Mapped[int] = mapped_column(BigInteger)
    query_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReleasedAnswer(Base):
    """A released noisy answer, reused for the same canonical query in the same data epoch."""

    __tablename__ = "released_answers"

    query_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, index=True)
    answer: Mapped[str] = mapped_column(Text)
    epsilon_micro: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The release that computed this answer (its replays are recorded against it).
    release_seq: Mapped[int | None] = mapped_column(BigInteger)


class Release(Base):
    """One differentially private release and the customers it charged: the per-customer
    privacy ledger's durable form.

    ``members`` is the serialized roaring bitmap of the ordinals whose data could change the
    release (those it counted, suppressed answers included); each of them lost
    ``epsilon_micro``. Every worker folds these rows, in ``seq`` order, into its in-memory
    ledger (:mod:`infomediary.broker.ledger`), so one row per release, never one per customer,
    is what a release writes. Releases are inserted while the global budget row is locked, so
    ``seq`` order is commit order and ``created_at`` never goes backwards along it.
    """

    __tablename__ = "releases"
    __table_args__ = (one_of("kind", ReleaseKind), Index("ix_releases_created_at", "created_at"))

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    #: The canonical criteria (JSON), as the access-log entry records them.
    criteria: Mapped[str] = mapped_column(Text)
    epsilon_micro: Mapped[int] = mapped_column(BigInteger)
    members: Mapped[bytes] = mapped_column(LargeBinary)
    #: The cache key of a count (its replays refer to it), or ``None``.
    query_hash: Mapped[str | None] = mapped_column(String(64))
    offer_id: Mapped[str | None] = mapped_column(String(36), index=True)


class ReleaseReplay(Base):
    """A released answer served again, free, to a supplier of the same organisation: the
    customers it counted see to whom their count went, with no new charge."""

    __tablename__ = "release_replays"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    release_seq: Mapped[int] = mapped_column(ForeignKey("releases.seq"), index=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReleasePosting(Base):
    """The index from a customer to the releases that charged them: for one ordinal and one
    block of 4,096 release seqs, the serialized roaring bitmap of those it is in. One row per
    customer per block (not per release), written after the release by the indexing job, so a
    customer's page of releases reads a few rows instead of every release's member set."""

    __tablename__ = "release_postings"

    ordinal: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    block: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seqs: Mapped[bytes] = mapped_column(LargeBinary)
