"""Supplier (OAuth client) registration, verification, suspension, broker approval and initial
access tokens.

Client secrets, initial access tokens, codes and tokens are 256-bit random values, so a
plain SHA-256 is an adequate one-way store (no password stretching needed); the value
itself is shown once and never stored.

A supplier's name is what a customer trusts on the consent screen, so it is normalised and
checked by :mod:`infomediary.supplier_names` (no invisible characters, nothing confusable
with a registered supplier's name, UTS #39), and a registration holds at most
``MAX_REDIRECT_URIS`` redirect URIs. The operator vouches for a supplier with
``verify_supplier``; the consent screen says whether they did.

Every supplier belongs to an organisation (a new one of its own unless the operator names
one): its clients share one privacy budget and the broker's answers. The broker's scopes
(``infomediary.scopes.OPERATOR_GATED``) and the sector are the operator's to grant, through
:func:`approve_broker` alone (``suppliers create`` with a broker scope goes through it too):
a client registered dynamically gets neither, whatever it asks for, and counts as sector
``other`` (customers' sector rules follow the sector the operator vouched for, never one a
client claimed). :func:`revoke_broker` takes the scopes back and revokes the tokens carrying
them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, ActorType
from infomediary.audit.reasons import Reason
from infomediary.db import rowcount
from infomediary.errors import (
    InvalidInitialAccessToken,
    InvalidRedirectUri,
    NotFound,
    ValidationFailed,
)
from infomediary.models import InitialAccessToken, OAuthToken, Organisation, Supplier, utcnow
from infomediary.scopes import (
    ALL_SCOPES,
    BROKER_SCOPES,
    DEFAULT_BROKER_SCOPES,
    OPERATOR_GATED,
    gated_scopes,
    parse_scopes,
)
from infomediary.services import Context, tokens
from infomediary.services.uow import unit_of_work
from infomediary.statuses import RegisteredVia, SupplierKind, SupplierStatus
from infomediary.supplier_names import NameRejected, first_confusable, normalise_name
from policies.model import PURPOSES

SECTORS = ("retail", "travel", "finance", "health", "advertising", "media", "other")
#: The sector of every supplier the operator has not given one: what a client registered
#: dynamically counts as, whatever it claimed.
UNVETTED_SECTOR = "other"
KINDS = tuple(SupplierKind)
#: Redirect URIs one supplier may register: enough for production, staging and a loopback
#: development client, few enough that a registration cannot hide a thousand hosts.
MAX_REDIRECT_URIS = 10
#: Longest redirect URI accepted (the common 2,000-character limit of browsers and servers).
MAX_REDIRECT_URI_LENGTH = 2000


def secret_hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True)
class NewSupplier:
    supplier: Supplier
    client_secret: str


def check_redirect_uri(uri: str) -> str | None:
    """RFC 9700 §2.1 / RFC 8252 §7.3: https, or http only on the loopback; no fragment."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "not a URL"
    if any(ch.isspace() or ord(ch) < 32 for ch in uri):
        return "must not contain spaces or control characters"
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        return f"must be at most {MAX_REDIRECT_URI_LENGTH} characters"
    if parts.fragment or "#" in uri:
        return "must not contain a fragment"
    if "@" in parts.netloc:
        return "must not contain user information (it hides the real host)"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return None
    return "must be an https URL (or http on 127.0.0.1 / localhost)"


def validate_registration(
    *,
    name: str,
    redirect_uris: list[str],
    scopes: list[str],
    purposes: list[str],
    privacy_policy_url: str | None,
    sector: str,
    kind: str = SupplierKind.SUPPLIER,
) -> dict[str, str]:
    errors: dict[str, str] = {}
    try:
        normalise_name(name)
    except NameRejected as exc:
        errors["name"] = str(exc)
    if len(set(redirect_uris)) > MAX_REDIRECT_URIS:
        errors["redirect_uris"] = f"At most {MAX_REDIRECT_URIS} redirect URIs may be registered."
    elif bad := [f"{u}: {p}" for u in redirect_uris if (p := check_redirect_uri(u))]:
        errors["redirect_uris"] = "; ".join(bad)
    customer_scopes = [s for s in scopes if s not in BROKER_SCOPES]
    if customer_scopes and not redirect_uris and kind == SupplierKind.SUPPLIER:
        errors["redirect_uris"] = "Customer-data scopes need at least one redirect URI."
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        errors["scope"] = f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ALL_SCOPES)}."
    if not scopes and kind == SupplierKind.SUPPLIER:
        errors["scope"] = "At least one scope is required."
    unknown_purposes = sorted(set(purposes) - set(PURPOSES))
    if unknown_purposes:
        errors["purpose"] = (
            f"Unknown purpose(s): {', '.join(unknown_purposes)}. Known: {', '.join(PURPOSES)}."
        )
    if not purposes and kind == SupplierKind.SUPPLIER:
        errors["purpose"] = "At least one purpose is required."
    if privacy_policy_url and check_redirect_uri(privacy_policy_url):
        errors["privacy_policy_url"] = "Must be an https URL."
    if sector not in SECTORS:
        errors["sector"] = f"Choose one of: {', '.join(SECTORS)}."
    if kind not in KINDS:
        errors["kind"] = f"Choose one of: {', '.join(KINDS)}."
    return errors


def create_supplier(
    session: Session,
    *,
    name: str,
    redirect_uris: list[str],
    scopes: list[str],
    purposes: list[str],
    privacy_policy_url: str | None = None,
    sector: str = "retail",
    kind: str = SupplierKind.SUPPLIER,
    via: str = RegisteredVia.CLI,
    ctx: Context | None = None,
    organisation: str | None = None,
) -> NewSupplier:
    """A new supplier, in ``organisation`` (id or name) or a new organisation of its own.

    Registered by the operator (``via`` ``cli``), operator-gated scopes asked for are granted
    through the broker approval (:func:`approve_broker`'s path and entry) with ``sector``.
    Registered dynamically (``dcr``), the client gets none of them and sector ``other``; what
    it asked for is kept for the operator to see.
    """
    with unit_of_work(session) as uow:
        errors = validate_registration(
            name=name,
            redirect_uris=redirect_uris,
            scopes=scopes,
            purposes=purposes,
            privacy_policy_url=privacy_policy_url,
            sector=sector,
            kind=kind,
        )
        if errors:
            too_many = len(set(redirect_uris)) > MAX_REDIRECT_URIS
            if set(errors) == {"redirect_uris"} and not too_many:
                raise InvalidRedirectUri(errors["redirect_uris"])
            raise ValidationFailed(errors, "The client metadata is invalid.")
        name = normalise_name(name)
        home = find_organisation(session, organisation) if organisation else None
        gated = gated_scopes(scopes)
        self_registered = via == RegisteredVia.DCR
        secret = secrets.token_urlsafe(32)
        supplier = Supplier(
            id=str(uuid.uuid4()),
            client_id="sup_" + secrets.token_urlsafe(18),
            client_secret_hash=secret_hash(secret),
            kind=kind,
            name=name,
            sector=UNVETTED_SECTOR if self_registered else sector,
            claimed_sector=sector if self_registered else None,
            privacy_policy_url=privacy_policy_url,
            redirect_uris=json.dumps(sorted(set(redirect_uris))),
            scopes=" ".join(sorted(set(scopes) - OPERATOR_GATED)),
            requested_scopes=" ".join(gated) if self_registered else "",
            purposes=" ".join(sorted(set(purposes))),
            registered_via=via,
        )
        ctx = ctx or Context(Actor(ActorType.OPERATOR, via))
        # The log append locks the log head, so concurrent registrations line up here and the
        # name check below sees every supplier committed before this one.
        ctx.log(session, "create", reason=Reason("supplier.registered", {"supplier": supplier.id}))
        _refuse_confusable_name(session, name, via)
        if home is None:
            home = Organisation(id=str(uuid.uuid4()), name=name, created_at=utcnow())
            session.add(home)
            session.flush()  # the organisation's row first: the supplier's refers to it
        supplier.organisation_id = home.id
        session.add(supplier)
        if gated and not self_registered:
            _approve(session, supplier, gated, sector, ctx)
        uow.commit()
        return NewSupplier(supplier, secret)


def _refuse_confusable_name(session: Session, name: str, via: str) -> None:
    """UTS #39 §4: no two suppliers (suspended ones included) share a skeleton."""
    names = session.execute(select(Supplier.name).order_by(Supplier.created_at)).scalars()
    clash = first_confusable(name, names)
    if clash is None:
        return
    session.rollback()
    message = "Too similar to the name of a registered supplier; choose a distinct name."
    # the operator may see which one; a self-registering client may not
    if via != RegisteredVia.DCR:
        message = f"Too similar to the name of the registered supplier {clash!r}."
    raise ValidationFailed({"name": message}, "The client metadata is invalid.")


def verify_supplier(session: Session, ref: str, ctx: Context | None = None) -> Supplier:
    """The operator vouches for SUPPLIER (checked who runs it and its redirect hosts).

    Idempotent: a supplier verified before keeps its first ``verified_at``. The consent
    screen shows the date, and "Not verified by Infomediary" until there is one.
    """
    with unit_of_work(session) as uow:
        supplier = find_supplier(session, ref)
        if supplier.verified_at is None:
            supplier.verified_at = utcnow()
            ctx = ctx or Context(Actor(ActorType.OPERATOR, "cli"))
            ctx.log(
                session, "update", reason=Reason("supplier.verified", {"supplier": supplier.id})
            )
        uow.commit()
        return supplier


def redirect_host(uri: str) -> str:
    """The host a redirect URI sends the customer to, as the consent screen shows it.

    ASCII only: an internationalised host is shown in its ``xn--`` form (RFC 5891), which
    cannot pass for another host the way a Unicode look-alike can.
    """
    parts = urlsplit(uri)
    host = parts.hostname or ""
    try:
        shown = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        shown = host.encode("ascii", "backslashreplace").decode("ascii")
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{shown}:{port}" if port else shown


def find_supplier(session: Session, ref: str) -> Supplier:
    """By id, client_id or (exact) name."""
    supplier = session.execute(
        select(Supplier).where((Supplier.id == ref) | (Supplier.client_id == ref))
    ).scalar_one_or_none()
    if supplier is not None:
        return supplier
    named = list(session.execute(select(Supplier).where(Supplier.name == ref)).scalars())
    if len(named) > 1:
        raise NotFound(f"Several suppliers are named {ref!r}; give an id or client_id.")
    if not named:
        raise NotFound(f"No supplier with id, client_id or name {ref!r}.")
    return named[0]


def find_organisation(session: Session, ref: str) -> Organisation:
    """An existing organisation, by id or (exact) name."""
    found = session.get(Organisation, ref)
    if found is not None:
        return found
    named = list(session.execute(select(Organisation).where(Organisation.name == ref)).scalars())
    if len(named) > 1:
        raise NotFound(f"Several organisations are named {ref!r}; give its id.")
    if not named:
        raise NotFound(f"No organisation with id or name {ref!r}.")
    return named[0]


def organisation_names(session: Session, organisation_ids: Iterable[str]) -> dict[str, str]:
    """Organisation names by id, for the ids given."""
    rows = session.execute(
        select(Organisation.id, Organisation.name).where(
            Organisation.id.in_(list(organisation_ids))
        )
    )
    return {str(i): str(n) for i, n in rows}


def broker_approved(supplier: Supplier) -> bool:
    """Whether the operator approved ``supplier`` for the broker: it holds one of the broker's
    scopes, which only :func:`approve_broker` grants."""
    return any(scope in BROKER_SCOPES for scope in parse_scopes(supplier.scopes))


def approve_broker(
    session: Session,
    ref: str,
    *,
    sector: str,
    organisation: str | None = None,
    scopes: Iterable[str] | None = None,
    ctx: Context | None = None,
) -> Supplier:
    """The operator approves SUPPLIER (id, client_id or name) for the broker: it holds the
    broker's scopes (counts and offers, or ``scopes``: the intents' scopes only when named),
    counts as ``sector`` and, given
    ``organisation`` (an existing one's id or name), moves into it. Logged; a scope it held
    and no longer does takes its tokens with it."""
    with unit_of_work(session) as uow:
        supplier = find_supplier(session, ref)
        home = find_organisation(session, organisation) if organisation else None
        ctx = ctx or Context(Actor(ActorType.OPERATOR, "cli"))
        _approve(session, supplier, list(scopes or DEFAULT_BROKER_SCOPES), sector, ctx, home)
        uow.commit()
        return supplier


def _approve(
    session: Session,
    supplier: Supplier,
    scopes: list[str],
    sector: str,
    ctx: Context,
    organisation: Organisation | None = None,
) -> None:
    """The one path by which a supplier gets a broker scope and a sector from the operator."""
    errors: dict[str, str] = {}
    if sector not in SECTORS:
        errors["sector"] = f"Unknown sector {sector!r}; choose one of: {', '.join(SECTORS)}."
    granted = sorted(set(scopes))
    if not granted or any(scope not in BROKER_SCOPES for scope in granted):
        errors["scope"] = f"Choose among the broker's scopes: {', '.join(BROKER_SCOPES)}."
    if supplier.kind != SupplierKind.SUPPLIER:
        errors["supplier"] = "A resource server does not use the broker."
    if errors:
        raise ValidationFailed(errors, "The broker approval is invalid.")
    held = parse_scopes(supplier.scopes)
    taken = [scope for scope in held if scope in BROKER_SCOPES and scope not in granted]
    supplier.scopes = " ".join(sorted({s for s in held if s not in BROKER_SCOPES} | set(granted)))
    supplier.requested_scopes = ""
    supplier.sector = sector
    if organisation is not None:
        supplier.organisation_id = organisation.id
    ctx.log(
        session,
        "update",
        reason=Reason(
            "supplier.broker_approved",
            {
                "supplier": supplier.id,
                "scopes": list(granted),
                "sector": sector,
                "organisation": supplier.organisation_id,
            },
        ),
    )
    if taken:
        _revoke_scoped_tokens(
            session,
            supplier,
            taken,
            ctx,
            Reason("supplier.scopes_taken_back", {"supplier": supplier.id, "scopes": list(taken)}),
        )


def revoke_broker(session: Session, ref: str, ctx: Context | None = None) -> int:
    """The operator takes the broker's scopes back from SUPPLIER: every token carrying one
    stops working at once (its other tokens, and its sector, stay). Returns tokens revoked."""
    with unit_of_work(session) as uow:
        supplier = find_supplier(session, ref)
        ctx = ctx or Context(Actor(ActorType.OPERATOR, "cli"))
        held = parse_scopes(supplier.scopes)
        supplier.scopes = " ".join(scope for scope in held if scope not in BROKER_SCOPES)
        supplier.requested_scopes = ""
        revoked = _revoke_scoped_tokens(
            session,
            supplier,
            list(BROKER_SCOPES),
            ctx,
            Reason("supplier.broker_tokens_revoked", {"supplier": supplier.id}),
        )
        ctx.log(
            session,
            "update",
            reason=Reason("supplier.broker_revoked", {"supplier": supplier.id, "count": revoked}),
        )
        uow.commit()
        return revoked


def _revoke_scoped_tokens(
    session: Session, supplier: Supplier, scopes: list[str], ctx: Context, why: Reason
) -> int:
    """Revoke the supplier's live tokens that carry any of ``scopes`` (logged)."""
    live = session.execute(
        select(OAuthToken.id, OAuthToken.scope).where(
            OAuthToken.supplier_id == supplier.id, OAuthToken.revoked_at.is_(None)
        )
    ).all()
    ids = [token_id for token_id, scope in live if set(parse_scopes(scope)) & set(scopes)]
    return tokens.revoke_tokens(
        session,
        OAuthToken.id.in_(ids),
        reason=why,
        ctx=ctx,
    )


def suspend_supplier(session: Session, ref: str, ctx: Context | None = None) -> int:
    """Suspend a supplier: every one of its tokens stops working at once. Returns tokens revoked."""
    with unit_of_work(session) as uow:
        supplier = find_supplier(session, ref)
        now = utcnow()
        supplier.status = SupplierStatus.SUSPENDED
        supplier.suspended_at = now
        ctx = ctx or Context(Actor(ActorType.OPERATOR, "cli"))
        revoked = tokens.revoke_tokens(
            session,
            OAuthToken.supplier_id == supplier.id,
            reason=Reason("supplier.suspended", {"supplier": supplier.id}),
            ctx=ctx,
        )
        ctx.log(
            session,
            "update",
            reason=Reason(
                "tokens.revoked",
                {
                    "cause": Reason("supplier.suspended", {"supplier": supplier.id}).param(),
                    "count": revoked,
                },
            ),
        )
        uow.commit()
        return int(revoked or 0)


def issue_initial_access_token(
    session: Session, *, days: int = 7, ctx: Context | None = None
) -> str:
    """An RFC 7591 initial access token for one registration; only its hash is stored, and
    its issuance is logged like every other credential's."""
    with unit_of_work(session) as uow:
        token = "iat_" + secrets.token_urlsafe(32)
        digest = secret_hash(token)
        session.add(
            InitialAccessToken(token_hash=digest, expires_at=utcnow() + timedelta(days=days))
        )
        ctx = ctx or Context(Actor(ActorType.OPERATOR, "cli"))
        ctx.log(
            session,
            "update",
            reason=Reason("supplier.initial_token", {"token": digest.hex()[:12], "days": days}),
        )
        uow.commit()
        return token


def initial_access_token_usable(session: Session, token: str) -> bool:
    """Whether ``token`` is an unused, unexpired initial access token (it is spent only by
    :func:`register_client`)."""
    with unit_of_work(session):
        found = session.execute(
            select(InitialAccessToken.token_hash).where(
                InitialAccessToken.token_hash == secret_hash(token),
                InitialAccessToken.used_at.is_(None),
                InitialAccessToken.expires_at > utcnow(),
            )
        ).first()
        return found is not None


def redeem_initial_access_token(session: Session, token: str) -> bool:
    """Single use: atomically mark it used; False when unknown, expired or used."""
    result = session.execute(
        update(InitialAccessToken)
        .where(
            InitialAccessToken.token_hash == secret_hash(token),
            InitialAccessToken.used_at.is_(None),
            InitialAccessToken.expires_at > utcnow(),
        )
        .values(used_at=utcnow())
    )
    return bool(rowcount(result))


def redirect_uris(supplier: Supplier) -> list[str]:
    uris: list[str] = json.loads(supplier.redirect_uris)
    return uris


def register_client(
    session: Session,
    initial_access_token: str,
    *,
    name: str,
    redirect_uris: list[str],
    scopes: list[str],
    purposes: list[str],
    privacy_policy_url: str | None,
    sector: str,
) -> NewSupplier:
    """RFC 7591 dynamic registration as one use case: the initial access token is spent and
    the client created together, or neither (a refused registration keeps its token)."""
    with unit_of_work(session):
        if not redeem_initial_access_token(session, initial_access_token):
            raise InvalidInitialAccessToken("A valid initial access token is required.")
        return create_supplier(
            session,
            name=name,
            redirect_uris=redirect_uris,
            scopes=scopes,
            purposes=purposes,
            privacy_policy_url=privacy_policy_url,
            sector=sector,
            via=RegisteredVia.DCR,
        )


def all_suppliers(session: Session) -> list[Supplier]:
    """Every supplier, by name (the operator's list; secrets are only ever stored hashed)."""
    return list(session.execute(select(Supplier).order_by(Supplier.name)).scalars())


def names_of(session: Session, supplier_ids: Iterable[str]) -> dict[str, str]:
    """Supplier names by id, for the ids given."""
    rows = session.execute(
        select(Supplier.id, Supplier.name).where(Supplier.id.in_(list(supplier_ids)))
    )
    return {str(i): str(n) for i, n in rows}
