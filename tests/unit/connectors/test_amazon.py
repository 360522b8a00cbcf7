"""Amazon's Retail.OrderHistory and legacy Items reports, from fixture files in their formats."""

from __future__ import annotations

import csv
import io
import re
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import formats
from connectors.amazon import (
    LEGACY_COLUMNS,
    RETAIL_COLUMNS,
    RETAIL_COLUMNS_2024,
    LegacyItems,
    RetailOrderHistory,
)
from connectors.lines import HEAD_BYTES, LineStatus, ParseError, Parser, PurchaseLine
from connectors.money import exponent

FIXTURES = Path(__file__).parent / "fixtures" / "amazon"
RETAIL = RetailOrderHistory()
LEGACY = LegacyItems()
#: Values of the fixtures' address, e-mail, payment and gift columns.
PERSONAL = (
    "Test Street",
    "Billing Road",
    "Springfield",
    "62701",
    "Happy birthday",
    "Sam Roe",
    "Gift Lane",
    "jane",
    "Jane Doe",
    "Visa",
)


def parse(parser: Parser, name: str) -> list[PurchaseLine | ParseError]:
    with (FIXTURES / name).open("rb") as stream:
        return list(parser.parse(stream, name))


def lines_of(results: list[PurchaseLine | ParseError]) -> list[PurchaseLine]:
    assert not [r for r in results if isinstance(r, ParseError)], results
    return [r for r in results if isinstance(r, PurchaseLine)]


def errors_of(results: list[PurchaseLine | ParseError]) -> list[ParseError]:
    return [r for r in results if isinstance(r, ParseError)]


# --- Detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "retail", "legacy"),
    [
        ("Retail.OrderHistory.1.csv", True, False),
        ("Retail.OrderHistory.2023.csv", True, False),
        ("legacy-items.csv", False, True),
        ("legacy-items-empty.csv", False, True),
        ("Retail.OrderHistory.utf16.csv", False, False),
        ("shopify-orders.csv", False, False),
        ("empty.csv", False, False),
    ],
)
def test_detection_reads_the_header(name: str, retail: bool, legacy: bool) -> None:
    head = (FIXTURES / name).read_bytes()[:HEAD_BYTES]
    assert RETAIL.detect(head) is retail
    assert LEGACY.detect(head) is legacy


def test_detection_needs_every_column_of_the_format() -> None:
    header = ",".join(f'"{c}"' for c in RETAIL_COLUMNS if c != "Unit Price").encode()
    assert not RETAIL.detect(header + b"\r\n")
    assert RETAIL.detect(",".join(RETAIL_COLUMNS).encode())  # a head with no line end yet
    assert not LEGACY.detect(",".join(LEGACY_COLUMNS).encode("utf-16"))
    assert not RETAIL.detect(b"\xff\xfe\x00\x00garbage\n")


def test_the_table_of_formats_finds_both_parsers() -> None:
    retail, legacy = formats.parser("amazon-retail"), formats.parser("amazon-legacy")
    assert isinstance(retail, RetailOrderHistory)
    assert retail.name == "amazon-retail"
    assert isinstance(legacy, LegacyItems)
    assert legacy.name == "amazon-legacy"
    assert retail.description != legacy.description


# --- Retail.OrderHistory ---------------------------------------------------------------------


def test_a_2024_file_with_bom_and_crlf() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))
    assert [line.order_id for line in lines] == [
        "111-0000001-0000001",
        "111-0000002-0000002",
        "111-0000002-0000002",
        "111-0000003-0000003",
        "111-0000004-0000004",
        "302-0000005-0000005",
        "111-0000006-0000006",
        "111-0000007-0000007",
    ]
    first = lines[0]
    assert first == PurchaseLine(
        retailer="Amazon.com",
        order_id="111-0000001-0000001",
        line_key=first.line_key,
        ordered_at=datetime(2024, 3, 5, 18, 22, 41, tzinfo=UTC),
        product_name='USB-C Cable 6" (2-Pack), Braided',  # doubled quotes undone
        product_id="B0TESTAAA1",
        category=None,
        quantity=1,
        unit_price_minor=1999,  # Unit Price, not Total Owed nor a discounted price
        currency="USD",
        status=LineStatus.SHIPPED,
        source="Retail.OrderHistory.1.csv",
        line_number=2,
    )
    assert re.fullmatch(r"[0-9a-f]{64}", first.line_key)


def test_times_with_and_without_milliseconds_are_utc() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))
    assert lines[0].ordered_at == datetime(2024, 3, 5, 18, 22, 41, tzinfo=UTC)
    assert lines[1].ordered_at == datetime(2024, 4, 1, 8, 15, 30, 123000, tzinfo=UTC)
    assert lines[4].ordered_at == datetime(2024, 6, 1, 7, 5, 9, 870000, tzinfo=UTC)
    assert all(line.ordered_at.utcoffset() == timedelta(0) for line in lines)


def test_a_product_shipped_in_two_parts_is_two_lines_with_their_own_keys() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))
    parts = [line for line in lines if line.order_id == "111-0000002-0000002"]
    assert [(p.product_id, p.quantity, p.unit_price_minor) for p in parts] == [
        ("B0TESTBBB2", 2, 500),
        ("B0TESTBBB2", 1, 500),
    ]  # the Shipment Item Subtotal (15.00) on both rows is not a price
    assert parts[0].line_key != parts[1].line_key
    keys = [line.line_key for line in lines]
    assert len(set(keys)) == len(keys)


def test_keys_are_stable_between_reads() -> None:
    first = [line.line_key for line in lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))]
    again = [line.line_key for line in lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))]
    assert first == again


def test_a_cancelled_row_is_kept_with_quantity_zero() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))
    cancelled = lines[3]
    assert (cancelled.status, cancelled.quantity) == (LineStatus.CANCELLED, 0)
    assert cancelled.unit_price_minor == 1250
    assert cancelled.product_name == "Desk Lamp"


def test_statuses_and_placeholders() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))
    assert [line.status for line in lines] == [
        LineStatus.SHIPPED,
        LineStatus.SHIPPED,
        LineStatus.SHIPPED,
        LineStatus.CANCELLED,
        LineStatus.SHIPPED,
        LineStatus.SHIPPED,
        LineStatus.ORDERED,  # "New", shipment "Not Available"
        LineStatus.RETURNED,
    ]
    assert all(
        "Not Available" not in str(getattr(line, f.name)) for line in lines for f in fields(line)
    )


def test_an_isbn_in_the_asin_column_is_the_product_id() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))
    assert lines[4].product_id == "9780140449136"
    assert lines_of(parse(RETAIL, "Retail.OrderHistory.2023.csv"))[0].product_id == "4003101014"


def test_the_currency_and_site_of_each_row() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))
    german = lines[5]
    assert (german.retailer, german.currency, german.unit_price_minor) == ("Amazon.de", "EUR", 849)
    assert german.product_name == "Kaffee, gemahlen\n500 g"
    # The product name holds a line break: the next row starts two physical lines later.
    assert (german.line_number, lines[6].line_number, lines[7].line_number) == (7, 9, 10)


def test_a_formula_looking_cell_is_plain_text() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.1.csv"))
    assert lines[6].product_name == '=HYPERLINK("x")'


def test_a_2023_file_without_serial_numbers_and_with_lf() -> None:
    lines = lines_of(parse(RETAIL, "Retail.OrderHistory.2023.csv"))
    japan, laptop = lines
    assert (japan.retailer, japan.currency, japan.unit_price_minor) == ("Amazon.co.jp", "JPY", 1500)
    assert japan.ordered_at == datetime(2023, 2, 11, 3, 4, 5, tzinfo=UTC)
    assert (laptop.unit_price_minor, laptop.status) == (129900, LineStatus.ORDERED)
    assert laptop.ordered_at == datetime(2023, 11, 24, 16, tzinfo=UTC)
    assert [line.line_number for line in lines] == [2, 3]


@pytest.mark.parametrize(
    "name", ["Retail.OrderHistory.1.csv", "Retail.OrderHistory.2023.csv", "legacy-items.csv"]
)
def test_personal_columns_are_never_read(name: str) -> None:
    parser: Parser = LEGACY if name.startswith("legacy") else RETAIL
    lines = lines_of(parse(parser, name))
    assert lines
    for line in lines:
        for field in fields(line):
            value = str(getattr(line, field.name))
            assert not [p for p in PERSONAL if p in value], (field.name, value)


def test_a_truncated_quoted_field_at_the_end_is_an_error() -> None:
    results = parse(RETAIL, "Retail.OrderHistory.truncated.csv")
    assert isinstance(results[0], PurchaseLine)
    assert results[0].line_number == 2
    assert len(results) == 2
    error = results[1]
    assert isinstance(error, ParseError)
    assert (error.source, error.line_number) == ("Retail.OrderHistory.truncated.csv", 3)


def test_a_row_with_the_wrong_number_of_columns_is_an_error_and_reading_goes_on() -> None:
    results = parse(RETAIL, "Retail.OrderHistory.wrong-columns.csv")
    assert len(results) == 2
    error, line = results
    assert isinstance(error, ParseError)
    assert error.line_number == 2
    assert "27" in error.message
    assert isinstance(line, PurchaseLine)
    assert line.line_number == 3


def test_a_utf16_file_is_one_clear_error() -> None:
    results = parse(RETAIL, "Retail.OrderHistory.utf16.csv")
    assert len(results) == 1
    error = results[0]
    assert isinstance(error, ParseError)
    assert error.line_number == 1
    assert "UTF-8" in error.message
    assert errors_of(parse(LEGACY, "Retail.OrderHistory.utf16.csv"))


def test_a_latin1_row_is_an_error_and_the_next_row_is_read() -> None:
    results = parse(RETAIL, "Retail.OrderHistory.latin1.csv")
    assert len(results) == 2
    error, line = results
    assert isinstance(error, ParseError)
    assert error.line_number == 2
    assert "UTF-8" in error.message
    assert isinstance(line, PurchaseLine)
    assert (line.line_number, line.quantity) == (3, 1)


@pytest.mark.parametrize(
    ("parser", "name"),
    [
        (RETAIL, "legacy-items.csv"),
        (LEGACY, "Retail.OrderHistory.1.csv"),
        (RETAIL, "shopify-orders.csv"),
    ],
)
def test_another_format_given_to_a_parser_is_one_error_at_the_header(
    parser: Parser, name: str
) -> None:
    results = parse(parser, name)
    assert len(results) == 1
    assert isinstance(results[0], ParseError)
    assert results[0].line_number == 1
    assert "not the header" in results[0].message


def test_an_empty_file_yields_nothing() -> None:
    assert parse(RETAIL, "empty.csv") == []
    assert parse(LEGACY, "empty.csv") == []


def test_the_callers_stream_stays_open() -> None:
    with (FIXTURES / "Retail.OrderHistory.1.csv").open("rb") as stream:
        assert len(list(RETAIL.parse(stream, "x"))) == 8
        assert not stream.closed


# --- Rows that cannot be read, one at a time -------------------------------------------------


def retail_row(**values: str) -> dict[str, str]:
    row = dict.fromkeys(RETAIL_COLUMNS_2024, "Not Available")
    row.update(
        {
            "Website": "Amazon.com",
            "Order ID": "111-1234567-7654321",
            "Order Date": "2024-03-05T18:22:41Z",
            "Currency": "USD",
            "Unit Price": "3.10",
            "ASIN": "B0ROWROW01",
            "Quantity": "1",
            "Order Status": "Closed",
            "Shipment Status": "Shipped",
            "Product Name": "Tea",
        }
    )
    row.update(values)
    return row


def retail_csv(rows: list[dict[str, str]], columns: tuple[str, ...] = RETAIL_COLUMNS_2024) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[c] for c in columns])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode()


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"Order Date": "2024-13-05T18:22:41Z"}, "Order Date"),
        ({"Order Date": "2024-03-05T18:22:41"}, "time zone"),
        ({"Order Date": "Not Available"}, "Order Date"),
        ({"Order ID": ""}, "Order ID"),
        ({"Currency": "US"}, "currency"),
        ({"Unit Price": "Not Available"}, "Unit Price"),
        ({"Unit Price": "-1.00"}, "negative"),
        ({"Unit Price": "three"}, "amount"),
        ({"Quantity": "two"}, "Quantity"),
        ({"Quantity": "-1"}, "Quantity"),
        ({"Quantity": "²"}, "Quantity"),
        ({"Quantity": "9" * 5000}, "Quantity"),
        ({"Order Date": "0001-01-01T00:00:00+01:00"}, "out of range"),
        ({"Order Status": "Lost", "Shipment Status": "Adrift"}, "Lost"),
        ({"Product Name": "Not Available", "ASIN": "Not Applicable"}, "Product Name"),
    ],
)
def test_a_row_that_cannot_be_read_is_an_error_at_its_line(
    values: dict[str, str], words: str
) -> None:
    data = retail_csv([retail_row(), retail_row(**values), retail_row()])
    results = list(RETAIL.parse(io.BytesIO(data), "bad.csv"))
    assert [type(r) for r in results] == [PurchaseLine, ParseError, PurchaseLine]
    error = results[1]
    assert isinstance(error, ParseError)
    assert error.line_number == 3
    assert words.casefold() in error.message.casefold()
    assert str(error).startswith("bad.csv, line 3: ")


@pytest.mark.parametrize(
    ("order", "shipment", "quantity", "status"),
    [
        ("Closed", "Shipped", "1", LineStatus.SHIPPED),
        ("Closed", "Not Available", "1", LineStatus.SHIPPED),
        ("Shipped", "Delivered", "1", LineStatus.SHIPPED),
        ("Cancelled", "Not Available", "0", LineStatus.CANCELLED),
        ("Closed", "Not Available", "0", LineStatus.CANCELLED),
        ("New", "Not Available", "1", LineStatus.ORDERED),
        ("Pending", "Not Available", "1", LineStatus.ORDERED),
        ("Authorized", "Not Available", "2", LineStatus.ORDERED),
        ("Closed", "Returned", "1", LineStatus.RETURNED),
        ("Refunded", "Shipped", "1", LineStatus.REFUNDED),
    ],
)
def test_status_from_the_order_and_the_shipment(
    order: str, shipment: str, quantity: str, status: LineStatus
) -> None:
    row = retail_row(**{"Order Status": order, "Shipment Status": shipment, "Quantity": quantity})
    (line,) = RETAIL.parse(io.BytesIO(retail_csv([row])), "s.csv")
    assert isinstance(line, PurchaseLine)
    assert (line.status, line.quantity) == (status, int(quantity))


def test_without_tracking_the_ship_date_tells_shipments_apart() -> None:
    rows = [
        retail_row(**{"Ship Date": "2024-03-06T10:00:00Z"}),
        retail_row(**{"Ship Date": "2024-03-09T10:00:00Z"}),
        retail_row(**{"Ship Date": "2024-03-09T10:00:00.000Z"}),  # the same time written again
        retail_row(**{"Carrier Name & Tracking Number": "UPS(1Z9)"}),
        retail_row(**{"Order ID": "111-1234567-0000000"}),
    ]
    keys = [r.line_key for r in RETAIL.parse(io.BytesIO(retail_csv(rows)), "k.csv")]  # type: ignore[union-attr]
    assert len(keys) == 5
    assert keys[1] == keys[2]
    assert len({keys[0], keys[1], keys[3], keys[4]}) == 4


# --- Legacy Items report ---------------------------------------------------------------------


def test_a_legacy_items_report() -> None:
    lines = lines_of(parse(LEGACY, "legacy-items.csv"))
    assert len(lines) == 3
    book, monitor, hose = lines
    assert book == PurchaseLine(
        retailer="Amazon.com",
        order_id="112-0000010-0000010",
        line_key=book.line_key,
        ordered_at=datetime(2019, 1, 15, tzinfo=UTC),
        product_name="The Pragmatic Programmer",
        product_id="020161622X",
        category="Paperback",
        quantity=1,
        unit_price_minor=2175,  # "$21.75" in Purchase Price Per Unit, not the list price
        currency="USD",
        status=LineStatus.SHIPPED,
        source="legacy-items.csv",
        line_number=2,
    )
    assert monitor.ordered_at == datetime(1998, 12, 31, tzinfo=UTC)
    assert monitor.product_name == 'Monitor 27", 4K'
    # No Currency: the "$" of the price names it.
    assert (monitor.quantity, monitor.unit_price_minor, monitor.currency) == (2, 129900, "USD")
    assert (hose.category, hose.status) == ("Lawn & Patio", LineStatus.ORDERED)
    assert len({line.line_key for line in lines}) == 3


def test_an_empty_legacy_report_yields_no_lines_and_no_errors() -> None:
    assert parse(LEGACY, "legacy-items-empty.csv") == []


def test_legacy_dates_that_are_not_dates_are_errors() -> None:
    header = ",".join(LEGACY_COLUMNS)
    good = dict.fromkeys(LEGACY_COLUMNS, "")
    good.update(
        {
            "Order Date": "02/29/24",
            "Order ID": "1",
            "Title": "T",
            "Purchase Price Per Unit": "$1.00",
            "Quantity": "1",
            "Order Status": "Shipped",
        }
    )
    rows = [
        good,
        dict(good, **{"Order Date": "02/30/24"}),
        dict(good, **{"Order Date": "2024-02-01"}),
    ]
    body = "\n".join(",".join(row[c] for c in LEGACY_COLUMNS) for row in rows)
    results = list(LEGACY.parse(io.BytesIO(f"{header}\n{body}\n".encode()), "l.csv"))
    assert isinstance(results[0], PurchaseLine)
    assert results[0].ordered_at == datetime(2024, 2, 29, tzinfo=UTC)
    assert [(type(r), r.line_number) for r in results[1:]] == [(ParseError, 3), (ParseError, 4)]


# --- Round trip ------------------------------------------------------------------------------

STATUS_COLUMNS = {
    LineStatus.SHIPPED: [("Closed", "Shipped"), ("Shipped", "Delivered")],
    LineStatus.ORDERED: [
        ("New", "Not Available"),
        ("Pending", "Not Available"),
        ("Authorized", ""),
    ],
    LineStatus.CANCELLED: [("Cancelled", "Not Available")],
    LineStatus.RETURNED: [("Closed", "Returned")],
    LineStatus.REFUNDED: [("Closed", "Refunded")],
}
PLACEHOLDER_WORDS = {"", "not available", "not applicable", "n/a"}


@dataclass(frozen=True)
class Written:
    website: str
    order_id: str
    ordered_at: datetime
    millis: bool
    asin: str
    name: str
    currency: str
    unit_price_minor: int
    quantity: int
    status: LineStatus
    status_columns: tuple[str, str]
    tracking: str

    def row(self) -> dict[str, str]:
        stamp = self.ordered_at.strftime("%Y-%m-%dT%H:%M:%S")
        if self.millis:
            stamp += f".{self.ordered_at.microsecond // 1000:03d}"
        places = exponent(self.currency)
        whole, part = divmod(self.unit_price_minor, 10**places)
        price = f"{whole}.{part:0{places}d}" if places else str(whole)
        return retail_row(
            **{
                "Website": self.website,
                "Order ID": self.order_id,
                "Order Date": stamp + "Z",
                "Currency": self.currency,
                "Unit Price": price,
                "ASIN": self.asin,
                "Quantity": str(self.quantity),
                "Order Status": self.status_columns[0],
                "Shipment Status": self.status_columns[1],
                "Carrier Name & Tracking Number": self.tracking,
                "Product Name": self.name,
                "Shipment Item Subtotal": price,
                "Total Discounts": "'-0.00'",
            }
        )


names = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda s: s == s.strip() and s.casefold() not in PLACEHOLDER_WORDS)


@st.composite
def written(draw: st.DrawFn) -> Written:
    status = draw(st.sampled_from(list(STATUS_COLUMNS)))
    millis = draw(st.booleans())
    ordered_at = draw(
        st.datetimes(datetime(2000, 1, 1), datetime(2035, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001
    )
    ordered_at = ordered_at.replace(
        microsecond=ordered_at.microsecond // 1000 * 1000 if millis else 0
    )
    return Written(
        website=draw(st.sampled_from(["Amazon.com", "Amazon.co.uk", "Amazon.de", "Amazon.co.jp"])),
        order_id=draw(st.from_regex(r"\A\d{3}-\d{7}-\d{7}\Z")),
        ordered_at=ordered_at,
        millis=millis,
        asin=draw(st.from_regex(r"\A(B0[A-Z0-9]{8}|\d{9}[\dX]|97[89]\d{10})\Z")),
        name=draw(names),
        currency=draw(st.sampled_from(["USD", "EUR", "GBP", "JPY", "KWD"])),
        unit_price_minor=draw(st.integers(0, 10**8)),
        quantity=0 if status is LineStatus.CANCELLED else draw(st.integers(1, 99)),
        status=status,
        status_columns=draw(st.sampled_from(STATUS_COLUMNS[status])),
        tracking=draw(st.sampled_from(["Not Available", "UPS(1Z1)", "AMZN_US(TBA2)"])),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(written(), min_size=1, max_size=8),
    st.booleans(),
    st.sampled_from(["\r\n", "\n"]),
)
def test_round_trip_through_a_written_file(
    written_lines: list[Written], is_2024: bool, terminator: str
) -> None:
    columns = RETAIL_COLUMNS_2024 if is_2024 else RETAIL_COLUMNS
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator=terminator)
    writer.writerow(columns)
    starts, line = [], 2
    for item in written_lines:
        before = buffer.tell()
        writer.writerow([item.row()[c] for c in columns])
        starts.append(line)
        line += len(re.findall(r"\r\n|\r|\n", buffer.getvalue()[before:]))
    data = b"\xef\xbb\xbf" + buffer.getvalue().encode()
    assert RETAIL.detect(data[:HEAD_BYTES])

    parsed = lines_of(list(RETAIL.parse(io.BytesIO(data), "rt.csv")))
    assert len(parsed) == len(written_lines)
    for item, start, got in zip(written_lines, starts, parsed, strict=True):
        assert got.retailer == item.website
        assert got.order_id == item.order_id
        assert got.ordered_at == item.ordered_at
        assert got.product_name == item.name
        assert got.product_id == item.asin
        assert got.category is None
        assert got.quantity == item.quantity
        assert got.unit_price_minor == item.unit_price_minor
        assert got.currency == item.currency
        assert got.status == item.status
        assert (got.source, got.line_number) == ("rt.csv", start)
    shipments = {(w.order_id, w.asin, w.tracking) for w in written_lines}
    assert len({got.line_key for got in parsed}) == len(shipments)


# --- Streaming -------------------------------------------------------------------------------


class GeneratedFile(io.RawIOBase):
    """A file made on demand from its rows, never whole in memory."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.size += n
        return n


ROWS = 40_000


def generated_rows() -> Iterator[bytes]:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(RETAIL_COLUMNS_2024)
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    template = retail_row(
        **{
            "Order ID": "111-{n:07d}-0000001",
            "Product Name": "Item {n}",
            "Shipping Address": "A" * 120,
            "Billing Address": "B" * 120,
        }
    )
    writer.writerow([template[c] for c in RETAIL_COLUMNS_2024])
    row = buffer.getvalue()
    for n in range(ROWS):
        yield row.format(n=n).encode()


def test_a_large_file_is_read_a_row_at_a_time() -> None:
    raw = GeneratedFile(generated_rows())
    count = errors = last = 0
    tracemalloc.start()
    try:
        for result in RETAIL.parse(io.BufferedReader(raw), "big.csv"):
            if isinstance(result, ParseError):
                errors += 1
            else:
                count += 1
                last = result.line_number
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, errors, last) == (ROWS, 0, ROWS + 1)
    assert raw.size > 16 * 1024 * 1024  # far more than the peak allowed below
    assert peak < 4 * 1024 * 1024, peak


# --- Whatever the bytes, lines or errors ------------------------------------------------------


def results_are_lines_or_errors(data: bytes) -> list[list[PurchaseLine | ParseError]]:
    """What each parser makes of ``data``: only lines and errors, never an exception."""
    per_parser = []
    for parser in (RETAIL, LEGACY):
        assert parser.detect(data[:HEAD_BYTES]) in (True, False)
        results = list(parser.parse(io.BytesIO(data), "fuzz.csv"))
        assert all(isinstance(r, PurchaseLine | ParseError) for r in results)
        per_parser.append(results)
    return per_parser


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_lines_or_errors(data: bytes) -> None:
    results_are_lines_or_errors(data)


cells = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["Not Available", "0", "99999999999", "1e5", "$1.00", "'-1'", "2024-03-05"]),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "١٢", "²"]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([RETAIL_COLUMNS_2024, LEGACY_COLUMNS]),
    st.lists(st.lists(cells, min_size=25, max_size=38), max_size=4),
    st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
)
def test_any_rows_under_a_real_header_are_lines_or_errors(
    columns: tuple[str, ...], rows: list[list[str]], encoding: str
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding, errors="replace")
    for results in results_are_lines_or_errors(data):
        # The header is read as the parser's own or refused; each row is one result at most.
        assert len(results) <= len(rows) + 1
        header_refused = [r for r in results if isinstance(r, ParseError) and r.line_number == 1]
        assert len(header_refused) == (1 if header_refused else 0)
        if header_refused:
            assert len(results) == 1
