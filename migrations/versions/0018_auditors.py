"""auditors: accounts that read the whole access log, with a TOTP second factor

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-13 00:30:00.000000

``auditors`` holds one row per auditor: the address only as a keyed blind index (for
login) and sealed (for the operator's list), an argon2id password hash, the sealed TOTP
secret and the time step of the last code accepted (so no code is accepted twice).
A new table: nothing existing is rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'auditors',
        sa.Column('id', sa.String(36), nullable=False),
        sa.Column('email_index', sa.LargeBinary(32), nullable=False),
        sa.Column('email', sa.LargeBinary(), nullable=False),
        sa.Column('password_hash', sa.String(255), nullable=False),
        sa.Column('totp_secret', sa.LargeBinary(), nullable=False),
        sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_auditors')),
        sa.UniqueConstraint('email_index', name=op.f('uq_auditors_email_index')),
    )


def downgrade() -> None:
    op.drop_table('auditors')
