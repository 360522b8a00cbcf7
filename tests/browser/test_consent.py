"""The consent screen and revoking a consent, in Debian's headless Chromium (Playwright).

A supplier (authlib's ``OAuth2Session``, in the test process) starts an authorization; the
customer opens it in the browser, logs in, is sent back to the consent screen, narrows what
is shared, picks an expiry and allows. The redirect to the supplier's callback is caught by
``page.route`` (shop.example is never reached); the supplier exchanges the code, reads only
what was allowed, and loses access the moment the customer clicks "Revoke" on the
dashboard, after having downloaded and verified a signed receipt.

The page checks (no console errors, nothing fetched from another host) are those of
tests/browser_support.py; screenshots land in ``tmp_path`` and, when
``INFOMEDIARY_SCREENSHOT_DIR`` is set, there too (consent.png and consents.png).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Request, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy import select

from infomediary.crypto.receipts import ReceiptError, verify_receipt
from infomediary.instance import Instance
from infomediary.models import ConsentGrant
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer
from tests.oauth_helpers import client_session, make_supplier

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "grace@example.org"
PASSWORD = "correct horse battery staple"
NAME = "Grace Hopper"
SUPPLIER = "Acme Books"
CALLBACK = "https://shop.example/callback"
PRIVACY_POLICY = "https://shop.example/privacy"
#: No name is ever looked up outside: a request that escapes interception fails here.
RESOLVER_RULES = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
#: What the intercepted supplier callback answers with (an inline icon: no favicon fetch).
SHOP_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme Books</title>'
    '<link rel="icon" href="data:,"></head><body><p>Back at the shop.</p></body></html>'
)


@dataclass
class Tab(BaseTab):
    """A tab that also records what the supplier's (intercepted) site was asked for."""

    intercepted: list[str] = field(default_factory=list)
    unroutable_hops: list[str] = field(default_factory=list)

    def tolerates_failure(self, request: Request) -> bool:
        # A redirect hop is not interceptable (Playwright routes only a chain's first URL):
        # Chromium tries the callback on the network, where the resolver rules stop it, and
        # then loads it afresh through the route. Only that hop, only to the callback.
        if (
            request.failure == "net::ERR_NAME_NOT_RESOLVED"
            and request.redirected_from is not None
            and request.url.startswith(f"{CALLBACK}?")
        ):
            self.unroutable_hops.append(request.url)
            return True
        return False

    def supplier_site(self, route: Route) -> None:
        """Stand-in for the supplier's site: record the URL, answer with a small page."""
        self.intercepted.append(route.request.url)
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=SHOP_PAGE)

    def assert_foreign(self, foreign: list[str]) -> None:
        # The only other host asked for is the supplier's callback, answered by the route.
        assert sorted(foreign) == sorted(self.intercepted + self.unroutable_hops)
        assert set(self.unroutable_hops) <= set(self.intercepted)
        assert [url.split("?")[0] for url in self.intercepted] == [CALLBACK]


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[Tab]:
    with open_tab(Tab, live_server, chromium_path, extra_args=[RESOLVER_RULES]) as result:
        result.page.route("https://shop.example/**", result.supplier_site)
        yield result


def test_consent_screen_grant_receipt_and_revoke(
    tab: Tab, inst: Instance, live_server: str, tmp_path: Path
) -> None:
    page = tab.page
    make_customer(
        inst,
        email=EMAIL,
        password=PASSWORD,
        name=NAME,
        profile={"name": NAME, "postcode": "2000", "birth_year": 1985, "interests": ["books"]},
    )
    supplier = make_supplier(inst, name=SUPPLIER)
    oauth = client_session(live_server, supplier, "profile.identity:read profile.interests:read")
    verifier = secrets.token_urlsafe(48)
    authorize_url, state = oauth.create_authorization_url(
        f"{live_server}/oauth/authorize", code_verifier=verifier, purpose="service"
    )

    # Not logged in: the login page, which sends the customer back to the consent screen.
    page.goto(authorize_url)
    expect(page).to_have_url(re.compile(re.escape(tab.url("/login?next=")) + ".+"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(authorize_url)

    # The consent screen: who, why, what (in plain words, each ticked) and for how long.
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"{SUPPLIER} asks to see some of your data"
    )
    main = page.get_by_role("main")
    expect(main.get_by_role("link", name="Read their privacy policy")).to_have_attribute(
        "href", PRIVACY_POLICY
    )
    expect(main.locator("p").filter(has_text="Why:").first).to_contain_text(
        "Why: to provide the service you asked for"
    )
    expect(main.locator("p").filter(has_text="Why:").first).to_contain_text("dpv:ServiceProvision")
    what = page.get_by_role("group", name="What they may see")
    boxes = what.get_by_role("checkbox")
    expect(boxes).to_have_count(2)
    identity = what.get_by_role(
        "checkbox", name="Identity: your name, email, phone and postal address"
    )
    interests = what.get_by_role("checkbox", name=re.compile(r"^Interests: the interests you"))
    for box in (identity, interests):
        expect(box).to_be_checked()
        expect(box).to_be_enabled()
    expect(main).not_to_contain_text("profile.identity:read")  # no scope jargon
    expiry = page.get_by_label("For how long")
    expect(expiry).to_have_value("90d")
    expect(expiry.locator("option")).to_have_text(
        [
            re.compile(r"^30 days \(until .+\)$"),
            re.compile(r"^90 days \(until .+\)$"),
            re.compile(r"^1 year \(until .+\)$"),
            "until I revoke it",
        ]
    )
    expect(main.get_by_role("button", name="Allow")).to_be_visible()
    expect(main.get_by_role("button", name="Deny")).to_be_visible()
    screenshot(tab, tmp_path, "consent")

    # Share the identity only, for a year.
    interests.uncheck()
    expiry.select_option(value="365d")
    page.get_by_role("button", name="Allow").click()
    try:
        page.wait_for_url(f"{CALLBACK}?**", timeout=5_000)
    except PlaywrightTimeoutError:
        pytest.fail(f"Allow did not lead to the supplier's callback: {tab.console_errors}")
    expect(page.get_by_text("Back at the shop.")).to_be_visible()
    assert len(tab.intercepted) == 1
    callback = tab.intercepted[0]
    assert callback.startswith(f"{CALLBACK}?")
    params = parse_qs(urlsplit(callback).query)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == [state]
    assert params["iss"] == [live_server]
    assert params["code"][0]

    # The supplier exchanges the code and reads what was allowed, and nothing else.
    token = oauth.fetch_token(authorization_response=callback, code_verifier=verifier)
    assert token["scope"] == "profile.identity:read"
    me = oauth.get(f"{live_server}/api/v1/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert set(body) == {"sub", "purpose", "identity", "withheld"}
    assert body["purpose"] == "service"
    assert body["identity"]["name"] == NAME
    assert body["identity"]["email"] == EMAIL
    assert "books" not in me.text

    with inst.sessions() as session:
        grant = session.execute(select(ConsentGrant)).scalar_one()
    assert grant.scopes == "profile.identity:read"
    assert grant.purpose == "service"
    assert grant.expires_at is not None
    assert abs(grant.expires_at - grant.created_at - timedelta(days=365)) < timedelta(minutes=1)

    # The dashboard lists the grant: what, why, since, until.
    tab.goto("/consents")
    item = page.get_by_role("listitem").filter(
        has=page.get_by_role("heading", level=3, name=re.compile(rf"^{SUPPLIER}\b"))
    )
    expect(item).to_have_count(1)
    expect(item.get_by_role("heading", level=3)).to_contain_text("active")
    expect(item.locator("p").filter(has_text="What:")).to_have_text(
        re.compile(r"^What:\s*Identity\s*$")
    )
    expect(item.locator("p").filter(has_text="Why:")).to_have_text(
        "Why: providing the service you asked for"
    )
    since = item.locator("time").first
    until = item.locator("time").nth(1)
    expect(since).to_have_attribute("datetime", grant.created_at.isoformat())
    expect(since).to_have_text(grant.created_at.strftime("%d %b %Y"))
    expect(until).to_have_attribute("datetime", grant.expires_at.isoformat())
    expect(until).to_have_text(grant.expires_at.strftime("%d %b %Y"))
    expect(item).to_contain_text("Since:")
    expect(item).to_contain_text("Until:")
    expect(item.get_by_role("link", name="Their privacy policy")).to_have_attribute(
        "href", PRIVACY_POLICY
    )
    screenshot(tab, tmp_path, "consents")

    # A signed receipt: downloaded, then checked against the published key set.
    item.get_by_role("link", name="signed consent receipts").click()
    expect(page).to_have_url(tab.url(f"/consents/{grant.id}/receipts"))
    entries = page.get_by_role("main").get_by_role("listitem")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("granted")
    with page.expect_download() as download_info:
        entries.first.get_by_role("link", name="download receipt").click()
    download = download_info.value
    assert download.failure() is None
    match = re.fullmatch(r"consent-receipt-([0-9a-f-]{36})\.jws", download.suggested_filename)
    assert match, download.suggested_filename
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    receipt = saved.read_text(encoding="ascii")
    with page.expect_response(tab.url("/.well-known/jwks.json")) as jwks_info:
        page.get_by_role("link", name="/.well-known/jwks.json").click()
    jwks = jwks_info.value.json()
    claims = verify_receipt(receipt, jwks)
    assert claims["jti"] == match.group(1)
    assert claims["iss"] == live_server
    assert claims["sub"] == body["sub"]
    record = claims["iso27560"]
    assert record["consent_id"] == grant.id
    assert record["event"] == "given"
    assert record["data_recipient"]["name"] == SUPPLIER
    assert record["processing"][0]["scopes"] == ["profile.identity:read"]
    assert record["processing"][0]["pii_categories"] == ["identity"]
    assert record["processing"][0]["purpose"] == "service"
    assert record["duration"]["end"] is not None
    assert record["duration"]["end"][:10] == grant.expires_at.date().isoformat()
    tampered = receipt[:-2] + ("AA" if receipt[-2:] != "AA" else "BA")
    with pytest.raises(ReceiptError):
        verify_receipt(tampered, jwks)

    # Revoke from the dashboard: the supplier's very next call is refused.
    tab.goto("/consents")
    item.get_by_role("button", name=f"Revoke {SUPPLIER}'s access").click()
    expect(page).to_have_url(tab.url("/consents"))
    expect(page.get_by_role("status")).to_contain_text("Consent revoked.")
    expect(item.get_by_role("heading", level=3)).to_contain_text("revoked")
    expect(item.get_by_role("button")).to_have_count(0)
    refused = oauth.get(f"{live_server}/api/v1/me")
    assert refused.status_code == 401, refused.text
    oauth.close()
    with inst.sessions() as session:
        ended = session.get(ConsentGrant, grant.id)
        assert ended is not None
        assert ended.revoked_at is not None
    tab.assert_clean()


@pytest.mark.parametrize("width", [1280, 390])
def test_consent_screen_shows_the_consequences(
    tab: Tab, inst: Instance, live_server: str, tmp_path: Path, width: int
) -> None:
    """What, why (with its DPV term), until when, what widens the policy, what is blocked and
    what the customer holds nothing of; at desktop size and 390 px wide, without sideways
    scrolling; the "Until" lines follow the chosen end date."""
    from infomediary.audit.log import Actor
    from infomediary.services import Context, customer_policy

    page = tab.page
    page.set_viewport_size({"width": width, "height": 900})
    customer = make_customer(
        inst, email=EMAIL, password=PASSWORD, name=NAME, profile={"name": NAME}
    )
    with inst.sessions() as session:
        for category, mode in (("identity", "pseudonymous"), ("interests", "never")):
            customer_policy.set_rule(
                session,
                inst,
                customer,
                category=category,
                purpose="marketing",
                mode=mode,
                ctx=Context(Actor.customer(customer)),
            )
    supplier = make_supplier(
        inst,
        name=SUPPLIER,
        scopes=("profile.identity:read", "profile.interests:read", "purchases:read"),
    )
    oauth = client_session(
        live_server, supplier, "profile.identity:read profile.interests:read purchases:read"
    )
    authorize_url, _state = oauth.create_authorization_url(
        f"{live_server}/oauth/authorize",
        code_verifier=secrets.token_urlsafe(48),
        purpose="marketing",
    )
    page.goto(authorize_url)
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(authorize_url)
    main = page.get_by_role("main")
    expect(main).to_contain_text("Why: to market their products and offers to you")
    expect(main).to_contain_text("dpv:Marketing")
    identity = page.get_by_role("checkbox", name=re.compile(r"^Identity: your name"))
    expect(identity).to_be_checked()
    expect(identity).to_have_accessible_description(
        re.compile(
            r"Your policy says: “Identity, for marketing, by any supplier: only under a "
            rf"pseudonym, never with your name”\. Allowing this lets {SUPPLIER} see it with "
            "your name"
        )
    )
    expect(page.get_by_role("checkbox", name=re.compile(r"^Interests:"))).to_be_disabled()
    expect(main).to_contain_text("Blocked")
    purchases = page.get_by_role("checkbox", name=re.compile(r"^Purchases:"))
    expect(purchases).to_have_accessible_description(
        re.compile("You have no purchase history here yet")
    )
    expect(main).not_to_contain_text(supplier.id)
    # the "Until" lines follow the end date chosen
    page.get_by_label("For how long").select_option(value="never")
    expect(main.locator("[data-until-shown]").first).to_have_text("until you revoke it")
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"the page scrolls sideways: {wide}px in a {width}px window"
    page.screenshot(path=tmp_path / f"consent-consequences-{width}.png", full_page=True)
    assert tab.console_errors == []
    assert tab.failed_requests == []
    assert tab.foreign_requests() == []  # nothing left this server (no callback yet)
    assert tab.url("/static/js/consent.js") in tab.requests
