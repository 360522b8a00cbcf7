"""email verification and e-mailed single-use links

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:35:00.000000

Customers gain ``verified_at``: until it is set an account may fill in its profile but
neither grant consents nor be counted or reached by the broker. Every customer that exists
when this migration runs is set verified (at its creation time): those accounts were made
before address verification existed, by the operator, the demo, or a sign-up that logged in
at once, and taking their consents and offers away retroactively would break what they set up.

``email_tokens`` holds the links sent by e-mail (verify an address, reset a password,
confirm a new address) as SHA-256 hashes of 256-bit random tokens, single use, expiring; a
pending new address is sealed under the customer's data key, never stored in plaintext.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))
    op.execute('UPDATE customers SET verified_at = created_at WHERE verified_at IS NULL')

    op.create_table('email_tokens',
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('new_email', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_email_tokens_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_email_tokens'))
    )
    with op.batch_alter_table('email_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_tokens_customer_id'), ['customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('email_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_tokens_customer_id'))

    op.drop_table('email_tokens')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('verified_at')
