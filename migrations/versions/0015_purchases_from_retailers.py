"""purchases pushed by retailers, uploads run as jobs, interests derived from purchases

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10 00:30:00.000000

- ``purchases.order_token``: a keyed blind index of (customer, retailer, order id), so lines
  of one order that arrived through two sources can be shown to the customer as possible
  duplicates; ``purchase_imports.supplier_id``: the retailer that pushed an import.
- ``purchase_uploads`` and ``purchase_upload_chunks``: a file or a pushed batch waiting for
  its job, sealed in chunks under the customer's key (a worker on another host reads it from
  the database); its status is the customer's to see.
- ``idempotency_keys``: a pushed batch's ``Idempotency-Key`` per client, hashed, with a hash
  of the request and the answer given, kept 24 hours.
- ``purchase_order_reviews``: orders whose lines the customer said are not duplicates.
- ``derived_interests``: one sealed record per customer: what their purchases suggest, and
  what they removed.

The values are written out here, not imported: this revision keeps meaning what it meant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPLOAD_STATUSES = ('queued', 'running', 'done', 'failed')
UPLOAD_ORIGINS = ('file', 'push')


def _customer_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ['customer_id'],
        ['customers.id'],
        name=op.f(f'fk_{table}_customer_id_customers'),
        ondelete='CASCADE',
    )


def upgrade() -> None:
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_token', sa.LargeBinary(32), nullable=True))
    op.create_index(
        'ix_purchases_customer_id_order_token', 'purchases', ['customer_id', 'order_token']
    )
    with op.batch_alter_table('purchase_imports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supplier_id', sa.String(36), nullable=True))
        batch_op.create_foreign_key(
            op.f('fk_purchase_imports_supplier_id_suppliers'),
            'suppliers',
            ['supplier_id'],
            ['id'],
            ondelete='SET NULL',
        )
    op.create_table(
        'purchase_uploads',
        sa.Column('id', sa.String(36), nullable=False),
        sa.Column('customer_id', sa.String(36), nullable=False),
        sa.Column('origin', sa.String(16), nullable=False),
        sa.Column('supplier_id', sa.String(36), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('job_id', sa.String(36), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('detail', sa.LargeBinary(), nullable=False),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('error', sa.String(255), nullable=True),
        sa.Column('import_id', sa.String(36), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        _customer_fk('purchase_uploads'),
        sa.ForeignKeyConstraint(
            ['supplier_id'],
            ['suppliers.id'],
            name=op.f('fk_purchase_uploads_supplier_id_suppliers'),
            ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_purchase_uploads')),
        sa.CheckConstraint(
            sa.column('status').in_(UPLOAD_STATUSES), name=op.f('ck_purchase_uploads_status')
        ),
        sa.CheckConstraint(
            sa.column('origin').in_(UPLOAD_ORIGINS), name=op.f('ck_purchase_uploads_origin')
        ),
    )
    op.create_index(
        op.f('ix_purchase_uploads_customer_id'), 'purchase_uploads', ['customer_id']
    )
    op.create_table(
        'purchase_upload_chunks',
        sa.Column('upload_id', sa.String(36), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('sealed', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ['upload_id'],
            ['purchase_uploads.id'],
            name=op.f('fk_purchase_upload_chunks_upload_id_purchase_uploads'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('upload_id', 'seq', name=op.f('pk_purchase_upload_chunks')),
    )
    op.create_table(
        'idempotency_keys',
        sa.Column('id', sa.String(36), nullable=False),
        sa.Column('supplier_id', sa.String(36), nullable=False),
        sa.Column('key_hash', sa.LargeBinary(32), nullable=False),
        sa.Column('request_hash', sa.LargeBinary(32), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=False),
        sa.Column('response', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['supplier_id'],
            ['suppliers.id'],
            name=op.f('fk_idempotency_keys_supplier_id_suppliers'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
        sa.UniqueConstraint(
            'supplier_id', 'key_hash', name=op.f('uq_idempotency_keys_supplier_id')
        ),
    )
    op.create_index(
        op.f('ix_idempotency_keys_expires_at'), 'idempotency_keys', ['expires_at']
    )
    op.create_table(
        'purchase_order_reviews',
        sa.Column('customer_id', sa.String(36), nullable=False),
        sa.Column('order_token', sa.LargeBinary(32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        _customer_fk('purchase_order_reviews'),
        sa.PrimaryKeyConstraint(
            'customer_id', 'order_token', name=op.f('pk_purchase_order_reviews')
        ),
    )
    op.create_table(
        'derived_interests',
        sa.Column('customer_id', sa.String(36), nullable=False),
        sa.Column('sealed', sa.LargeBinary(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        _customer_fk('derived_interests'),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_derived_interests')),
    )


def downgrade() -> None:
    op.drop_table('derived_interests')
    op.drop_table('purchase_order_reviews')
    op.drop_index(op.f('ix_idempotency_keys_expires_at'), 'idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_table('purchase_upload_chunks')
    op.drop_index(op.f('ix_purchase_uploads_customer_id'), 'purchase_uploads')
    op.drop_table('purchase_uploads')
    with op.batch_alter_table('purchase_imports', schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f('fk_purchase_imports_supplier_id_suppliers'), type_='foreignkey'
        )
        batch_op.drop_column('supplier_id')
    op.drop_index('ix_purchases_customer_id_order_token', 'purchases')
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_column('order_token')
