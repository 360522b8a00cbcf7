"""Shopify's admin orders export: fixtures with each of its quirks, a round trip, streaming."""

from __future__ import annotations

import csv
import io
import tracemalloc
from dataclasses import astuple
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import formats
from connectors.lines import HEAD_BYTES, LineStatus, ParseError, PurchaseLine
from connectors.money import exponent
from connectors.shopify import HEADER, OrdersExport, utc_time

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"
PERSONAL = [
    column
    for column in HEADER
    if (column.startswith(("Billing ", "Shipping ")) and column != "Shipping Method")
    or column in {"Email", "Phone", "Notes", "Note Attributes"}
]


def parse(name: str, parser: OrdersExport | None = None) -> list[PurchaseLine | ParseError]:
    with (FIXTURES / name).open("rb") as stream:
        return list((parser or OrdersExport()).parse(stream, name))


def parse_bytes(data: bytes, parser: OrdersExport | None = None) -> list[PurchaseLine | ParseError]:
    return list((parser or OrdersExport()).parse(io.BytesIO(data), "orders_export.csv"))


def lines_of(items: list[PurchaseLine | ParseError]) -> list[PurchaseLine]:
    return [item for item in items if isinstance(item, PurchaseLine)]


def errors_of(items: list[PurchaseLine | ParseError]) -> list[ParseError]:
    return [item for item in items if isinstance(item, ParseError)]


def raw_rows(name: str) -> list[dict[str, str]]:
    with (FIXTURES / name).open(encoding="utf-8-sig", newline="") as text:
        return list(csv.DictReader(text))


def export(rows: list[dict[str, str]], terminator: str = "\n") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow([row.get(column, "") for column in HEADER])
    return out.getvalue().encode("utf-8")


def one_order(**fields: str) -> dict[str, str]:
    row = {
        "Name": "#1",
        "Currency": "USD",
        "Created at": "2025-12-07 19:08:25 +0000",
        "Financial Status": "paid",
        "Lineitem quantity": "1",
        "Lineitem name": "Thing",
        "Lineitem price": "1.00",
    }
    row.update(fields)
    return row


def test_the_header_is_shopifys_79_columns() -> None:
    assert len(HEADER) == 79
    assert len(set(HEADER)) == 79
    first_line = (FIXTURES / "orders_export.csv").read_text(encoding="utf-8").split("\n")[0]
    assert first_line == ",".join(HEADER)
    assert first_line.startswith(
        "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,"
        "Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,"
        "Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,"
        "Lineitem sku,Lineitem requires shipping,Lineitem taxable,Lineitem fulfillment status,"
        "Billing Name,"
    )


def test_the_export_s_lines() -> None:
    items = parse("orders_export.csv")
    assert errors_of(items) == []
    got = [
        (
            line.line_number,
            line.order_id,
            line.line_key,
            line.ordered_at,
            line.product_name,
            line.product_id,
            line.quantity,
            line.unit_price_minor,
            line.currency,
            line.status,
        )
        for line in lines_of(items)
    ]
    at_1001 = datetime(2025, 12, 7, 19, 8, 25, tzinfo=UTC)
    at_1002 = datetime(2025, 12, 7, 22, 10, tzinfo=UTC)  # 02:10 at +0400
    at_1003 = datetime(2025, 12, 9, 8, 0, tzinfo=UTC)
    at_1004 = datetime(2025, 12, 10, 14, 30, tzinfo=UTC)  # 23:30 at +0900
    shipped, ordered = LineStatus.SHIPPED, LineStatus.ORDERED
    assert got == [
        # The first row's Note Attributes spans lines 2 to 4.
        (
            2,
            "#1001",
            "#1001:1",
            at_1001,
            "Linen Tea Towel - Blue",
            "TT-BLUE",
            2,
            1250,
            "USD",
            shipped,
        ),
        (5, "#1001", "#1001:2", at_1001, '=HYPERLINK("x")', None, 1, 900, "USD", shipped),
        (6, "#1001", "#1001:3", at_1001, "Enamel Mug, 350 ml", "MUG-350", 1, 1250, "USD", shipped),
        (
            7,
            "#1002",
            "#1002:1",
            at_1002,
            "Beeswax Candle",
            "CANDLE-1",
            3,
            1000,
            "USD",
            LineStatus.REFUNDED,
        ),
        (
            8,
            "#1003",
            "#1003:1",
            at_1003,
            "Wool Throw",
            "THROW-1",
            1,
            8900,
            "USD",
            LineStatus.CANCELLED,
        ),
        (
            9,
            "#1003",
            "#1003:2",
            at_1003,
            "Cushion Cover",
            "CUSH-2",
            2,
            1999,
            "USD",
            LineStatus.CANCELLED,
        ),
        # Partially refunded, partially fulfilled: each line keeps its own fulfillment.
        (10, "#1004", "#1004:1", at_1004, "Hinoki Soap", "SOAP-H", 2, 1500, "JPY", shipped),
        (11, "#1004", "#1004:2", at_1004, "Tenugui Cloth", "TENUGUI", 1, 1200, "JPY", ordered),
    ]
    assert {(line.retailer, line.source, line.category) for line in lines_of(items)} == {
        ("Shopify store", "orders_export.csv", None)
    }


def test_the_fixture_writes_order_fields_on_first_rows_only() -> None:
    """What the carried fields above are carried from: the fixture as Shopify writes it."""
    rows = raw_rows("orders_export.csv")
    assert [row["Name"] for row in rows] == ["#1001"] * 3 + ["#1002"] + ["#1003"] * 2 + [
        "#1004"
    ] * 2
    for index in (1, 2, 5, 7):
        assert rows[index]["Currency"] == rows[index]["Created at"] == ""
        assert rows[index]["Financial Status"] == rows[index]["Cancelled at"] == ""
    assert "\n" in rows[0]["Note Attributes"]
    assert rows[1]["Lineitem name"].startswith("=")
    text = (FIXTURES / "orders_export.csv").read_text(encoding="utf-8")
    assert "+0400" in text
    assert "+0000" in text


def test_crlf_and_a_byte_order_mark_read_as_lf_without() -> None:
    lf = (FIXTURES / "orders_export.csv").read_bytes()
    crlf = (FIXTURES / "orders_export_crlf_bom.csv").read_bytes()
    assert crlf.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in crlf
    assert not lf.startswith(b"\xef\xbb\xbf")
    assert b"\r" not in lf
    got = [astuple(line)[:-2] for line in lines_of(parse("orders_export_crlf_bom.csv"))]
    expected = [astuple(line)[:-2] for line in lines_of(parse("orders_export.csv"))]
    assert len(got) == 8
    assert got == expected
    assert [line.line_number for line in lines_of(parse("orders_export_crlf_bom.csv"))] == [
        2, 5, 6, 7, 8, 9, 10, 11
    ]  # fmt: skip


def test_personal_fields_are_in_no_field_of_any_line() -> None:
    rows = raw_rows("orders_export.csv")
    personal = {row[column] for row in rows for column in PERSONAL if len(row[column]) > 2}
    assert "Ada Lovelace" in personal
    assert "customer1@example.org" in personal
    lines = lines_of(parse("orders_export.csv"))
    assert lines
    for line in lines:
        for value in astuple(line):
            if isinstance(value, str):
                for secret in personal:
                    assert secret not in value


@pytest.mark.parametrize(
    ("name", "detected"),
    [
        ("orders_export.csv", True),
        ("orders_export_crlf_bom.csv", True),
        ("orders_export_utf16.csv", False),
        ("amazon_retail_order_history.csv", False),
        ("empty.csv", False),
    ],
)
def test_detection(name: str, detected: bool) -> None:
    head = (FIXTURES / name).read_bytes()[:HEAD_BYTES]
    assert OrdersExport().detect(head) is detected


def test_detection_of_what_is_not_an_export() -> None:
    parser = OrdersExport()
    assert not parser.detect(b"")
    assert not parser.detect(b"\n\n")
    assert not parser.detect(b"\xff\xfe\x00\x01garbage")
    assert not parser.detect(",".join(HEADER).encode("utf-16-le"))
    assert not parser.detect(",".join(HEADER[1:]).encode())  # Name not first
    assert not parser.detect(b'Name,"Email\n')  # a header the CSV reader refuses
    assert parser.detect(",".join(HEADER).encode() + b"\r\n#1001,")


def test_the_table_of_formats_names_it() -> None:
    assert isinstance(formats.parser("shopify"), OrdersExport)
    assert formats.parser("shopify").name == "shopify"


def test_the_retailer_is_given() -> None:
    lines = lines_of(parse("orders_export.csv", OrdersExport("Tea & Towels")))
    assert {line.retailer for line in lines} == {"Tea & Towels"}
    assert OrdersExport().retailer == "Shopify store"
    with pytest.raises(ValueError, match="retailer"):
        OrdersExport("  ")


def test_a_truncated_quoted_field_is_an_error_and_the_rest_is_kept() -> None:
    items = parse("truncated_quoted_field.csv")
    assert [line.product_name for line in lines_of(items)] == ["Kept"]
    [error] = errors_of(items)
    assert error.line_number == 3
    assert "unexpected end of data" in error.message
    assert error.source == "truncated_quoted_field.csv"


def test_a_row_with_the_wrong_column_count_is_an_error_and_the_rest_is_kept() -> None:
    items = parse("wrong_column_count.csv")
    assert [(line.line_number, line.line_key) for line in lines_of(items)] == [
        (2, "#2001:1"),
        (4, "#2002:1"),
    ]
    [error] = errors_of(items)
    assert error.line_number == 3
    assert "78 columns" in error.message
    assert "79" in error.message


def test_a_utf16_file_is_an_error_not_a_crash() -> None:
    data = (FIXTURES / "orders_export_utf16.csv").read_bytes()
    assert data.startswith(b"\xff\xfe")
    items = parse("orders_export_utf16.csv")
    assert items
    assert lines_of(items) == []
    assert "UTF-8" in errors_of(items)[0].message
    without_mark = (FIXTURES / "orders_export.csv").read_text(encoding="utf-8").encode("utf-16-le")
    items = parse_bytes(without_mark)
    assert lines_of(items) == []
    assert errors_of(items)


def test_a_latin1_row_is_an_error_and_the_rest_is_kept() -> None:
    items = parse("latin1_row.csv")
    assert [line.product_name for line in lines_of(items)] == ["Plain", "Also plain"]
    [error] = errors_of(items)
    assert error.line_number == 3
    assert "UTF-8" in error.message
    # The line after keeps its place in the order.
    assert [line.line_key for line in lines_of(items)] == ["#4001:1", "#4001:3"]


def test_rows_of_an_order_whose_fields_cannot_be_read_are_errors() -> None:
    items = parse("order_fields_missing.csv")
    assert [line.line_key for line in lines_of(items)] == ["#5001:1"]
    errors = errors_of(items)
    assert [error.line_number for error in errors] == [3, 4, 5, 6]
    assert all("Created at" in error.message for error in errors)
    assert "#5002" in errors[1].message
    assert "line 3" in errors[1].message
    assert "yesterday" in errors[2].message


def test_an_empty_file_and_another_retailers_file() -> None:
    [empty] = parse("empty.csv")
    assert isinstance(empty, ParseError)
    assert "empty" in empty.message
    [other] = parse("amazon_retail_order_history.csv")
    assert isinstance(other, ParseError)
    assert "not a Shopify orders export" in other.message
    assert "Lineitem name" in other.message


def test_a_header_only_export_has_no_lines() -> None:
    assert parse_bytes(",".join(HEADER).encode() + b"\n") == []


@pytest.mark.parametrize(
    ("fields", "column"),
    [
        ({"Lineitem quantity": "two"}, "Lineitem quantity"),
        ({"Lineitem quantity": "0"}, "Lineitem quantity"),
        ({"Lineitem quantity": "\u0663"}, "Lineitem quantity"),  # an Arabic-Indic three
        ({"Lineitem quantity": "1" * 5000}, "Lineitem quantity"),
        ({"Created at": "9999-12-31 23:59:59 -0100"}, "out of range"),
        ({"Lineitem price": "free"}, "Lineitem price"),
        ({"Lineitem name": " "}, "Lineitem name"),
        ({"Currency": "dollars"}, "Currency"),
        ({"Created at": "2025-12-07 19:08:25"}, "offset"),
        ({"Name": ""}, "Name"),
    ],
)
def test_a_cell_that_cannot_be_read_is_an_error(fields: dict[str, str], column: str) -> None:
    good = one_order(Name="#2", **{"Lineitem name": "Good"})
    [error, line] = parse_bytes(export([one_order(**fields), good]))
    assert isinstance(error, ParseError)
    assert error.line_number == 2
    assert column in error.message
    assert isinstance(line, PurchaseLine)
    assert line.product_name == "Good"


@pytest.mark.parametrize(
    ("financial", "fulfillment", "line_fulfillment", "cancelled", "status"),
    [
        ("paid", "fulfilled", "", "", LineStatus.SHIPPED),
        ("paid", "", "fulfilled", "", LineStatus.SHIPPED),
        ("paid", "partial", "pending", "", LineStatus.ORDERED),
        ("paid", "unfulfilled", "", "", LineStatus.ORDERED),
        ("pending", "", "", "", LineStatus.ORDERED),
        ("refunded", "fulfilled", "fulfilled", "", LineStatus.REFUNDED),
        ("partially_refunded", "fulfilled", "fulfilled", "", LineStatus.SHIPPED),
        ("partially_refunded", "", "", "", LineStatus.ORDERED),
        ("Refunded", "", "", "", LineStatus.REFUNDED),
        ("voided", "", "", "", LineStatus.CANCELLED),
        ("refunded", "", "", "2025-12-09 10:00:00 +0000", LineStatus.CANCELLED),
        ("paid", "fulfilled", "fulfilled", "2025-12-09 10:00:00 +0000", LineStatus.CANCELLED),
    ],
)
def test_statuses(
    financial: str, fulfillment: str, line_fulfillment: str, cancelled: str, status: LineStatus
) -> None:
    row = one_order(
        **{
            "Financial Status": financial,
            "Fulfillment Status": fulfillment,
            "Lineitem fulfillment status": line_fulfillment,
            "Cancelled at": cancelled,
        }
    )
    [line] = parse_bytes(export([row]))
    assert isinstance(line, PurchaseLine)
    assert line.status is status


@pytest.mark.parametrize(
    ("raw", "utc"),
    [
        ("2025-12-07 19:08:25 +0000", datetime(2025, 12, 7, 19, 8, 25, tzinfo=UTC)),
        ("2025-12-07 19:08:25 +0400", datetime(2025, 12, 7, 15, 8, 25, tzinfo=UTC)),
        ("2025-12-07 01:00:00 -0530", datetime(2025, 12, 7, 6, 30, tzinfo=UTC)),
        ("2025-12-07T19:08:25+04:00", datetime(2025, 12, 7, 15, 8, 25, tzinfo=UTC)),
        (" 2025-12-07 19:08:25 +0000 ", datetime(2025, 12, 7, 19, 8, 25, tzinfo=UTC)),
    ],
)
def test_times(raw: str, utc: datetime) -> None:
    got = utc_time(raw)
    assert got == utc
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "yesterday",
        "2025-12-07 19:08:25",
        "2025-13-07 19:08:25 +0000",
        "9999-12-31 23:59:59 -0100",
        "0001-01-01 00:00:00 +0100",
    ],
)
def test_what_is_not_a_time(raw: str) -> None:
    with pytest.raises(ValueError, match="time"):
        utc_time(raw)


def test_the_stream_is_left_open() -> None:
    with (FIXTURES / "orders_export.csv").open("rb") as stream:
        assert len(list(OrdersExport().parse(stream, "orders_export.csv"))) == 8
        assert not stream.closed
        stream.seek(0)
        assert stream.read(4) == b"Name"


# -- the round trip -------------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r"),
    min_size=1,
    max_size=20,
).filter(lambda text: text.strip() != "")
OFFSETS = st.sampled_from([timedelta(0), timedelta(hours=4), timedelta(hours=-5, minutes=-30)])
FINANCIAL = ["paid", "pending", "authorized", "refunded", "partially_refunded", "voided"]


@st.composite
def line_items(draw: st.DrawFn) -> dict[str, object]:
    return {
        "name": draw(TEXT),
        "sku": draw(st.one_of(st.just(""), TEXT)),
        "quantity": draw(st.integers(1, 10_000)),
        "price": draw(st.integers(0, 10**9)),
        "fulfillment": draw(st.sampled_from(["fulfilled", "pending", ""])),
    }


@st.composite
def orders(draw: st.DrawFn) -> dict[str, object]:
    created = draw(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))  # noqa: DTZ001
    ).replace(microsecond=0)
    return {
        "currency": draw(st.sampled_from(["USD", "EUR", "JPY", "KWD", "GBP"])),
        "created": created.replace(tzinfo=timezone(draw(OFFSETS))),
        "financial": draw(st.sampled_from(FINANCIAL)),
        "fulfillment": draw(st.sampled_from(["fulfilled", "partial", "unfulfilled", ""])),
        "cancelled": draw(st.booleans()),
        "notes": draw(st.one_of(st.just(""), TEXT)),
        "email": draw(TEXT),
        "items": draw(st.lists(line_items(), min_size=1, max_size=5)),
    }


def price_text(minor: int, currency: str) -> str:
    digits = exponent(currency)
    if digits == 0:
        return str(minor)
    return f"{minor // 10**digits}.{minor % 10**digits:0{digits}d}"


def expected_status(order: dict[str, object], line_fulfillment: object) -> LineStatus:
    if order["cancelled"] or order["financial"] == "voided":
        return LineStatus.CANCELLED
    if order["financial"] == "refunded":
        return LineStatus.REFUNDED
    if line_fulfillment == "fulfilled" or order["fulfillment"] == "fulfilled":
        return LineStatus.SHIPPED
    return LineStatus.ORDERED


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(orders(), min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_round_trip(generated: list[dict[str, object]], terminator: str, bom: bool) -> None:
    rows: list[dict[str, str]] = []
    expected: list[tuple[object, ...]] = []
    line_number = 2
    for number, order in enumerate(generated, start=1001):
        name = f"#{number}"
        items = order["items"]
        assert isinstance(items, list)
        created = order["created"]
        assert isinstance(created, datetime)
        currency = str(order["currency"])
        for position, item in enumerate(items, start=1):
            row = {
                "Name": name,
                "Lineitem quantity": str(item["quantity"]),
                "Lineitem name": str(item["name"]),
                "Lineitem price": price_text(item["price"], currency),
                "Lineitem sku": str(item["sku"]),
                "Lineitem fulfillment status": str(item["fulfillment"]),
            }
            if position == 1:
                row.update(
                    {
                        "Currency": currency,
                        "Created at": created.strftime("%Y-%m-%d %H:%M:%S %z"),
                        "Financial Status": str(order["financial"]),
                        "Fulfillment Status": str(order["fulfillment"]),
                        "Cancelled at": "2025-01-01 00:00:00 +0000" if order["cancelled"] else "",
                        "Note Attributes": str(order["notes"]),
                        "Email": str(order["email"]),
                    }
                )
            rows.append(row)
            expected.append(
                (
                    line_number,
                    name,
                    f"{name}:{position}",
                    created.astimezone(UTC),
                    str(item["name"]).strip(),
                    str(item["sku"]).strip() or None,
                    item["quantity"],
                    item["price"],
                    currency,
                    expected_status(order, item["fulfillment"]),
                )
            )
            line_number += 1 + sum(value.count("\n") for value in row.values())
    data = export(rows, terminator)
    if bom:
        data = b"\xef\xbb\xbf" + data
    assert OrdersExport().detect(data[:HEAD_BYTES])
    items = parse_bytes(data)
    assert errors_of(items) == []
    got = [
        (
            line.line_number,
            line.order_id,
            line.line_key,
            line.ordered_at,
            line.product_name,
            line.product_id,
            line.quantity,
            line.unit_price_minor,
            line.currency,
            line.status,
        )
        for line in lines_of(items)
    ]
    assert got == expected


# -- streaming ------------------------------------------------------------------------------

ROWS = 30_000


def write_big_export(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as text:
        writer = csv.writer(text)
        writer.writerow(HEADER)
        for index in range(ROWS):
            order, position = divmod(index, 4)
            row = {
                "Name": f"#{100000 + order}",
                "Lineitem quantity": "1",
                "Lineitem name": f"Product number {index} of the catalogue",
                "Lineitem price": "12.50",
                "Lineitem sku": f"SKU-{index:08d}",
                "Shipping Street": "12 Ockham Lane",
            }
            if position == 0:
                row.update(
                    {
                        "Currency": "USD",
                        "Created at": "2025-12-07 19:08:25 +0400",
                        "Financial Status": "paid",
                        "Fulfillment Status": "fulfilled",
                        "Note Attributes": "gift: no\nwrap: none",
                    }
                )
            writer.writerow([row.get(column, "") for column in HEADER])


def count_lines(stream: BinaryIO) -> tuple[int, int]:
    lines = errors = 0
    for item in OrdersExport().parse(stream, "big.csv"):
        if isinstance(item, PurchaseLine):
            lines += 1
        else:
            errors += 1
    return lines, errors


def test_a_large_export_is_streamed(tmp_path: Path) -> None:
    path = tmp_path / "orders_export.csv"
    write_big_export(path)
    assert path.stat().st_size > 4 * 2**20  # held at once, the file alone would pass the limit
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            lines, errors = count_lines(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (lines, errors) == (ROWS, 0)
    assert peak < 4 * 2**20


@given(st.binary(max_size=400), st.booleans())
def test_any_bytes_after_the_header_are_lines_or_errors(tail: bytes, header: bool) -> None:
    data = (",".join(HEADER).encode() + b"\n" if header else b"") + tail
    items = parse_bytes(data)
    assert all(isinstance(item, PurchaseLine | ParseError) for item in items)
    assert isinstance(OrdersExport().detect(data), bool)
    if not header:
        assert lines_of(items) == []
