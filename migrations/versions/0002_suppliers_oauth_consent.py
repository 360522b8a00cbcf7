"""suppliers oauth consent

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:43:03.077989
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('initial_access_tokens',
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_initial_access_tokens'))
    )
    op.create_table('suppliers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('client_secret_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('sector', sa.String(length=32), nullable=False),
    sa.Column('privacy_policy_url', sa.String(length=512), nullable=True),
    sa.Column('redirect_uris', sa.Text(), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('purposes', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('registered_via', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppliers')),
    sa.UniqueConstraint('client_id', name=op.f('uq_suppliers_client_id'))
    )
    op.create_table('consent_grants',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('supplier_id', sa.String(length=36), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('consent_text_version', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_consent_grants_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_consent_grants_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_grants'))
    )
    with op.batch_alter_table('consent_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_grants_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_grants_supplier_id'), ['supplier_id'], unique=False)

    op.create_table('customer_policies',
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('policy', sa.LargeBinary(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_policies_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_policies'))
    )
    op.create_table('authorization_codes',
    sa.Column('code_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('supplier_id', sa.String(length=36), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('grant_id', sa.String(length=36), nullable=False),
    sa.Column('redirect_uri', sa.String(length=512), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('code_challenge_method', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_authorization_codes_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grant_id'], ['consent_grants.id'], name=op.f('fk_authorization_codes_grant_id_consent_grants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_authorization_codes_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_authorization_codes'))
    )
    op.create_table('consent_receipts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('grant_id', sa.String(length=36), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('jws', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_consent_receipts_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grant_id'], ['consent_grants.id'], name=op.f('fk_consent_receipts_grant_id_consent_grants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_receipts'))
    )
    with op.batch_alter_table('consent_receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_receipts_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_receipts_grant_id'), ['grant_id'], unique=False)

    op.create_table('oauth_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('supplier_id', sa.String(length=36), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=True),
    sa.Column('grant_id', sa.String(length=36), nullable=True),
    sa.Column('family_id', sa.String(length=64), nullable=False),
    sa.Column('access_token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('refresh_token_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refresh_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_oauth_tokens_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grant_id'], ['consent_grants.id'], name=op.f('fk_oauth_tokens_grant_id_consent_grants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_oauth_tokens_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_tokens')),
    sa.UniqueConstraint('access_token_hash', name=op.f('uq_oauth_tokens_access_token_hash')),
    sa.UniqueConstraint('refresh_token_hash', name=op.f('uq_oauth_tokens_refresh_token_hash'))
    )
    with op.batch_alter_table('oauth_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_tokens_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_tokens_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_tokens_grant_id'), ['grant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_tokens_supplier_id'), ['supplier_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('oauth_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_tokens_supplier_id'))
        batch_op.drop_index(batch_op.f('ix_oauth_tokens_grant_id'))
        batch_op.drop_index(batch_op.f('ix_oauth_tokens_family_id'))
        batch_op.drop_index(batch_op.f('ix_oauth_tokens_customer_id'))

    op.drop_table('oauth_tokens')
    with op.batch_alter_table('consent_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_receipts_grant_id'))
        batch_op.drop_index(batch_op.f('ix_consent_receipts_customer_id'))

    op.drop_table('consent_receipts')
    op.drop_table('authorization_codes')
    op.drop_table('customer_policies')
    with op.batch_alter_table('consent_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_grants_supplier_id'))
        batch_op.drop_index(batch_op.f('ix_consent_grants_customer_id'))

    op.drop_table('consent_grants')
    op.drop_table('suppliers')
    op.drop_table('initial_access_tokens')
