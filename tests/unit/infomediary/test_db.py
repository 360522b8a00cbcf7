"""SQLite connections are configured for a log that must survive a power cut."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from infomediary.db import make_engine


def test_sqlite_commits_are_durable_before_they_return(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'durable.sqlite3'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()
