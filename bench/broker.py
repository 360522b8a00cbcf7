"""Benchmark: audience counts on a synthetic population, against the floor and the naive way.

    .venv/bin/python bench/broker.py [--customers 1000000] [--database-url URL] [--queries 200]

Reports, in one run on one database:
- index build time and the resident memory it added;
- count latency (median, p99) through the service function (validation, cache lookup,
  budget-ledger charge and commit, index refresh check, selection, popcount, OpenDP noise,
  released-answer and access-log writes), for 1-, 3- and 5-predicate queries;
- the in-memory part alone (selection, popcount, noise);
- the floor: the same counts by bare bitmap OR / AND + popcount of the prebuilt bitmaps;
- one durable commit: a one-row INSERT + COMMIT on the same database, per query; the
  service's target is at most 2x (floor + one durable commit);
- the per-customer privacy ledger: bytes a customer held in memory after the run;
- the naive way: SQL COUNT(*) over the same blinded tokens, exploded into an indexed
  (ordinal, token) table in the same database.
Ratios are printed against the floor and the naive way measured in the same process.
The population is seeded once into bench/.instance-<backend> and reused (topped up).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pyroaring import BitMap
from sqlalchemy import text

from infomediary.audit.log import Actor, ActorType
from infomediary.broker.attributes import ATTRIBUTES
from infomediary.broker.index import MatchIndex
from infomediary.broker.members import TOKEN_BYTES, eligibility_text, token, value_text
from infomediary.config import load_config
from infomediary.demo import seed_synthetic, synthetic_count
from infomediary.instance import Instance, initialise, open_instance
from infomediary.services import Context, privacy_ledger
from infomediary.services.broker import CountQuery, count_audience
from infomediary.services.suppliers import create_supplier
from policies.model import Mode

ROOT = Path(__file__).resolve().parent
PURPOSE = "marketing"
ATTRS = ("region", "area", "age_band", "household", "interests")


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def queries(rng: random.Random, predicates: int, count: int) -> list[dict[str, list[str]]]:
    """Distinct queries over ``predicates`` different attributes, a few values each."""
    seen: set[str] = set()
    out: list[dict[str, list[str]]] = []
    while len(out) < count:
        where: dict[str, list[str]] = {}
        for name in sorted(rng.sample(ATTRS, predicates)):
            values = ATTRIBUTES[name].values
            where[name] = sorted(rng.sample(values, rng.randint(1, min(4, len(values)))))
        key = repr(sorted(where.items()))
        if key not in seen:
            seen.add(key)
            out.append(where)
    return out


def timed(fn: Callable[[], Any], repeat: int = 1) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def ms(value: float) -> str:
    return f"{value * 1000:9.3f} ms"


def in_memory_count(
    index: MatchIndex, noise: Any, where: dict[str, list[str]], supplier: str
) -> int:
    """What the service does in memory: selection with eligibility, popcount, noise."""
    selection = index.select(where, PURPOSE, Mode.AGGREGATE, supplier, "retail")
    return int(noise.release([len(selection.members)])[0])


def floor_count(maps: list[list[BitMap]]) -> int:
    """The floor: union per attribute, AND across attributes, popcount (no eligibility, noise)."""
    unions = [BitMap.union(*group) for group in maps]
    return len(BitMap.intersection(*unions)) if len(unions) > 1 else len(unions[0])


def durable_commit(inst: Instance, n: int) -> None:
    """The durable floor of a write: one small row inserted and committed."""
    with inst.engine.begin() as conn:
        conn.execute(text("INSERT INTO bench_commits (n) VALUES (:n)"), {"n": n})


def commit_table(inst: Instance) -> None:
    with inst.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_commits (n BIGINT NOT NULL)"))


def prepare(args: argparse.Namespace) -> Instance:
    backend = "postgresql" if args.database_url else "sqlite"
    folder = ROOT / f".instance-{backend}"
    config = load_config(
        {
            "INSTANCE_PATH": str(folder),
            "DATABASE_URL": args.database_url,
            "BROKER_BUDGET": 1e9,
            "BROKER_GLOBAL_BUDGET": 1e9,
            "BROKER_EPOCH_HOURS": 1,
        },
        environ={},
    )
    initialise(config)
    inst = open_instance(config)
    with inst.sessions() as session:
        have = synthetic_count(session)
        session.rollback()
        if have < args.customers:
            print(f"seeding {args.customers - have:,} synthetic customers (once) ...", flush=True)
            start = time.perf_counter()
            seed_synthetic(session, inst, args.customers)
            print(f"  seeded in {time.perf_counter() - start:.0f} s", flush=True)
    return inst


def naive_table(inst: Instance) -> None:
    """The naive layout: one row per (ordinal, token), indexed by token (kept between runs)."""
    with inst.engine.begin() as conn:
        entries = conn.execute(text("SELECT COUNT(*) FROM match_entries")).scalar_one()
        marker = conn.execute(text("SELECT COUNT(*) FROM broker_state WHERE id = 1")).scalar_one()
        try:
            built = conn.execute(
                text("SELECT COUNT(DISTINCT ordinal) FROM bench_tokens")
            ).scalar_one()
        except Exception:
            built = -1
        if built == entries and marker:
            return
    with inst.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_tokens"))
        conn.execute(
            text(
                "CREATE TABLE bench_tokens (ordinal INTEGER NOT NULL, token BYTEA NOT NULL)"
                if inst.engine.dialect.name == "postgresql"
                else "CREATE TABLE bench_tokens (ordinal INTEGER NOT NULL, token BLOB NOT NULL)"
            )
        )
        rows = conn.execute(text("SELECT ordinal, tokens FROM match_entries")).all()
        batch: list[dict[str, Any]] = []
        for ordinal, blob in rows:
            for start in range(0, len(blob), TOKEN_BYTES):
                batch.append({"o": ordinal, "t": bytes(blob[start : start + TOKEN_BYTES])})
            if len(batch) > 200_000:
                conn.execute(text("INSERT INTO bench_tokens VALUES (:o, :t)"), batch)
                batch = []
        if batch:
            conn.execute(text("INSERT INTO bench_tokens VALUES (:o, :t)"), batch)
        conn.execute(text("CREATE INDEX ix_bench_tokens ON bench_tokens (token, ordinal)"))
        if inst.engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE bench_tokens"))


def naive_count(inst: Instance, key: bytes, where: dict[str, list[str]]) -> int:
    """COUNT(*) of ordinals holding, for every attribute, one of its values and eligibility."""
    clauses = []
    params: dict[str, Any] = {}
    for n, (attribute, values) in enumerate(where.items()):
        names = []
        for m, value in enumerate(values):
            params[f"v{n}_{m}"] = token(key, value_text(attribute, value))
            names.append(f":v{n}_{m}")
        category = ATTRIBUTES[attribute].category
        params[f"e{n}"] = token(key, eligibility_text(category, PURPOSE, Mode.AGGREGATE))
        clauses.append(
            f"SELECT ordinal FROM bench_tokens WHERE token IN ({', '.join(names)}) "
            f"INTERSECT SELECT ordinal FROM bench_tokens WHERE token = :e{n}"
        )
    sql = (
        "SELECT COUNT(*) FROM ("
        + " INTERSECT ".join(f"SELECT * FROM ({c}) s{i}" for i, c in enumerate(clauses))
        + ") q"
    )
    with inst.engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--queries", type=int, default=200, help="per predicate count")
    parser.add_argument("--naive-queries", type=int, default=10)
    args = parser.parse_args()
    inst = prepare(args)
    key = inst.keyring.secret("blind_index")
    backend = inst.engine.dialect.name
    print(f"backend {backend}, {args.customers:,} customers")

    index = inst.match_index
    before = rss_mib()
    with inst.sessions() as session:
        build = timed(lambda: index.load(session))[0]
    print(
        f"index build: {build:.1f} s, +{rss_mib() - before:.0f} MiB resident, "
        f"{index.members:,} members"
    )

    with inst.sessions() as session:
        supplier = create_supplier(
            session,
            name=f"Bench {time.time_ns()}",
            redirect_uris=[],
            scopes=["audience:count"],
            purposes=[PURPOSE],
            sector="retail",
            ctx=Context(Actor(ActorType.OPERATOR, "bench")),
        ).supplier
    noise = inst.noise
    rng = random.Random(7)
    commit_table(inst)
    with inst.sessions() as session:  # fold earlier runs' releases in before timing
        ledger_load = timed(lambda: privacy_ledger.refresh(session, inst))[0]
        session.rollback()
    print(f"ledger load: {ledger_load:.1f} s for the releases of earlier runs in the window")
    print(
        f"{'predicates':>10} {'service median':>16} {'service p99':>14} {'in-memory':>12} "
        f"{'floor':>12} {'commit':>12} {'svc/(floor+commit)':>18} {'naive SQL':>12} "
        f"{'SQL/service':>11}"
    )
    for predicates in (1, 3, 5):
        batch = queries(rng, predicates, args.queries)
        service: list[float] = []
        with inst.sessions() as session:
            for where in batch:
                query = CountQuery(
                    purpose=PURPOSE,
                    where={a: sorted(set(v)) for a, v in sorted(where.items())},
                    breakdown=None,
                )
                service += timed(
                    partial(
                        count_audience,
                        session,
                        inst,
                        supplier,
                        query,
                        Context.supplier(supplier.id),
                    )
                )
        in_memory: list[float] = []
        floor: list[float] = []
        commit: list[float] = []
        for n, where in enumerate(batch):
            commit += timed(partial(durable_commit, inst, n))
            in_memory += timed(partial(in_memory_count, index, noise, where, supplier.id))
            # the floor: bare bitmaps, OR within an attribute, AND across, popcount; nothing else
            maps = [[index.bitmap(value_text(a, v)) for v in values] for a, values in where.items()]
            floor += timed(partial(floor_count, maps))
        naive: list[float] = []
        if predicates == 1 and not getattr(main, "_naive_ready", False):
            start = time.perf_counter()
            naive_table(inst)
            print(f"  (naive token table built in {time.perf_counter() - start:.0f} s)")
            main._naive_ready = True  # type: ignore[attr-defined]
        for where in batch[: args.naive_queries]:
            naive += timed(partial(naive_count, inst, key, where))
        med_service = statistics.median(service)
        med_mem, med_floor = statistics.median(in_memory), statistics.median(floor)
        med_naive = statistics.median(naive)
        med_commit = statistics.median(commit)
        print(
            f"{predicates:>10} {ms(med_service):>16} {ms(p99(service)):>14} {ms(med_mem):>12} "
            f"{ms(med_floor):>12} {ms(med_commit):>12} "
            f"{med_service / (med_floor + med_commit):>17.2f}x {ms(med_naive):>12} "
            f"{med_naive / med_service:>10.0f}x"
        )
    ledger = inst.privacy_ledger
    print(
        f"privacy ledger: {ledger.slices} bit slices, {ledger.size_in_bytes():,} bytes, "
        f"{ledger.size_in_bytes() / max(1, index.members):.2f} bytes a customer "
        f"(limit 16), {ledger.added_through - ledger.expired_through:,} releases in the window"
    )
    inst.close()


if __name__ == "__main__":
    main()
