"""the per-customer privacy ledger: releases, their member sets and their replays

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:45:00.000000

Every differentially private release becomes a ``releases`` row holding the compressed set
of customers it charged; workers fold them into their in-memory ledgers. A replayed answer
is recorded against the release that computed it.
"""

import json
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
    op.create_table(
        "release_postings",
        sa.Column("ordinal", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("block", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seqs", sa.LargeBinary(), nullable=False),
    )
    with op.batch_alter_table("broker_state") as batch:
        batch.add_column(
            sa.Column("postings_through", sa.BigInteger(), nullable=False, server_default="0")
        )
    _backfill()


def _backfill() -> None:
    """Every count and offer match logged before this revision becomes a release, so the
    customers it counted keep seeing it and their ledger starts with what they already lost.
    The entries' own detail is plaintext JSON (criteria, epsilon, no personal data)."""
    conn = op.get_bind()
    suppliers = {row[0] for row in conn.execute(sa.text("SELECT id FROM suppliers"))}
    entries = conn.execute(
        sa.text(
            "SELECT created_at, actor_id, action, purpose, detail, members FROM access_log"
            " WHERE customer_id IS NULL AND members IS NOT NULL"
            " AND action IN ('count', 'offer') ORDER BY seq"
        )
    ).all()
    releases = sa.table(
        "releases",
        sa.column("created_at"),  # written back as read: the backend's own form
        sa.column("kind", sa.String()),
        sa.column("supplier_id", sa.String()),
        sa.column("purpose", sa.String()),
        sa.column("criteria", sa.Text()),
        sa.column("epsilon_micro", sa.BigInteger()),
        sa.column("members", sa.LargeBinary()),
        sa.column("offer_id", sa.String()),
    )
    rows = []
    for created_at, actor_id, action, purpose, detail, members in entries:
        if actor_id not in suppliers:
            continue
        try:
            body = json.loads(detail or b"{}")
        except ValueError:
            continue
        criteria = body.get("criteria") or {}
        if action == "offer":
            kind = "offer_reach"
        else:
            kind = "breakdown" if criteria.get("breakdown") else "count"
        rows.append(
            {
                "created_at": created_at,
                "kind": kind,
                "supplier_id": actor_id,
                "purpose": purpose,
                "criteria": json.dumps(criteria, sort_keys=True, separators=(",", ":")),
                "epsilon_micro": round(float(body.get("epsilon", 0.0)) * 1_000_000),
                "members": members,
                "offer_id": body.get("offer_id"),
            }
        )
    if rows:
        op.bulk_insert(releases, rows)


def downgrade() -> None:
    with op.batch_alter_table("broker_state") as batch:
        batch.drop_column("postings_through")
    op.drop_table("release_postings")
    with op.batch_alter_table("released_answers") as batch:
        batch.drop_column("release_seq")
    op.drop_index("ix_release_replays_release_seq", "release_replays")
    op.drop_table("release_replays")
    op.drop_index("ix_releases_offer_id", "releases")
    op.drop_index("ix_releases_supplier_id", "releases")
    op.drop_index("ix_releases_created_at", "releases")
    op.drop_table("releases")
