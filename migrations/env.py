"""Alembic environment: uses the engine handed over by ``infomediary init`` or a URL.

On SQLite every revision runs in a transaction of its own with foreign keys not enforced.
Batch mode changes a table by copying it and dropping the original, and with enforcement
on, ``DROP TABLE`` first deletes every row, running the ``ON DELETE CASCADE`` of the tables
referring to it (0009's copy of ``consent_grants`` would take every grant's receipts, codes
and tokens with it). SQLite ignores the pragma inside a transaction, so it is switched on
the bare connection, before Alembic begins one and after the last commits. Instead of the
enforcement, ``PRAGMA foreign_key_check`` runs before each revision's transaction commits:
a row left pointing nowhere fails that revision, which is rolled back. PostgreSQL alters
tables in place and enforces foreign keys throughout; it runs as Alembic does by default.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.util import CommandError
from sqlalchemy import Connection, Engine

from infomediary.db import make_engine
from infomediary.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or os.environ["INFOMEDIARY_DATABASE_URL"]
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Foreign keys not enforced on ``connection`` for the block, enforced again after."""
    raw = connection.connection.driver_connection
    if raw is None or connection.in_transaction() or raw.in_transaction:
        raise CommandError("SQLite migrations need an open connection outside any transaction")
    raw.execute("PRAGMA foreign_keys=OFF")
    if raw.execute("PRAGMA foreign_keys").fetchone() != (0,):
        raise CommandError("SQLite did not turn foreign key enforcement off")
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        raw.execute("PRAGMA foreign_keys=ON")


def check_foreign_keys(
    ctx: MigrationContext,
    step: MigrationInfo,
    heads: Collection[Any],
    run_args: Mapping[str, Any],
) -> None:
    """Fail the revision just run, before its transaction commits, if a row points nowhere."""
    connection = ctx.connection
    if connection is None:  # offline mode has no rows to check
        return
    found = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if not found:
        return
    broken: Counter[str] = Counter()
    for table, _rowid, parent, fk_id in found:
        columns = [
            fk[3]  # (id, seq, parent, from, to, ...)
            for fk in connection.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")')
            if fk[0] == fk_id
        ]
        broken[f"{table}.{','.join(columns)} -> {parent}"] += 1
    where = "; ".join(
        f"{key} ({count} row{'s' * (count != 1)})" for key, count in sorted(broken.items())
    )
    revision = "/".join(step.up_revision_ids)
    direction = "upgrade" if step.is_upgrade else "downgrade"
    raise CommandError(
        f"revision {revision} ({direction}) left rows pointing nowhere, so it is rolled back: "
        f"{where}"
    )


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    owned = engine is None
    if engine is None:
        url = config.get_main_option("sqlalchemy.url") or os.environ["INFOMEDIARY_DATABASE_URL"]
        engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                with sqlite_foreign_keys_off(connection):
                    context.configure(
                        connection=connection,
                        target_metadata=target_metadata,
                        render_as_batch=True,
                        compare_type=True,
                        transactional_ddl=True,  # BEGIN IMMEDIATE (infomediary.db) covers DDL
                        transaction_per_migration=True,
                        on_version_apply=check_foreign_keys,
                    )
                    with context.begin_transaction():
                        context.run_migrations()
                    connection.commit()
                return
            context.configure(
                connection=connection, target_metadata=target_metadata, compare_type=True
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
