"""MyTerms agreements, the terms each supplier accepts, and each customer's default terms

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-22 00:00:00.000000

``agreements`` holds each agreement made between a customer and a supplier (the roster id,
its sealed context and the platform's signed record); ``supplier_terms`` the roster agreements
a supplier publishes it accepts; ``customer_terms`` the agreement a customer proffers by
default. New tables only: nothing existing is rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agreements",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("supplier_id", sa.String(36), nullable=False),
        sa.Column("agreement_id", sa.String(64), nullable=False),
        sa.Column("context", sa.LargeBinary(), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_agreements_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"], ["suppliers.id"], name=op.f("fk_agreements_supplier_id_suppliers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreements")),
    )
    op.create_index(op.f("ix_agreements_customer_id"), "agreements", ["customer_id"])
    op.create_index(op.f("ix_agreements_supplier_id"), "agreements", ["supplier_id"])
    op.create_table(
        "supplier_terms",
        sa.Column("supplier_id", sa.String(36), nullable=False),
        sa.Column("agreement_id", sa.String(64), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_supplier_terms_supplier_id_suppliers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("supplier_id", "agreement_id", name=op.f("pk_supplier_terms")),
    )
    op.create_table(
        "customer_terms",
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("agreement_id", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_terms_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_terms")),
    )


def downgrade() -> None:
    op.drop_table("customer_terms")
    op.drop_table("supplier_terms")
    op.drop_index(op.f("ix_agreements_supplier_id"), table_name="agreements")
    op.drop_index(op.f("ix_agreements_customer_id"), table_name="agreements")
    op.drop_table("agreements")
