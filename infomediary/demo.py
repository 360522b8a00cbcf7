"""Demo data: a few customers who can log in, and a bulk path for synthetic populations.

Synthetic customers are deterministic for a seed (same names, ages, interests and ids for
the same index), have no password, and are numbered: ``demo --customers N`` tops the
population up to N, so it is idempotent and resumable. The bulk path encrypts exactly as
the single path does (own DEK, AES-GCM fields, blind-indexed email) but inserts in chunks
with one access-log entry per chunk.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, LogEvent, append
from infomediary.crypto.vault import CustomerKey
from infomediary.instance import Instance
from infomediary.models import Customer, DataKey, Profile, utcnow
from infomediary.services import Context, customers
from infomediary.services.errors import EmailTaken
from infomediary.services.profile import CONTACT_CHANNELS, LANGUAGES, OFFER_FREQUENCIES
from policies.taxonomy import INTEREST_TAGS

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
        customers.update_profile(session, inst, customer_id, profile, ctx)
    return [(email, password) for email, password, _ in DEMO_LOGINS]


@dataclass(frozen=True)
class SeedReport:
    existing: int
    created: int


def synthetic_count(session: Session) -> int:
    return int(
        session.execute(select(func.count()).where(Customer.synthetic.is_(True))).scalar_one()
    )


def _rows(
    inst: Instance, seed: int, start: int, stop: int, year: int
) -> Iterator[tuple[dict[str, Any], ...]]:
    vault = inst.vault
    kek_version = inst.keyring.active_kek_version
    kek = inst.keyring.kek(kek_version)
    for number in range(start, stop):
        rng = random.Random(seed * 1_000_003 + number)
        customer_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        dek = secrets.token_bytes(32)
        key = CustomerKey(customer_id, 1, AESGCM(dek))
        email = f"customer{number:07d}@{SYNTHETIC_DOMAIN}"
        profile = synthetic_profile(rng, year)
        yield (
            {
                "id": customer_id,
                "email_index": vault.email_index(email),
                "email": vault.seal(key, "customers", customer_id, "email", email),
                "password_hash": None,
                "synthetic": True,
                "created_at": utcnow(),
            },
            {
                "customer_id": customer_id,
                "dek_version": 1,
                "kek_version": kek_version,
                "wrapped_key": aes_key_wrap(kek, dek),
                "created_at": utcnow(),
            },
            {
                "customer_id": customer_id,
                "updated_at": utcnow(),
                **{f: vault.seal(key, "profiles", customer_id, f, v) for f, v in profile.items()},
            },
        )


def seed_synthetic(
    session: Session,
    inst: Instance,
    total: int,
    *,
    seed: int = 42,
    chunk: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Top the synthetic population up to ``total`` customers, ``chunk`` per transaction."""
    existing = synthetic_count(session)
    session.rollback()
    year = utcnow().year
    number = existing
    while number < total:
        stop = min(total, number + chunk)
        batch = list(_rows(inst, seed, number, stop, year))
        session.execute(insert(Customer), [b[0] for b in batch])
        session.execute(insert(DataKey), [b[1] for b in batch])
        session.execute(insert(Profile), [b[2] for b in batch])
        append(
            session,
            LogEvent(
                actor=Actor.system("demo"),
                action="create",
                customer_id=None,
                categories=frozenset(
                    {"account", "identity", "demographics", "interests", "preferences"}
                ),
                reason=f"seeded synthetic customers {number}..{stop - 1}",
            ),
        )
        session.commit()
        if progress:
            progress(stop - number)
        number = stop
    return SeedReport(existing=existing, created=max(0, total - existing))
