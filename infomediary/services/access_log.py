"""The customer's view of the access log: "Who accessed my data"."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infomediary.audit.log import ActorType
from infomediary.errors import ValidationFailed
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, DataKey
from infomediary.services.customer_keys import customer_key
from infomediary.services.exports import (
    SupplierNames,
    TimelineItem,
    suppliers_named,
    timeline_item,
)
from infomediary.text import parse_int
from policies.taxonomy import CATEGORIES

ACTIONS = ("create", "read", "update", "export", "erase", "login", "consent", "count", "offer")
OUTCOMES = ("allowed", "denied")
PER_PAGE = 20


@dataclass(frozen=True, slots=True)
class TimelineFilter:
    actor_type: str | None = None
    action: str | None = None
    category: str | None = None
    outcome: str | None = None

    @classmethod
    def parse(cls, args: dict[str, str]) -> TimelineFilter:
        """Validate query-string filters; an unknown value is an error, not silently ignored."""
        choices = {
            "actor": tuple(str(a) for a in ActorType),
            "action": ACTIONS,
            "category": tuple(CATEGORIES),
            "outcome": OUTCOMES,
        }
        errors = {}
        clean: dict[str, str | None] = {}
        for name, allowed in choices.items():
            value = (args.get(name) or "").strip() or None
            if value is not None and value not in allowed:
                errors[name] = f"Choose one of: {', '.join(allowed)}."
            clean[name] = value
        if errors:
            raise ValidationFailed(errors, "Unknown filter value.")
        return cls(clean["actor"], clean["action"], clean["category"], clean["outcome"])

    def as_args(self) -> dict[str, str]:
        pairs = {
            "actor": self.actor_type,
            "action": self.action,
            "category": self.category,
            "outcome": self.outcome,
        }
        return {k: v for k, v in pairs.items() if v}


@dataclass(frozen=True, slots=True)
class TimelinePage:
    items: list[TimelineItem]
    page: int
    pages: int
    total: int


def parse_page(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    number = parse_int(raw, low=1, high=1_000_000)
    if number is None:
        raise ValidationFailed({"page": "Page must be a positive whole number."}, "Unknown page.")
    return number


def timeline(
    session: Session,
    inst: Instance,
    customer_id: str,
    filters: TimelineFilter,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> TimelinePage:
    """One page of the customer's own entries, newest first. Only ever this customer's rows."""
    query = select(AccessLogEntry).where(AccessLogEntry.customer_id == customer_id)
    if filters.actor_type:
        query = query.where(AccessLogEntry.actor_type == filters.actor_type)
    if filters.action:
        query = query.where(AccessLogEntry.action == filters.action)
    if filters.outcome:
        query = query.where(AccessLogEntry.outcome == filters.outcome)
    if filters.category:
        # categories are stored sorted and comma-joined; match a whole item
        joined = "," + AccessLogEntry.categories + ","
        query = query.where(joined.contains(f",{filters.category},"))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    pages = max(1, -(-total // per_page))
    page = min(page, pages)
    rows = (
        session.execute(
            query.order_by(AccessLogEntry.seq.desc()).limit(per_page).offset((page - 1) * per_page)
        )
        .scalars()
        .all()
    )
    key = customer_key(session, inst, customer_id) if session.get(DataKey, customer_id) else None
    # one query names every supplier of the page: its actors, and those its reasons name
    names = SupplierNames.lookup(session, suppliers_named(rows))
    items = [
        replace(timeline_item(inst, key, row, names.shown), actor_name=names.name(row.actor_id))
        if row.actor_type == "supplier"
        else timeline_item(inst, key, row, names.shown)
        for row in rows
    ]
    session.rollback()
    return TimelinePage(items, page, pages, total)
