"""The job runner: enqueue in the caller's transaction, claim atomically, retry, give up,
reclaim after a lapsed lease, never run one job twice at once; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infomediary.cli import main
from infomediary.errors import NotFound
from infomediary.instance import Instance, open_instance
from infomediary.models import Job, utcnow
from infomediary.services import jobs
from infomediary.services.uow import unit_of_work
from infomediary.statuses import JobStatus

KIND = "test.job"


@pytest.fixture
def calls() -> Iterator[list[tuple[str, int]]]:
    """Handlers of test kinds record (job id, attempt) here; unregistered afterwards."""
    seen: list[tuple[str, int]] = []
    yield seen
    for kind in [k for k in jobs.registered() if k.startswith("test.")]:
        jobs._REGISTRY.pop(kind)


def handler_of(
    seen: list[tuple[str, int]], fail_times: int = 0, exc: Exception | None = None
) -> jobs.Handler:
    def handle(_session: Session, _inst: Instance, run: jobs.JobRun) -> datetime | None:
        seen.append((run.id, run.attempt))
        if run.attempt <= fail_times:
            raise exc or RuntimeError("boom")
        return None

    return handle


def add(inst: Instance, kind: str = KIND, **kwargs: Any) -> str:
    with inst.sessions() as session, unit_of_work(session) as uow:
        job_id = jobs.enqueue(session, kind, {"n": 1}, **kwargs)
        uow.commit()
    return job_id


def job(inst: Instance, job_id: str) -> Job:
    with inst.sessions() as session:
        return session.get_one(Job, job_id)


def test_a_job_is_enqueued_with_its_transaction_and_run_once(inst: Instance, calls) -> None:
    jobs.register(KIND, handler_of(calls))
    with inst.sessions() as session, unit_of_work(session):
        jobs.enqueue(session, KIND, {"n": 1})  # the caller's work is rolled back: no job
    assert jobs.run_pending(inst) == 0
    job_id = add(inst)
    assert job(inst, job_id).status == JobStatus.QUEUED
    assert jobs.run_pending(inst) == 1
    assert jobs.run_pending(inst) == 0
    done = job(inst, job_id)
    assert (done.status, done.attempts, done.locked_by) == (JobStatus.DONE, 1, None)
    assert done.finished_at is not None
    assert calls == [(job_id, 1)]
    assert json.loads(done.payload) == {"n": 1}


def test_a_job_runs_when_it_is_due(inst: Instance, calls) -> None:
    jobs.register(KIND, handler_of(calls))
    later = utcnow() + timedelta(hours=1)
    job_id = add(inst, run_after=later)
    assert jobs.run_pending(inst) == 0
    assert jobs.run_pending(inst, later + timedelta(seconds=1)) == 1
    assert calls == [(job_id, 1)]


def test_only_registered_kinds_are_claimed(inst: Instance, calls) -> None:
    job_id = add(inst, "test.unknown")
    assert jobs.run_pending(inst) == 0
    assert job(inst, job_id).status == JobStatus.QUEUED  # left for a worker that knows it
    jobs.register("test.unknown", handler_of(calls))
    assert jobs.run_pending(inst) == 1


def test_a_key_makes_a_job_unique(inst: Instance, calls) -> None:
    jobs.register(KIND, handler_of(calls))
    first = add(inst, key="offer.close:1")
    assert add(inst, key="offer.close:1") == first
    with inst.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_a_failed_attempt_is_retried_after_a_backoff(inst: Instance, calls) -> None:
    jobs.register(KIND, handler_of(calls, fail_times=2), max_attempts=5)
    job_id = add(inst)
    now = utcnow()
    assert jobs.run_pending(inst, now) == 1
    failed = job(inst, job_id)
    assert (failed.status, failed.attempts, failed.last_error) == (
        JobStatus.QUEUED,
        1,
        "RuntimeError",
    )
    assert failed.run_after == now + jobs.backoff(1)
    assert jobs.run_pending(inst, now) == 0  # not before its backoff
    later = now + timedelta(minutes=10)
    assert jobs.run_pending(inst, later) == 1  # the second attempt fails too
    assert job(inst, job_id).run_after == later + jobs.backoff(2)
    assert jobs.run_pending(inst, later + timedelta(minutes=10)) == 1
    done = job(inst, job_id)
    assert (done.status, done.attempts, done.last_error) == (JobStatus.DONE, 3, None)
    assert [attempt for _, attempt in calls] == [1, 2, 3]


def test_a_job_fails_after_its_last_attempt_naming_no_personal_data(inst: Instance, calls) -> None:
    secret = "ada@example.org lives at 1 Infinite Loop"
    jobs.register(KIND, handler_of(calls, fail_times=99, exc=NotFound(secret)), max_attempts=3)
    job_id = add(inst)
    now = utcnow()
    for hour in range(5):
        jobs.run_pending(inst, now + timedelta(hours=hour))
    failed = job(inst, job_id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 3)
    assert failed.last_error == "NotFound: not_found"
    assert secret not in (failed.last_error or "")
    assert len(calls) == 3


def test_a_lapsed_lease_is_claimed_again_and_the_old_run_changes_nothing(
    inst: Instance, calls
) -> None:
    jobs.register(KIND, handler_of(calls), lease_seconds=60)
    job_id = add(inst)
    now = utcnow()
    with inst.sessions() as session:
        crashed = jobs.claim(session, now)  # this worker dies with the job in hand
    assert crashed is not None
    assert crashed.id == job_id
    assert job(inst, job_id).status == JobStatus.RUNNING
    assert jobs.run_pending(inst, now + timedelta(seconds=59)) == 0  # still leased
    assert jobs.run_pending(inst, now + timedelta(seconds=61)) == 1
    done = job(inst, job_id)
    assert (done.status, done.attempts) == (JobStatus.DONE, 2)
    assert calls == [(job_id, 2)]
    # the first worker comes back: whatever it tries to finish is refused
    with inst.sessions() as session, unit_of_work(session), pytest.raises(jobs.LeaseLost):
        jobs.complete(session, crashed)
    assert job(inst, job_id).finished_at == done.finished_at


def test_a_lease_lapsing_on_the_last_attempt_fails_the_job(inst: Instance, calls) -> None:
    jobs.register(KIND, handler_of(calls), max_attempts=1, lease_seconds=60)
    job_id = add(inst)
    now = utcnow()
    with inst.sessions() as session:
        assert jobs.claim(session, now) is not None
    assert jobs.run_pending(inst, now + timedelta(minutes=5)) == 0
    failed = job(inst, job_id)
    assert (failed.status, failed.last_error) == (JobStatus.FAILED, "lease lapsed on attempt 1")
    assert calls == []


def test_complete_commits_with_the_handlers_own_transaction(inst: Instance, calls) -> None:
    """A handler that completes its job in its own transaction: effect and completion are
    one commit, and a recurring job is queued again for when it asks."""

    def recurring(session: Session, _inst: Instance, run: jobs.JobRun) -> datetime | None:
        calls.append((run.id, run.attempt))
        with unit_of_work(session) as uow:
            jobs.complete(session, run, run.now + timedelta(days=1))
            uow.commit()
        return run.now  # ignored: the handler completed the job itself

    jobs.register(KIND, recurring)
    job_id = add(inst)
    now = utcnow()
    assert jobs.run_pending(inst, now) == 1
    again = job(inst, job_id)
    assert (again.status, again.attempts) == (JobStatus.QUEUED, 0)
    assert again.run_after == now + timedelta(days=1)
    assert jobs.run_pending(inst, now + timedelta(hours=23)) == 0
    assert jobs.run_pending(inst, now + timedelta(days=1)) == 1
    assert len(calls) == 2


def test_a_job_asking_to_run_again_at_once_is_not_run_in_a_loop(inst: Instance, calls) -> None:
    def eager(_session: Session, _inst: Instance, run: jobs.JobRun) -> datetime | None:
        calls.append((run.id, run.attempt))
        return run.now

    jobs.register(KIND, eager)
    job_id = add(inst)
    now = utcnow()
    assert jobs.run_pending(inst, now) == 1
    assert job(inst, job_id).run_after == now + jobs.MIN_INTERVAL
    assert jobs.run_pending(inst, now + jobs.MIN_INTERVAL) == 1


def _racing_workers(instances: list[Instance], count: int, handler: jobs.Handler) -> None:
    jobs.register(KIND, handler)
    with instances[0].sessions() as session, unit_of_work(session) as uow:
        ids = [jobs.enqueue(session, KIND, {"n": n}) for n in range(count)]
        uow.commit()
    errors: list[BaseException] = []
    start = threading.Barrier(len(instances) * 2)

    def work(inst: Instance) -> None:
        try:
            start.wait(timeout=30)
            jobs.run_pending(inst)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in instances for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with instances[0].sessions() as session:
        statuses = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    assert dict(statuses) == {JobStatus.DONE: count}
    assert len(ids) == count


def test_two_workers_never_run_one_job(inst: Instance, calls) -> None:
    """Four workers in two processes' worth of instances race over 40 jobs: each runs once."""
    lock = threading.Lock()
    running: set[str] = set()
    overlaps: list[str] = []

    def handle(_session: Session, _inst: Instance, run: jobs.JobRun) -> datetime | None:
        with lock:
            if run.id in running:
                overlaps.append(run.id)
            running.add(run.id)
            calls.append((run.id, run.attempt))
        time.sleep(0.005)
        with lock:
            running.discard(run.id)
        return None

    other = open_instance(inst.settings)
    try:
        _racing_workers([inst, other], 40, handle)
    finally:
        other.close()
    ran = [job_id for job_id, _ in calls]
    assert len(ran) == 40
    assert len(set(ran)) == 40  # no job ran twice
    assert overlaps == []
    assert {attempt for _, attempt in calls} == {1}


def test_the_worker_thread_runs_enqueued_jobs_and_stops(inst: Instance, calls) -> None:
    done = threading.Event()

    def handle(_session: Session, _inst: Instance, run: jobs.JobRun) -> datetime | None:
        calls.append((run.id, run.attempt))
        done.set()
        return None

    jobs.register(KIND, handle)
    worker = jobs.Worker(inst, poll_seconds=30).start()  # a poll would come far too late
    try:
        job_id = add(inst)  # the commit wakes the worker
        assert done.wait(timeout=20)
        deadline = time.monotonic() + 20
        while job(inst, job_id).status != JobStatus.DONE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job(inst, job_id).status == JobStatus.DONE
    finally:
        worker.stop(timeout=20)
    assert not worker.is_alive()
    assert calls == [(job_id, 1)]


@pytest.fixture
def cli_env(base_config, inst, monkeypatch) -> Callable[..., tuple[int, str]]:
    for key, value in {
        "INFOMEDIARY_INSTANCE_PATH": str(base_config.instance_path),
        "INFOMEDIARY_DATABASE_URL": base_config.database_url,
    }.items():
        monkeypatch.setenv(key, value)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args))
        return result.exit_code, result.output

    return run


def test_jobs_list_shows_jobs_by_status(inst: Instance, calls, cli_env) -> None:
    jobs.register(KIND, handler_of(calls, fail_times=99), max_attempts=1)
    failed = add(inst)
    jobs.run_pending(inst)
    waiting = add(inst, run_after=utcnow() + timedelta(days=1))
    code, out = cli_env("jobs", "list", "--json")
    assert code == 0, out
    listed = {j["id"]: j for j in json.loads(out)["jobs"]}
    assert listed[failed]["status"] == "failed"
    assert listed[failed]["last_error"] == "RuntimeError"
    assert listed[waiting]["status"] == "queued"
    code, out = cli_env("jobs", "list", "--status", "failed", "--json")
    assert [j["id"] for j in json.loads(out)["jobs"]] == [failed]
    code, out = cli_env("jobs", "list", "--status", "queued")
    assert code == 0
    assert waiting in out
    assert failed not in out
    code, out = cli_env("jobs", "list", "--status", "lost")
    assert code != 0


def test_jobs_run_runs_the_due_jobs_once(inst: Instance, calls, cli_env) -> None:
    jobs.register(KIND, handler_of(calls))
    job_id = add(inst)
    code, out = cli_env("jobs", "run", "--json")
    assert code == 0, out
    assert json.loads(out)["ran"] == 1
    assert "offer.deliver" in json.loads(out)["kinds"]
    assert job(inst, job_id).status == JobStatus.DONE
    assert cli_env("jobs", "run")[1].strip() == "0 job(s) run"
