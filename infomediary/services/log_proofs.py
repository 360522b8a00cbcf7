"""The customer's proof file: their part of the access log, with what it takes to check it
offline (``python -m infomediary.verify``), against a checkpoint signed after the download.

A download is a POST with two commits, in this order: the download's own entry (so the file
covers its own record), then a signed checkpoint (:func:`checkpoints.sign`, its own unit of
work) of the log with that entry in it; the file is then read against that checkpoint and
writes nothing. It holds, newest first:

- every entry about the customer (``customer_id``, read through its index) with all it
  commits to: for format 2 the canonical fields, the opening of the customer commitment and
  the detail's exact plaintext (their own, salt included), and what they mean in words; for
  format 1 its JSON body (raw ids; the detail's ciphertext);
- every count or offer audience the customer was counted in (found as the counts page finds
  them: the release postings of their broker ordinal, ``MatchEntry.ordinal``), each with the
  membership proof of their record in its member tree;
- an RFC 9162 inclusion proof of each against the checkpoint, and consistency proofs from
  the checkpoint the customer says they hold (``since``) and from those of their last
  downloads.

A file is bounded: at most :data:`MAX_ENTRIES` entries and :data:`MAX_COUNTS` counts, and
counts stop once their member trees total :data:`MEMBER_BUDGET` records (each proof rebuilds
its tree: half a second for a million members). When there is more, the file covers a seq
range from its newest entry down to ``page.covers_from`` and ``page.older`` names the
``before`` that downloads the next, older, range: every entry of the customer in a range is in
its file. Proofs are read in batches (one query per level and 500 nodes), not one per node.

A release row does not name its log entry, which is appended after it in the same
transaction; the entry is found by a binary search of the log's times (primary-key reads)
and a short scan for the aggregate entry whose detail names the release. One that cannot be
found (a clock that went backwards by more than the scan covers) is counted in the file's
``notes``, never guessed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infomediary.audit.log import (
    LogKeys,
    StoredTree,
    committed_actor_id,
    log_keys,
    time_us,
)
from infomediary.audit.members import MembershipProof, member_tree
from infomediary.audit.reasons import Reason, render, supplier_ids
from infomediary.crypto.vault import CustomerKey
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    DataKey,
    LogCheckpoint,
    Release,
    Supplier,
    utcnow,
)
from infomediary.services import Context, checkpoints, exposure, privacy_ledger
from infomediary.services.customer_keys import (
    SALT,
    customer_key,
    logged_categories,
    open_detail_bytes,
)
from infomediary.services.uow import unit_of_work
from infomediary.text import parse_int
from infomediary.tlog import entry as entry_v2
from infomediary.tlog import merkle

FORMAT = "infomediary-log-proofs/1"
FILENAME = "access-log-proofs.json"
#: A file's bounds: entries about the customer, and counts they were part of (each of which
#: costs a member tree to rebuild).
MAX_ENTRIES = 2000
MAX_COUNTS = 100
#: At most about this many member records are encrypted again per file to build membership
#: proofs (a count of a million members takes about half a second); at least one count is.
MEMBER_BUDGET = 2_000_000
#: Consistency proofs are added from the checkpoints of this many earlier downloads.
PREVIOUS_DOWNLOADS = 5
REASON = Reason("account.log_downloaded")
_CHUNK = 500
#: How far around the time-ordered guess a count's entry is looked for (entries appended by
#: other transactions between a release's row and its entry, or under a clock's skew).
_LOOK_BEHIND = 256
_LOOK_AHEAD = 1024
_SKEW = timedelta(minutes=1)
_HIGHEST = 2**63 - 1
UNKNOWN_SUPPLIER = "a supplier no longer registered"
FORMAT_1_NOTE = (
    "Entries of format 1 (written before format 2) commit to their stored fields as JSON: they "
    "name raw identifiers (your customer id, a supplier's id) and commit to the ciphertext of "
    "their detail, so the detail shown beside them is opened with your key and cannot be "
    "checked against the hash."
)


def parse_position(raw: str | None, name: str) -> int | None:
    """A log size or seq from a form: blank is none; anything but a whole number is refused."""
    if raw is None or not raw.strip():
        return None
    value = parse_int(raw.strip(), low=0, high=_HIGHEST)
    if value is None:
        raise ValidationFailed({name: "A whole number."}, f"Unknown {name}.")
    return value


def download(
    session: Session,
    inst: Instance,
    customer_id: str,
    ctx: Context,
    since: int | None,
    *,
    before: int | None = None,
) -> dict[str, Any]:
    """The customer's proof file (see the module): logs the download, signs a checkpoint
    covering it, and builds the file against that checkpoint."""
    with unit_of_work(session) as uow:
        if session.get(DataKey, customer_id) is None:
            raise NotFound("No such customer.")
        key = customer_key(session, inst, customer_id)
        entry = ctx.log(
            session,
            "export",
            customer_id=customer_id,
            reason=REASON,
            **logged_categories(
                inst, key, frozenset({"account"}), {"since": since, "before": before}
            ),
        )
        own_seq = entry.seq
        uow.commit()
    signed = checkpoints.sign(session, inst).checkpoint
    with unit_of_work(session):  # a read: leaving the block rolls back
        keys = log_keys(session)
        if keys is None:
            raise RuntimeError("this session carries no log keys: open it from the instance")
        return _Builder(session, inst, keys, customer_id, key, signed).build(since, before, own_seq)


@dataclass(frozen=True, slots=True)
class _Counted:
    row: AccessLogEntry
    release: int
    proof: MembershipProof


@dataclass(frozen=True, slots=True)
class _Item:
    seq: int
    row: AccessLogEntry
    counted: _Counted | None = None


class _Builder:
    def __init__(
        self,
        session: Session,
        inst: Instance,
        keys: LogKeys,
        customer_id: str,
        key: CustomerKey,
        signed: checkpoints.SignedCheckpoint,
    ) -> None:
        self.session = session
        self.inst = inst
        self.keys = keys
        self.customer_id = customer_id
        self.key = key
        self.signed = signed
        self.size = signed.size
        self.notes: list[str] = []

    def build(self, since: int | None, before: int | None, own_seq: int) -> dict[str, Any]:
        bound = self.size if before is None else min(before, self.size)
        own = self._own(bound)
        counted, counts_stop = self._counted(bound)
        items, older = _page(own, counted, counts_stop)
        proofs = inclusion_proofs(self.session, [i.seq for i in items], self.size)
        names = _supplier_names(self.session, [i.row for i in items])
        entries: list[dict[str, Any]] = []
        counts: list[dict[str, Any]] = []
        for item in items:
            body = self._entry(item.row, names)
            body["inclusion_proof"] = _b64s(proofs[item.seq])
            if item.counted is None:
                entries.append(body)
            else:
                counts.append(self._count(body, item.counted))
        if any(e["format"] == 1 for e in entries + counts):
            self.notes.append(FORMAT_1_NOTE)
        consistency = self._consistency(since, own_seq)
        verifier = checkpoints.verifier(self.inst)
        return {
            "format": FORMAT,
            "generated_at": utcnow().isoformat(),
            "origin": checkpoints.origin(self.inst.settings),
            "vkey": verifier.vkey,
            "checkpoint": self.signed.note,
            "tree_size": self.size,
            "customer_id": self.customer_id,
            "page": {
                "before": before,
                "covers_from": 0 if older is None else older,
                "covers_to": bound - 1,
                "older": older,
                "max_entries": MAX_ENTRIES,
                "max_counts": MAX_COUNTS,
            },
            "entries": entries,
            "counted_in": counts,
            "consistency": consistency,
            "notes": self.notes,
            "verify_with": (
                f"python -m infomediary.verify {FILENAME} --key VKEY, where VKEY is the log's "
                "key as /api/v1/log/key publishes it, got some other way than this file"
            ),
        }

    # -- what the file covers ------------------------------------------------------------------

    def _own(self, bound: int) -> list[AccessLogEntry]:
        return list(
            self.session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == self.customer_id, AccessLogEntry.seq < bound)
                .order_by(AccessLogEntry.seq.desc())
                .limit(MAX_ENTRIES + 1)
            ).scalars()
        )

    def _counted(self, bound: int) -> tuple[list[_Counted], int | None]:
        """The entries of the counts and offer audiences the customer was part of, newest
        first, below ``bound``; and, when the file's limit or its budget of member records
        stopped the search, the seq of the last entry it looked at (the page ends there)."""
        ordinal = privacy_ledger.ordinal_of(self.session, self.customer_id)
        if ordinal is None:
            return [], None
        found: list[_Counted] = []
        missing = older_format = members = 0
        stop_at = examined = None
        # a release newer than the page's bound (past a clock's skew) is not looked up
        newest = _time_of(self.session, bound) if bound < self.size else None
        high = self.size
        for release_seq, created in _release_times(self.session, ordinal):
            if newest is not None and created > newest + _SKEW:
                continue
            if examined is not None and (len(found) == MAX_COUNTS or members >= MEMBER_BUDGET):
                stop_at = examined
                break
            row = _entry_of_release(self.session, release_seq, created, high)
            if row is None:
                missing += 1
                continue
            high = row.seq  # a release's entry comes after every older release's
            if row.seq >= bound:
                continue  # newer than this page
            examined = row.seq
            if row.version != entry_v2.VERSION or row.member_root is None:
                older_format += 1
                continue
            tree = member_tree(self.keys.member_key(row.seq), row.members or b"")
            members += len(tree.ordinals)
            proof = tree.proof(ordinal)
            if proof is None:  # counted under an ordinal that is no longer theirs
                missing += 1
                continue
            found.append(_Counted(row, release_seq, proof))
        if older_format:
            self.notes.append(
                f"{older_format} count(s) you were part of were logged before entry format 2: "
                "they commit to their member set as a whole, so no proof can show you were in "
                "one without showing everyone else."
            )
        if missing:
            self.notes.append(
                f"The log entries of {missing} count(s) you were part of could not be located; "
                "they are listed on your counts page."
            )
        return found, stop_at

    # -- one entry -----------------------------------------------------------------------------

    def _entry(self, row: AccessLogEntry, names: dict[str, tuple[str, bool]]) -> dict[str, Any]:
        def shown_name(supplier_id: str) -> str:
            return _display(names.get(supplier_id))

        actor: dict[str, Any] = {"type": row.actor_type, "id": row.actor_id}
        if row.actor_type == "supplier":
            actor["name"] = shown_name(row.actor_id)
        plaintext = open_detail_bytes(self.inst, self.key, row.detail)
        if plaintext is None and row.customer_id is None:
            plaintext = row.detail  # a count's detail names no one and is stored as it is
        shown: dict[str, Any] = {
            "time": row.created_at.isoformat(),
            "actor": actor,
            "action": row.action,
            "categories": [c for c in row.categories.split(",") if c],
            "purpose": row.purpose,
            "outcome": row.outcome,
            "reason": render(row.reason_data, row.reason, shown_name),
            "reason_data": json.loads(row.reason_data) if row.reason_data else None,
            "suppliers": [
                {"id": sid, "name": shown_name(sid)}
                for sid in sorted(supplier_ids(row.reason_data))
            ],
            "detail": _parsed(plaintext),
        }
        body: dict[str, Any] = {
            "seq": row.seq,
            "format": 2 if row.version == entry_v2.VERSION else 1,
            "leaf_hash": _b64(row.leaf_hash),
        }
        if row.version == entry_v2.VERSION:
            body["committed"] = {
                "seq": row.seq,
                "time_us": time_us(row.created_at),
                "actor_type": row.actor_type,
                "actor_id": committed_actor_id(row.actor_type, row.actor_id, row.customer_id),
                "customer": _b64(row.customer_commitment),
                "action": row.action,
                "categories": row.categories,
                "purpose": row.purpose,
                "outcome": row.outcome,
                "reason": row.reason_data or "",
                "request": row.request_id,
                "detail": _b64(row.detail_hash),
                "members": _b64(row.member_root),
                "prev": _b64(row.prev_hash),
            }
            opening = (
                self.keys.customer_opening(row.seq, row.customer_id)
                if row.customer_id is not None
                else None
            )
            body["openings"] = {
                "customer_id": row.customer_id,
                "customer_opening": _b64(opening),
                "detail_plaintext": _b64(plaintext) if row.detail_hash is not None else None,
            }
        else:
            body["committed_v1"] = _v1_body(row)
        body["shown"] = shown
        return body

    def _count(self, body: dict[str, Any], counted: _Counted) -> dict[str, Any]:
        proof = counted.proof
        body["release"] = counted.release
        body["membership"] = {
            "ordinal": proof.ordinal,
            "opening": _b64(proof.opening),
            "record": _b64(proof.record),
            "bucket": _b64(proof.bucket),
            "leaf_index": proof.leaf_index,
            "leaves": proof.size,
            "proof": _b64s(proof.nodes),
        }
        return body

    # -- consistency ---------------------------------------------------------------------------

    def _consistency(self, since: int | None, own_seq: int) -> list[dict[str, Any]]:
        wanted: dict[int, str] = {}
        for size in self._previous_downloads(own_seq):
            wanted.setdefault(size, "the checkpoint of an earlier download")
        if since is not None:
            if 0 < since <= self.size:
                wanted[since] = "the checkpoint you said you hold (since)"
            else:
                self.notes.append(
                    f"No consistency proof from size {since}: the log's checkpoint has "
                    f"{self.size} entries, and a proof starts from 1 to {self.size}."
                )
        tree = StoredTree(self.session)
        return [
            {
                "from": size,
                "to": self.size,
                "proof": _b64s(merkle.consistency_proof(tree, size, self.size)),
                "why": why,
            }
            for size, why in sorted(wanted.items())
        ]

    def _previous_downloads(self, own_seq: int) -> list[int]:
        seqs = self.session.execute(
            select(AccessLogEntry.seq)
            .where(
                AccessLogEntry.customer_id == self.customer_id,
                AccessLogEntry.seq < own_seq,
                AccessLogEntry.action == "export",
                AccessLogEntry.reason_data == REASON.to_json(),
            )
            .order_by(AccessLogEntry.seq.desc())
            .limit(PREVIOUS_DOWNLOADS)
        ).scalars()
        sizes = []
        for seq in seqs:
            size = self.session.execute(
                select(func.min(LogCheckpoint.size)).where(LogCheckpoint.size > seq)
            ).scalar_one_or_none()
            if size is not None and size <= self.size:
                sizes.append(int(size))
        return sizes


def _page(
    own: list[AccessLogEntry], counted: list[_Counted], counts_stop: int | None
) -> tuple[list[_Item], int | None]:
    """Both lists merged newest first. A list that stopped short (more than
    :data:`MAX_ENTRIES` entries; counts at their limit) ends the page at its last entry, so
    that the page covers its range completely; the cursor of the next page is that entry's
    seq (None when neither stopped short)."""
    floors = []
    if len(own) > MAX_ENTRIES:
        own = own[:MAX_ENTRIES]
        floors.append(own[-1].seq)
    if counts_stop is not None:
        floors.append(counts_stop)
    floor = max(floors) if floors else None
    merged = sorted(
        [_Item(r.seq, r) for r in own] + [_Item(c.row.seq, c.row, c) for c in counted],
        key=lambda i: -i.seq,
    )
    if floor is None:
        return merged, None
    return [i for i in merged if i.seq >= floor], floor


# -- finding a release's entry ----------------------------------------------------------------


def _release_times(session: Session, ordinal: int) -> Iterator[tuple[int, datetime]]:
    """The releases that charged ``ordinal``, newest first, with their times (read in
    batches)."""
    seqs = exposure.release_seqs(session, ordinal)
    while chunk := list(islice(seqs, _CHUNK)):
        times: dict[int, datetime] = {
            int(seq): at
            for seq, at in session.execute(
                select(Release.seq, Release.created_at).where(Release.seq.in_(chunk))
            )
        }
        for seq in chunk:
            if seq in times:
                yield seq, times[seq]


def _time_of(session: Session, seq: int) -> datetime | None:
    if seq < 0:
        return None
    found: datetime | None = session.execute(
        select(AccessLogEntry.created_at).where(AccessLogEntry.seq == seq)
    ).scalar_one_or_none()
    return found


def _entry_of_release(
    session: Session, release_seq: int, created: datetime, high: int
) -> AccessLogEntry | None:
    """The aggregate entry of a release, below seq ``high``: the entry is appended in the
    release's transaction, after its row, so it is the first aggregate entry from about the
    release's time whose detail names it. Entries are found by a binary search over ``seq``
    on their times (point reads of the primary key; no index on time), then a short scan."""
    lo, hi = 0, high
    while lo < hi:
        mid = (lo + hi) // 2
        at = _time_of(session, mid)
        if at is None or at >= created:
            hi = mid
        else:
            lo = mid + 1
    window = session.execute(
        select(AccessLogEntry.seq, AccessLogEntry.detail)
        .where(
            AccessLogEntry.seq >= max(0, lo - _LOOK_BEHIND),
            AccessLogEntry.seq < min(high, lo + _LOOK_AHEAD),
            AccessLogEntry.members.is_not(None),
            AccessLogEntry.customer_id.is_(None),
        )
        .order_by(AccessLogEntry.seq)
    ).all()
    for seq, detail in window:
        parsed = _parsed(detail)
        if isinstance(parsed, dict) and parsed.get("release") == release_seq:
            return session.get(AccessLogEntry, seq)
    return None


# -- proofs in batches ------------------------------------------------------------------------


def inclusion_proofs(session: Session, indexes: Iterable[int], size: int) -> dict[int, list[bytes]]:
    """RFC 9162 inclusion proofs of many leaves against the tree of ``size`` leaves, reading
    the subtrees they need in batches (the same proofs :class:`StoredTree` gives one by one)."""
    return StoredTree(session).inclusion_proofs(indexes, size)


# -- small helpers ----------------------------------------------------------------------------


def _supplier_names(
    session: Session, rows: Iterable[AccessLogEntry]
) -> dict[str, tuple[str, bool]]:
    wanted: set[str] = set()
    for row in rows:
        wanted |= supplier_ids(row.reason_data)
        if row.actor_type == "supplier":
            wanted.add(row.actor_id)
    found: dict[str, tuple[str, bool]] = {}
    for chunk in _text_chunks(sorted(wanted)):
        for sid, name, verified in session.execute(
            select(Supplier.id, Supplier.name, Supplier.verified_at).where(Supplier.id.in_(chunk))
        ):
            found[str(sid)] = (str(name), verified is not None)
    return found


def _text_chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _display(found: tuple[str, bool] | None) -> str:
    if found is None:
        return UNKNOWN_SUPPLIER
    name, verified = found
    return f"{name} (verified)" if verified else name


def _parsed(plaintext: bytes | None) -> Any:
    """A detail as the customer reads it: its JSON, the salt left out."""
    if plaintext is None:
        return None
    try:
        detail = json.loads(plaintext)
    except ValueError:
        return None
    if isinstance(detail, dict):
        detail.pop(SALT, None)
    return detail


def _v1_body(row: AccessLogEntry) -> dict[str, Any]:
    """A format-1 entry's JSON body, as :func:`infomediary.audit.log.canonical_v1` forms it."""
    body: dict[str, Any] = {
        "v": 1,
        "seq": row.seq,
        "time": row.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": [row.actor_type, row.actor_id],
        "customer": row.customer_id,
        "action": row.action,
        "categories": row.categories,
        "purpose": row.purpose,
        "outcome": row.outcome,
        "reason": row.reason,
        "request": row.request_id,
        "detail": _b64(row.detail),
        "prev": _b64(row.prev_hash),
    }
    if row.members is not None:
        body["members_sha256"] = hashlib.sha256(row.members).hexdigest()
    return body


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def _b64s(values: Iterable[bytes]) -> list[str]:
    return [base64.b64encode(v).decode() for v in values]
