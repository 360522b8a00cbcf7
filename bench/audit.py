"""Benchmark: the access log's verification, proofs and appends, against raw hashing and inserts.

    .venv/bin/python bench/audit.py [--entries 1000000] [--pg URL] [--no-sqlite] [--quick]

Seeds a log of ``--entries`` format-2 entries in one fresh instance per database (SQLite in a
temporary file; with ``--pg``, PostgreSQL, whose tables are dropped and made afresh), in bulk
but by the writer's own rules: each entry's canonical bytes (``tlog.entry.canonical``), its
leaf hash, the chain, the customer commitment under the instance's log keys, the member tree
of aggregate entries and the Merkle tree's nodes (``merkle.append_leaf``), inserted with Core
``executemany`` in batches. The mix: most entries about a customer (supplier reads with a
policy verdict as their reason, the customer's own actions, connectors' imports), a third of
those with a sealed detail, a few aggregate entries (counts and offers) with member bitmaps
of 100 to 5,000 members and every 25th of 10,000, and system entries about no one. Then:

- ``audit.log.verify`` of the whole log with the instance's session (keys present: every
  commitment and member root is recomputed), against two baselines measured in the same run:
  raw ``hashlib.sha256(b"\\x00" + canonical)`` over the same canonical bytes held in memory,
  and the floor of any verifier that reads the log: the same rows read by the same keyset
  query, plus that hash. The target is verify within 2x of the raw hash. ``--profile`` also
  runs verify under cProfile and prints where its time goes.
- inclusion and consistency proofs from the stored tree (``StoredTree``, rows of
  ``log_nodes`` and leaf hashes) at the full size: generation and verification, median and
  p99 over ``--proofs`` random indices and sizes (target under 1 ms each).
- ``append`` with the tree maintained, committed every entry and every 100 entries, against
  a Core insert of the same rows (read back, given sequence numbers past the log's end, and
  deleted afterwards) with the same commits: entries a second and their ratio.

``--quick`` is a smoke run (2,000 entries, a few proofs and appends).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import io
import pstats
import random
import statistics
import struct
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pyroaring import BitMap
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from infomediary.audit import log
from infomediary.audit.log import Actor, ActorType, LogEvent, LogKeys, Sealed
from infomediary.audit.members import member_tree
from infomediary.audit.reasons import Reason, reason_of, render
from infomediary.config import load_config
from infomediary.db import make_engine
from infomediary.instance import Instance, initialise, open_instance
from infomediary.models import AccessLogEntry, Base, LogHead, LogNode, utcnow
from infomediary.tlog import entry as entry_v2
from infomediary.tlog import merkle

NO_ARGON2_MEMORY = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1}
BATCH = 5000
START = datetime(2025, 1, 1, tzinfo=UTC)
#: Customers the entries are about, and the population aggregate entries count over.
CUSTOMERS = 50_000
POPULATION = 1_000_000
SUPPLIERS = 40
CATEGORIES = ("identity", "demographics", "district", "interests", "purchases", "preferences")
PURPOSES = ("service", "marketing", "personalisation", "analytics", "research")
#: Every column verify reads, in its order.
COLUMNS = (
    AccessLogEntry.seq,
    AccessLogEntry.created_at,
    AccessLogEntry.actor_type,
    AccessLogEntry.actor_id,
    AccessLogEntry.customer_id,
    AccessLogEntry.action,
    AccessLogEntry.categories,
    AccessLogEntry.purpose,
    AccessLogEntry.outcome,
    AccessLogEntry.reason,
    AccessLogEntry.request_id,
    AccessLogEntry.detail,
    AccessLogEntry.members,
    AccessLogEntry.prev_hash,
    AccessLogEntry.leaf_hash,
    AccessLogEntry.version,
    AccessLogEntry.customer_commitment,
    AccessLogEntry.detail_hash,
    AccessLogEntry.member_root,
    AccessLogEntry.reason_data,
)


# -- a fresh instance -------------------------------------------------------------------------


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


def instance_keys(inst: Instance) -> LogKeys:
    with inst.sessions() as session:
        keys = log.log_keys(session)
    if keys is None:
        raise SystemExit("the instance's sessions carry no log keys")
    return keys


# -- a realistic mix of entries ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """What one entry says, before the log adds time, sequence number and hashes."""

    actor_type: str
    actor_id: str
    customer_id: str | None
    action: str
    categories: str
    purpose: str
    outcome: str
    reason_json: str
    reason_text: str
    request_id: str
    detail: bytes | None = None
    detail_hash: bytes | None = None
    members: bytes | None = None


def _reason(code: str, params: dict[str, Any] | None = None) -> tuple[str, str]:
    data = Reason(code, params or {}).to_json()
    return data, render(data)[: log.REASON_LENGTH]


def _verdict(supplier: str, purpose: str, categories: list[str], allowed: bool) -> dict[str, Any]:
    decision = "allow" if allowed else "deny"
    return {
        "supplier": supplier,
        "purpose": purpose,
        "mode": "direct",
        "decision": decision,
        "categories": [
            {
                "category": category,
                "decision": decision,
                "permitted": "direct" if allowed else "never",
                "rules": [
                    {
                        "category": category,
                        "purpose": purpose,
                        "mode": "direct" if allowed else "never",
                        "recipient": "supplier",
                        "supplier": supplier,
                    }
                ],
            }
            for category in categories
        ],
    }


class Mix:
    """Entries as the app writes them, drawn from a seeded generator; reasons are rendered
    once per distinct reason (rendering is the writer's cost, not the verifier's)."""

    def __init__(self, rng: random.Random, entries: int) -> None:
        self.rng = rng
        self.customers = [
            str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(CUSTOMERS)
        ]
        self.suppliers = [
            str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(SUPPLIERS)
        ]
        self._reasons: dict[tuple[Any, ...], tuple[str, str]] = {}
        aggregates = max(3, entries // 2000)
        self.aggregate_every = max(1, entries // aggregates)
        self.aggregates = 0

    def reason(self, key: tuple[Any, ...], make: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        found = self._reasons.get(key)
        if found is None:
            found = self._reasons[key] = make()
        return found

    def sealed(self) -> tuple[bytes, bytes]:
        """A sealed detail's size (AES-GCM of 60 to 260 bytes of JSON with its salt) and the
        hash of its plaintext."""
        blob = self.rng.randbytes(self.rng.randint(90, 290))
        return blob, entry_v2.detail_hash(self.rng.randbytes(64))

    def members(self) -> bytes:
        """A count's or an offer's member bitmap: 100 to 5,000 members, every 25th 10,000."""
        self.aggregates += 1
        rng = self.rng
        count = 10_000 if self.aggregates % 25 == 1 else int(100 * 50 ** rng.random())
        return BitMap(rng.sample(range(POPULATION), count)).serialize()

    def kind(self, seq: int, *, aggregates: bool = True) -> Kind:
        rng = self.rng
        request = f"{rng.getrandbits(64):016x}"
        if aggregates and seq % self.aggregate_every == self.aggregate_every // 2:
            supplier = rng.choice(self.suppliers)
            action = rng.choice(("count", "offer"))
            epsilon = rng.choice((0.05, 0.1, 0.25))
            data, shown = self.reason(
                (action, epsilon),
                lambda: _reason(
                    "broker.count" if action == "count" else "broker.match", {"epsilon": epsilon}
                ),
            )
            criteria = (
                f'{{"epsilon":{epsilon},"where":{{"age_band":["25-34"],"region":["DE-BE"]}}}}'
            )
            detail = criteria.encode()
            return Kind(
                "supplier", supplier, None, action, "demographics,district", "marketing",
                "allowed", data, shown, request, detail, entry_v2.detail_hash(detail),
                self.members(),
            )  # fmt: skip
        customer = rng.choice(self.customers)
        roll = rng.random()
        if roll < 0.55:  # a supplier reads a customer's data under their policy
            supplier = rng.choice(self.suppliers)
            purpose = rng.choice(PURPOSES)
            categories = sorted(rng.sample(CATEGORIES, rng.randint(1, 3)))
            allowed = rng.random() < 0.93
            data, shown = self.reason(
                (supplier, purpose, tuple(categories), allowed),
                lambda: _reason(
                    "resource.read" if allowed else "resource.read_refused",
                    {"verdict": _verdict(supplier, purpose, categories, allowed)},
                ),
            )
            blob, digest = self.sealed() if rng.random() < 0.33 else (None, None)
            return Kind(
                "supplier", supplier, customer, "read", ",".join(categories), purpose,
                "allowed" if allowed else "denied", data, shown, request, blob, digest,
            )  # fmt: skip
        if roll < 0.85:  # the customer's own actions
            code, action, category = rng.choice(
                (
                    ("profile.viewed", "read", "demographics"),
                    ("profile.edited", "update", "demographics"),
                    ("account.login", "login", "account"),
                    ("purchases.viewed", "read", "purchases"),
                    ("consent.granted", "consent", "account"),
                    ("interests.viewed", "read", "interests"),
                )
            )
            supplier = rng.choice(self.suppliers)
            params = {"supplier": supplier} if code == "consent.granted" else {}
            data, shown = self.reason(
                (code, supplier if params else None), lambda: _reason(code, params)
            )
            blob, digest = self.sealed() if rng.random() < 0.33 else (None, None)
            return Kind(
                "customer", customer, customer, action, category, "service", "allowed", data,
                shown, request, blob, digest,
            )  # fmt: skip
        if roll < 0.95:  # a connector's import for the customer
            imported = rng.randint(1, 400)
            data, shown = self.reason(
                ("imported", imported),
                lambda: _reason(
                    "purchases.imported",
                    {
                        "format": "amazon-retail",
                        "imported": imported,
                        "duplicates": 0,
                        "rejected": 0,
                    },
                ),
            )
            blob, digest = self.sealed()
            return Kind(
                "connector", "amazon", customer, "import", "purchases", "service", "allowed",
                data, shown, request, blob, digest,
            )  # fmt: skip
        supplier = rng.choice(self.suppliers)  # the operator's and suppliers' own entries
        data, shown = self.reason(
            ("verified", supplier), lambda: _reason("supplier.verified", {"supplier": supplier})
        )
        return Kind(
            "operator",
            "admin",
            None,
            "verify",
            "account",
            "service",
            "allowed",
            data,
            shown,
            request,
        )


# -- seeding in bulk by the writer's rules ----------------------------------------------------


@dataclass
class Seeded:
    """What the seeding computed, kept for the baselines and the proofs."""

    canonicals: list[bytes] = field(default_factory=list)
    #: levels[0] are the leaf hashes, levels[l][i] the perfect subtree (l, i): a memory copy
    #: of the stored tree, to compute the roots proofs are verified against.
    levels: list[list[bytes]] = field(default_factory=lambda: [[]])
    seconds: float = 0.0

    def perfect_hash(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int) -> bytes:
        return merkle.range_hash_from(self, 0, size)


def seed(inst: Instance, entries: int, rng: random.Random) -> Seeded:
    keys = instance_keys(inst)
    mix = Mix(rng, entries)
    out = Seeded()
    started = time.perf_counter()
    frontier: list[bytes] = []
    prev = log.GENESIS
    moment = START
    step = timedelta(microseconds=1)
    rows: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    entry_table = insert(AccessLogEntry)
    node_table = insert(LogNode)
    with inst.engine.connect() as conn:
        if conn.execute(select(LogHead.size)).scalar_one() != 0:
            raise SystemExit("a fresh instance's log should be empty")
        for seq in range(entries):
            kind = mix.kind(seq)
            moment += step * rng.randint(1_000, 60_000_000)
            commitment = None
            if kind.customer_id is not None:
                commitment = keys.customer_commitment(seq, kind.customer_id)
            member_root = None
            if kind.members is not None:
                member_root = member_tree(keys.member_key(seq), kind.members).root
            canonical = entry_v2.canonical(
                seq, log.time_us(moment), kind.actor_type,
                log.committed_actor_id(kind.actor_type, kind.actor_id, kind.customer_id),
                commitment, kind.action, kind.categories, kind.purpose, kind.outcome,
                kind.reason_json, kind.request_id, kind.detail_hash, member_root, prev,
            )  # fmt: skip
            leaf = hashlib.sha256(b"\x00" + canonical).digest()
            out.canonicals.append(canonical)
            rows.append(
                {
                    "seq": seq,
                    "created_at": moment,
                    "actor_type": kind.actor_type,
                    "actor_id": kind.actor_id,
                    "customer_id": kind.customer_id,
                    "action": kind.action,
                    "categories": kind.categories,
                    "purpose": kind.purpose,
                    "outcome": kind.outcome,
                    "reason": kind.reason_text,
                    "request_id": kind.request_id,
                    "detail": kind.detail,
                    "members": kind.members,
                    "prev_hash": prev,
                    "leaf_hash": leaf,
                    "version": entry_v2.VERSION,
                    "customer_commitment": commitment,
                    "detail_hash": kind.detail_hash,
                    "member_root": member_root,
                    "reason_data": kind.reason_json,
                }
            )
            frontier, completed = merkle.append_leaf(frontier, seq, leaf)
            out.levels[0].append(leaf)
            for level, index, node in completed:
                if level == len(out.levels):
                    out.levels.append([])
                out.levels[level].append(node)
                nodes.append({"level": level, "idx": index, "hash": node})
            prev = leaf
            if len(rows) == BATCH:
                conn.execute(entry_table, rows)
                conn.execute(node_table, nodes)
                conn.commit()
                rows, nodes = [], []
        if rows:
            conn.execute(entry_table, rows)
        if nodes:
            conn.execute(node_table, nodes)
        conn.execute(
            update(LogHead)
            .where(LogHead.id == log.HEAD_ID)
            .values(size=entries, last_hash=prev, frontier=b"".join(frontier) or None)
        )
        conn.commit()
    if inst.engine.dialect.name == "postgresql":
        with inst.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE access_log"))
            conn.execute(text("VACUUM ANALYZE log_nodes"))
    else:  # a log written over months has no gigabyte of write-ahead log to read through
        raw = inst.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    out.seconds = time.perf_counter() - started
    return out


# -- verification and its baselines -----------------------------------------------------------


def raw_hash(canonicals: list[bytes]) -> float:
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for canonical in canonicals:
        sha256(b"\x00" + canonical).digest()
    return time.perf_counter() - started


def keyset(session: Session, batch: int) -> Iterator[Sequence[Any]]:
    """The log's rows in ``seq`` order, ``batch`` at a time, by the query verify makes."""
    after = -1
    while True:
        rows = session.execute(
            select(*COLUMNS)
            .where(AccessLogEntry.seq > after)
            .order_by(AccessLogEntry.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].seq


def read_and_hash(inst: Instance, canonicals: list[bytes]) -> float:
    """The floor of a verifier that reads the log: the rows read, and each canonical hashed."""
    sha256 = hashlib.sha256
    started = time.perf_counter()
    count = 0
    with inst.sessions() as session:
        for rows in keyset(session, BATCH):
            for row in rows:
                sha256(b"\x00" + canonicals[row.seq]).digest()
            count += len(rows)
    seconds = time.perf_counter() - started
    if count != len(canonicals):
        raise SystemExit(f"read {count} rows, expected {len(canonicals)}")
    return seconds


def run_verify(inst: Instance, entries: int, root: bytes) -> float:
    started = time.perf_counter()
    with inst.sessions() as session:
        result = log.verify(session)
    seconds = time.perf_counter() - started
    if not result.ok or result.size != entries or result.root != root:
        raise SystemExit(f"the seeded log does not verify: {result}")
    return seconds


def profile_verify(inst: Instance, top: int = 25) -> str:
    profiler = cProfile.Profile()
    with inst.sessions() as session:
        profiler.enable()
        result = log.verify(session)
        profiler.disable()
    if not result.ok:
        raise SystemExit(f"the seeded log does not verify: {result}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- proofs -----------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1e3, p99 * 1e3


@dataclass
class ProofTimes:
    inclusion_make: list[float] = field(default_factory=list)
    inclusion_check: list[float] = field(default_factory=list)
    consistency_make: list[float] = field(default_factory=list)
    consistency_check: list[float] = field(default_factory=list)


def run_proofs(inst: Instance, seeded: Seeded, count: int, rng: random.Random) -> ProofTimes:
    size = len(seeded.levels[0])
    root = seeded.root(size)
    times = ProofTimes()
    clock = time.perf_counter
    with inst.sessions() as session:
        for _ in range(count):
            index = rng.randrange(size)
            started = clock()
            # a fresh tree per proof, as each request has: nothing cached between proofs
            proof = log.StoredTree(session).inclusion_proof(index, size)
            made = clock()
            merkle.verify_inclusion(index, size, seeded.levels[0][index], proof, root)
            times.inclusion_make.append(made - started)
            times.inclusion_check.append(clock() - made)
        for _ in range(count):
            first = rng.randrange(1, size) if size > 1 else 1
            first_root = seeded.root(first)
            started = clock()
            proof = log.StoredTree(session).consistency_proof(first, size)
            made = clock()
            merkle.verify_consistency(first, size, first_root, root, proof)
            times.consistency_make.append(made - started)
            times.consistency_check.append(clock() - made)
    return times


# -- appends ----------------------------------------------------------------------------------


def events(mix: Mix, count: int) -> list[LogEvent]:
    """What ``append`` is given for ``count`` entries of the mix (aggregate entries aside: a
    member tree's cost is the count's, measured by the broker benchmark)."""
    out: list[LogEvent] = []
    while len(out) < count:
        kind = mix.kind(0, aggregates=False)
        detail: Sealed | bytes | None = None
        if kind.detail is not None and kind.detail_hash is not None:
            detail = Sealed(kind.detail, kind.detail_hash)
        out.append(
            LogEvent(
                actor=Actor(ActorType(kind.actor_type), kind.actor_id),
                action=kind.action,
                customer_id=kind.customer_id,
                categories=frozenset(kind.categories.split(",")),
                purpose=kind.purpose,
                allowed=kind.outcome == "allowed",
                reason=Reason.from_json(kind.reason_json),
                request_id=kind.request_id,
                detail=detail,
            )
        )
    return out


def timed_appends(inst: Instance, batch: list[LogEvent], per_commit: int) -> tuple[float, int, int]:
    """Seconds to append and commit ``batch``, ``per_commit`` entries a transaction; the
    sequence numbers written."""
    started = time.perf_counter()
    with inst.sessions() as session:
        first = None
        for start in range(0, len(batch), per_commit):
            for event in batch[start : start + per_commit]:
                entry = log.append(session, event)
                first = entry.seq if first is None else first
            session.commit()
            session.expunge_all()
    seconds = time.perf_counter() - started
    assert first is not None
    return seconds, first, first + len(batch)


def timed_inserts(inst: Instance, first: int, end: int, per_commit: int) -> float:
    """Seconds to insert the rows ``[first, end)`` again as plain rows (a Core insert and a
    commit, ``per_commit`` rows a transaction), numbered past the log's end; then deleted."""
    offset = 1 << 40
    with inst.engine.connect() as conn:
        rows = [
            {**row._asdict(), "seq": row.seq + offset}
            for row in conn.execute(
                select(*COLUMNS)
                .where(AccessLogEntry.seq >= first, AccessLogEntry.seq < end)
                .order_by(AccessLogEntry.seq)
            )
        ]
        conn.rollback()
        statement = insert(AccessLogEntry)
        started = time.perf_counter()
        for start in range(0, len(rows), per_commit):
            chunk = rows[start : start + per_commit]
            conn.execute(statement, chunk if len(chunk) > 1 else chunk[0])
            conn.commit()
        seconds = time.perf_counter() - started
        conn.execute(delete(AccessLogEntry).where(AccessLogEntry.seq >= offset))
        conn.commit()
    return seconds


# -- prototypes of faster paths (measured here; the product's code is left as it is) ----------

_QQI = struct.Struct(">QQI").pack
_LEN = struct.Struct(">I").pack
_HASH = b"\x00\x00\x00\x20"
_ABSENT = b"\x00\x00\x00\x00"
_NAIVE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None)
_AWARE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: The columns a format-2 entry's checks need (not ``reason``, the uncommitted rendering,
#: nor ``detail``, whose hash the entry commits to: format 1 would need both).
_V2_COLUMNS = (
    "seq, created_at, actor_type, actor_id, customer_id, action, categories, purpose, outcome, "
    "request_id, members, prev_hash, leaf_hash, version, customer_commitment, detail_hash, "
    "member_root, reason_data"
)
_ALL_COLUMNS = ", ".join(column.key for column in COLUMNS)


def _placeholder(inst: Instance) -> str:
    return "%s" if inst.engine.dialect.name == "postgresql" else "?"


def raw_read_and_hash(inst: Instance, canonicals: list[bytes]) -> float:
    """The floor again, through the driver's cursor (every column, the same keyset query)."""
    sha256 = hashlib.sha256
    sql = (
        f"SELECT {_ALL_COLUMNS} FROM access_log WHERE seq > {_placeholder(inst)} "
        f"ORDER BY seq LIMIT {BATCH}"
    )
    conn = inst.engine.raw_connection()
    started = time.perf_counter()
    count = 0
    try:
        cursor = conn.cursor()
        after = -1
        while True:
            cursor.execute(sql, (after,))
            rows = cursor.fetchall()
            if not rows:
                break
            for row in rows:
                sha256(b"\x00" + canonicals[row[0]]).digest()
            count += len(rows)
            after = rows[-1][0]
        conn.rollback()
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    if count != len(canonicals):
        raise SystemExit(f"read {count} rows, expected {len(canonicals)}")
    return seconds


def prototype_verify(inst: Instance, keys: LogKeys) -> tuple[float, int, bytes]:
    """What ``audit.log.verify`` checks for a log of format-2 entries (every link, leaf hash,
    customer commitment, member root, tree node and the head), with: the driver's cursor
    instead of a select through the session, only the columns format 2 needs, the canonical
    form built inline (one ``struct`` call for ``seq``, time and the first length, no helper
    calls a field), the commitment's HMAC and hash inlined, and the tree kept as a stack
    (a leaf merges with the frontier's tail as long as the size's low bits are set) instead
    of ``merkle.append_leaf``'s per-leaf rebuild of the frontier's levels."""
    sha256 = hashlib.sha256
    hmac_digest = hmac.digest
    key = keys.commitment
    tag = entry_v2.CUSTOMER_TAG
    magic = entry_v2.MAGIC
    qqi, length, hash_len, absent = _QQI, _LEN, _HASH, _ABSENT
    postgres = inst.engine.dialect.name == "postgresql"
    epoch = _AWARE_EPOCH if postgres else _NAIVE_EPOCH
    parse = datetime.fromisoformat
    mark = _placeholder(inst)
    sql = f"SELECT {_V2_COLUMNS} FROM access_log WHERE seq > {mark} ORDER BY seq LIMIT {BATCH}"
    node_sql = (
        f"SELECT idx, hash FROM log_nodes WHERE level = {mark} AND idx BETWEEN {mark} AND {mark}"
    )
    conn = inst.engine.raw_connection()
    started = time.perf_counter()
    size, prev = 0, log.GENESIS
    frontier: list[bytes] = []
    pending: list[tuple[int, int, bytes]] = []
    try:
        cursor = conn.cursor()
        if not postgres:
            cursor.execute("BEGIN")  # one snapshot for the whole pass
        after = -1
        while True:
            cursor.execute(sql, (after,))
            rows = cursor.fetchall()
            if not rows:
                break
            completed: list[tuple[int, int, bytes]] = []
            for (
                seq, created, actor_type, actor_id, customer_id, action, categories, purpose,
                outcome, request, members, prev_hash, leaf, version, commitment, detail_hash,
                member_root, reason,
            ) in rows:  # fmt: skip
                if seq != size or prev_hash != prev or version != entry_v2.VERSION:
                    raise SystemExit(f"entry {seq}: missing, unlinked or of another format")
                moment = created if postgres else parse(created)
                at = actor_type.encode()
                ai = (
                    b""
                    if actor_type == "customer" and actor_id == customer_id
                    else actor_id.encode()
                )
                ac, ca, pu = action.encode(), categories.encode(), purpose.encode()
                ou, re, rq = outcome.encode(), (reason or "").encode(), request.encode()
                canonical = b"".join(
                    (
                        magic, qqi(seq, (moment - epoch) // _US, len(at)), at, length(len(ai)),
                        ai, absent if commitment is None else hash_len + commitment,
                        length(len(ac)), ac, length(len(ca)), ca, length(len(pu)), pu,
                        length(len(ou)), ou, length(len(re)), re, length(len(rq)), rq,
                        absent if detail_hash is None else hash_len + detail_hash,
                        absent if member_root is None else hash_len + member_root,
                        hash_len, prev_hash,
                    )
                )  # fmt: skip
                if sha256(b"\x00" + canonical).digest() != leaf:
                    raise SystemExit(f"entry {seq} was altered")
                if customer_id is not None:
                    cid = customer_id.encode()
                    opening = hmac_digest(key, b"customer" + seq.to_bytes(8, "big") + cid, "sha256")
                    if sha256(tag + opening + cid).digest() != commitment:
                        raise SystemExit(f"entry {seq} was moved to another customer")
                elif commitment is not None:
                    raise SystemExit(f"entry {seq} was moved to another customer")
                if (members is not None or member_root is not None) and member_tree(
                    keys.member_key(seq), members
                ).root != member_root:
                    raise SystemExit(f"entry {seq}'s members were altered")
                node, level, index = leaf, 0, size
                while index & 1:
                    node = sha256(b"\x01" + frontier.pop() + node).digest()
                    level, index = level + 1, index >> 1
                    completed.append((level, index, node))
                frontier.append(node)
                prev = leaf
                size += 1
            _prototype_nodes(cursor, node_sql, pending)
            pending = completed
            after = size - 1
        _prototype_nodes(cursor, node_sql, pending)
        cursor.execute("SELECT size, last_hash, frontier FROM log_head")
        head_size, last_hash, edge = cursor.fetchone() or (0, b"", b"")
        if (head_size, bytes(last_hash), bytes(edge or b"")) != (size, prev, b"".join(frontier)):
            raise SystemExit("the head disagrees with the entries")
        conn.rollback()
    finally:
        conn.close()
    return time.perf_counter() - started, size, merkle.frontier_root(frontier)


def _prototype_nodes(cursor: Any, sql: str, completed: list[tuple[int, int, bytes]]) -> None:
    by_level: dict[int, list[tuple[int, bytes]]] = {}
    for level, index, node in completed:
        by_level.setdefault(level, []).append((index, node))
    for level, nodes in by_level.items():
        cursor.execute(sql, (level, nodes[0][0], nodes[-1][0]))
        stored = {int(idx): bytes(value) for idx, value in cursor.fetchall()}
        for index, node in nodes:
            if stored.get(index) != node:
                raise SystemExit(f"the stored node ({level}, {index}) disagrees")


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return min(samples)


def _inline_canonical(row: Any) -> bytes:
    """The prototype's canonical form of a row (Core types: an aware ``created_at``)."""
    (seq, created, actor_type, actor_id, customer_id, action, categories, purpose, outcome, _,
     request, _, _, prev_hash, _, _, commitment, detail_hash, member_root,
     reason) = row  # fmt: skip
    at = actor_type.encode()
    ai = b"" if actor_type == "customer" and actor_id == customer_id else actor_id.encode()
    ac, ca, pu = action.encode(), categories.encode(), purpose.encode()
    ou, re, rq = outcome.encode(), (reason or "").encode(), request.encode()
    return b"".join(
        (
            entry_v2.MAGIC, _QQI(seq, (created - _AWARE_EPOCH) // _US, len(at)), at,
            _LEN(len(ai)), ai, _ABSENT if commitment is None else _HASH + commitment,
            _LEN(len(ac)), ac, _LEN(len(ca)), ca, _LEN(len(pu)), pu, _LEN(len(ou)), ou,
            _LEN(len(re)), re, _LEN(len(rq)), rq,
            _ABSENT if detail_hash is None else _HASH + detail_hash,
            _ABSENT if member_root is None else _HASH + member_root, _HASH, prev_hash,
        )
    )  # fmt: skip


def breakdown(inst: Instance, keys: LogKeys, limit: int) -> list[tuple[str, float, float]]:
    """Per entry, each step of verify as ``audit.log`` does it and as the prototype does it,
    over the first ``limit`` entries (the best of three runs of each)."""
    below = AccessLogEntry.seq < limit
    query = select(*COLUMNS).where(below).order_by(AccessLogEntry.seq)
    with inst.engine.connect() as conn:
        rows = conn.execute(query).all()
    count = len(rows)
    mark = _placeholder(inst)
    steps: list[tuple[str, float, float]] = []

    def session_read() -> None:
        with inst.sessions() as session:
            after = -1
            while batch := session.execute(
                select(*COLUMNS).where(below, AccessLogEntry.seq > after)
                .order_by(AccessLogEntry.seq).limit(BATCH)
            ).all():  # fmt: skip
                after = batch[-1].seq

    def dbapi_read(columns: str) -> Callable[[], None]:
        sql = (
            f"SELECT {columns} FROM access_log WHERE seq > {mark} AND seq < {limit} "
            f"ORDER BY seq LIMIT {BATCH}"
        )

        def read() -> None:
            conn = inst.engine.raw_connection()
            try:
                cursor = conn.cursor()
                after = -1
                while batch := cursor.execute(sql, (after,)).fetchall():
                    after = batch[-1][0]
                conn.rollback()
            finally:
                conn.close()

        return read

    steps.append(
        ("read: session.execute vs cursor, v2 columns", _best(session_read),
         _best(dbapi_read(_V2_COLUMNS)))
    )  # fmt: skip
    steps.append(
        ("read: cursor, every column vs v2 columns", _best(dbapi_read(_ALL_COLUMNS)),
         _best(dbapi_read(_V2_COLUMNS)))
    )  # fmt: skip
    canonical_v2, inline = log.canonical_v2, _inline_canonical
    steps.append(
        ("canonical form", _best(lambda: [canonical_v2(r) for r in rows]),
         _best(lambda: [inline(r) for r in rows]))
    )  # fmt: skip
    for a, b in zip(rows[:1000], rows[:1000], strict=True):
        assert canonical_v2(a) == inline(b)
    commitment, compare = keys.customer_commitment, hmac.compare_digest
    pairs = [(r.seq, r.customer_id, r.customer_commitment) for r in rows if r.customer_id]

    def product_commitments() -> None:
        for seq, customer_id, stored in pairs:
            compare(commitment(seq, customer_id), stored)

    def inline_commitments() -> None:
        sha256, digest, key, tag = (
            hashlib.sha256,
            hmac.digest,
            keys.commitment,
            entry_v2.CUSTOMER_TAG,
        )
        for seq, customer_id, stored in pairs:
            cid = customer_id.encode()
            opening = digest(key, b"customer" + seq.to_bytes(8, "big") + cid, "sha256")
            _ = sha256(tag + opening + cid).digest() == stored

    steps.append(
        ("customer commitment", _best(product_commitments) * count / max(1, len(pairs)),
         _best(inline_commitments) * count / max(1, len(pairs)))
    )  # fmt: skip
    leaves = [r.leaf_hash for r in rows]

    def append_leaf() -> None:
        frontier: list[bytes] = []
        completed: list[tuple[int, int, bytes]] = []
        for size, leaf in enumerate(leaves):
            frontier, done = merkle.append_leaf(frontier, size, leaf)
            completed.extend(done)

    def stack() -> None:
        sha256 = hashlib.sha256
        frontier: list[bytes] = []
        completed: list[tuple[int, int, bytes]] = []
        for size, leaf in enumerate(leaves):
            node, level, index = leaf, 0, size
            while index & 1:
                node = sha256(b"\x01" + frontier.pop() + node).digest()
                level, index = level + 1, index >> 1
                completed.append((level, index, node))
            frontier.append(node)

    steps.append(("Merkle tree", _best(append_leaf), _best(stack)))
    return [(name, a / count, b / count) for name, a, b in steps]


def prototype_appends(
    inst: Instance, batch: list[LogEvent], per_commit: int, *, together: bool = False
) -> float:
    """``append``'s work for ``batch`` with Core statements instead of the ORM: the head read
    (``FOR UPDATE`` on PostgreSQL) and updated by one statement each, the entry and its nodes
    inserted by one statement each; the entries are the ones ``append`` would write (same
    canonical form, commitments and tree), ``per_commit`` to a transaction. ``together``: a
    transaction's entries appended at once (the head read and written once, the entries and
    nodes by one ``executemany`` each)."""
    keys = instance_keys(inst)
    head_query = select(LogHead.size, LogHead.last_hash, LogHead.frontier).where(
        LogHead.id == log.HEAD_ID
    )
    if inst.engine.dialect.name == "postgresql":
        head_query = head_query.with_for_update()
    entry_insert, node_insert = insert(AccessLogEntry), insert(LogNode)
    head_update = update(LogHead).where(LogHead.id == log.HEAD_ID)
    started = time.perf_counter()
    with inst.engine.connect() as conn:
        for start in range(0, len(batch), per_commit):
            rows: list[dict[str, Any]] = []
            nodes: list[dict[str, Any]] = []
            for event in batch[start : start + per_commit]:
                if not rows or not together:
                    seq, last, edge = conn.execute(head_query).one()
                    edge = edge or b""
                    frontier = [edge[i : i + 32] for i in range(0, len(edge), 32)]
                reason_json = reason_of(event.reason).to_json()
                customer_id = event.customer_id
                commitment = (
                    None if customer_id is None else keys.customer_commitment(seq, customer_id)
                )
                sealed = event.detail if isinstance(event.detail, Sealed) else None
                values = {
                    "seq": seq,
                    "created_at": utcnow(),
                    "actor_type": str(event.actor.type),
                    "actor_id": event.actor.id,
                    "customer_id": customer_id,
                    "action": event.action,
                    "categories": ",".join(sorted(event.categories)),
                    "purpose": event.purpose,
                    "outcome": "allowed" if event.allowed else "denied",
                    "reason": render(reason_json)[: log.REASON_LENGTH],
                    "reason_data": reason_json,
                    "request_id": event.request_id,
                    "detail": None if sealed is None else sealed.blob,
                    "detail_hash": None if sealed is None else sealed.digest,
                    "members": None,
                    "prev_hash": last,
                    "version": entry_v2.VERSION,
                    "customer_commitment": commitment,
                    "member_root": None,
                }
                leaf = log.leaf_hash(log.canonical_v2(_Values(values)))
                frontier, completed = merkle.append_leaf(frontier, seq, leaf)
                rows.append({**values, "leaf_hash": leaf})
                nodes.extend({"level": lv, "idx": ix, "hash": h} for lv, ix, h in completed)
                seq, last = seq + 1, leaf
                if not together:
                    _write_appended(conn, entry_insert, node_insert, head_update, rows, nodes,
                                    seq, last, frontier)  # fmt: skip
                    rows, nodes = [], []
            if rows:
                _write_appended(conn, entry_insert, node_insert, head_update, rows, nodes,
                                seq, last, frontier)  # fmt: skip
            conn.commit()
    return time.perf_counter() - started


def _write_appended(
    conn: Any, entry_insert: Any, node_insert: Any, head_update: Any,
    rows: list[dict[str, Any]], nodes: list[dict[str, Any]], size: int, last: bytes,
    frontier: list[bytes],
) -> None:  # fmt: skip
    conn.execute(entry_insert, rows)
    if nodes:
        conn.execute(node_insert, nodes)
    conn.execute(head_update, {"size": size, "last_hash": last, "frontier": b"".join(frontier)})


class _Values:
    """A row's values by attribute, as ``canonical_v2`` reads them."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


class _Recorder:
    """A subtree source that only notes which perfect subtrees a proof needs."""

    def __init__(self) -> None:
        self.wanted: list[tuple[int, int]] = []

    def perfect_hash(self, level: int, index: int) -> bytes:
        self.wanted.append((level, index))
        return bytes(merkle.HASH_SIZE)

    def range_hash(self, start: int, end: int) -> bytes:
        return merkle.range_hash_from(self, start, end)


class _Known:
    def __init__(self, hashes: dict[tuple[int, int], bytes]) -> None:
        self.hashes = hashes

    def perfect_hash(self, level: int, index: int) -> bytes:
        found = self.hashes.get((level, index))
        if found is None:
            raise merkle.ProofError(f"the log holds no subtree ({level}, {index})")
        return found

    def range_hash(self, start: int, end: int) -> bytes:
        return merkle.range_hash_from(self, start, end)


def batched_proof(
    conn: Any, mark: str, build: Callable[[merkle.Subtrees], list[bytes]]
) -> list[bytes]:
    """A proof from the stored tree in two queries: the perfect subtrees it needs are known
    from the sizes alone, so they are read at once (leaves from ``access_log``, the rest from
    ``log_nodes``), then the proof is built from them."""
    recorder = _Recorder()
    build(recorder)
    leaves = [index for level, index in recorder.wanted if level == 0]
    nodes = [(level, index) for level, index in recorder.wanted if level > 0]
    hashes: dict[tuple[int, int], bytes] = {}
    cursor = conn.cursor()
    if leaves:
        marks = ", ".join([mark] * len(leaves))
        cursor.execute(f"SELECT seq, leaf_hash FROM access_log WHERE seq IN ({marks})", leaves)
        hashes.update(((0, int(seq)), bytes(value)) for seq, value in cursor.fetchall())
    if nodes:
        where = " OR ".join([f"(level = {mark} AND idx = {mark})"] * len(nodes))
        cursor.execute(
            f"SELECT level, idx, hash FROM log_nodes WHERE {where}",
            [value for pair in nodes for value in pair],
        )
        hashes.update(((int(lv), int(ix)), bytes(value)) for lv, ix, value in cursor.fetchall())
    return build(_Known(hashes))


def run_batched_proofs(
    inst: Instance, seeded: Seeded, count: int, rng: random.Random
) -> ProofTimes:
    size = len(seeded.levels[0])
    root = seeded.root(size)
    times = ProofTimes()
    clock = time.perf_counter
    mark = _placeholder(inst)
    conn = inst.engine.raw_connection()
    try:
        for _ in range(count):
            index = rng.randrange(size)
            started = clock()
            proof = batched_proof(
                conn, mark, partial(merkle.inclusion_proof, index=index, size=size)
            )
            times.inclusion_make.append(clock() - started)
            merkle.verify_inclusion(index, size, seeded.levels[0][index], proof, root)
        for _ in range(count):
            first = rng.randrange(1, size) if size > 1 else 1
            started = clock()
            proof = batched_proof(
                conn, mark, partial(merkle.consistency_proof, first=first, second=size)
            )
            times.consistency_make.append(clock() - started)
            merkle.verify_consistency(first, size, seeded.root(first), root, proof)
        conn.rollback()
    finally:
        conn.close()
    return times


# -- the run ----------------------------------------------------------------------------------


def ms(pair: tuple[float, float]) -> str:
    return f"{pair[0]:7.3f} ms / {pair[1]:7.3f} ms"


def row(label: str, value: str, indent: int = 2) -> None:
    print(f"{' ' * indent}{label + ':':<{46 - indent}}{value}", flush=True)


def per_entry(seconds: float, entries: int) -> str:
    return f"{seconds * 1e6 / entries:8.2f} us/entry ({seconds:6.1f} s)"


def bench(name: str, database_url: str | None, args: argparse.Namespace) -> None:
    rng = random.Random(2026)
    entries = args.entries
    with tempfile.TemporaryDirectory() as folder:
        inst = fresh_instance(folder, database_url)
        try:
            seeded = seed(inst, entries, rng)
            size = sum(map(len, seeded.canonicals)) / entries
            print(f"{name}: {entries:,} entries seeded in {seeded.seconds:.0f} s ({size:.0f} "
                  "canonical bytes an entry)", flush=True)  # fmt: skip
            root = seeded.root(entries)
            with inst.sessions() as session:
                if log.current_root(session) != (entries, root):
                    raise SystemExit("the head's tree edge disagrees with the seeded tree")
            raw_read_and_hash(inst, seeded.canonicals)  # a warm cache for every reader
            hashed = raw_hash(seeded.canonicals)
            floor = read_and_hash(inst, seeded.canonicals)
            raw_floor = raw_read_and_hash(inst, seeded.canonicals)
            verified = run_verify(inst, entries, root)
            prototype, checked, proto_root = prototype_verify(inst, instance_keys(inst))
            if (checked, proto_root) != (entries, root):
                raise SystemExit("the prototype verifier disagrees with the seeded log")
            row("raw sha256 of canonical (baseline)", per_entry(hashed, entries))
            row("read rows (session) + sha256", per_entry(floor, entries))
            row("read rows (DBAPI cursor) + sha256", per_entry(raw_floor, entries))
            row("audit.log.verify (keys present)", per_entry(verified, entries))
            row("prototype verifier (see the source)", per_entry(prototype, entries))
            row("ratio verify/raw hash", f"{verified / hashed:8.1f}x  (target <= 2x)")
            row("ratio verify/read (session) + hash", f"{verified / floor:8.1f}x")
            row("ratio verify/read (DBAPI) + hash", f"{verified / raw_floor:8.1f}x")
            row("ratio prototype/raw hash", f"{prototype / hashed:8.1f}x")
            row("ratio prototype/read (DBAPI) + hash", f"{prototype / raw_floor:8.1f}x")
            row("ratio read (DBAPI) + hash/raw hash", f"{raw_floor / hashed:8.1f}x")
            if args.profile:
                print(profile_verify(inst), flush=True)
            if args.breakdown:
                limit = min(entries, args.breakdown)
                print(f"  verify's steps, first {limit:,} entries (us/entry: as is -> prototype):")
                for step, now, then in breakdown(inst, instance_keys(inst), limit):
                    row(
                        step,
                        f"{now * 1e6:7.2f} -> {then * 1e6:6.2f}  ({(then - now) * 1e6:+.2f})",
                        4,
                    )
            times = run_proofs(inst, seeded, args.proofs, rng)
            batched = run_batched_proofs(inst, seeded, args.proofs, rng)
            print(f"  proofs at n = {entries:,}, {args.proofs} each (median / p99; target < 1 ms):")
            row("inclusion proof from StoredTree", ms(percentiles(times.inclusion_make)), 4)
            row(
                "inclusion proof, prototype (2 queries)", ms(percentiles(batched.inclusion_make)), 4
            )
            row("inclusion proof verification", ms(percentiles(times.inclusion_check)), 4)
            row("consistency proof from StoredTree", ms(percentiles(times.consistency_make)), 4)
            row("consistency proof, prototype (2 queries)",
                ms(percentiles(batched.consistency_make)), 4)  # fmt: skip
            row("consistency proof verification", ms(percentiles(times.consistency_check)), 4)
            mix = Mix(random.Random(7), entries)
            for per_commit, count in ((1, args.appends), (100, args.appends * 10)):
                batch = events(mix, count)
                appended, first, end = timed_appends(inst, batch, per_commit)
                inserted = timed_inserts(inst, first, end, per_commit)
                print(f"  {count:,} entries, {per_commit} a transaction:")
                row(
                    "plain Core insert + commit (baseline)",
                    f"{count / inserted:9,.0f} entries/s",
                    4,
                )
                row("append with the tree + commit", f"{count / appended:9,.0f} entries/s", 4)
                row("ratio append/insert throughput", f"{inserted / appended:9.2f}x", 4)
                core = prototype_appends(inst, events(mix, count), per_commit)
                row("prototype append (Core statements)", f"{count / core:9,.0f} entries/s", 4)
                row("ratio prototype/insert throughput", f"{inserted / core:9.2f}x", 4)
                if per_commit > 1:
                    together = prototype_appends(
                        inst, events(mix, count), per_commit, together=True
                    )
                    row("prototype, a transaction's entries at once",
                        f"{count / together:9,.0f} entries/s", 4)  # fmt: skip
                    row("ratio prototype at once/insert", f"{inserted / together:9.2f}x", 4)
            if args.quick:
                with inst.sessions() as session:
                    after = log.verify(session)
                if not after.ok:
                    raise SystemExit(f"the log does not verify after the appends: {after}")
        finally:
            inst.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--proofs", type=int, default=None, help="proofs of each kind (1,000)")
    parser.add_argument("--appends", type=int, default=None, help="entries committed one by one")
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL (its tables are dropped)")
    parser.add_argument("--no-pg", action="store_true", help="ignore --pg")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--profile", action="store_true", help="cProfile verify too")
    parser.add_argument(
        "--breakdown", type=int, default=0, help="time verify's steps over this many entries"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    quick = args.quick
    args.entries = args.entries or (2000 if quick else 1_000_000)
    args.proofs = args.proofs or (50 if quick else 1000)
    args.appends = args.appends or (20 if quick else 1000)
    backends: list[tuple[str, str | None]] = [] if args.no_sqlite else [("SQLite", None)]
    if args.pg and not args.no_pg:
        backends.append(("PostgreSQL", args.pg))
    for name, url in backends:
        bench(name, url, args)


if __name__ == "__main__":
    main()
