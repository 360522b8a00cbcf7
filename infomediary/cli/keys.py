"""``keys rotate`` and ``keys prune``: key-encryption-key rotation and pruning."""

from __future__ import annotations

import sys

import click

from infomediary.cli.common import _emit, _fail, _using
from infomediary.crypto.keyring import KeyringError
from infomediary.services import keys as key_service


@click.group()
def keys() -> None:
    """Key-encryption-key rotation and pruning."""


@keys.command()
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=key_service.BATCH,
    show_default=True,
    help="Data keys re-wrapped per committed transaction.",
)
@click.option("--json", "as_json", is_flag=True)
def rotate(batch: int, as_json: bool) -> None:
    """Re-wrap every data key under a new KEK. Resumable: a rerun finishes an interrupted one."""
    try:
        with _using() as (inst, session):
            rotation = key_service.start_rotation(session, inst)
            version = rotation.active_kek
            click.echo(
                f"resuming rotation to KEK version {version}"
                if rotation.resumed
                else f"new KEK version {version} is active",
                err=True,
            )
            with click.progressbar(
                length=rotation.pending, label="re-wrapping data keys", file=sys.stderr
            ) as bar:
                for count in key_service.rewrap(session, inst, rotation, batch=batch):
                    bar.update(count)
            report = key_service.finish_rotation(session, inst, rotation)
    except KeyringError as exc:
        _fail(str(exc))
        return
    _emit(
        as_json,
        {"active_kek": version, "rewrapped": report.rewrapped, "removable": report.removable},
        f"{report.rewrapped} data keys re-wrapped under KEK version {version}; "
        f"removable with `infomediary keys prune`: {report.removable or 'none'}",
    )


@keys.command()
@click.option("--json", "as_json", is_flag=True)
def prune(as_json: bool) -> None:
    """Remove KEK versions no data key uses, unless a running process may still wrap with them."""
    try:
        with _using() as (inst, session):
            report = key_service.prune(session, inst)
    except KeyringError as exc:
        _fail(str(exc))
        return
    kept = "".join(
        f"; KEK version {v} still wraps {n} data key(s): finish with `infomediary keys rotate`"
        for v, n in sorted(report.still_wrapping.items())
    )
    _emit(
        as_json,
        {
            "removed": report.removed,
            "still_wrapping": {str(v): n for v, n in report.still_wrapping.items()},
        },
        f"removed KEK versions: {report.removed or 'none'}{kept}",
    )
