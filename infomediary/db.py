"""Engine and session factory, independent of Flask so the CLI, tests and benches share it.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions: almost every transaction
here appends to the access log, so taking the write lock up front avoids the deadlock-prone
read-then-upgrade pattern and serialises appends as the design requires. PostgreSQL
serialises appends with a row lock on ``log_head`` instead.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry


def normalise_url(url: str) -> URL:
    """Accept the ``postgresql://`` spelling and use the psycopg 3 driver for it."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = normalise_url(url)
    options: dict[str, Any] = {"hide_parameters": True, **kwargs}
    if parsed.get_backend_name() == "sqlite":
        options.setdefault("connect_args", {}).update({"timeout": 30, "check_same_thread": False})
        engine = create_engine(parsed, **options)
        _configure_sqlite(engine)
        return engine
    options.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **options)


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
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(SNAPSHOT):
            connection.exec_driver_sql("BEGIN")  # a WAL reader: a snapshot, no write lock
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


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


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched (typed ``Result`` lacks it; ``CursorResult`` has it)."""
    return int(result.rowcount or 0)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
