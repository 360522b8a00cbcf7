"""Entries of format 2 as stored: what they commit to instead of identifiers and personal
content, how each commitment opens, and that moving or altering any of it is caught."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pyroaring import BitMap
from sqlalchemy import select, update

from infomediary.audit.log import (
    GENESIS,
    HEAD_ID,
    Actor,
    ActorType,
    LogEvent,
    append,
    canonical_v1,
    leaf_hash,
    log_keys,
    verify,
)
from infomediary.audit.members import bucket_count, member_tree
from infomediary.audit.reasons import Reason
from infomediary.models import AccessLogEntry, LogHead, LogNode
from infomediary.services.customer_keys import (
    SALT,
    customer_key,
    open_detail,
    open_detail_bytes,
    seal_detail,
)
from infomediary.tlog import entry as entry_v2
from infomediary.tlog import merkle
from tests.factories import make_customer

SUPPLIER = Actor(ActorType.SUPPLIER, "sup-1")


def entries(session) -> list[AccessLogEntry]:
    return list(session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars())


def test_an_entry_commits_to_no_raw_id_and_its_commitment_opens_for_its_customer(inst) -> None:
    customer_id = make_customer(inst)
    with inst.sessions() as session:
        key = customer_key(session, inst, customer_id)
        row = append(
            session,
            LogEvent(
                SUPPLIER,
                "read",
                customer_id,
                frozenset({"identity"}),
                reason=Reason("text", {"text": "policy allows"}),
                detail=seal_detail(inst, key, {"fields": ["name"]}),
            ),
        )
        session.commit()
        since = row.created_at - datetime(1970, 1, 1, tzinfo=UTC)
        assert row.reason_data is not None
        assert row.detail is not None
        canonical = entry_v2.canonical(
            row.seq,
            since.days * 86_400_000_000 + since.seconds * 1_000_000 + since.microseconds,
            "supplier",
            "sup-1",
            row.customer_commitment,
            "read",
            "identity",
            "service",
            "allowed",
            row.reason_data,
            "-",
            row.detail_hash,
            None,
            row.prev_hash,
        )
        assert row.version == 2
        assert row.leaf_hash == merkle.leaf_hash(canonical)
        assert customer_id.encode() not in canonical
        keys = log_keys(session)
        assert keys is not None
        opening = keys.customer_opening(row.seq, customer_id)
        assert row.customer_commitment == entry_v2.customer_commitment(opening, customer_id)
        assert json.loads(row.reason_data) == {"code": "text", "params": {"text": "policy allows"}}
        plaintext = open_detail_bytes(inst, key, row.detail)
        assert plaintext is not None
        assert row.detail_hash == entry_v2.detail_hash(plaintext)
        assert SALT in json.loads(plaintext)
        assert open_detail(inst, key, row.detail) == {"fields": ["name"]}


def test_two_entries_of_one_customer_cannot_be_linked_by_their_commitments(inst) -> None:
    customer_id = make_customer(inst)
    with inst.sessions() as session:
        first = append(session, LogEvent(SUPPLIER, "read", customer_id))
        second = append(session, LogEvent(SUPPLIER, "read", customer_id))
        session.commit()
        assert first.customer_commitment != second.customer_commitment


def test_a_salt_makes_two_equal_details_hash_apart(inst) -> None:
    customer_id = make_customer(inst)
    with inst.sessions() as session:
        key = customer_key(session, inst, customer_id)
        one, two = (seal_detail(inst, key, {"same": 1}) for _ in range(2))
    assert one.digest != two.digest


def test_a_customer_acting_is_named_only_by_the_entrys_commitment(inst) -> None:
    customer_id = make_customer(inst)
    with inst.sessions() as session:
        row = append(session, LogEvent(Actor.customer(customer_id), "update", None))
        session.commit()
        assert row.customer_id == customer_id
        assert row.customer_commitment is not None
        with pytest.raises(ValueError, match="about that customer"):
            append(session, LogEvent(Actor.customer(customer_id), "update", "someone-else"))


def test_an_entry_moved_to_another_customer_is_caught(inst) -> None:
    one, two = make_customer(inst), make_customer(inst)
    with inst.sessions() as session:
        moved = [append(session, LogEvent(SUPPLIER, "read", one)).seq for _ in range(3)][1]
        session.commit()
    with inst.sessions() as session:
        assert verify(session).ok
        session.execute(
            update(AccessLogEntry).where(AccessLogEntry.seq == moved).values(customer_id=two)
        )
        session.commit()
    with inst.sessions() as session:
        result = verify(session)
    assert not result.ok
    assert result.first_bad_seq == moved
    assert result.problem == f"entry {moved} was moved to another customer after it was written"


def test_an_aggregate_entry_commits_to_its_members_tree_and_each_member_proves_it(inst) -> None:
    members = BitMap([3, 17, 18, 250, 9_999])
    with inst.sessions() as session:
        row = append(session, LogEvent(SUPPLIER, "count", None, members=members.serialize()))
        session.commit()
        keys = log_keys(session)
        assert keys is not None
        assert row.members is not None
        tree = member_tree(keys.member_key(row.seq), row.members)
        assert row.member_root == tree.root
        assert len(tree.leaves) == bucket_count(len(members)) == 1
        for ordinal in members:
            proof = tree.proof(ordinal)
            assert proof is not None
            entry_v2.verify_membership(
                proof.record,
                proof.bucket,
                proof.leaf_index,
                proof.size,
                list(proof.nodes),
                row.member_root,
            )
            assert ordinal.to_bytes(16, "big") not in proof.bucket
            assert proof.record == entry_v2.member_record(proof.opening, ordinal)
        assert tree.proof(4) is None


def test_a_member_tree_is_padded_to_a_power_of_two_of_buckets_in_hash_order() -> None:
    members = BitMap(range(0, 3 * 64 * 5, 5))  # 192 members: three buckets, padded to four
    tree = member_tree(bytes(16), members.serialize())
    assert len(tree.leaves) == 4
    assert list(tree.leaves) == sorted(tree.leaves)
    records = {b[i : i + 16] for b in tree.buckets for i in range(0, len(b), 16)}
    assert len(records) == 4 * 64  # padding records are distinct from members' and each other
    for ordinal in (0, 5, 955):
        proof = tree.proof(ordinal)
        assert proof is not None
        entry_v2.verify_membership(
            proof.record, proof.bucket, proof.leaf_index, proof.size, list(proof.nodes), tree.root
        )
    assert member_tree(bytes(16), members.serialize()).root == tree.root
    assert member_tree(bytes([1]) * 16, members.serialize()).root != tree.root
    assert bucket_count(0) == 1
    assert bucket_count(65) == 2
    assert bucket_count(64 * 5) == 8


def test_members_altered_after_the_entry_are_caught(inst) -> None:
    with inst.sessions() as session:
        append(session, LogEvent(SUPPLIER, "count", None, members=BitMap([1, 2]).serialize()))
        session.commit()
    with inst.sessions() as session:
        session.execute(
            update(AccessLogEntry)
            .where(AccessLogEntry.seq == 0)
            .values(members=BitMap([1, 2, 3]).serialize())
        )
        session.commit()
    with inst.sessions() as session:
        result = verify(session)
    assert not result.ok
    assert result.problem == "entry 0's members were altered after it was written"


def test_entries_of_format_1_still_verify_beside_format_2(inst) -> None:
    """A log written before format 2: its entries keep their JSON form."""
    with inst.sessions() as session:
        old = AccessLogEntry(
            seq=0,
            created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            actor_type="supplier",
            actor_id="sup-1",
            customer_id="cust-old",
            action="read",
            categories="identity",
            purpose="service",
            outcome="allowed",
            reason="policy allows",
            request_id="r",
            detail=b"\x01sealed",
            members=None,
            prev_hash=GENESIS,
        )
        old.leaf_hash = leaf_hash(canonical_v1(old))
        session.add(old)
        head = session.get(LogHead, HEAD_ID)
        head.size, head.last_hash, head.frontier = 1, old.leaf_hash, old.leaf_hash
        session.commit()
    with inst.sessions() as session:
        append(session, LogEvent(SUPPLIER, "read", "cust-new"))
        session.commit()
    with inst.sessions() as session:
        assert verify(session).ok
        first, second = entries(session)
        assert (first.version, second.version) == (None, 2)
        assert session.execute(select(LogNode)).scalars().one().level == 1
        session.execute(
            update(AccessLogEntry).where(AccessLogEntry.seq == 0).values(reason="forged")
        )
        session.commit()
    with inst.sessions() as session:
        result = verify(session)
    assert not result.ok
    assert result.first_bad_seq == 0


def test_a_session_without_the_logs_keys_cannot_write_a_customers_entry(inst) -> None:
    from sqlalchemy.orm import Session

    with Session(inst.engine) as bare:
        with pytest.raises(RuntimeError, match="no log keys"):
            append(bare, LogEvent(SUPPLIER, "read", "cust-1"))
        append(bare, LogEvent(SUPPLIER, "read", None))  # names no one: no key needed
        bare.rollback()


def test_a_counts_detail_altered_after_the_entry_is_caught(inst) -> None:
    criteria = json.dumps({"epsilon": 0.1, "released": [120]}).encode()
    with inst.sessions() as session:
        row = append(
            session,
            LogEvent(SUPPLIER, "count", None, detail=criteria, members=BitMap([1]).serialize()),
        )
        session.commit()
        seq = row.seq
    with inst.sessions() as session:
        assert verify(session).ok
        session.execute(
            update(AccessLogEntry)
            .where(AccessLogEntry.seq == seq)
            .values(detail=json.dumps({"epsilon": 0.01, "released": [99]}).encode())
        )
        session.commit()
    with inst.sessions() as session:
        result = verify(session)
    assert not result.ok
    assert result.problem == f"entry {seq}'s detail was altered after it was written"


def test_a_detail_swapped_between_a_customers_entries_is_not_shown(inst) -> None:
    customer_id = make_customer(inst)
    with inst.sessions() as session:
        key = customer_key(session, inst, customer_id)
        one = append(
            session,
            LogEvent(SUPPLIER, "read", customer_id, detail=seal_detail(inst, key, {"n": 1})),
        )
        two = append(
            session,
            LogEvent(SUPPLIER, "read", customer_id, detail=seal_detail(inst, key, {"n": 2})),
        )
        session.commit()
        assert open_detail(inst, key, one.detail, one.detail_hash) == {"n": 1}
        assert open_detail(inst, key, two.detail, one.detail_hash) is None
