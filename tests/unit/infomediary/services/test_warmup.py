"""Warming a process on both backends: after :func:`warmup.warm` the broker's index holds
every member at the database's version, so the first broker transaction finds nothing to
build; the ledger is folded; a warmer added later runs too."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import select, update

from infomediary import db
from infomediary.broker.members import STATE_ID
from infomediary.demo import population as demo
from infomediary.demo import seed_synthetic
from infomediary.instance import Instance, open_instance
from infomediary.models import BrokerState
from infomediary.services import warmup

MEMBERS = 12


def test_warming_builds_the_index_before_the_first_broker_request(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    def profile(rng: random.Random, year: int) -> dict[str, Any]:
        return {"postcode": "7000", "birth_year": year - 40, "interests": ["books"]}

    with monkeypatch.context() as patch, inst.sessions() as session:
        patch.setattr(demo, "synthetic_profile", profile)
        seed_synthetic(session, inst, MEMBERS, workers=1)
    with inst.sessions() as session:
        version = session.execute(
            select(BrokerState.version).where(BrokerState.id == STATE_ID)
        ).scalar_one()

    fresh = open_instance(inst.settings)  # a new worker's instance: nothing built yet
    try:
        assert fresh.match_index.version == -1
        warmed = warmup.warm(fresh)
        assert (warmed.index_members, warmed.index_version) == (MEMBERS, version)
        assert set(warmed.seconds) >= {"database", "match_index", "privacy_ledger"}
        with fresh.sessions() as session:
            assert fresh.match_index.refresh(session) is False  # the first request builds nothing
        assert fresh.privacy_ledger.checked_at is not None
        assert warmup.warm(fresh).index_version == version  # again: only a refresh
    finally:
        fresh.close()


def test_a_warmer_added_later_runs_in_every_warm_up(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Instance] = []
    monkeypatch.setattr(warmup, "_WARMERS", dict(warmup._WARMERS))
    warmup.add("test", lambda session, instance: seen.append(instance))
    warmed = warmup.warm(inst)
    assert seen == [inst]
    assert "test" in warmed.seconds


# SQLite only: PostgreSQL's reads take no lock, so there is nothing to wait for there.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_warming_takes_no_write_lock(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding SQLite's write lock (a worker serving, or warming at the same
    time) does not hold a warm-up up: it reads only."""
    monkeypatch.setattr(db, "WRITE_LOCK_TIMEOUT_SECONDS", 0.2)
    fresh = open_instance(inst.settings)
    try:
        with inst.engine.connect() as holder:
            holder.execute(update(BrokerState).values(version=BrokerState.version))  # the lock
            warmed = warmup.warm(fresh)
            holder.rollback()
        assert warmed.index_version >= 0
    finally:
        fresh.close()
