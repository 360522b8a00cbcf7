"""``jobs ...``: the background jobs, by status."""

from __future__ import annotations

import click

from infomediary.cli.common import _emit, _open, _using
from infomediary.services import (  # noqa: F401 - register their job handlers
    exposure,
    offers,
    purchase_push,
    purchase_uploads,
)
from infomediary.services.jobs import list_jobs, registered, run_pending
from infomediary.statuses import JobStatus


@click.group(name="jobs")
def jobs_group() -> None:
    """Background jobs: offer deliveries, noisy totals, expiries."""


@jobs_group.command("list")
@click.option(
    "--status",
    type=click.Choice([status.value for status in JobStatus]),
    default=None,
    help="Only jobs of this status.",
)
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def jobs_list(status: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first: kind, status, attempts, when due, last error."""
    with _using() as (_inst, session):
        found = list_jobs(session, status, limit)
    lines = [
        f"{job.id}  {job.kind:<14} {job.status:<8} {job.attempts}/{job.max_attempts}  "
        f"due {job.run_after:%Y-%m-%d %H:%M:%S}Z"
        + (f"  error: {job.last_error}" if job.last_error else "")
        for job in found
    ]
    _emit(
        as_json,
        {"jobs": [job.as_dict() for job in found]},
        "\n".join(lines) if lines else "no jobs",
    )


@jobs_group.command("run")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def jobs_run(as_json: bool) -> None:
    """Run every due job once, here, then exit (the app's worker does this continuously)."""
    inst = _open()
    try:
        ran = run_pending(inst)
    finally:
        inst.close()
    _emit(as_json, {"ran": ran, "kinds": sorted(registered())}, f"{ran} job(s) run")
