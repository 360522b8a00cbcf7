"""Purchases a customer imported from retailers' files, and the imports that brought them.

Nothing personal is stored in plaintext: each line is one sealed JSON record under the
customer's DEK (what was bought, from whom, when, for how much, from which file), looked up
through keyed blind indexes (:mod:`infomediary.services.purchases`). An import is ``staging``
while its batches are written, and its lines are invisible until one final commit makes it
``done``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, one_of, utcnow


class PurchaseImportStatus(StrEnum):
    """An import is written in batches while ``staging`` and seen only once ``done``."""

    STAGING = "staging"
    DONE = "done"


class PurchaseImport(Base):
    """One file imported for one customer.

    ``detail`` is sealed (record id: the import's id): the source's name and the retailers it
    named. ``lease_id`` names the process lease of the process writing a ``staging`` import,
    so a later run can tell an import whose process died from one still being written.
    """

    __tablename__ = "purchase_imports"
    __table_args__ = (one_of("status", PurchaseImportStatus),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=PurchaseImportStatus.STAGING)
    format: Mapped[str] = mapped_column(String(32))
    imported: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[bytes] = mapped_column(LargeBinary)
    lease_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Purchase(Base):
    """One purchase line: ``sealed`` holds every field of the normalised line.

    ``line_token`` is HMAC(purchase index key, customer, retailer, line key), unique per
    customer, so importing the same line again adds nothing; ``retailer_token`` is
    HMAC(purchase index key, customer, retailer), so one retailer's lines can be deleted
    together. Both are keyed per customer: equal tokens of two customers say nothing.
    """

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("customer_id", "line_token"),
        Index("ix_purchases_customer_id_retailer_token", "customer_id", "retailer_token"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    import_id: Mapped[str] = mapped_column(
        ForeignKey("purchase_imports.id", ondelete="CASCADE"), index=True
    )
    line_token: Mapped[bytes] = mapped_column(LargeBinary(32))
    retailer_token: Mapped[bytes] = mapped_column(LargeBinary(32))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
