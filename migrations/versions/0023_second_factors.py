"""passkeys, TOTP and recovery codes; session details

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-20 00:00:00.000000

``passkeys`` holds WebAuthn credentials (the name given sealed); ``customer_totp`` holds a
customer's authenticator secret, sealed under their data key, with
the last time step accepted; ``recovery_codes`` the SHA-256 of each one-time code.
``web_sessions.public_id`` names a session in the session list without its token;
``web_sessions.device`` is a coarse device label sealed under the customer's data key;
``web_sessions.pending_customer_id`` the customer of a half-logged-in session (password
given, second factor to come), so ending the customer's sessions ends it too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_totp",
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_totp_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_totp")),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_recovery_codes_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_recovery_codes")),
    )
    op.create_index(
        op.f("ix_recovery_codes_customer_id"), "recovery_codes", ["customer_id"], unique=False
    )
    op.create_table(
        "passkeys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(1023), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("transports", sa.String(200), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_passkeys_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkeys_credential_id")),
    )
    op.create_index(op.f("ix_passkeys_customer_id"), "passkeys", ["customer_id"], unique=False)
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("public_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("device", sa.LargeBinary(), nullable=True))
        batch.create_unique_constraint(op.f("uq_web_sessions_public_id"), ["public_id"])
        batch.add_column(sa.Column("pending_customer_id", sa.String(36), nullable=True))
        batch.create_foreign_key(
            op.f("fk_web_sessions_pending_customer_id_customers"),
            "customers",
            ["pending_customer_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(
            op.f("ix_web_sessions_pending_customer_id"), ["pending_customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_index(op.f("ix_web_sessions_pending_customer_id"))
        batch.drop_constraint(
            op.f("fk_web_sessions_pending_customer_id_customers"), type_="foreignkey"
        )
        batch.drop_column("pending_customer_id")
        batch.drop_constraint(op.f("uq_web_sessions_public_id"), type_="unique")
        batch.drop_column("device")
        batch.drop_column("public_id")
    op.drop_index(op.f("ix_passkeys_customer_id"), table_name="passkeys")
    op.drop_table("passkeys")
    op.drop_index(op.f("ix_recovery_codes_customer_id"), table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_table("customer_totp")
