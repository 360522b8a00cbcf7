"""erasure requests to suppliers, and suppliers' webhooks

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-20 00:00:00.000000

``supplier_webhooks`` holds, per supplier, the https URL erasure requests are delivered to
and the HMAC secret they are signed with, sealed (the secret itself is needed to sign).
``erasure_requests`` holds each request a customer made of a supplier: the pairwise subject
the supplier knows them by, its status, attempts and times, at most one of them open (not
confirmed) per customer and supplier (a partial unique index). New tables only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ERASURE_STATUSES = ["requested", "delivered", "confirmed", "failed"]


def upgrade() -> None:
    op.create_table(
        "supplier_webhooks",
        sa.Column("supplier_id", sa.String(36), nullable=False),
        sa.Column("url", sa.String(512), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_supplier_webhooks_supplier_id_suppliers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("supplier_id", name=op.f("pk_supplier_webhooks")),
    )
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("supplier_id", sa.String(36), nullable=False),
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_erasure_requests_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_erasure_requests_supplier_id_suppliers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_requests")),
        sa.CheckConstraint(
            sa.column("status").in_(ERASURE_STATUSES), name=op.f("ck_erasure_requests_status")
        ),
    )
    op.create_index(op.f("ix_erasure_requests_customer_id"), "erasure_requests", ["customer_id"])
    op.create_index(op.f("ix_erasure_requests_supplier_id"), "erasure_requests", ["supplier_id"])
    # One open (not confirmed) request per customer and supplier, even when two race.
    op.create_index(
        "uq_erasure_requests_open",
        "erasure_requests",
        ["customer_id", "supplier_id"],
        unique=True,
        sqlite_where=sa.text("status != 'confirmed'"),
        postgresql_where=sa.text("status != 'confirmed'"),
    )


def downgrade() -> None:
    op.drop_index("uq_erasure_requests_open", "erasure_requests")
    op.drop_index(op.f("ix_erasure_requests_supplier_id"), "erasure_requests")
    op.drop_index(op.f("ix_erasure_requests_customer_id"), "erasure_requests")
    op.drop_table("erasure_requests")
    op.drop_table("supplier_webhooks")
