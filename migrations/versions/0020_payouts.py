"""payout requests from the rewards wallet

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-20 00:00:00.000000

``payout_requests`` holds one row per payout a customer asked for: the amount, the sealed
destination (an IBAN or PayPal address, under the customer's DEK), its status and the ledger
transaction that moved the amount to the platform's "payouts pending" account. The ledger's
transaction kinds gain the payout, its cancellation and its settlement (the values are
written out here, as of this revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = ("fund", "escrow", "reward", "refund")
KINDS_AFTER = (*KINDS_BEFORE, "payout", "payout_cancel", "payout_settle")


def _transaction_kinds(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_ledger_transactions_kind"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_ledger_transactions_kind"), sa.column("kind").in_(values)
        )


def upgrade() -> None:
    _transaction_kinds(KINDS_AFTER)
    op.create_table(
        "payout_requests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("destination", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("transaction_id", sa.String(36), nullable=False),
        sa.Column("closing_transaction_id", sa.String(36), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            sa.column("status").in_(("requested", "settled", "cancelled")),
            name=op.f("ck_payout_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_payout_requests_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_payout_requests_transaction_id_ledger_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["closing_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_payout_requests_closing_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_requests")),
    )
    op.create_index(
        op.f("ix_payout_requests_customer_id"), "payout_requests", ["customer_id"], unique=False
    )
    op.create_index(
        "ix_payout_requests_status_requested_at",
        "payout_requests",
        ["status", "requested_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("payout_requests")
    op.execute(
        sa.text(
            "DELETE FROM ledger_entries WHERE transaction_id IN (SELECT id FROM"
            " ledger_transactions WHERE kind IN ('payout', 'payout_cancel', 'payout_settle'))"
        )
    )
    op.execute(
        sa.text(
            "DELETE FROM ledger_transactions"
            " WHERE kind IN ('payout', 'payout_cancel', 'payout_settle')"
        )
    )
    _transaction_kinds(KINDS_BEFORE)
