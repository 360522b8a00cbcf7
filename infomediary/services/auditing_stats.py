"""Per-supplier statistics and anomaly flags for auditors, from the access log and the tables
beside it (budget charges, offers, deliveries, blocks, grants). Read only, except for the
entries that record the auditor's read (:func:`infomediary.services.auditing.log_reads`).

Each flag has one rule, with its threshold a constant here:

- **denial spike**: a day on which a supplier was refused at least :data:`SPIKE_MIN_DENIALS`
  times and at least :data:`SPIKE_FACTOR` times its mean daily refusals over the
  :data:`SPIKE_TRAILING_DAYS` days before (days without refusals count as 0);
- **budget exhausted**: a refusal of the supplier's whose reason is an exhausted privacy
  budget, in the range; or its organisation's spend this period within one count's epsilon
  of the cap (the next count would be refused);
- **many blocks**: at least :data:`BLOCKS_MIN` customers blocked the supplier in the range
  and they are at least :data:`BLOCK_RATE` of the customers its offers reached so far;
- **outside a grant's purpose**: an allowed access (:data:`ACCESS_ACTIONS`) of a customer's
  data by the supplier for a purpose that none of the supplier's grants from that customer,
  live at the entry's time, names.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, distinct, exists, func, or_, select
from sqlalchemy.orm import Session

from infomediary.audit.log import ActorType
from infomediary.audit.reasons import Reason
from infomediary.errors import InvalidAuditFilter, NotFound
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    BudgetAccount,
    BudgetCharge,
    ConsentGrant,
    Offer,
    OfferDelivery,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.auditing import (
    AUDIT_CATEGORIES,
    AUDIT_PURPOSE,
    FIRST_DATE,
    LAST_DATE,
    AuditRow,
    Names,
    day_start,
    log_reads,
    rows_of,
)
from infomediary.services.budgets import MICRO, budget_holder
from infomediary.services.uow import unit_of_work

SPIKE_MIN_DENIALS = 5
SPIKE_FACTOR = 3.0
SPIKE_TRAILING_DAYS = 7
BLOCKS_MIN = 3
BLOCK_RATE = 0.10
ACCESS_ACTIONS = ("read", "import", "update")
#: The longest range one statistics page covers.
MAX_DAYS = 366
DEFAULT_DAYS = 30
#: At most this many entries outside a grant's purpose are listed (all are counted).
LISTED = 50
#: Format-1 entries said it in words; format-2 entries by these reason codes.
_BUDGET_WORDS = ("%budget exhausted%", "%budget%exhausted%")
_BUDGET_CODES = (
    "broker.count_refused_budget",
    "offers.refused_budget",
    "offers.totals_not_refreshed",
)


@dataclass(frozen=True, slots=True)
class Range:
    since: date
    until: date

    @classmethod
    def parse(cls, since: str | None, until: str | None, today: date | None = None) -> Range:
        today = today or utcnow().date()
        errors: dict[str, str] = {}
        parsed: dict[str, date | None] = {}
        for name, raw in (("since", since), ("until", until)):
            try:
                parsed[name] = date.fromisoformat(raw) if raw else None
            except ValueError:
                errors[name] = "A date as YYYY-MM-DD."
                continue
            value = parsed[name]
            if value is not None and not FIRST_DATE <= value <= LAST_DATE:
                errors[name] = f"A date from {FIRST_DATE} to {LAST_DATE}."
        if errors:
            raise InvalidAuditFilter(errors, "Some filters are not understood.")
        end = parsed["until"] or today
        start = parsed["since"] or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise InvalidAuditFilter({"until": "The end of the range comes before its start."})
        if (end - start).days + 1 > MAX_DAYS:
            raise InvalidAuditFilter({"since": f"A range of at most {MAX_DAYS} days."})
        return cls(start, end)

    def days(self) -> list[date]:
        return [self.since + timedelta(days=n) for n in range((self.until - self.since).days + 1)]

    @property
    def start(self) -> datetime:
        return day_start(self.since)

    @property
    def end(self) -> datetime:
        return day_start(self.until + timedelta(days=1))


def _day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as SQL (text on SQLite, a date on
    PostgreSQL: both read back through :func:`_as_date`)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    supplier_id: str
    supplier: str
    summary: str
    day: date | None = None


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    allowed: int
    denied: int
    epsilon: float


@dataclass(frozen=True, slots=True)
class SupplierStats:
    supplier_id: str
    name: str
    range: Range
    days: list[Day]
    budget_spent: float
    budget_cap: float
    offers: int
    deliveries: int
    accepted: int
    declined: int
    reached: int
    blocks: int
    anomalies: list[Anomaly]
    outside_purpose: list[AuditRow] = field(default_factory=list)
    outside_purpose_total: int = 0

    @property
    def block_rate(self) -> float | None:
        return self.blocks / self.reached if self.reached else None

    @property
    def totals(self) -> tuple[int, int, float]:
        return (
            sum(d.allowed for d in self.days),
            sum(d.denied for d in self.days),
            sum(d.epsilon for d in self.days),
        )


def _supplier_entries(supplier_ids: list[str] | None) -> ColumnElement[bool]:
    condition = AccessLogEntry.actor_type == ActorType.SUPPLIER
    if supplier_ids is not None:
        condition = and_(condition, AccessLogEntry.actor_id.in_(supplier_ids))
    return condition


def _daily_outcomes(
    session: Session, supplier_ids: list[str] | None, start: datetime, end: datetime
) -> dict[str, dict[date, dict[str, int]]]:
    day = _day(session, AccessLogEntry.created_at)
    rows = session.execute(
        select(AccessLogEntry.actor_id, day, AccessLogEntry.outcome, func.count())
        .where(
            _supplier_entries(supplier_ids),
            AccessLogEntry.created_at >= start,
            AccessLogEntry.created_at < end,
        )
        .group_by(AccessLogEntry.actor_id, day, AccessLogEntry.outcome)
    ).all()
    found: dict[str, dict[date, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for supplier_id, on, outcome, number in rows:
        found[str(supplier_id)][_as_date(on)][str(outcome)] = int(number)
    return found


def _spikes(
    names: Names, daily: dict[str, dict[date, dict[str, int]]], span: Range
) -> list[Anomaly]:
    flags = []
    for supplier_id, days in daily.items():
        for on in span.days():
            denied = days.get(on, {}).get("denied", 0)
            if denied < SPIKE_MIN_DENIALS:
                continue
            trailing = [
                days.get(on - timedelta(days=n), {}).get("denied", 0)
                for n in range(1, SPIKE_TRAILING_DAYS + 1)
            ]
            mean = sum(trailing) / SPIKE_TRAILING_DAYS
            if denied >= SPIKE_FACTOR * mean:
                flags.append(
                    Anomaly(
                        "denial_spike",
                        supplier_id,
                        names(supplier_id),
                        f"{denied} refusals on {on.isoformat()}, against a mean of "
                        f"{mean:.1f} a day over the {SPIKE_TRAILING_DAYS} days before",
                        on,
                    )
                )
    return flags


def _budget_flags(
    session: Session,
    inst: Instance,
    names: Names,
    supplier_ids: list[str] | None,
    span: Range,
) -> list[Anomaly]:
    words = or_(
        *(AccessLogEntry.reason.like(w) for w in _BUDGET_WORDS),
        *(AccessLogEntry.reason_data.like(f'{{"code":"{c}"%') for c in _BUDGET_CODES),
    )
    refused = session.execute(
        select(AccessLogEntry.actor_id, func.count())
        .where(
            _supplier_entries(supplier_ids),
            AccessLogEntry.outcome == "denied",
            AccessLogEntry.created_at >= span.start,
            AccessLogEntry.created_at < span.end,
            words,
        )
        .group_by(AccessLogEntry.actor_id)
    ).all()
    flags = [
        Anomaly(
            "budget_exhausted",
            str(s),
            names(str(s)),
            f"{n} request(s) refused because the privacy budget was spent",
        )
        for s, n in refused
    ]
    flagged = {f.supplier_id for f in flags}
    settings = inst.settings
    period = int(utcnow().timestamp() // (settings.broker_period_days * 86400))
    cap = int(settings.broker_budget * MICRO)
    step = int(settings.broker_epsilon * MICRO)
    suppliers = select(Supplier.id, Supplier.organisation_id)
    if supplier_ids is not None:
        suppliers = suppliers.where(Supplier.id.in_(supplier_ids))
    spent = dict(
        session.execute(
            select(BudgetAccount.supplier_id, BudgetAccount.spent_micro).where(
                BudgetAccount.period == period
            )
        ).all()
    )
    for supplier_id, organisation_id in session.execute(suppliers).all():
        used = int(spent.get(organisation_id, 0))
        if supplier_id not in flagged and used > 0 and used + step > cap:
            flags.append(
                Anomaly(
                    "budget_exhausted",
                    str(supplier_id),
                    names(str(supplier_id)),
                    f"its organisation spent {used / MICRO:g} of {cap / MICRO:g} epsilon this "
                    "period: the next count would be refused",
                )
            )
    return flags


def _block_counts(
    session: Session, supplier_ids: list[str] | None, span: Range
) -> dict[str, tuple[int, int]]:
    """supplier -> (blocks in the range, customers its offers reached up to the range's end)."""
    blocks = select(SupplierBlock.supplier_id, func.count()).where(
        SupplierBlock.created_at >= span.start, SupplierBlock.created_at < span.end
    )
    reached = (
        select(Offer.supplier_id, func.count(distinct(OfferDelivery.customer_id)))
        .join(Offer, Offer.id == OfferDelivery.offer_id)
        .where(OfferDelivery.delivered_at < span.end)
    )
    if supplier_ids is not None:
        blocks = blocks.where(SupplierBlock.supplier_id.in_(supplier_ids))
        reached = reached.where(Offer.supplier_id.in_(supplier_ids))
    b = dict(session.execute(blocks.group_by(SupplierBlock.supplier_id)).all())
    r = dict(session.execute(reached.group_by(Offer.supplier_id)).all())
    return {str(s): (int(b.get(s, 0)), int(r.get(s, 0))) for s in set(b) | set(r)}


def _block_flags(names: Names, counts: dict[str, tuple[int, int]]) -> list[Anomaly]:
    flags = []
    for supplier_id, (blocks, reached) in counts.items():
        rate = blocks / reached if reached else 1.0
        if blocks >= BLOCKS_MIN and rate >= BLOCK_RATE:
            flags.append(
                Anomaly(
                    "many_blocks",
                    supplier_id,
                    names(supplier_id),
                    f"{blocks} customers blocked it, {rate:.0%} of the {reached} its offers "
                    "reached",
                )
            )
    return flags


def _outside_purpose(supplier_ids: list[str] | None, span: Range) -> Any:
    """Allowed accesses of a customer's data by a supplier for a purpose no grant of theirs
    from that customer, live at the time, names."""
    at = AccessLogEntry.created_at
    granted = exists().where(
        ConsentGrant.customer_id == AccessLogEntry.customer_id,
        ConsentGrant.supplier_id == AccessLogEntry.actor_id,
        ConsentGrant.purpose == AccessLogEntry.purpose,
        ConsentGrant.created_at <= at,
        or_(ConsentGrant.revoked_at.is_(None), ConsentGrant.revoked_at > at),
        or_(ConsentGrant.expires_at.is_(None), ConsentGrant.expires_at > at),
    )
    return select(AccessLogEntry).where(
        _supplier_entries(supplier_ids),
        AccessLogEntry.outcome == "allowed",
        AccessLogEntry.customer_id.is_not(None),
        AccessLogEntry.action.in_(ACCESS_ACTIONS),
        at >= span.start,
        at < span.end,
        ~granted,
    )


def _purpose_flags(session: Session, names: Names, query: Any) -> list[Anomaly]:
    sub = query.subquery()
    rows = session.execute(select(sub.c.actor_id, func.count()).group_by(sub.c.actor_id)).all()
    return [
        Anomaly(
            "outside_purpose",
            str(s),
            names(str(s)),
            f"{n} access(es) for a purpose none of the customer's grants to it names",
        )
        for s, n in rows
    ]


def _anomalies(
    session: Session, inst: Instance, names: Names, supplier_ids: list[str] | None, span: Range
) -> list[Anomaly]:
    trailing_start = day_start(span.since - timedelta(days=SPIKE_TRAILING_DAYS))
    daily = _daily_outcomes(session, supplier_ids, trailing_start, span.end)
    return (
        _spikes(names, daily, span)
        + _budget_flags(session, inst, names, supplier_ids, span)
        + _block_flags(names, _block_counts(session, supplier_ids, span))
        + _purpose_flags(session, names, _outside_purpose(supplier_ids, span))
    )


def anomalies(session: Session, inst: Instance, span: Range, ctx: Context) -> list[Anomaly]:
    """Every supplier's flags in the range (aggregates only: no customer is shown); logged."""
    with unit_of_work(session) as uow:
        found = _anomalies(session, inst, Names(session), None, span)
        ctx.log(
            session,
            "audit",
            categories=AUDIT_CATEGORIES,
            purpose=AUDIT_PURPOSE,
            reason=Reason(
                "auditor.read",
                {"entries": 0, "customers": 0, "first": -1, "last": -1, "view": "anomalies"},
            ),
        )
        uow.commit()
    return sorted(found, key=lambda a: (a.supplier, a.kind, a.day or date.min))


def supplier_stats(
    session: Session,
    inst: Instance,
    auditor_id: str,
    supplier_id: str,
    span: Range,
    ctx: Context,
) -> SupplierStats:
    """One supplier's accesses and refusals per day, budget spend, offers, blocks and flags,
    with the accesses outside a grant's purpose listed (those customers' reads logged)."""
    with unit_of_work(session) as uow:
        supplier = session.get(Supplier, supplier_id)
        if supplier is None:
            raise NotFound("No such supplier.")
        names = Names(session)
        daily = _daily_outcomes(session, [supplier_id], span.start, span.end).get(supplier_id, {})
        day = _day(session, BudgetCharge.created_at)
        spend = {
            _as_date(on): int(micro) / MICRO
            for on, micro in session.execute(
                select(day, func.sum(BudgetCharge.epsilon_micro))
                .where(
                    BudgetCharge.supplier_id == supplier_id,
                    BudgetCharge.created_at >= span.start,
                    BudgetCharge.created_at < span.end,
                )
                .group_by(day)
            ).all()
        }
        days = [
            Day(
                on,
                daily.get(on, {}).get("allowed", 0),
                daily.get(on, {}).get("denied", 0),
                spend.get(on, 0.0),
            )
            for on in span.days()
        ]
        settings = inst.settings
        period = int(utcnow().timestamp() // (settings.broker_period_days * 86400))
        account = session.get(BudgetAccount, (budget_holder(session, supplier_id), period))
        offers_in_range = select(Offer.id).where(
            Offer.supplier_id == supplier_id,
            Offer.created_at >= span.start,
            Offer.created_at < span.end,
        )
        statuses = dict(
            session.execute(
                select(OfferDelivery.status, func.count())
                .where(OfferDelivery.offer_id.in_(offers_in_range))
                .group_by(OfferDelivery.status)
            ).all()
        )
        blocks, reached = _block_counts(session, [supplier_id], span).get(supplier_id, (0, 0))
        outside = _outside_purpose([supplier_id], span)
        total_outside = int(
            session.execute(select(func.count()).select_from(outside.subquery())).scalar_one()
        )
        listed = list(
            session.execute(outside.order_by(AccessLogEntry.seq.desc()).limit(LISTED)).scalars()
        )
        stats = SupplierStats(
            supplier_id=supplier_id,
            name=supplier.name,
            range=span,
            days=days,
            budget_spent=(account.spent_micro if account else 0) / MICRO,
            budget_cap=settings.broker_budget,
            offers=int(
                session.execute(
                    select(func.count()).select_from(offers_in_range.subquery())
                ).scalar_one()
            ),
            deliveries=sum(int(n) for n in statuses.values()),
            accepted=int(statuses.get("accepted", 0)),
            declined=int(statuses.get("declined", 0)),
            reached=reached,
            blocks=blocks,
            anomalies=_anomalies(session, inst, names, [supplier_id], span),
            outside_purpose=rows_of(inst, auditor_id, names, listed),
            outside_purpose_total=total_outside,
        )
        ctx.log(
            session,
            "audit",
            categories=AUDIT_CATEGORIES,
            purpose=AUDIT_PURPOSE,
            reason=Reason("auditor.viewed_statistics", {"supplier": supplier_id}),
        )
        if listed:
            log_reads(session, ctx, listed, "statistics")
        uow.commit()
    return stats
