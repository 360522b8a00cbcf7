"""Any retailer's CSV, read through a column mapping the customer writes (TOML).

::

    retailer = "Corner Books"
    currency = "AUD"            # the currency of every row (or the column columns.currency)
    date_format = "%d/%m/%Y"    # strptime, or "iso" (the default)
    timezone = "+10:00"         # of times written without an offset; an IANA name too; UTC
    delimiter = ","             # the default
    [columns]
    order_id = "Order No"
    ordered_at = "Date"
    product_name = "Item"
    product_id = "ISBN"         # optional
    category = "Section"        # optional
    quantity = "Qty"
    unit_price = "Price"        # per unit, before tax
    status = "State"            # optional: without it every line is "ordered"
    [statuses]                  # the retailer's words for the statuses (case does not matter)
    "Dispatched" = "shipped"

Columns are found in the header by name (case and surrounding spaces do not matter). Without
a ``[statuses]`` table the status column holds the statuses' own names. The generic CSV is
never detected: it is chosen with its mapping.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.csv_rows import read_header, read_rows
from connectors.lines import LineStatus, ParseError, PurchaseLine
from connectors.money import AmountError, currency_code, to_minor

#: The fields a mapping names columns for, and what each column holds.
FIELDS: dict[str, str] = {
    "order_id": "the order's number",
    "ordered_at": "when the order was placed",
    "product_name": "the product's name",
    "product_id": "the product's ISBN, SKU or GTIN",
    "category": "the retailer's category",
    "quantity": "how many were bought",
    "unit_price": "the price of one, before tax",
    "status": "the line's status",
    "currency": "the currency's ISO 4217 code",
}
REQUIRED = ("order_id", "ordered_at", "product_name", "quantity", "unit_price")
KEYS = ("retailer", "currency", "date_format", "timezone", "delimiter", "columns", "statuses")
_QUANTITY = re.compile(r"^[0-9]{1,9}$")
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """A checked mapping: :meth:`GenericCsv.from_mapping` builds it from TOML."""

    retailer: str
    #: field -> the column's name in the header.
    columns: dict[str, str]
    #: The currency of rows that name none (or of every row, without a currency column).
    currency: str | None = None
    date_format: str = "iso"
    timezone: tzinfo = UTC
    delimiter: str = ","
    #: The retailer's word, case-folded -> the status.
    statuses: dict[str, LineStatus] = field(default_factory=dict)


def parse_mapping(document: Mapping[str, object]) -> ColumnMapping:
    """A :class:`ColumnMapping` from a TOML document's tables; :class:`ValueError` naming the
    key at fault."""
    for key in document:
        if key not in KEYS:
            raise ValueError(
                f"unknown key {key!r} in the mapping: the keys known are {_list(KEYS)}"
            )
    retailer = _text(document, "retailer")
    if retailer is None:
        raise ValueError("retailer: missing: the retailer's name")
    columns = _columns(document.get("columns"))
    currency: str | None = None
    raw_currency = _text(document, "currency")
    if raw_currency is not None:
        try:
            currency = currency_code(raw_currency)
        except AmountError as exc:
            raise ValueError(f"currency: {exc}") from None
    elif "currency" not in columns:
        raise ValueError(
            'currency: missing: give the currency\'s code (currency = "AUD") or the column '
            'holding it (currency = "..." in [columns])'
        )
    date_format = _text(document, "date_format") or "iso"
    _check_date_format(date_format)
    zone = _timezone(_text(document, "timezone") or "UTC")
    delimiter = _text(document, "delimiter") or ","
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise ValueError(f"delimiter: one character (not a quote or newline), not {delimiter!r}")
    statuses = _statuses(document.get("statuses"))
    if statuses and "status" not in columns:
        raise ValueError('statuses: given, but no status column (status = "..." in [columns])')
    return ColumnMapping(
        retailer=retailer,
        columns=columns,
        currency=currency,
        date_format=date_format,
        timezone=zone,
        delimiter=delimiter,
        statuses=statuses,
    )


class GenericCsv:
    """A CSV file described by a column mapping."""

    name = "generic-csv"
    description = "any CSV file, with a column mapping (TOML) naming its columns"

    def __init__(self, mapping: ColumnMapping | None = None) -> None:
        self.mapping = mapping

    @classmethod
    def from_mapping(cls, path_or_text: str | os.PathLike[str]) -> GenericCsv:
        """From a mapping file, or the mapping's TOML text itself (a string holding ``=``);
        :class:`ValueError` naming the key at fault."""
        if isinstance(path_or_text, str) and "=" in path_or_text:
            text, where = path_or_text, "the mapping"
        else:
            path = Path(path_or_text)
            try:
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"the mapping {str(path)!r} cannot be read: {exc}") from None
            where = f"the mapping {str(path)!r}"
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{where} is not TOML: {exc}") from None
        return cls(parse_mapping(document))

    def detect(self, head: bytes) -> bool:
        """Never: a generic CSV is chosen with its mapping."""
        return False

    def parse(self, stream: BinaryIO, source: str) -> Iterator[PurchaseLine | ParseError]:
        """The lines of ``stream``; :class:`ValueError` at once without a mapping."""
        if self.mapping is None:
            raise ValueError(
                "generic-csv needs a column mapping (a TOML file naming the columns of the "
                "order, date, product, quantity and price): give it with its mapping"
            )
        return _Reader(self.mapping, source).lines(stream)


class _Reader:
    def __init__(self, mapping: ColumnMapping, source: str) -> None:
        self.mapping = mapping
        self.source = source
        #: (order, product) -> how many lines of that product the order has had so far.
        self.seen: dict[tuple[str, str], int] = {}

    def lines(self, stream: BinaryIO) -> Iterator[PurchaseLine | ParseError]:
        source, mapping = self.source, self.mapping
        rows = read_rows(stream, source, mapping.delimiter)
        header = read_header(rows, source, "the file is empty: the mapping needs a header row")
        if isinstance(header, ParseError):
            yield header
            return
        names = [cell.strip().casefold() for cell in header.cells]
        missing = [col for col in mapping.columns.values() if col.strip().casefold() not in names]
        if missing:
            yield ParseError(
                source,
                header.line_number,
                f"the header has no column {_list(missing)} (it has {_list(header.cells)})",
            )
            return
        at = {key: names.index(col.strip().casefold()) for key, col in mapping.columns.items()}
        width = len(names)
        for row in rows:
            if isinstance(row, ParseError):
                yield row
                continue
            if row.error is not None:
                yield ParseError(source, row.line_number, row.error)
                continue
            if len(row.cells) != width:
                yield ParseError(
                    source,
                    row.line_number,
                    f"{len(row.cells)} columns where the header has {width}",
                )
                continue
            cells = {key: row.cells[index].strip() for key, index in at.items()}
            try:
                yield self._line(cells, row.line_number)
            except ValueError as exc:
                yield ParseError(source, row.line_number, str(exc))

    def _line(self, cells: dict[str, str], line: int) -> PurchaseLine:
        mapping = self.mapping
        order_id = cells["order_id"]
        if not order_id:
            raise ValueError(f"{_column(mapping, 'order_id')}: empty")
        product = cells["product_name"]
        if not product:
            raise ValueError(f"{_column(mapping, 'product_name')}: empty")
        currency = self._currency(cells.get("currency", ""))
        quantity = cells["quantity"]
        if not _QUANTITY.match(quantity) or int(quantity) < 1:
            raise ValueError(
                f"{_column(mapping, 'quantity')}: not a whole number above 0: {quantity[:20]!r}"
            )
        try:
            price = to_minor(cells["unit_price"], currency)
        except AmountError as exc:
            raise ValueError(f"{_column(mapping, 'unit_price')}: {exc}") from None
        product_id = cells.get("product_id") or None
        occurrence = (order_id, product_id or product)
        position = self.seen.get(occurrence, 0) + 1
        self.seen[occurrence] = position
        return PurchaseLine(
            retailer=mapping.retailer,
            order_id=order_id,
            line_key=f"{order_id}:{product_id or product}:{position}",
            ordered_at=self._time(cells["ordered_at"]),
            product_name=product,
            product_id=product_id,
            category=cells.get("category") or None,
            quantity=int(quantity),
            unit_price_minor=price,
            currency=currency,
            status=self._status(cells),
            source=self.source,
            line_number=line,
        )

    def _currency(self, cell: str) -> str:
        if cell:
            try:
                return currency_code(cell)
            except AmountError as exc:
                raise ValueError(f"{_column(self.mapping, 'currency')}: {exc}") from None
        if self.mapping.currency is None:
            raise ValueError(f"{_column(self.mapping, 'currency')}: empty")
        return self.mapping.currency

    def _time(self, cell: str) -> datetime:
        mapping = self.mapping
        try:
            if mapping.date_format == "iso":
                parsed = datetime.fromisoformat(cell)
            else:
                parsed = datetime.strptime(cell, mapping.date_format)  # noqa: DTZ007 - zone below
        except ValueError:
            expected = "an ISO 8601 date" if mapping.date_format == "iso" else mapping.date_format
            raise ValueError(
                f"{_column(mapping, 'ordered_at')}: {cell!r} is not a date in {expected}"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=mapping.timezone)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError(
                f"{_column(mapping, 'ordered_at')}: {cell!r} is out of range in UTC"
            ) from None

    def _status(self, cells: dict[str, str]) -> LineStatus:
        if "status" not in cells:
            return LineStatus.ORDERED
        word = cells["status"]
        statuses = self.mapping.statuses
        found = statuses.get(word.casefold())
        if found is not None:
            return found
        if not statuses:
            try:
                return LineStatus(word.lower())
            except ValueError:
                pass
            known = _list([s.value for s in LineStatus])
            raise ValueError(
                f"{_column(self.mapping, 'status')}: {word!r} is none of the statuses ({known}); "
                "map the retailer's words with a [statuses] table"
            )
        raise ValueError(
            f"{_column(self.mapping, 'status')}: {word!r} is not in the mapping's [statuses] "
            f"({_list(statuses)})"
        )


def _column(mapping: ColumnMapping, key: str) -> str:
    return f"column {mapping.columns.get(key, key)!r}"


def _list(items: Iterable[object]) -> str:
    return ", ".join(repr(item) for item in items)


def _text(document: Mapping[str, object], key: str) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: a non-empty string, not {value!r}")
    return value if key == "delimiter" else value.strip()


def _columns(table: object) -> dict[str, str]:
    if table is None:
        raise ValueError(f"columns: missing: a [columns] table naming {_list(REQUIRED)}")
    if not isinstance(table, dict):
        raise ValueError("columns: a table ([columns]), not a value")
    columns: dict[str, str] = {}
    for key, value in table.items():
        if key not in FIELDS:
            raise ValueError(f"columns.{key}: unknown: the columns known are {_list(FIELDS)}")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"columns.{key}: the name of a column, not {value!r}")
        columns[key] = value.strip()
    for key in REQUIRED:
        if key not in columns:
            raise ValueError(f"columns.{key}: missing: name the column holding {FIELDS[key]}")
    return columns


def _statuses(table: object) -> dict[str, LineStatus]:
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ValueError("statuses: a table ([statuses]), not a value")
    statuses: dict[str, LineStatus] = {}
    known = [status.value for status in LineStatus]
    for word, value in table.items():
        if not isinstance(value, str) or value.strip().lower() not in known:
            raise ValueError(
                f"statuses.{word!r}: unknown status {value!r}: the statuses known are "
                f"{_list(known)}"
            )
        statuses[str(word).strip().casefold()] = LineStatus(value.strip().lower())
    return statuses


def _check_date_format(date_format: str) -> None:
    if date_format == "iso":
        return
    sample = datetime(2001, 2, 13, 14, 15, 16, tzinfo=UTC)
    try:
        back = datetime.strptime(sample.strftime(date_format), date_format)  # noqa: DTZ007
    except ValueError as exc:
        raise ValueError(
            f"date_format: {date_format!r} is not a strptime format ({exc}); "
            'write it like "%d/%m/%Y", or "iso"'
        ) from None
    if back.date() != sample.date():
        raise ValueError(
            f"date_format: {date_format!r} does not give the year, month and day "
            '(write it like "%d/%m/%Y", or "iso")'
        )


def _timezone(raw: str) -> tzinfo:
    text = raw.strip()
    if text.upper() in {"UTC", "Z", "GMT"}:
        return UTC
    match = _OFFSET.match(text.upper())
    if match:
        sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"timezone: not an offset from UTC: {raw!r}")
        offset = timedelta(hours=hours, minutes=minutes)
        return timezone(-offset if sign == "-" else offset)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f'timezone: {raw!r} is neither an offset from UTC ("+10:00") nor a zone\'s name '
            '("Australia/Sydney")'
        ) from None
