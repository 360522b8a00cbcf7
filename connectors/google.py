"""Google Takeout "Purchases & Reservations": one ``order_*.json`` per order.

An order names its merchant (``transactionMerchant.name``), its id (``purchaseOrderId``),
when it was made (``creationTime.usecSinceEpochUtc``, microseconds as a string) and its
lines (``lineItem[].purchase``: ``productInfo``, ``quantity``, ``unitPrice`` in
``amountMicros`` of a ``currencyCode``). Amounts are converted with integer arithmetic, never
through floats. A line item that is not a purchase (a reservation) is passed over.

A line's key is the merchant, the order id and the product id (the line's position in the
order where it has none, or where the product comes twice). ``line_number`` is the line's
position among the line items of the document (1-based); an error about the whole order
takes the position of its first line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import BinaryIO

from connectors.jsondoc import (
    DocumentError,
    decode,
    key,
    load_json,
    read_document,
    text_value,
    whole_number,
)
from connectors.lines import HEAD_BYTES, LineStatus, ParseError, PurchaseLine
from connectors.money import AmountError, currency_code, exponent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = 6
_TELLTALES = (b'"lineItem"', b'"transactionMerchant"', b'"creationTime"')
#: Takeout's statuses (upper case, words joined by ``_``) and the line status of each; any
#: other (``PARTIALLY_REFUNDED``, ``UNFULFILLED``) falls back to the order's, then "ordered".
STATUSES: dict[str, LineStatus] = {
    **dict.fromkeys(
        ("ACCEPTED", "CONFIRMED", "CREATED", "PENDING", "PLACED", "PROCESSING", "ORDERED"),
        LineStatus.ORDERED,
    ),
    **dict.fromkeys(
        ("SHIPPED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "FULFILLED", "COMPLETED"),
        LineStatus.SHIPPED,
    ),
    **dict.fromkeys(("COMPLETE", "PICKED_UP", "READY_FOR_PICKUP"), LineStatus.SHIPPED),
    **dict.fromkeys(("CANCELLED", "CANCELED", "REJECTED", "DECLINED"), LineStatus.CANCELLED),
    "RETURNED": LineStatus.RETURNED,
    "REFUNDED": LineStatus.REFUNDED,
}
_WORD_BREAK = re.compile(r"[\s-]+")


def micros_to_minor(micros: int, currency: str) -> int:
    """Millionths of a currency unit -> its minor units (half-even past the exponent):
    21,750,000 micros of USD are 2175 cents; 1,500,000,000 of JPY are 1500 yen."""
    scaled = Decimal(micros).scaleb(exponent(currency) - _MICROS)
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def usec_to_datetime(raw: object) -> datetime:
    """``"1700000000000000"`` (microseconds since the epoch, UTC) -> an aware datetime."""
    usec = whole_number(raw)
    if usec is None:
        raise ValueError(f"usecSinceEpochUtc is not a whole number: {raw!r}")
    try:
        return _EPOCH + timedelta(microseconds=usec)
    except OverflowError as exc:
        raise ValueError(f"usecSinceEpochUtc out of range: {raw!r}") from exc


def status_of(raw: object) -> LineStatus | None:
    """A Takeout status (a string, or an object with ``status``) as a line status; ``None``
    when there is none or it says nothing known."""
    if isinstance(raw, dict):
        raw = raw.get("status")
    if not isinstance(raw, str):
        return None
    return STATUSES.get(_WORD_BREAK.sub("_", raw.strip()).upper())


def _name(value: object) -> str | None:
    name = text_value(value.get("name")) if isinstance(value, dict) else None
    return " ".join(name.split()) if name else None


def _currency(raw: object) -> str:
    if isinstance(raw, dict):  # some exports write {"code": "USD"}
        raw = raw.get("code")
    if not isinstance(raw, str):
        raise ValueError("unitPrice has no currencyCode")
    return currency_code(raw)


def _looks_like_order(head: bytes) -> bool:
    if not head.lstrip().startswith(b"{") or b'"purchaseOrderId"' not in head:
        return False
    return any(telltale in head for telltale in _TELLTALES)


class TakeoutOrder:
    name = "google-takeout"
    description = 'Google Takeout "Purchases & Reservations" order_*.json files'

    def detect(self, head: bytes) -> bool:
        head = head.removeprefix(b"\xef\xbb\xbf")
        if not _looks_like_order(head):
            return False
        if len(head) >= HEAD_BYTES:  # the start of a larger document: the keys must do
            return True
        try:
            document = load_json(decode(head))
        except DocumentError:
            return True  # truncated by the caller, or damaged: parse will say which
        return isinstance(document, dict) and "purchaseOrderId" in document

    def parse(self, stream: BinaryIO, source: str) -> Iterator[PurchaseLine | ParseError]:
        data = read_document(stream, source)
        if isinstance(data, ParseError):
            yield data
            return
        try:
            document = load_json(decode(data))
        except DocumentError as exc:
            yield ParseError(source, 1, str(exc))
            return
        orders = document if isinstance(document, list) else [document]
        number = 1
        for order in orders:
            items = order.get("lineItem") if isinstance(order, dict) else None
            count = len(items) if isinstance(items, list) and items else 1
            yield from _order_lines(order, source, number)
            number += count


def _order_lines(order: object, source: str, first: int) -> Iterator[PurchaseLine | ParseError]:
    try:
        if not isinstance(order, dict):
            raise ValueError("not an order object")
        retailer = _name(order.get("transactionMerchant"))
        if not retailer:
            raise ValueError("no transactionMerchant.name")
        order_id = text_value(order.get("purchaseOrderId")) or text_value(
            order.get("merchantOrderId")
        )
        if not order_id:
            raise ValueError("no purchaseOrderId")
        created = order.get("creationTime")
        if not isinstance(created, dict) or "usecSinceEpochUtc" not in created:
            raise ValueError("no creationTime.usecSinceEpochUtc")
        ordered_at = usec_to_datetime(created["usecSinceEpochUtc"])
        items = order.get("lineItem")
        if not isinstance(items, list) or not items:
            raise ValueError("no lineItem")
        if not any(isinstance(item, dict) and "purchase" in item for item in items):
            raise ValueError("no purchase among the line items (a reservation?)")
    except ValueError as exc:
        yield ParseError(source, first, f"order: {exc}")
        return
    order_status = status_of(order.get("transactionStatus")) or LineStatus.ORDERED
    seen: dict[str, int] = {}
    for position, item in enumerate(items):
        line_number = first + position
        if isinstance(item, dict) and "purchase" not in item:
            continue  # a reservation, or a line of another kind
        try:
            purchase = item.get("purchase") if isinstance(item, dict) else None
            if not isinstance(purchase, dict):
                raise ValueError("lineItem.purchase is not an object")
            info = purchase.get("productInfo")
            info = info if isinstance(info, dict) else {}
            name = _name(info) or _name(item)
            if not name:
                raise ValueError("no productInfo.name")
            product_id = text_value(info.get("productId"))
            parts: tuple[str, ...] = ("line", str(position + 1))
            if product_id:  # a product id is kept as it is: its case may matter
                seen[product_id] = seen.get(product_id, 0) + 1
                parts = ("product", product_id)
                if seen[product_id] > 1:  # the same product on two lines: by position
                    parts += ("line", str(position + 1))
            price = purchase.get("unitPrice")
            if not isinstance(price, dict):
                raise ValueError(f"{name!r}: no unitPrice")
            micros = whole_number(price.get("amountMicros"))
            if micros is None:
                raise ValueError(f"{name!r}: unitPrice.amountMicros is not a whole number")
            currency = _currency(price.get("currencyCode"))
            raw_quantity = purchase.get("quantity", 1)
            quantity = whole_number(raw_quantity)
            if quantity is None or quantity < 1:
                raise ValueError(f"{name!r}: quantity is not a positive whole number")
            yield PurchaseLine(
                retailer=retailer,
                order_id=order_id,
                line_key=key(retailer, order_id, exact=parts),
                ordered_at=ordered_at,
                product_name=name,
                product_id=product_id,
                category=text_value(info.get("category")),
                quantity=quantity,
                unit_price_minor=micros_to_minor(micros, currency),
                currency=currency,
                status=status_of(purchase.get("status")) or order_status,
                source=source,
                line_number=line_number,
            )
        except (ValueError, AmountError) as exc:
            yield ParseError(source, line_number, f"order {order_id}: {exc}")
