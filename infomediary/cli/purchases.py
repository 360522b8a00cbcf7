"""``import`` and ``customers export``: a customer's purchases from a retailer's file, and
everything held about a customer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from connectors.generic import GenericCsv
from connectors.lines import Parser
from infomediary.audit.log import Actor
from infomediary.cli.common import _emit, _fail, _settings, _using
from infomediary.services import Context
from infomediary.services import purchases as purchase_service


def _size_checked(path: str) -> int:
    """The file's size; a missing, unreadable or too large file ends the command first."""
    try:
        info = os.stat(path)
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or type(exc).__name__}")
        raise AssertionError("unreachable") from exc
    if not Path(path).is_file():
        _fail(f"{path} is not a file")
    limit = _settings().import_max_bytes
    if info.st_size > limit:
        _fail(
            f"{path} is {info.st_size} bytes, above the import limit of {limit} bytes "
            "(INFOMEDIARY_IMPORT_MAX_BYTES)"
        )
    return info.st_size


def _terminal() -> bool:
    """Whether progress is shown: only to a person watching stderr."""
    return sys.stderr.isatty()


@click.command("import")
@click.argument("file", metavar="FILE")
@click.option("--customer", "email", required=True, help="The customer's e-mail address.")
@click.option("--format", "format_name", default=None, help="The file's format (detected if not).")
@click.option(
    "--mapping",
    "mapping_file",
    default=None,
    help="A TOML file describing the columns of any other retailer's CSV (format generic-csv).",
)
@click.option("--skip-invalid", is_flag=True, help="Import the good lines, report the others.")
@click.option("--batch", type=click.IntRange(1, 100_000), default=5000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def import_purchases(
    file: str,
    email: str,
    format_name: str | None,
    mapping_file: str | None,
    skip_invalid: bool,
    batch: int,
    as_json: bool,
) -> None:
    """Import a retailer's purchase file into a customer's purchases (all-or-nothing unless
    --skip-invalid; lines already held are counted as duplicates). FILE may be a zip of
    purchase files, such as Amazon's "Request my data" download: one import of them all."""
    size = _size_checked(file)
    chosen: str | Parser | None = format_name
    if mapping_file is not None:
        if format_name not in (None, "generic-csv"):
            _fail("--mapping describes a generic CSV: leave --format out or name generic-csv")
        try:
            chosen = GenericCsv.from_mapping(Path(mapping_file))
        except (OSError, ValueError) as exc:
            _fail(f"the mapping {mapping_file}: {exc}")
    elif format_name == "generic-csv":
        _fail("a generic CSV needs --mapping FILE describing its columns")
    shown = _terminal()
    with _using() as (inst, session):
        customer_id = purchase_service.customer_by_email(session, inst, email)
        with open(file, "rb") as stream:

            def progress(lines: int) -> None:
                if shown:
                    share = f" ({100 * stream.tell() // size}%)" if size else ""
                    click.echo(f"\r{lines} lines read{share}", err=True, nl=False)

            try:
                result = purchase_service.import_file(
                    session,
                    inst,
                    customer_id,
                    stream,
                    Path(file).name,
                    format=chosen,
                    skip_invalid=skip_invalid,
                    ctx=Context(Actor.system("cli")),
                    batch=batch,
                    progress=progress,
                )
            except purchase_service.ImportRefused as refused:
                if shown:
                    click.echo("", err=True)
                if as_json:
                    click.echo(json.dumps(refused.result.as_dict(), sort_keys=True))
                    sys.exit(1)
                _fail(refused.message)
                return
    if shown:
        click.echo("", err=True)
    if not as_json:
        for error in result.errors:
            click.echo(f"skipped: {error}", err=True)
    _emit(
        as_json,
        result.as_dict(),
        f"imported {result.imported} purchase line(s) ({result.format}): "
        f"{result.duplicates} duplicate(s), {result.rejected} rejected",
    )


@click.command("export")
@click.option("--email", required=True, help="The customer's e-mail address.")
def customers_export(email: str) -> None:
    """Print everything held about a customer (the dashboard's download), as JSON."""
    from infomediary.services import exports

    with _using() as (inst, session):
        customer_id = purchase_service.customer_by_email(session, inst, email)
        document = exports.export(session, inst, customer_id, Context(Actor.system("cli")))
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))
