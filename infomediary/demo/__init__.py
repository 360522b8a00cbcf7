"""Demo data: a few customers who can log in, and a bulk path for synthetic populations.

Synthetic customers are deterministic for a seed (same names, ages, interests and ids for
the same index), have no password, and are numbered: ``demo --customers N`` tops the
population up to N, so it is idempotent and resumable. The bulk path encrypts exactly as
the single path does (own DEK, AES-GCM fields, blind-indexed email) but inserts in chunks
with one access-log entry per chunk.
"""

from infomediary.demo.logins import (
    DEMO_LOGINS,
    DEMO_SUPPLIER,
    ensure_demo_logins,
    ensure_demo_supplier,
)
from infomediary.demo.population import (
    SYNTHETIC_DOMAIN,
    SeedReport,
    seed_synthetic,
    synthetic_count,
)
from infomediary.demo.synthetic import synthetic_profile

__all__ = [
    "DEMO_LOGINS",
    "DEMO_SUPPLIER",
    "SYNTHETIC_DOMAIN",
    "SeedReport",
    "ensure_demo_logins",
    "ensure_demo_supplier",
    "seed_synthetic",
    "synthetic_count",
    "synthetic_profile",
]
