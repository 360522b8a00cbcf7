"""The migrated schema is exactly the models' schema, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from infomediary.instance import schema_revision
from infomediary.models import Base


def test_migrations_match_models(inst) -> None:
    with inst.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_database_is_at_head(inst) -> None:
    current, head = schema_revision(inst.engine)
    assert current == head is not None
