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
:class:`Worker` thread does the same in the background (the app starts one, unless
``INFOMEDIARY_REDIS_URL`` is set). With Redis, the row is still the job; RQ only carries its id:
after the enqueueing transaction commits, the id is pushed onto the ``infomediary`` RQ queue (at
``run_after`` through RQ's scheduler when that is later), and :func:`deliver`, the RQ task, runs
that one job through the same claim, so a message delivered twice runs the job once. A retry or
a recurring job's next run pushes a message again. Messages may be lost (this Redis keeps
nothing on disk, a push may fail): :func:`serve_rq` (``infomediary worker``) also sweeps the
table for due jobs at start and every ``sweep_seconds``, so nothing depends on Redis. A claim is one
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
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine, and_, event, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from infomediary import metrics
from infomediary.db import fork_safe, rowcount
from infomediary.errors import ServiceError
from infomediary.logs import get_logger
from infomediary.models import Job, utcnow
from infomediary.services.uow import unit_of_work
from infomediary.statuses import JobStatus

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

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
#: ``session.info`` keys: the jobs to announce once the transaction commits, and whether the
#: session's commit and rollback are listened to.
_PENDING = "infomediary.jobs.pending"
_LISTENING = "infomediary.jobs.listening"


@dataclass(frozen=True, slots=True)
class _Announcement:
    job_id: str
    run_after: datetime
    timeout: int


def _announce(session: Session, job_id: str, kind: str, run_after: datetime) -> None:
    """After the caller's transaction commits: wake this process's workers and push the job's
    id to the RQ queue of the session's database, if it has one (nothing if it rolls back)."""
    registration = _REGISTRY.get(kind)
    lease = registration.lease if registration else timedelta(seconds=DEFAULT_LEASE_SECONDS)
    session.info.setdefault(_PENDING, []).append(
        _Announcement(job_id, run_after, int(lease.total_seconds()))
    )
    if not session.info.get(_LISTENING):
        session.info[_LISTENING] = True
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:  # a savepoint released: not committed yet
        return
    pending: list[_Announcement] = session.info.pop(_PENDING, [])
    if not pending:
        return
    for waiter in list(_WAITERS):
        waiter.set()
    transport = _transport_of(session)
    if transport is not None:
        for announcement in pending:
            transport.push(announcement.job_id, announcement.run_after, announcement.timeout)


def _after_rollback(session: Session) -> None:
    if session.get_nested_transaction() is None:  # the whole transaction: nothing to announce
        session.info.pop(_PENDING, None)


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
    _announce(session, job.id, kind, job.run_after)
    return job.id


# -- the transport: Redis and RQ tell workers which job to run ---------------------------------

QUEUE_NAME = "infomediary"
#: How long RQ keeps a task that raised (``deliver`` records a handler's failure on the row
#: and returns; only a lost database makes it raise).
FAILURE_TTL = 24 * 3600
SWEEP_SECONDS = 30.0
#: Seconds a push may wait for Redis, and seconds no push is tried after one failed.
PUSH_TIMEOUT = 5.0
PUSH_PAUSE = 30.0


def redacted(url: str) -> str:
    """``url`` without its password, to be named in a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Transport:
    """Pushes job ids onto an RQ queue: at once, or at ``run_after`` (RQ's scheduler moves a
    scheduled message onto the queue when it is due). A failed push is logged, never raised:
    the caller's transaction has committed, and the worker's sweep runs the job anyway. Pushes
    happen in the committing request, so they wait at most ``PUSH_TIMEOUT`` seconds, and after
    a failure none is tried for ``PUSH_PAUSE`` seconds (a Redis that is away costs one wait)."""

    def __init__(self, url: str, queue_name: str = QUEUE_NAME) -> None:
        from redis import Redis
        from rq import Queue

        self.url = url
        self.connection: Redis = Redis.from_url(
            url, socket_connect_timeout=PUSH_TIMEOUT, socket_timeout=PUSH_TIMEOUT
        )
        self.queue: Queue = Queue(name=queue_name, connection=self.connection)
        self._paused_until = 0.0

    def push(self, job_id: str, run_after: datetime, timeout: int) -> None:
        from redis.exceptions import RedisError

        if time.monotonic() < self._paused_until:
            log.info(
                "job %s: not pushed, Redis was unreachable just now; the sweep runs it", job_id
            )
            return

        options: dict[str, Any] = {
            "job_timeout": timeout,  # RQ interrupts a handler when its lease ends
            "result_ttl": 0,  # the row holds the outcome
            "failure_ttl": FAILURE_TTL,
            "description": f"infomediary job {job_id}",
        }
        at = run_after if run_after.tzinfo else run_after.replace(tzinfo=UTC)
        try:
            if at > utcnow():
                self.queue.enqueue_at(at, deliver, job_id, **options)
            else:
                self.queue.enqueue(deliver, job_id, **options)
        except RedisError as exc:
            self._paused_until = time.monotonic() + PUSH_PAUSE
            log.warning(
                "job %s: not pushed to Redis at %s (%s); the sweep will run it",
                job_id,
                redacted(self.url),
                type(exc).__name__,
            )


_TRANSPORTS: weakref.WeakKeyDictionary[Engine, Transport] = weakref.WeakKeyDictionary()


def use_redis(
    inst: Instance, url: str | None = None, queue_name: str = QUEUE_NAME
) -> Transport | None:
    """With Redis (``url``, by default ``INFOMEDIARY_REDIS_URL``), jobs committed through
    ``inst``'s sessions are pushed to its RQ queue from now on (idempotent); the transport, or
    ``None`` without Redis."""
    url = inst.settings.redis_url if url is None else url
    if not url:
        return None
    transport = _TRANSPORTS.get(inst.engine)
    if transport is None or transport.url != url or transport.queue.name != queue_name:
        transport = _TRANSPORTS[inst.engine] = Transport(url, queue_name)
    return transport


def _transport_of(session: Session) -> Transport | None:
    bind = session.bind
    engine = bind if isinstance(bind, Engine) else getattr(bind, "engine", None)
    return _TRANSPORTS.get(engine) if engine is not None else None


# -- claiming and finishing -----------------------------------------------------------------


def _due(now: datetime) -> Any:
    return or_(
        and_(Job.status == JobStatus.QUEUED, Job.run_after <= now),
        and_(Job.status == JobStatus.RUNNING, Job.locked_until <= now),
    )


def claim(
    session: Session,
    now: datetime,
    kinds: Iterable[str] | None = None,
    *,
    job_id: str | None = None,
) -> JobRun | None:
    """Take the next due job of ``kinds`` (default: every registered kind), or ``None``; with
    ``job_id``, that job only, if it is due (a job already taken, done or not due is ``None``).

    One transaction: the row is read ``FOR UPDATE SKIP LOCKED`` and taken by an UPDATE that
    matches only if nobody changed it since, so concurrent workers never take one job. A job
    abandoned on its last attempt is marked ``failed`` on the way."""
    wanted = sorted(set(kinds) if kinds is not None else set(_REGISTRY))
    if not wanted:
        return None
    with unit_of_work(session) as uow:
        claimed: JobRun | None = None
        changed = False
        only = (Job.id == job_id,) if job_id is not None else ()
        for _ in range(100):
            row = session.execute(
                select(Job.id, Job.kind, Job.payload, Job.status, Job.attempts, Job.max_attempts)
                .where(Job.kind.in_(wanted), _due(now), *only)
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
                metrics.JOB_FAILURES.labels(row.kind).inc()
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
    values = _completion(run, run_after)
    done = rowcount(session.execute(update(Job).where(*_held(run)).values(**values)))
    if not done:
        raise LeaseLost(f"job {run.id} is no longer held by this run")
    if run_after is not None:
        _announce(session, run.id, run.kind, values["run_after"])


def _finish(session: Session, run: JobRun, run_after: datetime | None) -> None:
    """The runner's completion after the handler returned (nothing if the handler did it)."""
    with unit_of_work(session) as uow:
        values = _completion(run, run_after)
        done = rowcount(session.execute(update(Job).where(*_held(run)).values(**values)))
        if done and run_after is not None:
            _announce(session, run.id, run.kind, values["run_after"])
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
        held = rowcount(session.execute(update(Job).where(*_held(run)).values(**values)))
        if held and not last:
            _announce(session, run.id, run.kind, values["run_after"])
        uow.commit()
    metrics.JOB_FAILURES.labels(run.kind).inc()
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
    inst: Instance,
    now: datetime | None = None,
    kinds: Iterable[str] | None = None,
    *,
    job_id: str | None = None,
) -> bool:
    """Claim and run one due job (with ``job_id``: that one); ``False`` if none was due."""
    with inst.sessions() as session:
        run = claim(session, now or utcnow(), kinds, job_id=job_id)
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
                with fork_safe():
                    ran = run_pending(self.inst, stop=self._stop)
            except Exception as exc:  # the database went away: try again at the next poll
                log.warning("job worker: %s", describe(exc))
                ran = 0
            if not ran:
                self._wake.wait(self.poll_seconds)


# -- running on RQ workers ------------------------------------------------------------------------

#: The instance :func:`serve_rq` runs jobs for; a task run by another RQ worker opens its own.
_SERVING: Instance | None = None


def deliver(job_id: str) -> bool:
    """The RQ task: run the job ``job_id`` through the usual claim and lease, if it is due and
    nobody holds it (so a message delivered twice runs the job once); ``True`` if it ran.

    Importable by path (``infomediary.services.jobs.deliver``). Inside ``infomediary worker``
    it uses the worker's instance; run by any other RQ worker, it opens the instance that
    the ``INFOMEDIARY_*`` environment names, for this one job."""
    if _SERVING is not None:
        return _deliver(_SERVING, job_id)
    from infomediary.config import load_config
    from infomediary.instance import open_instance

    inst = open_instance(load_config())
    try:
        use_redis(inst)
        return _deliver(inst, job_id)
    finally:
        inst.close()


def _deliver(inst: Instance, job_id: str) -> bool:
    if run_one(inst, job_id=job_id):
        return True
    # Not run: done, held by another worker (whose run announces what follows), or not due
    # yet (a message early by the clocks' difference): only the last is announced again.
    with inst.sessions() as session:
        row = session.execute(
            select(Job.kind, Job.status, Job.run_after).where(Job.id == job_id)
        ).first()
        session.rollback()
    if row is not None and row.status == JobStatus.QUEUED and row.run_after > utcnow():
        transport = _TRANSPORTS.get(inst.engine)
        registration = _REGISTRY.get(row.kind)
        if transport is not None and registration is not None:
            transport.push(job_id, row.run_after, int(registration.lease.total_seconds()))
    return False


def sweep(inst: Instance, stop: threading.Event | None = None) -> int:
    """Run every due job straight from the table (their messages may be lost); how many ran."""
    try:
        return run_pending(inst, stop=stop)
    except SQLAlchemyError as exc:  # the database went away: the next sweep tries again
        log.warning("job sweep: %s", describe(exc))
        return 0


def serve_rq(
    inst: Instance,
    *,
    burst: bool = False,
    sweep_seconds: float = SWEEP_SECONDS,
    queue_name: str = QUEUE_NAME,
    with_scheduler: bool = False,
) -> int:
    """Run jobs from the RQ queue of ``INFOMEDIARY_REDIS_URL`` in this process (a
    ``SimpleWorker``), and sweep the table at start and every ``sweep_seconds`` in a thread.
    ``with_scheduler``: this worker also runs RQ's scheduler, which moves messages due later
    onto the queue when they are due (one such worker is enough; RQ's lock keeps it to one).
    Stops on SIGINT or SIGTERM after the job in hand (RQ's warm shutdown). ``burst``: move
    the scheduled messages already due (once, as RQ's burst does), run what the queue holds,
    then sweep once, and return.
    Returns how many jobs the sweeps ran. Raises ``redis.RedisError`` when Redis is unreachable."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    global _SERVING
    transport = use_redis(inst, queue_name=queue_name)
    if transport is None:
        raise ValueError("serve_rq needs INFOMEDIARY_REDIS_URL")
    # The worker's own connection: its blocking pops outlast the pushes' socket timeout.
    connection = Redis.from_url(transport.url, socket_connect_timeout=PUSH_TIMEOUT)
    connection.ping()
    worker = SimpleWorker([Queue(name=queue_name, connection=connection)], connection=connection)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop = threading.Event()
    _SERVING = inst
    try:
        if burst:
            worker.work(burst=True, with_scheduler=True)
            return sweep(inst)
        swept: list[int] = []
        sweeper = threading.Thread(
            target=lambda: swept.append(_sweeping_count(inst, stop, sweep_seconds)),
            name="infomediary-sweep",
            daemon=True,
        )
        sweeper.start()
        worker.work(with_scheduler=with_scheduler)
        stop.set()
        sweeper.join(60)
        return sum(swept)
    finally:
        stop.set()
        _SERVING = None
        connection.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _sweeping_count(inst: Instance, stop: threading.Event, every: float) -> int:
    ran = 0
    while not stop.is_set():
        ran += sweep(inst, stop)
        stop.wait(every)
    return ran


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
