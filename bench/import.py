"""Benchmark: importing an Amazon order history against a raw insert of the same rows.

    .venv/bin/python bench/import.py [--lines 1000000] [--pg URL] [--no-sqlite] [--no-rss]

Writes ``--lines`` synthetic lines in Amazon's ``Retail.OrderHistory`` format (the 28
quoted columns of the 2024 files, a BOM, CRLF; one to three items an order) to a temporary
file, then on SQLite (a temporary file) and, with ``--pg``, on PostgreSQL (its tables are
dropped and made afresh), in one fresh instance each (``infomediary init`` into a temporary
folder):

- the baseline, first: the file's lines parsed, keyed and sealed for a fresh customer and
  import outside the clock, then only their insertion timed: a SQLAlchemy Core ``INSERT``
  of a list of dicts (``executemany``) and a commit per batch of ``--batch`` rows, into the
  same ``purchases`` table (its rows are then deleted, outside the clock);
- ``services.purchases.import_file`` of the whole file for another fresh customer: format
  detection, parsing, keyed tokens, sealing, staged batches with their duplicate checks,
  the publishing commit and its log entry.

Prints lines per second for both and their ratio (the target is at least 0.5x). Then the
peak resident memory (``ru_maxrss``) of an import of 100,000 lines and of ``--lines`` lines,
each in a fresh child process (this script with ``--child``), on each backend, with the
resident memory before the import began (the target: flat, under 250 MB). ``--rss-only``
runs only these.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, text

from connectors import formats
from connectors.amazon import RETAIL_COLUMNS_2024
from connectors.lines import PurchaseLine
from infomediary.audit.log import Actor
from infomediary.config import load_config
from infomediary.db import make_engine
from infomediary.instance import Instance, initialise, open_instance
from infomediary.models import Base, Purchase, PurchaseImport, PurchaseImportStatus
from infomediary.services import Context, customers, purchases
from infomediary.services.customer_keys import customer_key

CTX = Context(Actor.system("bench"))
#: Nothing here hashes a password: argon2's 64 MiB would otherwise be the peak RSS measured.
NO_ARGON2_MEMORY = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1}
PRODUCTS = (
    'USB-C Cable 6" (2-Pack), Braided',
    "Notebook A5 Dotted",
    "Stainless Steel Water Bottle, 750 ml",
    "Paperback: The Art of Programming",
    "Wireless Mouse, Silent Click",
    "Organic Green Tea, 100 Bags",
    "LED Desk Lamp with USB Port",
    "Kids' Puzzle, 500 Pieces",
)


def amazon_rows(lines: int) -> Iterator[list[str]]:
    """``lines`` rows of distinct lines: orders of one to three items, a day or so apart."""
    start = datetime(2015, 1, 1, tzinfo=UTC)
    written = order = 0
    while written < lines:
        order += 1
        when = start + timedelta(minutes=97 * order)
        shipped = when + timedelta(days=1)
        items = min(1 + order % 3, lines - written)
        for item in range(items):
            written += 1
            price = 199 + (written * 37) % 9800
            values = {
                "Website": "Amazon.com",
                "Order ID": f"111-{order:07d}-{item:07d}",
                "Order Date": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "Purchase Order Number": "Not Applicable",
                "Currency": "USD",
                "Unit Price": f"{price // 100}.{price % 100:02d}",
                "Unit Price Tax": "1.65",
                "Shipping Charge": "0",
                "Total Discounts": "0",
                "Total Owed": f"{price // 100 + 2}.{price % 100:02d}",
                "Shipment Item Subtotal": f"{price // 100}.{price % 100:02d}",
                "Shipment Item Subtotal Tax": "1.65",
                "ASIN": f"B0{written:08X}",
                "Product Condition": "New",
                "Quantity": str(1 + written % 2),
                "Payment Instrument Type": "Visa - 1234",
                "Order Status": "Closed",
                "Shipment Status": "Shipped",
                "Ship Date": shipped.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Shipping Option": "next-1dc",
                "Shipping Address": "Jane Doe 1 Test Street Springfield IL 62701 United States",
                "Billing Address": "Jane Doe 2 Billing Road Springfield IL 62701 United States",
                "Carrier Name & Tracking Number": f"AMZN_US(TBA{order:012d})",
                "Product Name": f"{PRODUCTS[written % len(PRODUCTS)]} #{written}",
                "Gift Message": "Not Available",
                "Gift Sender Name": "Not Available",
                "Gift Recipient Contact Details": "Not Available",
                "Item Serial Number": "Not Available",
            }
            yield [values[column] for column in RETAIL_COLUMNS_2024]


def write_file(path: Path, lines: int) -> None:
    """An Amazon Retail.OrderHistory CSV of ``lines`` lines (BOM, every field quoted, CRLF)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(codecs.BOM_UTF8.decode("utf-8"))
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(RETAIL_COLUMNS_2024)
        writer.writerows(amazon_rows(lines))


def fresh_instance(folder: str, database_url: str | None) -> Instance:
    """A new instance (what ``infomediary init`` makes) in ``folder``; PostgreSQL's tables
    dropped first."""
    if database_url:
        engine = make_engine(database_url)
        try:
            with engine.begin() as conn:
                Base.metadata.drop_all(conn)
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        finally:
            engine.dispose()
    config = load_config(
        {"INSTANCE_PATH": folder, "DATABASE_URL": database_url, **NO_ARGON2_MEMORY}, environ={}
    )
    initialise(config)
    return open_instance(config)


def new_customer(inst: Instance) -> str:
    with inst.sessions() as session:
        return customers.register(
            session, inst, email=f"{uuid.uuid4().hex}@bench.invalid", password=None, ctx=CTX
        )


def run_import(inst: Instance, path: Path, batch: int) -> tuple[float, Any]:
    customer_id = new_customer(inst)
    started = time.perf_counter()
    with inst.sessions() as session, path.open("rb") as stream:
        result = purchases.import_file(
            session, inst, customer_id, stream, path.name, ctx=CTX, batch=batch
        )
    return time.perf_counter() - started, result


def sealed_batches(inst: Instance, path: Path, batch: int) -> Iterator[list[dict[str, Any]]]:
    """The file's lines as the rows an import writes, for a fresh customer and import."""
    customer_id = new_customer(inst)
    import_id = str(uuid.uuid4())
    with inst.sessions() as session, session.begin():
        key = customer_key(session, inst, customer_id)
        session.add(
            PurchaseImport(
                id=import_id,
                customer_id=customer_id,
                status=PurchaseImportStatus.DONE,
                format="amazon-retail",
                detail=inst.vault.seal(key, purchases.IMPORTS, import_id, "detail", {}),
            )
        )
    parser = formats.parser("amazon-retail")
    rows: list[dict[str, Any]] = []
    with path.open("rb") as stream:
        for line in parser.parse(stream, path.name):
            if not isinstance(line, PurchaseLine):
                raise SystemExit(f"the generated file has a bad line: {line}")
            purchase_id = str(uuid.uuid4())
            rows.append(
                {
                    "id": purchase_id,
                    "customer_id": customer_id,
                    "import_id": import_id,
                    "line_token": purchases.line_token(inst, customer_id, line),
                    "retailer_token": purchases.retailer_token(inst, customer_id, line.retailer),
                    "order_token": purchases.order_token(
                        inst, customer_id, line.retailer, line.order_id
                    ),
                    "sealed": inst.vault.seal(
                        key, purchases.LINES, purchase_id, "record", purchases.record_of(line)
                    ),
                }
            )
            if len(rows) == batch:
                yield rows
                rows = []
    if rows:
        yield rows


def run_baseline(inst: Instance, path: Path, batch: int) -> tuple[float, int]:
    """Seconds spent inserting and committing (only), and the rows inserted."""
    elapsed = 0.0
    count = 0
    statement = insert(Purchase)  # Core: a list of dicts, executemany
    with inst.engine.connect() as conn:
        for rows in sealed_batches(inst, path, batch):
            started = time.perf_counter()
            conn.execute(statement, rows)
            conn.commit()
            elapsed += time.perf_counter() - started
            count += len(rows)
    with inst.engine.begin() as conn:  # outside the clock: an empty table for the import
        conn.execute(delete(Purchase))
    if inst.engine.dialect.name == "postgresql":
        with inst.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE purchases"))
    return elapsed, count


def child(args: argparse.Namespace) -> None:
    """One import in this (fresh) process; prints its peak RSS and the RSS before the
    import (MiB), the lines imported and the seconds."""
    with tempfile.TemporaryDirectory() as folder:
        inst = fresh_instance(folder, args.database_url)
        try:
            before = rss_mib()
            seconds, result = run_import(inst, Path(args.child), args.batch)
        finally:
            inst.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{peak:.1f} {before:.1f} {result.imported} {seconds:.1f}")


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss(path: Path, database_url: str | None, batch: int) -> tuple[float, float, int, float]:
    command = [sys.executable, __file__, "--child", str(path), "--batch", str(batch)]
    if database_url:
        command += ["--database-url", database_url]
    ran = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    out = ran.stdout.split()
    return float(out[0]), float(out[1]), int(out[2]), float(out[3])


def rate(lines: int, seconds: float) -> str:
    return f"{lines / seconds:10,.0f} lines/s ({seconds:7.1f} s)"


def bench(name: str, database_url: str | None, path: Path, lines: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        inst = fresh_instance(folder, database_url)
        try:
            base_seconds, inserted = run_baseline(inst, path, batch)
            seconds, result = run_import(inst, path, batch)
        finally:
            inst.close()
    if (inserted, result.imported, result.duplicates) != (lines, lines, 0):
        raise SystemExit(f"expected {lines} lines, got {inserted} and {result}")
    print(f"{name}:")
    print(f"  raw executemany (baseline): {rate(lines, base_seconds)}")
    print(f"  import_file:                {rate(lines, seconds)}")
    print(f"  ratio import/baseline:      {base_seconds / seconds:10.2f}x  (target >= 0.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000, help="as infomediary import")
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL (its tables are dropped)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--no-rss", action="store_true", help="skip the child processes")
    parser.add_argument("--rss-only", action="store_true", help="only the child processes")
    parser.add_argument("--rss-lines", type=int, default=100_000, help="the smaller RSS run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    backends = [] if args.no_sqlite else [("SQLite", None)]
    if args.pg:
        backends.append(("PostgreSQL", args.pg))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Retail.OrderHistory.1.csv"
        started = time.perf_counter()
        write_file(path, args.lines)
        size = path.stat().st_size
        print(
            f"{args.lines:,} lines, {size / 2**20:.0f} MiB, written in "
            f"{time.perf_counter() - started:.0f} s; batches of {args.batch}",
            flush=True,
        )
        for name, url in [] if args.rss_only else backends:
            bench(name, url, path, args.lines, args.batch)
            sys.stdout.flush()
        if args.no_rss:
            return
        small = Path(folder) / "Retail.OrderHistory.small.csv"
        write_file(small, min(args.rss_lines, args.lines))
        for name, url in backends:
            for file in (small, path):
                peak, before, imported, seconds = peak_rss(file, url, args.batch)
                print(
                    f"{name} peak RSS, import of {imported:,} lines in a fresh process: "
                    f"{peak:6.1f} MiB ({before:.1f} MiB before the import; {seconds:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
