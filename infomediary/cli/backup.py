"""``backup create``, ``backup keys``, ``backup restore``, ``backup verify``: data and keys
backed up apart, restored, and proved whole."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from infomediary.cli.audit import _read_kept
from infomediary.cli.common import _emit, _fail, _open, _settings, _using
from infomediary.crypto.keyring import KeyringError
from infomediary.services import backups


@click.group()
def backup() -> None:
    """Back up the database (never the keys), restore it, and verify a restore."""


@backup.command("create")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def backup_create(dest: Path, as_json: bool) -> None:
    """Write a consistent copy of the database and its manifest to DEST, a new or empty
    folder; the keyring is not in it (copy it apart with `infomediary backup keys`)."""
    inst = _open()
    try:
        manifest = backups.create(inst, dest)
    except backups.BackupError as exc:
        _fail(str(exc))
        return
    finally:
        inst.close()
    _emit(
        as_json,
        {"folder": str(dest.expanduser().resolve()), **manifest.to_json()},
        f"backup of {manifest.customers} customers and {manifest.log_size} log entries "
        f"({manifest.backend}, schema {manifest.revision}) written to {dest}; "
        "the keys are not in it",
    )


@backup.command("keys")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def backup_keys(dest: Path, as_json: bool) -> None:
    """Copy the keyring to DEST, a folder on another medium than the data backups (a backup
    folder is refused)."""
    try:
        written = backups.copy_keyring(_settings(), dest)
    except (backups.BackupError, KeyringError) as exc:
        _fail(str(exc))
        return
    _emit(as_json, {"file": str(written)}, f"keyring copied to {written}")


@backup.command("restore")
@click.argument("src", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Replace a database that holds data.")
@click.option("--json", "as_json", is_flag=True)
def backup_restore(src: Path, force: bool, as_json: bool) -> None:
    """Restore the backup in SRC into the configured database. Restore the keyring first;
    stop the servers and workers while it runs."""
    try:
        report = backups.restore(_settings(), src, force=force)
    except backups.BackupError as exc:
        _fail(str(exc))
        return
    migrate = (
        f"; run `infomediary init` to migrate it to {report.head}"
        if report.revision != report.head
        else ""
    )
    _emit(
        as_json,
        {
            "backend": report.backend,
            "revision": report.revision,
            "log_size": report.log_size,
            "customers": report.customers,
            "granted_role": report.granted_role,
        },
        f"restored {report.customers} customers; access log of {report.log_size} entries; "
        f"schema {report.revision}{migrate}; now run `infomediary backup verify --checkpoint FILE`",
    )


@backup.command("verify")
@click.option(
    "--checkpoint",
    "kept",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A checkpoint kept outside the database (repeatable): the log must be consistent.",
)
@click.option("--json", "as_json", is_flag=True)
def backup_verify(kept: tuple[Path, ...], as_json: bool) -> None:
    """Prove the database usable: every customer's data key unwraps and profile decrypts, and
    the access log verifies against each checkpoint kept outside; exit 1 otherwise."""
    files = tuple(_read_kept(path) for path in kept)
    with _using() as (inst, session):
        report = backups.verify(session, inst, files)
    result = report.log.result
    data = {
        "ok": report.ok,
        "customers": report.customers,
        "failed": report.failed,
        "failed_ids": report.failed_ids,
        "log_ok": result.ok,
        "log_size": result.size,
        "log_problem": result.problem,
        "kept_checkpoints": report.log.kept,
    }
    more = ", ..." if report.failed > len(report.failed_ids) else ""
    decrypt = (
        f"all {report.customers} customers decrypt"
        if report.failed == 0
        else f"{report.failed} of {report.customers} customers do NOT decrypt "
        f"(ids: {', '.join(report.failed_ids)}{more})"
    )
    if result.ok:
        log = (
            f"access log intact: {result.size} entries, {report.log.kept} kept checkpoint(s) agree"
        )
    else:
        where = f" at entry {result.first_bad_seq}" if result.first_bad_seq is not None else ""
        log = f"access log BROKEN{where}: {result.problem}"
    _emit(as_json, data, f"{decrypt}; {log}")
    if not report.ok:
        sys.exit(1)
