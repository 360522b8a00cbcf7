"""The bulk path for synthetic populations: chunks encrypted in worker processes, inserted
here with one access-log entry per chunk.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, LogEvent, append
from infomediary.audit.reasons import Reason
from infomediary.broker.members import bump_version, member_texts, member_tokens
from infomediary.crypto.keyring import FileKeyring
from infomediary.crypto.vault import CustomerKey, Vault
from infomediary.demo.synthetic import synthetic_profile
from infomediary.instance import Instance
from infomediary.leases import active_kek
from infomediary.models import Customer, DataKey, MatchEntry, Profile, utcnow
from infomediary.services.policy_store import DEFAULT_TEMPLATE
from infomediary.services.uow import unit_of_work
from policies.templates import load_template

# Insert order: customers first (foreign keys), then keys, match entries, profiles.
_TABLES = tuple(cast(Table, m.__table__) for m in (Customer, DataKey, MatchEntry, Profile))

SYNTHETIC_DOMAIN = "synthetic.invalid"


@dataclass(frozen=True)
class SeedReport:
    existing: int
    created: int


def synthetic_count(session: Session) -> int:
    """How many synthetic customers exist (a read that ends its transaction, so the bulk
    seeding that follows starts with no lock held)."""
    with unit_of_work(session):
        return int(
            session.execute(select(func.count()).where(Customer.synthetic.is_(True))).scalar_one()
        )


def _rows(
    vault: Vault, kek_version: int, seed: int, start: int, stop: int, year: int
) -> list[tuple[dict[str, Any], ...]]:
    """The rows of customers ``start`` to ``stop``, each data key wrapped by the vault's key
    provider under ``kek_version`` (inside the token, when the KEKs are in an HSM)."""
    rows: list[tuple[dict[str, Any], ...]] = []
    policy = load_template(DEFAULT_TEMPLATE)
    index_key = vault.keys.secret("blind_index")
    for number in range(start, stop):
        rng = random.Random(seed * 1_000_003 + number)
        customer_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        dek = secrets.token_bytes(32)
        key = CustomerKey(customer_id, 1, AESGCM(dek))
        email = f"customer{number:07d}@{SYNTHETIC_DOMAIN}"
        profile = synthetic_profile(rng, year)
        now = utcnow()
        texts = member_texts(profile, policy, now)
        rows.append(
            (
                {
                    "id": customer_id,
                    "email_index": vault.email_index(email),
                    "email": vault.seal(key, "customers", customer_id, "email", email),
                    "password_hash": None,
                    "synthetic": True,
                    "created_at": now,
                },
                {
                    "customer_id": customer_id,
                    "dek_version": 1,
                    "kek_version": kek_version,
                    "wrapped_key": vault.keys.wrap(kek_version, dek),
                    "created_at": now,
                },
                {"customer_id": customer_id, "tokens": member_tokens(index_key, texts)},
                {
                    "customer_id": customer_id,
                    "updated_at": now,
                    **{
                        f: vault.seal(key, "profiles", customer_id, f, v)
                        for f, v in profile.items()
                    },
                },
            )
        )
    return rows


def _rows_in_worker(
    keyring_path: str, seed: int, start: int, stop: int, year: int
) -> list[tuple[dict[str, Any], ...]]:
    """Process-pool entry point: load the keyring here, never pickle keys across processes."""
    ring = FileKeyring.load(Path(keyring_path))
    return _rows(Vault(ring), ring.active_kek_version, seed, start, stop, year)


def _insert_chunk(
    session: Session, vault: Vault, rows: list[tuple[dict[str, Any], ...]], first: int
) -> None:
    # Core executemany on the session's connection: no ORM unit of work per row, so the
    # session's wrap guard does not see these data keys; the same rule is applied here. A
    # rotation since the chunk was encrypted leaves its keys under a retired KEK: re-wrap them
    # under the KEK the database names active, read in this transaction.
    connection = session.connection()
    active = active_kek(session, lock="share")
    for _customer, data_key, *_rest in rows:
        if active is not None and data_key["kek_version"] != active:
            data_key["wrapped_key"] = vault.rewrap(
                data_key["wrapped_key"], data_key["kek_version"], active
            )
            data_key["kek_version"] = active
    version = bump_version(session)
    for row in rows:
        row[2]["version"] = version
    for position, table in enumerate(_TABLES):
        connection.execute(insert(table), [row[position] for row in rows])
    append(
        session,
        LogEvent(
            actor=Actor.system("demo"),
            action="create",
            customer_id=None,
            categories=frozenset(
                {"account", "identity", "demographics", "interests", "preferences"}
            ),
            reason=Reason("demo.seeded", {"first": first, "last": first + len(rows) - 1}),
        ),
    )
    session.commit()


def seed_synthetic(
    session: Session,
    inst: Instance,
    total: int,
    *,
    seed: int = 42,
    chunk: int = 5000,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Top the synthetic population up to ``total`` customers, ``chunk`` per transaction.

    Encryption (the bulk of the cost) runs in a process pool when there is more than one
    chunk to do; this process inserts chunk k while the pool encrypts chunks k+1, k+2.
    """
    existing = synthetic_count(session)
    session.rollback()
    year = utcnow().year
    starts = list(range(existing, total, chunk))
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    # The pool's processes load the keyring file themselves; KEKs in a token stay in this
    # process, whose logged-in session wraps every chunk's data keys.
    if len(starts) <= 1 or workers <= 1 or not isinstance(inst.keyring, FileKeyring):
        version = inst.keyring.active_kek_version
        for first in starts:
            stop = min(total, first + chunk)
            rows = _rows(inst.vault, version, seed, first, stop, year)
            _insert_chunk(session, inst.vault, rows, first)
            if progress:
                progress(stop - first)
        return SeedReport(existing=existing, created=max(0, total - existing))
    keyring_path = str(inst.keyring.path)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[tuple[int, Future[list[tuple[dict[str, Any], ...]]]]] = deque()
        queue = iter(starts)
        for first in queue:
            pending.append(
                (
                    first,
                    pool.submit(
                        _rows_in_worker, keyring_path, seed, first, min(total, first + chunk), year
                    ),
                )
            )
            if len(pending) > workers:
                break
        while pending:
            first, future = pending.popleft()
            rows = future.result()
            next_first = next(queue, None)
            if next_first is not None:
                pending.append(
                    (
                        next_first,
                        pool.submit(
                            _rows_in_worker,
                            keyring_path,
                            seed,
                            next_first,
                            min(total, next_first + chunk),
                            year,
                        ),
                    )
                )
            _insert_chunk(session, inst.vault, rows, first)
            if progress:
                progress(len(rows))
    return SeedReport(existing=existing, created=max(0, total - existing))
