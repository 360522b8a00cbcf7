"""Audience counts: validated, budgeted, cached, differentially private, thresholded, logged.

Order of a count (each step before the next):
1. Validate the query (attributes, values, at most 5 predicates: the edge's schema; a
   declared purpose: here).
   Nothing is charged for a rejected query, and no error depends on the data.
2. Same canonical query in the same data epoch: return the released answer, free.
3. Charge epsilon to the supplier's and the global budget, in an integer ledger, holding
   both budget rows locked. Exhausted: 429, nothing computed.
4. Refresh the index if another worker changed it, select, count.
5. Add discrete Laplace noise (OpenDP); suppress any noisy value below k.
6. Store the released answer and one access-log entry with the canonical criteria, epsilon,
   the released values and the compressed set of contributing ordinals.
7. Commit 3 and 6 together, and only then answer: a value never leaves before its cost and
   its record are durable, and a failed count leaves neither a charge nor an answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyroaring import BitMap
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.broker.attributes import ATTRIBUTES
from infomediary.broker.members import exclusion_text
from infomediary.errors import QueryRejected
from infomediary.instance import Instance
from infomediary.models import ReleasedAnswer, Supplier, utcnow
from infomediary.services import Context
from infomediary.services.budgets import MICRO, budget_remaining, charge
from infomediary.services.uow import unit_of_work
from policies.model import Mode

MAX_PREDICATES = 5
DISJOINT = ("age_band", "region", "area", "household")


@dataclass(frozen=True)
class CountQuery:
    """A count's criteria, as the edge's schema loaded them: a known purpose, 1 to
    ``MAX_PREDICATES`` known attributes each with sorted, distinct known values, and an
    optional ``breakdown`` among ``DISJOINT``."""

    purpose: str
    where: dict[str, list[str]]
    breakdown: str | None

    def canonical(self) -> str:
        return json.dumps(
            {"purpose": self.purpose, "where": self.where, "breakdown": self.breakdown},
            sort_keys=True,
            separators=(",", ":"),
        )

    def digest(self, scope: str = "") -> str:
        """The cache key: the canonical query within a scope of exclusions (see count_audience)."""
        return hashlib.sha256(f"{scope}\n{self.canonical()}".encode()).hexdigest()


def epoch_of(now: datetime, hours: int) -> int:
    return int(now.timestamp() // (hours * 3600))


def require_declared_purpose(query: CountQuery, supplier: Supplier) -> None:
    """The one rule of a query that needs the supplier (the edge's schema checked the rest)."""
    if query.purpose not in supplier.purposes.split():
        raise QueryRejected(
            "undeclared_purpose", "Your client did not declare this purpose.", "purpose"
        )


def _suppress(value: int, k: int) -> tuple[int | None, bool]:
    return (None, True) if value < k else (value, False)


def log_aggregate(
    session: Session,
    ctx: Context,
    *,
    action: str,
    query: CountQuery,
    epsilon_micro: int,
    released: Any,
    k: int,
    members: BitMap,
    categories: frozenset[str],
    **extra: Any,
) -> None:
    """One access-log entry per count or offer match: criteria, epsilon, the released values,
    and the contributing ordinals (raw, committed to by the entry's hash)."""
    detail = {
        "criteria": json.loads(query.canonical()),
        "epsilon": epsilon_micro / MICRO,
        "released": released,
        "k": k,
        **extra,
    }
    members.run_optimize()
    label = "audience count" if action == "count" else "offer match"
    ctx.log(
        session,
        action,
        categories=categories,
        purpose=query.purpose,
        reason=f"{label}, epsilon {epsilon_micro / MICRO:g}",
        detail=json.dumps(detail, sort_keys=True).encode(),
        members=members.serialize(),
    )


def count_audience(
    session: Session, inst: Instance, supplier: Supplier, query: CountQuery, ctx: Context
) -> dict[str, Any]:
    """One count, one transaction (steps 1-7 above)."""
    with unit_of_work(session) as uow:
        settings = inst.settings
        require_declared_purpose(query, supplier)
        index = inst.match_index
        index.refresh(session)
        # An answer may be replayed only to requesters whose exclusions are the same: suppliers
        # of one sector that no customer excluded by name share answers; an excluded supplier
        # gets its own, so nobody who said "never" to it is ever in a number it receives.
        scope = (
            f"supplier:{supplier.id}"
            if index.bitmap(exclusion_text("supplier", supplier.id))
            else f"sector:{supplier.sector}"
        )
        digest = query.digest(scope)
        epoch = epoch_of(utcnow(), settings.broker_epoch_hours)
        cached = session.get(ReleasedAnswer, (digest, epoch))
        if cached is not None:
            replay: dict[str, Any] = json.loads(cached.answer)
            replay.update(
                cached=True,
                epsilon_spent=0.0,
                budget_remaining=budget_remaining(session, settings, supplier.id),
            )
            return replay  # a read: the unit ends without a commit
        noise = inst.noise
        epsilon_micro = round(noise.privacy_loss() * MICRO)
        left = charge(session, settings, supplier.id, epsilon_micro, digest)
        index.refresh(session)
        answer = _release(session, inst, supplier, query, digest, epoch, epsilon_micro, ctx)
        try:
            uow.commit()
        except IntegrityError:
            # A concurrent identical query released first: its answer is the one that stands,
            # and this one's charge, answer and entry were rolled back with the transaction,
            # so nothing it computed leaves and nothing is charged for replaying a public value.
            session.rollback()
            existing = session.get(ReleasedAnswer, (digest, epoch))
            if existing is None:
                raise
            answer = dict(json.loads(existing.answer))
            answer.update(
                cached=True,
                epsilon_spent=0.0,
                budget_remaining=budget_remaining(session, settings, supplier.id),
            )
            return answer
        answer.update(
            cached=False, epsilon_spent=epsilon_micro / MICRO, budget_remaining=left / MICRO
        )
        return answer


def _release(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    query: CountQuery,
    digest: str,
    epoch: int,
    epsilon_micro: int,
    ctx: Context,
) -> dict[str, Any]:
    """Select, count, add noise, suppress below k; store the released answer and its entry."""
    index, noise, k = inst.match_index, inst.noise, inst.settings.broker_k
    selection = index.select(
        query.where, query.purpose, Mode.AGGREGATE, supplier.id, supplier.sector
    )
    answer: dict[str, Any] = {"query_id": digest[:16], "purpose": query.purpose, "k": k}
    if query.breakdown:
        values = ATTRIBUTES[query.breakdown].values
        noisy = noise.release(
            index.cells(selection.members, query.breakdown, values, query.purpose, Mode.AGGREGATE)
        )
        cells: list[dict[str, Any]] = []
        for value, released in zip(values, noisy, strict=True):
            shown, suppressed = _suppress(released, k)
            cells.append({"value": value, "count": shown, "suppressed": suppressed})
        # post-processing of the noisy cells (free): never the true total
        shown_total, suppressed_total = _suppress(sum(noisy), k)
        answer.update(
            breakdown=query.breakdown, cells=cells, count=shown_total, suppressed=suppressed_total
        )
        released_log: Any = [c["count"] for c in cells]
    else:
        released = noise.release([len(selection.members)])[0]
        shown, suppressed = _suppress(released, k)
        answer.update(count=shown, suppressed=suppressed)
        released_log = shown
    answer.update(epsilon=epsilon_micro / MICRO)
    session.add(
        ReleasedAnswer(
            query_hash=digest, epoch=epoch, answer=json.dumps(answer), epsilon_micro=epsilon_micro
        )
    )
    log_aggregate(
        session,
        ctx,
        action="count",
        query=query,
        epsilon_micro=epsilon_micro,
        released=released_log,
        k=k,
        members=selection.members,
        categories=selection.categories,
    )
    return answer
