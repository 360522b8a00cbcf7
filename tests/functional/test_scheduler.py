"""The scheduling worker on real Redis (``INFOMEDIARY_TEST_REDIS_URL``), each run a real
``infomediary worker`` process: ``--with-scheduler`` queues the recurring jobs as it starts
and runs them (a due checkpoint is signed there), and moves an erasure request's retry onto
the queue when its backoff ends (RQ, not the sweep, runs it); a worker without the flag
queues no recurring job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import ErasureRequest, Job, LogCheckpoint, utcnow
from infomediary.services import Context, checkpoints, erasure_requests, housekeeping
from infomediary.statuses import ErasureStatus, JobStatus
from tests.conftest import need_service
from tests.factories import make_customer, make_grant, make_supplier

REDIS_ENV = "INFOMEDIARY_TEST_REDIS_URL"
BASE_URL = "https://infomediary.example"
COMMAND = (sys.executable, "-c", "from infomediary.cli import main; main()")


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get(REDIS_ENV, "")
    if not url:
        need_service(f"the scheduler tests need {REDIS_ENV} (e.g. redis://127.0.0.1:6379/11)")
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
def env(inst: Instance, redis_url: str) -> dict[str, str]:
    """The environment of a worker process on the test instance and the test Redis."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("INFOMEDIARY_")}
    values.update(
        {
            "INFOMEDIARY_INSTANCE_PATH": str(inst.settings.instance_path),
            "INFOMEDIARY_DATABASE_URL": inst.settings.database_url,
            "INFOMEDIARY_REDIS_URL": redis_url,
            "INFOMEDIARY_ARGON2_TIME_COST": "1",
            "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
            "INFOMEDIARY_ARGON2_PARALLELISM": "1",
        }
    )
    return values


def worker(env: dict[str, str], *flags: str) -> dict[str, Any]:
    """``infomediary worker --burst --json FLAGS`` in a process of its own; its summary."""
    done = subprocess.run(
        [*COMMAND, "worker", "--burst", "--json", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def count(inst: Instance, model: Any, *where: Any) -> int:
    with inst.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_only_the_scheduling_worker_queues_and_runs_the_recurring_jobs(
    inst: Instance, env: dict[str, str]
) -> None:
    customer = make_customer(inst)
    make_grant(inst, customer, make_supplier(inst).id)  # the log grew: a checkpoint is due
    assert count(inst, LogCheckpoint) == 0

    plain = worker(env)
    assert plain == {"transport": "redis", "burst": True, "swept": 0}
    assert count(inst, Job, Job.key.in_(housekeeping.recurring())) == 0
    assert count(inst, LogCheckpoint) == 0

    started = utcnow()
    scheduling = worker(env, "--with-scheduler")
    assert scheduling["scheduler"] is True
    assert scheduling["swept"] == 0  # RQ ran them from the queue; the sweep found nothing left
    assert count(inst, LogCheckpoint) == 1
    with inst.sessions() as session:
        queued = {
            row.key: row
            for row in session.execute(
                select(Job).where(Job.key.in_(housekeeping.recurring()))
            ).scalars()
        }
    assert set(queued) == set(housekeeping.recurring())
    for job in queued.values():  # each ran once and waits for its next time
        assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)
        assert job.run_after > started
    checkpoint = queued[checkpoints.JOB]
    assert checkpoint.finished_at is not None

    again = worker(env, "--with-scheduler")  # enqueued once: the same rows, nothing due
    assert again["swept"] == 0
    assert count(inst, Job, Job.key.in_(housekeeping.recurring())) == len(queued)
    assert count(inst, LogCheckpoint) == 1


def test_an_erasure_request_is_retried_by_the_scheduling_worker(
    inst: Instance, env: dict[str, str]
) -> None:
    customer = make_customer(inst)
    supplier = make_supplier(inst).id
    make_grant(inst, customer, supplier)
    with inst.sessions() as session:  # loopback http: allowed outside production, refused here
        erasure_requests.set_webhook(
            session,
            inst,
            supplier,
            "http://127.0.0.1:1/erasure",
            BASE_URL,
            Context(Actor.system("test")),
        )
    with inst.sessions() as session:
        request = erasure_requests.request_erasure(
            session, inst, customer, supplier, Context(Actor.customer(customer), "t"), BASE_URL
        ).id

    assert worker(env, "--with-scheduler")["swept"] == 1  # pushed by another Redis: swept
    with inst.sessions() as session:
        first = session.execute(select(Job).where(Job.kind == erasure_requests.JOB)).scalar_one()
        found = session.get_one(ErasureRequest, request)
    assert (first.status, first.attempts) == (JobStatus.QUEUED, 1)
    assert found.attempts == 1
    assert found.status == ErasureStatus.REQUESTED

    # the retry waits in RQ's scheduler until its backoff ends; then the scheduling worker
    # moves it onto the queue and runs it (not the sweep)
    time.sleep(max(0.0, (first.run_after - utcnow()).total_seconds()) + 1.1)
    assert worker(env, "--with-scheduler")["swept"] == 0
    with inst.sessions() as session:
        second = session.get_one(Job, first.id)
        found = session.get_one(ErasureRequest, request)
    assert second.attempts == 2
    assert second.status == JobStatus.QUEUED
    assert found.attempts == 2
