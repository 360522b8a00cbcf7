"""intentcasts: the customers' intents and the suppliers' bids

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-23 00:00:00.000000

``intents`` holds each intent a customer posted: its details sealed under the customer's data
key, keyed blind indexes of its sector, category and region for the suppliers' listing, its
schedule, the agreement it proffers, its deadline and automatic rule, and its status. ``bids``
holds the suppliers' bids, one per supplier and intent. New tables only: nothing existing is rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INTENT_STATUSES = ("open", "accepted", "cancelled")
BID_STATUSES = ("open", "won", "not_chosen")
RECURRENCE_UNITS = ("week", "month")


def upgrade() -> None:
    op.create_table(
        "intents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("sector_index", sa.LargeBinary(32), nullable=False),
        sa.Column("category_index", sa.LargeBinary(32), nullable=False),
        sa.Column("region_index", sa.LargeBinary(32), nullable=True),
        sa.Column("details", sa.LargeBinary(), nullable=False),
        sa.Column("needed_by", sa.Date(), nullable=False),
        sa.Column("recurrence_every", sa.Integer(), nullable=True),
        sa.Column("recurrence_unit", sa.String(8), nullable=True),
        sa.Column("recurrence_until", sa.Date(), nullable=True),
        sa.Column("terms", sa.String(64), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auto_accept", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("accepted_bid_id", sa.String(36), nullable=True),
        sa.Column("fulfilment_grant_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_intents_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["fulfilment_grant_id"],
            ["consent_grants.id"],
            name=op.f("fk_intents_fulfilment_grant_id_consent_grants"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intents")),
        sa.CheckConstraint(
            sa.column("status").in_(INTENT_STATUSES), name=op.f("ck_intents_status")
        ),
        sa.CheckConstraint(
            sa.column("recurrence_unit").in_(RECURRENCE_UNITS),
            name=op.f("ck_intents_recurrence_unit"),
        ),
    )
    op.create_index(
        "ix_intents_sector_index_status_created_at",
        "intents",
        ["sector_index", "status", "created_at"],
    )
    op.create_index("ix_intents_customer_id_created_at", "intents", ["customer_id", "created_at"])
    op.create_table(
        "bids",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("intent_id", sa.String(36), nullable=False),
        sa.Column("supplier_id", sa.String(36), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("terms", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agreement_record_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["intent_id"],
            ["intents.id"],
            name=op.f("fk_bids_intent_id_intents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"], ["suppliers.id"], name=op.f("fk_bids_supplier_id_suppliers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bids")),
        sa.UniqueConstraint("intent_id", "supplier_id", name=op.f("uq_bids_intent_id")),
        sa.CheckConstraint(sa.column("status").in_(BID_STATUSES), name=op.f("ck_bids_status")),
    )
    op.create_index(op.f("ix_bids_supplier_id"), "bids", ["supplier_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_bids_supplier_id"), table_name="bids")
    op.drop_table("bids")
    op.drop_index("ix_intents_customer_id_created_at", table_name="intents")
    op.drop_index("ix_intents_sector_index_status_created_at", table_name="intents")
    op.drop_table("intents")
