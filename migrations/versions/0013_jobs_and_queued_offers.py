"""the job runner and queued offers

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 00:45:00.000000

Background work becomes ``jobs`` rows that workers claim, run and finish. An offer is
``queued`` from its request until its delivery job decides it, so the offers' status CHECK
is replaced by one that also allows ``queued`` (on SQLite by copying the table, as in 0010,
with foreign keys off: ``migrations/env.py``). An offer remembers when its noisy totals were
last released, and a supplier's offers are listed newest first from an index.

The values are written out here, not imported: this revision keeps meaning what it meant.
The downgrade refuses (changing nothing) while an offer is still ``queued``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OFFER_STATUSES_BEFORE = ('delivered', 'too_small', 'closed')
OFFER_STATUSES = (*OFFER_STATUSES_BEFORE, 'queued')
JOB_STATUSES = ('queued', 'running', 'done', 'failed')


def _offer_status_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_offers_status'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_offers_status'), sa.column('status').in_(values)
        )


def upgrade() -> None:
    _offer_status_check(OFFER_STATUSES)
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totals_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        'ix_offers_supplier_id_created_at', 'offers', ['supplier_id', 'created_at']
    )
    op.create_table(
        'jobs',
        sa.Column('id', sa.String(36), nullable=False),
        sa.Column('kind', sa.String(64), nullable=False),
        sa.Column('key', sa.String(128), nullable=True),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('max_attempts', sa.Integer(), nullable=False),
        sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('locked_by', sa.String(64), nullable=True),
        sa.Column('last_error', sa.String(255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
        sa.UniqueConstraint('key', name=op.f('uq_jobs_key')),
        sa.CheckConstraint(
            sa.column('status').in_(JOB_STATUSES), name=op.f('ck_jobs_status')
        ),
    )
    op.create_index('ix_jobs_status_run_after', 'jobs', ['status', 'run_after'])


def downgrade() -> None:
    queued = op.get_bind().execute(
        sa.text("SELECT count(*) FROM offers WHERE status = 'queued'")
    ).scalar_one()
    if queued:
        raise RuntimeError(
            f"{queued} offer(s) are still queued: run their delivery jobs before downgrading"
        )
    op.drop_index('ix_jobs_status_run_after', 'jobs')
    op.drop_table('jobs')
    op.drop_index('ix_offers_supplier_id_created_at', 'offers')
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_column('totals_at')
    _offer_status_check(OFFER_STATUSES_BEFORE)
