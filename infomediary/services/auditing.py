"""What an auditor reads: the whole access log, searched and filtered, exported with the proofs
that check it, and verified on demand. Statistics and anomaly flags are in
:mod:`infomediary.services.auditing_stats`.

An auditor never sees a customer's id, only ``aud_`` + ``HMAC-SHA256(pseudonym key, "auditor"
|| 0x00 || auditor_id || 0x00 || customer_id)``: stable for one auditor (so their findings
hold across pages and exports), different for every auditor and from the suppliers' ``psn_``
subjects. Two auditors who compare notes can match their pseudonyms through the entries both
see (sequence numbers, leaf hashes), so the pseudonyms keep ids from auditors, not auditors
from each other. Nothing here opens an entry's ``detail``: what an auditor reads is what the
plaintext columns hold.

**Every read is an access.** A page of search results, a statistics page or an export appends,
in the same transaction, one entry per customer whose entries it showed (action ``audit``,
category ``access_log``, the number of that customer's entries shown and their first and last
seq), so the customer's own "Who accessed my data" lists it, and one entry naming no customer
for the read as a whole. A search page shows at most :data:`PAGE_SIZE` entries, so it writes at
most ``PAGE_SIZE + 1``; an export at most :data:`EXPORT_LIMIT` ``+ 1``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from infomediary.audit.log import ActorType, StoredTree, canonical_v2, current_root
from infomediary.audit.reasons import Reason, render
from infomediary.errors import ExportTooLarge, InvalidAuditFilter
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Supplier, utcnow
from infomediary.services import Context, checkpoints
from infomediary.services.uow import unit_of_work
from infomediary.tlog.entry import VERSION as ENTRY_V2

PAGE_SIZE = 50
#: The most entries one export carries; a wider range is refused (narrow the filters).
EXPORT_LIMIT = 10_000
EXPORT_FORMAT = "infomediary-audit-export/1"
PSEUDONYM_PREFIX = "aud_"
AUDIT_CATEGORIES = frozenset({"access_log"})
AUDIT_PURPOSE = "audit"

_ID_RE = re.compile(r"^[0-9A-Za-z-]{1,36}$")
_WORD_RE = re.compile(r"^[a-z_]{1,64}$")
_PSEUDONYM_RE = re.compile(r"^aud_[A-Za-z0-9_-]{43}$")
OUTCOMES = ("allowed", "denied")


def customer_pseudonym(inst: Instance, auditor_id: str, customer_id: str) -> str:
    """The name ``auditor_id`` knows ``customer_id`` by."""
    message = b"\x00".join(part.encode() for part in ("auditor", auditor_id, customer_id))
    digest = hmac.new(inst.keyring.secret("pseudonym"), message, hashlib.sha256).digest()
    return PSEUDONYM_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


#: The dates a filter may name: the log holds nothing before 1970, and a range's arithmetic
#: (a day after, a week before) stays within what a date can hold.
FIRST_DATE = date(1970, 1, 1)
LAST_DATE = date(9999, 12, 1)


def _date(name: str, raw: str | None, errors: dict[str, str]) -> date | None:
    if not raw:
        return None
    try:
        found = date.fromisoformat(raw)
    except ValueError:
        errors[name] = "A date as YYYY-MM-DD."
        return None
    if not FIRST_DATE <= found <= LAST_DATE:
        errors[name] = f"A date from {FIRST_DATE} to {LAST_DATE}."
        return None
    return found


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """The filters of a search or export; ``since`` and ``until`` are whole UTC days."""

    supplier: str | None = None
    customer: str | None = None
    actor_type: str | None = None
    action: str | None = None
    outcome: str | None = None
    purpose: str | None = None
    since: date | None = None
    until: date | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> AuditFilter:
        """Validate query-string filters; a value that cannot match is an error, not ignored."""
        errors: dict[str, str] = {}
        value = {k: (args.get(k) or "").strip() or None for k in _FILTER_ARGS}
        if value["supplier"] and not _ID_RE.match(value["supplier"]):
            errors["supplier"] = "A supplier's id."
        if value["customer"] and not _PSEUDONYM_RE.match(value["customer"]):
            errors["customer"] = "A customer pseudonym as shown here (aud_...)."
        actors = tuple(str(a) for a in ActorType)
        if value["actor"] and value["actor"] not in actors:
            errors["actor"] = f"Choose one of: {', '.join(actors)}."
        if value["outcome"] and value["outcome"] not in OUTCOMES:
            errors["outcome"] = "Choose allowed or denied."
        for name in ("action", "purpose"):
            if value[name] and not _WORD_RE.match(value[name] or ""):
                errors[name] = "Lower-case letters and underscores."
        since = _date("since", value["since"], errors)
        until = _date("until", value["until"], errors)
        if since and until and since > until:
            errors["until"] = "The end of the range comes before its start."
        if errors:
            raise InvalidAuditFilter(errors, "Some filters are not understood.")
        return cls(
            value["supplier"],
            value["customer"],
            value["actor"],
            value["action"],
            value["outcome"],
            value["purpose"],
            since,
            until,
        )

    def as_args(self) -> dict[str, str]:
        pairs = {
            "supplier": self.supplier,
            "customer": self.customer,
            "actor": self.actor_type,
            "action": self.action,
            "outcome": self.outcome,
            "purpose": self.purpose,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {k: v for k, v in pairs.items() if v}


_FILTER_ARGS = ("supplier", "customer", "actor", "action", "outcome", "purpose", "since", "until")


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _filtered(f: AuditFilter) -> Select[Any]:
    query = select(AccessLogEntry)
    if f.supplier:
        query = query.where(
            AccessLogEntry.actor_type == ActorType.SUPPLIER, AccessLogEntry.actor_id == f.supplier
        )
    if f.actor_type:
        query = query.where(AccessLogEntry.actor_type == f.actor_type)
    if f.action:
        query = query.where(AccessLogEntry.action == f.action)
    if f.outcome:
        query = query.where(AccessLogEntry.outcome == f.outcome)
    if f.purpose:
        query = query.where(AccessLogEntry.purpose == f.purpose)
    if f.since:
        query = query.where(AccessLogEntry.created_at >= day_start(f.since))
    if f.until:
        query = query.where(AccessLogEntry.created_at < day_start(f.until + timedelta(days=1)))
    return query


def _query(session: Session, inst: Instance, auditor_id: str, f: AuditFilter) -> Select[Any] | None:
    """The entries ``f`` selects, or None when its pseudonym names no customer among them.

    A pseudonym is matched by computing it for the distinct customers of the range the other
    filters select (one HMAC each); nothing is decrypted and no table maps pseudonyms back.
    """
    query = _filtered(f)
    if f.customer is None:
        return query
    ids = session.execute(
        query.with_only_columns(AccessLogEntry.customer_id)
        .where(AccessLogEntry.customer_id.is_not(None))
        .distinct()
    ).scalars()
    for customer_id in ids:
        if customer_id is not None and hmac.compare_digest(
            customer_pseudonym(inst, auditor_id, customer_id), f.customer
        ):
            return query.where(AccessLogEntry.customer_id == customer_id)
    return None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One entry as an auditor sees it: the plaintext columns, the customer as a pseudonym."""

    seq: int
    time: datetime
    actor_type: str
    actor: str
    action: str
    outcome: str
    purpose: str
    categories: tuple[str, ...]
    reason: str
    customer: str | None
    leaf_hash: bytes = field(repr=False)
    #: The supplier acting, when one is (suppliers are named, not pseudonymous).
    supplier_id: str | None = None
    #: The bytes the leaf commits to (format 2 only: format-1 entries commit to raw customer
    #: ids, so theirs is not shown), for recomputing the leaf hash per docs/LOG_FORMAT.md.
    canonical: bytes | None = field(default=None, repr=False)

    @property
    def canonical_b64(self) -> str | None:
        return None if self.canonical is None else base64.b64encode(self.canonical).decode()

    @property
    def leaf_b64(self) -> str:
        return base64.b64encode(self.leaf_hash).decode()


class Names:
    """Suppliers' names by id, read once per id."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._known: dict[str, str] = {}

    def preload(self, ids: Iterable[str]) -> None:
        wanted = {i for i in ids if i not in self._known}
        if wanted:
            rows = self._session.execute(
                select(Supplier.id, Supplier.name).where(Supplier.id.in_(wanted))
            ).all()
            self._known.update({str(i): str(n) for i, n in rows})
            self._known.update({i: i for i in wanted if i not in self._known})

    def __call__(self, supplier_id: str) -> str:
        self.preload([supplier_id])
        return self._known[supplier_id]


def rows_of(
    inst: Instance, auditor_id: str, names: Names, entries: Sequence[AccessLogEntry]
) -> list[AuditRow]:
    names.preload(e.actor_id for e in entries if e.actor_type == ActorType.SUPPLIER)
    memo: dict[str, str] = {}

    def pseudonym(customer_id: str) -> str:
        if customer_id not in memo:
            memo[customer_id] = customer_pseudonym(inst, auditor_id, customer_id)
        return memo[customer_id]

    def actor(e: AccessLogEntry) -> str:
        if e.actor_type == ActorType.SUPPLIER:
            return names(e.actor_id)
        if e.actor_type == ActorType.CUSTOMER:
            return pseudonym(e.actor_id)  # a customer acting is named like one acted upon
        if e.actor_type == ActorType.AUDITOR and e.actor_id == auditor_id:
            return "you"
        return e.actor_id

    return [
        AuditRow(
            seq=e.seq,
            time=e.created_at,
            actor_type=e.actor_type,
            actor=actor(e),
            action=e.action,
            outcome=e.outcome,
            purpose=e.purpose,
            categories=tuple(c for c in e.categories.split(",") if c),
            reason=render(e.reason_data, e.reason, names),
            customer=pseudonym(e.customer_id) if e.customer_id else None,
            leaf_hash=bytes(e.leaf_hash),
            supplier_id=e.actor_id if e.actor_type == ActorType.SUPPLIER else None,
            canonical=canonical_v2(e) if e.version == ENTRY_V2 else None,
        )
        for e in entries
    ]


def log_reads(session: Session, ctx: Context, entries: Sequence[AccessLogEntry], view: str) -> None:
    """The read of ``entries`` as entries of its own: one per customer shown, one overall."""
    per_customer: dict[str, list[int]] = {}
    for e in entries:
        if e.customer_id:
            per_customer.setdefault(e.customer_id, []).append(e.seq)
    for customer_id, seqs in per_customer.items():
        ctx.log(
            session,
            "audit",
            customer_id=customer_id,
            categories=AUDIT_CATEGORIES,
            purpose=AUDIT_PURPOSE,
            reason=Reason(
                "auditor.viewed",
                {"entries": len(seqs), "first": min(seqs), "last": max(seqs), "view": view},
            ),
        )
    seqs = [e.seq for e in entries]
    ctx.log(
        session,
        "audit",
        categories=AUDIT_CATEGORIES,
        purpose=AUDIT_PURPOSE,
        reason=Reason(
            "auditor.read",
            {
                "entries": len(seqs),
                "customers": len(per_customer),
                "first": min(seqs) if seqs else -1,
                "last": max(seqs) if seqs else -1,
                "view": view,
            },
        ),
    )


@dataclass(frozen=True, slots=True)
class SearchPage:
    rows: list[AuditRow]
    filters: AuditFilter
    #: The ``before`` of the next (older) page, or None on the last one.
    older: int | None


def search(
    session: Session,
    inst: Instance,
    auditor_id: str,
    filters: AuditFilter,
    ctx: Context,
    *,
    before: int | None = None,
    per_page: int = PAGE_SIZE,
) -> SearchPage:
    """One page of entries, newest first, older than ``before`` (keyset on seq); logged."""
    with unit_of_work(session) as uow:
        query = _query(session, inst, auditor_id, filters)
        entries: list[AccessLogEntry] = []
        if query is not None:
            if before is not None:
                query = query.where(AccessLogEntry.seq < before)
            entries = list(
                session.execute(query.order_by(AccessLogEntry.seq.desc()).limit(per_page + 1))
                .scalars()
                .all()
            )
        older = entries[per_page - 1].seq if len(entries) > per_page else None
        entries = entries[:per_page]
        rows = rows_of(inst, auditor_id, Names(session), entries)
        log_reads(session, ctx, entries, "search")
        uow.commit()
    return SearchPage(rows, filters, older)


# -- export ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The tree the export's proofs lead to: the latest signed checkpoint's, or (before any
    is signed) the log's current tree, which nobody has signed."""

    size: int
    root: bytes
    checkpoint: str | None
    signed_at: datetime | None

    @property
    def source(self) -> str:
        return "checkpoint" if self.checkpoint is not None else "current"


def tree_head(session: Session) -> TreeHead:
    found = checkpoints.latest(session)
    if found is not None:
        return TreeHead(int(found.size), bytes(found.root), found.note, found.signed_at)
    size, root = current_root(session)
    return TreeHead(size, root, None, None)


@dataclass(frozen=True, slots=True)
class ExportedEntry:
    row: AuditRow
    #: The RFC 9162 inclusion proof against the head's tree, or None for an entry written
    #: after the head (the next checkpoint covers it).
    proof: tuple[bytes, ...] | None


@dataclass(frozen=True, slots=True)
class Export:
    filters: AuditFilter
    exported_at: datetime
    head: TreeHead
    entries: list[ExportedEntry]
    #: The log's signed-note verifier key (``<origin>+<key id>+<base64 key>``).
    verifier_key: str


def export(
    session: Session,
    inst: Instance,
    auditor_id: str,
    filters: AuditFilter,
    ctx: Context,
    *,
    limit: int = EXPORT_LIMIT,
) -> Export:
    """The entries ``filters`` selects, oldest first, each with its inclusion proof; logged.
    More than ``limit`` entries is refused with :class:`ExportTooLarge`."""
    with unit_of_work(session) as uow:
        query = _query(session, inst, auditor_id, filters)
        entries: list[AccessLogEntry] = []
        if query is not None:
            entries = list(
                session.execute(query.order_by(AccessLogEntry.seq).limit(limit + 1)).scalars()
            )
        if len(entries) > limit:
            raise ExportTooLarge(
                {"range": f"An export carries at most {limit:,} entries; narrow the filters."},
                "The range holds too many entries.",
            )
        head = tree_head(session)  # before this read's own entries extend the tree
        proofs = StoredTree(session).inclusion_proofs(
            (e.seq for e in entries if e.seq < head.size), head.size
        )
        rows = rows_of(inst, auditor_id, Names(session), entries)
        exported = [
            ExportedEntry(row, tuple(proofs[row.seq]) if row.seq in proofs else None)
            for row in rows
        ]
        log_reads(session, ctx, entries, "export")
        uow.commit()
    return Export(filters, utcnow(), head, exported, checkpoints.verifier_key(inst))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def export_document(found: Export) -> dict[str, Any]:
    """The JSON form of an export: every entry with its leaf hash and inclusion proof, and the
    tree they lead to (with the signed checkpoint's note, when there is one)."""
    head = found.head
    return {
        "format": EXPORT_FORMAT,
        "exported_at": found.exported_at.isoformat(),
        "filters": found.filters.as_args(),
        "hashing": "RFC 9162: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || l || r)",
        "tree": {
            "size": head.size,
            "root": _b64(head.root),
            "source": head.source,
            "checkpoint": head.checkpoint,
            "signed_at": head.signed_at.isoformat() if head.signed_at else None,
            "verifier_key": found.verifier_key,
            "note": (
                "proofs lead to the latest signed checkpoint"
                if head.checkpoint is not None
                else "no checkpoint is signed yet: proofs lead to the log's current tree, "
                "which is not signed"
            ),
        },
        "entries": [
            {
                "seq": e.row.seq,
                "time": e.row.time.isoformat(),
                "actor_type": e.row.actor_type,
                "actor": e.row.actor,
                "action": e.row.action,
                "outcome": e.row.outcome,
                "purpose": e.row.purpose,
                "categories": list(e.row.categories),
                "reason": e.row.reason,
                "customer": e.row.customer,
                "leaf_hash": e.row.leaf_b64,
                "canonical": e.row.canonical_b64,
                "proof": [_b64(node) for node in e.proof] if e.proof is not None else None,
            }
            for e in found.entries
        ],
    }


CSV_COLUMNS = (
    "seq",
    "time",
    "actor_type",
    "actor",
    "action",
    "outcome",
    "purpose",
    "categories",
    "reason",
    "customer",
    "leaf_hash",
    "proof",
    "tree_size",
    "tree_root",
    "tree_source",
    "checkpoint",
    "canonical",
)


def _cell(value: str) -> str:
    """A spreadsheet must not read a cell as a formula (OWASP, CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_rows(found: Export) -> Iterable[list[str]]:
    """The CSV form: a header, then one row per entry; ``proof`` is the inclusion proof's
    nodes in base64, space-separated; the checkpoint's note is on the first row only."""
    yield list(CSV_COLUMNS)
    head = found.head
    for number, e in enumerate(found.entries):
        yield [
            str(e.row.seq),
            e.row.time.isoformat(),
            e.row.actor_type,
            _cell(e.row.actor),
            e.row.action,
            e.row.outcome,
            e.row.purpose,
            ",".join(e.row.categories),
            _cell(e.row.reason),
            e.row.customer or "",
            e.row.leaf_b64,
            " ".join(_b64(n) for n in e.proof) if e.proof is not None else "",
            str(head.size),
            _b64(head.root),
            head.source,
            (head.checkpoint or "") if number == 0 else "",
            e.row.canonical_b64 or "",
        ]


# -- verify now -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    size: int
    problems: tuple[str, ...]
    checkpoint_size: int | None
    #: How many stored checkpoints were checked (signature and root).
    checkpoints: int = 0


def verify_now(session: Session, inst: Instance, ctx: Context) -> Verification:
    """Recompute every leaf, link and tree node, and check every stored checkpoint's signature
    and root against the tree (:func:`infomediary.services.checkpoints.verify_log`); logged."""
    report = checkpoints.verify_log(session, inst)
    result = report.result
    with unit_of_work(session) as uow:
        latest = checkpoints.latest(session)
        ctx.log(
            session,
            "audit",
            categories=AUDIT_CATEGORIES,
            purpose=AUDIT_PURPOSE,
            reason=Reason(
                "auditor.verified",
                {"result": "intact" if result.ok else "not intact", "size": result.size},
            ),
        )
        uow.commit()
    return Verification(
        result.ok,
        result.size,
        () if result.ok else (result.problem,),
        int(latest.size) if latest is not None else None,
        report.stored,
    )


def supplier_choices(session: Session) -> list[tuple[str, str]]:
    """(id, name) of every supplier, by name: the filter's choices."""
    with unit_of_work(session):
        rows = session.execute(select(Supplier.id, Supplier.name).order_by(Supplier.name)).all()
        return [(str(i), str(n)) for i, n in rows]
