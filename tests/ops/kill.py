"""SIGKILL mid-work: an import, an offer's delivery and a key rotation killed while they
write, then rerun: nothing partial is visible, nothing is lost, the rerun completes.

    python -m tests.ops.kill [--only import|offer|rotation] [--lines 20000] [--keys 3000]
                             [--recipients 200]

Each runs on a fresh instance on a scratch PostgreSQL database, in real subprocesses; "mid"
is real: the script polls the database until the process's progress is visible (rows
committed by it), then sends SIGKILL.

- **import**: ``infomediary import`` of a generated Amazon ``Retail.OrderHistory`` CSV of
  ``--lines`` lines, in batches of 500. Killed with staged batches committed: the customer
  sees none of its lines (an import is published whole or not at all); a rerun at once is
  refused with one line (the killed process's lease has not lapsed yet); once it has, the
  rerun clears what the killed one staged and imports exactly ``--lines`` lines, no
  duplicates, all of them published.
- **offer**: an offer to ``--recipients`` customers, its delivery job run by ``infomediary
  worker`` (database transport), killed while the delivery's transaction is under way (its
  connection holds a lock on the offers' tables; the delivery commits whole, with the job's
  completion). Nothing of it is left: no delivery, the offer queued, the escrow as it was.
  The job's lease (one second here) lapses, a second worker claims it again and completes it:
  every recipient has exactly one delivery, the rewards ledger balances and the escrow still
  holds the rewards of the cap (they are paid when a recipient accepts).
- **rotation**: ``--keys`` customers (the synthetic population's bulk path), then ``infomediary
  keys rotate --batch 50``, killed once some data keys are under the new KEK. Every data key
  still unwraps (under the old KEK or the new one, never a half-written one), the rerun
  resumes the same version and re-wraps the rest, and every customer's profile decrypts.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from connectors.amazon import RETAIL_COLUMNS_2024
from infomediary.instance import Instance
from infomediary.models import (
    Customer,
    DataKey,
    Job,
    Offer,
    OfferDelivery,
    Profile,
    Purchase,
    PurchaseImport,
    PurchaseImportStatus,
    Supplier,
)
from infomediary.statuses import JobStatus, OfferStatus
from tests.ops.support import (
    ROOT,
    OpsInstance,
    cli,
    finish,
    instance,
    main_of,
    scratch_database,
    wait_for,
)

#: Leases of the processes here, seconds: a killed process's lapse this soon.
LEASE_SECONDS = "2"


def _count(inst: Instance, query: Any) -> int:
    with inst.sessions() as session:
        value = session.execute(query).scalar_one()
        session.rollback()
    return int(value or 0)


def _kill_when(process: subprocess.Popen[bytes], what: str, visible: Any, timeout: float) -> None:
    """SIGKILL ``process`` as soon as ``visible()`` is true (its progress is committed)."""

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {finish(process)}")
        return bool(visible())

    wait_for(what, ready, timeout, every=0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL, process.returncode
    finish(process)


# -- an import ----------------------------------------------------------------------------------


def amazon_file(path: Path, lines: int) -> None:
    """An Amazon ``Retail.OrderHistory`` CSV of ``lines`` distinct lines."""
    start = datetime(2015, 1, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(codecs.BOM_UTF8.decode("utf-8"))
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(RETAIL_COLUMNS_2024)
        for n in range(lines):
            when = start + timedelta(minutes=97 * n)
            price = f"{2 + n % 90}.{n % 100:02d}"
            values = dict.fromkeys(RETAIL_COLUMNS_2024, "Not Available")
            values.update(
                {
                    "Website": "Amazon.com",
                    "Order ID": f"111-{n:07d}-0000001",
                    "Order Date": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "Purchase Order Number": "Not Applicable",
                    "Currency": "USD",
                    "Unit Price": price,
                    "Unit Price Tax": "0.50",
                    "Shipping Charge": "0",
                    "Total Discounts": "0",
                    "Total Owed": price,
                    "Shipment Item Subtotal": price,
                    "Shipment Item Subtotal Tax": "0.50",
                    "ASIN": f"B0{n:08X}",
                    "Product Condition": "New",
                    "Quantity": "1",
                    "Payment Instrument Type": "Visa - 1234",
                    "Order Status": "Closed",
                    "Shipment Status": "Shipped",
                    "Ship Date": (when + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Shipping Option": "next-1dc",
                    "Carrier Name & Tracking Number": f"AMZN_US(TBA{n:012d})",
                    "Product Name": f"Paperback #{n}",
                }
            )
            writer.writerow([values[column] for column in RETAIL_COLUMNS_2024])


def run_import(lines: int = 20000) -> dict[str, Any]:
    from tests.factories import make_customer

    with scratch_database("ops_kill") as url, instance(url, KEY_LEASE_SECONDS=LEASE_SECONDS) as ops:
        path = ops.folder / "Retail.OrderHistory.1.csv"
        amazon_file(path, lines)
        inst = ops.open()
        try:
            email = "importer@example.org"
            customer = make_customer(inst, email=email, password=None)
            mine = Purchase.customer_id == customer
            staged = (
                select(func.count())
                .select_from(Purchase)
                .join(PurchaseImport, PurchaseImport.id == Purchase.import_id)
                .where(mine, PurchaseImport.status == PurchaseImportStatus.STAGING)
            )
            published = (
                select(func.count())
                .select_from(Purchase)
                .join(PurchaseImport, PurchaseImport.id == Purchase.import_id)
                .where(mine, PurchaseImport.status == PurchaseImportStatus.DONE)
            )
            args = ("import", str(path), "--customer", email, "--batch", "500", "--json")
            started = time.monotonic()
            first = cli(ops, *args)
            _kill_when(first, "a staged batch", lambda: _count(inst, staged) > 0, 120)
            killed_after = time.monotonic() - started
            staged_at_kill = _count(inst, staged)
            assert _count(inst, published) == 0, "a killed import's lines became visible"

            code, _out, err = finish(cli(ops, *args))
            refused_at_once = code != 0 and "another import" in err
            assert code == 0 or refused_at_once, (code, err)
            assert code != 0 or json.loads(_out)["imported"] == lines
            if code != 0:
                assert len(err.strip().splitlines()) == 1, err

                def rerun() -> dict[str, Any] | None:
                    code, out, err = finish(cli(ops, *args))
                    if code == 0:
                        return dict(json.loads(out))
                    assert "another import" in err, err
                    time.sleep(0.5)
                    return None

                result = wait_for("the rerun after the lease lapsed", rerun, 60, every=0.1)
                assert result["imported"] == lines, result
                assert result["duplicates"] == 0, result
            total = _count(inst, select(func.count()).select_from(Purchase).where(mine))
            distinct = _count(
                inst, select(func.count(func.distinct(Purchase.line_token))).where(mine)
            )
            assert _count(inst, published) == lines
            assert total == distinct == lines, (total, distinct, lines)
            assert _count(inst, staged) == 0
        finally:
            inst.close()
    return {
        "import_lines": lines,
        "import_killed_after_seconds": round(killed_after, 2),
        "import_staged_lines_at_kill": staged_at_kill,
        "import_visible_after_kill": 0,
        "import_rerun_at_once": "refused (lease still live)" if refused_at_once else "completed",
        "import_after_rerun": f"{lines} lines published, 0 duplicates, 0 staged",
    }


# -- a key rotation -----------------------------------------------------------------------------


def _every_key_unwraps(inst: Instance) -> int:
    from infomediary.services.customer_keys import customer_key

    with inst.sessions() as session:
        rows = session.execute(select(DataKey)).scalars().all()
        for row in rows:
            customer_key(session, inst, row.customer_id, row)
        session.rollback()
    return len(rows)


def _every_profile_opens(inst: Instance) -> int:
    from infomediary.services.customer_keys import customer_key
    from infomediary.services.profiles import decrypt_profile

    opened = 0
    with inst.sessions() as session:
        pairs = session.execute(
            select(Customer, Profile).join(Profile, Profile.customer_id == Customer.id)
        ).all()
        for customer, profile in pairs:
            key = customer_key(session, inst, customer.id)
            decrypt_profile(inst, key, customer, profile)
            opened += 1
        session.rollback()
    return opened


def run_rotation(keys: int = 3000) -> dict[str, Any]:
    from infomediary.demo import seed_synthetic
    from infomediary.leases import active_kek

    with scratch_database("ops_kill") as url, instance(url, KEY_LEASE_SECONDS=LEASE_SECONDS) as ops:
        inst = ops.open()
        try:
            with inst.sessions() as session:
                seed_synthetic(session, inst, keys, chunk=1000, workers=1)
                before = active_kek(session)
                session.rollback()
            assert before is not None, "the instance names no active KEK"
            first = cli(ops, "keys", "rotate", "--batch", "50", "--json")

            def rewrapped() -> int:
                with inst.sessions() as session:
                    version = active_kek(session)
                    session.rollback()
                if version == before:
                    return 0
                return _count(
                    inst,
                    select(func.count()).select_from(DataKey).where(DataKey.kek_version == version),
                )

            _kill_when(first, "data keys under the new KEK", lambda: rewrapped() > 0, 120)
            at_kill = rewrapped()
            total = _count(inst, select(func.count()).select_from(DataKey))
            assert at_kill > 0, at_kill
            inst.keyring.reload()
            assert _every_key_unwraps(inst) == total  # old or new, each one whole

            code, out, err = finish(cli(ops, "keys", "rotate", "--batch", "50", "--json"))
            assert code == 0, err
            assert "resuming rotation" in err, err
            result = json.loads(out)
            with inst.sessions() as session:
                after = active_kek(session)
                session.rollback()
            assert result["active_kek"] == after == before + 1, (result, before, after)
            assert result["rewrapped"] == total - at_kill, (result, total, at_kill)
            under_new = (
                select(func.count()).select_from(DataKey).where(DataKey.kek_version == after)
            )
            assert _count(inst, under_new) == total
            inst.keyring.reload()
            assert _every_key_unwraps(inst) == total
            profiles = _every_profile_opens(inst)
            assert profiles == total, (profiles, total)
        finally:
            inst.close()
    return {
        "rotation_data_keys": total,
        "rotation_rewrapped_at_kill": at_kill,
        "rotation_rerun": f"resumed KEK version {after}, re-wrapped {result['rewrapped']}",
        "rotation_profiles_decrypted": profiles,
    }


#: ``infomediary worker`` with the offer delivery's lease cut to one second (the kind's
#: registration is the one setting of a lease), so a killed worker's job is free again soon.
SHORT_LEASE_WORKER = (
    "import sys\n"
    "from infomediary.services import jobs, offers\n"
    "jobs.register(offers.DELIVER, offers.deliver_offer, max_attempts=5, lease_seconds=1)\n"
    "from infomediary.cli import main\n"
    "sys.exit(main(['worker']))\n"
)


def _worker(ops: OpsInstance) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SHORT_LEASE_WORKER],
        env=ops.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _offer_locked(inst: Instance) -> bool:
    """Whether another connection holds a lock on the offers' tables: the delivery's
    transaction is under way (it locks the offer first, then writes deliveries)."""
    query = text(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname IN ('offers', 'offer_deliveries') AND l.pid <> pg_backend_pid()"
    )
    return _count(inst, query) > 0


def run_offer(recipients: int = 200) -> dict[str, Any]:
    from infomediary.audit.log import Actor  # noqa: F401 - the services' actors load with it
    from infomediary.demo import seed_synthetic
    from infomediary.services import Context, offers, rewards
    from infomediary.services.offers import OfferInput, send_offer
    from infomediary.statuses import LedgerAccountKind
    from infomediary.web.schemas import OfferRequestSchema, load
    from tests.factories import EVERYWHERE, make_supplier

    reward = 10
    with scratch_database("ops_kill") as url, instance(url, KEY_LEASE_SECONDS=LEASE_SECONDS) as ops:
        inst = ops.open()
        try:
            with inst.sessions() as session:
                seed_synthetic(session, inst, max(3 * recipients, 600), chunk=1000, workers=1)
            creds = make_supplier(
                inst,
                name="Kill Books",
                scopes=("offers:send",),
                purposes=("marketing",),
                redirect_uris=(),
                fund_cents=10 * reward * recipients,
            )
            request = {
                "purpose": "marketing",
                "where": EVERYWHERE,
                "title": "Books",
                "body": "At the counter.",
                "reward_cents": reward,
                "max_recipients": recipients,
                "expires_in_days": 7,
            }
            with inst.sessions() as session:
                supplier = session.get_one(Supplier, creds.id)
                sent = send_offer(
                    session,
                    inst,
                    supplier,
                    load(OfferRequestSchema(), request, OfferInput),
                    Context.supplier(creds.id),
                )
            offer_id = sent["id"]
            job = select(Job.status, Job.attempts).where(Job.kind == offers.DELIVER)
            delivered = (
                select(func.count())
                .select_from(OfferDelivery)
                .where(OfferDelivery.offer_id == offer_id)
            )

            def escrow() -> int:
                with inst.sessions() as session:
                    account = rewards.account(session, LedgerAccountKind.ESCROW, offer_id)
                    left = rewards.balance(session, account.id)
                    total = rewards.total_of_all_balances(session)
                    session.rollback()
                assert total == 0, f"the ledger does not balance: {total}"
                return left

            escrowed = escrow()

            def running() -> bool:
                with inst.sessions() as session:
                    row = session.execute(job).one()
                    session.rollback()
                assert row.status != JobStatus.DONE, "the delivery finished before the kill"
                return row.status == JobStatus.RUNNING and _offer_locked(inst)

            _kill_when(_worker(ops), "the delivery's transaction under way", running, 120)
            with inst.sessions() as session:
                killed = session.execute(job).one()
                offer = session.execute(select(Offer.status).where(Offer.id == offer_id)).one()
                session.rollback()
            assert killed.status == JobStatus.RUNNING, killed.status
            assert killed.attempts == 1, killed.attempts
            assert offer.status == OfferStatus.QUEUED, offer.status
            assert _count(inst, delivered) == 0, "a killed delivery left deliveries"
            assert escrow() == escrowed

            second = _worker(ops)
            try:

                def done() -> Any:
                    with inst.sessions() as session:
                        row = session.execute(job).one()
                        session.rollback()
                    return row if row.status == JobStatus.DONE else None

                rerun = wait_for("the delivery's rerun", done, 120, every=0.1)
            finally:
                second.send_signal(signal.SIGTERM)
                finish(second, 60)
            with inst.sessions() as session:
                offer = session.execute(select(Offer.status).where(Offer.id == offer_id)).one()
                session.rollback()
            count = _count(inst, delivered)
            distinct = _count(
                inst,
                select(func.count(func.distinct(OfferDelivery.customer_id))).where(
                    OfferDelivery.offer_id == offer_id
                ),
            )
            assert rerun.attempts == 2, rerun.attempts
            assert offer.status == OfferStatus.DELIVERED, offer.status
            assert count == distinct == recipients, (count, distinct, recipients)
            left = escrow()
            assert left == escrowed == reward * recipients, (left, escrowed)
        finally:
            inst.close()
    return {
        "offer_recipients": recipients,
        "offer_deliveries_after_kill": 0,
        "offer_rerun": f"attempt {rerun.attempts}: {count} recipients, each once",
        "offer_escrow_cents": left,
        "offer_ledger": "balanced",
    }


def _scenarios(only: str) -> Iterator[str]:
    yield from (s for s in ("import", "offer", "rotation") if only in ("", s))


def run(
    only: str = "", lines: int = 20000, keys: int = 3000, recipients: int = 200
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for scenario in _scenarios(only):
        if scenario == "import":
            figures.update(run_import(lines))
        elif scenario == "offer":
            figures.update(run_offer(recipients))
        else:
            figures.update(run_rotation(keys))
    return figures


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.ops.kill", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", choices=["import", "offer", "rotation"], default="")
    parser.add_argument("--lines", type=int, default=20000, help="lines of the imported file")
    parser.add_argument("--keys", type=int, default=3000, help="data keys to rotate")
    parser.add_argument("--recipients", type=int, default=200, help="an offer's recipients")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main_of(run, options()))
