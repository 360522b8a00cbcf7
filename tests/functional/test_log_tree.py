"""The access log's Merkle tree as stored: every append keeps the interior nodes and the right
edge, proofs read them and verify against the root, and the migration builds both for a log
that was already there."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from infomediary.audit.log import Actor, LogEvent, StoredTree, append, current_root
from infomediary.instance import Instance, alembic_config
from infomediary.models import AccessLogEntry, LogNode
from infomediary.tlog.merkle import (
    MemoryTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.functional.test_migrations import scratch_engine  # noqa: F401 - a fixture

ACTOR = Actor.system("test")


def grow(inst: Instance, entries: int) -> None:
    with inst.sessions() as session:
        for n in range(entries):
            append(
                session, LogEvent(actor=ACTOR, action="read", customer_id=None, reason=f"entry {n}")
            )
        session.commit()


def leaves(session) -> list[bytes]:
    return [
        bytes(h)
        for h in session.execute(
            select(AccessLogEntry.leaf_hash).order_by(AccessLogEntry.seq)
        ).scalars()
    ]


def test_the_stored_tree_is_the_tree_of_the_leaves(inst: Instance) -> None:
    grow(inst, 37)
    with inst.sessions() as session:
        held = leaves(session)
        reference = MemoryTree(held)
        size, root = current_root(session)
        assert (size, root) == (len(held), reference.root())
        stored = {
            (row.level, row.idx): bytes(row.hash)
            for row in session.execute(select(LogNode)).scalars()
        }
        expected = {
            (level, index): node
            for level, row in enumerate(reference.levels)
            if level
            for index, node in enumerate(row)
        }
        assert stored == expected
        tree = StoredTree(session)
        for index in (0, 1, size // 2, size - 1):
            proof = inclusion_proof(tree, index, size)
            assert proof == inclusion_proof(reference, index, size)
            verify_inclusion(index, size, held[index], proof, root)
        for first in (1, 8, 20, size):
            proof = consistency_proof(tree, first, size)
            verify_consistency(first, size, reference.root(first), root, proof)


def test_the_migration_builds_the_tree_of_a_log_already_there(scratch_engine: Engine) -> None:  # noqa: F811
    config = alembic_config(scratch_engine)
    command.upgrade(config, "0015")
    hashes = [bytes([n]) * 32 for n in range(11)]
    with scratch_engine.begin() as conn:
        for seq, leaf in enumerate(hashes):
            conn.execute(
                text(
                    "INSERT INTO access_log (seq, created_at, actor_type, actor_id, action,"
                    " categories, purpose, outcome, reason, request_id, prev_hash, leaf_hash)"
                    " VALUES (:seq, CURRENT_TIMESTAMP, 'system', 'test', 'read', '', 'service',"
                    " 'allowed', 'r', '-', :prev, :leaf)"
                ),
                {"seq": seq, "prev": bytes(32), "leaf": leaf},
            )
        conn.execute(
            text("INSERT INTO log_head (id, size, last_hash) VALUES (1, :size, :last)"),
            {"size": len(hashes), "last": hashes[-1]},
        )
    command.upgrade(config, "0016")
    reference = MemoryTree(hashes)
    with scratch_engine.connect() as conn:
        nodes = {
            (level, idx): bytes(node)
            for level, idx, node in conn.execute(text("SELECT level, idx, hash FROM log_nodes"))
        }
        frontier = bytes(conn.execute(text("SELECT frontier FROM log_head")).scalar_one())
    assert nodes == {
        (level, index): node
        for level, row in enumerate(reference.levels)
        if level
        for index, node in enumerate(row)
    }
    assert frontier == reference.levels[3][0] + reference.levels[1][4] + hashes[10]
    command.downgrade(config, "0015")


def test_the_proof_endpoints_answer_proofs_that_verify(inst: Instance, client) -> None:
    import base64

    grow(inst, 21)
    with inst.sessions() as session:
        size, root = current_root(session)
        held = leaves(session)
        older = MemoryTree(held).root(5)
    answer = client.get(f"/api/v1/log/proof/inclusion?index=7&size={size}")
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["index"], body["size"]) == (7, size)
    verify_inclusion(7, size, held[7], [base64.b64decode(p) for p in body["proof"]], root)
    answer = client.get(f"/api/v1/log/proof/consistency?from=5&to={size}")
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["from"], body["to"]) == (5, size)
    verify_consistency(5, size, older, root, [base64.b64decode(p) for p in body["proof"]])
    with inst.sessions() as session:
        assert current_root(session) == (size, root)  # a GET writes nothing, not even a log entry


def test_bad_proof_requests_are_400s_naming_the_parameter(inst: Instance, client) -> None:
    grow(inst, 3)
    with inst.sessions() as session:
        size, _ = current_root(session)
    for query, name in (
        ("index=-1&size=2", "index"),
        ("index=x&size=2", "index"),
        (f"index=0&size={size + 1}", "size"),
        ("index=2&size=2", "index"),
        ("index=0&size=99999999999999999999999", "size"),
        ("size=2", "index"),
        ("index=0", "size"),
        ("index=1e3&size=2", "index"),
    ):
        answer = client.get(f"/api/v1/log/proof/inclusion?{query}")
        assert answer.status_code == 400, query
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.get_json()["code"] == "invalid_proof_request"
        assert name in answer.get_json()["errors"], query
    for query in ("from=0&to=2", f"from=1&to={size + 1}", "from=3&to=2", "from=&to=", "to=1"):
        answer = client.get(f"/api/v1/log/proof/consistency?{query}")
        assert answer.status_code == 400, query
        assert answer.get_json()["code"] == "invalid_proof_request"


class CountingTree(StoredTree):
    """The stored tree, counting its reads of the database (each is two statements at most:
    the leaves, then the nodes)."""

    loads = 0

    def _load(self, keys: set[tuple[int, int]]) -> None:
        CountingTree.loads += 1
        super()._load(keys)


def test_a_proof_reads_its_subtrees_in_one_batch(inst: Instance) -> None:
    grow(inst, 100)
    with inst.sessions() as session:
        held = leaves(session)
        reference = MemoryTree(held)
        for index, size in ((0, 100), (57, 100), (99, 100), (3, 64), (40, 77)):
            CountingTree.loads = 0
            proof = CountingTree(session).inclusion_proof(index, size)
            assert CountingTree.loads == 1
            assert proof == inclusion_proof(reference, index, size)
        for first, second in ((1, 100), (37, 100), (64, 77), (99, 100)):
            CountingTree.loads = 0
            proof = CountingTree(session).consistency_proof(first, second)
            assert CountingTree.loads == 1
            assert proof == consistency_proof(reference, first, second)
        tree = CountingTree(session)
        with pytest.raises(ProofError, match="no subtree"):
            tree.perfect_hash(0, 100)  # past the log: named, not a crash
