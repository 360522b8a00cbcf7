"""the customer's notifications and their choices

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-20 00:00:00.000000

``notification_settings`` holds one row per customer who chose which notifications to see
or to be e-mailed, or marked them read: the kinds, how far they have read and been sent, and
when the digest run last looked at them.
Notifications themselves are derived from existing records. A new table: nothing existing is
rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_settings",
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("in_app", sa.String(255), nullable=False),
        sa.Column("digest_kinds", sa.String(255), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("seen_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_seq", sa.BigInteger(), nullable=False),
        sa.Column("digest_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("digest_seq", sa.BigInteger(), nullable=False),
        sa.Column("digest_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_notification_settings_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_notification_settings")),
    )


def downgrade() -> None:
    op.drop_table("notification_settings")
