"""broker match index and budgets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 19:54:11.997487
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('broker_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broker_state'))
    )
    op.create_table('budget_accounts',
    sa.Column('supplier_id', sa.String(length=36), nullable=False),
    sa.Column('period', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('spent_micro', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('supplier_id', 'period', name=op.f('pk_budget_accounts'))
    )
    op.create_table('released_answers',
    sa.Column('query_hash', sa.String(length=64), nullable=False),
    sa.Column('epoch', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('epsilon_micro', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('query_hash', 'epoch', name=op.f('pk_released_answers'))
    )
    op.create_table('budget_charges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('supplier_id', sa.String(length=36), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('epsilon_micro', sa.BigInteger(), nullable=False),
    sa.Column('query_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_budget_charges_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_charges'))
    )
    with op.batch_alter_table('budget_charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_budget_charges_supplier_id'), ['supplier_id'], unique=False)

    op.create_table('match_entries',
    sa.Column('ordinal', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=True),
    sa.Column('tokens', sa.LargeBinary(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_match_entries_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('ordinal', name=op.f('pk_match_entries')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_match_entries_customer_id')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('match_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_match_entries_version'), ['version'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('match_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_match_entries_version'))

    op.drop_table('match_entries')
    with op.batch_alter_table('budget_charges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_budget_charges_supplier_id'))

    op.drop_table('budget_charges')
    op.drop_table('released_answers')
    op.drop_table('budget_accounts')
    op.drop_table('broker_state')
