"""consent grants made by sharing contact details from an offer name that offer

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 20:40:00.000000

Contact details of an offer's accepter are released only by a share made for that offer.
Grants from before this revision name no offer, so an earlier share has to be made again
(the grant itself stays, and keeps serving the supplier's own OAuth flow).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('consent_grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offer_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_consent_grants_offer_id'), ['offer_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_consent_grants_offer_id_offers'),
            'offers', ['offer_id'], ['id'], ondelete='CASCADE'
        )


def downgrade() -> None:
    with op.batch_alter_table('consent_grants', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_consent_grants_offer_id_offers'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_consent_grants_offer_id'))
        batch_op.drop_column('offer_id')
