"""``suppliers ...``: register, verify, suspend, list, fund and review suppliers."""

from __future__ import annotations

import click

from infomediary.cli.common import _emit, _using
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
@click.option("--json", "as_json", is_flag=True)
def suppliers_create(
    name: str,
    redirect_uris: tuple[str, ...],
    scopes: tuple[str, ...],
    purposes: tuple[str, ...],
    privacy_policy_url: str | None,
    sector: str,
    kind: str,
    as_json: bool,
) -> None:
    """Register a supplier; prints client_id and client_secret (shown once, stored hashed)."""
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
        )
        supplier = created.supplier
    data = {
        "id": supplier.id,
        "client_id": supplier.client_id,
        "client_secret": created.client_secret,
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


@suppliers_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def suppliers_list(as_json: bool) -> None:
    """List suppliers (never their secrets)."""
    from infomediary.services.suppliers import all_suppliers

    with _using() as (_inst, session):
        rows = [
            {
                "id": s.id,
                "client_id": s.client_id,
                "name": s.name,
                "kind": s.kind,
                "status": s.status,
                "scope": s.scopes,
                "purposes": s.purposes.split(),
                "verified_at": s.verified_at.isoformat() if s.verified_at else None,
            }
            for s in all_suppliers(session)
        ]
    text = "\n".join(
        f"{r['client_id']}  {r['status']:9}  {r['name']}  [{r['scope']}]" for r in rows
    )
    _emit(as_json, {"suppliers": rows}, text or "no suppliers")


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
