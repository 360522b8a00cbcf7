"""counts of open intents: a new kind of differentially private release

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-24 00:00:00.000000

A count of the distinct customers with open intents per category and region is a release like
any other: it charges the supplier's and the global budget and every customer it counted, in
``releases``. Its kind, ``intent_demand``, joins the releases' CHECK (replaced on SQLite by
copying the table, as in 0013, with foreign keys off: ``migrations/env.py``).

The values are written out here, not imported: this revision keeps meaning what it meant.
The downgrade refuses (changing nothing) while a release of the new kind exists.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = ("count", "breakdown", "offer_reach", "offer_totals")
KINDS = (*KINDS_BEFORE, "intent_demand")


def _kind_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_releases_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_releases_kind"), sa.column("kind").in_(values))


def upgrade() -> None:
    _kind_check(KINDS)


def downgrade() -> None:
    held = op.get_bind().execute(
        sa.text("SELECT count(*) FROM releases WHERE kind = 'intent_demand'")
    )
    if held.scalar_one():
        raise RuntimeError(
            "releases of kind intent_demand exist; the revision before 0028 cannot hold them"
        )
    _kind_check(KINDS_BEFORE)
