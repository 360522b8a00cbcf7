"""Intentcasts: what a customer asks suppliers to bid on, and the suppliers' bids.

What an intent says (its category, description, region and budget) is sealed under the
customer's data key in ``details``; the columns a supplier's listing selects on are keyed
blind indexes (``sector_index``, ``category_index``, ``region_index``), never the values, so
the table read without the keyring does not say who wants what. The intent's schedule
(``needed_by``, the recurrence) and status stay in plaintext: the platform acts on them.
A bid is the supplier's own offer and holds nothing of the customer's.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import BidStatus, IntentStatus, RecurrenceUnit

from .base import Base, UTCDateTime, one_of, utcnow


class Intent(Base):
    """One intent of one customer; its pseudonym is derived from its id (never stored)."""

    __tablename__ = "intents"
    __table_args__ = (
        one_of("status", IntentStatus),
        one_of("recurrence_unit", RecurrenceUnit),
        Index("ix_intents_sector_index_status_created_at", "sector_index", "status", "created_at"),
        Index("ix_intents_customer_id_created_at", "customer_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    #: ``HMAC(blind-index key, domain || value)`` of the sector, category and region.
    sector_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    category_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    region_index: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    #: Sealed JSON: category, description, region, max_price_minor, currency.
    details: Mapped[bytes] = mapped_column(LargeBinary)
    needed_by: Mapped[date] = mapped_column(Date)
    recurrence_every: Mapped[int | None] = mapped_column(Integer)
    recurrence_unit: Mapped[str | None] = mapped_column(String(8))
    #: The last day of a recurring intent's term.
    recurrence_until: Mapped[date | None] = mapped_column(Date)
    #: The roster id of the agreement the customer proffers.
    terms: Mapped[str] = mapped_column(String(64))
    #: When bidding closes (bids are sealed: no supplier ever sees another's).
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: At the deadline, accept the lowest bid within the budget from a verified supplier that
    #: accepts the proffered terms.
    auto_accept: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=IntentStatus.OPEN)
    accepted_bid_id: Mapped[str | None] = mapped_column(String(36))
    #: The grant for fulfilment the customer approved for the winner, if any.
    fulfilment_grant_id: Mapped[str | None] = mapped_column(
        ForeignKey("consent_grants.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Bid(Base):
    """A supplier's bid on an intent: one per supplier and intent."""

    __tablename__ = "bids"
    __table_args__ = (
        one_of("status", BidStatus),
        UniqueConstraint("intent_id", "supplier_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    intent_id: Mapped[str] = mapped_column(ForeignKey("intents.id", ondelete="CASCADE"))
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(Text)
    valid_until: Mapped[date] = mapped_column(Date)
    #: The roster id the supplier accepted: the proffered one, or its one alternative.
    terms: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=BidStatus.OPEN)
    #: The agreement recorded for the winner (``agreements.id``).
    agreement_record_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
