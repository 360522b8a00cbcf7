"""Which KEK a running process wraps under, and its lease on the versions it may still use.

Key rotation runs in one process (``infomediary keys rotate``) while servers run in others,
each with the keyring it read at start. Two mechanisms keep them safe together (see
docs/ARCHITECTURE.md, "Key hierarchy"):

- **The database names the active KEK** (``keyring_state``). A transaction that stores a
  new data key reads it under a share lock (``SELECT ... FOR SHARE`` on PostgreSQL; every
  SQLite transaction is ``BEGIN IMMEDIATE``) and re-wraps the key under that version if the
  process wrapped it under another (:func:`install_wrap_guard`). Rotation updates the row,
  so it waits for such transactions, and re-wraps only after its update committed: no data
  key under an older KEK can be stored after that.
- **Each process holds a lease** (``process_leases``): the KEK versions it may still wrap
  with, refreshed in the background every quarter of the lease period and expiring after
  it (``KEY_LEASE_SECONDS``, default 120 s). A version the process stops using stays named
  for one more period, for work it started under it. ``keys prune`` refuses to remove a
  version a live lease names, and says how long to wait; a killed process's lease lapses.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import weakref
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, event, insert, select, update
from sqlalchemy.orm import Session, UOWTransaction, sessionmaker

from infomediary.crypto.keyring import FileKeyring, Keyring, KeyringError
from infomediary.crypto.vault import Vault
from infomediary.db import fork_safe, rowcount
from infomediary.models import DataKey, KeyringState, ProcessLease, utcnow

#: Lease period (and grace period), seconds, when ``KEY_LEASE_SECONDS`` is not set.
DEFAULT_LEASE_SECONDS = 120.0
STATE_ID = 1

log = logging.getLogger("infomediary.leases")


# -- the database's active KEK ------------------------------------------------------------
def active_kek(session: Session, *, lock: str | None = None) -> int | None:
    """The KEK version the database names active; ``lock`` is ``"share"`` or ``"update"``."""
    query = select(KeyringState.active_kek).where(KeyringState.id == STATE_ID)
    if lock:
        query = query.with_for_update(read=lock == "share")
    found = session.execute(query).scalar_one_or_none()
    return None if found is None else int(found)


def set_active_kek(session: Session, version: int) -> None:
    """Name ``version`` active (in the caller's transaction), creating the row if missing."""
    values = {"active_kek": version, "updated_at": utcnow()}
    changed = session.execute(
        update(KeyringState).where(KeyringState.id == STATE_ID).values(**values)
    )
    if not rowcount(changed):
        session.execute(insert(KeyringState).values(id=STATE_ID, **values))


def ensure_keyring_state(session: Session, keyring: Keyring, *, create: bool) -> int | None:
    """Refuse a keyring lacking the KEK the database names active (a copy taken before the
    last rotation); with ``create`` (``infomediary init``), record the keyring's if none is."""
    named = active_kek(session)
    if named is None:
        if create:
            set_active_kek(session, keyring.active_kek_version)
            return keyring.active_kek_version
        return None
    if named not in keyring.kek_versions():
        keyring.reload()
    if named not in keyring.kek_versions():
        hint = (
            "copy the keyring from where `infomediary keys rotate` ran"
            if isinstance(keyring, FileKeyring)
            else "use the token `infomediary keys rotate` generated it in"
        )
        raise KeyringError(
            f"the database wraps new data keys under KEK version {named}, which the "
            f"{keyring.where} lacks: {hint}"
        )
    return named


def install_wrap_guard(sessions: sessionmaker[Session], vault: Vault) -> None:
    """Before a flush stores new data keys, make sure they are under the database's KEK."""

    def guard(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
        fresh = [row for row in session.new if isinstance(row, DataKey)]
        if not fresh:
            return
        version = active_kek(session, lock="share")
        if version is None:
            return
        for row in fresh:
            if row.kek_version != version:
                row.wrapped_key = vault.rewrap(row.wrapped_key, row.kek_version, version)
                row.kek_version = version

    event.listen(sessions, "before_flush", guard)


# -- leases -------------------------------------------------------------------------------
def live_leases(session: Session, now: datetime) -> list[ProcessLease]:
    query = select(ProcessLease).where(ProcessLease.expires_at > now).order_by(ProcessLease.pid)
    return list(session.execute(query).scalars())


def delete_lapsed(session: Session, now: datetime) -> int:
    return rowcount(session.execute(delete(ProcessLease).where(ProcessLease.expires_at <= now)))


_KEEPERS: weakref.WeakSet[LeaseKeeper] = weakref.WeakSet()


class LeaseKeeper:
    """This process's lease row, refreshed by a daemon thread until :meth:`close`."""

    def __init__(
        self, engine: Engine, sessions: sessionmaker[Session], keyring: Keyring, seconds: float
    ):
        if seconds <= 0:
            raise ValueError("the lease period must be positive")
        self.seconds = float(seconds)
        self.interval = self.seconds / 4
        self._engine = engine
        self._sessions = sessions
        self._keyring = keyring
        self._host = socket.gethostname()[:255]
        self._started = utcnow()
        self._active = keyring.active_kek_version
        self._retained: dict[int, datetime] = {}
        self._new_identity()
        keyring.on_change(self._changed)
        _KEEPERS.add(self)

    def _new_identity(self) -> None:
        self.lease_id = secrets.token_hex(16)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def _changed(self) -> None:
        self._wake.set()

    # -- the row ----------------------------------------------------------------------------
    def versions(self) -> list[int]:
        return sorted({self._active, *self._retained})

    def register(self, session: Session) -> None:
        """Write the lease in the caller's transaction (``open_instance``'s)."""
        self._write(session, utcnow())

    def refresh(self) -> None:
        """Re-read the keyring if it changed, then extend the lease naming what it may use."""
        with self._lock:
            if self._closed:
                return
            self._keyring.refresh()
            with self._sessions() as session, session.begin():
                named = active_kek(session)
                if named is not None and named not in self._keyring.kek_versions():
                    self._keyring.reload()
                self._write(session, utcnow())

    def _write(self, session: Session, now: datetime) -> None:
        active = self._keyring.active_kek_version
        if active != self._active:
            # work started under the old version may still finish: name it one more period
            self._retained[self._active] = now + timedelta(seconds=self.seconds)
            self._active = active
        self._retained = {v: t for v, t in self._retained.items() if t > now and v != active}
        values = {
            "host": self._host,
            "pid": self._pid,
            "kek_versions": ",".join(str(v) for v in self.versions()),
            "active_kek": self._active,
            "refreshed_at": now,
            "expires_at": now + timedelta(seconds=self.seconds),
            "releases_at": max(self._retained.values(), default=None),
        }
        query = update(ProcessLease).where(ProcessLease.id == self.lease_id).values(**values)
        if not rowcount(session.execute(query)):
            session.execute(
                insert(ProcessLease).values(id=self.lease_id, started_at=self._started, **values)
            )

    # -- the heartbeat --------------------------------------------------------------------
    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="infomediary-lease", daemon=True)
        self._thread = thread
        thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                with fork_safe():
                    self.refresh()
            except KeyringError as exc:  # e.g. the file was replaced: keep the keys loaded
                log.error("could not refresh the process lease: %s", exc)
            except Exception as exc:  # retried next beat; if it keeps failing the lease lapses
                log.warning("could not refresh the process lease: %s", type(exc).__name__)

    def close(self) -> None:
        """Stop the heartbeat and delete the lease (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        atexit.unregister(self.close)
        try:
            with self._sessions() as session, session.begin():
                session.execute(delete(ProcessLease).where(ProcessLease.id == self.lease_id))
        except Exception as exc:  # the lease lapses by itself
            log.warning("could not delete the process lease: %s", type(exc).__name__)

    def _after_fork(self) -> None:
        """A forked child (gunicorn --preload) is a process of its own: its own lease."""
        if self._closed:
            return
        self._engine.dispose(close=False)  # the parent's pooled connections are the parent's
        self._new_identity()
        self._wake.set()  # register at once, from the heartbeat thread
        self.start()


def _after_fork_in_child() -> None:
    for keeper in list(_KEEPERS):
        keeper._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
