"""The access log: chaining, RFC 9162 leaf form, tamper detection, concurrent appends."""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from infomediary.audit.log import (
    GENESIS,
    Actor,
    LogEvent,
    append,
    canonical_entry,
    leaf_hash,
    verify,
)
from infomediary.audit.reasons import Reason, render
from infomediary.cli import main
from infomediary.config import Settings
from infomediary.instance import open_instance
from infomediary.models import AccessLogEntry, LogHead


def fill(inst, count: int) -> None:
    with inst.sessions() as session:
        for number in range(count):
            append(
                session,
                LogEvent(
                    Actor.system("test"),
                    "read",
                    f"customer-{number % 3}",
                    frozenset({"identity"}),
                    reason=f"entry {number}",
                ),
            )
        session.commit()


def test_entries_chain_and_leaf_hash_is_rfc9162(inst) -> None:
    fill(inst, 5)
    with inst.sessions() as session:
        rows = session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars().all()
        head = session.get(LogHead, 1)
    assert [r.seq for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.leaf_hash
    for row in rows:
        assert row.leaf_hash == hashlib.sha256(b"\x00" + canonical_entry(row)).digest()
    assert head.size == 5
    assert head.last_hash == rows[-1].leaf_hash


def test_an_entry_commits_or_rolls_back_with_its_access(inst) -> None:
    with inst.sessions() as session:
        append(session, LogEvent(Actor.system("test"), "read", "c", frozenset()))
        session.rollback()
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(AccessLogEntry)).scalar_one() == 0
        assert session.get(LogHead, 1).size == 0
        assert verify(session).ok


def test_intact_log_verifies(inst) -> None:
    fill(inst, 7)
    with inst.sessions() as session:
        result = verify(session, batch=3)
    assert result.ok
    assert result.size == 7


def _tamper_alter(session) -> None:
    session.execute(
        update(AccessLogEntry)
        .where(AccessLogEntry.seq == 3)
        .values(reason_data=Reason("text", {"text": "nothing to see"}).to_json())
    )


def _tamper_remove(session) -> None:
    session.execute(delete(AccessLogEntry).where(AccessLogEntry.seq == 3))


def _tamper_reorder(session) -> None:
    # swap the content of entries 2 and 3, keeping their sequence numbers
    rows = {
        r.seq: r
        for r in session.execute(
            select(AccessLogEntry).where(AccessLogEntry.seq.in_([2, 3]))
        ).scalars()
    }
    for column in ("reason_data", "customer_id", "prev_hash", "leaf_hash", "created_at"):
        a, b = getattr(rows[2], column), getattr(rows[3], column)
        setattr(rows[2], column, b)
        setattr(rows[3], column, a)


def _tamper_truncate(session) -> None:
    session.execute(delete(AccessLogEntry).where(AccessLogEntry.seq == 5))


def _tamper_rehash(session) -> None:
    # a careful forger recomputes the altered entry's own hash: the next link still breaks
    row = session.get(AccessLogEntry, 3)
    row.reason_data = Reason("text", {"text": "forged"}).to_json()
    row.leaf_hash = leaf_hash(canonical_entry(row))


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        (_tamper_alter, 3),
        (_tamper_remove, 3),
        (_tamper_reorder, 2),
        (_tamper_truncate, 5),
        (_tamper_rehash, 4),
    ],
    ids=["altered", "removed", "reordered", "truncated", "rehashed"],
)
def test_tampering_is_detected_and_named(inst, base_config, monkeypatch, tamper, first_bad) -> None:
    fill(inst, 6)
    with inst.sessions() as session:
        tamper(session)
        session.commit()
    with inst.sessions() as session:
        result = verify(session, batch=2)
    assert not result.ok
    assert result.first_bad_seq == first_bad
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(base_config.instance_path))
    monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", base_config.database_url)
    outcome = CliRunner().invoke(main, ["audit", "verify"])
    assert outcome.exit_code == 1
    assert f"BROKEN at entry {first_bad}" in outcome.output


def test_cli_verify_passes_on_intact_log(inst, base_config, monkeypatch) -> None:
    fill(inst, 3)
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(base_config.instance_path))
    monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", base_config.database_url)
    outcome = CliRunner().invoke(main, ["audit", "verify", "--json"])
    assert outcome.exit_code == 0, outcome.output
    assert '"ok": true' in outcome.output
    assert '"size": 3' in outcome.output


def _append_many(config: Settings, worker: int, count: int) -> None:
    inst = open_instance(config)
    try:
        for number in range(count):
            with inst.sessions() as session:
                append(
                    session,
                    LogEvent(
                        Actor.system(f"worker-{worker}"), "read", None, reason=f"{worker}:{number}"
                    ),
                )
                session.commit()
    finally:
        inst.close()


def test_concurrent_appends_from_several_processes(inst, base_config) -> None:
    workers, each = 4, 40
    context = multiprocessing.get_context("spawn")
    config = base_config
    processes = [
        context.Process(target=_append_many, args=(config, w, each)) for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    with inst.sessions() as session:
        result = verify(session)
        stored = session.execute(select(AccessLogEntry.reason_data)).scalars()
        reasons = {render(data) for data in stored}
    assert result.ok, result.problem
    assert result.size == workers * each
    assert reasons == {f"{w}:{n}" for w in range(workers) for n in range(each)}


def test_member_sets_are_committed_to_by_the_hash(inst) -> None:
    from pyroaring import BitMap

    with inst.sessions() as session:
        append(
            session,
            LogEvent(
                Actor.system("test"),
                "count",
                None,
                reason="a count",
                members=BitMap([1, 5, 9]).serialize(),
            ),
        )
        append(session, LogEvent(Actor.system("test"), "read", "c", reason="after"))
        session.commit()
    with inst.sessions() as session:
        assert verify(session).ok
        session.execute(
            update(AccessLogEntry)
            .where(AccessLogEntry.seq == 0)
            .values(members=BitMap([1, 5]).serialize())
        )
        session.commit()
    with inst.sessions() as session:
        result = verify(session)
    assert not result.ok
    assert result.first_bad_seq == 0
