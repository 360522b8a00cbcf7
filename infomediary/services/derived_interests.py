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

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from connectors.interests import EXCLUDED_STATUSES, Rules, load_rules
from connectors.lines import PurchaseLine
from infomediary.audit.reasons import Reason
from infomediary.crypto.vault import CustomerKey, DecryptionError
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.logs import get_logger
from infomediary.models import Customer, DerivedInterests, Job, Profile, utcnow
from infomediary.services import Context, jobs
from infomediary.services.customer_keys import customer_key, logged_categories
from infomediary.services.derived_record import (
    FIELD,
    TABLE,
    load,
    window_months,
)
from infomediary.services.uow import unit_of_work
from infomediary.statuses import JobStatus
from policies.taxonomy import INTEREST_TAGS

log = get_logger("derived_interests")


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
    #: A line already held changed (its status, say): the evidence is derived again in full.
    stale: bool

    def __init__(self) -> None:
        self.months = {}
        self.stale = False

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
        return bool(self.months) or self.stale


def _locked(session: Session, inst: Instance, key: CustomerKey) -> dict[str, Any]:
    """The customer's record, read under a row lock of the customer held to the commit, so
    writers of it (an import publishing, a delete re-deriving, the customer's choice) take
    turns instead of writing back what they read before another's commit (PostgreSQL; an
    SQLite write transaction holds the database's lock anyway)."""
    session.execute(
        select(Customer.id).where(Customer.id == key.customer_id).with_for_update()
    ).scalar_one_or_none()
    row = session.execute(
        select(DerivedInterests)
        .where(DerivedInterests.customer_id == key.customer_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        return load(session, inst, key)
    record = inst.vault.open(key, TABLE, key.customer_id, FIELD, row.sealed)
    return record if isinstance(record, dict) else load(session, inst, key)


def _store(session: Session, inst: Instance, key: CustomerKey, record: dict[str, Any]) -> None:
    sealed = inst.vault.seal(key, TABLE, key.customer_id, FIELD, record)
    row = session.get(DerivedInterests, key.customer_id)
    if row is None:
        session.add(
            DerivedInterests(customer_id=key.customer_id, sealed=sealed, updated_at=utcnow())
        )
        session.flush()  # Session.get does not autoflush: the next load must see the row
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
    record = _locked(session, inst, key)
    _merge(record, evidence)
    _store(session, inst, key, record)
    schedule_refresh(session, inst)
    _sync(session, inst, key.customer_id)


def recompute(
    session: Session, inst: Instance, key: CustomerKey, lines: Iterable[PurchaseLine]
) -> None:
    """Rebuild the evidence from ``lines`` (every line the customer still holds), keeping
    what the customer removed (in the caller's unit of work). The record is locked before the
    lines are read, so an import publishing meanwhile merges into what this writes."""
    record = _locked(session, inst, key)
    accumulator = Accumulator()
    for line in lines:
        accumulator.add(line)
    record["evidence"] = {}
    _merge(record, accumulator)
    _store(session, inst, key, record)
    _sync(session, inst, key.customer_id)


def _sync(session: Session, inst: Instance, customer_id: str, now: datetime | None = None) -> bool:
    from infomediary.services.matching import sync_member

    return sync_member(session, inst, customer_id, now)


def update_profile(
    session: Session, inst: Instance, customer_id: str, raw: dict[str, Any], ctx: Context
) -> list[str]:
    from infomediary.services.profiles import update_profile as update

    return update(session, inst, customer_id, raw, ctx)


# -- what the record says ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DerivedInterest:
    """One interest as the customer sees it on their profile."""

    tag: str
    label: str
    category: str
    special: bool
    lines: int
    latest_month: str
    recent: bool  # evidence in the last 12 months: what the broker may count
    removed: bool
    declared: bool  # also among the interests the customer declared


def view(record: dict[str, Any], declared: Iterable[str], now: datetime) -> list[DerivedInterest]:
    """Every tag the purchases suggest, removed ones included, by label."""
    from policies.taxonomy import CATEGORIES

    window = window_months(now)
    removed = set(record.get("removed", []))
    mine = set(declared)
    found = []
    for tag, months in record.get("evidence", {}).items():
        info = INTEREST_TAGS.get(tag)
        if info is None or not months:
            continue
        found.append(
            DerivedInterest(
                tag=tag,
                label=info.label,
                category=info.category,
                special=CATEGORIES[info.category].special,
                lines=sum(int(cell["lines"]) for cell in months.values()),
                latest_month=max(months),
                recent=any(month in window for month in months),
                removed=tag in removed,
                declared=tag in mine,
            )
        )
    return sorted(found, key=lambda d: d.label)


def export(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the customer's export holds it."""
    return {
        "evidence": record.get("evidence", {}),
        "removed": sorted(record.get("removed", [])),
        "mapping": "connectors/interests.toml",
    }


# -- the customer's use cases ------------------------------------------------------------------
ACTIONS = ("remove", "restore", "adopt")


def _declared(session: Session, inst: Instance, key: CustomerKey) -> list[str]:
    profile = session.get(Profile, key.customer_id)
    if profile is None or profile.interests is None:
        return []
    tags = inst.vault.open(key, "profiles", key.customer_id, "interests", profile.interests)
    return list(tags or [])


def customer_view(
    session: Session, inst: Instance, customer_id: str, ctx: Context
) -> list[DerivedInterest]:
    """The customer's interests from purchases, for their profile page; logged."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        record = load(session, inst, key)
        found = view(record, _declared(session, inst, key), utcnow())
        if found:
            ctx.log(
                session,
                "read",
                customer_id=customer_id,
                reason=Reason("interests.viewed"),
                **logged_categories(
                    inst, key, frozenset({"interests", "purchases"} | {d.category for d in found})
                ),
            )
            uow.commit()
        return found


def choose(
    session: Session, inst: Instance, customer_id: str, tag: str, action: str, ctx: Context
) -> None:
    """The customer removes a derived interest (never used again until restored), restores
    one, or adopts one into their declared interests. NotFound for a tag their purchases do
    not suggest."""
    if action not in ACTIONS:
        raise ValidationFailed({"action": f"one of {', '.join(ACTIONS)}"})
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        record = _locked(session, inst, key)
        if tag not in record.get("evidence", {}) or tag not in INTEREST_TAGS:
            raise NotFound("Your purchases suggest no such interest.")
        removed = set(record.get("removed", []))
        if action == "adopt":
            declared = _declared(session, inst, key)
            uow.commit()  # nothing written: the profile's own use case writes and logs
            if tag not in declared:
                update_profile(session, inst, customer_id, {"interests": [*declared, tag]}, ctx)
            return
        if (action == "remove") == (tag in removed):
            return  # already so
        if action == "remove":
            removed.add(tag)
        else:
            removed.discard(tag)
        record["removed"] = sorted(removed)
        _store(session, inst, key, record)
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("interests.removed" if action == "remove" else "interests.restored"),
            **logged_categories(
                inst,
                key,
                frozenset({"interests", "purchases", INTEREST_TAGS[tag].category}),
                {"interest": tag, "action": action},
            ),
        )
        _sync(session, inst, customer_id)
        uow.commit()


# -- the daily refresh -------------------------------------------------------------------------
#: The recurring job that moves the broker's "last 12 months" on, once a day.
REFRESH_JOB = "refresh_purchase_attributes"
REFRESH_EVERY = timedelta(days=1)
_REFRESH_BATCH = 500
_SCHEDULED: weakref.WeakSet[Instance] = weakref.WeakSet()


_SCHEDULING = "infomediary.derived_interests.scheduling"
_LISTENING = "infomediary.derived_interests.listening"


def schedule_refresh(session: Session, inst: Instance) -> None:
    """Make sure the daily refresh exists, and is not given up (in the caller's transaction).

    Once per process and instance *after a transaction that did so committed*: a rolled-back
    one leaves the next to try again. A refresh that failed (its attempts used up) is queued
    again, so the 12-month window never stops moving."""
    if inst in _SCHEDULED:
        return
    row = session.execute(select(Job.id, Job.status).where(Job.key == REFRESH_JOB)).first()
    if row is None:
        jobs.enqueue(session, REFRESH_JOB, {}, utcnow() + REFRESH_EVERY, key=REFRESH_JOB)
    elif row.status == JobStatus.FAILED:
        session.execute(
            update(Job)
            .where(Job.id == row.id, Job.status == JobStatus.FAILED)
            .values(status=JobStatus.QUEUED, attempts=0, run_after=utcnow(), locked_until=None)
        )
    session.info[_SCHEDULING] = inst
    if not session.info.get(_LISTENING):
        session.info[_LISTENING] = True  # for the session's life: it is short
        event.listen(session, "after_commit", _scheduled)
        event.listen(session, "after_rollback", _not_scheduled)


def _scheduled(session: Session) -> None:
    if session.get_nested_transaction() is not None:  # a savepoint released: not committed
        return
    inst = session.info.pop(_SCHEDULING, None)
    if inst is not None:
        _SCHEDULED.add(inst)


def _not_scheduled(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_SCHEDULING, None)


def refresh_all(session: Session, inst: Instance, now: datetime | None = None) -> int:
    """Re-derive the broker entry of every customer with interests from purchases, in short
    units of work of a batch of customers; returns how many entries changed."""
    changed = 0
    after = ""
    while True:
        with unit_of_work(session) as uow:
            ids = list(
                session.execute(
                    select(DerivedInterests.customer_id)
                    .where(DerivedInterests.customer_id > after)
                    .order_by(DerivedInterests.customer_id)
                    .limit(_REFRESH_BATCH)
                ).scalars()
            )
            if not ids:
                return changed
            for customer_id in ids:
                try:
                    with session.begin_nested():  # one customer's failure is theirs alone
                        changed += bool(_sync(session, inst, customer_id, now))
                except (DecryptionError, ValueError) as exc:  # a record that will not open
                    log.warning(
                        "refresh: a customer's entry was left as it was (%s)", type(exc).__name__
                    )
            uow.commit()
        after = ids[-1]


def _refresh_job(session: Session, inst: Instance, run: jobs.JobRun) -> datetime:
    refresh_all(session, inst, run.now)
    return run.now + REFRESH_EVERY


jobs.register(REFRESH_JOB, _refresh_job, max_attempts=10, lease_seconds=3600)
