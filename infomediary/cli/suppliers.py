"""``suppliers ...``: register, verify, suspend, approve for the broker, list, fund and review
suppliers."""

from __future__ import annotations

from typing import Any

import click

from infomediary.cli.common import _emit, _using
from infomediary.services import erasure_requests  # noqa: F401 - registers its job kind
from infomediary.statuses import SupplierKind


@click.group(name="suppliers")
def suppliers_group() -> None:
    """Register, verify and suspend suppliers (OAuth clients)."""


@suppliers_group.command("create")
@click.option("--name", required=True)
@click.option(
    "--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI; repeatable."
)
@click.option("--scope", "scopes", multiple=True, required=True, help="Scope; repeatable.")
@click.option("--purpose", "purposes", multiple=True, help="Declared purpose; repeatable.")
@click.option("--privacy-policy-url", default=None)
@click.option("--sector", default="retail", show_default=True)
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in SupplierKind]),
    default=SupplierKind.SUPPLIER.value,
    show_default=True,
)
@click.option(
    "--organisation", default=None, help="An existing organisation's id or name (default: new)."
)
@click.option("--json", "as_json", is_flag=True)
def suppliers_create(
    name: str,
    redirect_uris: tuple[str, ...],
    scopes: tuple[str, ...],
    purposes: tuple[str, ...],
    privacy_policy_url: str | None,
    sector: str,
    kind: str,
    organisation: str | None,
    as_json: bool,
) -> None:
    """Register a supplier; prints client_id and client_secret (shown once, stored hashed).

    A broker scope (audience:count, offers:send) is granted as approve-broker grants it, with
    --sector, and logged as an approval.
    """
    from infomediary.services.suppliers import create_supplier

    with _using() as (_inst, session):
        created = create_supplier(
            session,
            name=name,
            redirect_uris=list(redirect_uris),
            scopes=[p for s in scopes for p in s.split()],
            purposes=list(purposes),
            privacy_policy_url=privacy_policy_url,
            sector=sector,
            kind=kind,
            organisation=organisation,
        )
        supplier = created.supplier
    data = {
        "id": supplier.id,
        "client_id": supplier.client_id,
        "client_secret": created.client_secret,
        "organisation_id": supplier.organisation_id,
        "sector": supplier.sector,
        "scope": supplier.scopes,
        "purposes": supplier.purposes.split(),
    }
    _emit(
        as_json,
        data,
        f"supplier {supplier.id}\nclient_id:     {supplier.client_id}\n"
        f"client_secret: {created.client_secret}\n(shown once; only its hash is kept)",
    )


@suppliers_group.command("suspend")
@click.argument("supplier")
@click.option("--json", "as_json", is_flag=True)
def suppliers_suspend(supplier: str, as_json: bool) -> None:
    """Suspend SUPPLIER (id or client_id): all its tokens stop working at once."""
    from infomediary.services.suppliers import suspend_supplier

    with _using() as (_inst, session):
        revoked = suspend_supplier(session, supplier)
    _emit(
        as_json,
        {"suspended": supplier, "tokens_revoked": revoked},
        f"suspended {supplier}; {revoked} tokens revoked",
    )


@suppliers_group.command("verify")
@click.argument("supplier")
@click.option("--json", "as_json", is_flag=True)
def suppliers_verify(supplier: str, as_json: bool) -> None:
    """Mark SUPPLIER (id or client_id) as verified by the operator; the consent screen says so.

    Verify only after checking who runs the supplier and that its redirect hosts are theirs.
    """
    from infomediary.services.suppliers import verify_supplier

    with _using() as (_inst, session):
        row = verify_supplier(session, supplier)
        verified_at = row.verified_at.isoformat() if row.verified_at else None
        data = {"id": row.id, "client_id": row.client_id, "name": row.name}
    _emit(
        as_json,
        {**data, "verified_at": verified_at},
        f"verified {data['client_id']} ({data['name']}) since {verified_at}",
    )


@suppliers_group.command("approve-broker")
@click.argument("supplier")
@click.option("--sector", required=True, help="The sector the operator vouches for.")
@click.option(
    "--organisation", default=None, help="Move it into this existing organisation (id or name)."
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help=(
        "Broker scope to grant; repeatable (default: audience:count and offers:send; "
        "intents:read and intents:bid only when named)."
    ),
)
@click.option("--json", "as_json", is_flag=True)
def suppliers_approve_broker(
    supplier: str, sector: str, organisation: str | None, scopes: tuple[str, ...], as_json: bool
) -> None:
    """Approve SUPPLIER (id, client_id or name) for the broker: it gets the broker's scopes
    and counts as SECTOR; with --organisation it draws on that organisation's budget."""
    from infomediary.services.suppliers import approve_broker, organisation_names

    with _using() as (_inst, session):
        row = approve_broker(
            session,
            supplier,
            sector=sector,
            organisation=organisation,
            scopes=[p for s in scopes for p in s.split()] or None,
        )
        data = {
            "id": row.id,
            "client_id": row.client_id,
            "name": row.name,
            "organisation_id": row.organisation_id,
            "organisation": organisation_names(session, [row.organisation_id]).get(
                row.organisation_id
            ),
            "sector": row.sector,
            "scope": row.scopes,
        }
    _emit(
        as_json,
        data,
        f"approved {data['client_id']} ({data['name']}) for the broker: [{data['scope']}], "
        f"sector {data['sector']}, organisation {data['organisation']}",
    )


@suppliers_group.command("revoke-broker")
@click.argument("supplier")
@click.option("--json", "as_json", is_flag=True)
def suppliers_revoke_broker(supplier: str, as_json: bool) -> None:
    """Take the broker's scopes back from SUPPLIER (id, client_id or name): its tokens carrying
    them stop working at once."""
    from infomediary.services.suppliers import find_supplier, revoke_broker

    with _using() as (_inst, session):
        revoked = revoke_broker(session, supplier)
        row = find_supplier(session, supplier)
        data = {"id": row.id, "client_id": row.client_id, "scope": row.scopes}
    _emit(
        as_json,
        {**data, "tokens_revoked": revoked},
        f"{data['client_id']} no longer approved for the broker; {revoked} tokens revoked",
    )


@suppliers_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def suppliers_list(as_json: bool) -> None:
    """List suppliers (never their secrets), with their organisation and sector, and what a
    dynamically registered client asked for and was not given."""
    from infomediary.services.suppliers import all_suppliers, broker_approved, organisation_names

    with _using() as (_inst, session):
        found = all_suppliers(session)
        organisations = organisation_names(session, {s.organisation_id for s in found})
        rows = [
            {
                "id": s.id,
                "client_id": s.client_id,
                "name": s.name,
                "kind": s.kind,
                "status": s.status,
                "organisation_id": s.organisation_id,
                "organisation": organisations.get(s.organisation_id),
                "sector": s.sector,
                "claimed_sector": s.claimed_sector,
                "broker_approved": broker_approved(s),
                "scope": s.scopes,
                "requested_scope": s.requested_scopes,
                "purposes": s.purposes.split(),
                "verified_at": s.verified_at.isoformat() if s.verified_at else None,
            }
            for s in found
        ]
    _emit(as_json, {"suppliers": rows}, "\n".join(map(_line, rows)) or "no suppliers")


def _line(row: dict[str, Any]) -> str:
    line = (
        f"{row['client_id']}  {row['status']:9}  {row['name']}  [{row['scope']}]  "
        f"organisation {row['organisation']}  sector {row['sector']}"
    )
    if row["claimed_sector"] and row["claimed_sector"] != row["sector"]:
        line += f" (claimed {row['claimed_sector']})"
    if row["requested_scope"]:
        line += f"  asks for [{row['requested_scope']}]: approve-broker grants it"
    return line


@suppliers_group.command("fund")
@click.argument("supplier")
@click.option("--cents", type=click.IntRange(1, 10**12), required=True)
@click.option("--json", "as_json", is_flag=True)
def suppliers_fund(supplier: str, cents: int, as_json: bool) -> None:
    """Credit SUPPLIER's rewards account (double-entry, from the platform's funding account)."""
    from infomediary.services.rewards import fund

    with _using() as (_inst, session):
        balance = fund(session, supplier, cents)
    _emit(
        as_json,
        {"supplier": supplier, "balance_cents": balance},
        f"{supplier}: balance {balance / 100:.2f}",
    )


@suppliers_group.command("flagged")
@click.option("--threshold", type=click.IntRange(1, 10**6), default=25, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def suppliers_flagged(threshold: int, as_json: bool) -> None:
    """Suppliers blocked by at least THRESHOLD customers, for review."""
    from infomediary.services.offer_inbox import flagged_suppliers
    from infomediary.services.suppliers import names_of

    with _using() as (_inst, session):
        flagged = flagged_suppliers(session, threshold)
        names = names_of(session, flagged)
    rows = [{"id": k, "name": names.get(k, "?"), "blocks": v} for k, v in flagged.items()]
    _emit(
        as_json,
        {"flagged": rows},
        "\n".join(f"{r['id']}  {r['name']}  blocked by {r['blocks']}" for r in rows) or "none",
    )


@suppliers_group.command("initial-access-token")
@click.option("--days", type=click.IntRange(1, 90), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def suppliers_iat(days: int, as_json: bool) -> None:
    """Issue a single-use initial access token for dynamic client registration (RFC 7591)."""
    from infomediary.services.suppliers import issue_initial_access_token

    with _using() as (_inst, session):
        token = issue_initial_access_token(session, days=days)
    _emit(
        as_json,
        {"initial_access_token": token, "expires_in_days": days},
        f"{token}\n(single use, valid {days} days; send as 'Authorization: Bearer ...' "
        "to /oauth/register)",
    )


@suppliers_group.command("webhook")
@click.argument("supplier")
@click.option("--url", required=True, help="The https URL erasure requests are POSTed to.")
@click.option(
    "--base-url",
    default=None,
    help="Where suppliers reach this instance (default: INFOMEDIARY_ISSUER).",
)
@click.option("--json", "as_json", is_flag=True)
def suppliers_webhook(supplier: str, url: str, base_url: str | None, as_json: bool) -> None:
    """Set SUPPLIER's erasure webhook (id, client_id or name) and print a new signing secret,
    shown once (kept sealed). Requests waiting for a webhook are queued for delivery."""
    from infomediary.audit.log import Actor, ActorType
    from infomediary.services import Context
    from infomediary.services.erasure_requests import set_webhook

    with _using() as (inst, session):
        base = base_url or inst.settings.issuer or "http://localhost"
        made = set_webhook(
            session, inst, supplier, url, base, Context(Actor(ActorType.OPERATOR, "cli"))
        )
    _emit(
        as_json,
        {
            "supplier": made.supplier_id,
            "url": made.url,
            "secret": made.secret,
            "queued": made.queued,
        },
        f"webhook of {made.supplier_id}: {made.url}\nsecret: {made.secret}\n"
        f"(shown once; sign check: Infomediary-Signature t=...,v1=HMAC-SHA256)\n"
        f"{made.queued} waiting request(s) queued",
    )
