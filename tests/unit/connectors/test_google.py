"""Google Takeout "Purchases & Reservations" order files."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.formats import parser
from connectors.google import TakeoutOrder, micros_to_minor, status_of, usec_to_datetime
from connectors.jsondoc import MAX_DOCUMENT_BYTES
from connectors.lines import HEAD_BYTES, LineStatus, ParseError, PurchaseLine

FIXTURES = Path(__file__).parent / "fixtures" / "google"
PARSER = TakeoutOrder()


def parse_bytes(data: bytes, source: str = "order_1.json") -> list[PurchaseLine | ParseError]:
    return list(PARSER.parse(io.BytesIO(data), source))


def parse_fixture(name: str) -> list[PurchaseLine | ParseError]:
    with (FIXTURES / name).open("rb") as stream:
        return list(PARSER.parse(stream, name))


def lines_of(results: list[PurchaseLine | ParseError]) -> list[PurchaseLine]:
    assert all(isinstance(result, PurchaseLine) for result in results), results
    return [result for result in results if isinstance(result, PurchaseLine)]


def takeout(**fields: object) -> dict[str, object]:
    document: dict[str, object] = {
        "purchaseOrderId": "GPA.1",
        "transactionMerchant": {"name": "Google Play"},
        "creationTime": {"usecSinceEpochUtc": "1700000000000000"},
        "lineItem": [
            {
                "purchase": {
                    "productInfo": {"name": "Album", "productId": "al-1"},
                    "unitPrice": {"amountMicros": "9990000", "currencyCode": "USD"},
                }
            }
        ],
    }
    document.update(fields)
    return document


def test_the_table_of_formats_names_the_parser() -> None:
    found = parser("google-takeout")
    assert isinstance(found, TakeoutOrder)
    assert found.name == "google-takeout"


def test_an_order_in_dollars() -> None:
    case, charger, protector = lines_of(parse_fixture("order_usd.json"))
    assert case == PurchaseLine(
        retailer="Google Store",
        order_id="GPA.3301-7788-9911-22334",
        line_key='["google store", "gpa.3301-7788-9911-22334", "product", "GA04321"]',
        ordered_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        product_name="Pixel Phone Case",
        product_id="GA04321",
        category=None,
        quantity=2,
        unit_price_minor=2175,
        currency="USD",
        status=LineStatus.SHIPPED,
        source="order_usd.json",
        line_number=1,
    )
    # no productId: keyed by position; micros as a JSON number; quantity as a string;
    # no status of its own: the order's (COMPLETED)
    assert charger.product_id is None
    assert charger.line_key == '["google store", "gpa.3301-7788-9911-22334", "line", "2"]'
    assert (charger.unit_price_minor, charger.quantity, charger.currency) == (2999, 1, "USD")
    assert charger.status is LineStatus.SHIPPED
    # currencyCode as {"code": ...}, quantity absent
    assert (protector.unit_price_minor, protector.quantity) == (1000, 1)  # 9.995 half-even
    assert protector.status is LineStatus.REFUNDED
    assert len({case.line_key, charger.line_key, protector.line_key}) == 3


def test_an_order_in_yen() -> None:
    puzzle, hints = lines_of(parse_fixture("order_jpy.json"))
    assert (puzzle.currency, puzzle.unit_price_minor) == ("JPY", 1500)
    assert hints.unit_price_minor == 120  # 120.5 yen, half-even
    assert puzzle.ordered_at == datetime(2010, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert puzzle.status is hints.status is LineStatus.ORDERED
    # the same productId on two lines: two keys
    assert puzzle.product_id == hints.product_id
    assert puzzle.line_key != hints.line_key


def test_a_line_without_unit_price_is_an_error_for_that_line_only() -> None:
    results = parse_fixture("order_missing_price.json")
    good = {r.line_number: r.product_name for r in results if isinstance(r, PurchaseLine)}
    errors = {r.line_number: r.message for r in results if isinstance(r, ParseError)}
    assert good == {1: "Coffee Beans", 8: "Kettle"}
    assert set(errors) == {2, 4, 5, 6, 7}  # 3 is a reservation, passed over
    assert "unitPrice" in errors[2]
    assert "quantity" in errors[4]
    assert "name" in errors[5]
    assert "amountMicros" in errors[6]
    assert "not an object" in errors[7]
    assert all(message.startswith("order GPA.5555-0000-1111-22222") for message in errors.values())


def test_an_order_of_reservations_only_is_an_error() -> None:
    (error,) = parse_fixture("order_reservation.json")
    assert isinstance(error, ParseError)
    assert "reservation" in error.message


def test_an_order_without_creation_time_is_an_error() -> None:
    (error,) = parse_fixture("order_no_time.json")
    assert isinstance(error, ParseError)
    assert "creationTime" in error.message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"transactionMerchant": "Google"}, "transactionMerchant"),
        ({"purchaseOrderId": None}, "purchaseOrderId"),
        ({"creationTime": {"usecSinceEpochUtc": "soon"}}, "usecSinceEpochUtc"),
        ({"creationTime": {"usecSinceEpochUtc": str(10**20)}}, "out of range"),
        ({"lineItem": {"purchase": {}}}, "lineItem"),
        ({"lineItem": []}, "lineItem"),
    ],
)
def test_order_errors(fields: dict[str, object], message: str) -> None:
    (error,) = parse_bytes(json.dumps(takeout(**fields)).encode())
    assert isinstance(error, ParseError)
    assert error.line_number == 1
    assert message in error.message


def test_a_list_of_orders_continues_the_numbering() -> None:
    second = takeout(purchaseOrderId="GPA.2")
    results = parse_bytes(json.dumps([takeout(), "junk", second]).encode())
    assert [(type(r).__name__, r.line_number) for r in results] == [
        ("PurchaseLine", 1),
        ("ParseError", 2),
        ("PurchaseLine", 3),
    ]


@pytest.mark.parametrize(
    ("micros", "currency", "minor"),
    [
        (21_750_000, "USD", 2175),
        (1_500_000_000, "JPY", 1500),
        (120_500_000, "JPY", 120),
        (121_500_000, "JPY", 122),
        (1_234_500, "KWD", 1234),
        (-10_680_000, "USD", -1068),
        (0, "EUR", 0),
        (10**30 + 10_000, "USD", 10**26 + 1),
    ],
)
def test_micros_to_minor(micros: int, currency: str, minor: int) -> None:
    assert micros_to_minor(micros, currency) == minor


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["USD", "JPY", "KWD"]))
def test_whole_minor_units_survive_micros(minor: int, currency: str) -> None:
    exponent = {"USD": 2, "JPY": 0, "KWD": 3}[currency]
    assert micros_to_minor(minor * 10 ** (6 - exponent), currency) == minor


def test_usec_since_epoch() -> None:
    assert usec_to_datetime("1700000000000000") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert usec_to_datetime(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert usec_to_datetime("-1000000") == datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(ValueError, match="whole number"):
        usec_to_datetime("1.5e15x")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("ACCEPTED", LineStatus.ORDERED),
        ("in transit", LineStatus.SHIPPED),
        ("Delivered", LineStatus.SHIPPED),
        ({"status": "FULFILLED", "label": "Your order has been fulfilled."}, LineStatus.SHIPPED),
        ("CANCELED", LineStatus.CANCELLED),
        ("RETURNED", LineStatus.RETURNED),
        ("REFUNDED", LineStatus.REFUNDED),
        ("UNFULFILLED", None),
        ("PARTIALLY_REFUNDED", None),
        (7, None),
    ],
)
def test_statuses(raw: object, status: LineStatus | None) -> None:
    assert status_of(raw) is status


def test_invalid_json_is_a_parse_error() -> None:
    (error,) = parse_fixture("invalid.json")
    assert isinstance(error, ParseError)
    assert "not valid JSON" in error.message


def test_a_binary_file_is_refused_without_crashing() -> None:
    data = (FIXTURES / "binary.bin").read_bytes()
    assert not PARSER.detect(data)
    (error,) = parse_fixture("binary.bin")
    assert isinstance(error, ParseError)


def test_non_utf8_is_refused() -> None:
    data = json.dumps(takeout(), ensure_ascii=False).replace("Album", "Caf\u00e9").encode("latin-1")
    assert PARSER.detect(data)
    (error,) = parse_bytes(data)
    assert isinstance(error, ParseError)
    assert "UTF-8" in error.message


@given(st.binary(max_size=2048))
def test_any_bytes_are_detected_and_parsed_without_crashing(data: bytes) -> None:
    assert isinstance(PARSER.detect(data), bool)
    results = parse_bytes(data)
    assert all(isinstance(result, PurchaseLine | ParseError) for result in results)


def test_deep_nesting_is_a_parse_error() -> None:
    (error,) = parse_bytes(b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(error, ParseError)


def test_a_document_above_the_bound_is_refused() -> None:
    body = json.dumps(takeout()).encode()
    stream = io.BytesIO(body + b" " * MAX_DOCUMENT_BYTES)
    (error,) = PARSER.parse(stream, "big.json")
    assert isinstance(error, ParseError)
    assert "larger than" in error.message
    assert stream.tell() <= MAX_DOCUMENT_BYTES + 1


@pytest.mark.parametrize(
    "name", ["order_usd.json", "order_jpy.json", "order_missing_price.json", "invalid.json"]
)
def test_detects_its_fixtures(name: str) -> None:
    assert PARSER.detect((FIXTURES / name).read_bytes()[:HEAD_BYTES])


def test_detects_the_start_of_a_large_order() -> None:
    items = takeout()["lineItem"]
    assert isinstance(items, list)
    data = json.dumps(takeout(lineItem=items * 2000)).encode()
    assert len(data) > HEAD_BYTES
    assert PARSER.detect(data[:HEAD_BYTES])


@pytest.mark.parametrize(
    "head",
    [
        b'{"@type": "Order", "orderNumber": "1"}',
        b'{"wrapper": {"purchaseOrderId": "1", "lineItem": []}}',
        b'["purchaseOrderId", "lineItem"]',
        b"purchaseOrderId,lineItem\n1,2\n",
        b"",
    ],
)
def test_does_not_detect_other_documents(head: bytes) -> None:
    assert not PARSER.detect(head)


# Generated orders round-trip ------------------------------------------------------------

CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0, "BHD": 3}
TEXT = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S"), exclude_characters="\x00"),
    min_size=1,
    max_size=20,
).filter(lambda text: text == " ".join(text.split()))


@st.composite
def takeout_orders(draw: st.DrawFn) -> tuple[dict[str, object], list[dict[str, object]]]:
    count = draw(st.integers(min_value=1, max_value=5))
    items: list[dict[str, object]] = []
    expected: list[dict[str, object]] = []
    for _ in range(count):
        currency = draw(st.sampled_from(sorted(CURRENCIES)))
        minor = draw(st.integers(min_value=0, max_value=10**12))
        micros = minor * 10 ** (6 - CURRENCIES[currency])
        quantity = draw(st.integers(min_value=1, max_value=10**4))
        product_id = draw(st.none() | TEXT)
        info: dict[str, object] = {"name": draw(TEXT)}
        if product_id is not None:
            info["productId"] = product_id
        items.append(
            {
                "purchase": {
                    "productInfo": info,
                    "quantity": draw(st.sampled_from([quantity, str(quantity)])),
                    "unitPrice": {
                        "amountMicros": draw(st.sampled_from([micros, str(micros)])),
                        "currencyCode": draw(st.sampled_from([currency, {"code": currency}])),
                    },
                }
            }
        )
        expected.append(
            {
                "name": info["name"],
                "product_id": product_id,
                "quantity": quantity,
                "minor": minor,
                "currency": currency,
            }
        )
    usec = draw(st.integers(min_value=0, max_value=4_102_444_800_000_000))
    document = takeout(
        purchaseOrderId=draw(TEXT),
        transactionMerchant={"name": draw(TEXT)},
        creationTime={"usecSinceEpochUtc": str(usec)},
        lineItem=items,
    )
    return document, expected


@given(takeout_orders())
def test_generated_orders_round_trip(
    generated: tuple[dict[str, object], list[dict[str, object]]],
) -> None:
    document, expected = generated
    lines = lines_of(parse_bytes(json.dumps(document).encode()))
    merchant = document["transactionMerchant"]
    assert isinstance(merchant, dict)
    usec = int(document["creationTime"]["usecSinceEpochUtc"])  # type: ignore[index]
    assert len(lines) == len(expected)
    for number, (line, want) in enumerate(zip(lines, expected, strict=True), start=1):
        assert line.retailer == merchant["name"]
        assert line.order_id == document["purchaseOrderId"]
        assert line.product_name == want["name"]
        assert line.product_id == want["product_id"]
        assert line.quantity == want["quantity"]
        assert line.unit_price_minor == want["minor"]
        assert line.currency == want["currency"]
        assert line.line_number == number
        delta = line.ordered_at - datetime(1970, 1, 1, tzinfo=UTC)
        assert delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds == usec
    assert len({line.line_key for line in lines}) == len(lines)
