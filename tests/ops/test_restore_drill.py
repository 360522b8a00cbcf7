"""The restore drill (tests/ops/restore_drill.py) on SQLite and on PostgreSQL.

On PostgreSQL it runs in a database of its own, created on the server of
``INFOMEDIARY_TEST_DATABASE_URL`` under a name unique to the run and dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from infomediary.db import make_engine, normalise_url
from tests.conftest import PG_ENV, need_service
from tests.ops.restore_drill import Drill, drop_database, recreate_database

pytestmark = pytest.mark.ops

CUSTOMERS = 20


@pytest.fixture(params=["sqlite", "postgresql"])
def drill_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    server = os.environ.get(PG_ENV)
    if not server:
        need_service(f"the PostgreSQL restore drill needs {PG_ENV}")
        return
    try:
        probe = make_engine(server)
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
        probe.dispose()
    except Exception as exc:
        need_service(f"PostgreSQL at {PG_ENV} is unreachable: {type(exc).__name__}")
    name = f"drill_{secrets.token_hex(6)}"
    base = normalise_url(server)
    url = base.set(database=name).render_as_string(hide_password=False)
    recreate_database(url, maintenance=str(base.database))
    try:
        yield url
    finally:
        drop_database(url, maintenance=str(base.database))


def test_backup_wipe_restore_and_prove(drill_database: str | None, tmp_path: Path) -> None:
    said: list[str] = []
    maintenance = str(normalise_url(os.environ.get(PG_ENV) or "sqlite://").database)
    drill = Drill(tmp_path, drill_database, CUSTOMERS, say=said.append, maintenance=maintenance)
    drill.run()
    steps = [step for step, _ in drill.steps]
    # the controls ran, each failing as it must: the drill can fail
    for control in (
        "restore with the wrong keyring fails",
        "verify against another instance's checkpoint fails",
        "verify after one row is altered fails",
    ):
        assert control in steps
    assert f"     {CUSTOMERS + 2} customers decrypt" in " ".join(said)
