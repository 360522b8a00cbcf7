"""Auditors: accounts that read the whole access log, with a password and a TOTP second factor.

Nothing about an auditor is stored in plaintext that could identify them: the address is a
keyed blind index (for login) beside its sealed form (for the operator's list), the TOTP
secret is sealed, the password is an argon2id hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class Auditor(Base):
    """An auditor's account. ``totp_last_step`` is the RFC 6238 time step of the last code
    accepted: a code of that step or an earlier one is never accepted again (§5.2)."""

    __tablename__ = "auditors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    email: Mapped[bytes] = mapped_column(LargeBinary)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[bytes] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
