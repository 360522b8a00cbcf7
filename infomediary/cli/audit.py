"""``audit verify``, ``audit checkpoint``: the access log checked end to end, and signed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from infomediary.cli.common import _emit, _fail, _using
from infomediary.services import checkpoints

#: The largest checkpoint file read (a checkpoint is a few hundred bytes).
MAX_CHECKPOINT_BYTES = 64 * 1024


@click.group()
def audit() -> None:
    """Access-log tools."""


def _read_kept(path: Path) -> checkpoints.Kept:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CHECKPOINT_BYTES + 1)
    except OSError as exc:
        _fail(f"cannot read checkpoint {path}: {exc.strerror or type(exc).__name__}")
    if len(raw) > MAX_CHECKPOINT_BYTES:
        _fail(f"{path}: not a checkpoint (larger than {MAX_CHECKPOINT_BYTES} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{path}: not a checkpoint (not UTF-8 text)")
    return checkpoints.Kept(str(path), text)


@audit.command("verify")
@click.option(
    "--checkpoint",
    "kept",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A checkpoint kept outside the database (repeatable): the log must be consistent.",
)
@click.option("--json", "as_json", is_flag=True)
def audit_verify(kept: tuple[Path, ...], as_json: bool) -> None:
    """Recompute every hash, link and commitment of the access log, its Merkle tree, every
    stored checkpoint, and each given checkpoint; exit 1 naming what disagrees first."""
    files = tuple(_read_kept(path) for path in kept)
    with _using() as (inst, session):
        report = checkpoints.verify_log(session, inst, files)
    result = report.result
    data = {
        "ok": result.ok,
        "size": result.size,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
        "root": result.root.hex() if result.ok else None,
        "stored_checkpoints": report.stored,
        "kept_checkpoints": report.kept,
    }
    if result.ok:
        checked = f"; {report.stored} stored and {report.kept} kept checkpoint(s) agree"
        _emit(as_json, data, f"access log intact: {result.size} entries{checked}")
        return
    where = f" at entry {result.first_bad_seq}" if result.first_bad_seq is not None else ""
    _emit(as_json, data, f"access log BROKEN{where}: {result.problem}")
    sys.exit(1)


@audit.command("checkpoint")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also write the checkpoint to this folder, for a witness or an archive.",
)
@click.option("--json", "as_json", is_flag=True)
def audit_checkpoint(out: Path | None, as_json: bool) -> None:
    """Sign a checkpoint of the access log now (the latest, if the log has not grown)."""
    with _using() as (inst, session):
        signed = checkpoints.sign(session, inst)
        row = signed.checkpoint
        key = checkpoints.verifier_key(inst)
    written = None
    if out is not None:
        written = _write(out, row.size, row.note)
    data = {
        "size": row.size,
        "root": row.root.hex(),
        "new": signed.new,
        "note": row.note,
        "key": key,
        "file": str(written) if written else None,
    }
    what = "signed" if signed.new else "unchanged since the latest"
    where = f"; written to {written}" if written else ""
    _emit(as_json, data, f"checkpoint of {row.size} entries {what}{where}")


def _write(folder: Path, size: int, note: str) -> Path:
    """``checkpoint-<size>`` in ``folder``, written whole or not at all."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"checkpoint-{size:012d}"
        partial = folder / f".{target.name}.tmp"
        partial.write_text(note, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        _fail(f"cannot write to {folder}: {exc.strerror or type(exc).__name__}")
    return target
