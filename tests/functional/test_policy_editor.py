"""The policy editor at /policy: the grid, rules for a named supplier, removing any rule, the
preview that keeps its purpose, templates as confirmed starting points; each change logged."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.audit.reasons import Reason
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry
from infomediary.services import Context, customer_policy, policy_store
from infomediary.services.customer_policy import GRID_CATEGORIES, SPECIAL_ANY_SUPPLIER
from policies.model import PURPOSES, Mode, Policy, Recipient, RecipientKind, Rule
from tests.conftest import csrf
from tests.factories import make_grant, make_supplier
from tests.log_reasons import code_of, params_of


@pytest.fixture
def signed_up(auth: Any, inst: Instance) -> str:
    auth.signup()
    with inst.sessions() as session:
        return str(
            session.execute(
                select(AccessLogEntry.customer_id).where(AccessLogEntry.action == "create")
            ).scalar_one()
        )


def entries(inst: Instance, customer_id: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(
            session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer_id)
                .order_by(AccessLogEntry.seq)
            ).scalars()
        )


def policy_of(inst: Instance, customer_id: str) -> Any:
    with inst.sessions() as session:
        return policy_store.load_policy(session, inst, customer_id)


def any_rules(policy: Any) -> dict[tuple[str, str], str]:
    return {
        (r.category, r.purpose): r.mode.value
        for r in policy.rules
        if r.recipient == Recipient.anyone()
    }


def test_only_categories_that_hold_data_are_offered(client: Any, signed_up: str) -> None:
    page = client.get("/policy").get_data(as_text=True)
    assert "Biometrics" not in page
    assert "cell-biometrics" not in page
    assert "biometrics" not in GRID_CATEGORIES
    assert "account" not in GRID_CATEGORIES
    for category in ("identity", "purchases", "preferences", "health", "politics"):
        for purpose in PURPOSES:
            assert f'name="cell-{category}-{purpose}"' in page
    for words in (
        "not at all",
        "only in anonymous counts",
        "offers under a pseudonym",
        "with my name",
        "no rule (default: not shared)",
    ):
        assert words in page
    # A sensitive row offers only "not at all" (or no rule) for any supplier.
    health = re.search(r'<select id="cell-health-service".*?</select>', page, re.S)
    assert health is not None
    assert 'value="direct"' not in health.group(0)
    assert 'value="never"' in health.group(0)


def test_saving_the_grid_is_one_logged_change(client: Any, inst: Instance, signed_up: str) -> None:
    before = len(entries(inst, signed_up))
    response = client.post(
        "/policy/grid",
        data={
            "csrf_token": csrf(client, "/policy"),
            "cell-identity-marketing": "direct",
            "cell-purchases-research": "aggregate",
            "cell-interests-analytics": "",
            "cell-health-rewards": "never",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/policy#grid")
    rules = any_rules(policy_of(inst, signed_up))
    assert rules[("identity", "marketing")] == "direct"
    assert rules[("purchases", "research")] == "aggregate"
    assert ("interests", "analytics") not in rules  # balanced had aggregate: removed
    assert rules[("health", "rewards")] == "never"
    assert rules[("identity", "service")] == "direct"  # a cell not sent is kept
    new = entries(inst, signed_up)[before:]
    assert [code_of(e) for e in new] == ["policy.grid"]
    assert params_of(new[0]) == {"changed": 3}  # balanced had purchases/research aggregate
    page = client.get("/policy").get_data(as_text=True)
    assert re.search(
        r'<select id="cell-identity-marketing".*?<option value="direct" selected>', page, re.S
    )


def test_bad_cells_are_all_reported_and_nothing_is_lost(
    client: Any, inst: Instance, signed_up: str
) -> None:
    before_rules = policy_of(inst, signed_up).rules
    before = len(entries(inst, signed_up))
    response = client.post(
        "/policy/grid",
        data={
            "csrf_token": csrf(client, "/policy"),
            "cell-identity-marketing": "sometimes",
            "cell-health-marketing": "direct",
            "cell-purchases-research": "pseudonymous",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Unknown mode." in page
    assert SPECIAL_ANY_SUPPLIER in page
    assert 'id="cell-identity-marketing-error"' in page
    assert 'id="cell-health-marketing-error"' in page
    # The valid choice comes back as it was sent.
    assert re.search(
        r'<select id="cell-purchases-research".*?<option value="pseudonymous" selected>',
        page,
        re.S,
    )
    assert policy_of(inst, signed_up).rules == before_rules
    assert len(entries(inst, signed_up)) == before


def test_a_rule_for_a_named_supplier_is_added_changed_and_removed(
    client: Any, inst: Instance, signed_up: str
) -> None:
    supplier = make_supplier(inst, name="Chemist Co")
    make_grant(inst, signed_up, supplier.id)
    page = client.get("/policy").get_data(as_text=True)
    assert f'<option value="{supplier.id}" >Chemist Co</option>' in page
    token = csrf(client, "/policy")
    form = {"supplier": supplier.id, "category": "health", "purpose": "service"}
    added = client.post(
        "/policy/supplier-rule", data={"csrf_token": token, **form, "mode": "direct"}
    )
    assert added.status_code == 302
    mine = [r for r in policy_of(inst, signed_up).rules if r.recipient.value == supplier.id]
    assert [(r.category, r.purpose, r.mode) for r in mine] == [("health", "service", Mode.DIRECT)]
    page = client.get("/policy").get_data(as_text=True)
    listed = page[page.index('id="supplier-rules"') : page.index('id="preview"')]
    assert "Chemist Co" in listed

    changed = client.post(
        "/policy/supplier-rule", data={"csrf_token": token, **form, "mode": "aggregate"}
    )
    assert changed.status_code == 302
    mine = [r for r in policy_of(inst, signed_up).rules if r.recipient.value == supplier.id]
    assert [r.mode for r in mine] == [Mode.AGGREGATE]

    removed = client.post(
        "/policy/rule/remove",
        data={
            "csrf_token": token,
            "category": "health",
            "purpose": "service",
            "recipient_kind": "supplier",
            "recipient_value": supplier.id,
        },
    )
    assert removed.status_code == 302
    assert not [r for r in policy_of(inst, signed_up).rules if r.recipient.value == supplier.id]
    logged = [e for e in entries(inst, signed_up) if (code_of(e) or "").startswith("policy.")]
    assert [code_of(e) for e in logged[-3:]] == [
        "policy.supplier_rule",
        "policy.supplier_rule",
        "policy.supplier_rule_removed",
    ]
    assert all(params_of(e)["supplier"] == supplier.id for e in logged[-3:])


def test_sensitive_data_with_a_name_only_for_a_named_supplier(
    client: Any, inst: Instance, signed_up: str
) -> None:
    named = make_supplier(inst, name="Chemist Co")
    other = make_supplier(inst, name="Other Shop")
    make_grant(inst, signed_up, named.id)
    token = csrf(client, "/policy")
    refused = client.post(
        "/policy/grid", data={"csrf_token": token, "cell-health-service": "direct"}
    )
    assert refused.status_code == 400
    assert ("health", "service") not in any_rules(policy_of(inst, signed_up))
    client.post(
        "/policy/supplier-rule",
        data={
            "csrf_token": token,
            "supplier": named.id,
            "category": "health",
            "purpose": "service",
            "mode": "direct",
        },
    )

    def health_answer(supplier_id: str) -> str:
        page = client.get(f"/policy/preview?supplier={supplier_id}&purpose=service").get_data(
            as_text=True
        )
        found = re.search(r'badge (allowed|denied)">[^<]*</span>\s*<strong>Health</strong>', page)
        assert found is not None
        return found.group(1)

    assert health_answer(named.id) == "allowed"
    assert health_answer(other.id) == "denied"


def test_a_supplier_never_dealt_with_gets_no_rule(
    client: Any, inst: Instance, signed_up: str
) -> None:
    stranger = make_supplier(inst, name="Stranger Ltd")
    response = client.post(
        "/policy/supplier-rule",
        data={
            "csrf_token": csrf(client, "/policy"),
            "supplier": stranger.id,
            "category": "biometrics",
            "purpose": "service",
            "mode": "direct",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Choose a supplier you have dealt with." in page
    assert "Unknown data category." in page
    assert not [r for r in policy_of(inst, signed_up).rules if r.recipient.value == stranger.id]


def test_any_rule_can_be_removed(client: Any, inst: Instance, signed_up: str) -> None:
    token = csrf(client, "/policy")
    client.post(
        "/policy/template", data={"csrf_token": token, "template": "private", "confirm": "yes"}
    )
    page = client.get("/policy").get_data(as_text=True)
    others = page[page.index('id="other-rules"') : page.index('id="preview"')]
    assert 'name="category" value="*"' in others  # the wildcard "never for marketing"
    response = client.post(
        "/policy/rule/remove",
        data={
            "csrf_token": token,
            "category": "*",
            "purpose": "marketing",
            "recipient_kind": "any",
            "recipient_value": "",
        },
    )
    assert response.status_code == 302
    rules = policy_of(inst, signed_up).rules
    assert not [r for r in rules if r.category == "*"]
    assert any(r.category == "identity" for r in rules)  # the rest is kept
    last = entries(inst, signed_up)[-1]
    assert code_of(last) == "policy.rule_removed"
    assert params_of(last) == {"category": "*", "purpose": "marketing", "recipient": "any supplier"}
    again = client.post(
        "/policy/rule/remove",
        data={
            "csrf_token": token,
            "category": "*",
            "purpose": "marketing",
            "recipient_kind": "any",
        },
    )
    assert again.status_code == 400
    assert "That rule is no longer in your policy." in again.get_data(as_text=True)


def test_the_preview_keeps_supplier_and_purpose(
    client: Any, inst: Instance, signed_up: str
) -> None:
    make_supplier(inst, name="First Shop")
    second = make_supplier(inst, name="Second Shop")
    page = client.get(f"/policy/preview?supplier={second.id}&purpose=research").get_data(
        as_text=True
    )
    assert '<option value="research" selected>' in page
    assert f'<option value="{second.id}" selected>Second Shop</option>' in page
    assert "Second Shop, with your name, for research" in page
    assert "<strong>Biometrics</strong>" not in page
    old = client.get(f"/consents/preview?supplier={second.id}&purpose=research")
    assert old.status_code == 301
    assert old.headers["Location"].startswith("/policy/preview?")
    missing = client.get("/policy/preview?supplier=nope&purpose=research")
    assert missing.status_code == 400
    assert '<option value="research" selected>' in missing.get_data(as_text=True)


def test_a_template_replaces_the_policy_only_when_confirmed(
    client: Any, inst: Instance, signed_up: str
) -> None:
    token = csrf(client, "/policy")
    before = len(entries(inst, signed_up))
    unconfirmed = client.post("/policy/template", data={"csrf_token": token, "template": "private"})
    assert unconfirmed.status_code == 400
    assert "a template replaces your grid and all your rules" in unconfirmed.get_data(as_text=True)
    assert policy_of(inst, signed_up).template != "private"
    assert len(entries(inst, signed_up)) == before
    confirmed = client.post(
        "/policy/template", data={"csrf_token": token, "template": "private", "confirm": "yes"}
    )
    assert confirmed.status_code == 302
    assert policy_of(inst, signed_up).template == "private"
    assert code_of(entries(inst, signed_up)[-1]) == "policy.template"


def test_consents_page_links_to_the_policy_and_each_supplier(
    client: Any, inst: Instance, signed_up: str
) -> None:
    supplier = make_supplier(inst, name="Chemist Co")
    make_grant(inst, signed_up, supplier.id)
    page = client.get("/consents").get_data(as_text=True)
    assert 'href="/policy"' in page
    assert f'href="/suppliers/{supplier.id}"' in page
    assert 'class="badge allowed">active</span>' in page
    assert "cell-identity-service" not in page


def test_every_policy_route_needs_login(client: Any) -> None:
    assert client.get("/policy").headers["Location"] == "/login"
    assert client.get("/policy/preview?supplier=x&purpose=service").status_code == 302


def test_sector_rules_stay_visible_and_removable(
    client: Any, inst: Instance, signed_up: str
) -> None:
    policy = policy_of(inst, signed_up)
    with inst.sessions() as session:
        customer_policy.save_policy(
            session,
            inst,
            signed_up,
            Policy(
                rules=(
                    *policy.rules,
                    Rule("interests", "marketing", Recipient.sector("retail"), Mode.AGGREGATE),
                ),
                template=None,
            ),
            Context(Actor.customer(signed_up), "test"),
            Reason("policy.template", {"template": "custom"}),
        )
    page = client.get("/policy").get_data(as_text=True)
    others = page[page.index('id="other-rules"') : page.index('id="preview"')]
    assert 'name="recipient_value" value="retail"' in others
    response = client.post(
        "/policy/rule/remove",
        data={
            "csrf_token": csrf(client, "/policy"),
            "category": "interests",
            "purpose": "marketing",
            "recipient_kind": "sector",
            "recipient_value": "retail",
        },
    )
    assert response.status_code == 302
    assert not [
        r for r in policy_of(inst, signed_up).rules if r.recipient.kind == RecipientKind.SECTOR
    ]
    assert params_of(entries(inst, signed_up)[-1])["recipient"] == "the retail sector"
