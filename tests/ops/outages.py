"""Outages: PostgreSQL and Redis taken away from a running gunicorn, and given back.

    python -m tests.ops.outages [--only database|redis] [--down-seconds 1] [--requests 5]

**PostgreSQL cut.** A fresh instance on a scratch database, reached through a TCP proxy in this
process (:mod:`tests.ops.tcp_proxy`), served by gunicorn. With a customer's real token,
``GET /api/v1/me`` answers 200; the proxy is cut (every connection closed, new ones refused);
then ``--requests`` reads each answer 503 problem+json ``database_unavailable`` with
``Retry-After``, within seconds (the slowest is reported), and ``/readyz`` answers 503
naming the database. The proxy forwards again: reads answer 200 again from the same gunicorn
master and workers (no restart; the time to the first 200 is reported).

**Redis away.** A throwaway ``redis-server`` on a free port is the rate-limit store and the
job queue, with ``infomediary worker`` (RQ, sweeping every second) beside gunicorn. It is
killed (SIGKILL): a login and a token request answer 503 (``rate_limit_unavailable``; RFC
6749's ``temporarily_unavailable`` at the token endpoint), ``/readyz`` answers 503 naming
Redis, and a job committed meanwhile commits at once (its push to RQ fails and is logged).
A worker whose RQ loop ended with Redis exits with one line (its supervisor restarts it:
here, the script). Redis is started again on the same port: the login, the consent screen
and the token endpoint work again, and the job committed while Redis was down has run
(the worker's sweep found it in the table).
"""

from __future__ import annotations

import argparse
import base64
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from sqlalchemy.engine import make_url

from infomediary.models import Job
from infomediary.services import checkpoints, jobs
from infomediary.statuses import JobStatus
from tests.ops.support import (
    Gunicorn,
    OpsInstance,
    cli,
    finish,
    free_port,
    instance,
    main_of,
    scratch_database,
    seed_tokens,
    tool,
    wait_for,
)
from tests.ops.tcp_proxy import TcpProxy

PROBLEM = "application/problem+json"


def _get(url: str, **headers: str) -> requests.Response:
    with requests.get(url, headers=headers, timeout=30) as response:
        response.content  # noqa: B018 - read whole before the connection goes back
        return response


def _pids(server: Gunicorn) -> tuple[int, list[int]]:
    assert server.process is not None
    return server.process.pid, sorted(server.worker_pids())


# -- PostgreSQL ---------------------------------------------------------------------------------


def run_database(requests_down: int = 5, down_seconds: float = 1.0) -> dict[str, Any]:
    with scratch_database("ops_outage") as direct:
        target = make_url(direct)
        with TcpProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
            through = target.set(host="127.0.0.1", port=proxy.port)
            with instance(through.render_as_string(hide_password=False)) as ops:
                return _database_outage(ops, proxy, requests_down, down_seconds)
    raise AssertionError("unreachable")


def _database_outage(
    ops: OpsInstance, proxy: TcpProxy, requests_down: int, down_seconds: float
) -> dict[str, Any]:
    inst = ops.open()
    try:
        with Gunicorn(ops, workers=2) as server:
            seeded = seed_tokens(server.url, inst, 1)
            bearer = {"Authorization": f"Bearer {seeded.tokens[0]}"}
            me = f"{server.url}/api/v1/me"
            assert _get(me, **bearer).status_code == 200, "the read before the cut failed"
            ready = _get(f"{server.url}/readyz")
            assert ready.status_code == 200, ready.text
            pids_before = _pids(server)

            proxy.cut()
            slowest = 0.0
            for _ in range(requests_down):
                started = time.monotonic()
                down = _get(me, **bearer)
                slowest = max(slowest, time.monotonic() - started)
                assert down.status_code == 503, (down.status_code, down.text)
                assert down.headers["Content-Type"].startswith(PROBLEM), down.headers
                body = down.json()
                assert body["code"] == "database_unavailable", body
                assert down.headers["Retry-After"].isdigit()
                assert str(proxy.port) not in down.text
            not_ready = _get(f"{server.url}/readyz")
            assert not_ready.status_code == 503, not_ready.text
            assert not_ready.headers["Content-Type"].startswith(PROBLEM)
            checks = not_ready.json()["checks"]
            assert checks["database"].startswith("unreachable"), checks
            time.sleep(down_seconds)

            proxy.restore()
            restored = time.monotonic()
            wait_for("a 200 after the restore", lambda: _get(me, **bearer).status_code == 200, 30)
            recovery = time.monotonic() - restored
            assert _get(f"{server.url}/readyz").status_code == 200
            assert _pids(server) == pids_before, "gunicorn restarted a process"
    finally:
        inst.close()
    return {
        "database_down_answers": f"{requests_down} x 503 database_unavailable",
        "database_slowest_503_seconds": round(slowest, 3),
        "database_readyz_down": checks["database"],
        "database_recovery_seconds": round(recovery, 3),
        "database_restarted_processes": 0,
    }


# -- Redis --------------------------------------------------------------------------------------


@contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            tool("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("redis-server answering", lambda: _redis_answers(port), 20)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _redis_answers(port: int) -> bool:
    from redis import Redis, RedisError

    connection = Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        return bool(connection.ping())
    except RedisError:
        return False
    finally:
        connection.close()


def _login(base: str) -> requests.Response:
    from tests.conftest import csrf_token_in

    with requests.Session() as browser:
        page = browser.get(f"{base}/login", timeout=30)
        assert page.status_code == 200, page.status_code  # no limit: the page still opens
        with browser.post(
            f"{base}/login",
            data={
                "csrf_token": csrf_token_in(page.text),
                "email": "nobody@example.org",
                "password": "wrong password here",
            },
            allow_redirects=False,
            timeout=30,
        ) as response:
            response.content  # noqa: B018
            return response


def _token(base: str) -> requests.Response:
    basic = base64.b64encode(b"unknown-client:secret").decode()
    with requests.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=30,
    ) as response:
        response.content  # noqa: B018
        return response


def run_redis(down_seconds: float = 1.0) -> dict[str, Any]:
    tool("redis-server")
    port = free_port()
    with scratch_database("ops_redis") as url:
        settings = {
            "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{port}/0",
            "REDIS_URL": f"redis://127.0.0.1:{port}/1",
        }
        with instance(url, **settings) as ops, redis_server(port) as redis:
            return _redis_outage(ops, port, redis, down_seconds)
    raise AssertionError("unreachable")


def _start_worker(ops: OpsInstance) -> subprocess.Popen[bytes]:
    return cli(ops, "worker", "--sweep-seconds", "1")


def _redis_outage(
    ops: OpsInstance, port: int, redis: subprocess.Popen[bytes], down_seconds: float
) -> dict[str, Any]:
    inst = ops.open()
    worker = _start_worker(ops)
    try:
        jobs.use_redis(inst)
        with Gunicorn(ops, workers=2) as server:
            seed_tokens(server.url, inst, 1)  # login, consent and token with Redis up
            assert _login(server.url).status_code == 401
            assert _token(server.url).status_code == 401
            assert _get(f"{server.url}/readyz").status_code == 200

            redis.send_signal(signal.SIGKILL)
            redis.wait(10)
            login = _login(server.url)
            assert login.status_code == 503, (login.status_code, login.text[:200])
            assert "rate_limit_unavailable" in login.text
            token = _token(server.url)
            assert token.status_code == 503, (token.status_code, token.text)
            assert token.json() == {
                "error": "temporarily_unavailable",
                "error_description": token.json()["error_description"],
            }
            assert token.headers["Retry-After"].isdigit()
            not_ready = _get(f"{server.url}/readyz")
            assert not_ready.status_code == 503, not_ready.text
            redis_check = not_ready.json()["checks"]["redis"]
            assert redis_check != "ok", redis_check

            started = time.monotonic()
            with inst.sessions() as session:
                job_id = jobs.enqueue(session, checkpoints.JOB, {})
                session.commit()  # the row is the job: the failed push does not undo it
            commit_seconds = time.monotonic() - started

            def job_ran() -> bool:
                with inst.sessions() as session:
                    row = session.get_one(Job, job_id)
                    session.rollback()
                    return row.finished_at is not None or row.status == JobStatus.DONE

            time.sleep(max(down_seconds, 2.0))  # two sweeps of the worker
            ran_while_down = job_ran()
            worker_exit = worker.poll()
            if worker_exit is not None:  # its RQ loop ended with Redis: it said so and left
                code, _out, err = finish(worker)
                assert code == 1, (code, err)
                assert "cannot reach Redis" in err, err

            with redis_server(port) as _again:
                if worker.poll() is not None:  # the supervisor's restart
                    worker = _start_worker(ops)
                seed_tokens(server.url, inst, 1, "Zenith Travel")  # all work again
                assert _token(server.url).status_code == 401
                wait_for("/readyz ready again", lambda: _get(f"{server.url}/readyz").ok, 30)

                wait_for("the job committed while Redis was down to run", job_ran, 60)
                worker.send_signal(signal.SIGTERM)
                finish(worker, 60)
    finally:
        if worker.poll() is None:
            worker.kill()
        finish(worker, 30)
        inst.close()
    return {
        "redis_down_login": "503 rate_limit_unavailable",
        "redis_down_token": "503 temporarily_unavailable",
        "redis_readyz_down": redis_check,
        "redis_down_enqueue_commit_seconds": round(commit_seconds, 3),
        "redis_worker_when_redis_died": "exited with one line, restarted"
        if worker_exit is not None
        else "kept running",
        "redis_job_committed_while_down": "run by the sweep while Redis was down"
        if ran_while_down
        else "run by the sweep after Redis returned",
    }


def run(only: str = "", requests_down: int = 5, down_seconds: float = 1.0) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    if only in ("", "database"):
        figures.update(run_database(requests_down, down_seconds))
    if only in ("", "redis"):
        figures.update(run_redis(down_seconds))
    return figures


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.ops.outages", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", choices=["database", "redis"], default="", help="one outage")
    parser.add_argument(
        "--requests", dest="requests_down", type=int, default=5, help="reads while cut"
    )
    parser.add_argument(
        "--down-seconds", type=float, default=1.0, help="how long each dependency stays away"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main_of(run, options()))
