"""Possible duplicates: the lines of one order seen through an Amazon order history and the
order's e-mail are shown as pairs the customer merges (the chosen line kept, filled from the
other, which is deleted) or marks as different; nobody else can touch them, and lines of one
format, or without an order token, are never paired."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from connectors.lines import PurchaseLine
from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Purchase, PurchaseOrderReview
from infomediary.services import derived_interests
from infomediary.services import purchase_duplicates as duplicates
from infomediary.services.purchase_duplicates import DuplicateLine
from infomediary.web.purchase_duplicates_views import reference, token_of
from tests.conftest import Auth, csrf
from tests.factories import make_customer
from tests.functional.test_purchases_import import AMAZON, CTX, PASSWORD, run_import, visible
from tests.log_reasons import code_of, shown

ORDER_RE = re.compile(r'name="order" value="([^"]+)"')
RADIO_RE = re.compile(
    r'<input type="radio" id="[^"]+" name="(keep-[^"]+)" value="([^"]+)"( checked)?>'
)
ORDER_ID = "111-0000001-0000001"
CABLE = 'USB-C Cable 6" (2-Pack), Braided'


def order_email(path: Path) -> Path:
    """The order e-mail's schema.org markup for the Amazon fixture's first order (the cable,
    named shorter, with a category but no ASIN), a gift box that the file does not have, and
    the fixture's notebooks of its second order in one line of another quantity."""
    orders = [
        {
            "@context": "https://schema.org",
            "@type": "Order",
            "merchant": {"@type": "Organization", "name": "Amazon.com"},
            "orderNumber": ORDER_ID,
            "orderDate": "2024-03-05T18:22:41Z",
            "orderStatus": "https://schema.org/OrderDelivered",
            "acceptedOffer": [
                {
                    "@type": "Offer",
                    "itemOffered": {
                        "@type": "Product",
                        "name": 'usb-c  CABLE 6" (2-pack)',
                        "category": "Electronics",
                    },
                    "price": "19.99",
                    "priceCurrency": "USD",
                    "eligibleQuantity": {"@type": "QuantitativeValue", "value": 1},
                },
                {
                    "@type": "Offer",
                    "itemOffered": {"@type": "Product", "name": "Gift box"},
                    "price": "3.00",
                    "priceCurrency": "USD",
                },
            ],
        },
        {
            "@context": "https://schema.org",
            "@type": "Order",
            "merchant": {"name": "Amazon.com"},
            "orderNumber": "111-0000002-0000002",
            "orderDate": "2024-04-01T08:15:30Z",
            "acceptedOffer": {
                "itemOffered": {"name": "Notebook A5 Dotted"},
                "price": "5.00",
                "priceCurrency": "USD",
                "eligibleQuantity": {"value": 3},
            },
        },
    ]
    path.write_text(json.dumps(orders), encoding="utf-8")
    return path


def logged_in(
    app: Flask, inst: Instance, email: str = "ada@example.org"
) -> tuple[FlaskClient, str]:
    customer_id = make_customer(inst, email=email, password=PASSWORD)
    client = app.test_client()
    assert Auth(client).login(email, PASSWORD).status_code == 302
    return client, customer_id


def two_sources(inst: Instance, customer_id: str, tmp_path: Path) -> None:
    assert run_import(inst, customer_id, AMAZON).imported == 8
    assert run_import(inst, customer_id, order_email(tmp_path / "order.json")).imported == 3


def page(client: FlaskClient, path: str = "/purchases/duplicates") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def groups(inst: Instance, customer_id: str) -> list[duplicates.DuplicateGroup]:
    with inst.sessions() as session:
        return duplicates.possible_duplicates(session, inst, customer_id)


def orders(body: str) -> list[str]:
    """The orders of the page, each named once by its merge form and once by its dismiss."""
    found = ORDER_RE.findall(body)
    assert found[0::2] == found[1::2]
    return found[0::2]


def radios(body: str) -> list[tuple[str, str, bool]]:
    return [(name, value, bool(checked)) for name, value, checked in RADIO_RE.findall(body)]


def lines_by_name(inst: Instance, customer_id: str) -> dict[str, dict[str, Any]]:
    return {line["product_name"]: line for line in visible(inst, customer_id)}


def post(client: FlaskClient, path: str, data: dict[str, str]) -> TestResponse:
    return client.post(path, data={"csrf_token": csrf(client, "/purchases"), **data})


def test_an_order_seen_in_two_sources_is_shown_as_a_pair(
    app: Flask, inst: Instance, tmp_path: Path
) -> None:
    client, customer_id = logged_in(app, inst)
    assert "possible duplicate" not in page(client, "/purchases")
    assert "No possible duplicates" in page(client)
    two_sources(inst, customer_id, tmp_path)

    notice = page(client, "/purchases")
    assert '<a href="/purchases/duplicates">1 possible duplicate</a>' in notice
    body = page(client)
    assert f"Order {ORDER_ID} from Amazon.com, 2024-03-05" in body
    assert CABLE.replace('"', "&#34;") in body
    assert "from the order e-mail imported" in body
    assert "from the Amazon order history imported" in body
    assert "Gift box" not in body  # no counterpart
    assert "Notebook" not in body  # another quantity: not the same line
    [order] = orders(body)
    assert len(order) == 43
    assert "=" not in order

    held = lines_by_name(inst, customer_id)
    amazon, mail = held[CABLE], held['usb-c CABLE 6" (2-pack)']
    found = radios(body)
    assert {value for _, value, _ in found} == {amazon["id"], mail["id"]}
    assert len({name for name, _, _ in found}) == 1  # one choice per pair
    # as rich as each other (an ASIN; a category): the line imported first is kept
    assert [value for _, value, checked in found if checked] == [amazon["id"]]

    [group] = groups(inst, customer_id)
    assert reference(group.order_token) == order
    assert token_of(order) == group.order_token
    assert [(p.first.format, p.second.format) for p in group.pairs] == [
        ("amazon-retail", "schema-org")
    ]


def test_merge_keeps_the_chosen_line_and_fills_what_it_lacks(
    app: Flask, inst: Instance, tmp_path: Path
) -> None:
    client, customer_id = logged_in(app, inst)
    two_sources(inst, customer_id, tmp_path)
    held = lines_by_name(inst, customer_id)
    amazon, mail = held[CABLE], held['usb-c CABLE 6" (2-pack)']
    body = page(client)
    [order] = orders(body)
    [(field, _, _), *_] = radios(body)

    response = post(client, "/purchases/duplicates/merge", {"order": order, field: mail["id"]})
    assert response.status_code == 302
    after = page(client)
    assert "Merged: 1 duplicate line removed." in after
    assert "No possible duplicates" in after
    assert "possible duplicate" not in page(client, "/purchases")

    left = {line["id"]: line for line in visible(inst, customer_id)}
    assert len(left) == 10
    assert amazon["id"] not in left
    kept = left[mail["id"]]
    assert kept["product_id"] == "B0TESTAAA1"  # taken from the deleted line
    assert kept["category"] == "Electronics"  # its own
    assert kept["product_name"] == mail["product_name"]

    with inst.sessions() as session:
        [entry] = session.execute(
            select(AccessLogEntry).where(
                AccessLogEntry.action == "delete", AccessLogEntry.customer_id == customer_id
            )
        ).scalars()
    assert code_of(entry) == "purchases.duplicates_merged"
    assert shown(entry) == "possible duplicate purchases merged: 1 line(s) deleted"
    assert entry.detail is not None  # which lines: sealed

    again = post(client, "/purchases/duplicates/merge", {"order": order, field: mail["id"]})
    assert again.status_code == 404


def test_merge_by_default_keeps_the_richer_line_and_rederives_interests(
    inst: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id = make_customer(inst)
    two_sources(inst, customer_id, tmp_path)
    held = lines_by_name(inst, customer_id)
    [group] = groups(inst, customer_id)
    derived: list[list[PurchaseLine]] = []
    recompute = derived_interests.recompute

    def spy(session: Any, inst: Instance, key: Any, lines: Iterable[PurchaseLine]) -> None:
        derived.append(list(lines))
        recompute(session, inst, key, derived[-1])

    monkeypatch.setattr(derived_interests, "recompute", spy)
    with inst.sessions() as session:
        assert duplicates.merge(session, inst, CTX, customer_id, group.order_token, []) == 1
    [lines] = derived  # the lines left, the kept one filled
    assert len(lines) == 10
    [cable] = [line for line in lines if line.product_id == "B0TESTAAA1" and line.quantity == 1]
    assert cable.category == "Electronics"
    left = {line["id"]: line for line in visible(inst, customer_id)}
    kept = left[held[CABLE]["id"]]
    assert held['usb-c CABLE 6" (2-pack)']["id"] not in left
    assert (kept["product_id"], kept["category"]) == ("B0TESTAAA1", "Electronics")


def test_richer_and_earlier() -> None:
    early, late = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    base = {"product_name": "Tea", "quantity": 1, "unit_price_minor": 500, "currency": "EUR"}

    def line(name: str, when: datetime, fmt: str, **fields: Any) -> DuplicateLine:
        return DuplicateLine(name, f"import-{name}", fmt, when, {**base, **fields})

    rich = line("b", late, "schema-org", product_id="X1", category="Food")
    poor = line("a", early, "amazon-retail", product_id="X1")
    [pair] = duplicates._pairs([poor, rich])
    assert pair.keep == "b"
    [pair] = duplicates._pairs([line("c", late, "shopify"), line("d", early, "push")])
    assert pair.keep == "d"
    assert duplicates._pairs([poor, line("e", late, "schema-org", product_id="X2")]) == ()
    assert duplicates._pairs([poor, line("f", late, "amazon-retail", product_id="X1")]) == ()
    other_price = line("g", late, "shopify", unit_price_minor=600)
    assert duplicates._pairs([line("h", early, "push"), other_price]) == ()
    contained = line("i", late, "shopify", product_name="Green TEA, loose")
    assert len(duplicates._pairs([line("j", early, "push", product_name="tea"), contained])) == 1


def test_dismiss_hides_the_order(app: Flask, inst: Instance, tmp_path: Path) -> None:
    client, customer_id = logged_in(app, inst)
    two_sources(inst, customer_id, tmp_path)
    [order] = orders(page(client))

    assert post(client, "/purchases/duplicates/dismiss", {"order": order}).status_code == 302
    body = page(client)
    assert "Kept apart" in body
    assert "No possible duplicates" in body
    assert "possible duplicate" not in page(client, "/purchases")
    assert len(visible(inst, customer_id)) == 11
    with inst.sessions() as session:
        [review] = session.execute(select(PurchaseOrderReview)).scalars()
    assert (review.customer_id, review.order_token) == (customer_id, token_of(order))

    assert post(client, "/purchases/duplicates/dismiss", {"order": order}).status_code == 404
    assert post(client, "/purchases/duplicates/merge", {"order": order}).status_code == 404


def test_nobody_else_merges_or_dismisses_them(app: Flask, inst: Instance, tmp_path: Path) -> None:
    ada, ada_id = logged_in(app, inst)
    two_sources(inst, ada_id, tmp_path)
    body = page(ada)
    [order] = orders(body)
    choices = {name: value for name, value, _ in radios(body)}

    bob, bob_id = logged_in(app, inst, "bob@example.org")
    two_sources(inst, bob_id, tmp_path)  # the same order, in his own lines
    his_page = page(bob)
    assert not set(choices.values()) & {value for _, value, _ in radios(his_page)}
    [his_order] = orders(his_page)
    assert his_order != order  # tokens are keyed per customer
    for path, data in (
        ("/purchases/duplicates/merge", {"order": order, **choices}),
        ("/purchases/duplicates/merge", {"order": his_order, **choices}),  # her lines, his order
        ("/purchases/duplicates/dismiss", {"order": order}),
    ):
        response = post(bob, path, data)
        assert response.status_code == 404, path
        assert "Traceback" not in response.get_data(as_text=True)
    assert len(visible(inst, ada_id)) == 11
    assert orders(page(ada)) == [order]

    notebook = lines_by_name(inst, ada_id)["Notebook A5 Dotted"]["id"]  # of another order
    for data in (
        {"order": order, "keep-x": notebook},
        {"order": "not-a-reference"},
        {"order": ("B" if order[0] == "A" else "A") + order[1:]},
        {},
    ):
        response = post(ada, "/purchases/duplicates/merge", data)
        assert response.status_code == 404, data
        assert "No such possible duplicates." in response.get_data(as_text=True)
    merged = post(ada, "/purchases/duplicates/merge", {"order": order, **choices})
    assert merged.status_code == 302  # her own, after all that
    assert len(visible(inst, ada_id)) == 10
    assert ada.post("/purchases/duplicates/dismiss", data={"order": order}).status_code == 403
    anonymous = app.test_client().get("/purchases/duplicates")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"] == "/login"


def test_keeping_both_lines_of_a_pair_is_refused(
    app: Flask, inst: Instance, tmp_path: Path
) -> None:
    client, customer_id = logged_in(app, inst)
    two_sources(inst, customer_id, tmp_path)
    body = page(client)
    [order] = orders(body)
    data = {"order": order}
    for number, (_, value, _) in enumerate(radios(body)):
        data[f"keep-{number}"] = value
    response = post(client, "/purchases/duplicates/merge", data)
    assert response.status_code == 400
    assert "Keep one line of each pair" in response.get_data(as_text=True)
    assert len(visible(inst, customer_id)) == 11


def test_one_format_twice_is_not_reported(inst: Instance, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    run_import(inst, customer_id, AMAZON)
    again = tmp_path / "Retail.OrderHistory.2.csv"  # the same cable, in another shipment
    again.write_bytes(AMAZON.read_bytes().replace(b"TBA000000000001", b"TBA000000000009"))
    assert run_import(inst, customer_id, again).imported == 1
    assert groups(inst, customer_id) == []


def test_lines_without_an_order_token_are_not_reported(inst: Instance, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    two_sources(inst, customer_id, tmp_path)
    assert len(groups(inst, customer_id)) == 1
    with inst.sessions() as session:
        session.execute(update(Purchase).values(order_token=None))
        session.commit()
    assert groups(inst, customer_id) == []


def test_a_dismissal_racing_another_is_not_found(
    inst: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id = make_customer(inst)
    two_sources(inst, customer_id, tmp_path)
    [group] = groups(inst, customer_id)
    with inst.sessions() as session:
        duplicates.dismiss(session, inst, CTX, customer_id, group.order_token)
    monkeypatch.setattr(duplicates, "_group", lambda *_: group)  # read before the other's commit
    with inst.sessions() as session, pytest.raises(NotFound):
        duplicates.dismiss(session, inst, CTX, customer_id, group.order_token)
    with inst.sessions() as session:
        assert len(session.execute(select(PurchaseOrderReview)).all()) == 1
