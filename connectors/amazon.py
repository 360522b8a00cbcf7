"""Amazon's order history files: the "Request your data" ``Retail.OrderHistory.N.csv`` and
the legacy "Order History Reports" Items CSV.

Both are read a row at a time and by column name, so a column Amazon adds is ignored. The
addresses, e-mail, buyer and gift columns are personal and never read into a line.

``Retail.OrderHistory`` has one row per item per shipment: a product shipped in two parts
is two rows of the same order and ASIN, told apart by the shipment (carrier and tracking
number, or the ship date when there is none), so the shipment is part of the line's key.
``Shipment Item Subtotal`` repeats on every row of a shipment and is not used; the price is
``Unit Price``, per unit before tax. A row whose quantity is 0 is an item cancelled.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from connectors.lines import LineStatus, ParseError, PurchaseLine
from connectors.money import SYMBOLS, currency_code, to_minor

#: What Amazon writes where a value is absent (compared case-insensitively).
PLACEHOLDERS = frozenset({"", "not available", "not applicable", "n/a"})

#: The 2023 ``Retail.OrderHistory`` columns; the 2024 files add ``Item Serial Number``.
RETAIL_COLUMNS = (
    "Website", "Order ID", "Order Date", "Purchase Order Number", "Currency", "Unit Price",
    "Unit Price Tax", "Shipping Charge", "Total Discounts", "Total Owed",
    "Shipment Item Subtotal", "Shipment Item Subtotal Tax", "ASIN", "Product Condition",
    "Quantity", "Payment Instrument Type", "Order Status", "Shipment Status", "Ship Date",
    "Shipping Option", "Shipping Address", "Billing Address",
    "Carrier Name & Tracking Number", "Product Name", "Gift Message", "Gift Sender Name",
    "Gift Recipient Contact Details",
)  # fmt: skip
RETAIL_COLUMNS_2024 = (*RETAIL_COLUMNS, "Item Serial Number")

#: The columns of the legacy Items report (the 36 of its last version).
LEGACY_COLUMNS = (
    "Order Date", "Order ID", "Title", "Category", "ASIN/ISBN", "UNSPSC Code", "Website",
    "Release Date", "Condition", "Seller", "Seller Credentials", "List Price Per Unit",
    "Purchase Price Per Unit", "Quantity", "Payment Instrument Type", "Purchase Order Number",
    "PO Line Number", "Ordering Customer Email", "Shipment Date", "Shipping Address Name",
    "Shipping Address Street 1", "Shipping Address Street 2", "Shipping Address City",
    "Shipping Address State", "Shipping Address Zip", "Order Status",
    "Carrier Name & Tracking Number", "Item Subtotal", "Item Subtotal Tax", "Item Total",
    "Tax Exemption Applied", "Tax Exemption Type", "Exemption Opt-Out", "Buyer Name",
    "Currency", "Group Name",
)  # fmt: skip
#: The legacy columns a report must have to be read (older reports lack some of the rest).
LEGACY_REQUIRED = (
    "Order Date", "Order ID", "Title", "Category", "ASIN/ISBN", "Website",
    "Purchase Price Per Unit", "Quantity", "Order Status", "Shipment Date",
    "Carrier Name & Tracking Number",
)  # fmt: skip

#: The one row of a legacy report that has no orders in its period.
LEGACY_NO_DATA = "no data found for this time period"

_SHIPPED = frozenset({"closed", "shipped", "delivered", "complete", "completed"})
_ORDERED = frozenset(
    {
        "new",
        "pending",
        "authorized",
        "payment pending",
        "processing",
        "unshipped",
        "not yet shipped",
        "shipping soon",
        "shipment planned",
    }
)
#: Characters no UTF-8 text holds: undecodable bytes (kept as lone surrogates) and NUL,
#: which is every other byte of UTF-16.
_NOT_TEXT = re.compile(r"[\x00\udc80-\udcff]")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$")


class _RowError(ValueError):
    """A row's value cannot be read; becomes a :class:`ParseError` at the row's line."""


# --- Reading the header and the rows -------------------------------------------------------


def _header(head: bytes) -> list[str] | None:
    """The column names of a CSV's first line, or ``None`` when it is not UTF-8 CSV."""
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    line = head[: min(ends)] if ends else head
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.strip() or _NOT_TEXT.search(text):
        return None
    try:
        row = next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration):
        return None
    return [name.strip() for name in row]


class _Row:
    """One data row, its values looked up by column name."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[str]) -> None:
        self._index = index
        self._values = values

    def raw(self, column: str) -> str:
        at = self._index.get(column)
        return "" if at is None else self._values[at].strip()

    def get(self, column: str) -> str | None:
        """The value, or ``None`` when the column is absent or holds a placeholder."""
        value = self.raw(column)
        return None if value.casefold() in PLACEHOLDERS else value

    def need(self, column: str) -> str:
        value = self.get(column)
        if value is None:
            raise _RowError(f"no {column}")
        return value


@dataclass(frozen=True, slots=True)
class _Format:
    label: str
    required: tuple[str, ...]
    line: Callable[[_Row, str, int], PurchaseLine]
    #: A row that is no line and no error (the legacy report's "no data" row).
    skip: Callable[[Sequence[str]], bool]

    def detect(self, head: bytes) -> bool:
        header = _header(head)
        return header is not None and set(self.required) <= set(header)


def _read(stream: BinaryIO, source: str, fmt: _Format) -> Iterator[PurchaseLine | ParseError]:
    # Undecodable bytes are kept as lone surrogates, so a row of Latin-1 in a UTF-8 file is
    # one error and the rows after it are still read.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.reader(text, strict=True)
        index: dict[str, int] | None = None
        width = 0
        previous = 0  # the physical line the last row ended on
        while True:
            start = previous + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                previous = reader.line_num
                yield ParseError(source, start, f"the row cannot be read as CSV: {exc}")
                continue
            previous = reader.line_num
            joined = "".join(values)
            if not joined.strip():
                continue
            if _NOT_TEXT.search(joined):
                yield ParseError(
                    source,
                    start,
                    "not UTF-8 text (the file may be saved as UTF-16 or Latin-1); save it as UTF-8",
                )
                if index is None:
                    return
                continue
            if index is None:
                names = [name.strip() for name in values]
                missing = [column for column in fmt.required if column not in names]
                if missing:
                    shown = ", ".join(missing[:4]) + (
                        f" and {len(missing) - 4} more" if len(missing) > 4 else ""
                    )
                    yield ParseError(source, start, f"not the header of {fmt.label}: no {shown}")
                    return
                index = {name: at for at, name in reversed(list(enumerate(names)))}
                width = len(names)
                continue
            if fmt.skip(values):
                continue
            if len(values) != width:
                yield ParseError(
                    source, start, f"the row has {len(values)} fields, the header {width}"
                )
                continue
            try:
                yield fmt.line(_Row(index, values), source, start)
            except ValueError as exc:  # _RowError, AmountError, or a value out of range
                yield ParseError(source, start, str(exc))
    finally:
        text.detach()  # the caller's stream stays open


# --- Values ----------------------------------------------------------------------------------


def _key(order_id: str, product: str, shipment: str) -> str:
    """A stable key from the parts; JSON keeps ``("a,b", "c")`` apart from ``("a", "b,c")``."""
    parts = json.dumps(["amazon", order_id, product, shipment], ensure_ascii=False)
    return hashlib.sha256(parts.encode("utf-8")).hexdigest()


def _retailer(website: str | None) -> str:
    """The site's name ("Amazon.com", "Amazon.de") where the row gives one."""
    return website if website and "amazon" in website.casefold() else "Amazon"


def _iso_time(raw: str, column: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _RowError(f"{column} is not an ISO 8601 time: {raw!r}") from None
    if value.tzinfo is None:
        raise _RowError(f"{column} has no time zone: {raw!r}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _RowError(f"{column} is out of range: {raw!r}") from None


def _us_date(raw: str, column: str) -> datetime:
    """``MM/DD/YY`` (or ``MM/DD/YYYY``) -> UTC midnight; two-digit years 69-99 are 19xx."""
    match = _US_DATE.match(raw)
    if match is None:
        raise _RowError(f"{column} is not a MM/DD/YY date: {raw!r}")
    month, day, year = (int(part) for part in match.groups())
    if len(match.group(3)) == 2:
        year += 1900 if year >= 69 else 2000
    try:
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        raise _RowError(f"{column} is not a date: {raw!r}") from None


def _quantity(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise _RowError(f"Quantity is not a whole number of items: {raw!r}")
    return int(raw)


def _price(raw: str, currency: str, column: str) -> int:
    minor = to_minor(raw, currency)
    if minor < 0:
        raise _RowError(f"{column} is negative: {raw!r}")
    return minor


def _status(quantity: int, *values: str | None) -> LineStatus:
    """From the order's and the shipment's status: a refund or a return says most, then a
    cancellation, then shipping; a quantity of 0 is an item cancelled."""
    words = [value.casefold() for value in values if value]
    status: LineStatus | None = None
    if any("refund" in word for word in words):
        status = LineStatus.REFUNDED
    elif any("return" in word for word in words):
        status = LineStatus.RETURNED
    elif any("cancel" in word for word in words):
        status = LineStatus.CANCELLED
    elif any(word in _SHIPPED for word in words):
        status = LineStatus.SHIPPED
    elif any(word in _ORDERED for word in words):
        status = LineStatus.ORDERED
    if status is None:
        shown = " / ".join(repr(value) for value in values if value) or "none"
        raise _RowError(f"unknown order status: {shown}")
    if quantity == 0 and status in (LineStatus.ORDERED, LineStatus.SHIPPED):
        return LineStatus.CANCELLED
    return status


# --- Retail.OrderHistory ---------------------------------------------------------------------


def _retail_line(row: _Row, source: str, line_number: int) -> PurchaseLine:
    order_id = row.need("Order ID")
    ordered_at = _iso_time(row.need("Order Date"), "Order Date")
    currency = currency_code(row.need("Currency"))
    unit_price = _price(row.need("Unit Price"), currency, "Unit Price")
    quantity = _quantity(row.need("Quantity"))
    product_id = row.get("ASIN")
    name = row.get("Product Name") or product_id
    if name is None:
        raise _RowError("no Product Name and no ASIN")
    status = _status(quantity, row.get("Order Status"), row.get("Shipment Status"))
    shipment = row.get("Carrier Name & Tracking Number")
    if shipment is None:
        shipped = row.get("Ship Date")
        try:
            shipment = "" if shipped is None else _iso_time(shipped, "Ship Date").isoformat()
        except _RowError:
            shipment = shipped or ""
    return PurchaseLine(
        retailer=_retailer(row.get("Website")),
        order_id=order_id,
        line_key=_key(order_id, product_id or name, shipment),
        ordered_at=ordered_at,
        product_name=name,
        product_id=product_id,
        category=None,
        quantity=quantity,
        unit_price_minor=unit_price,
        currency=currency,
        status=status,
        source=source,
        line_number=line_number,
    )


def _no_skip(values: Sequence[str]) -> bool:
    return False


_RETAIL = _Format(
    label="an Amazon Retail.OrderHistory file",
    required=RETAIL_COLUMNS,
    line=_retail_line,
    skip=_no_skip,
)


class RetailOrderHistory:
    """Amazon's "Request your data" order history, ``Retail.OrderHistory.N.csv``."""

    name: str = "amazon-retail"
    description: str = "Amazon order history from 'Request your data' (Retail.OrderHistory.N.csv)"

    def detect(self, head: bytes) -> bool:
        return _RETAIL.detect(head)

    def parse(self, stream: BinaryIO, source: str) -> Iterator[PurchaseLine | ParseError]:
        return _read(stream, source, _RETAIL)


# --- Legacy Items report ---------------------------------------------------------------------


def _legacy_currency(row: _Row, price: str) -> str:
    named = row.get("Currency")
    if named is not None:
        return currency_code(named)
    for symbol, code in SYMBOLS.items():
        if symbol in price:
            return code
    raise _RowError(f"no Currency and no currency symbol in the price {price!r}")


def _legacy_line(row: _Row, source: str, line_number: int) -> PurchaseLine:
    order_id = row.need("Order ID")
    ordered_at = _us_date(row.need("Order Date"), "Order Date")
    price = row.need("Purchase Price Per Unit")
    currency = _legacy_currency(row, price)
    unit_price = _price(price, currency, "Purchase Price Per Unit")
    quantity = _quantity(row.need("Quantity"))
    product_id = row.get("ASIN/ISBN")
    name = row.get("Title") or product_id
    if name is None:
        raise _RowError("no Title and no ASIN/ISBN")
    status = _status(quantity, row.get("Order Status"))
    shipment = row.get("Carrier Name & Tracking Number")
    if shipment is None:
        shipped = row.get("Shipment Date")
        try:
            shipment = "" if shipped is None else _us_date(shipped, "Shipment Date").isoformat()
        except _RowError:
            shipment = shipped or ""
    return PurchaseLine(
        retailer=_retailer(row.get("Website")),
        order_id=order_id,
        line_key=_key(order_id, product_id or name, shipment),
        ordered_at=ordered_at,
        product_name=name,
        product_id=product_id,
        category=row.get("Category"),
        quantity=quantity,
        unit_price_minor=unit_price,
        currency=currency,
        status=status,
        source=source,
        line_number=line_number,
    )


def _legacy_no_data(values: Sequence[str]) -> bool:
    return len(values) == 1 and values[0].strip().casefold() == LEGACY_NO_DATA


_LEGACY = _Format(
    label="an Amazon Order History Reports Items file",
    required=LEGACY_REQUIRED,
    line=_legacy_line,
    skip=_legacy_no_data,
)


class LegacyItems:
    """Amazon's legacy "Order History Reports" Items CSV."""

    name: str = "amazon-legacy"
    description: str = "Amazon legacy Order History Reports, Items CSV"

    def detect(self, head: bytes) -> bool:
        return _LEGACY.detect(head)

    def parse(self, stream: BinaryIO, source: str) -> Iterator[PurchaseLine | ParseError]:
        return _read(stream, source, _LEGACY)
