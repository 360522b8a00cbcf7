"""Engine and session factory, independent of Flask so the CLI, tests and benches share it.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions: almost every transaction
here appends to the access log, so taking the write lock up front avoids the deadlock-prone
read-then-upgrade pattern and serialises appends as the design requires. PostgreSQL
serialises appends with a row lock on ``log_head`` instead.

A PostgreSQL server that goes away must cost a request seconds, not minutes, and the pool must
come back by itself when it returns: connections are opened with libpq's ``connect_timeout``
and ``tcp_user_timeout``, checked before each checkout (``pool_pre_ping``: a connection the
server or the network dropped is replaced, not handed out), and a request waits at most
``pool_timeout`` for a free one. :func:`is_unavailable` tells such failures from errors of a
statement, so the edge can answer them as "try again shortly" rather than as a bug.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry


def normalise_url(url: str) -> URL:
    """Accept the ``postgresql://`` spelling and use the psycopg 3 driver for it."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


#: Seconds a PostgreSQL connection attempt, an unanswered write on one and a wait for a pooled
#: connection may each take before the request fails. A ``connect_timeout`` (or
#: ``tcp_user_timeout``) in the URL's query wins.
CONNECT_TIMEOUT_SECONDS = 5
#: SQLSTATEs of a server that is going or gone (class 08 is "connection exception"):
#: admin_shutdown, crash_shutdown, cannot_connect_now.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03"})


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = normalise_url(url)
    options: dict[str, Any] = {"hide_parameters": True, **kwargs}
    if parsed.get_backend_name() == "sqlite":
        options.setdefault("connect_args", {}).update({"timeout": 30, "check_same_thread": False})
        engine = create_engine(parsed, **options)
        _configure_sqlite(engine)
        return engine
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_timeout", CONNECT_TIMEOUT_SECONDS)
    connect_args = options["connect_args"] = dict(options.get("connect_args", {}))
    given = parsed.query
    if "connect_timeout" not in given:
        connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    if "tcp_user_timeout" not in given:  # milliseconds
        connect_args.setdefault("tcp_user_timeout", CONNECT_TIMEOUT_SECONDS * 1000)
    return create_engine(parsed, **options)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or dropped the connection (as
    opposed to refusing a statement): a pool that gave no connection in time, a connection
    SQLAlchemy invalidated, or a driver error with no SQLSTATE, a connection-exception one
    or a shutdown's. SQLite has no server: only an invalidated connection counts there."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError) or isinstance(
        exc.orig, sqlite3.Error
    ):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES


#: How long a statement waits for a lock SQLite holds (the connection's busy timeout).
BUSY_TIMEOUT_MS = 30_000


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit reaches the disk before it returns. With WAL, NORMAL would keep the
        # last commits only in the WAL's page cache until a checkpoint, so a power cut could lose
        # an access-log entry or a privacy-ledger charge whose answer has already left.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    poller = threading.Lock()  # one thread of this process waits for the write lock at a time

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(SNAPSHOT):
            connection.exec_driver_sql("BEGIN")  # a WAL reader: a snapshot, no write lock
        else:
            _begin_immediate(connection.connection.driver_connection, poller)


#: How long a write transaction waits for SQLite's write lock before it fails.
WRITE_LOCK_TIMEOUT_SECONDS = 30.0
#: The pause between two tries for it, at random within these bounds (seconds).
_WRITE_LOCK_PAUSE = (0.0001, 0.0008)
_BUSY = frozenset({sqlite3.SQLITE_BUSY, 261, 517})  # BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT


def _begin_immediate(raw: sqlite3.Connection, poller: threading.Lock) -> None:
    """``BEGIN IMMEDIATE``, waiting for the write lock in pauses of under a millisecond.

    SQLite's own busy handler sleeps 1, 2, 5, ... up to 100 ms between tries, so under load
    the lock is often free while every waiter sleeps (a writer that arrives between two
    sleeps takes it first): throughput falls as threads are added. Here the busy timeout is
    off while the transaction begins, a failed try pauses for a fraction of a millisecond,
    and only one thread of the process tries at a time (the others wait on ``poller``, a
    Python lock that hands over at once); the statements of the transaction keep the
    connection's busy timeout."""
    deadline = time.monotonic() + WRITE_LOCK_TIMEOUT_SECONDS
    with poller:
        raw.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    raw.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if getattr(exc, "sqlite_errorcode", None) not in _BUSY:
                        raise
                    if time.monotonic() >= deadline:
                        raise
                time.sleep(random.uniform(*_WRITE_LOCK_PAUSE))  # noqa: S311 - a pause, not a secret
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


# -- forking a process whose threads use the database ------------------------------------------
#: Held by a background thread of this process (the lease's heartbeat, the in-process job
#: runner) while it uses the database; ``os.fork`` waits for it. A child process has only the
#: thread that forked: a mutex of SQLite's (or of the connection pool) that another thread
#: held at the fork stays locked in the child for ever, and its first ``sqlite3.connect``
#: hangs (gunicorn ``--preload`` forking its workers while the master's threads run).
_fork_gate = threading.RLock()


@contextmanager
def fork_safe() -> Iterator[None]:
    """Around a background thread's database work: no fork happens in the middle of it."""
    with _fork_gate:
        yield


def _before_fork() -> None:
    _fork_gate.acquire()


def _after_fork_in_parent() -> None:
    _fork_gate.release()


def _after_fork_in_child() -> None:
    global _fork_gate
    _fork_gate = threading.RLock()  # the forking thread's hold is the parent's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


#: The execution option :func:`begin_snapshot` sets on SQLite.
SNAPSHOT = "infomediary_snapshot"


def begin_snapshot(session: Session) -> None:
    """Begin the session's next transaction as a read-only snapshot, for a long read (the
    log's verification) that must see one state and must not hold writers up: on SQLite a
    deferred WAL read transaction (no write lock), on PostgreSQL REPEATABLE READ, READ ONLY.
    Call it before the transaction's first statement."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={SNAPSHOT: True})
    else:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        session.execute(text("SET TRANSACTION READ ONLY"))


def begin_read(session: Session) -> None:
    """Begin the session's next transaction as a read phase: on SQLite a deferred WAL read,
    which takes no write lock, so that a request's lookups, policy decision and decryption do
    not hold other writers up; :func:`end_read` ends it before the request writes. PostgreSQL
    needs nothing: its reads under READ COMMITTED take no lock, and the log's row lock is taken
    only by the append. Either way a request decides on what was committed when it read (a
    revocation committed later applies from the next request on) and its entry is appended
    after. A session already in a transaction is left as it is."""
    if not session.in_transaction() and session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={SNAPSHOT: True})


def end_read(session: Session) -> None:
    """End the read phase :func:`begin_read` began, if one is open; the next statement then
    begins an ordinary (on SQLite, ``BEGIN IMMEDIATE``) transaction. The phase read only, so
    it ends by a commit that writes nothing (and, with ``expire_on_commit`` off, keeps what
    was loaded); something written in it would fail here, not later."""
    if not session.in_transaction() or session.get_bind().dialect.name != "sqlite":
        return
    if session.connection().get_execution_options().get(SNAPSHOT):
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("a read phase ends before anything is written")
        session.commit()


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched (typed ``Result`` lacks it; ``CursorResult`` has it)."""
    return int(result.rowcount or 0)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
