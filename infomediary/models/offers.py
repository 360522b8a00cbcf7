"""Offers, their deliveries and supplier blocks; the rewards ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import (
    DeliveryStatus,
    LedgerAccountKind,
    LedgerTransactionKind,
    OfferStatus,
)

from .base import Base, UTCDateTime, one_of, utcnow

# -- offers and rewards ------------------------------------------------------------------------


class Offer(Base):
    """An offer a supplier sent through the broker. It never names its recipients."""

    __tablename__ = "offers"
    __table_args__ = (
        one_of("status", OfferStatus),
        Index("ix_offers_supplier_id_created_at", "supplier_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    criteria: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    reward_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    max_recipients: Mapped[int] = mapped_column(Integer)
    noisy_reach: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    totals_epoch: Mapped[int | None] = mapped_column(Integer)
    totals: Mapped[str | None] = mapped_column(Text)
    #: When the totals were last released ("as of"): a spent budget leaves them as they were.
    totals_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OfferDelivery(Base):
    """An offer in one customer's inbox, and what they did with it."""

    __tablename__ = "offer_deliveries"
    __table_args__ = (one_of("status", DeliveryStatus),)

    offer_id: Mapped[str] = mapped_column(
        ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.DELIVERED)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SupplierBlock(Base):
    """A customer blocked a supplier: no more offers or counts from it include them."""

    __tablename__ = "supplier_blocks"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    supplier_id: Mapped[str] = mapped_column(
        ForeignKey("suppliers.id"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerAccount(Base):
    """A rewards account: a supplier's, a customer's, an offer's escrow, or the platform's."""

    __tablename__ = "ledger_accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_ledger_accounts_kind_owner", "kind", "owner_id", unique=True),
        one_of("kind", LedgerAccountKind),
    )


class LedgerTransaction(Base):
    """A balanced set of entries (they sum to zero)."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (one_of("kind", LedgerTransactionKind),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    supplier_id: Mapped[str | None] = mapped_column(String(36), index=True)
    offer_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
