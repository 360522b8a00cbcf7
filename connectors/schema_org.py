"""schema.org ``Order`` markup (JSON-LD) from order e-mails.

Retailers put an ``Order`` (https://schema.org/Order) in the ``<script
type="application/ld+json">`` of their confirmation and shipping e-mails. The source may be
the bare JSON-LD (one object, a list of objects, or an object with ``@graph``), the e-mail's
HTML, or the whole e-mail as saved (``.eml``). Each ``acceptedOffer`` of an order is a line.

The same line arrives in several e-mails (confirmed, then shipped), not always spelled the
same (the sku in one and not the next, the name's case or spacing changed), so its key is
the merchant, the order number and the product's name, folded; never the sku. Two offers of
one order with the same name are told apart by their position among those offers.

``line_number`` is the offer's position among all the offers of the document (1-based); an
error about a whole order takes the position its first offer would have had.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import BinaryIO

from connectors.jsondoc import (
    DocumentError,
    decimal_text,
    decode,
    key,
    load_json,
    read_document,
    text_value,
    whole_number,
)
from connectors.lines import LineStatus, ParseError, PurchaseLine
from connectors.money import AmountError, currency_code, to_minor

_PREFIXES = (
    "http://schema.org/",
    "https://schema.org/",
    "http://www.schema.org/",
    "https://www.schema.org/",
    "schema:",
)

#: schema.org ``OrderStatus`` members (folded) and the line status each stands for.
STATUSES: dict[str, LineStatus] = {
    "orderdelivered": LineStatus.SHIPPED,
    "orderintransit": LineStatus.SHIPPED,
    "orderpickupavailable": LineStatus.SHIPPED,
    "orderprocessing": LineStatus.ORDERED,
    "orderpaymentdue": LineStatus.ORDERED,
    "orderproblem": LineStatus.ORDERED,
    "ordercancelled": LineStatus.CANCELLED,
    "orderreturned": LineStatus.RETURNED,
}

#: An ``@type`` naming ``Order``, alone or in a list, in any of its spellings.
_ORDER_TYPE = re.compile(
    rb'"@type"\s*:\s*(?:\[[^\]]{0,400}?)?"(?:(?:https?://(?:www\.)?schema\.org/)|schema:)?Order"'
)
_HEADER = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")
_MAIL_HEADERS = re.compile(
    rb"^(?:from|to|subject|date|mime-version|content-type|received|message-id|return-path):",
    re.IGNORECASE | re.MULTILINE,
)
_JSON_LD = "application/ld+json"
_PRODUCT_IDS = ("sku", "gtin13", "gtin", "gtin14", "gtin12", "gtin8", "productID")


class _JsonLdScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "script":
            return
        kind = next((value or "" for name, value in attrs if name == "type"), "")
        if kind.split(";")[0].strip().lower() == _JSON_LD:
            self._current = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._current is not None:
            self.blocks.append("".join(self._current))
            self._current = None


def extract_json_ld(html: str) -> list[str]:
    """The texts of the ``<script type="application/ld+json">`` blocks of ``html``, in
    document order."""
    scripts = _JsonLdScripts()
    # html.parser gives up (AssertionError) on some malformed declarations: keep what it read.
    with suppress(AssertionError):
        scripts.feed(html)
        scripts.close()
    return [block for block in scripts.blocks if block.strip()]


def _looks_like_email(data: bytes) -> bool:
    if data.startswith(b"From "):  # an mbox separator line
        return True
    if not _HEADER.match(data):
        return False
    headers = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    return _MAIL_HEADERS.search(headers) is not None


def email_json_ld(data: bytes) -> list[str]:
    """The JSON-LD blocks of an e-mail as saved (RFC 5322): those in its HTML parts, and
    any ``application/ld+json`` part. :class:`DocumentError` if it has neither."""
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    message = email.message_from_bytes(data, policy=email.policy.default)
    blocks: list[str] = []
    for part in message.walk():
        if part.is_multipart() or not isinstance(part, EmailMessage):
            continue
        kind = part.get_content_type()
        if kind not in ("text/html", _JSON_LD):
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, UnicodeError) as exc:
            raise DocumentError(f"an e-mail part that cannot be decoded: {exc}") from exc
        if isinstance(content, bytes):
            content = decode(content)
        if not isinstance(content, str):  # pragma: no cover - text parts decode to str
            continue
        blocks.extend(extract_json_ld(content) if kind == "text/html" else [content])
    return blocks


def json_ld_blocks(data: bytes) -> list[str]:
    """The JSON-LD texts of a document: itself if it is JSON, else the scripts of its HTML
    or of its e-mail. :class:`DocumentError` if it holds none."""
    start = data.lstrip()[:1]
    if start in (b"{", b"["):
        return [decode(data)]
    blocks = email_json_ld(data) if _looks_like_email(data) else extract_json_ld(decode(data))
    if not blocks:
        raise DocumentError("neither JSON nor an e-mail with schema.org markup")
    return blocks


def schema_name(value: str) -> str:
    """``"http://schema.org/OrderDelivered"``, ``"schema:OrderDelivered"`` ->
    ``"OrderDelivered"``."""
    name = value.strip()
    for prefix in _PREFIXES:
        if name.lower().startswith(prefix.lower()):
            return name[len(prefix) :]
    return name


def _is_order(node: dict[str, object]) -> bool:
    kinds = node.get("@type")
    names = kinds if isinstance(kinds, list) else [kinds]
    return any(isinstance(kind, str) and schema_name(kind) == "Order" for kind in names)


def _nodes(value: object) -> Iterator[object]:
    """The top-level nodes of a JSON-LD value (lists and ``@graph`` flattened)."""
    if isinstance(value, list):
        for item in value:
            yield from _nodes(item)
    elif isinstance(value, dict) and isinstance(value.get("@graph"), list | dict):
        yield from _nodes(value["@graph"])
    else:
        yield value


def _index(nodes: list[object]) -> dict[str, dict[str, object]]:
    """The document's nodes by ``@id``, for references like ``{"@id": "#seller"}``."""
    found: dict[str, dict[str, object]] = {}
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("@id"), str) and len(node) > 1:
            found.setdefault(node["@id"], node)
    return found


class _Order:
    """One ``Order`` node, read against its document's index of nodes."""

    def __init__(self, node: dict[str, object], index: dict[str, dict[str, object]]) -> None:
        self.node = node
        self.index = index

    def resolve(self, value: object) -> object:
        if isinstance(value, dict) and isinstance(value.get("@id"), str) and len(value) == 1:
            return self.index.get(value["@id"], value)
        return value

    def offers(self) -> list[object]:
        offers = self.resolve(self.node.get("acceptedOffer"))
        if isinstance(offers, list):
            return [self.resolve(offer) for offer in offers]
        return [] if offers is None else [offers]

    def retailer(self) -> str:
        for field in ("merchant", "seller"):
            party = self.resolve(self.node.get(field))
            if isinstance(party, list) and party:
                party = self.resolve(party[0])
            name = text_value(party.get("name")) if isinstance(party, dict) else None
            name = name or text_value(party)
            if name:
                return " ".join(name.split())
        raise ValueError("no merchant.name or seller.name")

    def order_id(self) -> str:
        number = text_value(self.node.get("orderNumber"))
        if not number:
            raise ValueError("no orderNumber")
        return number

    def ordered_at(self) -> datetime:
        raw = self.node.get("orderDate")
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError("no orderDate")
        try:
            when = datetime.fromisoformat(raw.strip())
        except ValueError as exc:
            raise ValueError(f"orderDate is not an ISO 8601 time: {raw!r}") from exc
        if when.tzinfo is None:
            return when.replace(tzinfo=UTC)
        try:
            return when.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError(f"orderDate is out of range in UTC: {raw!r}") from exc

    def status(self) -> LineStatus:
        raw = self.resolve(self.node.get("orderStatus"))
        if raw is None:
            return LineStatus.ORDERED
        if isinstance(raw, dict):
            raw = raw.get("@id") or raw.get("name")
        if not isinstance(raw, str):
            raise ValueError("orderStatus is not an OrderStatus")
        status = STATUSES.get(schema_name(raw).lower())
        if status is None:
            raise ValueError(f"unknown orderStatus {raw!r}")
        return status


def _price(offer: dict[str, object]) -> tuple[object, object]:
    """The offer's price and currency, from the offer or its ``priceSpecification``."""
    price, currency = offer.get("price"), offer.get("priceCurrency")
    spec = offer.get("priceSpecification")
    if isinstance(spec, list):
        spec = next((item for item in spec if isinstance(item, dict) and "price" in item), None)
    if isinstance(spec, dict):
        price = spec.get("price") if price is None else price
        currency = spec.get("priceCurrency") if currency is None else currency
    return price, currency


def _quantity(offer: dict[str, object]) -> int:
    raw = offer.get("eligibleQuantity")
    if isinstance(raw, dict):
        raw = raw.get("value")
    if raw is None:
        return 1
    quantity = whole_number(raw)
    if quantity is None or quantity < 1:
        raise ValueError(f"eligibleQuantity is not a positive whole number: {raw!r}")
    return quantity


def _category(product: dict[str, object]) -> str | None:
    raw = product.get("category")
    if isinstance(raw, list):
        raw = next((item for item in raw if text_value(item)), None)
    if isinstance(raw, dict):
        raw = raw.get("name")
    return text_value(raw)


class OrderJsonLd:
    name = "schema-org"
    description = (
        "schema.org Order markup (JSON-LD) from order e-mails: the JSON, the e-mail's HTML, "
        "or the e-mail saved as .eml"
    )

    def detect(self, head: bytes) -> bool:
        if _ORDER_TYPE.search(head):
            return True
        if not _looks_like_email(head):
            return False
        try:  # the markup may be encoded (quoted-printable, base64) in an e-mail part
            blocks = email_json_ld(head)
        except (DocumentError, LookupError, ValueError, UnicodeError, AssertionError):
            return False
        return any(_ORDER_TYPE.search(block.encode("utf-8", "replace")) for block in blocks)

    def parse(self, stream: BinaryIO, source: str) -> Iterator[PurchaseLine | ParseError]:
        data = read_document(stream, source)
        if isinstance(data, ParseError):
            yield data
            return
        try:
            blocks = json_ld_blocks(data)
        except DocumentError as exc:
            yield ParseError(source, 1, str(exc))
            return
        number = 1  # the position of the next offer in the document
        orders = 0
        for block_number, block in enumerate(blocks, start=1):
            try:
                value = load_json(block)
            except DocumentError as exc:
                where = f"JSON-LD block {block_number}: " if len(blocks) > 1 else ""
                yield ParseError(source, number, f"{where}{exc}")
                number += 1
                continue
            nodes = list(_nodes(value))
            index = _index(nodes)
            for node in nodes:
                if not isinstance(node, dict):
                    yield ParseError(source, number, f"not a JSON-LD object: {node!r:.60}")
                    number += 1
                    continue
                if not _is_order(node):
                    continue
                orders += 1
                order = _Order(node, index)
                offers = order.offers()
                yield from self._lines(order, offers, source, number)
                number += max(len(offers), 1)
        if orders == 0 and number == 1:
            yield ParseError(source, 1, "no schema.org Order in the document")

    def _lines(
        self, order: _Order, offers: list[object], source: str, first: int
    ) -> Iterator[PurchaseLine | ParseError]:
        try:
            head = _Head(order.retailer(), order.order_id(), order.ordered_at(), order.status())
            if not offers:
                raise ValueError("no acceptedOffer")
        except ValueError as exc:
            yield ParseError(source, first, f"order: {exc}")
            return
        seen: dict[str, int] = {}
        for position, offer in enumerate(offers):
            line_number = first + position
            try:
                yield _line(order, offer, head, seen, source, line_number)
            except ValueError as exc:
                yield ParseError(source, line_number, f"order {head.order_id}: {exc}")


@dataclass(frozen=True, slots=True)
class _Head:
    """What an order says of all its lines."""

    retailer: str
    order_id: str
    ordered_at: datetime
    status: LineStatus


def _product(order: _Order, offer: dict[str, object]) -> dict[str, object]:
    product = order.resolve(offer.get("itemOffered"))
    if isinstance(product, list) and len(product) == 1:
        product = order.resolve(product[0])
    if isinstance(product, str):
        return {"name": product}
    return product if isinstance(product, dict) else {}


def _line(
    order: _Order,
    offer: object,
    head: _Head,
    seen: dict[str, int],
    source: str,
    line_number: int,
) -> PurchaseLine:
    if not isinstance(offer, dict):
        raise ValueError("acceptedOffer is not an Offer object")
    product = _product(order, offer)
    name = text_value(product.get("name")) or text_value(offer.get("name"))
    if not name:
        raise ValueError("an offer without itemOffered.name")
    price_raw, currency_raw = _price(offer)
    if currency_raw is None:
        currency_raw = order.node.get("priceCurrency")
    if not isinstance(currency_raw, str):
        raise ValueError(f"{name!r}: no priceCurrency")
    price = decimal_text(price_raw)
    if price is None:
        raise ValueError(f"{name!r}: no price")
    try:
        currency = currency_code(currency_raw)
        unit_price_minor = to_minor(price, currency)
    except AmountError as exc:
        raise ValueError(f"{name!r}: {exc}") from exc
    ids = (text_value(product.get(field)) for field in _PRODUCT_IDS)
    line_key = key(head.retailer, head.order_id, name)
    seen[line_key] = seen.get(line_key, 0) + 1
    if seen[line_key] > 1:  # the same name twice in one order: told apart by position
        line_key = key(head.retailer, head.order_id, name, f"#{seen[line_key]}")
    return PurchaseLine(
        retailer=head.retailer,
        order_id=head.order_id,
        line_key=line_key,
        ordered_at=head.ordered_at,
        product_name=" ".join(name.split()),
        product_id=next((value for value in ids if value), None),
        category=_category(product),
        quantity=_quantity(offer),
        unit_price_minor=unit_price_minor,
        currency=currency,
        status=head.status,
        source=source,
        line_number=line_number,
    )
