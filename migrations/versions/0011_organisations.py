"""organisations: suppliers share a budget and a cache scope per organisation

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 00:45:00.000000

Every supplier gets an organisation of its own, named after it, and its budget rows move to
that organisation (``budget_accounts.supplier_id`` holds the organisation's id from here on;
the global row ``*`` stays). ``suppliers.organisation_id`` is NOT NULL once every supplier
has one.

The broker's scopes and the sector become the operator's to grant. A supplier the operator
created keeps what it holds. A client registered dynamically (``registered_via = 'dcr'``)
chose its own: its broker scopes move to ``requested_scopes`` and the sector it named to
``claimed_sector``, and it is in sector ``other`` until the operator approves it. The values
are written out here, not imported: this revision must keep meaning what it meant when it
was written.

The downgrade cannot split an organisation's spending between its suppliers, so each of
them is charged the whole of it (no supplier gains budget); what dynamically registered
clients asked for is dropped, not granted.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The operator-gated scopes as of this revision.
GATED = ("audience:count", "offers:send")
UNVETTED_SECTOR = "other"
GLOBAL = "*"

organisations = sa.table(
    "organisations",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("created_at", sa.DateTime),
)
suppliers = sa.table(
    "suppliers",
    sa.column("id", sa.String),
    sa.column("organisation_id", sa.String),
    sa.column("name", sa.String),
    sa.column("created_at", sa.DateTime),
    sa.column("registered_via", sa.String),
    sa.column("scopes", sa.Text),
    sa.column("sector", sa.String),
    sa.column("claimed_sector", sa.String),
    sa.column("requested_scopes", sa.Text),
)
budget_accounts = sa.table(
    "budget_accounts",
    sa.column("supplier_id", sa.String),
    sa.column("period", sa.Integer),
    sa.column("spent_micro", sa.BigInteger),
)


def _split(scopes: str | None) -> list[str]:
    return sorted({part for part in (scopes or "").split() if part})


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organisation_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("claimed_sector", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("requested_scopes", sa.Text(), nullable=True))

    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            suppliers.c.id, suppliers.c.registered_via, suppliers.c.scopes, suppliers.c.sector
        ).order_by(suppliers.c.id)
    ).all()
    for supplier_id, via, scopes, sector in rows:
        organisation_id = str(uuid.uuid4())
        # name and created_at copied as stored, whatever the backend's format
        bind.execute(
            organisations.insert().from_select(
                ["id", "name", "created_at"],
                sa.select(
                    sa.literal(organisation_id, sa.String), suppliers.c.name, suppliers.c.created_at
                ).where(suppliers.c.id == supplier_id),
            )
        )
        values: dict[str, str | None] = {"organisation_id": organisation_id, "requested_scopes": ""}
        if via == "dcr":
            held = _split(scopes)
            values.update(
                scopes=" ".join(s for s in held if s not in GATED),
                requested_scopes=" ".join(s for s in held if s in GATED),
                claimed_sector=sector,
                sector=UNVETTED_SECTOR,
            )
        bind.execute(suppliers.update().where(suppliers.c.id == supplier_id).values(**values))
        bind.execute(
            budget_accounts.update()
            .where(budget_accounts.c.supplier_id == supplier_id)
            .values(supplier_id=organisation_id)
        )

    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.alter_column("organisation_id", existing_type=sa.String(36), nullable=False)
        batch_op.alter_column("requested_scopes", existing_type=sa.Text(), nullable=False)
        batch_op.create_index(batch_op.f("ix_suppliers_organisation_id"), ["organisation_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_suppliers_organisation_id_organisations"),
            "organisations",
            ["organisation_id"],
            ["id"],
        )


def downgrade() -> None:
    bind = op.get_bind()
    members: dict[str, list[str]] = {}
    for supplier_id, organisation_id in bind.execute(
        sa.select(suppliers.c.id, suppliers.c.organisation_id)
    ):
        members.setdefault(organisation_id, []).append(supplier_id)
    spent = bind.execute(
        sa.select(
            budget_accounts.c.supplier_id, budget_accounts.c.period, budget_accounts.c.spent_micro
        ).where(budget_accounts.c.supplier_id != GLOBAL)
    ).all()
    for holder, period, micro in spent:
        if holder not in members:
            continue
        bind.execute(
            budget_accounts.delete().where(
                budget_accounts.c.supplier_id == holder, budget_accounts.c.period == period
            )
        )
        bind.execute(
            budget_accounts.insert(),
            [
                {"supplier_id": supplier_id, "period": period, "spent_micro": micro}
                for supplier_id in members[holder]
            ],
        )
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_suppliers_organisation_id_organisations"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_suppliers_organisation_id"))
        batch_op.drop_column("requested_scopes")
        batch_op.drop_column("claimed_sector")
        batch_op.drop_column("organisation_id")
    op.drop_table("organisations")
