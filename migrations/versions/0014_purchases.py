"""purchases imported from retailers' files

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09 00:30:00.000000

A customer's imported purchases: ``purchase_imports`` (one per file, ``staging`` while its
batches are written, ``done`` once visible) and ``purchases`` (one sealed record per line,
found by keyed blind indexes: the line's, unique per customer, and the retailer's). Nothing
personal is in plaintext. The purchase index key is a new keyring secret, which ``init``
(the command that runs this migration) adds to the keyring.

The values are written out here, not imported: this revision keeps meaning what it meant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMPORT_STATUSES = ('staging', 'done')


def upgrade() -> None:
    op.create_table(
        'purchase_imports',
        sa.Column('id', sa.String(36), nullable=False),
        sa.Column('customer_id', sa.String(36), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('format', sa.String(32), nullable=False),
        sa.Column('imported', sa.Integer(), nullable=False),
        sa.Column('duplicates', sa.Integer(), nullable=False),
        sa.Column('rejected', sa.Integer(), nullable=False),
        sa.Column('detail', sa.LargeBinary(), nullable=False),
        sa.Column('lease_id', sa.String(32), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['customer_id'],
            ['customers.id'],
            name=op.f('fk_purchase_imports_customer_id_customers'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_purchase_imports')),
        sa.CheckConstraint(
            sa.column('status').in_(IMPORT_STATUSES), name=op.f('ck_purchase_imports_status')
        ),
    )
    op.create_index(
        op.f('ix_purchase_imports_customer_id'), 'purchase_imports', ['customer_id']
    )
    op.create_table(
        'purchases',
        sa.Column('id', sa.String(36), nullable=False),
        sa.Column('customer_id', sa.String(36), nullable=False),
        sa.Column('import_id', sa.String(36), nullable=False),
        sa.Column('line_token', sa.LargeBinary(32), nullable=False),
        sa.Column('retailer_token', sa.LargeBinary(32), nullable=False),
        sa.Column('sealed', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ['customer_id'],
            ['customers.id'],
            name=op.f('fk_purchases_customer_id_customers'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['import_id'],
            ['purchase_imports.id'],
            name=op.f('fk_purchases_import_id_purchase_imports'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_purchases')),
        sa.UniqueConstraint(
            'customer_id', 'line_token', name=op.f('uq_purchases_customer_id')
        ),
    )
    op.create_index(op.f('ix_purchases_import_id'), 'purchases', ['import_id'])
    op.create_index(
        'ix_purchases_customer_id_retailer_token', 'purchases', ['customer_id', 'retailer_token']
    )


def downgrade() -> None:
    op.drop_index('ix_purchases_customer_id_retailer_token', 'purchases')
    op.drop_index(op.f('ix_purchases_import_id'), 'purchases')
    op.drop_table('purchases')
    op.drop_index(op.f('ix_purchase_imports_customer_id'), 'purchase_imports')
    op.drop_table('purchase_imports')
