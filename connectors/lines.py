"""The normalised purchase line every importer yields, and the errors they raise.

A line is what one retailer's file (or e-mail, or push) says about one product of one order:
who sold it, which order, a key that identifies the line within the retailer's orders (the
same line seen twice has the same key), when it was ordered (UTC), what it was, how many,
the price per unit before tax in integer minor units of an ISO 4217 currency, and its status.
``source`` and ``line_number`` say where it came from (the file's name and the physical line,
or the JSON path), so an error or a duplicate can be shown to the customer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import BinaryIO, Protocol


class LineStatus(StrEnum):
    ORDERED = "ordered"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    RETURNED = "returned"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class PurchaseLine:
    retailer: str
    order_id: str
    #: Unique within the retailer's lines: the same line seen twice has the same key.
    line_key: str
    #: Timezone-aware, UTC.
    ordered_at: datetime
    product_name: str
    #: ASIN, ISBN, SKU or GTIN where the source has one.
    product_id: str | None
    #: The retailer's own category, where the source has one.
    category: str | None
    quantity: int
    #: Price per unit before tax, in integer minor units of ``currency``.
    unit_price_minor: int
    #: ISO 4217 code, upper case.
    currency: str
    status: LineStatus
    #: Where the line came from: the source's name and the line (or record) number in it.
    source: str
    line_number: int


class ParseError(ValueError):
    """One line (or record) of a source cannot be read; the importer decides whether that
    refuses the whole file or is reported and skipped."""

    def __init__(self, source: str, line_number: int, message: str) -> None:
        super().__init__(f"{source}, line {line_number}: {message}")
        self.source = source
        self.line_number = line_number
        self.message = message


class UnknownFormat(ValueError):
    """The source matches none of the formats known (the message names them)."""


class Parser(Protocol):
    """A format. ``detect`` looks at the first bytes of a source (at most ``HEAD_BYTES``: the
    header line of a CSV, the root of a JSON document) and says whether it is this format;
    ``parse`` streams the source's lines without holding it in memory (a CSV row at a time;
    a JSON document, which is small, at once), raising :class:`ParseError` for a line it
    cannot read and going on with the next if the caller catches it."""

    name: str
    description: str

    def detect(self, head: bytes) -> bool: ...

    def parse(self, stream: BinaryIO, source: str) -> Iterator[PurchaseLine | ParseError]: ...


#: How much of a source detection looks at.
HEAD_BYTES = 64 * 1024
