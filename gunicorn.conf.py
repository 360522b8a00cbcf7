"""gunicorn's configuration for Infomediary in production: ``gunicorn -c gunicorn.conf.py``.

Read by gunicorn at start (it is Python, run once in the master). Anything here can be
overridden the way gunicorn always allows: ``GUNICORN_CMD_ARGS`` (``"--bind 0.0.0.0:8000
--threads 8"``) and the command line win over this file. docs/OPERATIONS.md ("Deploy",
"Configuration") explains each choice.

- **Bind**: gunicorn's own default (``127.0.0.1:8000``, or ``0.0.0.0:$PORT`` when ``PORT`` is
  set); a reverse proxy in front terminates TLS. Pass ``--bind`` to change it.
- **Workers**: ``WEB_CONCURRENCY`` (gunicorn's convention), else one per core and at least two.
  Each worker holds its own copy of the broker's match index and privacy ledger in memory, so
  processes cost memory; threads share them.
- **gthread, 4 threads**: requests mostly wait on PostgreSQL, Redis and argon2id (which runs
  outside the GIL), so threads serve more requests per copy of the index than processes; a
  connection kept alive waits in the worker's poller, not in a thread.
- **No preloading**: each worker opens its own instance after the fork (its KEK lease and the
  thread that renews it, its database pool, its Redis connection, an HSM session): nothing is
  shared across ``fork()``. ``post_worker_init`` then warms it before it accepts a request.
- **Forwarded headers**: ``forwarded_allow_ips`` (and ``proxy_allow_ips`` for the PROXY
  protocol) are ``INFOMEDIARY_TRUSTED_PROXIES`` (addresses or CIDR networks, which gunicorn
  accepts), else gunicorn's default ``127.0.0.1,::1``. The app drops ``X-Forwarded-*`` from any
  other peer before ProxyFix (``INFOMEDIARY_PROXY_HOPS``) reads them.
- **No gunicorn access log**: its lines carry the query string, which may hold a token. The
  app writes one access line per request itself, with the route pattern only.
- **Metrics**: with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty folder writable by the server,
  on tmpfs), each worker counts into files there and ``/metrics`` sums them; ``on_starting``
  empties it and ``child_exit`` marks a worker gone, through :mod:`infomediary.metrics` when
  that module is there.
"""

from __future__ import annotations

import os
from typing import Any

from infomediary.config import trusted_proxy_networks

wsgi_app = "wsgi:app"

workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, os.cpu_count() or 1))
worker_class = "gthread"
threads = 4
#: A request (or a silent worker) past this many seconds is ended and the worker restarted.
timeout = 30
#: After SIGTERM, requests in flight get this long to finish.
graceful_timeout = 30
#: Longer than a load balancer's idle timeout (60 s by default on the common ones), so the
#: proxy, not gunicorn, closes an idle upstream connection and never sends on a closed one.
keepalive = 75


def _trusted_proxies(value: str) -> str:
    """gunicorn's list from ``INFOMEDIARY_TRUSTED_PROXIES``: addresses and CIDR networks,
    comma-separated, validated here (a typo stops the server at start, naming the setting)."""
    if not value.strip():
        return "127.0.0.1,::1"
    try:
        return ",".join(str(network) for network in trusted_proxy_networks(value))
    except ValueError:
        raise SystemExit(
            "error: INFOMEDIARY_TRUSTED_PROXIES must list IP addresses or networks separated "
            "by commas, such as 10.0.0.5,10.1.0.0/16"
        ) from None


forwarded_allow_ips = _trusted_proxies(os.environ.get("INFOMEDIARY_TRUSTED_PROXIES", ""))
proxy_allow_ips = forwarded_allow_ips

preload_app = False
accesslog = None
errorlog = "-"
#: The app's own log lines go to stderr too, each with its request id.
capture_output = False


def _metrics_hook(name: str) -> Any:
    try:
        from infomediary import metrics
    except ImportError:
        return None
    return getattr(metrics, name, None)


def on_starting(server: Any) -> None:
    hook = _metrics_hook("on_starting")
    if hook is not None:
        hook(server)


def post_worker_init(worker: Any) -> None:
    """The worker has loaded the app and not yet accepted a connection: warm it now (the
    broker's index, the ledger, keys, tables, one database connection), so no request pays."""
    warm = getattr(worker.wsgi, "extensions", {}).get("infomediary.warm")
    if warm is not None:
        warm()


def child_exit(server: Any, worker: Any) -> None:
    hook = _metrics_hook("child_exit")
    if hook is not None:
        hook(server, worker)
