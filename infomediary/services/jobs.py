"""The job runner: durable background work, claimed atomically, retried, given up after N.

The seam every feature uses, whatever runs the jobs:

- ``enqueue(session, kind, payload, run_after=None, *, key=None)`` adds a ``jobs`` row in the
  caller's transaction, so a job exists exactly when the work that asked for it committed.
  ``payload`` is JSON of identifiers, never personal data; ``key`` makes a job unique.
- ``register(kind, handler, max_attempts=..., lease_seconds=...)``: the handler of a kind,
  ``handler(session, inst, run) -> datetime | None``. It does its work as a use case (its own
  unit of work) and returns when to run again (a recurring job) or ``None`` (done). A handler
  whose effect must happen once calls :func:`complete` inside its own transaction, so the
  effect and the job's completion commit together; any other handler must be idempotent.

Running: :func:`run_pending` runs every due job synchronously (tests, the CLI); a
:class:`Worker` thread does the same in the background (the app starts one). A claim is one
conditional UPDATE of a row read ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite transactions
are ``BEGIN IMMEDIATE``), so two workers never hold one job. A claim is a lease: a worker
that dies leaves its job ``running`` until ``locked_until``, when another claims it again. A
failed attempt is retried with backoff; the ``max_attempts``-th failure (or lapsed lease)
leaves the job ``failed``, its ``last_error`` naming the exception's class and code, never
its message (which could hold personal data). Every write of a runner after its claim is
conditional on its lease token, so a worker that lost its lease changes nothing.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, event, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.db import rowcount
from infomediary.errors import ServiceError
from infomediary.logs import get_logger
from infomediary.models import Job, utcnow
from infomediary.services.uow import unit_of_work
from infomediary.statuses import JobStatus

if TYPE_CHECKING:
    from infomediary.instance import Instance

log = get_logger("jobs")

DEFAULT_ATTEMPTS = 5
DEFAULT_LEASE_SECONDS = 300
#: Seconds before the n-th retry: 5, 10, 20, ... at most an hour.
BACKOFF_SECONDS = 5
MAX_BACKOFF_SECONDS = 3600
ERROR_LENGTH = 255
#: The soonest a recurring job runs again after a run.
MIN_INTERVAL = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class JobRun:
    """A claimed job, as its handler sees it. ``now`` is the runner's clock: the handler acts
    at that time (tests run jobs due in the future by passing it)."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    token: str
    now: datetime


Handler = Callable[[Session, "Instance", JobRun], datetime | None]


@dataclass(frozen=True, slots=True)
class Registration:
    handler: Handler
    max_attempts: int
    lease: timedelta


_REGISTRY: dict[str, Registration] = {}


class LeaseLost(RuntimeError):
    """The job's lease lapsed and another worker claimed it: this run must change nothing."""


def register(
    kind: str,
    handler: Handler,
    *,
    max_attempts: int = DEFAULT_ATTEMPTS,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> None:
    """Name ``handler`` the one handler of ``kind`` (registering it again replaces it)."""
    if max_attempts < 1 or lease_seconds < 1:
        raise ValueError("a job needs at least one attempt and a positive lease")
    _REGISTRY[kind] = Registration(handler, max_attempts, timedelta(seconds=lease_seconds))


def registered() -> frozenset[str]:
    return frozenset(_REGISTRY)


# -- enqueueing: in the caller's transaction ----------------------------------------------------

_WAITERS: set[threading.Event] = set()
_WAKE_FLAG = "infomediary.jobs.wake"


def _wake_all(session: Session) -> None:
    session.info.pop(_WAKE_FLAG, None)
    for waiter in list(_WAITERS):
        waiter.set()


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    run_after: datetime | None = None,
    *,
    key: str | None = None,
) -> str:
    """Add a job in the caller's transaction (it runs once that commits); returns its id.

    With ``key``, a job with that key already there is the job (its id is returned)."""
    registration = _REGISTRY.get(kind)
    job = Job(
        id=str(uuid.uuid4()),
        kind=kind,
        key=key,
        payload=json.dumps(payload, sort_keys=True, separators=(",", ":")),
        status=JobStatus.QUEUED,
        attempts=0,
        max_attempts=registration.max_attempts if registration else DEFAULT_ATTEMPTS,
        run_after=run_after or utcnow(),
    )
    if key is not None:
        existing = session.execute(select(Job.id).where(Job.key == key)).scalar_one_or_none()
        if existing is not None:
            return str(existing)
        try:
            with session.begin_nested():  # a savepoint: losing the race keeps the caller's work
                session.add(job)
        except IntegrityError:
            return str(session.execute(select(Job.id).where(Job.key == key)).scalar_one())
    else:
        session.add(job)
    if not session.info.get(_WAKE_FLAG):
        session.info[_WAKE_FLAG] = True
        event.listen(session, "after_commit", _wake_all, once=True)
    return job.id


# -- claiming and finishing -----------------------------------------------------------------


def _due(now: datetime) -> Any:
    return or_(
        and_(Job.status == JobStatus.QUEUED, Job.run_after <= now),
        and_(Job.status == JobStatus.RUNNING, Job.locked_until <= now),
    )


def claim(session: Session, now: datetime, kinds: Iterable[str] | None = None) -> JobRun | None:
    """Take the next due job of ``kinds`` (default: every registered kind), or ``None``.

    One transaction: the row is read ``FOR UPDATE SKIP LOCKED`` and taken by an UPDATE that
    matches only if nobody changed it since, so concurrent workers never take one job. A job
    abandoned on its last attempt is marked ``failed`` on the way."""
    wanted = sorted(set(kinds) if kinds is not None else set(_REGISTRY))
    if not wanted:
        return None
    with unit_of_work(session) as uow:
        claimed: JobRun | None = None
        changed = False
        for _ in range(100):
            row = session.execute(
                select(Job.id, Job.kind, Job.payload, Job.status, Job.attempts, Job.max_attempts)
                .where(Job.kind.in_(wanted), _due(now))
                .order_by(Job.run_after, Job.created_at, Job.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                break
            same = (Job.id == row.id, Job.status == row.status, Job.attempts == row.attempts)
            if row.attempts >= row.max_attempts:  # its last worker died with the lease
                session.execute(
                    update(Job)
                    .where(*same)
                    .values(
                        status=JobStatus.FAILED,
                        locked_until=None,
                        locked_by=None,
                        finished_at=now,
                        last_error=f"lease lapsed on attempt {row.attempts}",
                    )
                )
                changed = True
                log.warning("job %s (%s) failed: its lease lapsed", row.id, row.kind)
                continue
            token = secrets.token_hex(16)
            lease = _REGISTRY[row.kind].lease if row.kind in _REGISTRY else timedelta(minutes=5)
            taken = rowcount(
                session.execute(
                    update(Job)
                    .where(*same)
                    .values(
                        status=JobStatus.RUNNING,
                        attempts=row.attempts + 1,
                        locked_until=now + lease,
                        locked_by=token,
                        started_at=now,
                    )
                )
            )
            if not taken:  # pragma: no cover - the row lock makes this a lost race only
                continue
            claimed = JobRun(
                id=row.id,
                kind=row.kind,
                payload=json.loads(row.payload),
                attempt=row.attempts + 1,
                max_attempts=row.max_attempts,
                token=token,
                now=now,
            )
            changed = True
            break
        if changed:
            uow.commit()
        return claimed


def _held(run: JobRun) -> tuple[Any, ...]:
    return (Job.id == run.id, Job.locked_by == run.token, Job.status == JobStatus.RUNNING)


def _completion(run: JobRun, run_after: datetime | None) -> dict[str, Any]:
    release = {"locked_until": None, "locked_by": None, "finished_at": run.now}
    if run_after is None:
        return {**release, "status": JobStatus.DONE, "last_error": None}
    # a recurring job runs again no sooner than MIN_INTERVAL: never in a loop in one call
    again = max(run_after, run.now + MIN_INTERVAL)
    return {**release, "status": JobStatus.QUEUED, "run_after": again, "attempts": 0}


def complete(session: Session, run: JobRun, run_after: datetime | None = None) -> None:
    """Finish the job in the handler's own transaction (done, or queued again at
    ``run_after``): its effect and its completion then commit together. Raises
    :class:`LeaseLost` if another worker holds the job now (the handler's transaction must
    then be dropped)."""
    done = rowcount(
        session.execute(update(Job).where(*_held(run)).values(**_completion(run, run_after)))
    )
    if not done:
        raise LeaseLost(f"job {run.id} is no longer held by this run")


def _finish(session: Session, run: JobRun, run_after: datetime | None) -> None:
    """The runner's completion after the handler returned (nothing if the handler did it)."""
    with unit_of_work(session) as uow:
        session.execute(update(Job).where(*_held(run)).values(**_completion(run, run_after)))
        uow.commit()


def describe(exc: BaseException) -> str:
    """An error as a job keeps it: the class and, for a domain error, its code; never the
    message, which may hold personal data."""
    name = type(exc).__name__
    code = exc.code if isinstance(exc, ServiceError) else None
    return (f"{name}: {code}" if code else name)[:ERROR_LENGTH]


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1)))


def _failed(session: Session, run: JobRun, exc: BaseException) -> None:
    """Record a failed attempt: retried after a backoff, or ``failed`` after the last."""
    with unit_of_work(session) as uow:
        last = run.attempt >= run.max_attempts
        values: dict[str, Any] = {
            "locked_until": None,
            "locked_by": None,
            "last_error": describe(exc),
        }
        if last:
            values.update(status=JobStatus.FAILED, finished_at=run.now)
        else:
            values.update(status=JobStatus.QUEUED, run_after=run.now + backoff(run.attempt))
        session.execute(update(Job).where(*_held(run)).values(**values))
        uow.commit()
    log.warning(
        "job %s (%s) attempt %d/%d: %s%s",
        run.id,
        run.kind,
        run.attempt,
        run.max_attempts,
        describe(exc),
        "; given up" if last else "; will retry",
    )


# -- running ------------------------------------------------------------------------------------


def run_one(
    inst: Instance, now: datetime | None = None, kinds: Iterable[str] | None = None
) -> bool:
    """Claim and run one due job; ``False`` if none was due."""
    with inst.sessions() as session:
        run = claim(session, now or utcnow(), kinds)
    if run is None:
        return False
    registration = _REGISTRY[run.kind]
    with inst.sessions() as session:
        try:
            again = registration.handler(session, inst, run)
        except LeaseLost:
            session.rollback()
            log.warning("job %s (%s): lease lost to another worker", run.id, run.kind)
            return True
        except Exception as exc:
            session.rollback()
            _failed(session, run, exc)
            return True
        _finish(session, run, again)
    return True


def run_pending(
    inst: Instance,
    now: datetime | None = None,
    *,
    kinds: Iterable[str] | None = None,
    limit: int = 10_000,
    stop: threading.Event | None = None,
) -> int:
    """Run due jobs one after another until none is due (or ``limit``); returns how many ran.

    ``now`` is the clock for what is due and for the handlers (default: the real time). A job
    that a handler schedules for ``now`` or earlier runs in the same call."""
    kinds = list(kinds) if kinds is not None else None
    ran = 0
    while ran < limit and not (stop is not None and stop.is_set()):
        if not run_one(inst, now, kinds):
            break
        ran += 1
    return ran


class Worker:
    """Runs due jobs in a background thread until stopped; wakes at once when a job is
    enqueued in this process, and otherwise every ``poll_seconds``."""

    def __init__(self, inst: Instance, *, poll_seconds: float = 2.0, name: str = "jobs") -> None:
        self.inst = inst
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"infomediary-{name}", daemon=True)

    def start(self) -> Worker:
        _WAITERS.add(self._wake)
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the job in hand (waiting at most ``timeout`` seconds); idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        _WAITERS.discard(self._wake)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                ran = run_pending(self.inst, stop=self._stop)
            except Exception as exc:  # the database went away: try again at the next poll
                log.warning("job worker: %s", describe(exc))
                ran = 0
            if not ran:
                self._wake.wait(self.poll_seconds)


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: str
    kind: str
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    locked_until: datetime | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "run_after": at(self.run_after),
            "locked_until": at(self.locked_until),
            "last_error": self.last_error,
            "created_at": at(self.created_at),
            "finished_at": at(self.finished_at),
            "payload": self.payload,
        }


def list_jobs(session: Session, status: str | None = None, limit: int = 100) -> list[JobInfo]:
    """Jobs, newest first, optionally of one status (a read: nothing is committed)."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    return [
        JobInfo(
            id=job.id,
            kind=job.kind,
            status=job.status,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            run_after=job.run_after,
            locked_until=job.locked_until,
            last_error=job.last_error,
            created_at=job.created_at,
            finished_at=job.finished_at,
            payload=json.loads(job.payload),
        )
        for job in session.execute(query).scalars()
    ]
