"""Prometheus metrics: what each process counts, and the exposition ``/metrics`` answers.

This module sits in the lowest layer and imports only ``prometheus_client`` and the standard
library, so the access log, the broker and the use cases can count with one line each. No
label ever holds a personal value: routes are URL patterns (``/api/v1/me``), never paths, and
the other labels are small fixed vocabularies (methods, status classes, outcomes, job kinds).

Values that live in the database (the job queue's depth, how far this process's match index
is behind) are not counted here: they are read when ``/metrics`` is scraped and handed to
:func:`exposition` as a :class:`Snapshot`.

**Several processes** (gunicorn workers): with ``PROMETHEUS_MULTIPROC_DIR`` set in the
environment before the server starts, each process writes its values to files in that
folder and a scrape, whichever worker answers it, sums them (prometheus-client's
multiprocess mode). gunicorn's ``child_exit`` hook calls :func:`child_exit`, and the folder
is emptied before the server starts (:func:`on_starting`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROC_ENV",
    "Snapshot",
    "child_exit",
    "exposition",
    "observe_request",
    "on_starting",
]

#: The environment variable prometheus-client reads to count in files shared by processes.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Methods named as themselves in a label; any other (a client may send any token) is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"

REQUEST_SECONDS = Histogram(
    "infomediary_http_request_duration_seconds",
    "Time to answer a request, by method, route pattern and status class.",
    ["method", "route", "status"],
)
ACCESS_LOG_APPENDS = Counter(
    "infomediary_access_log_appends",
    "Entries appended to the access log, by outcome (an entry is counted when written in its "
    "transaction).",
    ["outcome"],
)
EPSILON_SPENT = Counter(
    "infomediary_broker_epsilon_spent",
    "Epsilon charged to suppliers' budgets by committed audience counts and offers.",
)
SUPPRESSED_ANSWERS = Counter(
    "infomediary_broker_suppressed_answers",
    "Released values withheld because the noisy count was below k: a count's total or a "
    "breakdown's cell.",
    ["part"],
)
INDEX_BUILD_SECONDS = Histogram(
    "infomediary_broker_index_build_seconds",
    "Time to build a process's match index in full from the database.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
JOB_FAILURES = Counter(
    "infomediary_jobs_failures",
    "Failed job attempts (retried or given up), by kind.",
    ["kind"],
)

for _outcome in ("allowed", "denied"):
    ACCESS_LOG_APPENDS.labels(_outcome)
for _part in ("count", "cell"):
    SUPPRESSED_ANSWERS.labels(_part)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """One answered request: ``route`` is the matched URL rule's pattern (None: unmatched)."""
    REQUEST_SECONDS.labels(
        method if method in METHODS else "other", route or UNMATCHED, status_class(status)
    ).observe(seconds)


def observe_release(answer: Mapping[str, Any], epsilon: float) -> None:
    """A committed audience count: its epsilon, and the values it withheld below k."""
    EPSILON_SPENT.inc(epsilon)
    if answer.get("suppressed"):
        SUPPRESSED_ANSWERS.labels("count").inc()
    withheld = sum(1 for cell in answer.get("cells") or () if cell.get("suppressed"))
    if withheld:
        SUPPRESSED_ANSWERS.labels("cell").inc(withheld)


class Snapshot(Collector):
    """Gauges read from the database when a scrape asks: handed to :func:`exposition`."""

    def __init__(
        self,
        *,
        queue_depth: Mapping[tuple[str, str], int] | None = None,
        index_version_lag: int | None = None,
    ) -> None:
        self.queue_depth = dict(queue_depth or {})
        self.index_version_lag = index_version_lag

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "infomediary_jobs_queue_depth",
            "Rows of the jobs table by kind and state: due (queued, run_after passed), "
            "scheduled (queued for later), running, failed (given up).",
            labels=["kind", "status"],
        )
        for (kind, status), count in sorted(self.queue_depth.items()):
            depth.add_metric([kind, status], count)
        yield depth
        if self.index_version_lag is not None:
            yield GaugeMetricFamily(
                "infomediary_broker_index_version_lag",
                "Match-entry versions the answering process's index has not applied yet "
                "(the database's version minus the loaded one).",
                value=self.index_version_lag,
            )


class _Process(Collector):
    """This process's own metrics (single-process mode), through a registry of the scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(*extra: Collector) -> bytes:
    """The text exposition format: every process's values (summed over the workers in
    multiprocess mode, this process's otherwise), then ``extra``'s."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Process())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


# -- gunicorn hooks -----------------------------------------------------------------------
def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit``: a worker that is gone stops counting among the live ones."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_starting(server: Any) -> None:
    """gunicorn's ``on_starting``: the folder starts empty (values of a previous run would
    otherwise be added to this one's)."""
    folder = multiprocess_dir()
    if folder:
        for path in _files(Path(folder)):
            path.unlink(missing_ok=True)


def _files(folder: Path) -> Iterable[Path]:
    return folder.glob("*.db") if folder.is_dir() else ()
