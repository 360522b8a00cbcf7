"""Rows of a CSV source, one at a time, each with the physical line it starts on.

The source is read as UTF-8 (a byte-order mark is dropped). A row holding bytes that are not
UTF-8 (a UTF-16 or Latin-1 file) and a row the CSV reader cannot split (a quoted field never
closed, a field past the reader's size limit) come out as :class:`ParseError` and reading
goes on with the next row, so one bad row never stops a file and never raises.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from connectors.lines import ParseError

#: Bytes that are not UTF-8 decode (with ``surrogateescape``) to these code points.
_UNDECODED = re.compile("[\udc80-\udcff]")
NOT_UTF8 = (
    "this line is not UTF-8 text (the file may be saved as UTF-16 or Latin-1); "
    "save or export it as UTF-8 CSV and import it again"
)


class Row(NamedTuple):
    line_number: int
    cells: list[str]
    #: Why the row cannot be read (its bytes are not UTF-8); its cells are then shown only to
    #: tell which order it belongs to.
    error: str | None = None


def read_rows(stream: BinaryIO, source: str, delimiter: str = ",") -> Iterator[Row | ParseError]:
    """The non-blank rows of ``stream``: a :class:`ParseError` for a row the CSV reader cannot
    split, a :class:`Row` with its ``error`` for a row that is not UTF-8. ``stream`` is left
    open."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield ParseError(source, start, f"cannot be read as CSV: {exc}")
                continue
            if not cells or cells == [""]:
                continue
            joined = "".join(cells)
            if not joined.isascii() and _UNDECODED.search(joined):
                yield Row(start, cells, NOT_UTF8)
                continue
            yield Row(start, cells)
    finally:
        text.detach()


def read_header(rows: Iterator[Row | ParseError], source: str, empty: str) -> Row | ParseError:
    """The first of ``rows`` as a header, or the error that stops the file there: ``empty``
    for a file without a first row, or the first row's own error."""
    header = next(rows, None)
    if header is None:
        return ParseError(source, 1, empty)
    if isinstance(header, ParseError):
        return header
    if header.error is not None:
        return ParseError(source, header.line_number, header.error)
    return header


def first_row(head: bytes, delimiter: str = ",") -> list[str] | None:
    """The cells of the first line of ``head`` (a header), or None when it is empty or not
    UTF-8 text."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        decoded = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if not decoded.strip():
        return None
    try:
        cells = next(csv.reader([decoded], delimiter=delimiter, strict=True), None)
    except csv.Error:
        return None
    return [cell.strip() for cell in cells] if cells else None
