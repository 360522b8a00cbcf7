"""SQLite connections are configured for a log that must survive a power cut."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from infomediary import db
from infomediary.db import BUSY_TIMEOUT_MS, make_engine


def test_sqlite_commits_are_durable_before_they_return(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'durable.sqlite3'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


def _engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'locks.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return engine


def test_a_write_transaction_waits_for_the_lock_and_takes_it_once_it_is_free(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    try:
        holder = engine.connect()
        holder.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock, uncommitted
        done: list[int] = []

        def write() -> None:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (2)"))
            done.append(2)

        waiter = threading.Thread(target=write)
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # waiting, not failed
        holder.commit()
        holder.close()
        waiter.join(10)
        assert done == [2]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM t")).scalar() == 2
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_a_write_transaction_that_cannot_get_the_lock_fails_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "WRITE_LOCK_TIMEOUT_SECONDS", 0.2)
    engine = _engine(tmp_path)
    try:
        with engine.connect() as holder:
            holder.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(sqlite3.OperationalError, match="locked"), engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (2)"))
            holder.rollback()
        with engine.begin() as conn:  # the failed connection went back with its busy timeout
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_a_fork_waits_for_background_database_work_and_the_child_starts_free() -> None:
    """A thread inside :func:`db.fork_safe` (the lease's heartbeat, the job runner) holds a
    fork back until it is done, so no child inherits a mutex locked mid-call; the child's
    gate is its own and free."""
    inside, release = threading.Event(), threading.Event()

    def background() -> None:
        with db.fork_safe():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=background)
    worker.start()
    assert inside.wait(5)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: its gate is free at once
        os._exit(0 if db._fork_gate.acquire(timeout=1) else 1)
    waited = time.monotonic() - started
    _, status = os.waitpid(pid, 0)
    worker.join(5)
    assert waited >= 0.25  # the fork waited for the thread's work to end
    assert os.waitstatus_to_exitcode(status) == 0
