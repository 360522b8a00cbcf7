"""Synthetic Australian profiles: varied, realistic and deterministic for a random generator.

The same generator state gives the same name, address, age, household and interests, so a
synthetic customer is the same for the same seed and index.
"""

from __future__ import annotations

import random
from typing import Any

from infomediary.services.profile_fields import CONTACT_CHANNELS, LANGUAGES, OFFER_FREQUENCIES
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
