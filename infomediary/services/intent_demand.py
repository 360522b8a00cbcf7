"""Demand signals: how many distinct customers have open intents in a category, per region.

Suppliers approved for intents see their own sector's intents one by one; for any other
sector, and for planning, a supplier with ``audience:count`` asks how many customers want
something, and gets a release like the broker's counts (:mod:`.broker`), in the same order:

1. Validate (a category of the taxonomy, a region or none, a declared purpose); nothing is
   charged for a refused query, and no error depends on the data.
2. The same question in the same data epoch from the same organisation: the released answer
   again, free, recorded against its release and logged.
3. Charge epsilon to the organisation's and the global budget (429 when exhausted).
4. Select the open intents of the category (on the intents' keyed blind indexes: nothing is
   unsealed) and the customers who posted them, leaving out whoever excluded any client of the
   organisation or its sector, whose policy does not release the category in anonymous counts
   for the purpose, and whose loss in the window would pass their cap (the individual
   privacy filter, :mod:`.privacy_ledger`, which charges every customer counted).
5. **Each customer counts once.** A customer with several open intents in the category is one
   customer, in one cell: the region of their newest such intent, or ``unspecified`` when that
   intent names none or their policy keeps their demographics out of anonymous counts. So
   adding or removing one customer changes one cell by one: the breakdown's sensitivity is 1,
   and one release costs each customer it counted one epsilon.
6. Discrete Laplace noise on every cell (OpenDP), suppression below k, the total as the sum
   of the noisy cells (post-processing, free: never the true total).
7. The released answer, its ledger row and one access-log entry, committed with the charge
   before anything is answered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyroaring import BitMap
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from infomediary.broker.attributes import categories_of, value_category
from infomediary.broker.canonical import check_purpose
from infomediary.broker.members import eligibility_text
from infomediary.errors import QueryRejected
from infomediary.instance import Instance
from infomediary.models import Intent, MatchEntry, Supplier, utcnow
from infomediary.services import Context, privacy_ledger
from infomediary.services.broker import answer_once, store_release
from infomediary.services.budgets import MICRO
from infomediary.services.intents import blind_index, today
from infomediary.statuses import IntentStatus, ReleaseKind
from policies.model import Mode
from policies.taxonomy import INTEREST_TAGS, REGIONS

#: The cell of customers whose newest intent names no region (or whose policy keeps their
#: region out of anonymous counts).
UNSPECIFIED = "unspecified"
#: The attribute the released criteria name, as the customer's list of releases shows them.
ATTRIBUTE = "intent_category"


@dataclass(frozen=True)
class DemandQuery:
    """Distinct customers with open intents in ``category``: per region, or in ``region``."""

    purpose: str
    category: str
    region: str | None = None

    def __post_init__(self) -> None:
        check_purpose(self.purpose)
        if self.category not in INTEREST_TAGS:
            raise QueryRejected("unknown_value", "Choose an interest of the taxonomy.", "category")
        if self.region is not None and self.region not in REGIONS:
            raise QueryRejected("unknown_value", f"One of: {', '.join(REGIONS)}.", "region")

    @property
    def cells(self) -> tuple[str, ...]:
        return (self.region,) if self.region else (*REGIONS, UNSPECIFIED)

    def canonical(self) -> str:
        where: dict[str, list[str]] = {ATTRIBUTE: [self.category]}
        if self.region:
            where["region"] = [self.region]
        return json.dumps(
            {
                "purpose": self.purpose,
                "where": where,
                "breakdown": None if self.region else "region",
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    def digest(self, scope: str = "") -> str:
        return hashlib.sha256(f"{scope}\nintent-demand\n{self.canonical()}".encode()).hexdigest()


def demand_count(
    session: Session, inst: Instance, supplier: Supplier, query: DemandQuery, ctx: Context
) -> dict[str, Any]:
    """One demand count, one transaction (steps 1-7 above)."""
    return answer_once(session, inst, supplier, query, ctx, _release)


def newest_regions(
    session: Session, inst: Instance, category: str, now: datetime | None = None
) -> dict[int, str | None]:
    """Each customer with an open intent in ``category``, by broker ordinal: the region of
    their newest such intent (``None``: it names none). Read from the blind indexes only."""
    regions = {blind_index(inst, "region", r): r for r in REGIONS}
    rows = session.execute(
        select(MatchEntry.ordinal, Intent.region_index, Intent.created_at, Intent.id)
        .join(MatchEntry, MatchEntry.customer_id == Intent.customer_id)
        .where(
            Intent.category_index == blind_index(inst, "category", category),
            Intent.status == IntentStatus.OPEN,
            Intent.needed_by >= today(),
            or_(Intent.deadline.is_(None), Intent.deadline > (now or utcnow())),
        )
    ).all()
    newest: dict[int, tuple[datetime, str, str | None]] = {}
    for ordinal, region_index, created_at, intent_id in rows:
        mark = (created_at, str(intent_id))
        held = newest.get(int(ordinal))
        if held is None or mark > held[:2]:
            region = regions.get(bytes(region_index)) if region_index is not None else None
            newest[int(ordinal)] = (created_at, str(intent_id), region)
    return {ordinal: region for ordinal, (_, _, region) in newest.items()}


def _release(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    others: list[tuple[str, str]],
    query: DemandQuery,
    digest: str,
    epoch: int,
    epsilon_micro: int,
    ctx: Context,
) -> dict[str, Any]:
    index, k = inst.match_index, inst.settings.broker_k
    interest = value_category("interests", query.category)
    demographics = value_category("region", REGIONS[0])
    regions = newest_regions(session, inst, query.category)
    candidates = BitMap(regions) & index.bitmap(
        eligibility_text(interest, query.purpose, Mode.AGGREGATE)
    )
    excluded = index.excluded(supplier.id, supplier.sector, others)
    if excluded:
        candidates = candidates - excluded
    shows_region = index.bitmap(eligibility_text(demographics, query.purpose, Mode.AGGREGATE))
    cell_of: dict[int, str] = {
        ordinal: (regions[ordinal] or UNSPECIFIED) if ordinal in shows_region else UNSPECIFIED
        for ordinal in candidates
    }
    if query.region:
        candidates = BitMap(o for o, cell in cell_of.items() if cell == query.region)
    members = privacy_ledger.admit(session, inst, candidates, epsilon_micro, locked=True)
    true_counts = dict.fromkeys(query.cells, 0)
    for ordinal in members:
        true_counts[cell_of[ordinal]] += 1
    noisy = inst.noise.release(list(true_counts.values()))
    answer: dict[str, Any] = {
        "query_id": digest[:16],
        "purpose": query.purpose,
        "category": query.category,
        "k": k,
        "epsilon": epsilon_micro / MICRO,
    }
    if query.region:
        shown = noisy[0] if noisy[0] >= k else None
        answer.update(region=query.region, count=shown, suppressed=shown is None)
        released_log: Any = shown
    else:
        cells = []
        for value, released in zip(query.cells, noisy, strict=True):
            shown = released if released >= k else None
            cells.append({"value": value, "count": shown, "suppressed": shown is None})
        total = sum(noisy)  # post-processing of the noisy cells: never the true total
        answer.update(
            breakdown="region",
            cells=cells,
            count=total if total >= k else None,
            suppressed=total < k,
        )
        released_log = [c["count"] for c in cells]
    store_release(
        session,
        inst,
        ctx,
        kind=ReleaseKind.INTENT_DEMAND,
        supplier=supplier,
        query=query,
        digest=digest,
        epoch=epoch,
        epsilon_micro=epsilon_micro,
        answer=answer,
        members=members,
        released=released_log,
        categories=categories_of(interest) | {demographics},  # every cell is a region
    )
    return answer
