"""process leases and the database's active KEK

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The one keyring_state row is written by `infomediary init` / open_instance, which
    # know the keyring; a migration does not.
    op.create_table('keyring_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('active_kek', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_keyring_state'))
    )
    op.create_table('process_leases',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('kek_versions', sa.String(length=255), nullable=False),
    sa.Column('active_kek', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('releases_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_process_leases'))
    )
    with op.batch_alter_table('process_leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_process_leases_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('process_leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_process_leases_expires_at'))

    op.drop_table('process_leases')
    op.drop_table('keyring_state')
