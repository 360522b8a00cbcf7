"""The generic CSV: a column mapping (TOML) and the lines read through it."""

from __future__ import annotations

import csv
import io
import zoneinfo
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors import formats
from connectors.generic import GenericCsv
from connectors.lines import LineStatus, ParseError, PurchaseLine

FIXTURES = Path(__file__).parent / "fixtures" / "generic"
MINIMAL = """
retailer = "Corner Books"
currency = "AUD"
[columns]
order_id = "Order No"
ordered_at = "Date"
product_name = "Item"
quantity = "Qty"
unit_price = "Price"
"""
HEADER = "Order No,Date,Item,Qty,Price"


def parse_fixture(name: str) -> list[PurchaseLine | ParseError]:
    parser = GenericCsv.from_mapping(FIXTURES / f"{name}.toml")
    with (FIXTURES / f"{name}.csv").open("rb") as stream:
        return list(parser.parse(stream, f"{name}.csv"))


def parse_text(mapping: str, text: str) -> list[PurchaseLine | ParseError]:
    return list(GenericCsv.from_mapping(mapping).parse(io.BytesIO(text.encode()), "orders.csv"))


def lines_of(items: list[PurchaseLine | ParseError]) -> list[PurchaseLine]:
    return [item for item in items if isinstance(item, PurchaseLine)]


def errors_of(items: list[PurchaseLine | ParseError]) -> list[ParseError]:
    return [item for item in items if isinstance(item, ParseError)]


def summary(line: PurchaseLine) -> tuple[object, ...]:
    return (
        line.line_number,
        line.order_id,
        line.line_key,
        line.ordered_at,
        line.product_name,
        line.product_id,
        line.category,
        line.quantity,
        line.unit_price_minor,
        line.currency,
        line.status,
    )


def test_a_mapping_with_a_status_table() -> None:
    items = parse_fixture("corner_books")
    at = datetime(2025, 12, 6, 14, tzinfo=UTC)  # 7 December at midnight, +10:00
    assert [summary(line) for line in lines_of(items)] == [
        (2, "CB-1001", "CB-1001:9780261103344:1", at, "The Hobbit", "9780261103344", "Fiction", 1, 2299, "AUD", LineStatus.SHIPPED),
        (3, "CB-1001", "CB-1001:Atlas of the World, Revised:1", at, "Atlas of the World, Revised", None, "Reference", 2, 129900, "AUD", LineStatus.SHIPPED),
        (4, "CB-1002", 'CB-1002:=HYPERLINK("x"):1', datetime(2025, 12, 12, 14, tzinfo=UTC), '=HYPERLINK("x")', None, None, 1, 500, "AUD", LineStatus.ORDERED),
        # The same book again in the same order: its own key.
        (5, "CB-1001", "CB-1001:9780261103344:2", at, "The Hobbit", "9780261103344", "Fiction", 1, 2299, "AUD", LineStatus.RETURNED),
        # A quoted name over two lines.
        (9, "CB-1006", "CB-1006:9780000000002:1", datetime(2025, 12, 31, 14, tzinfo=UTC), "A Book with a\nTwo-Line Title", "9780000000002", "Fiction", 3, 1000, "AUD", LineStatus.REFUNDED),
        (11, "CB-1007", "CB-1007:Gift Card:1", datetime(2026, 1, 1, 14, tzinfo=UTC), "Gift Card", None, "Gifts", 1, 5000, "AUD", LineStatus.CANCELLED),
    ]  # fmt: skip
    assert {(line.retailer, line.source) for line in lines_of(items)} == {
        ("Corner Books", "corner_books.csv")
    }
    errors = errors_of(items)
    assert [error.line_number for error in errors] == [6, 7, 8]
    assert "'Lost in the post'" in errors[0].message
    assert "[statuses]" in errors[0].message
    assert "'32/12/2025'" in errors[1].message
    assert "%d/%m/%Y" in errors[1].message
    assert "8 columns where the header has 9" in errors[2].message


def test_unmapped_columns_are_never_read() -> None:
    with (FIXTURES / "corner_books.csv").open(encoding="utf-8", newline="") as text:
        customers = {row["Customer"] for row in csv.DictReader(text)}
    assert customers == {"Ada Lovelace"}
    for line in lines_of(parse_fixture("corner_books")):
        assert not any(isinstance(value, str) and "Lovelace" in value for value in astuple(line))


def test_a_semicolon_delimiter_a_currency_column_and_a_zone() -> None:
    if "Europe/Berlin" not in zoneinfo.available_timezones():
        pytest.skip("no time zone database on this machine")
    data = (FIXTURES / "semicolon.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data
    items = parse_fixture("semicolon")
    assert errors_of(items) == []
    got = [
        (
            line.order_id,
            line.line_key,
            line.ordered_at,
            line.product_name,
            line.quantity,
            line.unit_price_minor,
            line.currency,
            line.status,
        )
        for line in lines_of(items)
    ]
    ordered = LineStatus.ORDERED
    assert got == [
        # 10:00 in Berlin in July is 08:00 UTC, in December 09:00.
        ("B-1", "B-1:Der Zauberberg, Roman:1", datetime(2025, 7, 1, 8, tzinfo=UTC), "Der Zauberberg, Roman", 1, 2400, "EUR", ordered),
        ("B-1", "B-1:Lesezeichen:1", datetime(2025, 7, 1, 8, tzinfo=UTC), "Lesezeichen", 4, 150, "EUR", ordered),
        ("B-2", "B-2:Notizbuch:1", datetime(2025, 12, 1, 9, tzinfo=UTC), "Notizbuch", 2, 1200, "CHF", ordered),
        # A time with its own offset keeps it.
        ("B-3", "B-3:Kalender:1", datetime(2025, 12, 24, 17, 30, tzinfo=UTC), "Kalender", 1, 999, "EUR", ordered),
        ("B-4", "B-4:Weihnachtskarte:1", datetime(2025, 12, 23, 23, tzinfo=UTC), "Weihnachtskarte", 10, 80, "EUR", ordered),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("bad_status", "statuses.'Dispatched'"),
        ("bad_missing_column", "columns.quantity"),
        ("bad_date_format", "date_format"),
    ],
)
def test_bad_mapping_files(name: str, key: str) -> None:
    with pytest.raises(ValueError, match="^" + key.replace(".", r"\.")):
        GenericCsv.from_mapping(FIXTURES / f"{name}.toml")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (('retailer = "Corner Books"\n', ""), "retailer"),
        (('retailer = "Corner Books"', "retailer = 3"), "retailer"),
        (('currency = "AUD"\n', ""), "currency"),
        (('currency = "AUD"', 'currency = "dollars"'), "currency"),
        (('order_id = "Order No"\n', ""), "columns.order_id"),
        (('ordered_at = "Date"\n', ""), "columns.ordered_at"),
        (('product_name = "Item"\n', ""), "columns.product_name"),
        (('unit_price = "Price"\n', ""), "columns.unit_price"),
        (('unit_price = "Price"', 'unit_price = ""'), "columns.unit_price"),
        (('unit_price = "Price"', 'unit_price = "Price"\nprice_each = "P"'), "columns.price_each"),
        (('currency = "AUD"', 'currency = "AUD"\ndate_format = "%Q"'), "date_format"),
        (('currency = "AUD"', 'currency = "AUD"\ndate_format = "yyyy-mm-dd"'), "date_format"),
        (('currency = "AUD"', 'currency = "AUD"\ntimezone = "+25:00"'), "timezone"),
        (('currency = "AUD"', 'currency = "AUD"\ntimezone = "Mars/Olympus"'), "timezone"),
        (('currency = "AUD"', 'currency = "AUD"\ndelimiter = ";;"'), "delimiter"),
        (('currency = "AUD"', 'currency = "AUD"\ndelimiter = \'"\''), "delimiter"),
        (('currency = "AUD"', 'currency = "AUD"\nencoding = "latin-1"'), "unknown key 'encoding'"),
        (
            ('unit_price = "Price"', 'unit_price = "Price"\n[statuses]\nSent = "shipped"'),
            "statuses",
        ),
    ],
)
def test_bad_mappings_name_the_key(change: tuple[str, str], key: str) -> None:
    old, new = change
    assert old in MINIMAL
    GenericCsv.from_mapping(MINIMAL)  # the mapping changed is good
    with pytest.raises(ValueError, match="^" + key.replace(".", r"\.")):
        GenericCsv.from_mapping(MINIMAL.replace(old, new))


def test_a_mapping_that_is_not_toml_or_not_there(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^columns: a table"):
        GenericCsv.from_mapping('retailer = "X"\ncurrency = "AUD"\ncolumns = 3\n')
    with pytest.raises(ValueError, match=r"^columns: missing"):
        GenericCsv.from_mapping('retailer = "X"\ncurrency = "AUD"\n')
    with pytest.raises(ValueError, match=r"^statuses: a table"):
        GenericCsv.from_mapping(MINIMAL.replace("[columns]", "statuses = 3\n[columns]"))
    with pytest.raises(ValueError, match="not TOML"):
        GenericCsv.from_mapping('retailer = "unclosed')
    with pytest.raises(ValueError, match="cannot be read"):
        GenericCsv.from_mapping(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="cannot be read"):
        GenericCsv.from_mapping(str(tmp_path / "missing.toml"))


def test_a_mapping_from_a_path_or_its_text(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    text = f"{HEADER}\nA-1,2025-12-07,Book,1,9.99\n"
    for source in (path, str(path), MINIMAL):
        [line] = list(GenericCsv.from_mapping(source).parse(io.BytesIO(text.encode()), "x.csv"))
        assert isinstance(line, PurchaseLine)
        assert (line.order_id, line.unit_price_minor) == ("A-1", 999)
        assert line.ordered_at == datetime(2025, 12, 7, tzinfo=UTC)


def test_without_a_mapping_it_refuses_to_parse() -> None:
    parser = GenericCsv()
    with pytest.raises(ValueError, match="needs a column mapping"):
        parser.parse(io.BytesIO(b"a,b\n1,2\n"), "x.csv")
    from_table = formats.parser("generic-csv")
    assert isinstance(from_table, GenericCsv)
    with pytest.raises(ValueError, match="mapping"):
        from_table.parse(io.BytesIO(b""), "x.csv")


def test_it_is_never_detected() -> None:
    parser = GenericCsv.from_mapping(MINIMAL)
    assert parser.detect(f"{HEADER}\nA-1,2025-12-07,Book,1,9.99\n".encode()) is False
    assert parser.name == "generic-csv"


def test_a_header_without_a_mapped_column() -> None:
    [error] = parse_text(MINIMAL, "Order No,Date,Item,Quantity,Price\nA-1,2025-12-07,Book,1,9.99\n")
    assert isinstance(error, ParseError)
    assert error.line_number == 1
    assert "'Qty'" in error.message
    assert "'Quantity'" in error.message  # the columns it has


def test_header_names_match_without_case_or_spaces() -> None:
    [line] = parse_text(MINIMAL, " order no ,DATE,item,qty,PRICE\nA-1,2025-12-07,Book,2,9.99\n")
    assert isinstance(line, PurchaseLine)
    assert line.quantity == 2


def test_an_empty_file_a_utf16_file_and_a_truncated_field() -> None:
    parser = GenericCsv.from_mapping(MINIMAL)
    [empty] = parser.parse(io.BytesIO(b""), "x.csv")
    assert isinstance(empty, ParseError)
    assert "empty" in empty.message
    utf16 = f"{HEADER}\nA-1,2025-12-07,Book,1,9.99\n".encode("utf-16")
    [wide] = parser.parse(io.BytesIO(utf16), "x.csv")
    assert isinstance(wide, ParseError)
    assert "UTF-8" in wide.message
    truncated = f'{HEADER}\nA-1,2025-12-07,Book,1,9.99\nA-2,2025-12-07,"Unclosed,1,9.99\n'
    kept, cut = parser.parse(io.BytesIO(truncated.encode()), "x.csv")
    assert isinstance(kept, PurchaseLine)
    assert isinstance(cut, ParseError)
    assert cut.line_number == 3


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (",2025-12-07,Book,1,9.99", "'Order No'"),
        ("A-1,2025-12-07,,1,9.99", "'Item'"),
        ("A-1,2025-12-07,Book,one,9.99", "'Qty'"),
        ("A-1,2025-12-07,Book,0,9.99", "'Qty'"),
        ("A-1,2025-12-07,Book,\u0663,9.99", "'Qty'"),
        ("A-1,2025-12-07,Book,-1,9.99", "'Qty'"),
        ("A-1,0001-01-01,Book,1,9.99", "out of range"),
        ("A-1,2025-12-07,Book,1,free", "'Price'"),
        ("A-1,7 December,Book,1,9.99", "'Date'"),
    ],
)
def test_a_cell_that_cannot_be_read(row: str, column: str) -> None:
    mapping = MINIMAL.replace('currency = "AUD"', 'currency = "AUD"\ntimezone = "+10:00"')
    error, line = parse_text(mapping, f"{HEADER}\n{row}\nA-2,2025-12-07,Good,1,1.00\n")
    assert isinstance(error, ParseError)
    assert error.line_number == 2
    assert column in error.message
    assert isinstance(line, PurchaseLine)
    assert line.product_name == "Good"


def test_statuses_without_a_table_are_the_statuses_names() -> None:
    mapping = MINIMAL + 'status = "State"\n'
    text = f"{HEADER},State\nA-1,2025-12-07,Book,1,9.99,Shipped\nA-1,2025-12-07,Pen,1,1.00,posted\n"
    line, error = parse_text(mapping, text)
    assert isinstance(line, PurchaseLine)
    assert line.status is LineStatus.SHIPPED
    assert isinstance(error, ParseError)
    assert "'posted'" in error.message
    assert "'refunded'" in error.message


def test_a_currency_column_without_a_default() -> None:
    mapping = MINIMAL.replace('currency = "AUD"\n', "") + 'currency = "Cur"\n'
    text = f"{HEADER},Cur\nA-1,2025-12-07,Book,1,1500,jpy\nA-2,2025-12-07,Pen,1,1.00,\n"
    line, error = parse_text(mapping, text)
    assert isinstance(line, PurchaseLine)
    assert (line.currency, line.unit_price_minor) == ("JPY", 1500)
    assert isinstance(error, ParseError)
    assert "'Cur'" in error.message


@pytest.mark.parametrize(
    ("settings", "cell", "utc"),
    [
        ('timezone = "+10:00"', "2025-12-07 09:30", datetime(2025, 12, 6, 23, 30, tzinfo=UTC)),
        ('timezone = "-0530"', "2025-12-07 09:30", datetime(2025, 12, 7, 15, tzinfo=UTC)),
        ('timezone = "UTC+2"', "2025-12-07 09:30", datetime(2025, 12, 7, 7, 30, tzinfo=UTC)),
        ('timezone = "Z"', "2025-12-07 09:30", datetime(2025, 12, 7, 9, 30, tzinfo=UTC)),
        ('timezone = "+10:00"', "2025-12-07T09:30:00Z", datetime(2025, 12, 7, 9, 30, tzinfo=UTC)),
        (
            'date_format = "%m/%d/%Y %I:%M %p"',
            "12/07/2025 09:30 PM",
            datetime(2025, 12, 7, 21, 30, tzinfo=UTC),
        ),
        (
            'date_format = "%d.%m.%Y %H:%M %z"\ntimezone = "+10:00"',
            "07.12.2025 09:30 +0100",
            datetime(2025, 12, 7, 8, 30, tzinfo=UTC),
        ),
    ],
)
def test_times(settings: str, cell: str, utc: datetime) -> None:
    mapping = MINIMAL.replace('currency = "AUD"', f'currency = "AUD"\n{settings}')
    [line] = parse_text(mapping, f"{HEADER}\nA-1,{cell},Book,1,9.99\n")
    assert isinstance(line, PurchaseLine)
    assert line.ordered_at == utc
    assert line.ordered_at.utcoffset() == timedelta(0)


def test_a_zone_name_follows_summer_time() -> None:
    if "Australia/Sydney" not in zoneinfo.available_timezones():
        pytest.skip("no time zone database on this machine")
    mapping = MINIMAL.replace('currency = "AUD"', 'currency = "AUD"\ntimezone = "Australia/Sydney"')
    text = f"{HEADER}\nA-1,2025-01-15 12:00,Book,1,9.99\nA-2,2025-07-15 12:00,Book,1,9.99\n"
    summer, winter = lines_of(parse_text(mapping, text))
    assert summer.ordered_at == datetime(2025, 1, 15, 1, tzinfo=UTC)  # +11:00
    assert winter.ordered_at == datetime(2025, 7, 15, 2, tzinfo=UTC)  # +10:00


ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A-1", "A-2", "B-7"]),
        st.sampled_from(["Book", "Pen", "Atlas, Revised"]),
        st.sampled_from(["", "9780261103344"]),
    ),
    min_size=1,
    max_size=30,
)


@given(ROWS)
def test_line_keys_are_unique_and_the_same_on_a_second_reading(
    rows: list[tuple[str, str, str]],
) -> None:
    mapping = MINIMAL + 'product_id = "ISBN"\n'
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*HEADER.split(","), "ISBN"])
    for order, product, isbn in rows:
        writer.writerow([order, "2025-12-07", product, "1", "1.00", isbn])
    first = lines_of(parse_text(mapping, out.getvalue()))
    second = lines_of(parse_text(mapping, out.getvalue()))
    assert len(first) == len(rows)
    keys = [line.line_key for line in first]
    assert len(set(keys)) == len(keys)
    assert keys == [line.line_key for line in second]
    for line, (order, product, isbn) in zip(first, rows, strict=True):
        assert (line.order_id, line.product_name, line.product_id) == (order, product, isbn or None)
        assert line.line_key.startswith(f"{order}:{isbn or product}:")


@given(st.binary(max_size=400))
def test_any_bytes_after_the_header_are_lines_or_errors(tail: bytes) -> None:
    parser = GenericCsv.from_mapping(MINIMAL)
    items = list(parser.parse(io.BytesIO(f"{HEADER}\n".encode() + tail), "x.csv"))
    assert all(isinstance(item, PurchaseLine | ParseError) for item in items)
    for item in items:
        assert item.source == "x.csv"
        assert item.line_number >= 2
