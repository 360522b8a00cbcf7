"""A customer's interests from purchases as stored: one sealed record, and what it says.

The reading side of :mod:`infomediary.services.derived_interests`, apart so that the broker's
match entry (:mod:`infomediary.services.matching`) can read it without importing the use cases
that write it (which sync the entry).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from infomediary.crypto.vault import CustomerKey
from infomediary.instance import Instance
from infomediary.models import DerivedInterests
from policies.taxonomy import INTEREST_TAGS

TABLE = "derived_interests"
FIELD = "record"
VERSION = 1


def _empty() -> dict[str, Any]:
    return {"v": VERSION, "evidence": {}, "removed": []}


def load(session: Session, inst: Instance, key: CustomerKey) -> dict[str, Any]:
    row = session.get(DerivedInterests, key.customer_id)
    if row is None:
        return _empty()
    record = inst.vault.open(key, TABLE, key.customer_id, FIELD, row.sealed)
    return record if isinstance(record, dict) else _empty()


def window_months(now: datetime) -> frozenset[str]:
    """This month and the eleven before it: the broker's "last 12 months"."""
    months = []
    year, month = now.year, now.month
    for _ in range(12):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return frozenset(months)


def kept(record: dict[str, Any]) -> list[str]:
    """The tags the purchases suggest that the customer has not removed, sorted."""
    removed = set(record.get("removed", []))
    return sorted(t for t in record.get("evidence", {}) if t in INTEREST_TAGS and t not in removed)


def bought(record: dict[str, Any], now: datetime) -> dict[str, dict[str, int]]:
    """Kept tags with evidence in the last 12 months -> spend on them then, per currency."""
    window = window_months(now)
    found: dict[str, dict[str, int]] = {}
    for tag in kept(record):
        spend: dict[str, int] = {}
        seen = False
        for month, cell in record["evidence"][tag].items():
            if month not in window:
                continue
            seen = True
            for currency, amount in cell.get("spend", {}).items():
                spend[currency] = spend.get(currency, 0) + int(amount)
        if seen:
            found[tag] = spend
    return found
