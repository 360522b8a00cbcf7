"""Append-only access log, hash-chained in a form an RFC 9162 Merkle tree adopts as is.

Each entry's canonical form (sorted-key JSON, bytes base64) includes ``prev``, the leaf
hash of the entry before it. Its leaf hash is ``SHA-256(0x00 || canonical)``, the RFC 9162
§2.1.1 leaf hash, so the chain links are leaves: a Merkle tree over ``leaf_hash`` in
``seq`` order needs no rewriting of history. Personal content goes in ``detail``,
encrypted under the customer's DEK; the hash commits to the ciphertext, so crypto-shredding
a customer keeps the log verifiable.

Appends lock the single ``log_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
already holds its write lock from ``BEGIN IMMEDIATE``), so concurrent writers line up and
no sequence number or link is lost. The append happens in the caller's transaction: the
access and its entry commit or roll back together.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason, render
from infomediary.models import AccessLogEntry, LogHead, LogNode, utcnow
from infomediary.tlog import merkle

ENTRY_VERSION = 1
GENESIS = bytes(32)
HEAD_ID = 1


class ActorType(StrEnum):
    CUSTOMER = "customer"
    SYSTEM = "system"
    OPERATOR = "operator"
    SUPPLIER = "supplier"
    CONNECTOR = "connector"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Actor:
    type: ActorType
    id: str

    @classmethod
    def system(cls, name: str = "infomediary") -> Actor:
        return cls(ActorType.SYSTEM, name)

    @classmethod
    def customer(cls, customer_id: str) -> Actor:
        return cls(ActorType.CUSTOMER, customer_id)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """What happened; the log adds time, sequence number and hashes."""

    actor: Actor
    action: str
    customer_id: str | None
    categories: frozenset[str] = frozenset()
    purpose: str = "service"
    allowed: bool = True
    reason: str | Reason = ""
    request_id: str = "-"
    detail: bytes | None = field(default=None, repr=False)
    members: bytes | None = field(default=None, repr=False)


REASON_LENGTH = 255


def as_denied(event: LogEvent) -> LogEvent:
    """``event`` as a refused access; a reason given as a sentence is cut to its column."""
    reason = event.reason
    return replace(
        event,
        allowed=False,
        reason=reason[:REASON_LENGTH] if isinstance(reason, str) else reason,
    )


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_entry(entry: AccessLogEntry) -> bytes:
    """The bytes a leaf hash commits to. Changing this breaks every existing log."""
    body: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "seq": entry.seq,
        "time": _format_time(entry.created_at),
        "actor": [entry.actor_type, entry.actor_id],
        "customer": entry.customer_id,
        "action": entry.action,
        "categories": entry.categories,
        "purpose": entry.purpose,
        "outcome": entry.outcome,
        "reason": entry.reason,
        "request": entry.request_id,
        "detail": base64.b64encode(entry.detail).decode() if entry.detail is not None else None,
        "prev": base64.b64encode(entry.prev_hash).decode(),
    }
    if entry.members is not None:  # absent, not null, so older entries keep their form
        body["members_sha256"] = hashlib.sha256(entry.members).hexdigest()
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def leaf_hash(canonical: bytes) -> bytes:
    """RFC 9162 §2.1.1: MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + canonical).digest()


def ensure_head(session: Session) -> None:
    """Create the head row of an empty log (idempotent; used by ``init`` and tests)."""
    if session.get(LogHead, HEAD_ID) is None:
        session.add(LogHead(id=HEAD_ID, size=0, last_hash=GENESIS))
        session.flush()


def _lock_head(session: Session) -> LogHead:
    head = session.execute(
        select(LogHead).where(LogHead.id == HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        raise RuntimeError("the access log has no head row: run `infomediary init`")
    return head


def append(session: Session, event: LogEvent, *, at: datetime | None = None) -> AccessLogEntry:
    """Append one entry in the caller's transaction; the caller commits."""
    head = _lock_head(session)
    entry = AccessLogEntry(
        seq=head.size,
        created_at=at or utcnow(),
        actor_type=str(event.actor.type),
        actor_id=event.actor.id,
        customer_id=event.customer_id,
        action=event.action,
        categories=",".join(sorted(event.categories)),
        purpose=event.purpose,
        outcome="allowed" if event.allowed else "denied",
        reason=_text(event.reason)[:255],
        request_id=event.request_id,
        detail=event.detail,
        members=event.members,
        prev_hash=head.last_hash,
    )
    entry.leaf_hash = leaf_hash(canonical_entry(entry))
    frontier, completed = merkle.append_leaf(
        _split(head.frontier or b""), head.size, entry.leaf_hash
    )
    head.size += 1
    head.last_hash = entry.leaf_hash
    head.frontier = b"".join(frontier)
    session.add(entry)
    if completed:
        session.add_all(LogNode(level=lv, idx=ix, hash=node) for lv, ix, node in completed)
    session.flush()
    return entry


def _text(reason: str | Reason) -> str:
    return reason if isinstance(reason, str) else render(reason.to_json())


def _split(joined: bytes) -> list[bytes]:
    return [joined[i : i + merkle.HASH_SIZE] for i in range(0, len(joined), merkle.HASH_SIZE)]


class StoredTree:
    """The log's Merkle tree as the database stores it: leaves are the entries' leaf hashes,
    interior perfect subtrees are ``log_nodes``; a proof reads O(log n) rows."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def perfect_hash(self, level: int, index: int) -> bytes:
        if level == 0:
            found = self._session.execute(
                select(AccessLogEntry.leaf_hash).where(AccessLogEntry.seq == index)
            ).scalar_one_or_none()
        else:
            found = self._session.execute(
                select(LogNode.hash).where(LogNode.level == level, LogNode.idx == index)
            ).scalar_one_or_none()
        if found is None:
            raise merkle.ProofError(f"the log holds no subtree ({level}, {index})")
        return bytes(found)

    def range_hash(self, start: int, end: int) -> bytes:
        return merkle.range_hash_from(self, start, end)


def tree_size(session: Session) -> int:
    head = session.get(LogHead, HEAD_ID)
    return 0 if head is None else int(head.size)


def current_root(session: Session) -> tuple[int, bytes]:
    """The log's size and Merkle root, from the head's right edge."""
    head = session.get(LogHead, HEAD_ID)
    if head is None:
        return 0, merkle.EMPTY_ROOT
    return int(head.size), merkle.frontier_root(_split(head.frontier or b""))


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    size: int
    first_bad_seq: int | None = None
    problem: str = ""


def _entries(session: Session, batch: int) -> Iterator[AccessLogEntry]:
    after = -1
    while True:
        rows = (
            session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.seq > after)
                .order_by(AccessLogEntry.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        after = rows[-1].seq
        session.expunge_all()


def verify(session: Session, *, batch: int = 5000) -> VerifyResult:
    """Recompute every leaf hash and link; name the first entry that does not fit."""
    head = session.get(LogHead, HEAD_ID)
    expected_seq = 0
    prev = GENESIS
    for entry in _entries(session, batch):
        if entry.seq != expected_seq:
            return VerifyResult(
                False,
                expected_seq,
                expected_seq,
                f"entry {expected_seq} is missing (next present is {entry.seq})",
            )
        if entry.prev_hash != prev:
            return VerifyResult(
                False,
                expected_seq,
                entry.seq,
                f"entry {entry.seq} does not link to entry {entry.seq - 1} (removed or reordered)",
            )
        if leaf_hash(canonical_entry(entry)) != entry.leaf_hash:
            return VerifyResult(
                False,
                expected_seq,
                entry.seq,
                f"entry {entry.seq} was altered after it was written",
            )
        prev = entry.leaf_hash
        expected_seq += 1
    if head is None:
        if expected_seq == 0:
            return VerifyResult(True, 0)
        return VerifyResult(False, expected_seq, None, "the log head is missing")
    if head.size != expected_seq or head.last_hash != prev:
        return VerifyResult(
            False,
            expected_seq,
            min(head.size, expected_seq),
            f"the log head records {head.size} entries but {expected_seq} chain up to it "
            "(entries were removed from the end, or the head was altered)",
        )
    return VerifyResult(True, expected_seq)
