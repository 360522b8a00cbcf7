"""status, kind, event and purpose columns accept only their known values

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 20:45:00.000000

Every column holding a closed set of strings (``infomediary.statuses``) gets a CHECK
constraint named by the models' convention (``ck_<table>_<column>``), so a value outside
the set is refused by the database, whichever code writes it. The values are written out
here, not imported: this revision must keep meaning what it meant when it was written.
The upgrade fails, changing nothing, if a row already holds another value.

On SQLite a constraint can only be added by copying the table (batch mode), and the copy
drops the old table, which with foreign keys enforced would cascade to the tables referring
to it (``offers`` would take its deliveries with it). ``migrations/env.py`` runs every
SQLite revision with enforcement off and checks the foreign keys before it commits.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, allowed values), as of this revision.
CHECKS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ('suppliers', 'kind', ('supplier', 'resource_server')),
    ('suppliers', 'status', ('active', 'suspended')),
    ('suppliers', 'registered_via', ('cli', 'dcr')),
    ('email_tokens', 'purpose', ('verify', 'reset', 'change')),
    ('consent_receipts', 'event', ('granted', 'changed', 'revoked')),
    ('authorization_codes', 'code_challenge_method', ('S256',)),
    ('offers', 'status', ('delivered', 'too_small', 'closed')),
    ('offer_deliveries', 'status', ('delivered', 'accepted', 'declined', 'blocked')),
    ('ledger_accounts', 'kind', ('supplier', 'customer', 'escrow', 'platform')),
    ('ledger_transactions', 'kind', ('fund', 'escrow', 'reward', 'refund')),
)


def _tables() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    tables: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for table, column, values in CHECKS:
        tables.setdefault(table, []).append((column, values))
    return tables


def upgrade() -> None:
    for table, checks in _tables().items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, values in checks:
                batch_op.create_check_constraint(
                    op.f(f'ck_{table}_{column}'), sa.column(column).in_(values)
                )


def downgrade() -> None:
    for table, checks in _tables().items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, _ in checks:
                batch_op.drop_constraint(op.f(f'ck_{table}_{column}'), type_='check')
