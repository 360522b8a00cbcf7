"""schema.org Order markup from order e-mails: JSON-LD, HTML and .eml."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.formats import parser
from connectors.jsondoc import MAX_DOCUMENT_BYTES
from connectors.lines import LineStatus, ParseError, PurchaseLine
from connectors.schema_org import OrderJsonLd, extract_json_ld

FIXTURES = Path(__file__).parent / "fixtures" / "schema_org"
PARSER = OrderJsonLd()


def parse_bytes(data: bytes, source: str = "mail") -> list[PurchaseLine | ParseError]:
    return list(PARSER.parse(io.BytesIO(data), source))


def parse_fixture(name: str) -> list[PurchaseLine | ParseError]:
    with (FIXTURES / name).open("rb") as stream:
        return list(PARSER.parse(stream, name))


def lines_of(results: list[PurchaseLine | ParseError]) -> list[PurchaseLine]:
    assert all(isinstance(result, PurchaseLine) for result in results), results
    return [result for result in results if isinstance(result, PurchaseLine)]


def order(**fields: object) -> dict[str, object]:
    """A minimal valid Order, with ``fields`` replacing or adding to it."""
    document: dict[str, object] = {
        "@context": "http://schema.org",
        "@type": "Order",
        "merchant": {"@type": "Organization", "name": "Acme"},
        "orderNumber": "A-1",
        "orderDate": "2024-01-02T03:04:05Z",
        "acceptedOffer": {
            "itemOffered": {"name": "Widget"},
            "price": "1.00",
            "priceCurrency": "USD",
        },
    }
    document.update(fields)
    return document


def test_the_table_of_formats_names_the_parser() -> None:
    found = parser("schema-org")
    assert isinstance(found, OrderJsonLd)
    assert found.name == "schema-org"


def test_one_order_object_with_one_offer_object() -> None:
    (line,) = lines_of(parse_fixture("single_order.json"))
    assert line == PurchaseLine(
        retailer="Northwind Books",
        order_id="NW-1001",
        line_key='["northwind books", "nw-1001", "the art of tea"]',
        ordered_at=datetime(2024, 3, 5, 13, 30, tzinfo=UTC),
        product_name="The Art of Tea",
        product_id="9780000000017",
        category="Books",
        quantity=1,
        unit_price_minor=2499,
        currency="EUR",
        status=LineStatus.SHIPPED,
        source="single_order.json",
        line_number=1,
    )
    assert line.ordered_at.utcoffset() == timedelta(0)


def test_a_list_of_orders_with_numbers_as_strings() -> None:
    socks, bottle, torch = lines_of(parse_fixture("order_list.json"))
    # seller in place of merchant; a numeric orderNumber; the currency on the order
    assert (socks.retailer, socks.order_id, socks.currency) == ("Fabrikam Outdoor", "55012", "USD")
    assert (socks.quantity, socks.unit_price_minor, socks.product_id) == (3, 1250, "TS-2")
    # a naive orderDate is UTC
    assert socks.ordered_at == datetime(2024, 2, 10, 9, 15, tzinfo=UTC)
    assert (bottle.unit_price_minor, bottle.product_id, bottle.quantity) == (129900, "WB-750", 1)
    assert socks.status is bottle.status is LineStatus.ORDERED
    # "@type": "http://schema.org/Order", a date without a time, priceSpecification
    assert (torch.order_id, torch.currency, torch.unit_price_minor) == ("55013", "GBP", 3900)
    assert torch.quantity == 2
    assert torch.ordered_at == datetime(2024, 2, 11, tzinfo=UTC)
    assert [line.line_number for line in (socks, bottle, torch)] == [1, 2, 3]


def test_a_graph_with_the_merchant_by_reference() -> None:
    lines = lines_of(parse_fixture("graph.json"))
    assert {line.retailer for line in lines} == {"Tailspin Toys"}
    assert [(line.order_id, line.status) for line in lines] == [
        ("T-1", LineStatus.CANCELLED),
        ("T-2", LineStatus.RETURNED),
        ("T-3", LineStatus.SHIPPED),
        ("T-4", LineStatus.SHIPPED),
    ]


@pytest.mark.parametrize(
    ("spelling", "status"),
    [
        ("http://schema.org/OrderDelivered", LineStatus.SHIPPED),
        ("https://schema.org/OrderDelivered", LineStatus.SHIPPED),
        ("OrderDelivered", LineStatus.SHIPPED),
        ("schema:OrderDelivered", LineStatus.SHIPPED),
        ("http://www.schema.org/OrderDelivered", LineStatus.SHIPPED),
        ("http://schema.org/OrderInTransit", LineStatus.SHIPPED),
        ("https://schema.org/OrderPickupAvailable", LineStatus.SHIPPED),
        ("OrderProcessing", LineStatus.ORDERED),
        ("schema:OrderPaymentDue", LineStatus.ORDERED),
        ("http://schema.org/OrderCancelled", LineStatus.CANCELLED),
        ("https://schema.org/OrderReturned", LineStatus.RETURNED),
        ("orderreturned", LineStatus.RETURNED),
    ],
)
def test_order_status_spellings(spelling: str, status: LineStatus) -> None:
    (line,) = lines_of(parse_bytes(json.dumps(order(orderStatus=spelling)).encode()))
    assert line.status is status


def test_an_order_without_status_is_ordered() -> None:
    (line,) = lines_of(parse_bytes(json.dumps(order()).encode()))
    assert line.status is LineStatus.ORDERED


@pytest.mark.parametrize(
    "kind", ["Order", ["Order", "Thing"], "http://schema.org/Order", "schema:Order"]
)
def test_type_spellings(kind: object) -> None:
    data = json.dumps(order(**{"@type": kind})).encode()
    assert PARSER.detect(data)
    assert len(lines_of(parse_bytes(data))) == 1


def test_the_html_email_yields_the_markup_lines() -> None:
    mug, towel = lines_of(parse_fixture("confirmation.html"))
    assert (mug.product_name, mug.product_id, mug.quantity, mug.unit_price_minor) == (
        "Blue Ceramic Mug",
        "MUG-BLU-12",
        4,
        850,
    )
    assert mug.ordered_at == datetime(2024, 4, 1, 14, tzinfo=UTC)
    assert towel.product_name == "Linen Tea Towel"
    assert mug.status is LineStatus.ORDERED


def test_the_eml_email_is_read_through_its_quoted_printable_html_part() -> None:
    mug, towel = lines_of(parse_fixture("shipped.eml"))
    assert mug.status is towel.status is LineStatus.SHIPPED
    assert (mug.retailer, mug.order_id, mug.product_id) == ("Contoso Home", "CH-7788", None)
    assert (mug.quantity, mug.unit_price_minor, towel.unit_price_minor) == (4, 850, 600)


def test_the_same_order_in_two_emails_has_the_same_line_keys() -> None:
    confirmed = lines_of(parse_fixture("confirmation.html"))
    shipped = lines_of(parse_fixture("shipped.eml"))
    # the sku is in the confirmation and not in the shipping e-mail, the name respelled
    assert confirmed[0].product_id == "MUG-BLU-12"
    assert shipped[0].product_id is None
    assert confirmed[0].product_name != shipped[0].product_name
    assert [line.line_key for line in confirmed] == [line.line_key for line in shipped]
    assert len({line.line_key for line in confirmed + shipped}) == 2


def test_the_same_name_twice_in_one_order_is_two_lines() -> None:
    offer = {"itemOffered": {"name": "Widget"}, "price": "1.00", "priceCurrency": "USD"}
    first, second = lines_of(parse_bytes(json.dumps(order(acceptedOffer=[offer, offer])).encode()))
    assert first.line_key != second.line_key
    again = lines_of(parse_bytes(json.dumps(order(acceptedOffer=[offer, offer])).encode()))
    assert [line.line_key for line in again] == [first.line_key, second.line_key]


def test_extract_json_ld_takes_only_the_json_ld_scripts() -> None:
    html = (
        '<html><head><SCRIPT TYPE="application/ld+json; charset=utf-8">{"a": "x &amp; y"}'
        '</SCRIPT><script>var b = 1;</script><script type="text/json">{"c": 3}</script>'
        "</head><body><script type='application/ld+json'>[1, 2]</script>"
        '<script type="application/ld+json">  </script></body></html>'
    )
    assert extract_json_ld(html) == ['{"a": "x &amp; y"}', "[1, 2]"]
    assert extract_json_ld("<p>no markup</p>") == []


def test_malformed_html_is_no_crash() -> None:
    assert extract_json_ld("<![foo[ <script type='application/ld+json'>{}</script>") == []
    (error,) = parse_bytes(b"<html><![foo[ broken")
    assert isinstance(error, ParseError)


def test_invalid_json_is_a_parse_error() -> None:
    (error,) = parse_fixture("invalid.json")
    assert isinstance(error, ParseError)
    assert (error.source, error.line_number) == ("invalid.json", 1)
    assert "not valid JSON" in error.message


def test_invalid_json_in_one_script_does_not_stop_the_next() -> None:
    good = json.dumps(order())
    html = (
        f'<script type="application/ld+json">{{"@type": "Order",</script>'
        f'<script type="application/ld+json">{good}</script>'
    ).encode()
    error, line = parse_bytes(html)
    assert isinstance(error, ParseError)
    assert "JSON-LD block 1" in error.message
    assert isinstance(line, PurchaseLine)
    assert line.line_number == 2


@pytest.mark.parametrize("name", ["binary.bin", "latin1.json"])
def test_binary_and_non_utf8_files_are_refused_without_crashing(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    assert isinstance(PARSER.detect(data), bool)
    (error,) = parse_fixture(name)
    assert isinstance(error, ParseError)
    assert "UTF-8" in error.message


@given(st.binary(max_size=2048))
def test_any_bytes_are_detected_and_parsed_without_crashing(data: bytes) -> None:
    assert isinstance(PARSER.detect(data), bool)
    results = parse_bytes(data)
    assert all(isinstance(result, PurchaseLine | ParseError) for result in results)


def test_bad_orders_and_lines_are_errors_and_the_rest_is_read() -> None:
    results = parse_fixture("bad_lines.json")
    good = {r.line_number: r.product_name for r in results if isinstance(r, PurchaseLine)}
    errors = {r.line_number: r.message for r in results if isinstance(r, ParseError)}
    assert good == {2: "Pears", 8: "Kiwis", 11: "Lemons"}
    assert set(errors) == {1, 3, 4, 5, 6, 7, 9, 10}
    assert "orderNumber" in errors[1]
    assert "no price" in errors[3]
    assert "not an amount" in errors[4]
    assert "eligibleQuantity" in errors[5]
    assert "not an Offer" in errors[6]
    assert "currency" in errors[7]
    assert "orderDate" in errors[9]
    assert "orderStatus" in errors[10]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"merchant": None}, "merchant"),
        ({"merchant": {"name": {"first": "Acme"}}}, "merchant"),
        ({"orderNumber": ["x"]}, "orderNumber"),
        ({"orderDate": 20240102}, "orderDate"),
        ({"orderStatus": 3}, "orderStatus"),
        ({"acceptedOffer": []}, "acceptedOffer"),
        (
            {"acceptedOffer": {"itemOffered": {"sku": "1"}, "price": 1, "priceCurrency": "USD"}},
            "name",
        ),
        (
            {
                "acceptedOffer": {
                    "itemOffered": {"name": "W"},
                    "price": True,
                    "priceCurrency": "USD",
                }
            },
            "price",
        ),
        ({"acceptedOffer": {"itemOffered": {"name": "W"}, "price": 1}}, "priceCurrency"),
    ],
)
def test_wrong_types_are_parse_errors(fields: dict[str, object], message: str) -> None:
    document = {key: value for key, value in order(**fields).items() if value is not None}
    (error,) = parse_bytes(json.dumps(document).encode())
    assert isinstance(error, ParseError)
    assert message in error.message


def test_an_order_date_beyond_the_calendar_in_utc_is_a_parse_error() -> None:
    (error,) = parse_bytes(json.dumps(order(orderDate="0001-01-01T01:00:00+05:00")).encode())
    assert isinstance(error, ParseError)
    assert "orderDate" in error.message


def test_a_price_beyond_any_amount_is_a_parse_error() -> None:
    text = json.dumps(order()).replace('"price": "1.00"', '"price": 1e400')
    assert "1e400" in text
    (error,) = parse_bytes(text.encode())
    assert isinstance(error, ParseError)
    assert "price" in error.message


def test_a_document_without_an_order_is_a_parse_error() -> None:
    data = json.dumps({"@type": "ParcelDelivery", "trackingNumber": "1Z"}).encode()
    (error,) = parse_bytes(data)
    assert isinstance(error, ParseError)
    assert "no schema.org Order" in error.message


def test_a_non_object_in_a_list_is_an_error_for_it_alone() -> None:
    error, line = parse_bytes(json.dumps([42, order()]).encode())
    assert isinstance(error, ParseError)
    assert error.line_number == 1
    assert isinstance(line, PurchaseLine)
    assert line.line_number == 2


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.served = 0

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self.served += len(chunk)
        return chunk


def test_a_document_above_the_bound_is_refused_unread() -> None:
    stream = CountingStream(b" " * (MAX_DOCUMENT_BYTES + 1000) + json.dumps(order()).encode())
    (error,) = PARSER.parse(stream, "big.json")
    assert isinstance(error, ParseError)
    assert "larger than" in error.message
    assert stream.served <= MAX_DOCUMENT_BYTES + 1


def test_a_document_at_the_bound_is_read() -> None:
    body = json.dumps(order()).encode()
    (line,) = lines_of(parse_bytes(b" " * (MAX_DOCUMENT_BYTES - len(body)) + body))
    assert line.order_id == "A-1"


@pytest.mark.parametrize(
    "name",
    ["single_order.json", "order_list.json", "graph.json", "confirmation.html", "shipped.eml"],
)
def test_detects_its_fixtures(name: str) -> None:
    assert PARSER.detect((FIXTURES / name).read_bytes())


@pytest.mark.parametrize(
    "head",
    [
        b"Order ID,Order Date,Title\n1,2024-01-01,Tea\n",
        b'{"purchaseOrderId": "1", "lineItem": []}',
        b'{"@type": "Product", "name": "Order"}',
        b'{"@type": "OrderItem"}',
        b"",
    ],
)
def test_does_not_detect_other_documents(head: bytes) -> None:
    assert not PARSER.detect(head)


def test_detects_base64_markup_in_an_email() -> None:
    import base64

    html = f'<script type="application/ld+json">{json.dumps(order())}</script>'
    encoded = base64.encodebytes(html.encode()).decode()
    mail = (
        "From: shop@example.com\r\nSubject: Your order\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{encoded}"
    ).encode()
    assert b"Order" not in mail
    assert PARSER.detect(mail)
    (line,) = lines_of(parse_bytes(mail))
    assert line.product_name == "Widget"


# Generated orders round-trip ------------------------------------------------------------

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-&'",
               min_size=1, max_size=8)  # fmt: skip
NAME = st.lists(WORD, min_size=1, max_size=4).map(" ".join)
CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}
STATUS_SPELLINGS = {
    "OrderDelivered": LineStatus.SHIPPED,
    "OrderInTransit": LineStatus.SHIPPED,
    "OrderProcessing": LineStatus.ORDERED,
    "OrderCancelled": LineStatus.CANCELLED,
    "OrderReturned": LineStatus.RETURNED,
}
PREFIXES = ["", "http://schema.org/", "https://schema.org/", "schema:"]


@st.composite
def offers(draw: st.DrawFn, currency: str) -> tuple[dict[str, object], dict[str, object]]:
    """An Offer, and what its line must say."""
    exponent = CURRENCIES[currency]
    minor = draw(st.integers(min_value=0, max_value=10**9))
    quantity = draw(st.integers(min_value=1, max_value=999))
    name = draw(NAME)
    sku = draw(st.none() | WORD)
    product: dict[str, object] = {"@type": "Product", "name": name}
    if sku is not None:
        product["sku"] = sku
    text = f"{minor // 10**exponent}" + (
        f".{minor % 10**exponent:0{exponent}d}" if exponent else ""
    )
    offer: dict[str, object] = {
        "@type": "Offer",
        "itemOffered": product,
        "price": draw(st.sampled_from([text, float(text)])),
        "priceCurrency": currency,
    }
    quantity_form = draw(st.sampled_from(["absent", "number", "string"]))
    if quantity_form == "absent":
        quantity = 1
    else:
        value = quantity if quantity_form == "number" else str(quantity)
        offer["eligibleQuantity"] = {"@type": "QuantitativeValue", "value": value}
    expected: dict[str, object] = {
        "product_name": name,
        "product_id": sku,
        "quantity": quantity,
        "minor": minor,
    }
    return offer, expected


Generated = tuple[dict[str, object], dict[str, object], list[dict[str, object]]]


@st.composite
def orders(draw: st.DrawFn) -> Generated:
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    drawn = draw(st.lists(offers(currency), min_size=1, max_size=4))
    when = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
            max_value=datetime(2040, 1, 1),  # noqa: DTZ001
        )
    )
    offset = draw(st.none() | st.integers(min_value=-12 * 60, max_value=14 * 60))
    if offset is not None:
        when = when.replace(tzinfo=timezone(timedelta(minutes=offset)))
    status = draw(st.sampled_from(sorted(STATUS_SPELLINGS)))
    document: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": draw(st.sampled_from(["Order", ["Order"], "http://schema.org/Order"])),
        draw(st.sampled_from(["merchant", "seller"])): {"name": draw(NAME)},
        "orderNumber": draw(WORD | st.integers(min_value=0, max_value=10**12).map(str)),
        "orderDate": when.isoformat(),
        "orderStatus": draw(st.sampled_from(PREFIXES)) + status,
        "acceptedOffer": (
            drawn[0][0] if len(drawn) == 1 and draw(st.booleans()) else [o for o, _ in drawn]
        ),
    }
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    head = {
        "retailer": next(v["name"] for k, v in document.items() if k in ("merchant", "seller")),  # type: ignore[index]
        "order_id": document["orderNumber"],
        "ordered_at": aware.astimezone(UTC),
        "status": STATUS_SPELLINGS[status],
        "currency": currency,
    }
    return document, head, [expected for _, expected in drawn]


@given(st.lists(orders(), min_size=1, max_size=3), st.sampled_from(["object", "list", "graph"]))
def test_generated_orders_round_trip(generated: list[Generated], shape: str) -> None:
    documents = [document for document, _, _ in generated]
    if shape == "object":
        documents = documents[:1]
        generated = generated[:1]
        payload: object = documents[0]
    elif shape == "list":
        payload = documents
    else:
        payload = {"@context": "https://schema.org", "@graph": documents}
    lines = lines_of(parse_bytes(json.dumps(payload).encode(), "gen.json"))
    expected_lines = [(head, line) for _, head, expect in generated for line in expect]
    assert len(lines) == len(expected_lines)
    for number, (line, (head, expected)) in enumerate(zip(lines, expected_lines, strict=True), 1):
        assert line.retailer == head["retailer"]
        assert line.order_id == head["order_id"]
        assert line.ordered_at == head["ordered_at"]
        assert line.status is head["status"]
        assert line.currency == head["currency"]
        assert line.product_name == expected["product_name"]
        assert line.product_id == expected["product_id"]
        assert line.quantity == expected["quantity"]
        assert line.unit_price_minor == expected["minor"]
        assert line.line_number == number


# The line key ---------------------------------------------------------------------------

LETTERS = st.characters(categories=("Lu", "Ll", "Lt", "Nd"), exclude_characters="ᾷῇῷ")
SPACES = st.text(alphabet=" \t\n\u00a0", min_size=1, max_size=3)


@st.composite
def respelled(draw: st.DrawFn, words: list[str]) -> str:
    """``words`` with each character's case changed at random and other spacing."""
    changed = [
        "".join(draw(st.sampled_from([c, c.upper(), c.lower()])) for c in word) for word in words
    ]
    lead, trail = draw(st.sampled_from(["", " ", "\t"])), draw(st.sampled_from(["", "  "]))
    return lead + "".join(word + draw(SPACES) for word in changed[:-1]) + changed[-1] + trail


def key_of(merchant: str, name: str, sku: str | None) -> str:
    product: dict[str, object] = {"name": name}
    if sku is not None:
        product["sku"] = sku
    offer = {"itemOffered": product, "price": "2.50", "priceCurrency": "EUR"}
    document = order(merchant={"name": merchant}, acceptedOffer=offer)
    (line,) = lines_of(parse_bytes(json.dumps(document).encode()))
    return line.line_key


@given(
    st.lists(st.text(alphabet=LETTERS, min_size=1, max_size=6), min_size=1, max_size=4),
    st.data(),
)
def test_line_key_ignores_case_spacing_and_sku(words: list[str], data: st.DataObject) -> None:
    name = " ".join(words)
    first = key_of("Acme Store", name, data.draw(st.none() | WORD))
    second = key_of(
        data.draw(respelled(["Acme", "Store"])),
        data.draw(respelled(words)),
        data.draw(st.none() | WORD),
    )
    assert first == second
    assert key_of("Acme Store", name + " Plus", None) != first
