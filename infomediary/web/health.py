"""Operations endpoints: liveness, readiness and Prometheus metrics.

- ``/healthz``: the process answers (touches nothing).
- ``/readyz``: it can serve: the database answers, its schema is at the head of
  ``migrations/``, the keyring is the one the database was written with, and Redis (when
  configured) answers PING. Each check is bounded: the answer comes within
  :data:`CHECK_SECONDS`, whatever hangs, and a check that has not finished since the last
  probe is not started again (a dead network cannot pile up threads).
- ``/metrics``: the Prometheus exposition, only with ``Authorization: Bearer
  $INFOMEDIARY_METRICS_TOKEN`` (404 while no token is set, as for any unknown path).

None of them opens a session or sets a cookie (their requests' ``Cookie`` header is dropped
before Flask opens the session), is rate-limited, needs a CSRF token (they are GET only) or
writes anything: no access-log entry, no request line. Reasons name the check and an
exception's class, never a URL or a message (either may hold a password or a value).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, json, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from infomediary import metrics
from infomediary.broker.members import STATE_ID
from infomediary.config import Settings
from infomediary.crypto.keyring import KeyringError
from infomediary.db import SNAPSHOT
from infomediary.instance import Instance, check_keyring, schema_revision
from infomediary.leases import ensure_keyring_state
from infomediary.logs import get_logger
from infomediary.models import BrokerState, Job, utcnow
from infomediary.services.jobs import registered
from infomediary.statuses import JobStatus
from infomediary.web.errors import problem
from infomediary.web.limits import limiter
from infomediary.web.security import instance, settings

bp = Blueprint("health", __name__)
log = get_logger("health")

#: The paths of this blueprint: their requests carry no cookie into the app.
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
#: Seconds the readiness checks may take together before the ones still running are "timeout".
CHECK_SECONDS = 2.0
#: Socket timeout of a Redis PING, seconds.
REDIS_SECONDS = 1.0
_STARTED = "infomediary.started"
_READINESS = "infomediary.readiness"
_JOB_STATES = ("due", "scheduled", "running", "failed")


# -- liveness and readiness ---------------------------------------------------------------
@bp.get("/healthz")
@limiter.exempt
def healthz() -> ResponseReturnValue:
    return _json({"status": "ok"}, 200, "application/json")


@bp.get("/readyz")
@limiter.exempt
def readyz() -> ResponseReturnValue:
    checks = readiness(current_app).run()
    failing = {name: reason for name, reason in checks.items() if reason != "ok"}
    if not failing:
        return _json({"status": "ready", "checks": checks}, 200, "application/json")
    detail = "; ".join(f"{name}: {reason}" for name, reason in failing.items())
    response = problem(503, "not_ready", f"Not ready: {detail}.", checks=checks)
    response.headers["Cache-Control"] = "no-store"
    return response


def _json(body: dict[str, Any], status: int, mimetype: str) -> Response:
    response = Response(json.dumps(body), status=status, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-store"
    return response


def reason_of(exc: BaseException, down: tuple[type[BaseException], ...] = ()) -> str:
    """A failed check's reason: what went wrong and the exception's class, nothing else
    (``down``: the classes that mean "could not reach it" for this check)."""
    kind = type(exc).__name__
    if isinstance(exc, KeyringError):
        return f"mismatch: {kind}"
    if isinstance(exc, (*down, ConnectionError, TimeoutError)) or _is_redis_down(exc):
        return f"unreachable: {kind}"
    return f"failed: {kind}"


def _is_redis_down(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    return isinstance(exc, RedisConnectionError | RedisTimeout)


def redis_urls(config: Settings) -> dict[str, str]:
    """The Redis servers this app uses, each with what uses it (one name for a shared one)."""
    found: dict[str, str] = {}
    if config.redis_url:
        found[config.redis_url] = "jobs"
    limits = config.ratelimit_storage_uri
    if limits.startswith(("redis://", "rediss://")):
        found.setdefault(limits, "rate limits")
    return found


class Readiness:
    """The readiness checks of one app. The database's three run in order in one thread
    (schema and keyring need the database), each Redis PING in its own."""

    def __init__(self, inst: Instance, config: Settings) -> None:
        self.inst = inst
        self.config = config
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}

    def run(self) -> dict[str, str]:
        results: dict[str, str] = {}
        names = ["database", "schema", "keyring"]
        groups: list[tuple[str, Callable[[dict[str, str]], None]]] = [("storage", self._storage)]
        if redis_urls(self.config):
            names.append("redis")
            groups.append(("redis", self._redis))
        started = []
        for group, target in groups:
            with self._lock:
                busy = self._running.get(group)
                if busy is not None and busy.is_alive():
                    continue  # its checks answer "timeout" again until it ends
                thread = threading.Thread(
                    target=self._guarded,
                    args=(target, results),
                    name=f"readyz-{group}",
                    daemon=True,
                )
                self._running[group] = thread
            thread.start()
            started.append(thread)
        deadline = time.monotonic() + CHECK_SECONDS
        for thread in started:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return {name: results.get(name, "timeout") for name in names}

    def wait(self, timeout: float) -> None:
        """Wait for checks still running (tests end with none left)."""
        for thread in list(self._running.values()):
            thread.join(timeout)

    def _guarded(self, target: Callable[[dict[str, str]], None], results: dict[str, str]) -> None:
        try:
            target(results)
        except Exception as exc:  # a check reports; it never takes the thread down noisily
            log.warning("readiness check failed: %s", type(exc).__name__)

    def _set(
        self,
        results: dict[str, str],
        name: str,
        check: Callable[[], str],
        down: tuple[type[BaseException], ...] = (),
    ) -> bool:
        try:
            outcome = check()
        except Exception as exc:
            outcome = reason_of(exc, down)
        with self._lock:
            results[name] = outcome
        return outcome == "ok"

    def _engine(self) -> Engine:
        # On SQLite a deferred read transaction: a probe never waits for the write lock.
        return self.inst.engine.execution_options(**{SNAPSHOT: True})

    def _storage(self, results: dict[str, str]) -> None:
        if not self._set(results, "database", self._database, (SQLAlchemyError,)):
            skipped = "not checked: the database is unreachable"
            with self._lock:
                results.update(schema=skipped, keyring=skipped)
            return
        self._set(results, "schema", self._schema)
        self._set(results, "keyring", self._keyring)

    def _database(self) -> str:
        with self._engine().connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
        return "ok"

    def _schema(self) -> str:
        current, head = schema_revision(self._engine())
        if current is None:
            return "missing: the database has no schema"
        if current != head:
            return f"not at head: the database is at {current}, this version needs {head}"
        return "ok"

    def _keyring(self) -> str:
        keyring = self.inst.keyring
        keyring.refresh()  # a keyring file replaced by another instance's is refused here
        with self.inst.sessions(bind=self._engine()) as session:
            check_keyring(session, keyring)
            ensure_keyring_state(session, keyring, create=False)
        return "ok"

    def _redis(self, results: dict[str, str]) -> None:
        urls = redis_urls(self.config)
        reasons = []
        for url, use in urls.items():
            reason = _ping(url)
            if reason != "ok":
                reasons.append(f"{reason} ({use})" if len(urls) > 1 else reason)
        with self._lock:
            results["redis"] = "; ".join(reasons) or "ok"


def _ping(url: str) -> str:
    from redis import Redis

    client = Redis.from_url(url, socket_connect_timeout=REDIS_SECONDS, socket_timeout=REDIS_SECONDS)
    try:
        client.ping()
    except Exception as exc:
        return reason_of(exc)
    finally:
        client.close()
    return "ok"


def readiness(app: Flask) -> Readiness:
    """The app's readiness checks (made once, by :func:`init_app`)."""
    found: Readiness = app.extensions[_READINESS]
    return found


# -- metrics ------------------------------------------------------------------------------
@bp.get("/metrics")
@limiter.exempt
def metrics_view() -> ResponseReturnValue:
    token = settings().metrics_token
    if not token:
        abort(404)
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return _unauthorized("missing_authorization", "Send the metrics token as a bearer token.")
    if not hmac.compare_digest(sent.strip().encode(), token.encode()):
        return _unauthorized("invalid_token", "The metrics token is not valid.")
    body = metrics.exposition(snapshot(instance()))
    response = Response(body, status=200, content_type=metrics.CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def _unauthorized(code: str, detail: str) -> Response:
    response = problem(401, code, detail)
    challenge = 'Bearer realm="metrics"'
    if code == "invalid_token":
        challenge += ', error="invalid_token"'  # RFC 6750 §3
    response.headers["WWW-Authenticate"] = challenge
    response.headers["Cache-Control"] = "no-store"
    return response


def snapshot(inst: Instance) -> metrics.Snapshot:
    """The gauges read from the database now; without them if it does not answer."""
    try:
        with inst.sessions(bind=inst.engine.execution_options(**{SNAPSHOT: True})) as session:
            depth = queue_depth(session, registered())
            version = session.execute(
                select(BrokerState.version).where(BrokerState.id == STATE_ID)
            ).scalar_one_or_none()
    except Exception as exc:
        log.warning("metrics: the database did not answer: %s", type(exc).__name__)
        return metrics.Snapshot()
    loaded = inst.match_index.version
    lag = None if loaded < 0 or version is None else max(0, int(version) - loaded)
    return metrics.Snapshot(queue_depth=depth, index_version_lag=lag)


def queue_depth(session: Session, kinds: Iterable[str]) -> dict[tuple[str, str], int]:
    """Jobs by kind and state (zeros for every known kind, so no series vanishes)."""
    depth = {(kind, state): 0 for kind in kinds for state in _JOB_STATES}
    now = utcnow()
    watched = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED)
    rows = session.execute(
        select(Job.kind, Job.status, func.count())
        .where(Job.status.in_(watched))
        .group_by(Job.kind, Job.status)
    ).all()
    due = dict(
        session.execute(
            select(Job.kind, func.count())
            .where(Job.status == JobStatus.QUEUED, Job.run_after <= now)
            .group_by(Job.kind)
        ).all()
    )
    for kind, status, count in rows:
        if status == JobStatus.QUEUED:
            depth[(kind, "due")] = int(due.get(kind, 0))
            depth[(kind, "scheduled")] = int(count) - int(due.get(kind, 0))
        else:
            depth[(kind, str(status))] = int(count)
    return depth


# -- the edge: request timing, no cookies for the probes ----------------------------------
class _Probes:
    """WSGI wrapper: notes when each request arrived, and drops the probes' cookies."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ[_STARTED] = time.perf_counter()
        if environ.get("PATH_INFO") in PROBES:
            environ.pop("HTTP_COOKIE", None)
        return self.wsgi_app(environ, start_response)


def _observe(response: Response) -> Response:
    started = request.environ.get(_STARTED)
    if started is not None:
        rule = request.url_rule
        metrics.observe_request(
            request.method,
            rule.rule if rule is not None else None,
            response.status_code,
            time.perf_counter() - started,
        )
    return response


def is_probe() -> bool:
    """Whether this request is one of this blueprint's (its request line is not logged)."""
    return request.blueprint == bp.name


def init_app(app: Flask) -> None:
    """Call before the other hooks are registered: the timing then covers theirs."""
    app.extensions[_READINESS] = Readiness(app.extensions["infomediary"], settings(app))
    app.wsgi_app = _Probes(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(_observe)
