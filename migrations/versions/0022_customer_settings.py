"""the customer's site language and time zone

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-20 00:00:00.000000

``customer_settings`` holds one row per customer who chose a site language or a time zone:
the language as one of the site's complete languages, the time zone sealed under the
customer's data key. A new table: nothing existing is rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_settings",
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("site_language", sa.String(8), nullable=True),
        sa.Column("time_zone", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_settings_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_settings")),
    )


def downgrade() -> None:
    op.drop_table("customer_settings")
