"""access log entry format v2 and the signed checkpoints

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-12 00:30:00.000000

New entries are written in format v2 (``infomediary/tlog/entry.py``): the leaf commits to a
keyed commitment of the customer id, a salted hash of the detail plaintext, a structured
reason and, for aggregate entries, the root of a Merkle tree over the members, instead of the
raw ids, the ciphertext and the member bitmap's hash. Older entries keep format 1 (``version``
NULL) and stay verifiable as they were. ``log_checkpoints`` keeps every signed checkpoint
(C2SP tlog-checkpoint, signed-note text), so consistency can be proved between any two.
Adding nullable columns rewrites nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('customer_commitment', sa.LargeBinary(32), nullable=True))
        batch_op.add_column(sa.Column('detail_hash', sa.LargeBinary(32), nullable=True))
        batch_op.add_column(sa.Column('member_root', sa.LargeBinary(32), nullable=True))
        batch_op.add_column(sa.Column('reason_data', sa.Text(), nullable=True))
    op.create_table(
        'log_checkpoints',
        sa.Column('size', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('root', sa.LargeBinary(32), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('size', name=op.f('pk_log_checkpoints')),
    )


def downgrade() -> None:
    op.drop_table('log_checkpoints')
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_column('reason_data')
        batch_op.drop_column('member_root')
        batch_op.drop_column('detail_hash')
        batch_op.drop_column('customer_commitment')
        batch_op.drop_column('version')
