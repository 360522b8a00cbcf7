"""Shopify's admin orders export, ``orders_export.csv``.

One row per line item. The order's own fields (currency, when it was created, its financial
and fulfillment status, when it was cancelled, its totals) are written on the first row of
the order only; the order's ``Name`` (``#1001``) repeats on every row, so the first row's
fields are carried to the rest. Times are written with an offset (``2025-12-07 19:08:25
+0400``); ``Lineitem price`` is per unit; ``Lineitem sku`` is the product's id.

The export does not name the shop, so the parser is given the retailer's name. The billing
and shipping names and addresses, the e-mail address and phone numbers are never read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from connectors.csv_rows import first_row, read_header, read_rows
from connectors.lines import LineStatus, ParseError, PurchaseLine
from connectors.money import AmountError, currency_code, to_minor

DEFAULT_RETAILER = "Shopify store"
_QUANTITY = re.compile(r"^[0-9]{1,9}$")

#: The columns of the export, in Shopify's order.
HEADER: tuple[str, ...] = (
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
    "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
    "Lineitem taxable", "Lineitem fulfillment status", "Billing Name", "Billing Street",
    "Billing Address1", "Billing Address2", "Billing Company", "Billing City", "Billing Zip",
    "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City",
    "Shipping Zip", "Shipping Province", "Shipping Country", "Shipping Phone", "Notes",
    "Note Attributes", "Cancelled at", "Payment Method", "Payment Reference", "Refunded Amount",
    "Vendor", "Outstanding Balance", "Employee", "Location", "Device ID", "Id", "Tags",
    "Risk Level", "Source", "Lineitem discount", "Tax 1 Name", "Tax 1 Value", "Tax 2 Name",
    "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value", "Tax 5 Name",
    "Tax 5 Value", "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At",
    "Payment References",
)  # fmt: skip

#: The columns read; a header without one of them is not an orders export.
READ: tuple[str, ...] = (
    "Name",
    "Financial Status",
    "Fulfillment Status",
    "Currency",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem sku",
    "Lineitem fulfillment status",
    "Cancelled at",
)


def utc_time(raw: str) -> datetime:
    """``2025-12-07 19:08:25 +0400`` (or ISO 8601 with an offset) -> aware UTC;
    :class:`ValueError` for a time without an offset or no time at all."""
    text = raw.strip()
    try:
        parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a time: {raw!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"a time without its offset from UTC: {raw!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"a time out of range in UTC: {raw!r}") from None


@dataclass(frozen=True, slots=True)
class _Order:
    """The fields of an order, from its first row; ``error`` says why they cannot be read."""

    name: str
    first_line: int
    ordered_at: datetime | None = None
    currency: str = ""
    financial: str = ""
    fulfillment: str = ""
    cancelled: bool = False
    error: str | None = None


class OrdersExport:
    """Shopify admin ``orders_export.csv``."""

    name = "shopify"
    description = "Shopify admin orders export (orders_export.csv)"

    def __init__(self, retailer: str = DEFAULT_RETAILER) -> None:
        if not retailer.strip():
            raise ValueError("the retailer's name is empty")
        self.retailer = retailer.strip()

    def detect(self, head: bytes) -> bool:
        header = first_row(head)
        return header is not None and header[0] == "Name" and set(READ) <= set(header)

    def parse(self, stream: BinaryIO, source: str) -> Iterator[PurchaseLine | ParseError]:
        rows = read_rows(stream, source)
        header = read_header(
            rows, source, "the file is empty: a Shopify orders export has a header"
        )
        if isinstance(header, ParseError):
            yield header
            return
        names = [cell.strip() for cell in header.cells]
        missing = [column for column in READ if column not in names]
        if missing:
            yield ParseError(
                source,
                header.line_number,
                "not a Shopify orders export: the header has no "
                + ", ".join(repr(column) for column in missing)
                + " column",
            )
            return
        at = {column: names.index(column) for column in READ}
        width = len(names)
        order: _Order | None = None
        position = 0
        for row in rows:
            if isinstance(row, ParseError):
                yield row
                continue
            line, cells, error = row
            name = cells[at["Name"]].strip() if len(cells) > at["Name"] else ""
            if error is None and len(cells) != width:
                error = f"{len(cells)} columns where the header has {width}"
            if error is not None:
                if order is not None and name == order.name:
                    position += 1  # the order's next lines keep their keys
                yield ParseError(source, line, error)
                continue
            if not name:
                yield ParseError(source, line, "no order Name")
                continue
            if order is None or name != order.name:
                order = self._order(name, line, cells, at)
                position = 0
            position += 1
            if order.error is not None or order.ordered_at is None:
                where = "" if order.first_line == line else f" (line {order.first_line})"
                yield ParseError(source, line, f"order {name}'s first row{where}: {order.error}")
                continue
            try:
                yield self._line(order, order.ordered_at, position, line, cells, at, source)
            except ValueError as exc:
                yield ParseError(source, line, str(exc))

    @staticmethod
    def _order(name: str, line: int, cells: list[str], at: dict[str, int]) -> _Order:
        created = cells[at["Created at"]]
        if not created.strip():
            return _Order(name, line, error="no 'Created at' (is the order's first row missing?)")
        try:
            ordered_at = utc_time(created)
        except ValueError as exc:
            return _Order(name, line, error=f"Created at: {exc}")
        try:
            currency = currency_code(cells[at["Currency"]])
        except AmountError as exc:
            return _Order(name, line, error=f"Currency: {exc}")
        return _Order(
            name,
            line,
            ordered_at=ordered_at,
            currency=currency,
            financial=cells[at["Financial Status"]].strip().lower(),
            fulfillment=cells[at["Fulfillment Status"]].strip().lower(),
            cancelled=bool(cells[at["Cancelled at"]].strip()),
        )

    def _line(
        self,
        order: _Order,
        ordered_at: datetime,
        position: int,
        line: int,
        cells: list[str],
        at: dict[str, int],
        source: str,
    ) -> PurchaseLine:
        product = cells[at["Lineitem name"]].strip()
        if not product:
            raise ValueError("no Lineitem name")
        raw_quantity = cells[at["Lineitem quantity"]].strip()
        if not _QUANTITY.match(raw_quantity) or int(raw_quantity) < 1:
            raise ValueError(
                f"Lineitem quantity: not a whole number above 0: {raw_quantity[:20]!r}"
            )
        try:
            price = to_minor(cells[at["Lineitem price"]], order.currency)
        except AmountError as exc:
            raise ValueError(f"Lineitem price: {exc}") from None
        sku = cells[at["Lineitem sku"]].strip()
        line_fulfillment = cells[at["Lineitem fulfillment status"]].strip().lower()
        return PurchaseLine(
            retailer=self.retailer,
            order_id=order.name,
            line_key=f"{order.name}:{position}",
            ordered_at=ordered_at,
            product_name=product,
            product_id=sku or None,
            category=None,
            quantity=int(raw_quantity),
            unit_price_minor=price,
            currency=order.currency,
            status=status(order, line_fulfillment),
            source=source,
            line_number=line,
        )


def status(order: _Order, line_fulfillment: str) -> LineStatus:
    """Cancelled (``Cancelled at`` written, or the payment voided), refunded (the whole
    order), shipped (the line or the whole order fulfilled), ordered otherwise. A partially
    refunded order does not say which lines were refunded, so its lines keep their
    fulfillment status."""
    if order.cancelled or order.financial == "voided":
        return LineStatus.CANCELLED
    if order.financial == "refunded":
        return LineStatus.REFUNDED
    if "fulfilled" in (line_fulfillment, order.fulfillment):
        return LineStatus.SHIPPED
    return LineStatus.ORDERED
