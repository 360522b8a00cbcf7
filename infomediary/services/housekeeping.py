"""Housekeeping: deleting what expired and can never be used again, and the recurring jobs.

The recurring job ``housekeeping`` (every ``INFOMEDIARY_HOUSEKEEPING_SECONDS``) deletes, kind by
kind, in batches of :data:`BATCH` rows, each batch its own unit of work (a long delete would
hold locks that requests wait for):

- login sessions past their end (``web_sessions.expires_at``; the passkey ceremony's challenge
  lives in the session's data and goes with it);
- authorization codes expired a day ago whose token family holds no live token (a replayed
  code still revokes the family while it lives, RFC 9700 §4.14.2);
- OAuth tokens past their refresh lifetime (or, without a refresh token, their access
  lifetime) by a day, once every token of their family is: reuse of a rotated refresh token
  revokes the family only while the family's rows are there;
- e-mailed links (``email_tokens``) expired a day ago, used or not;
- released broker answers of a past data epoch: an answer is reused only within its epoch, so
  one from an earlier epoch is never read again. The privacy ledger (``releases``, their
  replays and postings) is a different table and is never touched: the epsilon spent stays;
- lapsed KEK process leases (:func:`infomediary.leases.delete_lapsed`, as ``keys prune`` does);
- finished jobs (done or failed) older than :data:`JOB_RETENTION`.

Nothing an access-log entry, a receipt, a checkpoint or a proof needs is in these tables: the
log's entries name suppliers, purposes and reasons, never a session, code or token row, and
no foreign key points at any of them. A customer's export shows the rows that exist; an expired
credential leaving it is storage limitation (GDPR Art. 5(1)(e)), and its history stays in the
log. The run is counted in the application log, not the access log: like lapsed leases and
expired idempotency keys, deleting expired credentials touches no one's data.

:func:`ensure_recurring` makes sure every recurring job exists and is not given up: what the
scheduling worker (``infomediary worker --with-scheduler``) and the app's own job thread do as
they start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Dialect,
    delete,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased

from infomediary.db import rowcount
from infomediary.instance import Instance
from infomediary.leases import delete_lapsed
from infomediary.logs import get_logger
from infomediary.models import (
    AuthorizationCode,
    EmailToken,
    Job,
    OAuthToken,
    ReleasedAnswer,
    WebSession,
    utcnow,
)
from infomediary.services import (
    checkpoints,
    derived_interests,
    jobs,
    notifications,
    privacy_ledger,
    purchase_push,
)
from infomediary.services.broker import epoch_of
from infomediary.services.uow import unit_of_work
from infomediary.statuses import JobStatus

JOB = "housekeeping"
#: Rows one unit of work deletes.
BATCH = 500
#: How long a code, token or link is kept past its end (clocks differ; a replay is still seen).
GRACE = timedelta(days=1)
#: How long a finished job's row is kept (``infomediary jobs list`` shows them meanwhile).
JOB_RETENTION = timedelta(days=30)
#: Batches of one kind a run deletes at most (the next run goes on).
MAX_BATCHES = 200

log = get_logger("housekeeping")


def _hex(column: Any, dialect: Dialect) -> ColumnElement[str]:
    """Lowercase hex of a binary column, as ``bytes.hex()`` writes it (a code's token family)."""
    if dialect.name == "postgresql":
        return func.encode(column, "hex")
    return func.lower(func.hex(column))


def _token_live(token: Any, cutoff: datetime) -> ColumnElement[bool]:
    """A token still of use (or within the grace): its refresh lifetime, else its access one."""
    return func.coalesce(token.refresh_expires_at, token.expires_at) >= cutoff


def _sessions(session: Session, inst: Instance, now: datetime) -> int:
    hashes = (
        session.execute(
            select(WebSession.token_hash).where(WebSession.expires_at <= now).limit(BATCH)
        )
        .scalars()
        .all()
    )
    if not hashes:
        return 0
    return rowcount(session.execute(delete(WebSession).where(WebSession.token_hash.in_(hashes))))


def _codes(session: Session, inst: Instance, now: datetime) -> int:
    cutoff = now - GRACE
    family = aliased(OAuthToken)
    alive = exists().where(
        family.family_id == _hex(AuthorizationCode.code_hash, session.get_bind().dialect),
        _token_live(family, cutoff),
    )
    hashes = (
        session.execute(
            select(AuthorizationCode.code_hash)
            .where(AuthorizationCode.expires_at < cutoff, ~alive)
            .limit(BATCH)
        )
        .scalars()
        .all()
    )
    if not hashes:
        return 0
    return rowcount(
        session.execute(delete(AuthorizationCode).where(AuthorizationCode.code_hash.in_(hashes)))
    )


def _tokens(session: Session, inst: Instance, now: datetime) -> int:
    cutoff = now - GRACE
    family = aliased(OAuthToken)
    alive = exists().where(family.family_id == OAuthToken.family_id, _token_live(family, cutoff))
    ids = (
        session.execute(
            select(OAuthToken.id)
            .where(OAuthToken.expires_at < cutoff, ~_token_live(OAuthToken, cutoff), ~alive)
            .limit(BATCH)
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0
    return rowcount(session.execute(delete(OAuthToken).where(OAuthToken.id.in_(ids))))


def _email_tokens(session: Session, inst: Instance, now: datetime) -> int:
    hashes = (
        session.execute(
            select(EmailToken.token_hash).where(EmailToken.expires_at < now - GRACE).limit(BATCH)
        )
        .scalars()
        .all()
    )
    if not hashes:
        return 0
    return rowcount(session.execute(delete(EmailToken).where(EmailToken.token_hash.in_(hashes))))


def _answers(session: Session, inst: Instance, now: datetime) -> int:
    hours = inst.settings.broker_epoch_hours
    current = epoch_of(now, hours)
    # older than one epoch's length is from a past epoch whatever the numbering (it changes
    # with INFOMEDIARY_BROKER_EPOCH_HOURS)
    past = or_(
        ReleasedAnswer.epoch < current,
        ReleasedAnswer.created_at < now - timedelta(hours=hours),
    )
    keys = session.execute(
        select(ReleasedAnswer.query_hash, ReleasedAnswer.epoch).where(past).limit(BATCH)
    ).all()
    if not keys:
        return 0
    return rowcount(
        session.execute(
            delete(ReleasedAnswer).where(
                tuple_(ReleasedAnswer.query_hash, ReleasedAnswer.epoch).in_(
                    [(row.query_hash, row.epoch) for row in keys]
                )
            )
        )
    )


def _leases(session: Session, inst: Instance, now: datetime) -> int:
    return delete_lapsed(session, now)


def _jobs(session: Session, inst: Instance, now: datetime) -> int:
    ids = (
        session.execute(
            select(Job.id)
            .where(
                Job.status.in_([JobStatus.DONE, JobStatus.FAILED]),
                Job.finished_at < now - JOB_RETENTION,
            )
            .limit(BATCH)
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0
    return rowcount(session.execute(delete(Job).where(Job.id.in_(ids))))


Deleter = Callable[[Session, Instance, datetime], int]

#: Every kind the job deletes, in the order it does.
KINDS: dict[str, Deleter] = {
    "sessions": _sessions,
    "authorization_codes": _codes,
    "oauth_tokens": _tokens,
    "email_tokens": _email_tokens,
    "released_answers": _answers,
    "process_leases": _leases,
    "jobs": _jobs,
}


def delete_batch(session: Session, inst: Instance, kind: str, now: datetime | None = None) -> int:
    """Delete one batch of ``kind``'s expired rows, in one unit of work; how many went."""
    deleter = KINDS[kind]
    with unit_of_work(session) as uow:
        gone = deleter(session, inst, now or utcnow())
        uow.commit()
    return gone


@dataclass(frozen=True, slots=True)
class Report:
    """Rows deleted per kind."""

    deleted: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def run(session: Session, inst: Instance, now: datetime | None = None) -> Report:
    """Delete every expired row of every kind, batch after batch (at most
    :data:`MAX_BATCHES` per kind: the next run goes on); idempotent."""
    moment = now or utcnow()
    deleted: dict[str, int] = {}
    for kind in KINDS:
        count = 0
        for _ in range(MAX_BATCHES):
            gone = delete_batch(session, inst, kind, moment)
            count += gone
            if gone < BATCH:
                break
        deleted[kind] = count
    report = Report(deleted)
    log.info(
        "housekeeping deleted %d row(s): %s",
        report.total,
        ", ".join(f"{kind} {count}" for kind, count in deleted.items()),
    )
    return report


def _job(session: Session, inst: Instance, job: jobs.JobRun) -> datetime:
    run(session, inst, job.now)
    return job.now + timedelta(seconds=inst.settings.housekeeping_seconds)


jobs.register(JOB, _job, max_attempts=10, lease_seconds=1800)


# -- the recurring jobs ---------------------------------------------------------------------------


def ensure(session: Session, kind: str, run_after: datetime | None = None) -> None:
    """Make sure the recurring job ``kind`` (keyed by its kind) is queued, in the caller's
    transaction: enqueued if missing, queued again if it was given up or finished."""
    row = session.execute(select(Job.id, Job.status).where(Job.key == kind)).first()
    if row is None:
        jobs.enqueue(session, kind, {}, run_after or utcnow(), key=kind)
    elif row.status in (JobStatus.FAILED, JobStatus.DONE):
        session.execute(
            update(Job)
            .where(Job.id == row.id, Job.status == row.status)
            .values(
                status=JobStatus.QUEUED,
                attempts=0,
                run_after=run_after or utcnow(),
                locked_until=None,
                locked_by=None,
            )
        )


def _recurring() -> dict[str, timedelta]:
    """Every recurring job, and how long after its first queueing it first runs."""
    return {
        checkpoints.JOB: timedelta(0),
        JOB: timedelta(0),
        notifications.JOB: timedelta(0),
        privacy_ledger.INDEX_JOB: timedelta(0),
        derived_interests.REFRESH_JOB: derived_interests.REFRESH_EVERY,
        purchase_push.EXPIRE_JOB: purchase_push.EXPIRE_EVERY,
    }


def recurring() -> tuple[str, ...]:
    """The recurring jobs a scheduling worker keeps: checkpoint signing, housekeeping, the
    notification digest, the release postings' indexing, the daily refresh of interests
    from purchases, the expiry of push idempotency keys."""
    return tuple(_recurring())


def ensure_recurring(inst: Instance) -> tuple[str, ...]:
    """Make sure every recurring job exists and is not given up (one unit of work); their
    kinds. A job already queued or running is left as it is, so calling this from every
    starting worker enqueues each once."""
    now = utcnow()
    first = _recurring()
    with inst.sessions() as session, unit_of_work(session) as uow:
        for kind, after in first.items():
            ensure(session, kind, now + after)
        uow.commit()
    return tuple(first)
