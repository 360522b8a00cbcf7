"""Demo data: a few customers who can log in, and a bulk path for synthetic populations.

Synthetic customers are deterministic for a seed (same names, ages, interests and ids for
the same index), have no password, and are numbered: ``demo --customers N`` tops the
population up to N, so it is idempotent and resumable. The bulk path encrypts exactly as
the single path does (own DEK, AES-GCM fields, blind-indexed email) but inserts in chunks
with one access-log entry per chunk.
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
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, LogEvent, append
from infomediary.broker.members import bump_version, member_texts, member_tokens
from infomediary.crypto.keyring import FileKeyring
from infomediary.crypto.vault import CustomerKey, Vault
from infomediary.errors import EmailTaken
from infomediary.instance import Instance
from infomediary.leases import active_kek
from infomediary.models import Customer, DataKey, MatchEntry, Profile, utcnow
from infomediary.services import Context, customers, profiles
from infomediary.services.policy_store import DEFAULT_TEMPLATE
from infomediary.services.profile_fields import CONTACT_CHANNELS, LANGUAGES, OFFER_FREQUENCIES
from infomediary.services.uow import unit_of_work
from policies.taxonomy import INTEREST_TAGS
from policies.templates import load_template

GIVEN = (
    "Olivia",
    "Noah",
    "Charlotte",
    "Oliver",
    "Amelia",
    "William",
    "Isla",
    "Jack",
    "Mia",
    "Leo",
    "Ava",
    "Lucas",
    "Grace",
    "Henry",
    "Chloe",
    "Thomas",
    "Zoe",
    "James",
    "Ruby",
    "Ethan",
    "Priya",
    "Wei",
    "Aisha",
    "Nguyen",
    "Giulia",
    "Dimitri",
    "Fatima",
    "Hiro",
    "Maya",
    "Sam",
)
FAMILY = (
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Nguyen",
    "Johnson",
    "Martin",
    "White",
    "Anderson",
    "Walker",
    "Thompson",
    "Chen",
    "Singh",
    "Kelly",
    "Rossi",
    "Papadopoulos",
    "Li",
    "Ahmed",
    "Campbell",
    "Lee",
    "Harris",
    "Ryan",
    "Patel",
    "Murphy",
    "Clarke",
    "King",
)
STREETS = (
    "George St",
    "King St",
    "Victoria Rd",
    "Church St",
    "High St",
    "Park Ave",
    "Station St",
    "Bridge Rd",
    "Beach Rd",
    "Railway Pde",
    "Queen St",
    "Elizabeth St",
)
# (locality, postcode, relative population weight)
PLACES = (
    ("Sydney", "2000", 9),
    ("Parramatta", "2150", 5),
    ("Newcastle", "2300", 3),
    ("Wollongong", "2500", 2),
    ("Canberra", "2600", 2),
    ("Melbourne", "3000", 8),
    ("Geelong", "3220", 2),
    ("Ballarat", "3350", 1),
    ("Brisbane", "4000", 6),
    ("Gold Coast", "4217", 3),
    ("Cairns", "4870", 1),
    ("Adelaide", "5000", 4),
    ("Perth", "6000", 5),
    ("Fremantle", "6160", 1),
    ("Hobart", "7000", 1),
    ("Launceston", "7250", 1),
    ("Darwin", "0800", 1),
    ("Alice Springs", "0870", 1),
)
_TAGS = tuple(INTEREST_TAGS)
# special-category interests are rarer than everyday ones
_TAG_WEIGHTS = tuple(1 if INTEREST_TAGS[t].category != "interests" else 8 for t in _TAGS)
_PLACE_WEIGHTS = tuple(p[2] for p in PLACES)

# Insert order: customers first (foreign keys), then keys, match entries, profiles.
_TABLES = tuple(cast(Table, m.__table__) for m in (Customer, DataKey, MatchEntry, Profile))

DEMO_LOGINS: tuple[tuple[str, str, str], ...] = (
    ("alice@example.com", "alice-demo-passphrase", "Alice Nguyen"),
    ("bob@example.com", "bob-demo-passphrase", "Bob Smith"),
)
SYNTHETIC_DOMAIN = "synthetic.invalid"


def _phone(rng: random.Random) -> str:
    middle, last = rng.randint(0, 999), rng.randint(0, 999)
    return f"+61 4{rng.randint(0, 99):02d} {middle:03d} {last:03d}"


def synthetic_profile(rng: random.Random, current_year: int) -> dict[str, Any]:
    """One varied, realistic Australian profile drawn from ``rng``."""
    locality, postcode, _ = rng.choices(PLACES, _PLACE_WEIGHTS)[0]
    interests = sorted(set(rng.choices(_TAGS, _TAG_WEIGHTS, k=rng.randint(1, 6))))
    return {
        "name": f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}",
        "phone": _phone(rng),
        "street_address": f"{rng.randint(1, 250)} {rng.choice(STREETS)}",
        "locality": locality,
        "postcode": postcode,
        "birth_year": current_year - min(95, max(18, int(rng.gauss(42, 16)))),
        "household_size": rng.choices((1, 2, 3, 4, 5, 6), (25, 33, 16, 15, 7, 4))[0],
        "interests": interests,
        "preferences": {
            "contact_channel": rng.choice(CONTACT_CHANNELS),
            "offer_frequency": rng.choice(OFFER_FREQUENCIES),
            "language": rng.choices(tuple(LANGUAGES), (70, 6, 4, 4, 4, 4, 4, 4))[0],
        },
    }


def ensure_demo_logins(session: Session, inst: Instance) -> list[tuple[str, str]]:
    """Create the demo customers that can log in (idempotent); returns (email, password)."""
    rng = random.Random(7)
    ctx = Context(Actor.system("demo"))
    year = utcnow().year
    for email, password, name in DEMO_LOGINS:
        try:
            customer_id = customers.register(
                session, inst, email=email, password=password, name=name, ctx=ctx
            )
        except EmailTaken:
            continue
        profile = synthetic_profile(rng, year)
        profile["name"] = name
        profiles.update_profile(session, inst, customer_id, profile, ctx)
    return [(email, password) for email, password, _ in DEMO_LOGINS]


DEMO_SUPPLIER = "Demo Books"


def ensure_demo_supplier(session: Session) -> dict[str, str] | None:
    """A funded, operator-verified demo supplier (idempotent); returns its credentials only
    when just created."""
    from infomediary.models import Supplier
    from infomediary.services.rewards import fund_supplier
    from infomediary.services.suppliers import create_supplier, verify_supplier

    if session.execute(select(Supplier.id).where(Supplier.name == DEMO_SUPPLIER)).first():
        session.rollback()
        return None
    created = create_supplier(
        session,
        name=DEMO_SUPPLIER,
        sector="retail",
        redirect_uris=["http://127.0.0.1:8000/callback"],
        scopes=["profile.identity:read", "profile.interests:read", "audience:count", "offers:send"],
        purposes=["marketing", "service", "analytics"],
        privacy_policy_url="https://books.example/privacy",
        ctx=Context(Actor.system("demo")),
    )
    fund_supplier(session, created.supplier, 100_000)
    session.commit()
    verify_supplier(session, created.supplier.id, Context(Actor.system("demo")))
    return {
        "name": DEMO_SUPPLIER,
        "client_id": created.supplier.client_id,
        "client_secret": created.client_secret,
    }


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
    vault: Vault, kek_version: int, kek: bytes, seed: int, start: int, stop: int, year: int
) -> list[tuple[dict[str, Any], ...]]:
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
                    "wrapped_key": aes_key_wrap(kek, dek),
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
    version = ring.active_kek_version
    return _rows(Vault(ring), version, ring.kek(version), seed, start, stop, year)


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
            reason=f"seeded synthetic customers {first}..{first + len(rows) - 1}",
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
    if len(starts) <= 1 or workers <= 1:
        version = inst.keyring.active_kek_version
        kek = inst.keyring.kek(version)
        for first in starts:
            stop = min(total, first + chunk)
            rows = _rows(inst.vault, version, kek, seed, first, stop, year)
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
