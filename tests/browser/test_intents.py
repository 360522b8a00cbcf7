"""Intents in Debian's headless Chromium (Playwright), at desktop size and at 390 px: the
customer posts an intent through the dashboard's form (a bad one first: every error at once,
what was typed kept), two suppliers list it and bid through the real API with their own OAuth
clients (client credentials), the customer compares the bids side by side and accepts one
with the grant for fulfilment; the winner then reads the customer's name through that grant
and the other is told it was not chosen. Nothing is wider than the window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session
from playwright.sync_api import expect
from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import Bid, Intent, Supplier, utcnow
from infomediary.services import Context, intents
from tests.browser_support import NARROW, BaseTab, assert_fits, open_tab, screenshot
from tests.factories import make_customer
from tests.oauth_helpers import make_supplier

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the functional tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "ivy.browser@example.org"
PASSWORD = "correct horse battery staple"
PROFILE = {"name": "Ivy Browser", "street_address": "1 Nappy Lane", "postcode": "2042"}


def _day(n: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def _bidder(base: str, inst: Instance, name: str, *, verified: bool) -> OAuth2Session:
    """A supplier approved for the retail sector's intents, with a token of its own."""
    creds = make_supplier(
        inst,
        name=name,
        scopes=("intents:read", "intents:bid"),
        purposes=("service",),
        redirect_uris=(),
        sector="retail",
    )
    if verified:
        with inst.sessions() as session:
            session.get_one(Supplier, creds.id).verified_at = utcnow()
            session.commit()
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope="intents:read intents:bid",
        token_endpoint=f"{base}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")
    return client


def _bid(base: str, client: OAuth2Session, intent_id: str, **body: Any) -> None:
    listed = client.get(f"{base}/api/v1/intents", params={"category": "books"})
    assert listed.status_code == 200, listed.text
    assert [i["id"] for i in listed.json()["intents"]] == [intent_id]
    placed = client.post(
        f"{base}/api/v1/intents/{intent_id}/bids",
        json={"currency": "AUD", "valid_until": _day(20)} | body,
    )
    assert placed.status_code == 201, placed.text


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_post_an_intent_compare_two_bids_and_accept_one(
    tab: BaseTab, inst: Instance, live_server: str, tmp_path: Path, narrow: bool
) -> None:
    page = tab.page
    if narrow:
        page.set_viewport_size(NARROW)
    make_customer(inst, email=EMAIL, password=PASSWORD, profile=PROFILE)
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(tab.url("/dashboard"))
    card = page.get_by_test_id("intents-card")
    expect(card).to_contain_text("0 open intents")
    card.get_by_role("link", name="See my intents or post one").click()
    expect(page).to_have_url(tab.url("/intents"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your intents")
    assert_fits(page)

    # a bad form: every error at once, what was typed kept, nothing posted
    page.get_by_label("What it is about").select_option("books")
    page.get_by_label("Needed by").fill(_day(-3))
    page.get_by_label("At most").fill("0")
    tab.expected_statuses.append(400)
    page.get_by_role("button", name="Post this intent").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("Say what you want.")
    expect(summary).to_contain_text("Choose a date that is not in the past.")
    expect(summary).to_contain_text("Enter a budget above zero")
    expect(page.get_by_label("At most")).to_have_value("0")
    expect(page.get_by_label("At most")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("What it is about")).to_have_value("books")
    expect(page.get_by_test_id("intent")).to_have_count(0)

    page.get_by_label("What you want").fill("A hardback atlas of the world, recent edition.")
    page.get_by_label("Needed by").fill(_day(30))
    page.get_by_label("At most").fill("90")
    page.get_by_label("Your state or territory (optional)").select_option("NSW")
    expect(page.get_by_label("Service delivery only (your default)")).to_be_checked()
    page.get_by_role("button", name="Post this intent").click()
    expect(page.get_by_role("status")).to_contain_text("Your intent is posted.")
    intent_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("intent-status")).to_contain_text("open for bids")
    expect(page.get_by_text("No bids yet.")).to_be_visible()

    # two suppliers bid through the API, with their own clients
    acme = _bidder(live_server, inst, "Acme Books", verified=True)
    globex = _bidder(live_server, inst, "Globex Reads", verified=False)
    _bid(live_server, acme, intent_id, price_minor=8500, description="The 2030 edition.")
    _bid(
        live_server,
        globex,
        intent_id,
        price_minor=7900,
        description="Last year's edition, in stock.",
        terms="no-ai-training",
    )

    page.reload()
    bids = page.get_by_test_id("bid")
    expect(bids).to_have_count(2)
    # cheapest first, with the verified mark, the terms each accepts and their summary
    expect(bids.nth(0)).to_contain_text("Globex Reads")
    expect(bids.nth(0)).to_contain_text("not verified")
    expect(bids.nth(0)).to_contain_text("offers other terms")
    expect(bids.nth(0)).to_contain_text("No AI training")
    expect(bids.nth(0).get_by_test_id("bid-price")).to_have_text("A$79.00")
    expect(bids.nth(1)).to_contain_text("Acme Books")
    expect(bids.nth(1)).to_contain_text("verified")
    expect(bids.nth(1)).to_contain_text("accepts your terms")
    expect(bids.nth(1).get_by_test_id("bid-record")).to_contain_text("New here")
    expect(bids.nth(1)).to_contain_text("name, e-mail, phone and postal address")
    assert_fits(page)
    if not narrow:
        screenshot(tab, tmp_path, "intents")

    # the nav and the overview know of the bids
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_test_id("intents-card")).to_contain_text("2 bids waiting for your answer.")
    page.get_by_role("link", name="Intents", exact=True).click()
    page.get_by_role("link", name="Books").first.click()
    expect(page).to_have_url(tab.url(f"/intents/{intent_id}"))

    page.get_by_test_id("bid").nth(1).get_by_role(
        "button", name="Accept and share for delivery"
    ).click()
    expect(page.get_by_role("status")).to_contain_text(
        "You accepted the bid of Acme Books (verified) and shared your name and address"
    )
    expect(page.get_by_test_id("intent-status")).to_contain_text("bid accepted")
    expect(page.get_by_test_id("shared")).to_contain_text("Acme Books can read your name")
    expect(page.get_by_role("button", name="Accept and share for delivery")).to_have_count(0)
    bids = page.get_by_test_id("bid")
    expect(bids.nth(0)).to_contain_text("not chosen")
    expect(bids.nth(1)).to_contain_text("accepted by you")
    assert_fits(page)

    # the winner learns it won and reads the name through the grant; the other does not
    won = acme.get(f"{live_server}/api/v1/intents/{intent_id}")
    assert won.status_code == 200, won.text
    assert won.json()["bid"]["won"] is True
    shown = won.json()["fulfilment"]
    assert shown is not None
    issued = acme.post(f"{live_server}{shown['token_endpoint']}")
    assert issued.status_code == 200, issued.text
    fulfilment = issued.json()
    me = OAuth2Session(token={"access_token": fulfilment["access_token"], "token_type": "Bearer"})
    profile = me.get(f"{live_server}/api/v1/me")
    assert profile.status_code == 200, profile.text
    assert "Ivy Browser" in profile.text
    lost = globex.get(f"{live_server}/api/v1/intents/{intent_id}")
    assert lost.json()["bid"]["status"] == "not_chosen"
    assert lost.json()["fulfilment"] is None
    tab.assert_clean()


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_a_standing_agreement_up_for_review_is_posted_again_from_its_page(
    tab: BaseTab, inst: Instance, live_server: str, narrow: bool
) -> None:
    """A monthly intent accepted, its term ending in ten days: the notification leads to its
    page, which offers to post it again; the form comes filled in and posts a new intent."""
    page = tab.page
    if narrow:
        page.set_viewport_size(NARROW)
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, profile=PROFILE)
    acme = _bidder(live_server, inst, "Acme Books", verified=True)
    with inst.sessions() as session:
        posted = intents.post_for_customer(
            session,
            inst,
            customer_id,
            intents.IntentInput(
                category="books",
                description="A new novel every month.",
                needed_by=intents.today() + timedelta(days=1),
                recurrence=intents.Recurrence(1, "month", intents.today() + timedelta(days=200)),
            ),
            Context(Actor.customer(customer_id)),
        )
    intent_id = str(posted["id"])
    _bid(live_server, acme, intent_id, price_minor=2500, description="Staff picks.")
    with inst.sessions() as session:
        bid_id = session.execute(select(Bid.id).where(Bid.intent_id == intent_id)).scalar_one()
        intents.accept_for_customer(
            session,
            inst,
            customer_id,
            intent_id,
            bid_id,
            intents.AcceptInput(False),
            Context(Actor.customer(customer_id)),
            live_server,
        )
        intent = session.get_one(Intent, intent_id)
        intent.needed_by = intents.today() - timedelta(days=80)
        intent.recurrence_until = intents.today() + timedelta(days=10)
        session.commit()

    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    tab.goto("/notifications")
    page.get_by_role(
        "link", name="Your standing agreement with Acme Books (verified) comes to its end"
    ).click()
    expect(page).to_have_url(tab.url(f"/intents/{intent_id}"))
    review = page.get_by_test_id("review")
    expect(review).to_contain_text("Its term ends on")
    assert_fits(page)
    review.get_by_role("link", name="Post it again for another term").click()
    expect(page.get_by_label("What you want")).to_have_value("A new novel every month.")
    expect(page.get_by_label("What it is about")).to_have_value("books")
    page.get_by_role("button", name="Post this intent").click()
    expect(page.get_by_role("status")).to_contain_text("Your intent is posted.")
    assert page.url.rsplit("/", 1)[1] != intent_id
    expect(page.get_by_test_id("intent-status")).to_contain_text("open for bids")
    tab.assert_clean()
