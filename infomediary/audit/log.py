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

New entries are of format 2 (:mod:`infomediary.tlog.entry`): the leaf commits to a keyed
commitment of the customer id, the salted hash of the detail's plaintext, a structured
reason and an aggregate entry's member tree root, computed with the log's keys, which the
session carries (``session.info[LOG_KEYS]``, set by the instance's session factory). Entries
of format 1 (``version`` NULL) keep their form and are verified as they were written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from hashlib import sha256
from typing import Any, cast

from sqlalchemy import Table, bindparam, column, select, table
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from infomediary import metrics
from infomediary.audit.members import member_tree
from infomediary.audit.reasons import Reason, reason_of
from infomediary.models import AccessLogEntry, LogHead, LogNode, utcnow
from infomediary.tlog import entry as entry_v2
from infomediary.tlog import merkle

ENTRY_VERSION = 1
#: The key of :class:`LogKeys` in ``Session.info``.
LOG_KEYS = "infomediary.log_keys"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
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
class Sealed:
    """An entry's detail sealed under the customer's key, with the hash of its plaintext
    (salt included) that the entry commits to."""

    blob: bytes = field(repr=False)
    digest: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class LogKeys:
    """The log's commitment key (from the keyring): customer openings and member keys."""

    commitment: bytes = field(repr=False)

    def customer_opening(self, seq: int, customer_id: str) -> bytes:
        message = b"customer" + seq.to_bytes(8, "big") + customer_id.encode()
        return hmac.digest(self.commitment, message, "sha256")

    def customer_commitment(self, seq: int, customer_id: str) -> bytes:
        return entry_v2.customer_commitment(self.customer_opening(seq, customer_id), customer_id)

    def member_key(self, seq: int) -> bytes:
        return hmac.digest(self.commitment, b"members" + seq.to_bytes(8, "big"), "sha256")[:16]


def log_keys(session: Session) -> LogKeys | None:
    keys = session.info.get(LOG_KEYS)
    return keys if isinstance(keys, LogKeys) else None


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
    #: Sealed personal detail, or the plaintext of a detail that names no one (a count's
    #: criteria), which the entry keeps as is and commits to by its hash.
    detail: Sealed | bytes | None = field(default=None, repr=False)
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


def time_us(moment: datetime) -> int:
    """Microseconds since 1970 UTC, exactly (what format 2 commits to for the time)."""
    return (moment.astimezone(UTC) - _EPOCH) // _MICROSECOND


def committed_actor_id(actor_type: str, actor_id: str, customer_id: str | None) -> str:
    """Format 2 names a customer acting on their own data by the entry's commitment alone."""
    return "" if actor_type == ActorType.CUSTOMER and actor_id == customer_id else actor_id


def canonical_v2(entry: Any) -> bytes:
    """The format-2 bytes of a stored entry (a model or a row with the same names)."""
    return entry_v2.canonical(
        entry.seq,
        time_us(entry.created_at),
        entry.actor_type,
        committed_actor_id(entry.actor_type, entry.actor_id, entry.customer_id),
        entry.customer_commitment,
        entry.action,
        entry.categories,
        entry.purpose,
        entry.outcome,
        entry.reason_data or "",
        entry.request_id,
        entry.detail_hash,
        entry.member_root,
        entry.prev_hash,
    )


def canonical_entry(entry: Any) -> bytes:
    """The bytes a leaf hash commits to, in the entry's own format."""
    if entry.version == entry_v2.VERSION:
        return canonical_v2(entry)
    if entry.version is not None:
        raise ValueError(f"entry {entry.seq} has an unknown format {entry.version}")
    return canonical_v1(entry)


def canonical_v1(entry: Any) -> bytes:
    """The bytes a format-1 leaf commits to. Changing this breaks every existing log."""
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


_HEAD = cast(Table, LogHead.__table__)
_LOCK_HEAD = (
    select(_HEAD.c.size, _HEAD.c.last_hash, _HEAD.c.frontier)
    .where(_HEAD.c.id == HEAD_ID)
    .with_for_update()
)
_INSERT_ENTRY = cast(Table, AccessLogEntry.__table__).insert()
_INSERT_NODES = cast(Table, LogNode.__table__).insert()
_UPDATE_HEAD = (
    _HEAD.update()
    .where(_HEAD.c.id == HEAD_ID)
    .values(
        size=bindparam("new_size"),
        last_hash=bindparam("new_last_hash"),
        frontier=bindparam("new_frontier"),
    )
)
#: The entry's columns, in the order the insert binds them.
_ENTRY_COLUMNS = tuple(c.key for c in AccessLogEntry.__table__.columns)


def _lock_head(session: Session) -> tuple[int, bytes, bytes]:
    """The head's size, last hash and frontier, locked until the transaction ends (on SQLite
    the transaction's ``BEGIN IMMEDIATE`` already holds the write lock)."""
    head = session.connection().execute(_LOCK_HEAD).one_or_none()
    if head is None:
        raise RuntimeError("the access log has no head row: run `infomediary init`")
    return int(head.size), bytes(head.last_hash), bytes(head.frontier or b"")


def append(session: Session, event: LogEvent, *, at: datetime | None = None) -> AccessLogEntry:
    """Append one format-2 entry in the caller's transaction; the caller commits.

    The entry, its completed tree nodes and the head are written by three Core statements
    (no unit-of-work flush): the head is read under its lock and written back in the same
    transaction, so appends stay serialised and gapless. The returned entry holds every
    column, detached from the session (nothing more is written through it)."""
    customer_id = event.customer_id
    if event.actor.type == ActorType.CUSTOMER:
        if customer_id is None:
            customer_id = event.actor.id
        elif customer_id != event.actor.id:
            raise ValueError("a customer's entry is about that customer")
    keys = log_keys(session)
    if keys is None and (customer_id is not None or event.members is not None):
        raise RuntimeError("this session carries no log keys: open it from the instance")
    reason_json = reason_of(event.reason).to_json()
    size, last_hash, frontier_bytes = _lock_head(session)
    seq = size
    entry = AccessLogEntry(
        seq=seq,
        created_at=at or utcnow(),
        actor_type=str(event.actor.type),
        actor_id=event.actor.id,
        customer_id=customer_id,
        action=event.action,
        categories=",".join(sorted(event.categories)),
        purpose=event.purpose,
        outcome="allowed" if event.allowed else "denied",
        reason="",  # format 2 commits to reason_data; the sentence is rendered when shown
        reason_data=reason_json,
        request_id=event.request_id,
        detail=_blob(event.detail),
        detail_hash=_digest(event.detail),
        members=event.members,
        prev_hash=last_hash,
        version=entry_v2.VERSION,
        customer_commitment=(
            keys.customer_commitment(seq, customer_id)
            if keys is not None and customer_id is not None
            else None
        ),
        member_root=(
            member_tree(keys.member_key(seq), event.members).root
            if keys is not None and event.members is not None
            else None
        ),
    )
    entry.leaf_hash = leaf_hash(canonical_v2(entry))
    frontier, completed = merkle.append_leaf(_split(frontier_bytes), size, entry.leaf_hash)
    connection = session.connection()  # Core statements: no ORM execution around them
    connection.execute(_INSERT_ENTRY, {name: getattr(entry, name) for name in _ENTRY_COLUMNS})
    if completed:
        connection.execute(
            _INSERT_NODES, [{"level": lv, "idx": ix, "hash": node} for lv, ix, node in completed]
        )
    new_frontier = b"".join(frontier)
    connection.execute(
        _UPDATE_HEAD,
        {"new_size": size + 1, "new_last_hash": entry.leaf_hash, "new_frontier": new_frontier},
    )
    _keep_loaded_head(session, size + 1, entry.leaf_hash, new_frontier)
    metrics.ACCESS_LOG_APPENDS.labels(entry.outcome).inc()
    return entry


def _keep_loaded_head(session: Session, size: int, last_hash: bytes, frontier: bytes) -> None:
    """A head this session loaded earlier (``tree_size``, ``current_root``) shows the append."""
    loaded = session.identity_map.get(Session.identity_key(LogHead, HEAD_ID))
    if loaded is not None:
        set_committed_value(loaded, "size", size)
        set_committed_value(loaded, "last_hash", last_hash)
        set_committed_value(loaded, "frontier", frontier)


def _blob(detail: Sealed | bytes | None) -> bytes | None:
    return detail.blob if isinstance(detail, Sealed) else detail


def _digest(detail: Sealed | bytes | None) -> bytes | None:
    if detail is None:
        return None
    return detail.digest if isinstance(detail, Sealed) else entry_v2.detail_hash(detail)


def _split(joined: bytes) -> list[bytes]:
    return [joined[i : i + merkle.HASH_SIZE] for i in range(0, len(joined), merkle.HASH_SIZE)]


def _numbers(values: Iterable[int]) -> str:
    return ",".join(str(int(value)) for value in values)  # integers only: nothing to escape


def _nodes_sql(keys: list[tuple[int, int]]) -> str:
    """The nodes of ``keys``, one ``level = L AND idx IN (...)`` per level, so that both
    databases read them through the primary key (SQLite scans the whole table for a row-value
    IN list). The numbers are written into the statement: building a bound statement of
    this shape costs more than the query."""
    by_level: dict[int, list[int]] = {}
    for level, index in keys:
        by_level.setdefault(level, []).append(index)
    where = " OR ".join(
        f"(level = {int(level)} AND idx IN ({_numbers(indexes)}))"
        for level, indexes in sorted(by_level.items())
    )
    return f"SELECT level, idx, hash FROM log_nodes WHERE {where}"  # noqa: S608 - integers


#: Subtrees read per pair of statements (so no statement grows without bound).
_LOAD_CHUNK = 2000


class _Wanted:
    """A stand-in tree that records which perfect subtrees a proof reads: a proof's path
    depends on the index and sizes alone, never on the hashes."""

    def __init__(self) -> None:
        self.keys: set[tuple[int, int]] = set()

    def perfect_hash(self, level: int, index: int) -> bytes:
        self.keys.add((level, index))
        return bytes(merkle.HASH_SIZE)

    def range_hash(self, start: int, end: int) -> bytes:
        return merkle.range_hash_from(self, start, end)


class StoredTree:
    """The log's Merkle tree as the database stores it: leaves are the entries' leaf hashes,
    interior perfect subtrees are ``log_nodes``. :meth:`inclusion_proof` and
    :meth:`consistency_proof` list the O(log n) subtrees a proof needs first and read them in
    two queries (leaves, then nodes); a lone :meth:`perfect_hash` reads one row."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._known: dict[tuple[int, int], bytes] = {}

    def perfect_hash(self, level: int, index: int) -> bytes:
        known = self._known.get((level, index))
        if known is not None:
            return known
        self._load({(level, index)})
        try:
            return self._known[(level, index)]
        except KeyError:
            raise merkle.ProofError(f"the log holds no subtree ({level}, {index})") from None

    def range_hash(self, start: int, end: int) -> bytes:
        return merkle.range_hash_from(self, start, end)

    def _load(self, keys: set[tuple[int, int]]) -> None:
        ordered = sorted(keys)
        # the driver's cursor, in the session's transaction: a proof is two small reads, and
        # the engine's result machinery would cost more than both
        cursor = self._session.connection().connection.cursor()
        try:
            for start in range(0, len(ordered), _LOAD_CHUNK):
                chunk = ordered[start : start + _LOAD_CHUNK]
                leaves = [index for level, index in chunk if level == 0]
                nodes = [key for key in chunk if key[0] > 0]
                if leaves:
                    cursor.execute(
                        f"SELECT seq, leaf_hash FROM access_log WHERE seq IN ({_numbers(leaves)})"  # noqa: S608 - integers
                    )
                    self._known.update(((0, int(s)), bytes(h)) for s, h in cursor.fetchall())
                if nodes:
                    cursor.execute(_nodes_sql(nodes))
                    self._known.update(
                        ((int(lv), int(ix)), bytes(node)) for lv, ix, node in cursor.fetchall()
                    )
        finally:
            cursor.close()

    def _prefetch(self, wanted: _Wanted) -> None:
        self._load(wanted.keys - self._known.keys())

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        wanted = _Wanted()
        merkle.inclusion_proof(wanted, index, size)
        self._prefetch(wanted)
        return merkle.inclusion_proof(self, index, size)

    def inclusion_proofs(self, indexes: Iterable[int], size: int) -> dict[int, list[bytes]]:
        """The inclusion proofs of many leaves against the tree of ``size`` leaves, their
        subtrees (most shared between neighbours) read once, in batches."""
        ordered = sorted(set(indexes))
        wanted = _Wanted()
        for index in ordered:
            merkle.inclusion_proof(wanted, index, size)
        self._prefetch(wanted)
        return {index: merkle.inclusion_proof(self, index, size) for index in ordered}

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        wanted = _Wanted()
        merkle.consistency_proof(wanted, first, second)
        self._prefetch(wanted)
        return merkle.consistency_proof(self, first, second)


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
    root: bytes = merkle.EMPTY_ROOT
    #: Sizes whose roots were compared with an expected one (checkpoints), all agreeing.
    checked: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpectedRoot:
    """A root the log must have at ``size`` (a checkpoint's), and what to call it."""

    size: int
    root: bytes
    label: str


#: The columns ``verify`` reads, in the order of its tuples (raw driver values: no per-row
#: type processing, which costs more than hashing).
_VERIFY_COLUMNS = (
    "seq",
    "created_at",
    "actor_type",
    "actor_id",
    "customer_id",
    "action",
    "categories",
    "purpose",
    "outcome",
    "reason",
    "request_id",
    "detail",
    "members",
    "prev_hash",
    "leaf_hash",
    "version",
    "customer_commitment",
    "detail_hash",
    "member_root",
    "reason_data",
)
_RAW_LOG = table("access_log", *(column(name) for name in _VERIFY_COLUMNS))
_SELECT = (
    select(*_RAW_LOG.columns)
    .where(_RAW_LOG.c.seq > bindparam("after"))
    .order_by(_RAW_LOG.c.seq)
    .limit(bindparam("batch"))
)
(
    _SEQ,
    _TIME,
    _ACTOR_TYPE,
    _ACTOR_ID,
    _CUSTOMER_ID,
    _ACTION,
    _CATEGORIES,
    _PURPOSE,
    _OUTCOME,
    _REASON,
    _REQUEST,
    _DETAIL,
    _MEMBERS,
    _PREV,
    _LEAF,
    _VERSION,
    _COMMITMENT,
    _DETAIL_HASH,
    _MEMBER_ROOT,
    _REASON_DATA,
) = range(len(_VERIFY_COLUMNS))


def _rows(session: Session, batch: int) -> Iterator[Sequence[Any]]:
    after = -1
    while True:
        rows = session.execute(_SELECT, {"after": after, "batch": batch}).all()
        if not rows:
            return
        yield rows
        after = rows[-1][_SEQ]


def _micros(value: datetime | str) -> int:
    """A stored time as microseconds since 1970 (SQLite keeps UTC text, PostgreSQL a time)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


_LEN = struct.Struct(">I").pack
_SEQ_TIME = struct.Struct(">QQ").pack
_NO_HASH = _LEN(0)
_A_HASH = _LEN(merkle.HASH_SIZE)


def _text_field(value: str) -> bytes:
    raw = value.encode()
    return _LEN(len(raw)) + raw


def _leaf_v2(row: Sequence[Any]) -> bytes:
    """The leaf hash of a stored format-2 row: :func:`infomediary.tlog.entry.canonical`,
    written out for the verifier's loop (a test keeps the two equal)."""
    actor_type = row[_ACTOR_TYPE]
    actor_id = row[_ACTOR_ID]
    if actor_type == ActorType.CUSTOMER and actor_id == row[_CUSTOMER_ID]:
        actor_id = ""
    customer, detail, members = row[_COMMITMENT], row[_DETAIL_HASH], row[_MEMBER_ROOT]
    canonical = b"".join(
        (
            entry_v2.MAGIC,
            _SEQ_TIME(row[_SEQ], _micros(row[_TIME])),
            _text_field(actor_type),
            _text_field(actor_id),
            _NO_HASH if customer is None else _A_HASH + customer,
            _text_field(row[_ACTION]),
            _text_field(row[_CATEGORIES]),
            _text_field(row[_PURPOSE]),
            _text_field(row[_OUTCOME]),
            _text_field(row[_REASON_DATA] or ""),
            _text_field(row[_REQUEST]),
            _NO_HASH if detail is None else _A_HASH + detail,
            _NO_HASH if members is None else _A_HASH + members,
            _A_HASH + row[_PREV],
        )
    )
    return sha256(b"\x00" + canonical).digest()


@dataclass(frozen=True, slots=True)
class _StoredV1:
    """A format-1 row with the names :func:`canonical_v1` reads."""

    seq: int
    created_at: datetime
    actor_type: str
    actor_id: str
    customer_id: str | None
    action: str
    categories: str
    purpose: str
    outcome: str
    reason: str
    request_id: str
    detail: bytes | None
    members: bytes | None
    prev_hash: bytes


def _leaf_v1(row: Sequence[Any]) -> bytes:
    moment = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=_micros(row[_TIME]))
    stored = _StoredV1(
        row[_SEQ],
        moment,
        row[_ACTOR_TYPE],
        row[_ACTOR_ID],
        row[_CUSTOMER_ID],
        row[_ACTION],
        row[_CATEGORIES],
        row[_PURPOSE],
        row[_OUTCOME],
        row[_REASON],
        row[_REQUEST],
        _bytes(row[_DETAIL]),
        _bytes(row[_MEMBERS]),
        bytes(row[_PREV]),
    )
    return leaf_hash(canonical_v1(stored))


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _stored_nodes(
    session: Session, wanted: list[tuple[int, int, bytes]]
) -> dict[tuple[int, int], bytes]:
    by_level: dict[int, list[int]] = {}
    for level, index, _ in wanted:
        by_level.setdefault(level, []).append(index)
    found: dict[tuple[int, int], bytes] = {}
    for level, indexes in by_level.items():
        rows = session.execute(
            select(LogNode.idx, LogNode.hash).where(
                LogNode.level == level, LogNode.idx.between(min(indexes), max(indexes))
            )
        )
        found.update(((level, int(idx)), bytes(node)) for idx, node in rows)
    return found


class _Failure(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def _check_entry(row: Sequence[Any], keys: LogKeys | None) -> None:
    seq = row[_SEQ]
    version = row[_VERSION]
    if version == entry_v2.VERSION:
        leaf = _leaf_v2(row)
    elif version is None:
        leaf = _leaf_v1(row)
    else:
        raise _Failure(seq, f"entry {seq} has an unknown format {version}")
    if leaf != row[_LEAF]:
        raise _Failure(seq, f"entry {seq} was altered after it was written")
    if version != entry_v2.VERSION:
        return
    customer_id, commitment = row[_CUSTOMER_ID], row[_COMMITMENT]
    detail, digest = row[_DETAIL], row[_DETAIL_HASH]
    if (detail is None) != (digest is None) or (
        customer_id is None  # a detail naming no one is stored as it is hashed
        and detail is not None
        and entry_v2.detail_hash(bytes(detail)) != digest
    ):
        raise _Failure(seq, f"entry {seq}'s detail was altered after it was written")
    if keys is None:
        return
    if (customer_id is None) != (commitment is None) or (
        customer_id is not None
        and not hmac.compare_digest(keys.customer_commitment(seq, customer_id), commitment)
    ):
        raise _Failure(seq, f"entry {seq} was moved to another customer after it was written")
    members, member_root = row[_MEMBERS], row[_MEMBER_ROOT]
    if members is not None or member_root is not None:
        if members is None or member_root is None:
            raise _Failure(seq, f"entry {seq}'s members were altered after it was written")
        try:
            root = member_tree(keys.member_key(seq), bytes(members)).root
        except (ValueError, OverflowError):
            raise _Failure(seq, f"entry {seq}'s members cannot be read") from None
        if root != member_root:
            raise _Failure(seq, f"entry {seq}'s members were altered after it was written")


def verify(
    session: Session,
    *,
    batch: int = 5000,
    expected: tuple[ExpectedRoot, ...] = (),
) -> VerifyResult:
    """Recompute every leaf hash, link, commitment and member tree, the Merkle tree and its
    stored nodes, and the roots at the ``expected`` sizes; name the first thing that does not
    fit. With the log's keys (the instance's sessions carry them), a format-2 entry's customer
    commitment and member root are checked against its stored customer and members too."""
    keys = log_keys(session)
    head = session.get(LogHead, HEAD_ID)
    want = sorted(expected, key=lambda e: e.size)
    checked: list[int] = []
    stack: list[tuple[int, bytes]] = []  # the right edge: (level, hash), largest first
    pending: list[tuple[int, int, bytes]] = []
    size = 0
    prev = GENESIS
    try:
        while want and want[0].size == 0:  # the empty tree: its root is the hash of nothing
            _check_root(want.pop(0), merkle.EMPTY_ROOT, checked)
        for rows in _rows(session, batch):
            completed: list[tuple[int, int, bytes]] = []
            for row in rows:
                seq = row[_SEQ]
                if seq != size:
                    raise _Failure(size, f"entry {size} is missing (next present is {seq})")
                if row[_PREV] != prev:
                    raise _Failure(
                        seq,
                        f"entry {seq} does not link to entry {seq - 1} (removed or reordered)",
                    )
                _check_entry(row, keys)
                prev = node = bytes(row[_LEAF])
                level, index = 0, size
                while stack and stack[-1][0] == level:  # merkle.append_leaf, inline
                    node = sha256(b"\x01" + stack.pop()[1] + node).digest()
                    level, index = level + 1, index >> 1
                    completed.append((level, index, node))
                stack.append((level, node))
                size += 1
                while want and want[0].size == size:
                    _check_root(want.pop(0), merkle.frontier_root([h for _, h in stack]), checked)
            # a batch's nodes are compared after the next batch's links: an entry altered
            # and rehashed is named by the broken link after it, not by a node above it
            _check_nodes(session, pending)
            pending = completed
            session.expunge_all()
        _check_nodes(session, pending)
        frontier = [node for _, node in stack]
        root = merkle.frontier_root(frontier)
        if want:
            missing = want[0]
            raise _Failure(
                size,
                f"{missing.label} vouches for {missing.size} entries but the log holds {size}: "
                f"entries {size} to {missing.size - 1} were removed",
            )
        if head is None:
            if size == 0:
                return VerifyResult(True, 0, checked=tuple(checked))
            raise _Failure(None, "the log head is missing")
        if head.size != size or head.last_hash != prev:
            raise _Failure(
                min(head.size, size),
                f"the log head records {head.size} entries but {size} chain up to it "
                "(entries were removed from the end, or the head was altered)",
            )
        if size and b"".join(frontier) != (head.frontier or b""):
            raise _Failure(None, "the log head's Merkle tree edge disagrees with the entries")
    except _Failure as failure:
        return VerifyResult(False, size, failure.seq, failure.problem, checked=tuple(checked))
    return VerifyResult(True, size, root=root, checked=tuple(checked))


def _check_nodes(session: Session, completed: list[tuple[int, int, bytes]]) -> None:
    stored = _stored_nodes(session, completed) if completed else {}
    for level, index, node in completed:
        if stored.get((level, index)) != node:
            first = index << level
            raise _Failure(
                first,
                f"the stored Merkle tree disagrees with the entries at node ({level}, {index}), "
                f"over entries {first} to {first + (1 << level) - 1}",
            )


def _check_root(expected: ExpectedRoot, root: bytes, checked: list[int]) -> None:
    if not hmac.compare_digest(root, expected.root):
        agreed = f"; it agrees at size {checked[-1]}" if checked else ""
        raise _Failure(
            None,
            f"{expected.label} disagrees with the log at size {expected.size}: the log's tree "
            "there has another root (its history was rewritten, or it was restored from an "
            f"older copy and grew again){agreed}",
        )
    checked.append(expected.size)
