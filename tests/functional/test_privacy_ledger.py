"""The per-customer privacy ledger end to end: every release charges the customers it counted,
a customer at their cap is left out of later releases by every supplier and every worker, and
the window moves on."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from pyroaring import BitMap
from sqlalchemy import func, select, update

from infomediary.broker.ledger import Ledger
from infomediary.broker.noise import NoiseSource
from infomediary.instance import Instance, open_instance
from infomediary.models import Release, utcnow
from infomediary.services import privacy_ledger
from tests.functional.test_broker_privacy import count, new_supplier, ordinal_of, person
from tests.scripted_noise import ScriptedNoise

EVERYONE = {"purpose": "marketing", "where": {"region": ["TAS"]}}


@pytest.fixture
def capped(inst: Instance) -> Iterator[Callable[..., Instance]]:
    """Instances on the same database with a small per-customer cap and scripted zero noise,
    so released counts are the true counts and the tests can read who was counted."""
    opened: list[Instance] = []

    def open_capped(budget: float = 0.5, window_days: int = 365) -> Instance:
        settings = replace(
            inst.settings,
            broker_customer_budget=budget,
            broker_customer_window_days=window_days,
            broker_k=-1_000_000,  # nothing suppressed
        )
        opened.append(
            open_instance(settings, noise=ScriptedNoise(settings.broker_epsilon, [0] * 500))
        )
        return opened[-1]

    yield open_capped
    for other in opened:
        other.close()


def releases_with(inst: Instance, ordinal: int) -> list[int]:
    with inst.sessions() as session:
        rows = session.execute(select(Release.seq, Release.members).order_by(Release.seq)).all()
    return [seq for seq, blob in rows if ordinal in BitMap.deserialize(blob)]


def spent(inst: Instance, customer_id: str) -> float:
    with inst.sessions() as session:
        return privacy_ledger.standing(session, inst, customer_id).spent


def test_every_release_charges_the_customers_it_counted(
    capped: Callable[..., Instance],
) -> None:
    broker = capped(budget=10.0)
    inside, outside = person(broker), person(broker, postcode="0800")
    supplier = new_supplier(broker)
    answer = count(broker, supplier, EVERYONE)
    assert answer["count"] == 1
    assert spent(broker, inside) == pytest.approx(0.1)
    assert spent(broker, outside) == 0  # not in the selection: the count cannot depend on them
    breakdown = count(broker, supplier, {**EVERYONE, "breakdown": "household"})
    assert breakdown["cached"] is False
    assert spent(broker, inside) == pytest.approx(0.2)
    assert spent(broker, outside) == 0


def test_ten_organisations_cannot_push_one_customer_past_the_cap(
    capped: Callable[..., Instance],
) -> None:
    broker = capped(budget=0.5)  # five releases of epsilon 0.1
    target = person(broker)
    others = [person(broker) for _ in range(3)]
    suppliers = [new_supplier(broker, f"Organisation {n}") for n in range(10)]
    answers = [count(broker, s, EVERYONE) for s in suppliers]
    assert all(a["cached"] is False for a in answers)  # ten releases, each charged
    # everyone was in every selection: counted in the first five, then left out
    assert [a["count"] for a in answers] == [4] * 5 + [0] * 5
    assert len(releases_with(broker, ordinal_of(broker, target))) == 5
    assert spent(broker, target) == pytest.approx(0.5)
    assert all(spent(broker, o) == pytest.approx(0.5) for o in others)


def test_a_customer_at_the_cap_is_absent_from_the_next_release(
    capped: Callable[..., Instance],
) -> None:
    broker = capped(budget=0.3)
    target = person(broker, household=5)  # the only household of five
    for _ in range(3):
        person(broker)
    supplier = new_supplier(broker)
    for band in ("1", "5+"), ("2", "5+"), ("3", "5+"):
        count(broker, supplier, {"purpose": "marketing", "where": {"household": list(band)}})
    assert spent(broker, target) == pytest.approx(0.3)  # at the cap
    with broker.sessions() as session:
        assert privacy_ledger.standing(session, broker, target).at_cap
    before = releases_with(broker, ordinal_of(broker, target))
    answer = count(broker, supplier, EVERYONE)
    assert answer["count"] == 3  # the three others; the target is left out
    assert releases_with(broker, ordinal_of(broker, target)) == before
    assert spent(broker, target) == pytest.approx(0.3)


def test_the_ledger_survives_a_restart_and_is_shared_by_workers(
    capped: Callable[..., Instance],
) -> None:
    first = capped(budget=0.2)
    target = person(first)
    supplier = new_supplier(first)
    count(first, supplier, EVERYONE)
    count(first, supplier, {"purpose": "analytics", "where": {"region": ["TAS"]}})
    second = capped(budget=0.2)  # another worker, or the same one restarted: an empty ledger
    assert spent(second, target) == pytest.approx(0.2)
    third_query = {"purpose": "research", "where": {"region": ["TAS"]}}
    assert count(second, supplier, third_query)["count"] == 0
    # and the first worker, whose ledger was built before, sees the second's release too
    other_supplier = new_supplier(first, "Other")
    assert count(first, other_supplier, EVERYONE)["count"] == 0


def test_the_window_moves_on(
    capped: Callable[..., Instance], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(privacy_ledger, "EXPIRY_SECONDS", 0)  # look at the window every time
    broker = capped(budget=0.2, window_days=30)
    target = person(broker)
    supplier = new_supplier(broker)
    count(broker, supplier, EVERYONE)
    count(broker, supplier, {"purpose": "analytics", "where": {"region": ["TAS"]}})
    research = {"purpose": "research", "where": {"region": ["TAS"]}}
    assert count(broker, supplier, research)["count"] == 0
    assert spent(broker, target) == pytest.approx(0.2)
    with broker.sessions() as session:  # the two charging releases are now 31 days old
        session.execute(update(Release).values(created_at=utcnow() - timedelta(days=31)))
        session.commit()
    assert spent(broker, target) == 0
    again = new_supplier(broker, "Next month")
    assert count(broker, again, EVERYONE)["count"] == 1


# -- the differencing attack, with the filter ------------------------------------------------

QUERIES = 100  # an attacker asking a hundred distinct questions that all include the target
TRIALS = 1_500


def _included(cap: float, filtered: bool) -> list[bool]:
    """Which of the attacker's releases count the target, decided by the real ledger."""
    ledger = Ledger(quantum_micro=100_000, cap_micro=round(cap * 1_000_000))
    target = BitMap([0])
    flags = []
    for _ in range(QUERIES):
        admitted = ledger.admit(target, 1) if filtered else target
        flags.append(bool(admitted))
        ledger.add(admitted)
    return flags


def _vote_attack(noise: NoiseSource, included: list[bool]) -> float:
    """Tell "target in" from "target out" by majority vote of the answers: each answer above the
    base votes "in" (for Laplace noise, the likelihood-ratio test of each answer)."""
    base = 1_000
    world_in = noise.release([base + int(flag) for flag in included] * TRIALS)
    world_out = noise.release([base] * (QUERIES * TRIALS))

    def votes(world: list[int], trial: int) -> int:
        return sum(1 if v > base else -1 for v in world[trial * QUERIES : (trial + 1) * QUERIES])

    right = 0.0
    for trial in range(TRIALS):
        for world, sign in ((world_in, 1), (world_out, -1)):
            score = votes(world, trial) * sign
            right += 1 if score > 0 else 0.5 if score == 0 else 0
    return right / (2 * TRIALS)


def _bound(epsilon: float) -> float:
    return math.exp(epsilon) / (1 + math.exp(epsilon))


def test_the_filter_bounds_a_differencing_attack_over_many_queries() -> None:
    """100 queries at epsilon 0.1 would compose to 10; with a cap of 0.3 the target is in
    three releases at most, so the attacker's success stays within the epsilon-0.3 bound."""
    noise = NoiseSource(0.1)
    filtered = _included(0.3, filtered=True)
    assert sum(filtered) == 3
    success = _vote_attack(noise, filtered)
    tolerance = 4 * math.sqrt(0.25 / (2 * TRIALS))
    assert success <= _bound(0.3) + tolerance
    # without the filter the same attack is far stronger: the check can fail
    unfiltered = _vote_attack(noise, _included(0.3, filtered=False))
    assert unfiltered > _bound(0.3) + 2 * tolerance


def test_a_committed_release_is_folded_in_at_once_and_a_rolled_back_one_never(
    capped: Callable[..., Instance],
) -> None:
    from infomediary.statuses import ReleaseKind

    broker = capped(budget=10.0)
    target = person(broker)
    supplier = new_supplier(broker)
    count(broker, supplier, EVERYONE)
    ledger = broker.privacy_ledger
    with broker.sessions() as session:
        newest = session.execute(select(func.max(Release.seq))).scalar_one()
    assert ledger.added_through == newest  # folded after the commit, not read back
    assert ledger.spent_micro(ordinal_of(broker, target)) == 100_000
    with broker.sessions() as session:
        privacy_ledger.record(
            session,
            broker,
            kind=ReleaseKind.COUNT,
            supplier_id=supplier,
            purpose="marketing",
            criteria={},
            epsilon_micro=100_000,
            members=BitMap([ordinal_of(broker, target)]),
        )
        session.rollback()
    assert ledger.added_through == newest
    assert spent(broker, target) == pytest.approx(0.1)


def test_releases_are_serialised_whatever_the_budget_period(inst: Instance) -> None:
    """A release holds a lock no other release can take until it ends, not only its period's
    budget row: one at the end of a period and one at the start of the next cannot both
    filter against the same ledger."""
    import sqlite3

    from sqlalchemy import text

    from infomediary.services.budgets import RELEASE_LOCK, lock_global

    with inst.sessions() as session:
        lock_global(session, inst.settings)
        if inst.engine.dialect.name == "postgresql":
            with inst.engine.connect() as other:
                taken = other.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RELEASE_LOCK}
                ).scalar_one()
                other.rollback()
            assert taken is False
        else:
            path = inst.engine.url.database
            assert path
            other_db = sqlite3.connect(path, timeout=0)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other_db.execute("BEGIN IMMEDIATE")
            finally:
                other_db.close()
        session.rollback()


def test_refreshes_in_threads_that_hold_transactions_do_not_deadlock(inst: Instance) -> None:
    """A thread holding a transaction (on SQLite, the write lock) refreshes the ledger while
    another thread's refresh waits for the database: the waiting thread must not be holding
    the ledger's lock, or neither would ever go on (the dashboard's overview under threads)."""
    if inst.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's reads wait for no lock")
    errors: list[BaseException] = []

    def refresh_in(session) -> None:
        try:
            privacy_ledger.refresh(session, inst)
            session.commit()
        except BaseException as exc:
            errors.append(exc)

    first = inst.sessions()
    second = inst.sessions()
    try:
        first.connection()  # the first thread's transaction holds the write lock
        other = threading.Thread(target=refresh_in, args=(second,))
        other.start()
        other.join(0.5)  # it waits for the database now
        assert other.is_alive()
        mine = threading.Thread(target=refresh_in, args=(first,))
        mine.start()
        mine.join(10)
        other.join(10)
        assert not mine.is_alive()
        assert not other.is_alive()
        assert errors == []
    finally:
        first.close()
        second.close()
