"""MyTerms agreements: recorded, logged and signed by the platform; their never rules refuse an
access the customer's consent would otherwise allow, through the real API with a real OAuth
client; the customer's default terms; erasure."""

from __future__ import annotations

import base64
import html
import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from infomediary.audit.log import Actor
from infomediary.audit.reasons import Reason
from infomediary.crypto.receipts import ReceiptError, verify_receipt
from infomediary.errors import NotFound, UnknownTerms, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Agreement, ConsentReceipt, CustomerTerms, Supplier
from infomediary.services import Context, agreements, decisions, erasure
from infomediary.services.agreements import AgreementInvalid, AgreementRecord
from infomediary.services.uow import unit_of_work
from policies.model import Decision, Mode
from tests.conftest import Auth, csrf_token_in
from tests.factories import make_customer, make_grant, make_supplier
from tests.functional.test_terms_api import token_for
from tests.oauth_helpers import browser_login, client_session, consent

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
PROFILE = {"name": "Ada Lovelace", "postcode": "2000", "interests": ["books"]}


@pytest.fixture
def customer(inst: Instance) -> str:
    return make_customer(inst, email=EMAIL, password=PASSWORD, name="Ada Lovelace", profile=PROFILE)


def agree(
    inst: Instance, customer: str, supplier: str, terms: str, context: dict[str, str] | None = None
) -> AgreementRecord:
    with inst.sessions() as session, unit_of_work(session) as uow:
        record = agreements.record_agreement(
            uow,
            inst,
            customer_id=customer,
            supplier_id=supplier,
            agreement_id=terms,
            context=context or {"intent_id": "intent-42"},
        )
        uow.commit()
    return record


def count(inst: Instance, model: type) -> int:
    with inst.sessions() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _claims_of(jws: str) -> dict[str, object]:
    payload = jws.split(".")[1]
    loaded: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return loaded


def _encode(claims: dict[str, object]) -> str:
    raw = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_an_agreement_is_stored_logged_and_signed(inst: Instance, customer: str) -> None:
    acme = make_supplier(inst, name="Acme Books")
    record = agree(inst, customer, acme.id, "no-ai-training")
    assert record.agreement_id == "no-ai-training"
    assert record.terms.title == "No AI training"
    claims = agreements.verify_agreement(record.jws, inst)
    assert claims["jti"] == record.id
    assert claims["terms"]["id"] == "no-ai-training"
    assert claims["terms"]["rules"] == [
        {"category": "*", "purpose": "ai_training", "mode": "never"}
    ]
    assert claims["second_party"] == {"id": acme.id, "name": "Acme Books"}
    # the supplier's copy names the customer only by their pairwise pseudonym
    assert str(claims["sub"]).startswith("psn_")
    assert customer not in record.jws
    assert "intent-42" not in record.jws  # the context is committed to, salted, not shown
    with inst.sessions() as session:
        (row,) = agreements.agreements_for(session, customer, acme.id)
        assert row.jws == record.jws
        assert b"intent-42" not in row.context  # sealed at rest
        assert agreements.open_context(session, inst, row) == {"intent_id": "intent-42"}
        entry = session.get_one(AccessLogEntry, claims["log_index"])
        assert bytes(entry.leaf_hash).hex() == claims["log_leaf_hash"]
        reason = Reason.from_json(entry.reason_data or "")
    assert reason.code == "terms.agreed"
    assert reason.params == {"supplier": acme.id, "terms": "no-ai-training", "agreement": record.id}
    assert entry.customer_id == customer
    assert entry.outcome == "allowed"


def test_a_tampered_agreement_fails_verification(inst: Instance, customer: str) -> None:
    acme = make_supplier(inst, name="Acme Books")
    record = agree(inst, customer, acme.id, "no-ai-training")
    header, _payload, signature = record.jws.split(".")
    claims = _claims_of(record.jws)
    claims["terms"] = {**claims["terms"], "rules": []}  # type: ignore[dict-item]
    with pytest.raises(AgreementInvalid, match="signature is invalid"):
        agreements.verify_agreement(f"{header}.{_encode(claims)}.{signature}", inst)
    with pytest.raises(AgreementInvalid):
        agreements.verify_agreement(record.jws[:-4] + "AAAA", inst)
    with pytest.raises(AgreementInvalid):
        agreements.verify_agreement("not.a.jws", inst)


def test_a_consent_receipt_is_not_an_agreement(inst: Instance, customer: str) -> None:
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, customer, acme.id)
    with inst.sessions() as session:
        receipt = session.execute(select(ConsentReceipt)).scalars().first()
        assert receipt is not None
    with pytest.raises(AgreementInvalid, match="myterms-agreement"):
        agreements.verify_agreement(receipt.jws, inst)


@pytest.mark.parametrize(
    ("terms", "context", "code"),
    [
        ("my-own-terms", {"intent_id": "i"}, "unknown_terms"),
        ("sd-base", {"intent_id": "x" * 201}, "invalid_request"),
        ("sd-base", {f"k{n}": "v" for n in range(9)}, "invalid_request"),
    ],
)
def test_a_bad_agreement_is_refused_and_writes_nothing(
    inst: Instance, customer: str, terms: str, context: dict[str, str], code: str
) -> None:
    acme = make_supplier(inst, name="Acme Books")
    before = count(inst, AccessLogEntry)
    with pytest.raises(ValidationFailed) as caught:
        agree(inst, customer, acme.id, terms, context)
    assert caught.value.code == code
    assert count(inst, Agreement) == 0
    assert count(inst, AccessLogEntry) == before


def test_an_unknown_supplier_is_refused(inst: Instance, customer: str) -> None:
    with pytest.raises(NotFound):
        agree(inst, customer, "no-such-supplier", "sd-base")
    assert count(inst, Agreement) == 0


def test_the_agreement_overrides_a_grant_in_the_policy_engine(
    inst: Instance, customer: str
) -> None:
    """A consent for ai_training would allow it; after "no AI training" it never does, for
    that supplier only; marketing, which the agreement does not touch, stays allowed."""
    acme = make_supplier(inst, name="Acme Books", purposes=("ai_training", "marketing"))
    other = make_supplier(inst, name="Other Books", purposes=("ai_training",))
    for supplier in (acme, other):
        make_grant(
            inst, customer, supplier.id, scopes=("profile.interests:read",), purpose="ai_training"
        )
    make_grant(inst, customer, acme.id, scopes=("profile.interests:read",), purpose="marketing")

    def verdict(supplier_id: str, purpose: str) -> Decision:
        with inst.sessions() as session:
            supplier = session.get_one(Supplier, supplier_id)
            found = decisions.decide(
                session, inst, customer, supplier, purpose, frozenset({"interests"}), Mode.DIRECT
            )
            return found.decision

    assert verdict(acme.id, "ai_training") == Decision.ALLOW
    agree(inst, customer, acme.id, "no-ai-training")
    assert verdict(acme.id, "ai_training") == Decision.DENY
    assert verdict(acme.id, "marketing") == Decision.ALLOW
    assert verdict(other.id, "ai_training") == Decision.ALLOW  # not party to the agreement


def test_the_api_refuses_and_logs_what_the_agreement_forbids(
    live_server: str, inst: Instance, customer: str
) -> None:
    """Through the real API: the customer consents (OAuth, PKCE, the consent screen) to AI
    training; the supplier reads; once the agreement is made the same token is refused (403
    policy_denied, the entry denied), while a supplier without it still reads."""
    acme = make_supplier(inst, name="Acme Books", purposes=("ai_training",))
    client = client_session(live_server, acme, "profile.interests:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    result = consent(live_server, browser, client, purpose="ai_training")
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    allowed = client.get(f"{live_server}/api/v1/me")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["interests"] == ["books"]
    agree(inst, customer, acme.id, "no-ai-training")
    refused = client.get(f"{live_server}/api/v1/me")
    assert refused.status_code == 403, refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["code"] == "policy_denied"
    assert "interests" not in problem
    assert "books" not in refused.text
    with inst.sessions() as session:
        last = (
            session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.actor_type == "supplier")
                .order_by(AccessLogEntry.seq.desc())
            )
            .scalars()
            .first()
        )
    assert last is not None
    assert last.outcome == "denied"
    assert last.actor_id == acme.id


def test_rules_enforced_are_the_signed_ones(inst: Instance, customer: str) -> None:
    """The rules enforced come from the signed record, so replacing the roster later changes
    no agreement already made; a record that cannot be read fails closed."""
    acme = make_supplier(inst, name="Acme Books")
    agree(inst, customer, acme.id, "goods-services-only")
    with inst.sessions() as session:
        rules = agreements.rules_for_supplier(session, customer, acme.id)
        purposes = {r.purpose for r in rules}
        assert purposes == {"marketing", "research", "ai_training"}
        assert all(r.mode == Mode.NEVER and r.recipient.value == acme.id for r in rules)
        (row,) = agreements.agreements_for(session, customer, acme.id)
        row.jws = "garbled"
        closed = agreements.agreement_rules([row], acme.id)
        session.rollback()
    assert {(r.category, r.purpose) for r in closed} >= {("*", "*")}


def test_the_default_terms_are_sd_base_until_the_customer_chooses(
    inst: Instance, customer: str
) -> None:
    ctx = Context(Actor.customer(customer))
    with inst.sessions() as session:
        assert agreements.default_agreement(session, customer) == "sd-base"
        assert agreements.set_default_agreement(session, inst, customer, "intent", ctx) == "intent"
    with inst.sessions() as session:
        assert agreements.default_agreement(session, customer) == "intent"
        with pytest.raises(UnknownTerms) as caught:
            agreements.set_default_agreement(session, inst, customer, "my-own-terms", ctx)
    assert caught.value.code == "unknown_terms"
    with inst.sessions() as session:
        assert agreements.default_agreement(session, customer) == "intent"
        codes = [
            Reason.from_json(e.reason_data).code
            for e in session.execute(
                select(AccessLogEntry).where(AccessLogEntry.customer_id == customer)
            ).scalars()
            if e.reason_data
        ]
    assert codes.count("terms.default_set") == 1


def test_erasure_deletes_the_agreements_and_the_default(inst: Instance, customer: str) -> None:
    keep = make_customer(inst)
    acme = make_supplier(inst, name="Acme Books")
    agree(inst, customer, acme.id, "sd-base")
    agree(inst, keep, acme.id, "sd-base")
    with inst.sessions() as session:
        agreements.set_default_agreement(
            session, inst, customer, "intent", Context(Actor.customer(customer))
        )
    with inst.sessions() as session:
        erasure.erase(session, inst, customer, PASSWORD, Context(Actor.customer(customer)))
    with inst.sessions() as session:
        left = session.execute(select(Agreement.customer_id)).scalars().all()
        assert session.get(CustomerTerms, customer) is None
    assert left == [keep]


# -- the dashboard ------------------------------------------------------------------------------


def test_the_supplier_page_shows_accepted_terms_and_agreements(
    inst: Instance, customer: str, client: FlaskClient, auth: Auth
) -> None:
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, customer, acme.id)
    with inst.sessions() as session:
        supplier = session.get_one(Supplier, acme.id)
        agreements.publish_accepted(
            session, inst, supplier, ["intent", "no-ai-training"], Context.supplier(acme.id)
        )
    record = agree(inst, customer, acme.id, "no-ai-training")
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    page = client.get(f"/suppliers/{acme.id}").get_data(as_text=True)
    assert "Terms you agreed (MyTerms)" in page
    assert "They accept:" in page
    assert html.escape("Answering my intent") in page
    assert "You never use my data to train" in page  # the summary
    assert "not the official text" in page
    section = page[page.index('id="terms"') : page.index('id="reads"')]
    assert "signature verifies" in section
    assert "does not verify" not in section
    download = client.get(f"/suppliers/{acme.id}/agreements/{record.id}.jws")
    assert download.status_code == 200
    assert download.mimetype == "application/jose"
    assert download.get_data(as_text=True) == record.jws
    # someone else's agreement, or one under another supplier's page, is not there
    other = make_customer(inst)
    theirs = agree(inst, other, acme.id, "sd-base")
    assert client.get(f"/suppliers/{acme.id}/agreements/{theirs.id}.jws").status_code == 404
    wrong = client.get(f"/suppliers/not-acme/agreements/{record.id}.jws")
    assert wrong.status_code == 404


def test_a_tampered_agreement_shows_as_not_verifying(
    inst: Instance, customer: str, client: FlaskClient, auth: Auth
) -> None:
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, customer, acme.id)
    record = agree(inst, customer, acme.id, "sd-base")
    with inst.sessions() as session:
        row = session.get_one(Agreement, record.id)
        row.jws = record.jws[:-4] + ("AAAA" if not record.jws.endswith("AAAA") else "BBBB")
        session.commit()
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    page = client.get(f"/suppliers/{acme.id}").get_data(as_text=True)
    section = page[page.index('id="terms"') : page.index('id="reads"')]
    assert "signature does not verify" in section


def test_the_settings_page_sets_the_default_terms_with_csrf(
    inst: Instance, customer: str, client: FlaskClient, auth: Auth
) -> None:
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    page = client.get("/settings").get_data(as_text=True)
    assert '<option value="sd-base" selected>' in page
    token = csrf_token_in(page)
    saved = client.post("/settings/terms", data={"csrf_token": token, "default_terms": "intent"})
    assert saved.status_code == 303
    assert '<option value="intent" selected>' in client.get("/settings").get_data(as_text=True)
    refused = client.post(
        "/settings/terms", data={"csrf_token": token, "default_terms": "my-own-terms"}
    )
    assert refused.status_code == 400
    assert "Choose one of the agreements in the list." in refused.get_data(as_text=True)
    no_csrf = client.post("/settings/terms", data={"default_terms": "sd-base"})
    assert no_csrf.status_code in (400, 403)
    with inst.sessions() as session:
        assert agreements.default_agreement(session, customer) == "intent"


def test_an_agreement_alone_opens_the_suppliers_page(
    inst: Instance, customer: str, client: FlaskClient, auth: Auth
) -> None:
    acme = make_supplier(inst, name="Acme Books")
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    assert client.get(f"/suppliers/{acme.id}").status_code == 404
    agree(inst, customer, acme.id, "intent")
    page = client.get(f"/suppliers/{acme.id}")
    assert page.status_code == 200
    assert "Answering my intent" in page.get_data(as_text=True)


def test_the_supplier_keeps_its_copy_and_no_other(
    inst: Instance, customer: str, client: FlaskClient
) -> None:
    acme = make_supplier(
        inst,
        name="Acme Books",
        scopes=("audience:count",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    rival = make_supplier(
        inst,
        name="Rival Books",
        scopes=("audience:count",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    record = agree(inst, customer, acme.id, "no-ai-training")
    mine = client.get(f"/api/v1/supplier/agreements/{record.id}", headers=token_for(client, acme))
    assert mine.status_code == 200, mine.get_data(as_text=True)
    body = mine.get_json()
    assert body["jws"] == record.jws
    assert body["agreement_id"] == "no-ai-training"
    assert agreements.verify_agreement(body["jws"], inst)["second_party"]["id"] == acme.id
    theirs = client.get(
        f"/api/v1/supplier/agreements/{record.id}", headers=token_for(client, rival)
    )
    assert theirs.status_code == 404
    assert theirs.content_type == "application/problem+json"
    assert record.jws not in theirs.get_data(as_text=True)
    assert client.get(f"/api/v1/supplier/agreements/{record.id}").status_code == 401
    with inst.sessions() as session:
        found = [
            (e.actor_id, e.customer_id, e.outcome, Reason.from_json(e.reason_data or "").code)
            for e in session.execute(
                select(AccessLogEntry).where(AccessLogEntry.actor_type == "supplier")
            ).scalars()
        ]
    assert (acme.id, customer, "allowed", "terms.agreement_read") in found
    assert (rival.id, None, "denied", "terms.no_agreement") in found


def test_an_agreement_is_not_a_receipt_and_the_consent_screen_shows_it_closed(
    inst: Instance, customer: str
) -> None:
    acme = make_supplier(inst, name="Acme Books", purposes=("ai_training",))
    record = agree(inst, customer, acme.id, "no-ai-training")
    with pytest.raises(ReceiptError, match="consent-receipt"):
        verify_receipt(record.jws, inst.receipt_signer.jwks())
    with inst.sessions() as session:
        supplier = session.get_one(Supplier, acme.id)
        closed = decisions.blocked_by_policy(
            session, inst, customer, supplier, "ai_training", frozenset({"interests", "identity"})
        )
        still_open = decisions.blocked_by_policy(
            session, inst, customer, supplier, "service", frozenset({"interests"})
        )
    assert set(closed) == {"interests", "identity"}
    assert "training artificial intelligence models" in closed["interests"]
    assert still_open == {}
