"""Benchmark: the bulk synthetic-customer path against one-by-one registration.

    .venv/bin/python bench/seed.py [--customers N] [--database-url URL]

Both paths encrypt the same way (own DEK per customer, AES-GCM fields, blind-indexed
email); the baseline is ``services.customers.register`` + ``update_profile`` per customer
(the path a sign-up takes, argon2 skipped since synthetic customers have no password).
Prints customers per second for each and their ratio, plus the projected time for
1,000,000 customers on this machine.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

from infomediary.audit.log import Actor
from infomediary.config import load_config
from infomediary.demo import seed_synthetic, synthetic_profile
from infomediary.instance import initialise, open_instance
from infomediary.services import Context, customers, profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000, help="bulk-path population")
    parser.add_argument("--baseline", type=int, default=500, help="one-by-one customers")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(
            {"INSTANCE_PATH": folder, "DATABASE_URL": args.database_url}, environ={}
        )
        if args.database_url:
            from tests.conftest import reset_postgres

            reset_postgres(args.database_url)
        initialise(config)
        inst = open_instance(config)
        try:
            ctx = Context(Actor.system("bench"))
            rng = random.Random(1)
            started = time.perf_counter()
            with inst.sessions() as session:
                for number in range(args.baseline):
                    customer_id = customers.register(
                        session, inst, email=f"base{number}@bench.invalid", password=None, ctx=ctx
                    )
                    profiles.update_profile(
                        session, inst, customer_id, synthetic_profile(rng, 2026), ctx
                    )
            baseline = args.baseline / (time.perf_counter() - started)
            started = time.perf_counter()
            with inst.sessions() as session:
                seed_synthetic(session, inst, args.customers)
            bulk = args.customers / (time.perf_counter() - started)
        finally:
            inst.close()
    backend = (args.database_url or "sqlite").split(":")[0]
    print(f"backend: {backend}")
    print(f"one-by-one (baseline): {baseline:10.0f} customers/s")
    print(f"bulk path:             {bulk:10.0f} customers/s")
    print(f"ratio bulk/baseline:   {bulk / baseline:10.1f}x")
    print(f"projected 1,000,000:   {1_000_000 / bulk / 60:10.1f} min")


if __name__ == "__main__":
    main()
