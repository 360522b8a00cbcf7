"""Signed checkpoints of the access log (C2SP ``tlog-checkpoint`` in a C2SP ``signed-note``).

The signing key is an Ed25519 seed in the keyring (``log_signing``), never in the database;
the note's key name is the log's origin, ``INFOMEDIARY_LOG_ORIGIN`` (default: the issuer's
host plus ``/log``). A checkpoint is signed by the recurring job ``log_checkpoint`` every
``INFOMEDIARY_CHECKPOINT_SECONDS`` when the log grew, and by ``infomediary audit checkpoint`` at
once; each is kept in ``log_checkpoints`` so consistency can be proved between any two. Reading
a checkpoint writes nothing.

Verification (:func:`verify_log`) recomputes the log with :func:`infomediary.audit.log.verify`
against every stored checkpoint and every checkpoint kept elsewhere that it is given: a log
restored from an older copy and grown again, truncated, or rewritten disagrees with a
checkpoint signed before, and the report names that checkpoint and the size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infomediary.audit.log import ExpectedRoot, VerifyResult, current_root, verify
from infomediary.config import Settings
from infomediary.db import begin_snapshot
from infomediary.errors import BadCheckpoint, InvalidProofRequest, LogShrank, NoCheckpoint
from infomediary.instance import Instance
from infomediary.models import Job, LogCheckpoint, LogHead, utcnow
from infomediary.services import jobs
from infomediary.services.uow import unit_of_work
from infomediary.statuses import JobStatus
from infomediary.tlog import note

JOB = "log_checkpoint"
DEFAULT_HOST = "localhost"


def origin(settings: Settings) -> str:
    """The log's origin: the setting, or the issuer's host (with its port) plus ``/log``."""
    if settings.log_origin:
        return settings.log_origin
    host = urlsplit(settings.issuer).netloc if settings.issuer else ""
    return f"{host or DEFAULT_HOST}/log"


def signer(inst: Instance) -> note.Signer:
    seed = inst.keyring.secret("log_signing")
    return note.Signer(origin(inst.settings), Ed25519PrivateKey.from_private_bytes(seed))


def verifier(inst: Instance) -> note.Verifier:
    return signer(inst).verifier


def verifier_key(inst: Instance) -> str:
    """The verifier key in the signed-note ``vkey`` form: ``<origin>+<key id>+<base64 key>``."""
    return verifier(inst).vkey


def latest(session: Session) -> LogCheckpoint | None:
    return session.execute(
        select(LogCheckpoint).order_by(LogCheckpoint.size.desc()).limit(1)
    ).scalar_one_or_none()


def latest_note(session: Session, raw_size: object = None) -> str:
    """The latest signed checkpoint's text, or with ``raw_size`` the one kept of that size
    (read only)."""
    with unit_of_work(session):
        if raw_size is None:
            found = latest(session)
            if found is None:
                raise NoCheckpoint("No checkpoint has been signed yet.")
            return found.note
        size = _size(raw_size)
        kept = session.get(LogCheckpoint, size)
        if kept is None:
            raise NoCheckpoint(f"No checkpoint of size {size} was signed.")
        return kept.note


def _size(raw: object) -> int:
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise InvalidProofRequest({"size": "a whole number"})
    size = int(raw)
    if size >= 1 << 63:
        raise InvalidProofRequest({"size": f"from 0 to {(1 << 63) - 1}"})
    return size


def sizes(session: Session, *, before: int | None = None, limit: int = 100) -> list[int]:
    """Sizes of the kept checkpoints, newest first (``before``: only smaller ones)."""
    query = select(LogCheckpoint.size).order_by(LogCheckpoint.size.desc()).limit(limit)
    if before is not None:
        query = query.where(LogCheckpoint.size < before)
    with unit_of_work(session):
        return [int(size) for size in session.execute(query).scalars()]


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    size: int
    root: bytes
    note: str
    signed_at: datetime

    @classmethod
    def of(cls, row: LogCheckpoint) -> SignedCheckpoint:
        return cls(int(row.size), bytes(row.root), row.note, row.signed_at)


@dataclass(frozen=True, slots=True)
class Signed:
    checkpoint: SignedCheckpoint
    new: bool


def sign(session: Session, inst: Instance, *, at: datetime | None = None) -> Signed:
    """Sign a checkpoint of the log as it is now, unless the latest already has its size."""
    with unit_of_work(session) as uow:
        # the head's row lock orders this after any append in flight: size and root agree
        session.execute(select(LogHead.id).where(LogHead.id == 1).with_for_update())
        size, root = current_root(session)
        if size == 0:
            raise NoCheckpoint("The access log is empty: there is nothing to sign yet.")
        last = latest(session)
        if last is not None and last.size == size:
            return Signed(SignedCheckpoint.of(last), False)
        if last is not None and last.size > size:
            raise LogShrank(
                f"the log holds {size} entries but a checkpoint of {last.size} was signed: "
                "run `infomediary audit verify`"
            )
        text = note.Checkpoint(origin(inst.settings), size, root).text()
        row = LogCheckpoint(
            size=size, root=root, note=signer(inst).sign(text), signed_at=at or utcnow()
        )
        session.add(row)
        signed = Signed(SignedCheckpoint.of(row), True)
        uow.commit()
        return signed


def _job(session: Session, inst: Instance, run: jobs.JobRun) -> datetime:
    last = None
    with unit_of_work(session):
        last = latest(session)
        size = current_root(session)[0]
        grew = size > 0 and (last is None or size != last.size)
    if grew:
        sign(session, inst, at=run.now)
    return run.now + timedelta(seconds=inst.settings.checkpoint_seconds)


jobs.register(JOB, _job, max_attempts=10)


def schedule(inst: Instance) -> None:
    """Make sure the recurring checkpoint job exists and is not given up: what a worker does
    as it starts (the app's own, or ``infomediary worker``)."""
    with inst.sessions() as session, unit_of_work(session) as uow:
        row = session.execute(select(Job.id, Job.status).where(Job.key == JOB)).first()
        if row is None:
            jobs.enqueue(session, JOB, {}, utcnow(), key=JOB)
        elif row.status in (JobStatus.FAILED, JobStatus.DONE):
            session.execute(
                update(Job)
                .where(Job.id == row.id)
                .values(status=JobStatus.QUEUED, attempts=0, run_after=utcnow(), locked_until=None)
            )
        uow.commit()


# -- verification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kept:
    """A checkpoint kept outside the database, as read from a file."""

    label: str
    text: str


def open_kept(inst: Instance, kept: Kept) -> note.Checkpoint:
    """The checkpoint a kept file holds, if it is ours; a one-line reason otherwise."""
    try:
        return note.open_checkpoint(kept.text, verifier(inst), origin(inst.settings))
    except note.NoteError as exc:
        raise BadCheckpoint(f"{kept.label}: {exc}") from None


@dataclass(frozen=True, slots=True)
class LogReport:
    result: VerifyResult
    stored: int  # stored checkpoints checked
    kept: int  # checkpoints from outside checked


def verify_log(session: Session, inst: Instance, kept: tuple[Kept, ...] = ()) -> LogReport:
    """The whole log checked: chain, entries, tree, every stored checkpoint (its signature
    and its root), and every checkpoint kept outside (which must be ours, and agree)."""
    outside = [(k.label, open_kept(inst, k)) for k in kept]
    key = verifier(inst)
    expected: list[ExpectedRoot] = []
    with unit_of_work(session):
        stored = [
            SignedCheckpoint.of(row)
            for row in session.execute(select(LogCheckpoint).order_by(LogCheckpoint.size)).scalars()
        ]
    for row in stored:
        label = f"the stored checkpoint of size {row.size}"
        try:
            opened = note.parse_checkpoint(note.open_note(row.note, key))
        except note.NoteError as exc:
            return LogReport(VerifyResult(False, 0, None, f"{label}: {exc}"), 0, 0)
        if opened.size != row.size or opened.root != row.root:
            return LogReport(
                VerifyResult(False, 0, None, f"{label} does not say what its row says"), 0, 0
            )
        expected.append(ExpectedRoot(row.size, row.root, label))
    expected.extend(ExpectedRoot(c.size, c.root, f"checkpoint {label}") for label, c in outside)
    with unit_of_work(session):
        begin_snapshot(session)  # one state of the log, read without holding writers up
        result = verify(session, expected=tuple(expected))
    return LogReport(result, len(stored), len(outside))
