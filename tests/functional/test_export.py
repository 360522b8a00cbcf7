"""The complete export, format 2: every section populated through the real use cases, the
JSON document checked field by field against the database, validated by the published
schema, and the zip of CSV files read back into the same document (and written again into
the same files)."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from sqlalchemy import Column, select

from infomediary.audit.log import Actor
from infomediary.demo import seed_synthetic
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    Base,
    ConsentGrant,
    ConsentReceipt,
    Customer,
    NotificationSettings,
    OAuthToken,
    OfferDelivery,
    Profile,
    PurchaseOrderReview,
    Supplier,
    SupplierBlock,
    WebSession,
)
from infomediary.services import (
    Context,
    agreements,
    customer_policy,
    email_change,
    erasure_requests,
    export_csv,
    exports,
    notifications,
    offer_contacts,
    offer_inbox,
    purchase_duplicates,
    purchase_uploads,
    purchases,
    rewards,
)
from infomediary.services.consent_grants import revoke_grant
from infomediary.services.customer_keys import customer_key
from infomediary.services.jobs import run_pending
from infomediary.services.policy_store import load_policy
from infomediary.services.profiles import decrypt_profile
from infomediary.services.uow import unit_of_work
from policies.codec import policy_to_dict
from policies.model import Mode, Policy, Recipient, Rule
from tests.conftest import csrf_token_in
from tests.factories import make_customer, make_grant, make_offer, make_supplier
from tests.functional.test_broker_privacy import count, new_supplier
from tests.functional.test_purchase_duplicates import order_email
from tests.functional.test_purchases_import import AMAZON, run_import
from tests.oauth_helpers import browser_login, client_session, consent

EMAIL = "whole@example.org"
PASSWORD = "correct horse battery"
PROFILE = {
    "name": "Whole Export",
    "phone": "+61 400 000 000",
    "street_address": "1 Long Street",
    "locality": "Sydney",
    "postcode": "2000",
    "birth_year": 1980,
    "household_size": 3,
    "interests": ["books", "travel"],
    "preferences": {"contact_channel": "email", "offer_frequency": "weekly", "language": "en"},
}
SCHEMA = export_csv.schema()
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)
#: Sections a populated account may still leave empty, with why.
MAY_BE_EMPTY: dict[str, str] = {
    "intents": "tests/functional/test_intents_api.py exports intents and bids, validated and read"
    " back from the CSV files",
    "payouts": "asking for a payout would add movements to earnings; tests/functional/test_wallet.py"
    " exports a payout, validated and read back from the CSV files",
}


@dataclass
class World:
    customer_id: str
    acme: str
    offer_co: str
    counter: str
    offer_id: str
    browser: requests.Session
    base: str

    def download(self, chosen: str) -> requests.Response:
        token = csrf_token_in(self.browser.get(f"{self.base}/account").text)
        response = self.browser.post(
            f"{self.base}/account/export", data={"csrf_token": token, "format": chosen}
        )
        assert response.status_code == 200, response.text
        return response


def _ctx(customer_id: str) -> Context:
    return Context(Actor.customer(customer_id), "test")


@pytest.fixture
def world(live_server: str, inst: Instance, tmp_path: Path) -> World:
    with inst.sessions() as session:
        seed_synthetic(session, inst, 300, workers=1)
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, profile=PROFILE)
    ctx = _ctx(customer_id)
    # purchases: an uploaded file through its job, then an order e-mail naming the same orders
    with inst.sessions() as session, AMAZON.open("rb") as stream:
        purchase_uploads.queue_file(
            session, inst, customer_id, stream, AMAZON.name, skip_invalid=False, ctx=ctx
        )
    run_pending(inst)
    assert run_import(inst, customer_id, order_email(tmp_path / "order.json")).imported == 3
    with inst.sessions() as session:
        group = purchase_duplicates.possible_duplicates(session, inst, customer_id)[0]
        purchase_duplicates.dismiss(session, inst, ctx, customer_id, group.order_token)
    # a consent through the OAuth flow, a read with its token, and a second one revoked
    acme = make_supplier(inst, name="Acme Books")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    client = client_session(live_server, acme, "profile.identity:read")
    authorized = consent(
        live_server, browser, client, purpose="service", approve=["profile.identity:read"]
    )
    client.fetch_token(
        authorization_response=authorized.authorization_response, code_verifier=authorized.verifier
    )
    assert client.get(f"{live_server}/api/v1/me").status_code == 200
    revoked = make_grant(
        inst, customer_id, acme.id, scopes=("profile.interests:read",), purpose="marketing"
    )
    with inst.sessions() as session:
        revoke_grant(session, inst, customer_id, revoked.id, ctx, "http://localhost")
    # the policy: the template and a rule naming a supplier
    with inst.sessions() as session:
        policy = load_policy(session, inst, customer_id)
        rule = Rule("interests", "marketing", Recipient.supplier(acme.id), Mode.NEVER)
        customer_policy.save_policy(
            session, inst, customer_id, Policy((*policy.rules, rule), policy.template), ctx, "rule"
        )
    # a count, and an offer accepted (the reward), contact shared, then its supplier blocked
    counter = new_supplier(inst, name="Counting Co")
    count(inst, counter, {"purpose": "marketing", "where": {"region": ["NSW", "VIC"]}})
    offer_co = make_supplier(
        inst,
        name="Offer Co",
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
        fund_cents=1_000_000,
    )
    sent = make_offer(inst, offer_co.id, max_recipients=1000)
    with inst.sessions() as session:
        offer_inbox.respond(session, inst, customer_id, sent["id"], "accept", ctx)
    with inst.sessions() as session:
        offer_contacts.share_contact(
            session, inst, customer_id, sent["id"], None, ctx, "http://localhost"
        )
    with inst.sessions() as session:
        offer_inbox.respond(session, inst, customer_id, sent["id"], "block", ctx)
    # MyTerms: a default chosen, and an agreement made with Acme (as accepting a bid makes it)
    with inst.sessions() as session:
        agreements.set_default_agreement(session, inst, customer_id, "no-ai-training", ctx)
    with inst.sessions() as session, unit_of_work(session) as uow:
        agreements.record_agreement(
            uow,
            inst,
            customer_id=customer_id,
            supplier_id=acme.id,
            agreement_id="no-ai-training",
            context={"intent_id": "intent-1"},
        )
        uow.commit()
    # an address change waiting for its link
    with inst.sessions() as session:
        email_change.request_email_change(
            session,
            inst,
            lambda _mail: None,
            customer_id,
            password=PASSWORD,
            new_email="moved@example.org",
            base_url="http://localhost",
            ctx=ctx,
        )
    # a request that a supplier delete what it holds
    with inst.sessions() as session:
        erasure_requests.request_erasure(
            session, inst, customer_id, acme.id, ctx, "http://localhost"
        )
    # a second session, from a browser that names itself
    chrome = requests.Session()
    chrome.headers["User-Agent"] = CHROME
    login_page = chrome.get(f"{live_server}/login")
    signed_in = chrome.post(
        f"{live_server}/login",
        data={"csrf_token": csrf_token_in(login_page.text), "email": EMAIL, "password": PASSWORD},
        allow_redirects=False,
    )
    assert signed_in.status_code == 302
    # notification choices: offers and imports only in the site, a digest of offers
    with inst.sessions() as session:
        chosen = notifications.PreferencesInput(
            ("new_offer", "import_finished"), ("new_offer",), True
        )
        assert notifications.change_preferences(session, inst, customer_id, chosen, ctx)
    return World(customer_id, acme.id, offer_co.id, counter, sent["id"], browser, live_server)


# -- the document against the database ----------------------------------------------------------


def _supplier_fields(value: Any, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every object of the document that names a supplier by id."""
    if isinstance(value, dict):
        if value.get("supplier_id") is not None:
            found.append(value)
        for item in value.values():
            _supplier_fields(item, found)
    elif isinstance(value, list):
        for item in value:
            _supplier_fields(item, found)
    return found


def _valid(document: dict[str, Any]) -> None:
    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_the_json_export_holds_every_section_and_every_field(world: World, inst: Instance) -> None:
    with inst.sessions() as session:
        exports.export(session, inst, world.customer_id, _ctx(world.customer_id))
    response = world.download("json")
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    document = response.json()
    _valid(document)
    assert document["format"] == "infomediary-export/2"
    assert document["schema"] == f"{world.base}/static/export.schema.json"
    for name in exports.SECTIONS:
        if name not in MAY_BE_EMPTY:
            section = document[name]
            assert section, f"section {name} is empty"
    assert document["myterms"]["default_terms"] == "no-ai-training"
    made = [
        (a["supplier_id"], a["agreement_id"], a["context"], a["signature_verified"])
        for a in document["myterms"]["agreements"]
    ]
    assert made == [(world.acme, "no-ai-training", {"intent_id": "intent-1"}, True)]
    assert document["myterms"]["agreements"][0]["claims"]["terms"]["id"] == "no-ai-training"
    cid = world.customer_id
    with inst.sessions() as session:
        customer = session.get_one(Customer, cid)
        key = customer_key(session, inst, cid)
        opened = decrypt_profile(inst, key, customer, session.get_one(Profile, cid))
        # account and profile
        assert document["account"] == {
            "id": cid,
            "email": EMAIL,
            "created_at": customer.created_at.isoformat(),
            "confirmed_at": customer.verified_at.isoformat() if customer.verified_at else None,
            "password_changed_at": None,
        }
        profile = {k: v for k, v in document["profile"].items() if k != "updated_at"}
        assert profile == {k: v for k, v in opened.items() if k != "email"} == PROFILE
        choices = session.get_one(NotificationSettings, cid)
        assert document["notification_choices"] == {
            "chosen": True,
            "in_app": ["import_finished", "new_offer"],
            "digest": True,
            "digest_kinds": ["new_offer"],
            "seen_through": None,
            "digest_sent_at": None,
            "updated_at": choices.updated_at.isoformat(),
        }
        # purchases: every line of every import, with the import it came from
        held = purchases.open_purchases(session, inst, key)
        assert sorted(
            ({k: v for k, v in p.items() if k != "total_minor"} for p in document["purchases"]),
            key=lambda p: p["id"],
        ) == sorted(held, key=lambda p: p["id"])
        assert all(
            p["total_minor"] == p["quantity"] * p["unit_price_minor"] for p in document["purchases"]
        )
        imports = {i["id"] for i in document["purchase_imports"]}
        assert {p["import_id"] for p in document["purchases"]} <= imports
        assert len(imports) == 2
        (upload,) = document["purchase_uploads"]
        assert upload["import_id"] in imports
        assert upload["status"] == "done"
        assert upload["imported"] == 8
        reviews = session.execute(
            select(PurchaseOrderReview.order_token).where(PurchaseOrderReview.customer_id == cid)
        ).scalars()
        assert [r["order_token"] for r in document["purchase_order_reviews"]] == [
            token.hex() for token in reviews
        ]
        # consents, each receipt's JWS as stored and its claims
        grants = session.execute(
            select(ConsentGrant).where(ConsentGrant.customer_id == cid)
        ).scalars()
        by_id = {g.id: g for g in grants}
        assert {c["id"] for c in document["consents"]} == set(by_id)
        statuses = {c["id"]: c["status"] for c in document["consents"]}
        for item in document["consents"]:
            grant = by_id[item["id"]]
            assert item["supplier_id"] == grant.supplier_id
            assert item["scopes"] == grant.scopes.split()
            assert item["purpose"] == grant.purpose
            assert item["revoked_at"] == (
                grant.revoked_at.isoformat() if grant.revoked_at else None
            )
            assert item["offer_id"] == grant.offer_id
            stored = session.execute(
                select(ConsentReceipt.jws)
                .where(ConsentReceipt.grant_id == grant.id)
                .order_by(ConsentReceipt.created_at, ConsentReceipt.id)
            ).scalars()
            assert [r["jws"] for r in item["receipts"]] == list(stored)
            for receipt in item["receipts"]:
                assert receipt["signature_verified"]
                assert receipt["claims"]["consentReceiptID"] == receipt["id"]
                assert receipt["claims"]["iso27560"]["consent_id"] == grant.id
        assert sorted(statuses.values()) == ["active", "active", "revoked"]
        assert "service" in {c["purpose"] for c in document["consents"]}
        # the policy: its storage form, words, and the supplier rule by name
        stored_policy = policy_to_dict(load_policy(session, inst, cid))
        keys = ("category", "purpose", "recipient", "mode", "expires")
        assert [{k: r[k] for k in keys} for r in document["policy"]["rules"]] == stored_policy[
            "rules"
        ]
        assert document["policy"]["template"] == stored_policy["template"]
        assert document["policy"]["default"] is False
        (named,) = [r for r in document["policy"]["rules"] if r["supplier_id"]]
        assert named["supplier_name"] == "Acme Books"
        assert named["in_words"] == "Interests, for marketing, by supplier Acme Books: never"
        # the offer, its answer, the contact shared, the reward and the block
        (offer,) = document["offers"]
        delivery = session.get_one(OfferDelivery, (world.offer_id, cid))
        assert offer["offer_id"] == world.offer_id
        assert offer["response"] == delivery.status == "accepted"
        assert offer["contact_shared"] is True
        assert offer["supplier_name"] == "Offer Co"
        assert offer["reward_cents"] == 150
        earned = rewards.earnings_by_supplier(session, cid)
        assert document["earnings"]["balance_cents"] == sum(earned.values()) == 150
        (movement,) = document["earnings"]["movements"]
        assert (movement["kind"], movement["supplier_name"]) == ("reward", "Offer Co")
        assert document["blocks"] == [
            {
                "supplier_id": world.offer_co,
                "supplier_name": "Offer Co",
                "created_at": session.get_one(
                    SupplierBlock, (cid, world.offer_co)
                ).created_at.isoformat(),
            }
        ]
        # the counts: the audience count and the offer's reach, by supplier name
        releases = document["counts_you_were_part_of"]["releases"]
        assert {r["supplier_name"] for r in releases} == {"Counting Co", "Offer Co"}
        # tokens (never their hashes), sessions, e-mailed links
        tokens = session.execute(select(OAuthToken).where(OAuthToken.customer_id == cid)).scalars()
        assert [t["id"] for t in document["authorizations"]] == [t.id for t in tokens]
        assert "hash" not in json.dumps(document["authorizations"])
        held_sessions = session.execute(
            select(WebSession).where(WebSession.customer_id == cid)
        ).scalars()
        labelled = [row for row in held_sessions if row.device is not None]
        assert len(document["sessions"]) == len(
            session.execute(select(WebSession).where(WebSession.customer_id == cid)).all()
        )
        # the sealed device label is opened, never left out
        assert labelled
        opened_labels = sorted(
            (label.get("browser") or "", label.get("system") or "")
            for row in labelled
            if row.device is not None
            for label in [
                inst.vault.open(key, "web_sessions", str(row.public_id), "device", row.device)
            ]
        )
        exported_labels = [(s["browser"] or "", s["system"] or "") for s in document["sessions"]]
        assert sorted(x for x in exported_labels if x != ("", "")) == [
            x for x in opened_labels if x != ("", "")
        ]
        assert ("Chrome", "Linux") in exported_labels
        assert "device" not in document["sessions"][0]
        assert [link["new_email"] for link in document["email_links"]] == ["moved@example.org"]
        # the log: every entry before the export's own, in words and structured
        seqs = list(
            session.execute(
                select(AccessLogEntry.seq)
                .where(AccessLogEntry.customer_id == cid)
                .order_by(AccessLogEntry.seq)
            ).scalars()
        )
        assert [e["seq"] for e in document["access_log"]] == seqs[:-1]
        read = next(e for e in document["access_log"] if e["actor_type"] == "supplier")
        assert read["actor_name"] == "Acme Books"
        assert read["reason_code"] == "resource.read"
        assert read["suppliers"] == [{"supplier_id": world.acme, "supplier_name": "Acme Books"}]
        names = dict(session.execute(select(Supplier.id, Supplier.name)).all())
    # a supplier is named wherever its id is
    named_objects = _supplier_fields(document, [])
    assert len(named_objects) > 10
    for item in named_objects:
        assert item["supplier_name"] == names[item["supplier_id"]], item


def test_the_csv_zip_reads_back_into_the_json_document(world: World, inst: Instance) -> None:
    response = world.download("csv")
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"].endswith('.zip"')
    data = response.content
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        readme = archive.read("README.txt").decode()
    assert {"README.txt", "manifest.json", "consents.csv", "consents.receipts.csv"} <= names
    assert {f["name"] for f in manifest["files"]} == names - {"README.txt", "manifest.json"}
    for entry in manifest["files"]:
        assert f"{entry['name']}:" in readme
    document = export_csv.read_zip(data)
    _valid(document)
    # CSV -> JSON -> CSV: the same files, cell for cell
    again = export_csv.to_zip(document)
    with zipfile.ZipFile(io.BytesIO(data)) as first, zipfile.ZipFile(io.BytesIO(again)) as second:
        for name in names:
            assert first.read(name) == second.read(name), name
    # JSON -> CSV -> JSON: the route's JSON document, every field
    exported = world.download("json").json()
    assert export_csv.read_zip(export_csv.to_zip(exported)) == exported
    # the CSV export was logged as such, and its document differs only by what followed it
    with inst.sessions() as session:
        codes = [
            row.reason_data
            for row in session.execute(
                select(AccessLogEntry).where(
                    AccessLogEntry.customer_id == world.customer_id,
                    AccessLogEntry.action == "export",
                )
            ).scalars()
        ]
    assert [json.loads(c or "{}").get("code") for c in codes] == [
        "account.exported_csv",
        "account.exported",
    ]
    assert document["access_log"] == exported["access_log"][:-1]
    assert document["consents"] == exported["consents"]
    assert document["purchases"] == exported["purchases"]
    # every file naming a supplier by id names it by name too
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for entry in manifest["files"]:
            for column in entry["columns"]:
                if column.endswith("supplier_id"):
                    assert column.replace("supplier_id", "supplier_name") in entry["columns"]


def test_a_spreadsheet_never_runs_a_cell_as_a_formula() -> None:
    document = json.loads(json.dumps(_minimal()))
    document["profile"]["name"] = "=HYPERLINK(1)"
    document["profile"]["street_address"] = "'quoted"
    data = export_csv.to_zip(document)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        profile = archive.read("profile.csv").decode()
    assert "'=HYPERLINK(1)" in profile
    assert export_csv.read_zip(data) == document


def _minimal() -> dict[str, Any]:
    """The smallest document the schema admits: every list empty, every value present."""

    def fill(node: dict[str, Any]) -> Any:
        kind = node.get("type")
        kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
        if "const" in node:
            return node["const"]
        if node.get("$ref"):
            return {"free": ["form"]}
        if kind == "object":
            return {name: fill(sub) for name, sub in node["properties"].items()}
        if kind == "array":
            return []
        if "enum" in node:
            return node["enum"][0]
        if node.get("format") == "date-time":
            return "2026-12-02T12:00:00+00:00"
        samples: dict[str, Any] = {"string": "text", "integer": 1, "number": 1.5, "boolean": True}
        return samples[str(kind)]

    document = fill(SCHEMA)
    _valid(document)
    return dict(document)


# -- completeness -----------------------------------------------------------------------------


def test_every_table_with_a_customer_id_is_exported_or_says_why_not() -> None:
    with_customer = {
        table.name
        for table in Base.metadata.tables.values()
        if isinstance(table.c.get("customer_id"), Column)
    }
    missing = with_customer - set(exports.TABLES) - set(exports.NOT_EXPORTED)
    assert not missing, f"tables with a customer_id and no export section: {sorted(missing)}"
    assert not set(exports.TABLES) & set(exports.NOT_EXPORTED)
    assert set(exports.TABLES) | set(exports.NOT_EXPORTED) <= with_customer  # none stale
    assert set(exports.TABLES.values()) <= set(exports.SECTIONS)
    assert all(reason.strip() for reason in exports.NOT_EXPORTED.values())


def test_the_schema_describes_exactly_the_sections_strictly() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert list(SCHEMA["properties"]) == [*export_csv.DOCUMENT_FIELDS, *exports.SECTIONS]

    def strict(node: dict[str, Any], at: str) -> None:
        if node.get("type") == "object":
            assert node.get("additionalProperties") is False, at
            assert node["required"] == list(node["properties"]), at
            for name, sub in node["properties"].items():
                strict(sub, f"{at}.{name}")
        if node.get("type") == "array":
            strict(node["items"], f"{at}[]")

    strict(SCHEMA, "$")


def test_a_field_the_schema_does_not_know_is_caught() -> None:
    document = _minimal()
    document["consents"] = []
    document["account"]["nickname"] = "new"
    validator = Draft202012Validator(SCHEMA)
    assert any("nickname" in e.message for e in validator.iter_errors(document))


def test_an_unknown_format_is_refused_and_nothing_is_logged(client, auth, inst) -> None:
    auth.signup(email="fmt@example.org")
    page = client.get("/account").get_data(as_text=True)
    response = client.post(
        "/account/export", data={"csrf_token": csrf_token_in(page), "format": "xml"}
    )
    assert response.status_code == 400
    assert "Choose JSON or CSV files." in response.get_data(as_text=True)
    with inst.sessions() as session:
        assert not session.execute(
            select(AccessLogEntry).where(AccessLogEntry.action == "export")
        ).first()


def test_exports_are_limited_per_account(client, auth, inst) -> None:
    auth.signup(email="often@example.org")
    token = csrf_token_in(client.get("/account").get_data(as_text=True))
    statuses = [
        client.post(
            "/account/export", data={"csrf_token": token, "format": ("json", "csv")[n % 2]}
        ).status_code
        for n in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    refused = client.post("/account/export", data={"csrf_token": token, "format": "json"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"]
    with inst.sessions() as session:
        logged = session.execute(
            select(AccessLogEntry).where(AccessLogEntry.action == "export")
        ).all()
    assert len(logged) == 5
