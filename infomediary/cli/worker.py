"""``worker``: runs background jobs in the foreground, on RQ or from the database.

With ``INFOMEDIARY_REDIS_URL`` it is an RQ worker on the ``infomediary`` queue that also
sweeps the ``jobs`` table for due jobs at start and every 30 seconds, so a job whose message
Redis lost still runs. ``--with-scheduler`` makes it the scheduling worker: it runs RQ's
scheduler (messages due later, retries after their backoff) and, as it starts, makes sure
every recurring job is queued (checkpoint signing, housekeeping, the digest, the release
postings' indexing). Run exactly one of those; the others run without the flag. Without
Redis, it is the database worker loop the app would otherwise run in a thread, and it keeps
the recurring jobs queued unless it is a ``--burst``. SIGINT and SIGTERM stop it after the
job in hand.
"""

from __future__ import annotations

import importlib
import pkgutil
import signal
import threading
from types import FrameType

import click

from infomediary import services
from infomediary.cli.common import _emit, _fail, _open
from infomediary.instance import Instance
from infomediary.services import housekeeping
from infomediary.services.jobs import (
    SWEEP_SECONDS,
    Worker,
    redacted,
    run_pending,
    serve_rq,
)


def _load_handlers() -> None:
    """Import every use-case module, so each job kind the app knows has its handler here."""
    for module in pkgutil.iter_modules(services.__path__, f"{services.__name__}."):
        importlib.import_module(module.name)


@click.command(name="worker")
@click.option("--burst", is_flag=True, help="Run the jobs that are due, then exit.")
@click.option(
    "--sweep-seconds",
    type=click.FloatRange(min=1.0),
    default=SWEEP_SECONDS,
    show_default=True,
    help="With Redis: how often the jobs table is swept for due jobs whose message was lost.",
)
@click.option(
    "--with-scheduler",
    is_flag=True,
    help="With Redis: also run RQ's scheduler and keep the recurring jobs queued "
    "(exactly one worker should).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary at exit.")
def worker(burst: bool, sweep_seconds: float, with_scheduler: bool, as_json: bool) -> None:
    """Run background jobs here until stopped (Ctrl-C or SIGTERM): on RQ when
    INFOMEDIARY_REDIS_URL is set, else straight from the database."""
    _load_handlers()
    inst = _open()
    url = inst.settings.redis_url
    # the scheduling worker keeps the recurring jobs queued; without Redis, any worker that
    # stays does (the database loop is the app's own)
    if with_scheduler or (not url and not burst):
        housekeeping.ensure_recurring(inst)
    try:
        swept = (
            _on_redis(inst, url, burst, sweep_seconds, with_scheduler)
            if url
            else _on_database(inst, burst)
        )
    finally:
        inst.close()
    transport = "redis" if url else "database"
    summary = {"transport": transport, "burst": burst, "swept": swept}
    if with_scheduler:
        summary["scheduler"] = True
    _emit(as_json, summary, f"worker stopped ({transport}); {swept} job(s) run from the table")


def _on_redis(
    inst: Instance, url: str, burst: bool, sweep_seconds: float, with_scheduler: bool
) -> int:
    from redis.exceptions import RedisError

    try:
        ran = serve_rq(
            inst, burst=burst, sweep_seconds=sweep_seconds, with_scheduler=with_scheduler
        )
        if not burst:  # RQ's loop also ends when Redis goes away: then say so, and fail
            _ping(url)
    except RedisError as exc:
        _fail(f"cannot reach Redis at {redacted(url)}: {type(exc).__name__}")
        raise AssertionError("unreachable") from exc
    return ran


def _ping(url: str) -> None:
    from redis import Redis

    connection = Redis.from_url(url, socket_connect_timeout=5)
    try:
        connection.ping()
    finally:
        connection.close()


def _on_database(inst: Instance, burst: bool) -> int:
    """The database worker loop in the foreground (``--burst``: every due job, once)."""
    if burst:
        return run_pending(inst)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    runner = Worker(inst, name="worker").start()
    try:
        while runner.is_alive() and not stop.wait(1.0):
            pass
    finally:
        runner.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
