"""Background jobs: durable rows a worker claims, runs and finishes. No personal data."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import JobStatus

from .base import Base, UTCDateTime, one_of, utcnow


class Job(Base):
    """One unit of background work (:mod:`infomediary.services.jobs`).

    ``payload`` is JSON of identifiers (an offer's id, a request id), never personal data;
    ``last_error`` names an exception's class and code, never its message. A ``running`` job
    whose ``locked_until`` has passed was abandoned by its worker and is claimed again; one
    that used its ``max_attempts`` is ``failed``. ``key``, when given, makes a job unique
    (a second enqueue with the same key is the first job).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        one_of("status", JobStatus),
        Index("ix_jobs_status_run_after", "status", "run_after"),
        Index("ix_jobs_status_finished_at", "status", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(128), unique=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
