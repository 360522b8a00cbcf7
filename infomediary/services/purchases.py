"""Purchases imported from retailers' files: import (staged in batches, visible at once),
read, delete (a line, an import, a retailer's lines) and forget at erasure.

Every line is one AES-GCM record under the customer's DEK, bound to its table, row and
owner; the rows are found by keyed blind indexes under the keyring's ``purchase_index``
key, each keyed to the customer: ``line_token`` (retailer and the line's key: the same line
imported twice is one row) and ``retailer_token``. No date, price, product or retailer is in
plaintext, not even a month: how many purchases a customer made, month by month, is a trace
of their life, and the broker can derive what it needs when it opens the records.

An import is a sequence of short units of work: one creates a ``staging`` import, one per
batch writes its lines (invisible: every read joins ``done`` imports), and the last makes it
``done`` and appends its one log entry (retailers sealed, format and counts; no line). A
refused import deletes what it staged and logs the refusal; the staging rows of a process that
died mid-import (its lease gone, or its pid dead on this host) are deleted by the customer's
next import, which then imports those lines again.
"""

from __future__ import annotations

import functools
import hmac
import io
import os
import socket
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import String, any_, bindparam, delete, select, update
from sqlalchemy.orm import Session

from connectors import formats
from connectors.archive import Archive, ArchiveError, Limits, is_archive
from connectors.lines import (
    HEAD_BYTES,
    LineStatus,
    ParseError,
    Parser,
    PurchaseLine,
    UnknownFormat,
)
from infomediary.audit.reasons import Reason
from infomediary.crypto.vault import CustomerKey
from infomediary.errors import ImportRunning, NotFound, ServiceError, ValidationFailed
from infomediary.instance import Instance
from infomediary.leases import live_leases
from infomediary.models import (
    Customer,
    DerivedInterests,
    Purchase,
    PurchaseImport,
    PurchaseImportStatus,
    PurchaseOrderReview,
    PurchaseUpload,
    utcnow,
)
from infomediary.services import Context, derived_interests
from infomediary.services.customer_keys import customer_key, seal_detail
from infomediary.services.uow import unit_of_work

#: At most this many bad lines are named, in a refusal or a report.
MAX_ERRORS = 20
#: Tokens looked up per query (well under SQLite's bound-parameter limit).
_LOOKUP_CHUNK = 500
LINES = "purchases"
IMPORTS = "purchase_imports"
CATEGORIES = frozenset({"purchases"})
Progress = Callable[[int], None]
#: The staging imports this process is writing (any other of its lease's is abandoned).
_RUNNING: set[str] = set()


@dataclass(frozen=True, slots=True)
class ImportResult:
    format: str
    imported: int
    duplicates: int
    rejected: int
    errors: tuple[str, ...] = ()
    import_id: str | None = field(default=None, compare=False)
    #: Lines already held that this source changed (a status, a quantity, a price).
    updated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "updated": self.updated,
            "rejected": self.rejected,
            "errors": list(self.errors),
        }


class ImportRefused(ValidationFailed):
    """A file with lines that cannot be read, imported all-or-nothing: nothing was kept;
    ``result`` counts what was read and names up to :data:`MAX_ERRORS` bad lines."""

    code = "import_refused"

    def __init__(self, result: ImportResult):
        shown = "; ".join(result.errors[:3])
        more = f" (and {result.rejected - 3} more)" if result.rejected > 3 else ""
        message = (
            f"nothing imported: {result.rejected} line(s) cannot be read: {shown}{more}; "
            "fix them, or import the others with --skip-invalid"
        )
        super().__init__({"file": message}, message)
        self.result = result


class ImportInterrupted(ServiceError):
    """The staging import was removed before it finished (a run took it for abandoned)."""

    code = "import_interrupted"


# -- keyed hashes and records ------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _fold(retailer: str) -> str:
    return unicodedata.normalize("NFKC", retailer).strip().casefold()


def _token(inst: Instance, domain: str, *parts: str) -> bytes:
    """HMAC-SHA256 under the purchase index key of length-prefixed parts (no ambiguity)."""
    message = bytearray(domain.encode())
    for part in parts:
        raw = part.encode()
        message += len(raw).to_bytes(4, "big") + raw
    return hmac.digest(inst.keyring.secret("purchase_index"), bytes(message), "sha256")


def retailer_token(inst: Instance, customer_id: str, retailer: str) -> bytes:
    return _token(inst, "purchases/retailer/v1", customer_id, _fold(retailer))


def order_token(inst: Instance, customer_id: str, retailer: str, order_id: str) -> bytes:
    return _token(inst, "purchases/order/v1", customer_id, _fold(retailer), order_id.strip())


def line_token(inst: Instance, customer_id: str, line: PurchaseLine) -> bytes:
    return _token(inst, "purchases/line/v1", customer_id, _fold(line.retailer), line.line_key)


def record_of(line: PurchaseLine) -> dict[str, Any]:
    """Every field of the normalised line, as the sealed JSON record holds it."""
    return {
        "retailer": line.retailer,
        "order_id": line.order_id,
        "line_key": line.line_key,
        "ordered_at": line.ordered_at.isoformat(),
        "product_name": line.product_name,
        "product_id": line.product_id,
        "category": line.category,
        "quantity": line.quantity,
        "unit_price_minor": line.unit_price_minor,
        "currency": line.currency,
        "status": str(line.status),
        "source": line.source,
        "line_number": line.line_number,
    }


def line_of(record: dict[str, Any]) -> PurchaseLine:
    """The normalised line a sealed record holds (the inverse of :func:`record_of`)."""
    return PurchaseLine(
        retailer=record["retailer"],
        order_id=record["order_id"],
        line_key=record["line_key"],
        ordered_at=datetime.fromisoformat(record["ordered_at"]),
        product_name=record["product_name"],
        product_id=record.get("product_id"),
        category=record.get("category"),
        quantity=int(record["quantity"]),
        unit_price_minor=int(record["unit_price_minor"]),
        currency=record["currency"],
        status=LineStatus(record["status"]),
        source=record.get("source", ""),
        line_number=int(record.get("line_number", 0)),
    )


def held_lines(session: Session, inst: Instance, key: CustomerKey) -> Iterator[PurchaseLine]:
    """Every visible line the customer holds, opened one at a time (no log entry)."""
    query = _visible(key.customer_id, Purchase).execution_options(yield_per=1000)
    for row in session.execute(query).scalars():
        yield line_of(inst.vault.open(key, LINES, row.id, "record", row.sealed))


def _seal_import(inst: Instance, key: CustomerKey, import_id: str, detail: dict[str, Any]) -> bytes:
    return inst.vault.seal(key, IMPORTS, import_id, "detail", detail)


# -- the source --------------------------------------------------------------------------------
class _Prefixed(io.RawIOBase):
    """A stream that cannot seek, with the head detection read put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _open_source(stream: BinaryIO, format: str | Parser | None) -> tuple[Parser, BinaryIO]:
    if isinstance(format, str):
        try:
            return formats.parser(format), stream
        except UnknownFormat as exc:
            raise ValidationFailed({"format": str(exc)}, str(exc)) from None
    if format is not None:
        return format, stream
    if stream.seekable():
        start = stream.tell()
        head = stream.read(HEAD_BYTES)
        stream.seek(start)
    else:
        head = stream.read(HEAD_BYTES)
        stream = io.BufferedReader(_Prefixed(head, stream))
        if is_archive(head):
            message = "a zip archive is imported from a file (this stream cannot seek)"
            raise ValidationFailed({"file": message}, message)
    try:
        return formats.detect(head), stream
    except UnknownFormat as exc:
        raise ValidationFailed({"format": str(exc)}, str(exc)) from None


def _open_archive(inst: Instance, stream: BinaryIO, format: str | Parser | None) -> Archive | None:
    """The zip archive a seekable ``stream`` holds, its purchase files chosen (read with
    ``format`` when named), bounded by the import limit; ``None`` for any other file."""
    if not stream.seekable():
        return None  # _open_source refuses a zip it cannot seek in
    start = stream.tell()
    magic = stream.read(len(b"PK\x03\x04"))
    stream.seek(start)
    if not is_archive(magic):
        return None
    try:
        named = formats.parser(format) if isinstance(format, str) else format
    except UnknownFormat as exc:
        raise ValidationFailed({"format": str(exc)}, str(exc)) from None
    try:
        return Archive(stream, Limits(max_total_bytes=inst.settings.import_max_bytes), named)
    except ArchiveError as exc:
        raise ValidationFailed({"file": str(exc)}, str(exc)) from None


def _archive_lines(opened: Archive, source_name: str) -> Iterator[PurchaseLine | ParseError]:
    """The lines of each of the archive's purchase files in turn, their source
    ``archive.zip/member``; a limit broken while it is read refuses the whole import."""
    try:
        for member, stream in opened.streams():
            for item in _lines(member.parser, stream, f"{source_name}/{member.name}"):
                if opened.refused is not None:  # whatever the parser made of it
                    raise opened.refused
                yield item
            if opened.refused is not None:
                raise opened.refused
    except ArchiveError as exc:
        raise ValidationFailed({"file": str(exc)}, str(exc)) from None


# -- staging -----------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def abandoned_imports(session: Session, inst: Instance, customer_id: str) -> list[str]:
    """The customer's ``staging`` imports no process is writing: no live lease names it, the
    lease's process on this host no longer runs, or it is this process's and not running."""
    live = {lease.id: lease for lease in live_leases(session, utcnow())}
    host = socket.gethostname()[:255]
    found = []
    query = select(PurchaseImport.id, PurchaseImport.lease_id).where(
        PurchaseImport.customer_id == customer_id,
        PurchaseImport.status == PurchaseImportStatus.STAGING,
    )
    for import_id, lease_id in session.execute(query):
        lease = live.get(lease_id) if lease_id else None
        if lease_id == inst.leases.lease_id:
            if import_id not in _RUNNING:
                found.append(import_id)
        elif lease is None or (
            lease.host == host and lease.pid != os.getpid() and not _pid_alive(lease.pid)
        ):
            found.append(import_id)
    return found


def _drop_imports(session: Session, import_ids: list[str]) -> None:
    if import_ids:
        session.execute(delete(Purchase).where(Purchase.import_id.in_(import_ids)))
        session.execute(delete(PurchaseImport).where(PurchaseImport.id.in_(import_ids)))


def _start(
    session: Session,
    inst: Instance,
    customer_id: str,
    format_name: str,
    source_name: str,
    supplier_id: str | None = None,
) -> tuple[str, CustomerKey]:
    """Clear the customer's abandoned imports and create a staging one (a unit of work)."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        # the customer's row lock: two imports starting at once take turns here
        session.execute(
            select(Customer.id).where(Customer.id == customer_id).with_for_update()
        ).scalar_one_or_none()
        _drop_imports(session, abandoned_imports(session, inst, customer_id))
        running = session.execute(
            select(PurchaseImport.id).where(
                PurchaseImport.customer_id == customer_id,
                PurchaseImport.status == PurchaseImportStatus.STAGING,
            )
        ).first()
        if running is not None:
            raise ImportRunning(
                "another import of these purchases is running: try again when it has finished"
            )
        import_id = str(uuid.uuid4())
        session.add(
            PurchaseImport(
                id=import_id,
                customer_id=customer_id,
                status=PurchaseImportStatus.STAGING,
                format=format_name,
                imported=0,
                duplicates=0,
                rejected=0,
                detail=_seal_import(inst, key, import_id, {"source": source_name}),
                lease_id=inst.leases.lease_id,
                supplier_id=supplier_id,
            )
        )
        _RUNNING.add(import_id)
        try:
            uow.commit()
        except BaseException:
            _RUNNING.discard(import_id)
            raise
    return import_id, key


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows whose line token the customer does not hold yet (one Core statement,
    executed many times, no ORM); the ids of the rows inserted. Their number is the
    driver's row count where it gives one (SQLite); when it does not (psycopg reports -1),
    or some rows were not inserted, the ids written are looked up (they are new uuids)."""
    table: Any = Purchase.__table__
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as lite_insert

        statement = lite_insert(table)
    statement = statement.on_conflict_do_nothing(index_elements=["customer_id", "line_token"])
    written = session.execute(statement, rows)
    ids = [row["id"] for row in rows]
    if getattr(written, "rowcount", -1) == len(ids):
        return set(ids)
    if postgresql:
        from sqlalchemy.dialects.postgresql import ARRAY

        found = bindparam("ids", ids, type_=ARRAY(String))
        return set(session.execute(select(table.c.id).where(table.c.id == any_(found))).scalars())
    inserted: set[str] = set()
    for at in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[at : at + _LOOKUP_CHUNK]
        inserted.update(session.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars())
    return inserted


def _stage(
    session: Session,
    inst: Instance,
    key: CustomerKey,
    import_id: str,
    lines: list[PurchaseLine],
    evidence: derived_interests.Accumulator,
) -> tuple[int, int, int]:
    """Write one batch under the staging import (a unit of work); (new, duplicates, updated).
    The new lines are added to ``evidence`` (what they suggest), published with the import;
    a line already held whose status, quantity or price changed is updated instead.

    Every distinct line of the batch is sealed and offered to the insert, which keeps those
    whose token the customer does not hold (on conflict do nothing) and returns their ids:
    they are the new lines, whatever another import wrote meanwhile, with no lookup first."""
    customer_id = key.customer_id
    with unit_of_work(session) as uow:
        tokens: dict[bytes, PurchaseLine] = {}
        for line in lines:
            tokens.setdefault(line_token(inst, customer_id, line), line)
        retailers: dict[str, bytes] = {}
        rows = []
        for token, line in tokens.items():
            purchase_id = str(uuid.uuid4())
            retailer = retailers.get(line.retailer)
            if retailer is None:
                retailer = retailers[line.retailer] = retailer_token(
                    inst, customer_id, line.retailer
                )
            rows.append(
                {
                    "id": purchase_id,
                    "customer_id": customer_id,
                    "import_id": import_id,
                    "line_token": token,
                    "retailer_token": retailer,
                    "order_token": order_token(inst, customer_id, line.retailer, line.order_id),
                    "sealed": inst.vault.seal(key, LINES, purchase_id, "record", record_of(line)),
                }
            )
        inserted = _insert_ignoring_duplicates(session, rows) if rows else set()
        held: dict[bytes, PurchaseLine] = {}
        for row, (token, line) in zip(rows, tokens.items(), strict=True):
            if row["id"] in inserted:
                evidence.add(line)
            else:
                held[token] = line
        updated = _update_changed(session, inst, key, held) if held else 0
        if updated:
            evidence.stale = True
        uow.commit()
    return len(inserted), len(lines) - len(inserted) - updated, updated


#: What a later source may change of a line already held: the rest is the line's identity.
_CHANGEABLE = ("status", "quantity", "unit_price_minor")


def _update_changed(
    session: Session, inst: Instance, key: CustomerKey, held: dict[bytes, PurchaseLine]
) -> int:
    """Lines already held whose status (or quantity, or price) a later file changes, such as
    an order since returned, are sealed again with the new values; returns how many."""
    updated = 0
    tokens = list(held)
    for start in range(0, len(tokens), _LOOKUP_CHUNK):
        chunk = tokens[start : start + _LOOKUP_CHUNK]
        found = session.execute(
            select(Purchase.id, Purchase.line_token, Purchase.sealed).where(
                Purchase.customer_id == key.customer_id, Purchase.line_token.in_(chunk)
            )
        ).all()
        for purchase_id, token, sealed in found:
            record = inst.vault.open(key, LINES, purchase_id, "record", sealed)
            fresh = record_of(held[token])
            if all(record.get(name) == fresh[name] for name in _CHANGEABLE):
                continue
            record.update({name: fresh[name] for name in _CHANGEABLE})
            session.execute(
                update(Purchase)
                .where(Purchase.id == purchase_id)
                .values(sealed=inst.vault.seal(key, LINES, purchase_id, "record", record))
                .execution_options(synchronize_session=False)
            )
            updated += 1
    return updated


def _discard(
    session: Session, import_id: str, ctx: Context, customer_id: str, reason: Reason
) -> None:
    """Delete a staging import and its lines, and log the refusal (a unit of work)."""
    with unit_of_work(session) as uow:
        _drop_imports(session, [import_id])
        ctx.log(
            session,
            "import",
            customer_id=customer_id,
            reason=reason,
            categories=CATEGORIES,
            allowed=False,
        )
        uow.commit()


def _publish(
    session: Session,
    inst: Instance,
    key: CustomerKey,
    import_id: str,
    source_name: str,
    retailers: set[str],
    result: ImportResult,
    ctx: Context,
    evidence: derived_interests.Accumulator,
) -> None:
    """Make the staging import ``done``, add what its lines suggest to the customer's derived
    interests (and so their broker entry), and log it: the import's one visible commit."""
    with unit_of_work(session) as uow:
        sealed = _seal_import(
            inst, key, import_id, {"source": source_name, "retailers": sorted(retailers)}
        )
        flipped = session.execute(
            update(PurchaseImport)
            .where(
                PurchaseImport.id == import_id,
                PurchaseImport.status == PurchaseImportStatus.STAGING,
            )
            .values(
                status=PurchaseImportStatus.DONE,
                imported=result.imported,
                duplicates=result.duplicates,
                rejected=result.rejected,
                detail=sealed,
                lease_id=None,
                finished_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(flipped, "rowcount", 0) != 1:
            raise ImportInterrupted(
                "the import was interrupted and its lines were removed: import the file again"
            )
        if evidence.stale:
            derived_interests.recompute(session, inst, key, held_lines(session, inst, key))
        else:
            derived_interests.add_evidence(session, inst, key, evidence)
        ctx.log(
            session,
            "import",
            customer_id=key.customer_id,
            reason=Reason(
                "purchases.imported",
                {
                    "format": result.format,
                    "imported": result.imported,
                    "duplicates": result.duplicates,
                    "rejected": result.rejected,
                },
            ),
            categories=CATEGORIES,
            detail=seal_detail(
                inst,
                key,
                {
                    "import": import_id,
                    "retailers": sorted(retailers),
                    "format": result.format,
                    "imported": result.imported,
                    "duplicates": result.duplicates,
                    "rejected": result.rejected,
                },
            ),
        )
        uow.commit()


def import_file(
    session: Session,
    inst: Instance,
    customer_id: str,
    stream: BinaryIO,
    source_name: str,
    *,
    format: str | Parser | None = None,
    skip_invalid: bool = False,
    ctx: Context,
    batch: int = 5000,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a retailer's file into the customer's purchases.

    The format is detected from the first ``HEAD_BYTES`` unless named. By default a file
    with any line that cannot be read is refused whole (:class:`ImportRefused`, naming up to
    :data:`MAX_ERRORS` lines), leaving nothing; with ``skip_invalid`` the good lines are
    imported and the others reported. Lines already held are counted as duplicates.
    ``progress`` is called with the number of lines read after each batch.

    A zip archive (Amazon's "Request my data" download) is one import of the lines of each
    of its purchase files in turn (:mod:`connectors.archive` says which, and its limits:
    all it inflates is bounded by ``import_max_bytes``), all-or-nothing across the archive.
    """
    opened = _open_archive(inst, stream, format)
    if opened is not None:
        with opened:
            return import_lines(
                session,
                inst,
                customer_id,
                _archive_lines(opened, source_name),
                opened.format_name,
                source_name,
                skip_invalid=skip_invalid,
                ctx=ctx,
                batch=batch,
                progress=progress,
            )
    parser, source = _open_source(stream, format)
    return import_lines(
        session,
        inst,
        customer_id,
        _lines(parser, source, source_name),
        parser.name,
        source_name,
        skip_invalid=skip_invalid,
        ctx=ctx,
        batch=batch,
        progress=progress,
    )


def import_lines(
    session: Session,
    inst: Instance,
    customer_id: str,
    items: Iterable[PurchaseLine | ParseError],
    format_name: str,
    source_name: str,
    *,
    skip_invalid: bool = False,
    ctx: Context,
    batch: int = 5000,
    progress: Progress | None = None,
    supplier_id: str | None = None,
) -> ImportResult:
    """Import normalised lines (a parsed file, or a retailer's pushed batch when
    ``supplier_id`` names it), as :func:`import_file` describes."""
    if batch < 1:
        raise ValueError("batch must be positive")
    import_id, key = _start(session, inst, customer_id, format_name, source_name, supplier_id)
    imported = duplicates = updated = rejected = read = 0
    errors: list[str] = []
    retailers: set[str] = set()
    pending: list[PurchaseLine] = []
    evidence = derived_interests.Accumulator()
    try:
        for item in items:
            read += 1
            if isinstance(item, ParseError):
                rejected += 1
                if len(errors) < MAX_ERRORS:
                    errors.append(str(item))
                if not skip_invalid:
                    pending.clear()
                    if len(errors) >= MAX_ERRORS:
                        break
                continue
            if rejected and not skip_invalid:
                continue  # refused already: read on only to name more bad lines
            retailers.add(item.retailer)
            pending.append(item)
            if len(pending) >= batch:
                new, dup, upd = _stage(session, inst, key, import_id, pending, evidence)
                imported, duplicates, updated = imported + new, duplicates + dup, updated + upd
                pending = []
                if progress is not None:
                    progress(read)
        if rejected and not skip_invalid:
            result = ImportResult(format_name, 0, 0, rejected, tuple(errors))
            _discard(
                session,
                import_id,
                ctx,
                customer_id,
                Reason("purchases.import_refused", {"format": format_name, "rejected": rejected}),
            )
            raise ImportRefused(result)
        if pending:
            new, dup, upd = _stage(session, inst, key, import_id, pending, evidence)
            imported, duplicates, updated = imported + new, duplicates + dup, updated + upd
        result = ImportResult(
            format_name, imported, duplicates, rejected, tuple(errors), import_id, updated
        )
        _publish(session, inst, key, import_id, source_name, retailers, result, ctx, evidence)
        if progress is not None:
            progress(read)
        return result
    except (ImportRefused, ImportInterrupted):
        raise
    except BaseException:
        _forget_staging(session, import_id)
        raise
    finally:
        _RUNNING.discard(import_id)
        close = getattr(items, "close", None)
        if close is not None:  # a generator left early: close it while its source is open
            close()


def _lines(parser: Parser, source: BinaryIO, name: str) -> Iterator[PurchaseLine | ParseError]:
    """The parser's lines; an error it raises instead of yielding ends the file as one."""
    try:
        yield from parser.parse(source, name)
    except ParseError as exc:
        yield exc


def _forget_staging(session: Session, import_id: str) -> None:
    """Best effort after a failure: what a failed import staged goes (a later import would
    clear it otherwise)."""
    try:
        session.rollback()
        with unit_of_work(session) as uow:
            _drop_imports(session, [import_id])
            uow.commit()
    except Exception:  # noqa: S110 - the original failure is what the caller must see
        pass


# -- reading -----------------------------------------------------------------------------------
def customer_by_email(session: Session, inst: Instance, email: str) -> str:
    """The id of the customer at ``email`` (the operator's commands name customers so)."""
    with unit_of_work(session):
        found = session.execute(
            select(Customer.id).where(Customer.email_index == inst.vault.email_index(email))
        ).scalar_one_or_none()
    if found is None:
        raise NotFound("no customer has that address")
    return found


# -- what the customer sees -----------------------------------------------------------------
def _visible(customer_id: str, column: Any = Purchase) -> Any:
    return (
        select(column)
        .join(PurchaseImport, PurchaseImport.id == Purchase.import_id)
        .where(
            Purchase.customer_id == customer_id,
            PurchaseImport.status == PurchaseImportStatus.DONE,
        )
    )


def open_purchases(
    session: Session, inst: Instance, key: CustomerKey, *, retailer: str | None = None
) -> list[dict[str, Any]]:
    """The customer's visible purchases, opened, newest first (no log entry: the caller's)."""
    query = _visible(key.customer_id)
    if retailer is not None:
        query = query.where(
            Purchase.retailer_token == retailer_token(inst, key.customer_id, retailer)
        )
    found = []
    for row in session.execute(query).scalars():
        record = inst.vault.open(key, LINES, row.id, "record", row.sealed)
        found.append({"id": row.id, "import_id": row.import_id, **record})
    found.sort(key=lambda r: (r["ordered_at"], r["line_number"]), reverse=True)
    return found


def list_purchases(
    session: Session,
    inst: Instance,
    customer_id: str,
    ctx: Context,
    *,
    retailer: str | None = None,
) -> list[dict[str, Any]]:
    """The customer's purchases (of one retailer, if given) decrypted, newest first; logged."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        found = open_purchases(session, inst, key, retailer=retailer)
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=Reason("purchases.viewed"),
            categories=CATEGORIES,
        )
        uow.commit()
        return found


def list_imports(
    session: Session, inst: Instance, customer_id: str, ctx: Context
) -> list[dict[str, Any]]:
    """The customer's finished imports, newest first: format, counts, source and retailers."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        rows = session.execute(
            select(PurchaseImport)
            .where(
                PurchaseImport.customer_id == customer_id,
                PurchaseImport.status == PurchaseImportStatus.DONE,
            )
            .order_by(PurchaseImport.created_at.desc())
        ).scalars()
        found = [
            {
                "id": row.id,
                "format": row.format,
                "imported": row.imported,
                "duplicates": row.duplicates,
                "rejected": row.rejected,
                "created_at": row.created_at.isoformat(),
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                **inst.vault.open(key, IMPORTS, row.id, "detail", row.detail),
            }
            for row in rows
        ]
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=Reason("purchases.imports_viewed"),
            categories=CATEGORIES,
        )
        uow.commit()
        return found


# -- deleting ----------------------------------------------------------------------------------
def _delete_where(
    session: Session,
    inst: Instance,
    customer_id: str,
    ctx: Context,
    conditions: Iterable[Any],
    reason: Callable[[int], Reason],
    detail: dict[str, Any],
) -> int:
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        visible = _visible(customer_id, Purchase.id)
        for condition in conditions:
            visible = visible.where(condition)
        ids = list(session.execute(visible).scalars())
        if not ids:
            raise NotFound("No such purchases.")
        for chunk in range(0, len(ids), _LOOKUP_CHUNK):
            part = ids[chunk : chunk + _LOOKUP_CHUNK]
            session.execute(delete(Purchase).where(Purchase.id.in_(part)))
        derived_interests.recompute(session, inst, key, held_lines(session, inst, key))
        ctx.log(
            session,
            "delete",
            customer_id=customer_id,
            reason=reason(len(ids)),
            categories=CATEGORIES,
            detail=seal_detail(inst, key, detail),
        )
        uow.commit()
        return len(ids)


def delete_purchase(
    session: Session, inst: Instance, customer_id: str, purchase_id: str, ctx: Context
) -> int:
    """Delete one of the customer's purchase lines (NotFound for anyone else's)."""
    return _delete_where(
        session,
        inst,
        customer_id,
        ctx,
        [Purchase.id == purchase_id],
        lambda lines: Reason("purchases.line_deleted", {"lines": lines}),
        {"purchase": purchase_id},
    )


def delete_import(
    session: Session, inst: Instance, customer_id: str, import_id: str, ctx: Context
) -> int:
    """Delete every line one import brought, and the import; returns the lines deleted."""
    with unit_of_work(session) as uow:
        row = session.get(PurchaseImport, import_id)
        if row is None or row.customer_id != customer_id or row.status != PurchaseImportStatus.DONE:
            raise NotFound("No such import.")
        key = customer_key(session, inst, customer_id)
        count = len(
            session.execute(select(Purchase.id).where(Purchase.import_id == import_id)).all()
        )
        session.execute(delete(Purchase).where(Purchase.import_id == import_id))
        session.execute(delete(PurchaseImport).where(PurchaseImport.id == import_id))
        derived_interests.recompute(session, inst, key, held_lines(session, inst, key))
        ctx.log(
            session,
            "delete",
            customer_id=customer_id,
            reason=Reason("purchases.import_deleted", {"lines": count}),
            categories=CATEGORIES,
            detail=seal_detail(inst, key, {"import": import_id}),
        )
        uow.commit()
        return count


def delete_retailer(
    session: Session, inst: Instance, customer_id: str, retailer: str, ctx: Context
) -> int:
    """Delete every visible line of one retailer (matched by its token: case and Unicode
    forms folded); returns how many."""
    return _delete_where(
        session,
        inst,
        customer_id,
        ctx,
        [Purchase.retailer_token == retailer_token(inst, customer_id, retailer)],
        lambda lines: Reason("purchases.retailer_deleted", {"lines": lines}),
        {"retailer": retailer},
    )


def forget_customer(session: Session, customer_id: str) -> None:
    """Erasure's part: every purchase and import of the customer, staging ones too (in the
    caller's transaction; their records are already unreadable once the DEK is gone)."""
    session.execute(delete(Purchase).where(Purchase.customer_id == customer_id))
    session.execute(delete(PurchaseImport).where(PurchaseImport.customer_id == customer_id))
    session.execute(delete(PurchaseUpload).where(PurchaseUpload.customer_id == customer_id))
    session.execute(
        delete(PurchaseOrderReview).where(PurchaseOrderReview.customer_id == customer_id)
    )
    session.execute(delete(DerivedInterests).where(DerivedInterests.customer_id == customer_id))
