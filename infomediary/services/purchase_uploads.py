"""Purchases imported by a job: a large file uploaded on the dashboard, or a large batch a
retailer pushed, kept sealed in chunks until the ``purchase_upload`` job imports it.

An upload is one ``purchase_uploads`` row (origin ``file`` or ``push``; status ``queued``,
``running``, ``done`` or ``failed``) and its bytes, ``purchase_upload_chunks`` of at most
:data:`CHUNK_BYTES` each, every chunk one AES-GCM record under the customer's key (record id:
the upload's id and the chunk's number), written a chunk at a time: a file is never held in
memory whole, and a worker on another host reads it from the database. The job imports it
exactly as a synchronous import does (all or nothing, idempotent by line token, one log
entry), records the counts (``result``, no line) or the refusal (``error``: a code and counts,
never personal data; the bad lines, named by number, sealed in ``detail``), and deletes the
chunks in the same commit. While it runs, ``result`` holds how many lines it has read.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from connectors.lines import PurchaseLine
from infomediary.audit.log import Actor
from infomediary.crypto.vault import CustomerKey
from infomediary.errors import ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    PurchaseImport,
    PurchaseUpload,
    PurchaseUploadChunk,
    PurchaseUploadOrigin,
    PurchaseUploadStatus,
    Supplier,
)
from infomediary.services import Context, jobs, purchases
from infomediary.services.customer_keys import customer_key
from infomediary.services.uow import unit_of_work

JOB = "purchase_upload"
UPLOADS = "purchase_uploads"
CHUNKS = "purchase_upload_chunks"
#: Bytes of an upload per sealed chunk.
CHUNK_BYTES = 1024 * 1024
#: Lines a job imports per batch (and so how often its progress moves).
JOB_BATCH = 1000
#: Uploads the purchases page lists, newest first.
SHOWN = 20
ERROR_LENGTH = 255
#: The format of pushed lines, and of their imports.
PUSH_FORMAT = "push"


@dataclass(frozen=True, slots=True)
class Queued:
    """An upload handed to its job: the upload's id (what a supplier polls) and the job's."""

    upload_id: str
    job_id: str


# -- storing -----------------------------------------------------------------------------------
def _chunk_id(upload_id: str, seq: int) -> str:
    return f"{upload_id}:{seq}"


def _seal_chunk(inst: Instance, key: CustomerKey, upload_id: str, seq: int, data: bytes) -> bytes:
    return inst.vault.seal(
        key, CHUNKS, _chunk_id(upload_id, seq), "data", base64.b64encode(data).decode("ascii")
    )


def _store(
    session: Session,
    inst: Instance,
    key: CustomerKey,
    *,
    origin: PurchaseUploadOrigin,
    stream: BinaryIO,
    detail: dict[str, Any],
    payload: dict[str, Any],
    supplier_id: str | None = None,
) -> Queued:
    """Add the upload, its chunks (read from ``stream`` a chunk at a time) and its job, in the
    caller's unit of work."""
    upload_id = str(uuid.uuid4())
    session.add(
        PurchaseUpload(
            id=upload_id,
            customer_id=key.customer_id,
            origin=origin,
            supplier_id=supplier_id,
            status=PurchaseUploadStatus.QUEUED,
            size=0,
            detail=inst.vault.seal(key, UPLOADS, upload_id, "detail", detail),
        )
    )
    session.flush()
    size = seq = 0
    while data := _read_full(stream, CHUNK_BYTES):
        session.execute(
            insert(PurchaseUploadChunk),
            [
                {
                    "upload_id": upload_id,
                    "seq": seq,
                    "sealed": _seal_chunk(inst, key, upload_id, seq, data),
                }
            ],
        )
        size += len(data)
        seq += 1
    job_id = jobs.enqueue(session, JOB, {"upload_id": upload_id, **payload})
    session.execute(
        update(PurchaseUpload)
        .where(PurchaseUpload.id == upload_id)
        .values(size=size, job_id=job_id)
        .execution_options(synchronize_session=False)
    )
    return Queued(upload_id, job_id)


def queue_file(
    session: Session,
    inst: Instance,
    customer_id: str,
    stream: BinaryIO,
    source_name: str,
    *,
    skip_invalid: bool,
    ctx: Context,
) -> Queued:
    """Keep an uploaded file sealed in chunks and queue its import (a unit of work): the job
    imports it with :func:`infomediary.services.purchases.import_file`."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        queued = _store(
            session,
            inst,
            key,
            origin=PurchaseUploadOrigin.FILE,
            stream=stream,
            detail={"source": source_name},
            payload={"skip_invalid": skip_invalid, "request_id": ctx.request_id},
        )
        uow.commit()
    return queued


def queue_push(
    session: Session,
    inst: Instance,
    key: CustomerKey,
    lines: list[PurchaseLine],
    source_name: str,
    supplier_id: str,
    request_id: str,
) -> Queued:
    """Keep a pushed batch sealed in chunks and queue its import, in the caller's unit of
    work (its idempotency key is answered in the same commit)."""
    body = json.dumps(
        [purchases.record_of(line) for line in lines], separators=(",", ":"), ensure_ascii=False
    ).encode()
    return _store(
        session,
        inst,
        key,
        origin=PurchaseUploadOrigin.PUSH,
        stream=io.BytesIO(body),
        detail={"source": source_name},
        payload={"request_id": request_id},
        supplier_id=supplier_id,
    )


# -- reading the chunks back -------------------------------------------------------------------
class ChunkReader(io.RawIOBase):
    """An upload's bytes, opened a chunk at a time, each read in a short transaction of its
    own (the import's batches commit in between): never the whole file in memory. It can
    seek (every chunk but the last holds exactly :data:`CHUNK_BYTES`), so a zip archive,
    whose directory is at its end, is read from the database like any file."""

    def __init__(self, inst: Instance, key: CustomerKey, upload_id: str, size: int) -> None:
        self._inst = inst
        self._key = key
        self._upload_id = upload_id
        self._size = size
        self._pos = 0
        self._held: tuple[int, bytes] | None = None  # the chunk last opened, by number

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def _chunk(self, seq: int) -> bytes:
        if self._held is not None and self._held[0] == seq:
            return self._held[1]
        with self._inst.sessions() as session:
            sealed = session.execute(
                select(PurchaseUploadChunk.sealed).where(
                    PurchaseUploadChunk.upload_id == self._upload_id,
                    PurchaseUploadChunk.seq == seq,
                )
            ).scalar_one_or_none()
            session.rollback()
        if sealed is None:
            return b""
        record_id = _chunk_id(self._upload_id, seq)
        encoded = self._inst.vault.open(self._key, CHUNKS, record_id, "data", sealed)
        data = base64.b64decode(encoded)
        self._held = (seq, data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        seq, offset = divmod(self._pos, CHUNK_BYTES)
        chunk = self._chunk(seq)
        n = max(0, min(len(view), len(chunk) - offset))
        view[:n] = chunk[offset : offset + n]
        self._pos += n
        return n


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end (a chunk is whole but the last)."""
    parts: list[bytes] = []
    wanted = size
    while wanted and (data := stream.read(wanted)):
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts)


def _pushed_lines(reader: BinaryIO, source: str) -> Iterator[PurchaseLine]:
    for number, record in enumerate(json.load(reader), start=1):
        yield purchases.line_of({**record, "source": source, "line_number": number})


# -- the job -----------------------------------------------------------------------------------
def _finish(
    session: Session,
    inst: Instance,
    key: CustomerKey,
    upload_id: str,
    run: jobs.JobRun,
    *,
    status: PurchaseUploadStatus,
    result: dict[str, Any] | None,
    error: str | None = None,
    detail: dict[str, Any] | None = None,
    import_id: str | None = None,
) -> None:
    """The upload's end, its chunks deleted and the job completed: one commit."""
    with unit_of_work(session) as uow:
        values: dict[str, Any] = {
            "status": status,
            "result": json.dumps(result, sort_keys=True) if result is not None else None,
            "error": error[:ERROR_LENGTH] if error else None,
            "import_id": import_id,
            "finished_at": run.now,
        }
        if detail is not None:
            values["detail"] = inst.vault.seal(key, UPLOADS, upload_id, "detail", detail)
        session.execute(
            update(PurchaseUpload)
            .where(PurchaseUpload.id == upload_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            delete(PurchaseUploadChunk).where(PurchaseUploadChunk.upload_id == upload_id)
        )
        jobs.complete(session, run)
        uow.commit()


def _progress(session: Session, upload_id: str) -> purchases.Progress:
    def report(read: int) -> None:
        with unit_of_work(session) as uow:
            session.execute(
                update(PurchaseUpload)
                .where(
                    PurchaseUpload.id == upload_id,
                    PurchaseUpload.status == PurchaseUploadStatus.RUNNING,
                )
                .values(result=json.dumps({"read": read}))
                .execution_options(synchronize_session=False)
            )
            uow.commit()

    return report


@dataclass(frozen=True, slots=True)
class _Started:
    id: str
    customer_id: str
    origin: str
    supplier_id: str | None
    source: str
    key: CustomerKey
    size: int


def _start(session: Session, inst: Instance, upload_id: Any) -> _Started | None:
    """Mark the upload ``running`` (a unit of work); None if it is gone or already ended."""
    with unit_of_work(session) as uow:
        upload = session.get(PurchaseUpload, upload_id) if isinstance(upload_id, str) else None
        if upload is None or upload.status in (
            PurchaseUploadStatus.DONE,
            PurchaseUploadStatus.FAILED,
        ):
            return None
        key = customer_key(session, inst, upload.customer_id)
        opened = inst.vault.open(key, UPLOADS, upload.id, "detail", upload.detail)
        started = _Started(
            upload.id,
            upload.customer_id,
            upload.origin,
            upload.supplier_id,
            str(opened.get("source", "upload")),
            key,
            upload.size,
        )
        upload.status = PurchaseUploadStatus.RUNNING
        upload.result = json.dumps({"read": 0})
        uow.commit()
    return started


def run_upload(session: Session, inst: Instance, run: jobs.JobRun) -> None:
    """The ``purchase_upload`` job: import the upload, record its end, delete its chunks."""
    upload = _start(session, inst, run.payload.get("upload_id"))
    if upload is None:
        return  # erased, or ended by an earlier run: nothing to do
    key, source = upload.key, upload.source
    request_id = run.payload.get("request_id")
    request_id = request_id if isinstance(request_id, str) else "-"
    reader = io.BufferedReader(ChunkReader(inst, key, upload.id, upload.size), CHUNK_BYTES)
    try:
        if upload.origin == PurchaseUploadOrigin.PUSH and upload.supplier_id is not None:
            result = purchases.import_lines(
                session,
                inst,
                upload.customer_id,
                _pushed_lines(reader, source),
                PUSH_FORMAT,
                source,
                ctx=Context.supplier(upload.supplier_id, request_id),
                batch=JOB_BATCH,
                progress=_progress(session, upload.id),
                supplier_id=upload.supplier_id,
            )
        else:
            result = purchases.import_file(
                session,
                inst,
                upload.customer_id,
                reader,
                source,
                skip_invalid=bool(run.payload.get("skip_invalid")),
                ctx=Context(Actor.customer(upload.customer_id), request_id),
                batch=JOB_BATCH,
                progress=_progress(session, upload.id),
            )
    except purchases.ImportRefused as refused:
        counts = refused.result
        _finish(
            session,
            inst,
            key,
            upload.id,
            run,
            status=PurchaseUploadStatus.FAILED,
            result={"imported": 0, "duplicates": 0, "rejected": counts.rejected},
            error=f"import_refused: {counts.rejected} line(s) cannot be read",
            detail={"source": source, "errors": list(counts.errors)},
        )
        return
    except ValidationFailed as exc:
        _finish(
            session,
            inst,
            key,
            upload.id,
            run,
            status=PurchaseUploadStatus.FAILED,
            result=None,
            error=f"{exc.code}: the file was not imported",
            detail={"source": source, "message": exc.message},
        )
        return
    except Exception as exc:
        if run.attempt < run.max_attempts:
            raise  # retried
        session.rollback()  # the last attempt: the upload ends with the job
        _finish(
            session,
            inst,
            key,
            upload.id,
            run,
            status=PurchaseUploadStatus.FAILED,
            result=None,
            error=f"{jobs.describe(exc)}: the import did not finish",
        )
        return
    finally:
        reader.close()
    _finish(
        session,
        inst,
        key,
        upload.id,
        run,
        status=PurchaseUploadStatus.DONE,
        result={
            "imported": result.imported,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
        },
        detail={"source": source, "errors": list(result.errors)} if result.errors else None,
        import_id=result.import_id,
    )


jobs.register(JOB, run_upload, max_attempts=3, lease_seconds=3600)


# -- what the customer and the supplier see ----------------------------------------------------
def _counts(upload: PurchaseUpload) -> dict[str, Any]:
    return json.loads(upload.result) if upload.result else {}


def _view(upload: PurchaseUpload, opened: dict[str, Any], supplier: str | None) -> dict[str, Any]:
    counts = _counts(upload)
    running = upload.status in (PurchaseUploadStatus.QUEUED, PurchaseUploadStatus.RUNNING)
    return {
        "id": upload.id,
        "origin": upload.origin,
        "status": upload.status,
        "size": upload.size,
        "source": opened.get("source", ""),
        "supplier": supplier,
        "read": counts.get("read", 0) if running else None,
        "imported": counts.get("imported"),
        "duplicates": counts.get("duplicates"),
        "rejected": counts.get("rejected"),
        "errors": list(opened.get("errors", [])),
        "message": opened.get("message"),
        "created_at": upload.created_at.isoformat(),
        "finished_at": upload.finished_at.isoformat() if upload.finished_at else None,
    }


def list_uploads(session: Session, inst: Instance, customer_id: str) -> list[dict[str, Any]]:
    """The customer's latest uploads and pushed batches run as jobs, newest first, opened (a
    read of the customer's own page: its log entry is the page's)."""
    with unit_of_work(session):
        rows = list(
            session.execute(
                select(PurchaseUpload, Supplier.name)
                .outerjoin(Supplier, Supplier.id == PurchaseUpload.supplier_id)
                .where(PurchaseUpload.customer_id == customer_id)
                .order_by(PurchaseUpload.created_at.desc(), PurchaseUpload.id)
                .limit(SHOWN)
            )
        )
        if not rows:
            return []
        key = customer_key(session, inst, customer_id)
        return [
            _view(upload, inst.vault.open(key, UPLOADS, upload.id, "detail", upload.detail), name)
            for upload, name in rows
        ]


def active(uploads: list[dict[str, Any]]) -> bool:
    return any(
        u["status"] in (PurchaseUploadStatus.QUEUED, PurchaseUploadStatus.RUNNING) for u in uploads
    )


def supplier_names(session: Session, import_ids: list[str]) -> dict[str, str]:
    """The name of the retailer that pushed each of these imports (imports of files have none)."""
    if not import_ids:
        return {}
    with unit_of_work(session):
        found = session.execute(
            select(PurchaseImport.id, Supplier.name)
            .join(Supplier, Supplier.id == PurchaseImport.supplier_id)
            .where(PurchaseImport.id.in_(import_ids))
        )
        return {str(import_id): str(name) for import_id, name in found}


def job_status(
    session: Session, upload_id: str, supplier_id: str, customer_id: str
) -> dict[str, Any] | None:
    """A pushed batch's status as the supplier that pushed it sees it (None for anyone else):
    status, lines read so far while it runs, the counts once done."""
    with unit_of_work(session):
        upload = session.get(PurchaseUpload, upload_id)
        if (
            upload is None
            or upload.origin != PurchaseUploadOrigin.PUSH
            or upload.supplier_id != supplier_id
            or upload.customer_id != customer_id
        ):
            return None
        counts = _counts(upload)
        body: dict[str, Any] = {"job": upload.id, "status": upload.status}
        if upload.status == PurchaseUploadStatus.RUNNING:
            body["read"] = counts.get("read", 0)
        if upload.status in (PurchaseUploadStatus.DONE, PurchaseUploadStatus.FAILED):
            body.update(
                {
                    "imported": counts.get("imported", 0),
                    "duplicates": counts.get("duplicates", 0),
                    "rejected": counts.get("rejected", 0),
                    "import": upload.import_id,
                }
            )
        if upload.status == PurchaseUploadStatus.FAILED:
            body["error"] = (upload.error or "failed").split(":")[0]
        return body


def chunk_count(session: Session, upload_id: str) -> int:
    """How many chunks an upload still has (none once its job ended)."""
    with unit_of_work(session):
        return int(
            session.execute(
                select(func.count())
                .select_from(PurchaseUploadChunk)
                .where(PurchaseUploadChunk.upload_id == upload_id)
            ).scalar_one()
        )


def export_uploads(session: Session, customer_id: str) -> list[dict[str, Any]]:
    """The customer's uploads as their export lists them: origin, status, size, counts and the
    retailer that pushed it; no file name, line or refusal message (in the caller's
    transaction)."""
    rows = session.execute(
        select(PurchaseUpload, Supplier.name)
        .outerjoin(Supplier, Supplier.id == PurchaseUpload.supplier_id)
        .where(PurchaseUpload.customer_id == customer_id)
        .order_by(PurchaseUpload.created_at, PurchaseUpload.id)
    )
    return [
        {
            "id": upload.id,
            "origin": upload.origin,
            "status": upload.status,
            "size": upload.size,
            "pushed_by": name,
            "counts": _counts(upload),
            "error": (upload.error or "").split(":")[0] or None,
            "import": upload.import_id,
            "created_at": upload.created_at.isoformat(),
            "finished_at": upload.finished_at.isoformat() if upload.finished_at else None,
        }
        for upload, name in rows
    ]
