"""Audience counts: validated, budgeted, cached, differentially private, thresholded, logged.

Order of a count (each step before the next):
1. Validate the query (attributes, values, at most 5 predicates: the edge's schema; a
   declared purpose: here).
   Nothing is charged for a rejected query, and no error depends on the data.
2. Same canonical query in the same data epoch and the same organisation: replay the
   released answer, free; the replay is recorded against its release and logged.
3. Charge epsilon to the organisation's and the global budget, in an integer ledger, holding
   both budget rows locked. Exhausted: 429, nothing computed.
4. Refresh the index if another worker changed it; select, leaving out every customer who
   excluded any client of the organisation; leave out every customer whose loss in the window
   would pass their cap (the individual privacy filter, :mod:`.privacy_ledger`); count.
5. Add discrete Laplace noise (OpenDP); suppress any noisy value below k.
6. Store the released answer, the release's ledger row (the customers it charged) and one
   access-log entry with the canonical criteria, epsilon, the released values and the
   compressed set of contributing ordinals.
7. Commit 3 and 6 together, and only then answer: a value never leaves before its cost and
   its record are durable, and a failed count leaves neither a charge nor an answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pyroaring import BitMap
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary import metrics
from infomediary.audit.reasons import Reason
from infomediary.broker.attributes import ATTRIBUTES
from infomediary.broker.canonical import DISJOINT as DISJOINT
from infomediary.broker.canonical import MAX_PREDICATES as MAX_PREDICATES
from infomediary.broker.canonical import canonical_json, canonical_where, check_purpose
from infomediary.errors import QueryRejected
from infomediary.instance import Instance
from infomediary.models import ReleasedAnswer, ReleaseReplay, Supplier, utcnow
from infomediary.services import Context, privacy_ledger
from infomediary.services.budgets import MICRO, budget_remaining, charge
from infomediary.services.uow import UnitOfWork, unit_of_work
from infomediary.statuses import ReleaseKind
from policies.model import Mode


@dataclass(frozen=True)
class CountQuery:
    """A count's criteria in canonical form (:mod:`infomediary.broker.canonical`): a known
    purpose, 1 to ``MAX_PREDICATES`` known attributes each with sorted, distinct known values,
    no predicate that another implies for every customer, and an optional ``breakdown`` among
    ``DISJOINT``. Every construction canonicalises (``InvalidQuery`` for criteria that are no
    query), so spellings equivalent for every customer are one query with one cache key."""

    purpose: str
    where: dict[str, list[str]]
    breakdown: str | None

    def __post_init__(self) -> None:
        check_purpose(self.purpose)
        object.__setattr__(self, "where", canonical_where(self.where, self.breakdown))

    def canonical(self) -> str:
        return canonical_json(self.purpose, self.where, self.breakdown)

    def digest(self, scope: str = "") -> str:
        """The cache key: the canonical query within a scope of exclusions (see count_audience)."""
        return hashlib.sha256(f"{scope}\n{self.canonical()}".encode()).hexdigest()


class Canonical(Protocol):
    """A query a release answers: its purpose and its canonical criteria (what the access log
    and the customer's list of releases record)."""

    @property
    def purpose(self) -> str: ...

    def canonical(self) -> str: ...


def epoch_of(now: datetime, hours: int) -> int:
    return int(now.timestamp() // (hours * 3600))


def require_declared_purpose(query: Canonical, supplier: Supplier) -> None:
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
    query: Canonical,
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
    ctx.log(
        session,
        action,
        categories=categories,
        purpose=query.purpose,
        reason=Reason(
            "broker.count" if action == "count" else "broker.match",
            {"epsilon": epsilon_micro / MICRO},
        ),
        detail=json.dumps(detail, sort_keys=True).encode(),
        members=members.serialize(),
    )


class Releaser(Protocol):
    """Computes and stores one release (its ledger row, released answer and entry), once the
    budgets are charged: :func:`_release` for counts, the intents' demand for theirs."""

    def __call__(
        self,
        session: Session,
        inst: Instance,
        supplier: Supplier,
        others: list[tuple[str, str]],
        query: Any,
        digest: str,
        epoch: int,
        epsilon_micro: int,
        ctx: Context,
    ) -> dict[str, Any]: ...


class Question(Canonical, Protocol):
    def digest(self, scope: str = "") -> str: ...


def count_audience(
    session: Session, inst: Instance, supplier: Supplier, query: CountQuery, ctx: Context
) -> dict[str, Any]:
    """One count, one transaction (steps 1-7 above)."""
    return answer_once(session, inst, supplier, query, ctx, _release)


def answer_once(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    query: Question,
    ctx: Context,
    release: Releaser,
) -> dict[str, Any]:
    """Steps 1-3 and 7 of any release: the declared purpose, the replay of this epoch's answer,
    the charge, then ``release`` and the commit, in one transaction."""
    with unit_of_work(session) as uow:
        settings = inst.settings
        require_declared_purpose(query, supplier)
        # The cache scope is the organisation as it stands, whatever the data: every client of
        # one organisation is answered from the same releases, and each release leaves out
        # every customer who excluded any of them, so no client receives a number that
        # depends on a customer who said "never" to it. A client joining, leaving or changing
        # sector makes a new scope, since earlier releases did not leave out its excluders.
        others = organisation_clients(session, supplier)
        digest = query.digest(cache_scope(supplier, others))
        epoch = epoch_of(utcnow(), settings.broker_epoch_hours)
        cached = session.get(ReleasedAnswer, (digest, epoch))
        if cached is not None:
            return replay_answer(session, inst, supplier, query, cached, ctx, uow)
        epsilon_micro = round(inst.noise.privacy_loss() * MICRO)
        left = charge(session, settings, supplier.id, epsilon_micro, digest)
        inst.match_index.refresh(session)
        try:
            answer = release(
                session, inst, supplier, others, query, digest, epoch, epsilon_micro, ctx
            )
            uow.commit()
        except IntegrityError as exc:
            # A concurrent identical query released first (its answer's key is taken): its
            # answer is the one that stands, and this one's charge, answer, release and entry
            # are rolled back with the transaction, so nothing it computed leaves and nothing
            # is charged twice. The replay is a unit of work of its own.
            session.rollback()
            lost_race = exc
        else:
            answer.update(
                cached=False, epsilon_spent=epsilon_micro / MICRO, budget_remaining=left / MICRO
            )
            metrics.observe_release(answer, epsilon_micro / MICRO)
            return answer
    with unit_of_work(session) as replay_uow:
        existing = session.get(ReleasedAnswer, (digest, epoch))
        if existing is None:
            raise lost_race
        return replay_answer(session, inst, supplier, query, existing, ctx, replay_uow)


def cache_scope(supplier: Supplier, others: list[tuple[str, str]]) -> str:
    """The organisation and, as a digest, its clients with their sectors."""
    clients = sorted([(supplier.id, supplier.sector), *others])
    members = hashlib.sha256(json.dumps(clients).encode()).hexdigest()[:16]
    return f"organisation:{supplier.organisation_id}:{members}"


def replay_answer(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    query: Canonical,
    cached: ReleasedAnswer,
    ctx: Context,
    uow: UnitOfWork,
) -> dict[str, Any]:
    """A released answer served again, free: recorded against its release and logged, so the
    customers it counted see who received it."""
    answer: dict[str, Any] = json.loads(cached.answer)
    if cached.release_seq is not None:
        session.add(ReleaseReplay(release_seq=cached.release_seq, supplier_id=supplier.id))
    ctx.log(
        session,
        "count",
        purpose=query.purpose,
        reason=Reason("broker.count_replayed"),
        detail=json.dumps(
            {
                "criteria": json.loads(query.canonical()),
                "epsilon": 0.0,
                "replay_of": cached.release_seq,
                "released": answer.get("count"),
            },
            sort_keys=True,
        ).encode(),
    )
    uow.commit()
    answer.update(
        cached=True,
        epsilon_spent=0.0,
        budget_remaining=budget_remaining(session, inst.settings, supplier.id),
    )
    return answer


def _release(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    others: list[tuple[str, str]],
    query: CountQuery,
    digest: str,
    epoch: int,
    epsilon_micro: int,
    ctx: Context,
) -> dict[str, Any]:
    """Select, leave out customers at their cap, count, add noise, suppress below k; store the
    released answer, its ledger row and its entry."""
    index, noise, k = inst.match_index, inst.noise, inst.settings.broker_k
    selection = index.select(
        query.where,
        query.purpose,
        Mode.AGGREGATE,
        supplier.id,
        supplier.sector,
        others=others,
    )
    members = privacy_ledger.admit(session, inst, selection.members, epsilon_micro, locked=True)
    answer: dict[str, Any] = {"query_id": digest[:16], "purpose": query.purpose, "k": k}
    if query.breakdown:
        values = ATTRIBUTES[query.breakdown].values
        counted = index.cell_members(
            members, query.breakdown, values, query.purpose, Mode.AGGREGATE
        )
        noisy = noise.release(
            index.cells(members, query.breakdown, values, query.purpose, Mode.AGGREGATE)
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
        counted = members
        released = noise.release([len(members)])[0]
        shown, suppressed = _suppress(released, k)
        answer.update(count=shown, suppressed=suppressed)
        released_log = shown
    answer.update(epsilon=epsilon_micro / MICRO)
    store_release(
        session,
        inst,
        ctx,
        kind=ReleaseKind.BREAKDOWN if query.breakdown else ReleaseKind.COUNT,
        supplier=supplier,
        query=query,
        digest=digest,
        epoch=epoch,
        epsilon_micro=epsilon_micro,
        answer=answer,
        members=counted,
        released=released_log,
        categories=selection.categories,
    )
    return answer


def store_release(
    session: Session,
    inst: Instance,
    ctx: Context,
    *,
    kind: ReleaseKind,
    supplier: Supplier,
    query: Canonical,
    digest: str,
    epoch: int,
    epsilon_micro: int,
    answer: dict[str, Any],
    members: BitMap,
    released: Any,
    categories: frozenset[str],
) -> None:
    """Step 6: the release's ledger row (charging ``members``), its answer for replays within
    the epoch, and its access-log entry, in the caller's transaction."""
    release = privacy_ledger.record(
        session,
        inst,
        kind=kind,
        supplier_id=supplier.id,
        purpose=query.purpose,
        criteria=query.canonical(),
        epsilon_micro=epsilon_micro,
        members=members,
        query_hash=digest,
    )
    session.add(
        ReleasedAnswer(
            query_hash=digest,
            epoch=epoch,
            answer=json.dumps(answer),
            epsilon_micro=epsilon_micro,
            release_seq=release.seq,
        )
    )
    log_aggregate(
        session,
        ctx,
        action="count",
        query=query,
        epsilon_micro=epsilon_micro,
        released=released,
        k=answer["k"],
        members=members,
        categories=categories,
        release=release.seq,
    )


def organisation_clients(session: Session, supplier: Supplier) -> list[tuple[str, str]]:
    """The other clients of the supplier's organisation, with their sectors: a release for one
    leaves out whoever excluded any of them, as it may be replayed to each."""
    rows = session.execute(
        select(Supplier.id, Supplier.sector).where(
            Supplier.organisation_id == supplier.organisation_id, Supplier.id != supplier.id
        )
    ).all()
    return [(str(i), str(s)) for i, s in rows]
