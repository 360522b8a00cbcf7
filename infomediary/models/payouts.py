"""Payout requests from a customer's rewards wallet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import PayoutStatus

from .base import Base, UTCDateTime, one_of, utcnow


class PayoutRequest(Base):
    """A customer asked to be paid ``amount_cents`` of their rewards.

    The amount moved from their ledger account to the platform's "payouts pending" account
    in the same transaction as this row (``transaction_id``); settling moves it on to "paid
    out", cancelling moves it back (``closing_transaction_id``). ``destination`` (an IBAN, a
    PayPal address) is sealed under the customer's DEK and shown to them masked.
    """

    __tablename__ = "payout_requests"
    __table_args__ = (
        one_of("status", PayoutStatus),
        Index("ix_payout_requests_status_requested_at", "status", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    destination: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=PayoutStatus.REQUESTED)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"))
    #: The transaction that settled or cancelled it.
    closing_transaction_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
