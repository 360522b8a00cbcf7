"""The customer's intents on the dashboard, both backends: posting through the form (every
field's error at once, nothing written; CSRF refused), the list, one intent with its bids side
by side, accepting one with or without the grant for fulfilment, cancelling, the entries each
writes (the API's codes), the notifications of a new bid and of a near date, the overview's
card and the per-supplier page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    Agreement,
    Bid,
    ConsentGrant,
    Intent,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context, agreements, intents, notifications
from infomediary.services.intents import BidInput, ends_at
from infomediary.web.intent_views import calendar_date, minor_amount
from tests.conftest import Auth, csrf
from tests.factories import make_customer, make_supplier
from tests.log_reasons import code_of, params_of

EMAIL, PASSWORD = "ivy.pages@example.org", "correct horse battery"
PROFILE = {
    "name": "Ivy Pages",
    "street_address": "1 Nappy Lane",
    "locality": "Newtown",
    "postcode": "2042",
}
TODAY = datetime.now(UTC).date()


def _day(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


def _form(**overrides: str) -> dict[str, str]:
    fields = {
        "category": "books",
        "description": "A hardback atlas of the world, recent edition.",
        "needed_by": _day(30),
        "budget": "90",
        "currency": "AUD",
        "region": "NSW",
        "recurrence": "once",
        "every": "",
        "unit": "month",
        "until": "",
        "terms": "sd-base",
    }
    return fields | overrides


@pytest.fixture
def customer(inst: Instance, auth: Auth) -> str:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, profile=PROFILE)
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    return customer_id


def _post(client: FlaskClient, **overrides: str) -> Any:
    data = _form(**overrides) | {"csrf_token": csrf(client, "/intents")}
    return client.post("/intents", data=data)


def _posted(client: FlaskClient, **overrides: str) -> str:
    response = _post(client, **overrides)
    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.fullmatch(r"/intents/([0-9a-f-]{36})", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def _bidder(inst: Instance, name: str, *, verified: bool = False) -> Supplier:
    creds = make_supplier(
        inst, name=name, scopes=("intents:read", "intents:bid"), redirect_uris=(), sector="retail"
    )
    with inst.sessions() as session:
        supplier = session.get_one(Supplier, creds.id)
        if verified:
            supplier.verified_at = utcnow()
            session.commit()
        session.refresh(supplier)
        session.expunge(supplier)
    return supplier


def _bid(inst: Instance, supplier: Supplier, intent_id: str, price: int, **extra: Any) -> str:
    data = BidInput(
        price_minor=price,
        currency="AUD",
        description=extra.pop("description", "In stock, delivered in two days."),
        valid_until=TODAY + timedelta(days=20),
        **extra,
    )
    with inst.sessions() as session:
        placed = intents.place_bid(
            session, inst, supplier, intent_id, data, Context.supplier(supplier.id)
        )
    return str(placed["bid"]["id"])


def _entries(inst: Instance, code: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        rows = session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars()
        return [row for row in rows if code_of(row) == code]


def _count(inst: Instance, model: Any) -> int:
    with inst.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_every_field_error_at_once_and_nothing_written(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    entries = _count(inst, AccessLogEntry)
    response = _post(
        client,
        category="astrology",
        description="",
        needed_by=_day(-1),
        budget="0",
        currency="XYZ",
        region="Paris",
        recurrence="repeat",
        every="0",
        unit="day",
        until="soon",
        terms="no-such-terms",
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    for field in (
        "category",
        "description",
        "needed_by",
        "budget",
        "currency",
        "region",
        "every",
        "unit",
        "until",
        "terms",
    ):
        assert f'id="{field}-error"' in body, field
    assert "Please check these fields" in body
    assert 'aria-invalid="true"' in body
    assert _count(inst, Intent) == 0
    # only the pages' lists wrote their entries (the form's GET and the refused POST's page)
    assert _entries(inst, "intents.posted") == []
    with inst.sessions() as session:
        added = session.execute(
            select(AccessLogEntry).order_by(AccessLogEntry.seq).offset(entries)
        ).scalars()
        assert [code_of(e) for e in added] == ["intents.listed_own", "intents.listed_own"]


def test_more_field_errors_each_with_its_message(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    response = _post(
        client,
        description="x" * 2001,
        needed_by="31/12/2030",
        budget="12.345",
        recurrence="repeat",
        every="53",
        until=_day(10),
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Use at most 2000 characters." in body
    assert "Enter a date such as" in body
    assert "Enter an amount such as 90 or 89.50." in body
    assert "Enter a number from 1 to 52." in body
    # what was typed comes back
    assert 'value="12.345"' in body
    assert _count(inst, Intent) == 0

    # whole numbers and amounts in ASCII digits only
    odd = _post(client, budget="1e5", recurrence="repeat", every="١٢", until=_day(60))
    assert odd.status_code == 400
    assert 'id="budget-error"' in odd.get_data(as_text=True)
    assert 'id="every-error"' in odd.get_data(as_text=True)

    late = _post(client, recurrence="repeat", every="1", unit="week", until=_day(20))
    assert late.status_code == 400
    assert "The term ends after the first date" in late.get_data(as_text=True)
    assert _count(inst, Intent) == 0


def test_a_closing_date_and_the_automatic_choice(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    late = _post(client, closes=_day(31), auto_accept="yes", budget="")
    body = late.get_data(as_text=True)
    assert late.status_code == 400
    assert "Bidding closes on or before the date needed." in body
    assert _post(client, closes=_day(-1)).status_code == 400
    alone = _post(client, auto_accept="yes", budget="").get_data(as_text=True)
    assert "The automatic choice needs a closing date and a budget." in alone
    assert _count(inst, Intent) == 0

    intent_id = _posted(client, closes=_day(10), auto_accept="yes")
    with inst.sessions() as session:
        row = session.get_one(Intent, intent_id)
        assert row.auto_accept is True
        assert row.deadline is not None
        # the end of the chosen day in the customer's zone (UTC unless they chose one)
        assert row.deadline == datetime.combine(TODAY + timedelta(days=11), time(), UTC)
    page = _page(client, f"/intents/{intent_id}")
    assert "Bidding closes" in page
    assert "is accepted for you" in page


def test_posting_without_the_csrf_token_is_refused(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    refused = client.post("/intents", data=_form())
    assert refused.status_code in (400, 403)
    assert _count(inst, Intent) == 0
    assert _entries(inst, "intents.posted") == []

    # nor are an acceptance or a cancellation without it
    intent_id = _posted(client)
    bid_id = _bid(inst, _bidder(inst, "Acme Books"), intent_id, 8000)
    accept = client.post(f"/intents/{intent_id}/bids/{bid_id}/accept", data={"share": "yes"})
    assert accept.status_code in (400, 403)
    cancel = client.post(f"/intents/{intent_id}/cancel", data={"csrf_token": "forged"})
    assert cancel.status_code in (400, 403)
    with inst.sessions() as session:
        assert session.get_one(Intent, intent_id).status == "open"
        assert session.get_one(Bid, bid_id).status == "open"
    assert _count(inst, ConsentGrant) == 0
    assert _entries(inst, "intents.accepted") == _entries(inst, "intents.cancelled") == []


def test_posting_seals_the_intent_lists_it_and_logs_both(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    intent_id = _posted(
        client,
        category="parenting",
        description="Nappies, size 4, every month.",
        recurrence="repeat",
        every="1",
        unit="month",
        until=_day(30 + 365),
        terms="sd-base-dp",
    )
    with inst.sessions() as session:
        row = session.get_one(Intent, intent_id)
        assert row.customer_id == customer
        assert b"Nappies" not in row.details
        assert b"NSW" not in row.details
        assert (row.recurrence_every, row.recurrence_unit) == (1, "month")
        assert row.terms == "sd-base-dp"
    (posted,) = _entries(inst, "intents.posted")
    assert posted.actor_type == "customer"
    assert posted.actor_id == customer
    assert params_of(posted) == {"intent": intent_id, "terms": "sd-base-dp"}
    assert "Nappies" not in (posted.reason_data or "")

    page = _page(client, f"/intents/{intent_id}")
    assert "Nappies, size 4, every month." in page
    assert "every month" in page
    assert "13 deliveries" in page
    assert "No bids yet." in page
    assert "A$90.00" in page

    listed = _page(client, "/intents")
    assert f'href="/intents/{intent_id}"' in listed
    assert "0 bids" in listed
    entry = _entries(inst, "intents.listed_own")[-1]
    assert params_of(entry) == {"count": 1}
    assert entry.actor_id == customer
    # the form preselects the customer's default agreement
    assert re.search(r'id="terms-sd-base" name="terms" value="sd-base"[^>]*checked', listed)


def test_bids_side_by_side_and_accepting_with_the_grant_for_fulfilment(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    intent_id = _posted(client)
    acme = _bidder(inst, "Acme Books", verified=True)
    globex = _bidder(inst, "Globex Reads")
    other = make_customer(inst)
    with inst.sessions() as session:
        session.add(SupplierBlock(customer_id=other, supplier_id=globex.id))
        session.commit()
    acme_bid = _bid(inst, acme, intent_id, 8500)
    globex_bid = _bid(inst, globex, intent_id, 7900, terms="no-ai-training")

    page = _page(client, f"/intents/{intent_id}")
    # cheapest first, with the verified mark, the record, the terms and their summary
    assert page.index("Globex Reads") < page.index("Acme Books")
    assert "A$79.00" in page
    assert "A$85.00" in page
    assert re.search(r"Acme Books\s*<span class=\"badge allowed\">verified", page)
    assert re.search(r"Globex Reads\s*<span class=\"badge denied\">not verified", page)
    assert "Blocked by 1 customer." in page
    assert "offers other terms" in page
    assert "accepts your terms" in page
    no_ai = agreements.roster(inst).get("no-ai-training")
    assert no_ai is not None
    assert no_ai.title in page
    assert no_ai.summary in page
    assert "name, e-mail, phone and postal address" in page
    (compared,) = _entries(inst, "intents.bids_compared")
    assert params_of(compared) == {"intent": intent_id, "count": 2}

    accepted = client.post(
        f"/intents/{intent_id}/bids/{acme_bid}/accept",
        data={"csrf_token": csrf(client, f"/intents/{intent_id}"), "share": "yes"},
    )
    assert accepted.status_code == 303
    with inst.sessions() as session:
        intent = session.get_one(Intent, intent_id)
        assert intent.status == "accepted"
        assert session.get_one(Bid, acme_bid).status == "won"
        assert session.get_one(Bid, globex_bid).status == "not_chosen"
        grant = session.get_one(ConsentGrant, intent.fulfilment_grant_id)
        assert (grant.supplier_id, grant.purpose) == (acme.id, "service")
        assert grant.scopes.split() == ["profile.identity:read"]
        assert grant.expires_at == ends_at(intent)
        signed = session.execute(select(Agreement)).scalars().all()
        assert [(a.supplier_id, a.agreement_id) for a in signed] == [(acme.id, "sd-base")]
    (entry,) = _entries(inst, "intents.accepted")
    assert entry.actor_id == customer
    assert params_of(entry)["winner_supplier"] == acme.id
    assert params_of(entry)["not_chosen"] == 1
    assert len(_entries(inst, "intents.fulfilment_shared")) == 1

    after = _page(client, f"/intents/{intent_id}")
    assert "Acme Books can read your name, e-mail, phone and postal address" in after
    assert "Accept and share for delivery" not in after

    # the acceptance cannot be repeated; the page says so and nothing changes
    again = client.post(
        f"/intents/{intent_id}/bids/{globex_bid}/accept",
        data={"csrf_token": csrf(client, f"/intents/{intent_id}"), "share": "yes"},
        follow_redirects=True,
    )
    assert "can no longer be accepted" in again.get_data(as_text=True)
    assert len(_entries(inst, "intents.accepted")) == 1

    # the per-supplier pages list the intent and the outcome
    acme_page = _page(client, f"/suppliers/{acme.id}")
    assert "Your intents they bid on" in acme_page
    assert "you accepted it" in acme_page
    assert "A$85.00" in acme_page
    globex_page = _page(client, f"/suppliers/{globex.id}")
    assert "not chosen" in globex_page
    assert f"/intents/{intent_id}" in globex_page


def test_accepting_without_sharing_then_sharing_later(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    intent_id = _posted(client)
    acme = _bidder(inst, "Acme Books")
    bid_id = _bid(inst, acme, intent_id, 8000)
    url = f"/intents/{intent_id}/bids/{bid_id}/accept"
    done = client.post(
        url, data={"csrf_token": csrf(client, "/intents"), "share": "no"}, follow_redirects=True
    )
    body = done.get_data(as_text=True)
    assert "It has not seen your name or address" in body
    assert "Share my name and address for the delivery" in body
    assert _count(inst, ConsentGrant) == 0
    assert _entries(inst, "intents.fulfilment_shared") == []

    shared = client.post(url, data={"csrf_token": csrf(client, "/intents"), "share": "yes"})
    assert shared.status_code == 303
    with inst.sessions() as session:
        grant = session.execute(select(ConsentGrant)).scalar_one()
        assert grant.supplier_id == acme.id
    assert len(_entries(inst, "intents.fulfilment_shared")) == 1
    assert len(_entries(inst, "intents.accepted")) == 1


def test_cancelling_an_open_and_an_accepted_intent(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    open_id = _posted(client)
    acme = _bidder(inst, "Acme Books")
    bid_id = _bid(inst, acme, open_id, 8000)
    cancelled = client.post(
        f"/intents/{open_id}/cancel", data={"csrf_token": csrf(client, "/intents")}
    )
    assert cancelled.status_code == 303
    with inst.sessions() as session:
        assert session.get_one(Intent, open_id).status == "cancelled"
        assert session.get_one(Bid, bid_id).status == "not_chosen"
    (entry,) = _entries(inst, "intents.cancelled")
    assert params_of(entry) == {"intent": open_id, "not_chosen": 1}
    again = client.post(
        f"/intents/{open_id}/cancel",
        data={"csrf_token": csrf(client, "/intents")},
        follow_redirects=True,
    )
    assert "This intent is cancelled already." in again.get_data(as_text=True)
    assert len(_entries(inst, "intents.cancelled")) == 1

    standing = _posted(client)
    won = _bid(inst, acme, standing, 8000)
    client.post(
        f"/intents/{standing}/bids/{won}/accept",
        data={"csrf_token": csrf(client, "/intents"), "share": "yes"},
    )
    client.post(f"/intents/{standing}/cancel", data={"csrf_token": csrf(client, "/intents")})
    with inst.sessions() as session:
        intent = session.get_one(Intent, standing)
        assert intent.status == "cancelled"
        grant = session.get_one(ConsentGrant, intent.fulfilment_grant_id)
        assert grant.revoked_at is not None


def test_another_customers_intent_is_not_found_and_unchanged(
    inst: Instance, client: FlaskClient, auth: Auth, customer: str
) -> None:
    intent_id = _posted(client)
    acme = _bidder(inst, "Acme Books")
    bid_id = _bid(inst, acme, intent_id, 8000)
    auth.logout()
    make_customer(inst, email="mallory@example.org", password=PASSWORD)
    auth.login("mallory@example.org", PASSWORD)
    assert client.get(f"/intents/{intent_id}").status_code == 404
    token = csrf(client, "/intents")
    accept = client.post(
        f"/intents/{intent_id}/bids/{bid_id}/accept", data={"csrf_token": token, "share": "yes"}
    )
    assert accept.status_code == 404
    assert (
        client.post(f"/intents/{intent_id}/cancel", data={"csrf_token": token}).status_code == 404
    )
    with inst.sessions() as session:
        assert session.get_one(Intent, intent_id).status == "open"
        assert session.get_one(Bid, bid_id).status == "open"
    assert _entries(inst, "intents.accepted") == _entries(inst, "intents.cancelled") == []
    assert "Ivy" not in client.get(f"/intents/{intent_id}").get_data(as_text=True)


def test_anonymous_visitors_are_sent_to_log_in(client: FlaskClient) -> None:
    response = client.get("/intents")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")


def test_notifications_of_a_new_bid_and_of_a_near_date(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    later = _posted(client, needed_by=_day(20))
    soon = _posted(client, needed_by=_day(1), description="Birthday flowers.")
    acme = _bidder(inst, "Acme Books", verified=True)
    _bid(inst, acme, later, 8000)

    page = _page(client, "/notifications")
    assert "A new bid from Acme Books (verified) on your intent" in page
    assert f'href="/intents/{later}"' in page
    assert "Your intent is needed within 2 days" in page
    assert f'href="/intents/{soon}"' in page
    assert f'href="/intents/{later}"' in page
    with inst.sessions() as session:
        assert notifications.unread_count(session, customer) == 2

    # read once, the two are read; an intent far off is never notified
    client.post("/notifications/read", data={"csrf_token": csrf(client, "/notifications")})
    with inst.sessions() as session:
        assert notifications.unread_count(session, customer) == 0

    # the customer chooses: without new bids in the app, a new one does not show
    kinds = [k for k in notifications.KINDS if k != notifications.NEW_BID]
    saved = client.post(
        "/notifications/settings",
        data={"csrf_token": csrf(client, "/notifications/settings"), "in_app": kinds},
    )
    assert saved.status_code == 303
    _bid(inst, _bidder(inst, "Globex Reads"), later, 7000)
    assert "Globex Reads" not in _page(client, "/notifications")
    settings_page = _page(client, "/notifications/settings")
    assert "A new bid on one of your intents" in settings_page
    assert "An intent is needed within 2 days" in settings_page


def test_the_digest_tells_of_bids_and_near_dates(inst: Instance, customer: str) -> None:
    with inst.sessions() as session:
        items = notifications.list_notifications(session, inst, customer).items
    assert items == []
    mail = notifications.digest_mail(
        "ivy@example.org",
        "https://infomediary.example",
        [
            notifications.Notification(
                notifications.NEW_BID, utcnow(), "new_bid-1", "/intents/1", "Acme Books"
            ),
            notifications.Notification(
                notifications.INTENT_DUE, utcnow(), "intent_due-1", "/intents/1"
            ),
        ],
    )
    assert "1 new bid(s) on your intents (Acme Books)" in mail.body
    assert "1 intent(s) needed within 2 days" in mail.body
    assert "https://infomediary.example/intents" in mail.body


def test_the_overview_and_the_navigation_lead_to_the_intents(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    intent_id = _posted(client)
    _bid(inst, _bidder(inst, "Acme Books"), intent_id, 8000)
    listed = len(_entries(inst, "intents.listed_own"))
    overview = _page(client, "/dashboard")
    assert "1 open intent;" in overview
    assert "1 bid waiting for your answer." in overview
    assert 'href="/intents"' in overview
    # the overview opens no sealed detail: it writes no intents entry
    assert len(_entries(inst, "intents.listed_own")) == listed


def test_the_pages_in_german(inst: Instance, client: FlaskClient, customer: str) -> None:
    intent_id = _posted(client)
    german = {"Accept-Language": "de"}
    listed = client.get("/intents", headers=german).get_data(as_text=True)
    assert 'lang="de"' in listed
    assert "Ihre Absichten" in listed
    one = client.get(f"/intents/{intent_id}", headers=german).get_data(as_text=True)
    assert "Gebote" in one
    refused = client.post(
        "/intents",
        data=_form(description="") | {"csrf_token": csrf(client, "/intents")},
        headers=german,
    )
    assert "Sagen Sie, was Sie möchten." in refused.get_data(as_text=True)


def test_posting_is_rate_limited_per_customer_and_refused_forms_do_not_count(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    for _ in range(3):
        assert _post(client, description="").status_code == 400
    statuses = [_post(client).status_code for _ in range(11)]
    assert statuses[:10] == [303] * 10
    assert statuses[10] == 429
    assert _count(inst, Intent) == 10


def test_a_standing_intent_reminds_before_each_delivery(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    intent_id = _posted(client, recurrence="repeat", every="1", unit="week", until=_day(90))
    bid_id = _bid(inst, _bidder(inst, "Acme Books"), intent_id, 8000)
    client.post(
        f"/intents/{intent_id}/bids/{bid_id}/accept",
        data={"csrf_token": csrf(client, "/intents"), "share": "no"},
    )
    assert 'id="intent_due-' not in _page(client, "/notifications")
    # a week on less a day: the first delivery is past, the second is tomorrow
    with inst.sessions() as session:
        session.get_one(Intent, intent_id).needed_by = TODAY - timedelta(days=6)
        session.commit()
    page = _page(client, "/notifications")
    assert f'id="intent_due-{intent_id}-{_day(1)}"' in page
    assert "Your intent is needed within 2 days" in page
    assert page.count('id="intent_due-') == 1
    # a cancelled one reminds of nothing
    client.post(f"/intents/{intent_id}/cancel", data={"csrf_token": csrf(client, "/intents")})
    assert 'id="intent_due-' not in _page(client, "/notifications")


def test_a_standing_agreement_comes_up_for_review_and_can_be_posted_again(
    inst: Instance, client: FlaskClient, customer: str
) -> None:
    intent_id = _posted(client, recurrence="repeat", every="1", unit="month", until=_day(120))
    bid_id = _bid(inst, _bidder(inst, "Acme Books"), intent_id, 8000)
    client.post(
        f"/intents/{intent_id}/bids/{bid_id}/accept",
        data={"csrf_token": csrf(client, "/intents"), "share": "no"},
    )
    assert 'id="intent_review-' not in _page(client, "/notifications")
    assert 'data-testid="review"' not in _page(client, f"/intents/{intent_id}")
    # months on: the term (monthly from 80 days ago) ends in ten days
    first, until = TODAY - timedelta(days=80), TODAY + timedelta(days=10)
    with inst.sessions() as session:
        intent = session.get_one(Intent, intent_id)
        intent.needed_by, intent.recurrence_until = first, until
        session.commit()
        last = intents.deliveries(intent)[-1]
    page = _page(client, "/notifications")
    assert f'id="intent_review-{intent_id}"' in page
    assert "Your standing agreement with Acme Books comes to its end" in page
    assert page.count('id="intent_review-') == 1
    shown = _page(client, f"/intents/{intent_id}")
    assert 'data-testid="review"' in shown
    assert f"/intents?again={intent_id}" in shown
    # "post it again": the form holds the same intent for a term as long, from the next month
    again = _page(client, f"/intents?again={intent_id}")
    start = intents.advance(last, 1, "month")
    assert f'value="{start.isoformat()}"' in again
    assert f'value="{(start + (until - first)).isoformat()}"' in again
    assert "A hardback atlas of the world, recent edition." in again
    assert 'value="80.00"' not in again  # the budget is the customer's, not the bid's
    assert 'value="90.00"' in again
    before = _count(inst, Intent)
    renewed = _posted(
        client,
        needed_by=start.isoformat(),
        recurrence="repeat",
        every="1",
        unit="month",
        until=(start + (until - first)).isoformat(),
    )
    assert renewed != intent_id
    assert _count(inst, Intent) == before + 1
    # another customer's intent fills in nothing
    assert (
        "A hardback atlas"
        not in _page(client, "/intents?again=" + "0" * 36).split('id="post-heading"')[1]
    )
    # a cancelled agreement is not up for review
    client.post(f"/intents/{intent_id}/cancel", data={"csrf_token": csrf(client, "/intents")})
    assert 'id="intent_review-' not in _page(client, "/notifications")


def test_the_digest_tells_of_agreements_to_review() -> None:
    mail = notifications.digest_mail(
        "ivy@example.org",
        "https://infomediary.example",
        [
            notifications.Notification(
                notifications.INTENT_REVIEW, utcnow(), "intent_review-1", "/intents/1", "Acme"
            )
        ],
    )
    assert "1 standing agreement(s) ending soon or ended: time to review them (Acme)" in mail.body


def test_amounts_are_shown_in_their_currencys_minor_unit(app: Flask) -> None:
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert minor_amount(8950, "AUD") == "A$89.50"
        assert minor_amount(500, "JPY") == "¥500"
        assert minor_amount(None, "AUD") == ""
        assert calendar_date("2030-01-02") == "Jan 2, 2030"
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert minor_amount(8950, "EUR") == "89,50\xa0€"
