"""Background jobs on RQ workers (``INFOMEDIARY_REDIS_URL``), against the real Redis of
``INFOMEDIARY_TEST_REDIS_URL`` (each test empties that Redis database): the row stays the job,
Redis only carries its id. A committed job reaches the queue and ``infomediary worker --burst``
runs it once; a rollback pushes nothing; a message delivered twice runs the job once; a job whose
message was lost is run by the sweep; a failing job is retried with the backoff and ends
``failed``; a job due later waits in RQ's scheduler; the app with Redis starts no worker
thread; the worker stops cleanly on SIGTERM and fails with one line when Redis is away.

The test kinds are registered in this process, so the worker runs in it too (``CliRunner``);
the SIGTERM tests start a real process and use no job."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from infomediary import create_app
from infomediary.cli import main
from infomediary.config import ConfigError, load_config
from infomediary.instance import Instance, open_instance
from infomediary.models import Job, ProcessLease, utcnow
from infomediary.services import jobs
from infomediary.statuses import JobStatus
from tests.conftest import need_service

REDIS_ENV = "INFOMEDIARY_TEST_REDIS_URL"
OK = "test.rq.ok"
FAILING = "test.rq.failing"
#: Job ids, one per run of a test kind's handler, in order.
handled: list[str] = []


def _ok(session: Any, inst: Instance, run: jobs.JobRun) -> None:
    handled.append(run.id)


def _failing(session: Any, inst: Instance, run: jobs.JobRun) -> None:
    handled.append(run.id)
    raise RuntimeError("personal data that must not reach the row")


@pytest.fixture(autouse=True)
def kinds() -> Iterator[None]:
    handled.clear()
    jobs.register(OK, _ok, max_attempts=3)
    jobs.register(FAILING, _failing, max_attempts=2)
    yield
    handled.clear()


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get(REDIS_ENV, "")
    if not url:
        need_service(f"the RQ worker tests need {REDIS_ENV} (e.g. redis://127.0.0.1:6379/11)")
    import redis

    connection = redis.Redis.from_url(url)
    try:
        connection.flushdb()
    except redis.RedisError as exc:
        need_service(f"Redis at {REDIS_ENV} is unreachable: {type(exc).__name__}")
    try:
        yield url
    finally:
        connection.flushdb()
        connection.close()


@pytest.fixture
def rq_inst(inst: Instance, redis_url: str) -> Iterator[Instance]:
    """An instance of the test database whose committed jobs are pushed to the test Redis."""
    instance = open_instance(replace(inst.settings, redis_url=redis_url))
    jobs.use_redis(instance)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def queue(rq_inst: Instance) -> Any:
    transport = jobs.use_redis(rq_inst)
    assert transport is not None
    return transport.queue


@pytest.fixture
def env(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the CLI (and a task run outside ``infomediary worker``) at the test instance."""
    values = {
        "INFOMEDIARY_INSTANCE_PATH": str(inst.settings.instance_path),
        "INFOMEDIARY_DATABASE_URL": inst.settings.database_url,
        "INFOMEDIARY_ARGON2_TIME_COST": "1",
        "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
        "INFOMEDIARY_ARGON2_PARALLELISM": "1",
    }
    monkeypatch.delenv("INFOMEDIARY_REDIS_URL", raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def rq_env(env: dict[str, str], redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("INFOMEDIARY_REDIS_URL", redis_url)
    return redis_url


def enqueue(inst: Instance, kind: str = OK, **options: Any) -> str:
    with inst.sessions() as session, session.begin():
        return jobs.enqueue(session, kind, {"n": 1}, **options)


def row(inst: Instance, job_id: str) -> Job:
    with inst.sessions() as session:
        found = session.execute(select(Job).where(Job.id == job_id)).scalar_one()
        session.expunge(found)
        return found


def burst() -> dict[str, Any]:
    result = CliRunner().invoke(main, ["worker", "--burst", "--json"])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.output)
    return summary


def scheduled(queue: Any) -> list[str]:
    return list(queue.scheduled_job_registry.get_job_ids())


def test_a_committed_job_reaches_the_queue_and_the_worker_runs_it_once(
    rq_inst, queue, rq_env
) -> None:
    job_id = enqueue(rq_inst)
    assert queue.count == 1
    (message,) = queue.get_jobs()
    assert message.func_name == "infomediary.services.jobs.deliver"
    assert message.args == (job_id,)
    assert message.timeout == jobs.DEFAULT_LEASE_SECONDS  # RQ stops a handler when its lease ends

    summary = burst()

    assert summary == {"transport": "redis", "burst": True, "swept": 0}  # RQ ran it, not the sweep
    assert handled == [job_id]
    done = row(rq_inst, job_id)
    assert (done.status, done.attempts, done.locked_by) == (JobStatus.DONE, 1, None)
    assert queue.count == 0
    assert burst()["swept"] == 0
    assert handled == [job_id]


def test_a_rolled_back_transaction_enqueues_nothing(rq_inst, queue) -> None:
    with rq_inst.sessions() as session:
        session.begin()
        job_id = jobs.enqueue(session, OK, {"n": 1})
        session.rollback()
        with session.begin():  # the same session commits other work afterwards
            session.execute(select(Job.id))
    assert queue.count == 0
    assert scheduled(queue) == []
    with rq_inst.sessions() as session:
        assert session.get(Job, job_id) is None


def test_a_keyed_job_is_pushed_when_the_transaction_commits_not_at_its_savepoint(
    rq_inst, queue
) -> None:
    with rq_inst.sessions() as session, session.begin():
        plain = jobs.enqueue(session, OK, {"n": 0})
        keyed = jobs.enqueue(session, OK, {"n": 1}, key="test.rq.once")
        assert queue.count == 0  # its savepoint was released; the transaction is still open
        assert jobs.enqueue(session, OK, {"n": 2}, key="test.rq.once") == keyed
        assert queue.count == 0
    assert [message.args for message in queue.get_jobs()] == [(plain,), (keyed,)]


def test_a_message_delivered_twice_runs_the_job_once(rq_inst, queue, rq_env) -> None:
    job_id = enqueue(rq_inst)
    queue.enqueue(jobs.deliver, job_id)  # the same message again
    assert queue.count == 2

    assert burst()["swept"] == 0

    assert handled == [job_id]
    assert row(rq_inst, job_id).attempts == 1
    assert queue.count == 0


def test_a_message_for_a_job_another_worker_holds_runs_nothing(rq_inst, rq_env) -> None:
    job_id = enqueue(rq_inst)
    with rq_inst.sessions() as session:
        held = jobs.claim(session, utcnow(), job_id=job_id)
    assert held is not None
    assert held.id == job_id

    assert jobs.deliver(job_id) is False  # run as by another RQ worker: opens its own instance

    assert handled == []
    running = row(rq_inst, job_id)
    assert (running.status, running.locked_by) == (JobStatus.RUNNING, held.token)


def test_a_message_runs_its_own_job_only(rq_inst, rq_env) -> None:
    first, second = enqueue(rq_inst), enqueue(rq_inst)
    assert jobs.deliver(second) is True
    assert handled == [second]
    assert row(rq_inst, first).status == JobStatus.QUEUED  # due, but its own message runs it
    assert jobs.deliver(second) is False
    assert handled == [second]


def test_a_task_outside_the_worker_opens_the_instance_from_the_environment(rq_inst, rq_env) -> None:
    job_id = enqueue(rq_inst)
    assert jobs.deliver(job_id) is True
    assert jobs.deliver(job_id) is False
    assert handled == [job_id]
    assert row(rq_inst, job_id).status == JobStatus.DONE


def test_a_job_whose_message_was_lost_is_run_by_the_sweep(rq_inst, queue, rq_env) -> None:
    job_id = enqueue(rq_inst)
    queue.empty()  # Redis restarted: it keeps nothing on disk
    assert queue.count == 0

    assert burst()["swept"] == 1

    assert handled == [job_id]
    assert row(rq_inst, job_id).status == JobStatus.DONE


def test_a_failing_job_is_retried_after_the_backoff_then_failed(
    rq_inst, queue, rq_env, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "BACKOFF_SECONDS", 2)
    job_id = enqueue(rq_inst, FAILING)

    assert burst()["swept"] == 0
    first = row(rq_inst, job_id)
    assert (first.status, first.attempts, first.last_error) == (
        JobStatus.QUEUED,
        1,
        "RuntimeError",
    )
    assert first.started_at is not None
    assert (
        first.run_after
        == first.started_at + jobs.backoff(1)
        == first.started_at + timedelta(seconds=2)
    )
    assert queue.count == 0
    (retry,) = scheduled(queue)  # the retry waits in RQ's scheduler until its backoff ends
    at = queue.scheduled_job_registry.get_scheduled_time(retry)
    assert abs((at - first.run_after).total_seconds()) < 1

    time.sleep(max(0.0, (first.run_after - utcnow()).total_seconds()) + 1.1)
    assert burst()["swept"] == 0  # the scheduler moved the retry onto the queue

    last = row(rq_inst, job_id)
    assert (last.status, last.attempts, last.last_error) == (
        JobStatus.FAILED,
        2,
        "RuntimeError",
    )
    assert handled == [job_id, job_id]
    assert queue.count == 0
    assert scheduled(queue) == []


def test_a_job_due_later_waits_in_the_scheduler(rq_inst, queue, rq_env) -> None:
    later = utcnow() + timedelta(hours=1)
    job_id = enqueue(rq_inst, run_after=later)
    assert queue.count == 0
    (message,) = scheduled(queue)
    at = queue.scheduled_job_registry.get_scheduled_time(message)
    assert abs((at - later).total_seconds()) < 1

    assert burst()["swept"] == 0

    assert handled == []
    assert row(rq_inst, job_id).status == JobStatus.QUEUED


def test_an_early_message_is_scheduled_again_for_when_the_job_is_due(
    rq_inst, queue, rq_env
) -> None:
    later = utcnow() + timedelta(hours=1)
    job_id = enqueue(rq_inst, run_after=later)
    queue.enqueue(jobs.deliver, job_id)  # delivered early, e.g. by a clock ahead of the database

    assert burst()["swept"] == 0

    assert handled == []
    assert len(scheduled(queue)) == 2  # the original and the early one, both for `later`
    assert all(
        abs((queue.scheduled_job_registry.get_scheduled_time(m) - later).total_seconds()) < 1
        for m in scheduled(queue)
    )


def test_a_push_that_fails_leaves_the_committed_job_for_the_sweep(inst, caplog) -> None:
    broken = open_instance(replace(inst.settings, redis_url="redis://:hunter2@127.0.0.1:1/0"))
    try:
        jobs.use_redis(broken)
        with caplog.at_level(logging.WARNING, logger="infomediary.jobs"):
            job_id = enqueue(broken)
        assert row(broken, job_id).status == JobStatus.QUEUED
        assert "the sweep will run it" in caplog.text
        assert "hunter2" not in caplog.text
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="infomediary.jobs"):
            second = enqueue(broken)  # no second wait for a Redis that just failed
        assert "Redis was unreachable just now" in caplog.text
        assert jobs.sweep(broken) == 2
        assert sorted(handled) == sorted([job_id, second])
    finally:
        broken.close()


def test_the_app_with_redis_starts_no_in_process_worker(inst, redis_url) -> None:
    with_redis = create_app(
        replace(inst.settings, redis_url=redis_url), instance=inst, run_jobs=True
    )
    assert "infomediary.jobs" not in with_redis.extensions
    transport = jobs.use_redis(inst, redis_url)
    assert transport is not None
    job_id = enqueue(inst)  # the app's sessions push what they commit
    assert [message.args for message in transport.queue.get_jobs()] == [(job_id,)]

    without = create_app(inst.settings, instance=inst, run_jobs=True)
    worker = without.extensions["infomediary.jobs"]
    try:
        assert worker.is_alive()
    finally:
        worker.stop()


def test_without_redis_the_worker_runs_jobs_from_the_database(inst, env) -> None:
    job_id = enqueue(inst)
    assert burst() == {"transport": "database", "burst": True, "swept": 1}
    assert handled == [job_id]
    assert row(inst, job_id).status == JobStatus.DONE


def test_an_unreachable_redis_is_one_line_without_its_password(env, monkeypatch) -> None:
    monkeypatch.setenv("INFOMEDIARY_REDIS_URL", "redis://ops:hunter2@127.0.0.1:1/0")
    result = CliRunner().invoke(main, ["worker", "--burst"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: cannot reach Redis at redis://ops:***@127.0.0.1:1/0: ConnectionError"
    ]


def test_a_redis_url_that_is_not_one_is_refused_by_name() -> None:
    for wrong in ("http://127.0.0.1:6379", "redis://:hunter2@host:port/0", "127.0.0.1:6379"):
        with pytest.raises(ConfigError, match=r"^INFOMEDIARY_REDIS_URL ") as refused:
            load_config({"REDIS_URL": wrong}, environ={})
        assert "hunter2" not in str(refused.value)
        assert "\n" not in str(refused.value)
    for right in ("redis://127.0.0.1:6379/0", "rediss://:secret@cache.internal:6380/2"):
        assert load_config({"REDIS_URL": right}, environ={}).redis_url == right


def _wait_until_serving(inst: Instance, child: subprocess.Popen[str], transport: str) -> None:
    """Until the child serves: RQ registered its worker (after its signal handlers), or the
    database loop's process holds its lease (its handlers follow at once); then a moment."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        if transport == "redis":
            import redis
            from rq import Worker

            connection = redis.Redis.from_url(os.environ[REDIS_ENV])
            try:
                serving = bool(Worker.all(connection=connection))
            finally:
                connection.close()
        else:
            with inst.sessions() as session:
                serving = (
                    session.execute(
                        select(ProcessLease.id).where(ProcessLease.pid == child.pid)
                    ).first()
                    is not None
                )
        if serving:
            time.sleep(1)
            return
        time.sleep(0.2)
    raise AssertionError("the worker did not start within 60 s")


@pytest.mark.parametrize("transport", ["redis", "database"])
def test_the_worker_stops_cleanly_on_sigterm(transport, env, request, inst) -> None:
    child_env = {**os.environ, **env}
    if transport == "redis":
        child_env["INFOMEDIARY_REDIS_URL"] = request.getfixturevalue("redis_url")
    child = subprocess.Popen(
        [sys.executable, "-c", "from infomediary.cli import main; main()", "worker", "--json"],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_serving(inst, child, transport)
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["transport"] == transport


def test_a_command_s_instance_pushes_the_jobs_it_commits(rq_env, queue) -> None:
    from infomediary.cli.common import _open

    opened = _open()
    try:
        job_id = enqueue(opened)
    finally:
        opened.close()
    assert [message.args for message in queue.get_jobs()] == [(job_id,)]
