"""Interests from purchases: what a customer's purchase lines suggest, kept apart from the
interests they declared, theirs to see, keep or remove.

The mapping is data (``connectors/interests.toml``, read by :mod:`connectors.interests`):
retailer categories and product keywords, each naming an interest tag of the taxonomy. A tag
the taxonomy does not know is ignored. A line suggests a tag when the mapping matches it and
the customer kept the product (not cancelled, returned or refunded).

One sealed record per customer (``derived_interests``, record id: the customer's id) holds,
per tag, the evidence month by month: lines, and spend per currency in minor units. Months,
not lines: the broker's attributes ("bought from in the last 12 months", spend bands) are
computed from it without opening a line, and the daily refresh only opens this one record
per customer. The record also holds the tags the customer removed: a removed tag is shown
as removed, never used, and stays removed whatever later purchases say, until the customer
restores it.

What a derived interest may be used for is the policy's business, exactly like a declared
one, and more: it is evidence from purchases, so every use needs the ``purchases`` category
as well as the tag's own (``interests``, or a special category such as ``health``, which no
template releases). Imports add evidence incrementally (:class:`Accumulator`, published in
the import's final commit); deleting lines recomputes the record from the lines left.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from connectors.interests import EXCLUDED_STATUSES, Rules, load_rules
from connectors.lines import PurchaseLine
from infomediary.crypto.vault import CustomerKey
from infomediary.instance import Instance
from infomediary.models import DerivedInterests, utcnow
from policies.taxonomy import INTEREST_TAGS

TABLE = "derived_interests"
FIELD = "record"
VERSION = 1
#: The window of the broker's purchase attributes.
WINDOW = timedelta(days=365)


@lru_cache(maxsize=1)
def rules() -> Rules:
    """The packaged mapping, restricted to tags the taxonomy knows."""
    return load_rules()


def _tags(line: PurchaseLine) -> frozenset[str]:
    if line.status in EXCLUDED_STATUSES:
        return frozenset()
    return frozenset(tag for tag in rules().match(line) if tag in INTEREST_TAGS)


def _month(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


@dataclass
class Accumulator:
    """Evidence of lines not yet published: per tag, per month, lines and spend."""

    months: dict[str, dict[str, dict[str, Any]]]

    def __init__(self) -> None:
        self.months = {}

    def add(self, line: PurchaseLine) -> None:
        tags = _tags(line)
        if not tags:
            return
        month = _month(line.ordered_at)
        spend = max(line.quantity, 0) * max(line.unit_price_minor or 0, 0)
        for tag in tags:
            cell = self.months.setdefault(tag, {}).setdefault(month, {"lines": 0, "spend": {}})
            cell["lines"] += 1
            if spend and line.currency:
                cell["spend"][line.currency] = cell["spend"].get(line.currency, 0) + spend

    def __bool__(self) -> bool:
        return bool(self.months)


def _empty() -> dict[str, Any]:
    return {"v": VERSION, "evidence": {}, "removed": []}


def load(session: Session, inst: Instance, key: CustomerKey) -> dict[str, Any]:
    row = session.get(DerivedInterests, key.customer_id)
    if row is None:
        return _empty()
    record = inst.vault.open(key, TABLE, key.customer_id, FIELD, row.sealed)
    return record if isinstance(record, dict) else _empty()


def _store(session: Session, inst: Instance, key: CustomerKey, record: dict[str, Any]) -> None:
    sealed = inst.vault.seal(key, TABLE, key.customer_id, FIELD, record)
    row = session.get(DerivedInterests, key.customer_id)
    if row is None:
        session.add(
            DerivedInterests(customer_id=key.customer_id, sealed=sealed, updated_at=utcnow())
        )
    else:
        row.sealed = sealed
        row.updated_at = utcnow()


def _merge(record: dict[str, Any], evidence: Accumulator) -> None:
    held: dict[str, dict[str, Any]] = record.setdefault("evidence", {})
    for tag, months in evidence.months.items():
        mine = held.setdefault(tag, {})
        for month, cell in months.items():
            into = mine.setdefault(month, {"lines": 0, "spend": {}})
            into["lines"] += cell["lines"]
            for currency, amount in cell["spend"].items():
                into["spend"][currency] = into["spend"].get(currency, 0) + amount


def add_evidence(session: Session, inst: Instance, key: CustomerKey, evidence: Accumulator) -> None:
    """Add published lines' evidence to the customer's record and broker entry (in the
    caller's unit of work)."""
    if not evidence:
        return
    record = load(session, inst, key)
    _merge(record, evidence)
    _store(session, inst, key, record)
    _sync(session, inst, key.customer_id)


def recompute(
    session: Session, inst: Instance, key: CustomerKey, lines: Iterable[PurchaseLine]
) -> None:
    """Rebuild the evidence from ``lines`` (every line the customer still holds), keeping
    what the customer removed (in the caller's unit of work)."""
    record = load(session, inst, key)
    accumulator = Accumulator()
    for line in lines:
        accumulator.add(line)
    record["evidence"] = {}
    _merge(record, accumulator)
    _store(session, inst, key, record)
    _sync(session, inst, key.customer_id)


def _sync(session: Session, inst: Instance, customer_id: str) -> None:
    from infomediary.services.matching import sync_member

    sync_member(session, inst, customer_id)
