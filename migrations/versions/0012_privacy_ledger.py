"""the per-customer privacy ledger: releases, their member sets and their replays

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:45:00.000000

Every differentially private release becomes a ``releases`` row holding the compressed set
of customers it charged; workers fold them into their in-memory ledgers. A replayed answer
is recorded against the release that computed it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("count", "breakdown", "offer_reach", "offer_totals")
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("seq", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("supplier_id", sa.String(36), sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("epsilon_micro", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.LargeBinary(), nullable=False),
        sa.Column("query_hash", sa.String(64), nullable=True),
        sa.Column("offer_id", sa.String(36), nullable=True),
        sa.CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + ")", name=op.f("ck_releases_kind")
        ),
    )
    op.create_index("ix_releases_created_at", "releases", ["created_at"])
    op.create_index("ix_releases_supplier_id", "releases", ["supplier_id"])
    op.create_index("ix_releases_offer_id", "releases", ["offer_id"])
    op.create_table(
        "release_replays",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("release_seq", BIGINT_ID, sa.ForeignKey("releases.seq"), nullable=False),
        sa.Column("supplier_id", sa.String(36), sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_release_replays_release_seq", "release_replays", ["release_seq"])
    with op.batch_alter_table("released_answers") as batch:
        batch.add_column(sa.Column("release_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("released_answers") as batch:
        batch.drop_column("release_seq")
    op.drop_index("ix_release_replays_release_seq", "release_replays")
    op.drop_table("release_replays")
    op.drop_index("ix_releases_offer_id", "releases")
    op.drop_index("ix_releases_supplier_id", "releases")
    op.drop_index("ix_releases_created_at", "releases")
    op.drop_table("releases")
