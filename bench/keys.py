"""Benchmark: ``keys rotate`` re-wrapping data keys, against the old per-row path and the floor.

    .venv/bin/python bench/keys.py [--keys 100000] [--database-url URL] [--no-sqlite]
                                   [--hsm] [--cli] [--quick]

Seeds ``--keys`` customers with a data key each in one fresh instance per database (SQLite in
a temporary file; with ``--database-url``, PostgreSQL, whose tables are dropped and made
afresh), in bulk with Core ``executemany``: a customer row with random bytes where the sealed
e-mail would be, and a DEK wrapped by the instance's keyring (2,000 distinct DEKs, cycled, so
that seeding an HSM takes seconds; rotation re-wraps every row all the same). Then, on the
same rows, in this order, each from a settled database (SQLite's write-ahead log
checkpointed, PostgreSQL vacuumed):

- **the floor**: the rotation's batches read and written back by the same statements with
  the wrapped bytes unchanged (no re-wrap): what any rotation that touches every row costs;
- **rotate**: ``services.keys.rotate`` as ``infomediary keys rotate`` runs it (a new KEK,
  then batches of 5,000: three columns read, one ``executemany`` UPDATE per batch);
- **the old path**: what rotation did before, written out here: ORM objects, 1,000 per
  commit, each re-wrapped and flushed by the unit of work (a rotation to a new KEK).

It prints seconds, keys a second, and the ratios rotate / old path and rotate / floor.
``--cli`` also times the real command in a process of its own (its start-up included).
``--hsm`` repeats the run with the KEKs in a fresh SoftHSM2 token (Debian's ``softhsm2``):
every wrap and unwrap is then a PKCS#11 call. ``--quick`` is a smoke run (2,000 keys).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text

from infomediary.config import load_config
from infomediary.db import make_engine
from infomediary.instance import Instance, initialise, open_instance, record_fingerprints
from infomediary.leases import set_active_kek
from infomediary.models import Base, Customer, DataKey, utcnow
from infomediary.services import keys as key_service

ROOT = Path(__file__).resolve().parent.parent
NO_ARGON2_MEMORY = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1}
SEED_BATCH = 10_000
DISTINCT_DEKS = 2000
OLD_BATCH = 1000
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
CUSTOMERS = cast(Table, Customer.__table__)
DATA_KEYS = cast(Table, DataKey.__table__)


# -- a fresh instance ---------------------------------------------------------------------------


def drop_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


def softhsm_token(folder: Path) -> dict[str, str]:
    """A fresh SoftHSM2 token in ``folder``; the settings that select it."""
    tokens = folder / "tokens"
    tokens.mkdir(mode=0o700)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read when the module is initialised
    pin = secrets.token_hex(8)
    label = f"bench-{secrets.token_hex(4)}"
    command = ["softhsm2-util", "--init-token", "--free", "--label", label]
    command += ["--so-pin", secrets.token_hex(8), "--pin", pin]
    subprocess.run(  # noqa: S603 - our own arguments
        command,
        check=True,
        capture_output=True,
    )
    import pkcs11

    pkcs11.lib(SOFTHSM_MODULE).reinitialize()  # SoftHSM2 reads its configuration then
    return {
        "KEY_PROVIDER": "pkcs11",
        "PKCS11_MODULE": SOFTHSM_MODULE,
        "PKCS11_TOKEN_LABEL": label,
        "PKCS11_PIN": pin,
    }


def settings_of(folder: str, database_url: str, hsm: dict[str, str]) -> dict[str, Any]:
    return {
        "INSTANCE_PATH": folder,
        "DATABASE_URL": database_url,
        "KEY_LEASE_SECONDS": 600,
        **NO_ARGON2_MEMORY,
        **hsm,
    }


def fresh_instance(settings: dict[str, Any]) -> Instance:
    url = str(settings["DATABASE_URL"])
    if url.startswith("postgresql"):
        drop_tables(url)
    config = load_config(settings, environ={})
    initialise(config)
    return open_instance(config)


# -- seeding ------------------------------------------------------------------------------------


def seed(inst: Instance, total: int) -> float:
    """``total`` customers and data keys, bulk-inserted; returns the seconds it took."""
    started = time.perf_counter()
    ring = inst.keyring
    version = ring.active_kek_version
    wrapped = [ring.wrap(version, secrets.token_bytes(32)) for _ in range(DISTINCT_DEKS)]
    now = utcnow()
    with inst.sessions() as session:
        for first in range(0, total, SEED_BATCH):
            connection = session.connection()  # each commit gives the last one back
            ids = [str(uuid.uuid4()) for _ in range(first, min(total, first + SEED_BATCH))]
            connection.execute(
                insert(CUSTOMERS),
                [
                    {
                        "id": cid,
                        "email_index": secrets.token_bytes(32),
                        "email": secrets.token_bytes(48),
                        "password_hash": None,
                        "synthetic": True,
                        "created_at": now,
                    }
                    for cid in ids
                ],
            )
            connection.execute(
                insert(DATA_KEYS),
                [
                    {
                        "customer_id": cid,
                        "dek_version": 1,
                        "kek_version": version,
                        "wrapped_key": wrapped[(first + n) % DISTINCT_DEKS],
                        "created_at": now,
                    }
                    for n, cid in enumerate(ids)
                ],
            )
            session.commit()
    return time.perf_counter() - started


# -- the three ways through every data key -------------------------------------------------------


def old_path(inst: Instance) -> float:
    """Rotation as it was: a new KEK, then ORM objects re-wrapped 1,000 per commit."""
    started = time.perf_counter()
    with inst.sessions() as session:
        inst.keyring.add_kek()
        target = inst.keyring.active_kek_version
        record_fingerprints(session, inst.keyring)
        set_active_kek(session, target)
        session.commit()
        while True:
            session.rollback()
            rows = (
                session.execute(
                    select(DataKey)
                    .where(DataKey.kek_version != target)
                    .order_by(DataKey.customer_id)
                    .limit(OLD_BATCH)
                )
                .scalars()
                .all()
            )
            if not rows:
                break
            for row in rows:
                row.wrapped_key = inst.vault.rewrap(row.wrapped_key, row.kek_version, target)
                row.kek_version = target
            session.commit()
    return time.perf_counter() - started


def rotate(inst: Instance) -> tuple[float, int]:
    started = time.perf_counter()
    with inst.sessions() as session:
        report = key_service.rotate(session, inst)
    return time.perf_counter() - started, report.rewrapped


def floor(inst: Instance) -> float:
    """The rotation's batches with the re-wrap left out: read, write the same bytes back."""
    started = time.perf_counter()
    after = ""
    with inst.sessions() as session:
        while True:
            session.rollback()
            rows = session.execute(
                select(DataKey.customer_id, DataKey.kek_version, DataKey.wrapped_key)
                .where(DataKey.customer_id > after)
                .order_by(DataKey.customer_id)
                .limit(key_service.BATCH)
            ).all()
            if not rows:
                break
            key_service.write_rewrapped(
                session,
                [
                    {
                        "b_customer": customer_id,
                        "b_from": version,
                        "b_old": wrapped,
                        "b_to": version,
                        "b_new": wrapped,
                    }
                    for customer_id, version, wrapped in rows
                ],
            )
            session.commit()
            after = rows[-1][0]
    return time.perf_counter() - started


def cli_rotate(settings: dict[str, Any]) -> float:
    """The real ``infomediary keys rotate`` in a process of its own, start-up included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFOMEDIARY_")}
    env.update({f"INFOMEDIARY_{k}": str(v) for k, v in settings.items()})
    env["PYTHONPATH"] = str(ROOT)
    started = time.perf_counter()
    command = [sys.executable, "-c", "from infomediary.cli import main; main()"]
    command += ["keys", "rotate", "--json"]
    subprocess.run(  # noqa: S603 - our own arguments
        command,
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def settle(inst: Instance) -> None:
    """Start each measure from a settled database: SQLite's write-ahead log checkpointed
    (what the last measure left there would slow the next one's reads), PostgreSQL's dead
    rows vacuumed."""
    if inst.engine.dialect.name == "sqlite":
        raw = inst.engine.raw_connection()  # outside a transaction, which the pragma needs
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
        return
    with inst.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE data_keys")


def keys_under(inst: Instance) -> dict[int, int]:
    with inst.sessions() as session:
        query = select(DataKey.kek_version, func.count()).group_by(DataKey.kek_version)
        return {int(v): int(n) for v, n in session.execute(query)}


def check_decrypts(inst: Instance, sample: int = 50) -> None:
    """A sample of keys unwraps under the KEK the database names (nothing was lost)."""
    with inst.sessions() as session:
        rows = session.execute(select(DataKey).limit(sample)).scalars().all()
        for row in rows:
            inst.vault.unwrap(row.customer_id, row.dek_version, row.kek_version, row.wrapped_key)


# -- the run ------------------------------------------------------------------------------------


def line(label: str, seconds: float, keys: int) -> None:
    print(f"  {label:<34} {seconds:8.2f} s  {keys / seconds:>10,.0f} keys/s")


def bench(name: str, url: str | None, args: argparse.Namespace, *, hsm: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as folder:
        database_url = url or f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        provider = softhsm_token(Path(folder)) if hsm else {}
        settings = settings_of(str(Path(folder) / "instance"), database_url, provider)
        inst = fresh_instance(settings)
        try:
            where = "PKCS#11 token (SoftHSM2)" if hsm else "keyring file"
            print(f"{name}, KEKs in the {where}: {args.keys:,} data keys")
            seeded = seed(inst, args.keys)
            line("seeded (bulk insert)", seeded, args.keys)
            settle(inst)
            floored = floor(inst)
            line("floor (read + write, no re-wrap)", floored, args.keys)
            settle(inst)
            rotated, count = rotate(inst)
            if count != args.keys:
                raise SystemExit(f"rotate re-wrapped {count} keys, not {args.keys}")
            line("keys rotate (5,000 per commit)", rotated, args.keys)
            settle(inst)
            old = None if args.no_old else old_path(inst)
            if old is not None:
                line("old path (ORM, 1,000 per commit)", old, args.keys)
            settle(inst)
            ratios = f"  rotate / floor {rotated / floored:.2f}x"
            if old is not None:
                ratios += f"; rotate / old path {rotated / old:.2f}x ({old / rotated:.1f}x faster)"
            print(ratios)
            if args.cli:
                line("`infomediary keys rotate` (process)", cli_rotate(settings), args.keys)
            under = keys_under(inst)
            if len(under) != 1:
                raise SystemExit(f"data keys under several KEKs after rotating: {under}")
            check_decrypts(inst)
        finally:
            inst.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keys", type=int, default=None, help="data keys (default 100,000)")
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL URL (its tables are dropped)"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--hsm", action="store_true", help="also with KEKs in SoftHSM2")
    parser.add_argument("--hsm-only", action="store_true", help="only with KEKs in SoftHSM2")
    parser.add_argument("--no-old", action="store_true", help="skip the old per-row path")
    parser.add_argument("--cli", action="store_true", help="also time the real command")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    args.keys = args.keys or (2000 if args.quick else 100_000)
    backends: list[tuple[str, str | None]] = [] if args.no_sqlite else [("SQLite", None)]
    if args.database_url:
        backends.append(("PostgreSQL", args.database_url))
    for name, url in backends:
        if not args.hsm_only:
            bench(name, url, args, hsm=False)
        if args.hsm or args.hsm_only:
            bench(name, url, args, hsm=True)


if __name__ == "__main__":
    main()
