"""MyTerms agreements (IEEE 7012): what a customer and a supplier agreed, which agreements each
supplier accepts, and the agreement each customer proffers by default."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class Agreement(Base):
    """One agreement from the roster, made between a customer and a supplier, signed (JWS,
    Ed25519) by the platform as the customer's agent.

    ``agreement_id`` is the roster's id (``sd-base``, ``no-ai-training``, ...): it names a
    public, standard text, not anything about the customer. ``context`` (what the agreement was
    made for, e.g. the intent it answers) is sealed under the customer's data key, since a
    caller may put anything in it. The supplier keeps the same ``jws`` (its own copy).
    """

    __tablename__ = "agreements"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    agreement_id: Mapped[str] = mapped_column(String(64))
    context: Mapped[bytes] = mapped_column(LargeBinary)
    jws: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SupplierTerms(Base):
    """An agreement of the roster that a supplier publishes it accepts (one row each)."""

    __tablename__ = "supplier_terms"

    supplier_id: Mapped[str] = mapped_column(
        ForeignKey("suppliers.id", ondelete="CASCADE"), primary_key=True
    )
    agreement_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomerTerms(Base):
    """The agreement a customer proffers unless they choose another for one intent; no row
    means the roster's default (``sd-base``)."""

    __tablename__ = "customer_terms"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    agreement_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
