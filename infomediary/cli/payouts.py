"""``payouts export``: the operator pays the requested payouts and marks them settled."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from pathlib import Path
from typing import IO

import click

from infomediary.audit.log import Actor
from infomediary.cli.common import _fail, _using
from infomediary.services import Context, wallet
from infomediary.services.export_csv import _text as _escaped

COLUMNS = ("id", "requested_at", "amount", "currency", "destination")


@click.group(name="payouts")
def payouts_group() -> None:
    """Customers' payout requests from their rewards wallets."""


def _open_out(out: Path | None) -> IO[str]:
    """The output: a new file readable by its owner only (it holds payment details), or
    stdout. An existing file is refused, so an earlier export is never overwritten."""
    if out is None:
        return sys.stdout
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _fail(f"{out} already exists; name a new file")
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror}")
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


@payouts_group.command("export")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the one format, required).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A new file to write (mode 0600); standard output if omitted.",
)
def payouts_export(as_csv: bool, out: Path | None) -> None:
    """Export every requested payout with its destination in the clear, and mark them settled
    (moved to the "paid out" account) in the same transaction: a second run exports nothing.
    Opening each destination is logged as an access to that customer's data."""
    if not as_csv:
        _fail("choose the format: --csv")
    target = _open_out(out)

    def deliver(found: list[wallet.ExportedPayout]) -> None:
        """The whole file, written and synced to disk before the settlement commits; every
        text cell escaped so that no spreadsheet reads it as a formula."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for payout in found:
            writer.writerow(
                (
                    _escaped(payout.id),
                    payout.requested_at.isoformat(),
                    f"{payout.amount_cents / 100:.2f}",
                    _escaped(payout.currency),
                    _escaped(payout.destination),
                )
            )
        target.write(buffer.getvalue())
        target.flush()
        if target is not sys.stdout:
            os.fsync(target.fileno())

    try:
        with _using() as (inst, session):
            found = wallet.export_payouts(
                session, inst, Context(Actor.system("cli")), deliver=deliver
            )
    except OSError as exc:
        _discard(target, out)
        _fail(f"cannot write {out or 'standard output'}: {exc.strerror or exc}")
    except BaseException:
        # The settlement did not commit: a file left behind would be paid from twice.
        _discard(target, out)
        raise
    if target is not sys.stdout:
        target.close()
    if out is not None:
        click.echo(f"{len(found)} payout(s) written to {out} and settled", err=True)


def _discard(target: IO[str], out: Path | None) -> None:
    """Close and remove a file whose payouts were not settled (nothing is marked paid)."""
    if target is sys.stdout or out is None:
        return
    with contextlib.suppress(OSError):
        target.close()
    out.unlink(missing_ok=True)
