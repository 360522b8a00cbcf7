"""What a customer can see of the releases that used their data: every count, breakdown, offer
reach and offer total that charged them, the replays of each (to whom), the epsilon of each,
totals per supplier and overall, and their standing against their own cap.

Releases are found through ``release_postings``, the index from a customer to the releases
they are in (one row per customer per block of 4,096 releases), kept up to date by
:func:`index_releases` after each release; releases the index has not reached yet are read
from their own member sets. A page therefore reads a few index rows and at most the
unindexed tail, never every member set.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pyroaring import BitMap
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from infomediary.instance import Instance
from infomediary.models import (
    BrokerState,
    OfferDelivery,
    Release,
    ReleasePosting,
    ReleaseReplay,
    utcnow,
)
from infomediary.services import jobs, privacy_ledger
from infomediary.services.suppliers import names_of
from infomediary.services.uow import unit_of_work

BLOCK_BITS = 12  # 4,096 release seqs per posting row
INDEX_JOB = privacy_ledger.INDEX_JOB
#: How often the indexing job runs, and how many batches of releases it folds in per run.
INDEX_SECONDS = 10
INDEX_BATCHES = 20
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
CHUNK = 500
STATE_ID = 1
LEFT = "a supplier that has left"


def block_of(seq: int) -> int:
    return seq >> BLOCK_BITS


# -- the index ---------------------------------------------------------------------------------


def index_releases(session: Session, max_releases: int = 100) -> int:
    """Fold up to ``max_releases`` unindexed releases into the postings; returns how many.

    One transaction: the postings rows and the new ``postings_through`` commit together, with
    ``broker_state`` locked so two indexers never fold the same release twice.
    """
    with unit_of_work(session) as uow:
        state = session.execute(
            select(BrokerState).where(BrokerState.id == STATE_ID).with_for_update()
        ).scalar_one()
        rows = session.execute(
            select(Release.seq, Release.members)
            .where(Release.seq > state.postings_through)
            .order_by(Release.seq)
            .limit(max_releases)
        ).all()
        if not rows:
            return 0
        additions: dict[tuple[int, int], list[int]] = defaultdict(list)
        for seq, blob in rows:
            block = block_of(seq)
            for ordinal in BitMap.deserialize(blob):
                additions[(ordinal, block)].append(seq)
        for block, keys in _by_block(additions).items():
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                existing = {
                    int(o): BitMap.deserialize(blob)
                    for o, blob in session.execute(
                        select(ReleasePosting.ordinal, ReleasePosting.seqs).where(
                            ReleasePosting.block == block, ReleasePosting.ordinal.in_(chunk)
                        )
                    ).all()
                }
                new_rows = []
                for ordinal in chunk:
                    seqs = BitMap(additions[(ordinal, block)])
                    if ordinal in existing:
                        merged = existing[ordinal] | seqs
                        merged.run_optimize()
                        session.execute(
                            update(ReleasePosting)
                            .where(ReleasePosting.ordinal == ordinal, ReleasePosting.block == block)
                            .values(seqs=merged.serialize())
                        )
                    else:
                        seqs.run_optimize()
                        new_rows.append(
                            {"ordinal": ordinal, "block": block, "seqs": seqs.serialize()}
                        )
                if new_rows:
                    session.execute(insert(ReleasePosting), new_rows)
        state.postings_through = int(rows[-1][0])
        uow.commit()
        return len(rows)


def _index_job(session: Session, inst: Instance, run: jobs.JobRun) -> datetime:
    """The recurring job that keeps the postings up to date (idempotent: each batch commits
    with its ``postings_through``). It stays queued, running every ``INDEX_SECONDS``."""
    for _ in range(INDEX_BATCHES):
        if not index_releases(session):
            break
    return utcnow() + timedelta(seconds=INDEX_SECONDS)


jobs.register(INDEX_JOB, _index_job, max_attempts=10)


def _by_block(additions: dict[tuple[int, int], list[int]]) -> dict[int, list[int]]:
    blocks: dict[int, list[int]] = defaultdict(list)
    for ordinal, block in additions:
        blocks[block].append(ordinal)
    return {b: sorted(ordinals) for b, ordinals in blocks.items()}


def _indexed_through(session: Session) -> int:
    state = session.get(BrokerState, STATE_ID)
    return state.postings_through if state else 0


def release_seqs(session: Session, ordinal: int) -> Iterator[int]:
    """Every release that charged ``ordinal``, newest first: the unindexed tail read from the
    releases themselves, then the postings, block by block."""
    through = _indexed_through(session)
    tail = session.execute(
        select(Release.seq, Release.members)
        .where(Release.seq > through)
        .order_by(Release.seq.desc())
    ).all()
    for seq, blob in tail:
        if ordinal in BitMap.deserialize(blob):
            yield int(seq)
    blocks = session.execute(
        select(ReleasePosting.seqs)
        .where(ReleasePosting.ordinal == ordinal)
        .order_by(ReleasePosting.block.desc())
    ).scalars()
    for blob in blocks:
        for seq in reversed(BitMap.deserialize(blob).to_array()):
            if seq <= through:
                yield int(seq)


# -- the customer's view -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replay:
    supplier: str
    time: datetime


@dataclass(frozen=True, slots=True)
class ReleaseUse:
    """One release that used the customer's data, as they are shown it."""

    seq: int
    time: datetime
    supplier: str
    kind: str
    purpose: str
    epsilon: float
    criteria: dict[str, object]
    replays: list[Replay] = field(default_factory=list)
    #: For an offer's reach: whether the offer reached this customer's inbox.
    delivered: bool | None = None


@dataclass(frozen=True, slots=True)
class ExposurePage:
    uses: list[ReleaseUse]
    #: The cursor of the next (older) page, or ``None`` on the last.
    older: int | None
    releases: int
    total_epsilon: float
    epsilon_by_supplier: dict[str, float]
    standing: privacy_ledger.Standing


def exposure_page(
    session: Session,
    inst: Instance,
    customer_id: str,
    before: int | None = None,
    size: int | None = None,
) -> ExposurePage:
    """A page of the releases that used the customer's data, newest first, older than
    ``before``; with the totals over all of them and the customer's standing. A read."""
    size = max(1, min(size or PAGE_SIZE, MAX_PAGE_SIZE))
    standing = privacy_ledger.standing(session, inst, customer_id)
    ordinal = privacy_ledger.ordinal_of(session, customer_id)
    if ordinal is None:
        return ExposurePage([], None, 0, 0.0, {}, standing)
    every = list(release_seqs(session, ordinal))
    older = [s for s in every if before is None or s < before]
    page, rest = older[:size], older[size:]
    totals = _totals(session, every)
    names = names_of(session, set(totals) | _suppliers_of(session, page))
    uses = _uses(session, customer_id, page, names)
    by_name: dict[str, float] = defaultdict(float)
    for supplier_id, micro in totals.items():
        by_name[names.get(supplier_id, LEFT)] += micro / 1_000_000
    session.rollback()  # a read: nothing to keep
    return ExposurePage(
        uses=uses,
        older=page[-1] if rest and page else None,
        releases=len(every),
        total_epsilon=sum(totals.values()) / 1_000_000,
        epsilon_by_supplier=dict(sorted(by_name.items(), key=lambda kv: -kv[1])),
        standing=standing,
    )


def export_releases(session: Session, inst: Instance, customer_id: str) -> dict[str, Any]:
    """Every release that used the customer's data and their standing, for their export (in
    the export's own transaction: this only reads)."""
    standing = privacy_ledger.standing(session, inst, customer_id)
    ordinal = privacy_ledger.ordinal_of(session, customer_id)
    seqs = list(release_seqs(session, ordinal)) if ordinal is not None else []
    uses: list[ReleaseUse] = []
    for chunk in _chunks(seqs):
        names = names_of(
            session, _release_suppliers(session, chunk) | _suppliers_of(session, chunk)
        )
        uses += _uses(session, customer_id, chunk, names)
    return {
        "budget": {
            "epsilon_spent": standing.spent,
            "epsilon_remaining": standing.remaining,
            "epsilon_cap": standing.budget,
            "window_days": standing.window_days,
        },
        "releases": [
            {
                "seq": u.seq,
                "time": u.time.isoformat(),
                "supplier": u.supplier,
                "kind": u.kind,
                "purpose": u.purpose,
                "epsilon": u.epsilon,
                "criteria": u.criteria,
                "replayed_to": [
                    {"supplier": r.supplier, "time": r.time.isoformat()} for r in u.replays
                ],
                **({"offer_reached_you": u.delivered} if u.delivered is not None else {}),
            }
            for u in uses
        ],
    }


def _release_suppliers(session: Session, seqs: list[int]) -> set[str]:
    found = session.execute(select(Release.supplier_id).where(Release.seq.in_(seqs))).scalars()
    return {str(s) for s in found}


def _chunks(values: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _totals(session: Session, seqs: list[int]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for chunk in _chunks(seqs):
        for supplier_id, micro in session.execute(
            select(Release.supplier_id, func.sum(Release.epsilon_micro))
            .where(Release.seq.in_(chunk))
            .group_by(Release.supplier_id)
        ).all():
            totals[str(supplier_id)] += int(micro or 0)
    return dict(totals)


def _suppliers_of(session: Session, seqs: list[int]) -> set[str]:
    if not seqs:
        return set()
    found = session.execute(
        select(ReleaseReplay.supplier_id).where(ReleaseReplay.release_seq.in_(seqs))
    ).scalars()
    return {str(s) for s in found}


def _uses(
    session: Session, customer_id: str, seqs: list[int], names: dict[str, str]
) -> list[ReleaseUse]:
    if not seqs:
        return []
    releases = {
        r.seq: r for r in session.execute(select(Release).where(Release.seq.in_(seqs))).scalars()
    }
    replays: dict[int, list[Replay]] = defaultdict(list)
    for release_seq, supplier_id, at in session.execute(
        select(ReleaseReplay.release_seq, ReleaseReplay.supplier_id, ReleaseReplay.created_at)
        .where(ReleaseReplay.release_seq.in_(seqs))
        .order_by(ReleaseReplay.id)
    ).all():
        replays[int(release_seq)].append(Replay(names.get(str(supplier_id), LEFT), at))
    offers = {r.offer_id for r in releases.values() if r.offer_id}
    delivered = (
        set(
            session.execute(
                select(OfferDelivery.offer_id).where(
                    OfferDelivery.customer_id == customer_id, OfferDelivery.offer_id.in_(offers)
                )
            ).scalars()
        )
        if offers
        else set()
    )
    uses = []
    for seq in seqs:
        release = releases[seq]
        uses.append(
            ReleaseUse(
                seq=seq,
                time=release.created_at,
                supplier=names.get(release.supplier_id, LEFT),
                kind=release.kind,
                purpose=release.purpose,
                epsilon=release.epsilon_micro / 1_000_000,
                criteria=json.loads(release.criteria),
                replays=replays.get(seq, []),
                delivered=(release.offer_id in delivered) if release.offer_id else None,
            )
        )
    return uses
