"""MyTerms agreements (IEEE 7012): the roster, which agreements a supplier accepts, the customer's
default, and each agreement made, signed and enforced.

An agreement is made between a customer and a supplier when a supplier accepts terms the
customer proffers (the intents flow calls :func:`record_agreement` when the customer accepts a
bid). The platform, as the customer's agent, signs the record with the key that signs consent
receipts (a compact JWS of type ``myterms-agreement+jwt``), appends its access-log entry first
and cites it in the signed claims (``log_index``, ``log_leaf_hash``), as receipts do. The
supplier keeps the same JWS; the customer downloads it from the supplier's page.

The agreement's rules are part of the customer's effective policy for that supplier
(:func:`agreement_rules`, merged by :func:`infomediary.services.decisions.effective_policy`):
every rule is ``never``, for that supplier only, so the policy engine's deny-overrides makes
it win over any grant, on every access. The rules enforced are those the signed record holds,
so an operator replacing the roster later changes no agreement already made. The broker's
counts and offers, decided from the match index, leave the customer out of that supplier's
releases altogether while the agreement is in force (an exclusion token, written with it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor
from infomediary.audit.reasons import Reason
from infomediary.crypto.receipts import ReceiptError, verify_receipt
from infomediary.errors import InvalidRequest, NotFound, UnknownTerms
from infomediary.instance import Instance
from infomediary.models import Agreement, CustomerTerms, Supplier, SupplierTerms, utcnow
from infomediary.services import Context, matching
from infomediary.services.customer_keys import customer_key
from infomediary.services.pseudonyms import pairwise_pseudonym
from infomediary.services.uow import UnitOfWork, unit_of_work
from policies.model import Mode, Recipient, Rule
from policies.terms import Agreement as Terms
from policies.terms import Roster, load_roster

#: JWS ``typ`` of a signed agreement (RFC 8725 section 3.11: explicit typing keeps it apart
#: from a consent receipt signed by the same key).
AGREEMENT_TYP = "myterms-agreement+jwt"
#: Version of the signed record's claims.
AGREEMENT_VERSION = "infomediary-myterms/1"
#: Limits of an agreement's context (what it was made for, e.g. ``{"intent_id": ...}``).
MAX_CONTEXT_ITEMS = 8
MAX_CONTEXT_KEY = 40
MAX_CONTEXT_VALUE = 200


class AgreementInvalid(ValueError):
    """A signed agreement that does not verify: malformed, another type, tampered with."""


# -- the roster ------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _roster_at(path: str) -> Roster:
    return load_roster(Path(path) if path else None)


def roster(inst: Instance | None = None) -> Roster:
    """The roster in force: the file ``INFOMEDIARY_TERMS_ROSTER`` names, else the shipped one.
    Read once per path (the setting is validated at start, so this does not fail then)."""
    return _roster_at(str(inst.settings.terms_roster) if inst is not None else "")


def terms_of(agreement_id: str, inst: Instance | None = None) -> Terms:
    """The roster's agreement ``agreement_id``; :class:`NotFound` when the roster has none."""
    found = roster(inst).get(agreement_id)
    if found is None:
        raise NotFound(f"The roster holds no agreement {agreement_id!r}.")
    return found


def check_ids(ids: Iterable[object], field: str, inst: Instance | None = None) -> list[str]:
    """``ids`` if each names an agreement of the roster (in roster order, once each), else an
    ``unknown_terms`` problem naming the first that does not."""
    known = roster(inst)
    wanted = list(ids)
    for value in wanted:
        if not isinstance(value, str) or value not in known:
            shown = value if isinstance(value, str) and len(value) <= 64 else "that value"
            raise UnknownTerms(
                {field: f"{shown!r} is not an agreement on the roster ({', '.join(known.ids())})."},
                f"{shown!r} is not an agreement on the roster.",
            )
    return [i for i in known.ids() if i in wanted]


# -- what suppliers accept -------------------------------------------------------------------


def accepted_by(session: Session, supplier_id: str, inst: Instance | None = None) -> list[str]:
    """The roster agreements the supplier publishes it accepts, in roster order."""
    rows = set(
        session.execute(
            select(SupplierTerms.agreement_id).where(SupplierTerms.supplier_id == supplier_id)
        ).scalars()
    )
    ids = roster(inst).ids()
    return [i for i in ids if i in rows] + sorted(rows - set(ids))


def publish_accepted(
    session: Session, inst: Instance, supplier: Supplier, accepted: Sequence[object], ctx: Context
) -> list[str]:
    """Replace the list of agreements ``supplier`` accepts (its own request, so its acceptance
    of each); logged. Anything not on the roster is refused and nothing is written."""
    ids = check_ids(accepted, "accepted", inst)
    with unit_of_work(session) as uow:
        session.execute(delete(SupplierTerms).where(SupplierTerms.supplier_id == supplier.id))
        now = utcnow()
        session.add_all(
            SupplierTerms(supplier_id=supplier.id, agreement_id=i, accepted_at=now) for i in ids
        )
        ctx.log(
            session,
            "terms",
            reason=Reason(
                "terms.supplier_accepts", {"supplier": supplier.id, "terms": ids or ["none"]}
            ),
        )
        uow.commit()
    return ids


# -- the customer's default ------------------------------------------------------------------


def default_agreement(session: Session, customer_id: str, inst: Instance | None = None) -> str:
    """The agreement the customer proffers unless they choose another: their choice, while the
    roster still holds it, else the roster's default (``sd-base``)."""
    known = roster(inst)
    row = session.get(CustomerTerms, customer_id)
    if row is not None and row.agreement_id in known:
        return row.agreement_id
    return known.default_id()


def set_default_agreement(
    session: Session, inst: Instance, customer_id: str, agreement_id: object, ctx: Context
) -> str:
    """The customer chooses the agreement they proffer by default; logged."""
    (chosen,) = check_ids([agreement_id], "default_terms", inst)
    with unit_of_work(session) as uow:
        row = session.get(CustomerTerms, customer_id)
        if row is None:
            session.add(CustomerTerms(customer_id=customer_id, agreement_id=chosen))
        else:
            row.agreement_id, row.updated_at = chosen, utcnow()
        ctx.log(
            session,
            "terms",
            customer_id=customer_id,
            reason=Reason("terms.default_set", {"terms": chosen}),
        )
        uow.commit()
    return chosen


# -- agreements made -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgreementRecord:
    """An agreement made: the stored row's facts, the roster's agreement and the signed JWS."""

    id: str
    customer_id: str
    supplier_id: str
    agreement_id: str
    terms: Terms
    created_at: datetime
    jws: str
    log_index: int


def _check_context(context: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(context, Mapping) or len(context) > MAX_CONTEXT_ITEMS:
        raise InvalidRequest(
            "invalid_request", {"context": f"At most {MAX_CONTEXT_ITEMS} items of text."}
        )
    checked: dict[str, str] = {}
    for key, value in context.items():
        if (
            not isinstance(key, str)
            or not isinstance(value, str)
            or not 0 < len(key) <= MAX_CONTEXT_KEY
            or len(value) > MAX_CONTEXT_VALUE
            or not key.isascii()
        ):
            raise InvalidRequest(
                "invalid_request",
                {"context": "Each item is a short key and a text of at most 200 characters."},
            )
        checked[key] = value
    return dict(sorted(checked.items()))


def _context_digest(context: Mapping[str, str], salt: str) -> str:
    """What the signed record commits to for the context: salted, so the public record reveals
    nothing of it; the customer, who holds the salt, can check it."""
    text = json.dumps({"context": context, "salt": salt}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _rule_dicts(rules: Iterable[Rule]) -> list[dict[str, str]]:
    return [{"category": r.category, "purpose": r.purpose, "mode": str(r.mode)} for r in rules]


def record_agreement(
    uow: UnitOfWork,
    inst: Instance,
    *,
    customer_id: str,
    supplier_id: str,
    agreement_id: str,
    context: Mapping[str, str],
    ctx: Context | None = None,
) -> AgreementRecord:
    """Store, log and sign the agreement ``agreement_id`` between the customer and the
    supplier, in the caller's unit of work (the caller commits).

    From the commit on, its rules are the customer's rules for that supplier. ``context``
    says what the agreement was made for (``{"intent_id": ...}``): sealed under the customer's
    key, committed to in the signed record only by a salted digest. ``ctx`` is who acted (by
    default the customer, whose agent the platform is). An agreement not on the roster, a
    supplier that does not exist or a malformed context is refused, nothing written.
    """
    session = uow.session
    terms = roster(inst).get(agreement_id)
    if terms is None:
        check_ids([agreement_id], "terms", inst)
        raise AssertionError("unreachable")  # pragma: no cover - check_ids raised
    supplier = session.get(Supplier, supplier_id)
    if supplier is None:
        raise NotFound("No such supplier.")
    checked = _check_context(context)
    key = customer_key(session, inst, customer_id)
    record_id = str(uuid.uuid4())
    salt = base64.b64encode(secrets.token_bytes(16)).decode()
    now = utcnow()
    actor = ctx or Context(Actor.customer(customer_id))
    entry = actor.log(
        session,
        "terms",
        customer_id=customer_id,
        reason=Reason(
            "terms.agreed",
            {"supplier": supplier.id, "terms": terms.id, "agreement": record_id},
        ),
    )
    claims: dict[str, Any] = {
        "version": AGREEMENT_VERSION,
        "iss": inst.settings.issuer.rstrip("/") or "http://localhost",
        "jti": record_id,
        "iat": int(now.timestamp()),
        "sub": pairwise_pseudonym(inst, supplier.id, customer_id),
        "first_party": "customer, represented by the platform as their agent",
        "second_party": {"id": supplier.id, "name": supplier.name},
        "terms": {
            "id": terms.id,
            "title": terms.title,
            "kind": terms.kind,
            "summary": terms.summary,
            "official": terms.official,
            "rules": _rule_dicts(terms.rules),
        },
        "roster": roster(inst).name,
        "context_digest": _context_digest(checked, salt),
        "log_index": int(entry.seq),
        "log_leaf_hash": bytes(entry.leaf_hash).hex(),
    }
    token = inst.receipt_signer.sign_claims(claims, AGREEMENT_TYP)
    sealed = inst.vault.seal(
        key, "agreements", record_id, "context", {"context": checked, "salt": salt}
    )
    session.add(
        Agreement(
            id=record_id,
            customer_id=customer_id,
            supplier_id=supplier.id,
            agreement_id=terms.id,
            context=sealed,
            jws=token,
            created_at=now,
        )
    )
    session.flush()
    # the supplier's counts and offer audiences leave the customer out from this commit on,
    # as for any never rule naming it (infomediary/broker/members.py)
    matching.sync_member(session, inst, customer_id)
    return AgreementRecord(
        record_id, customer_id, supplier.id, terms.id, terms, now, token, int(entry.seq)
    )


def agreements_for(
    session: Session, customer_id: str, supplier_id: str | None = None
) -> list[Agreement]:
    """The customer's agreements in force (not revoked), oldest first; with ``supplier_id``,
    only those with that supplier."""
    query = select(Agreement).where(
        Agreement.customer_id == customer_id, Agreement.revoked_at.is_(None)
    )
    if supplier_id is not None:
        query = query.where(Agreement.supplier_id == supplier_id)
    return list(session.execute(query.order_by(Agreement.created_at, Agreement.id)).scalars())


def verify_agreement(jws: str, inst: Instance) -> dict[str, Any]:
    """The claims of a signed agreement that verifies against the platform's published key set
    (the receipts' JWKS); :class:`AgreementInvalid` otherwise."""
    try:
        claims = verify_receipt(jws, inst.receipt_signer.jwks(), typ=AGREEMENT_TYP)
    except ReceiptError as exc:
        raise AgreementInvalid(str(exc).replace("receipt", "agreement", 1)) from None
    if claims.get("version") != AGREEMENT_VERSION or not isinstance(claims.get("terms"), dict):
        raise AgreementInvalid("agreement payload is not a MyTerms agreement record")
    return claims


def open_context(session: Session, inst: Instance, row: Agreement) -> dict[str, str]:
    """The agreement's context, opened with the customer's key."""
    key = customer_key(session, inst, row.customer_id)
    opened = inst.vault.open(key, "agreements", row.id, "context", row.context)
    context = opened.get("context") if isinstance(opened, dict) else None
    return dict(context) if isinstance(context, dict) else {}


def _signed_rules(row: Agreement) -> list[tuple[str, str]]:
    """(category, purpose) of each rule the stored record signed; read without verifying (the
    row is ours, written with the signature): a record it cannot read yields a rule that denies
    everything to that supplier, so an unreadable agreement fails closed."""
    try:
        payload = row.jws.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        rules = claims["terms"]["rules"]
        found = [(str(r["category"]), str(r["purpose"])) for r in rules if r["mode"] == "never"]
    except (IndexError, KeyError, TypeError, ValueError):
        return [("*", "*")]
    return found or [("*", "*")]


def agreement_rules(rows: Iterable[Agreement], supplier_id: str) -> tuple[Rule, ...]:
    """The rules the agreements ``rows`` make for ``supplier_id``: each ``never``, for that
    supplier only, a ``"*"`` category covering the special categories too (see
    :meth:`policies.terms.Agreement.rules_for`)."""
    rules: list[Rule] = []
    for row in rows:
        if row.supplier_id != supplier_id or row.revoked_at is not None:
            continue
        signed = tuple(
            Rule(category, purpose, Recipient.anyone(), Mode.NEVER)
            for category, purpose in _signed_rules(row)
        )
        rules.extend(Terms(row.agreement_id, "", "", "", signed).rules_for(supplier_id))
    return tuple(dict.fromkeys(rules))


def rules_for_supplier(session: Session, customer_id: str, supplier_id: str) -> tuple[Rule, ...]:
    """The customer's agreement rules for the supplier, read now."""
    return agreement_rules(agreements_for(session, customer_id, supplier_id), supplier_id)


def agreements_page(
    session: Session, inst: Instance, customer_id: str, supplier_id: str
) -> list[dict[str, Any]]:
    """The customer's agreements with the supplier as their page shows them: the roster's
    title and summary, the date, and whether the signature verifies."""
    shown = []
    for row in agreements_for(session, customer_id, supplier_id):
        terms = roster(inst).get(row.agreement_id)
        try:
            claims = verify_agreement(row.jws, inst)
            verified, problem = True, ""
        except AgreementInvalid as exc:
            claims, verified, problem = {}, False, str(exc)
        signed_terms = claims.get("terms", {}) if verified else {}
        shown.append(
            {
                "id": row.id,
                "agreement_id": row.agreement_id,
                "title": terms.title if terms else str(signed_terms.get("title", row.agreement_id)),
                "summary": terms.summary if terms else str(signed_terms.get("summary", "")),
                "note": terms.note if terms else "",
                "created_at": row.created_at,
                "verified": verified,
                "problem": problem,
            }
        )
    return shown


def supplier_copy(
    session: Session, supplier_id: str, record_id: str, ctx: Context
) -> dict[str, Any]:
    """The supplier's copy of an agreement it is party to (IEEE 7012: both sides keep the
    record), logged on the customer's timeline; any other id is refused, logged, as not found."""
    with unit_of_work(session) as uow:
        row = session.get(Agreement, record_id) if len(record_id) <= 36 else None
        if row is None or row.supplier_id != supplier_id:
            uow.refuse(ctx.event("terms", reason=Reason("terms.no_agreement")))
            raise NotFound("No such agreement.")
        copy = {
            "id": row.id,
            "agreement_id": row.agreement_id,
            "jws": row.jws,
            "created_at": row.created_at,
            "revoked_at": row.revoked_at,
        }
        ctx.log(
            session,
            "terms",
            customer_id=row.customer_id,
            reason=Reason("terms.agreement_read", {"supplier": supplier_id, "agreement": row.id}),
        )
        uow.commit()
    return copy


def agreement_of(session: Session, customer_id: str, record_id: str) -> Agreement:
    """One of the customer's agreements; :class:`NotFound` for anyone else's."""
    row = session.get(Agreement, record_id)
    if row is None or row.customer_id != customer_id:
        raise NotFound("No such agreement.")
    return row
