"""Operational state with no personal data: key fingerprints, the keyring state, KEK leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class KeyFingerprint(Base):
    """Fingerprints of the keyring's keys, so a wrong keyring is refused at start."""

    __tablename__ = "key_fingerprints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyringState(Base):
    """One row: the KEK version every process wraps new data keys under.

    ``keys rotate`` sets it (after saving the new KEK to the keyring) before it re-wraps;
    a transaction storing a new data key reads it under a share lock, so no key wrapped
    under an older version can be committed after the rotation switched.
    """

    __tablename__ = "keyring_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    active_kek: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessLease(Base):
    """A running process's claim on the KEK versions it may still wrap data keys with.

    Refreshed by the process (see :mod:`infomediary.leases`); ``keys prune`` refuses to
    remove a version a lease names until ``expires_at``. No personal data.
    """

    __tablename__ = "process_leases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    kek_versions: Mapped[str] = mapped_column(String(255))
    active_kek: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    releases_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def versions(self) -> list[int]:
        return sorted(int(v) for v in self.kek_versions.split(",") if v)
