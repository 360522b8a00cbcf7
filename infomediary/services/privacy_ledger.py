"""Individual privacy accounting: every release charges the customers whose data could change
it, and a customer who would pass their cap is left out (an individual privacy filter).

The guarantee (pure epsilon-DP, basic composition, neighbours differ by one customer added or
removed): over any rolling window of ``broker_customer_window_days``, the releases of every
supplier together, counts, breakdowns, offer reaches and offer totals, are
``broker_customer_budget``-differentially private for each customer. A release charges a
customer only if adding or removing them could change it (they are in the selection it counted;
a breakdown cell; an offer's eligible audience; a response total they answered into), which is
their individual sensitivity; the decision to leave a customer out depends only on their own
past charges, so it reveals nothing about anyone else (Feldman and Zrnic, "Individual Privacy
Accounting via a Renyi Filter", NeurIPS 2021, here in its pure-epsilon form). The bound is per
window, not for a lifetime: a release older than the window no longer counts against the cap.

Durable form: one ``releases`` row per release with its member set, inserted in the release's
own transaction while the global budget row is locked (:func:`budgets.charge` takes it first),
so releases are serialised and each sees every earlier one. In memory: bit-sliced counters
(:mod:`infomediary.broker.ledger`) that every worker folds the rows into, in ``seq`` order,
before it filters; rows leaving the window are subtracted again.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pyroaring import BitMap
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session, SessionTransaction

from infomediary.broker.ledger import Ledger
from infomediary.instance import Instance
from infomediary.models import MatchEntry, Release, utcnow
from infomediary.services import jobs
from infomediary.services.budgets import lock_global
from infomediary.statuses import ReleaseKind

BATCH = 500
#: How often a worker looks for releases that left the window, seconds.
EXPIRY_SECONDS = 60


def window_start(inst: Instance, now: datetime) -> datetime:
    return now - timedelta(days=inst.settings.broker_customer_window_days)


def refresh(session: Session, inst: Instance, now: datetime | None = None) -> Ledger:
    """Fold releases committed since the last refresh into the worker's ledger, and take back
    those that left the window. One indexed read when nothing changed; the window is looked
    at once every ``EXPIRY_SECONDS`` (a release leaves it that much late, never early)."""
    ledger = inst.privacy_ledger
    moment = now or utcnow()
    cutoff = window_start(inst, moment)
    # The transaction first (on SQLite, its write lock), then the ledger's lock, as every
    # caller that already holds a transaction takes them: a thread that took the ledger's lock
    # and then waited for the database's, while another held the database's and waited for
    # the ledger's, would wait forever.
    session.connection()
    with ledger.lock:
        if ledger.added_through == 0 and ledger.expired_through == 0:
            before = session.execute(
                select(func.max(Release.seq)).where(Release.created_at < cutoff)
            ).scalar_one()
            ledger.added_through = ledger.expired_through = before or 0
        while True:
            rows = _rows(session, Release.seq > ledger.added_through)
            for seq, epsilon_micro, blob in rows:
                ledger.add(BitMap.deserialize(blob), ledger.units(epsilon_micro))
                ledger.added_through = seq
            if len(rows) < BATCH:
                break
        if ledger.checked_at is None or (moment - ledger.checked_at).total_seconds() >= (
            EXPIRY_SECONDS
        ):
            while True:
                rows = _rows(
                    session,
                    Release.seq > ledger.expired_through,
                    Release.seq <= ledger.added_through,
                    Release.created_at < cutoff,
                )
                for seq, epsilon_micro, blob in rows:
                    ledger.subtract(BitMap.deserialize(blob), ledger.units(epsilon_micro))
                    ledger.expired_through = seq
                if len(rows) < BATCH:
                    break
            ledger.checked_at = moment
    return ledger


def _rows(session: Session, *where: Any) -> list[tuple[int, int, bytes]]:
    return [
        (int(seq), int(eps), bytes(blob))
        for seq, eps, blob in session.execute(
            select(Release.seq, Release.epsilon_micro, Release.members)
            .where(*where)
            .order_by(Release.seq)
            .limit(BATCH)
        ).all()
    ]


def admit(
    session: Session, inst: Instance, members: BitMap, epsilon_micro: int, *, locked: bool = False
) -> BitMap:
    """The members a charge of ``epsilon_micro`` keeps within their cap: the filter.

    Takes the global budget row's lock first (already held after :func:`budgets.charge`): no
    release can commit between this refresh and the caller's commit, so the filter sees every
    charge before it. ``locked``: the caller's transaction already holds that lock (it just
    charged a budget), so it is not taken again.
    """
    if not locked:
        lock_global(session, inst.settings)
    ledger = refresh(session, inst)
    with ledger.lock:
        if _SNAPSHOT not in session.info:
            session.info[_SNAPSHOT] = (ledger, ledger.added_through)
            _listen(session)
        return ledger.admit(members, ledger.units(epsilon_micro))


def record(
    session: Session,
    inst: Instance,
    *,
    kind: ReleaseKind,
    supplier_id: str,
    purpose: str,
    criteria: object,
    epsilon_micro: int,
    members: BitMap,
    query_hash: str | None = None,
    offer_id: str | None = None,
) -> Recorded:
    """The release's durable ledger row, in the caller's transaction (``seq`` assigned).

    Once the transaction commits, the release is folded into this worker's ledger at once (if
    it is the next seq), so the next refresh need not read its member set back."""
    members.run_optimize()
    blob = members.serialize()
    seq = session.execute(
        insert(Release)
        .values(
            created_at=utcnow(),
            kind=kind,
            supplier_id=supplier_id,
            purpose=purpose,
            criteria=criteria
            if isinstance(criteria, str)
            else json.dumps(criteria, sort_keys=True),
            epsilon_micro=epsilon_micro,
            members=blob,
            query_hash=query_hash,
            offer_id=offer_id,
        )
        .returning(Release.seq)
    ).scalar_one()
    schedule_indexing(session, inst)
    if _SNAPSHOT in session.info:  # the ledger was refreshed under the lock in this transaction
        session.info.setdefault(_PENDING, []).append((int(seq), epsilon_micro, members))
    return Recorded(int(seq))


_PENDING = "infomediary.ledger.pending"
_SNAPSHOT = "infomediary.ledger.snapshot"
_LISTENING = "infomediary.ledger.listening"
_SCHEDULING = "infomediary.ledger.scheduling"


def _listen(session: Session) -> None:
    if not session.info.get(_LISTENING):
        session.info[_LISTENING] = True  # for the session's life: it is short
        event.listen(session, "after_commit", _fold_committed)
        event.listen(session, "after_transaction_end", _forget_pending)


def _fold_committed(session: Session) -> None:
    """After the commit: fold this transaction's releases in. The transaction held the global
    lock from its refresh to its commit, so no other release committed in between: if the
    ledger still stands where that refresh left it, these are exactly the next releases (seqs
    may have gaps: a rolled-back insert uses one up). Otherwise the next refresh reads them.
    A savepoint's commit is not the transaction's."""
    if session.in_nested_transaction():
        return
    scheduled = session.info.pop(_SCHEDULING, None)
    if scheduled is not None:
        _SCHEDULED.add(scheduled)  # the job's row is committed: no need to look again
    pending = session.info.pop(_PENDING, [])
    snapshot = session.info.pop(_SNAPSHOT, None)
    if snapshot is None:
        return
    ledger, where = snapshot
    with ledger.lock:
        if ledger.added_through != where:
            return
        for seq, epsilon_micro, members in pending:
            ledger.add(members, ledger.units(epsilon_micro))
            ledger.added_through = seq


def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    """When the transaction ends (committed, and folded, or rolled back), nothing it recorded
    may linger for the next one. A savepoint ending is not the transaction ending."""
    if transaction.parent is not None:
        return
    session.info.pop(_PENDING, None)
    session.info.pop(_SNAPSHOT, None)
    session.info.pop(_SCHEDULING, None)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A release's row, as its transaction wrote it."""

    seq: int


#: The job that folds releases into the index from customers to releases
#: (:mod:`infomediary.services.exposure` registers its handler).
INDEX_JOB = "index_releases"
_SCHEDULED: weakref.WeakSet[Instance] = weakref.WeakSet()


def schedule_indexing(session: Session, inst: Instance) -> None:
    """Make sure the recurring indexing job exists (in the caller's transaction); once per
    process and instance once a transaction that enqueued it committed, so a release costs no
    extra statement after that."""
    if inst not in _SCHEDULED:
        jobs.enqueue(session, INDEX_JOB, {}, key=INDEX_JOB)
        session.info[_SCHEDULING] = inst  # remembered once this transaction commits
        _listen(session)


@dataclass(frozen=True, slots=True)
class Standing:
    """One customer's loss in the current window, and what is left of their cap."""

    spent: float
    budget: float
    window_days: int
    #: The epsilon of one release: below it left, the customer is at their cap.
    quantum: float

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.spent)

    @property
    def at_cap(self) -> bool:
        return self.remaining + 1e-9 < self.quantum


def ordinal_of(session: Session, customer_id: str) -> int | None:
    """The customer's broker ordinal (what releases record), or ``None`` without an entry."""
    found = session.execute(
        select(MatchEntry.ordinal).where(MatchEntry.customer_id == customer_id)
    ).scalar_one_or_none()
    return int(found) if found is not None else None


def standing(session: Session, inst: Instance, customer_id: str) -> Standing:
    ledger = refresh(session, inst)
    ordinal = ordinal_of(session, customer_id)
    with ledger.lock:
        spent = ledger.spent_micro(ordinal) if ordinal is not None else 0
    return Standing(
        spent=spent / 1_000_000,
        budget=inst.settings.broker_customer_budget,
        window_days=inst.settings.broker_customer_window_days,
        quantum=ledger.quantum_micro / 1_000_000,
    )
