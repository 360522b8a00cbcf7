"""``audit verify``: the access log's hash chain, checked end to end."""

from __future__ import annotations

import sys

import click

from infomediary.audit.log import verify
from infomediary.cli.common import _emit, _using


@click.group()
def audit() -> None:
    """Access-log tools."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(as_json: bool) -> None:
    """Recompute every hash and link of the access log; exit 1 naming the first bad entry."""
    with _using() as (_inst, session):
        result = verify(session)
    data = {
        "ok": result.ok,
        "size": result.size,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
    }
    if result.ok:
        _emit(as_json, data, f"access log intact: {result.size} entries")
        return
    _emit(as_json, data, f"access log BROKEN at entry {result.first_bad_seq}: {result.problem}")
    sys.exit(1)
