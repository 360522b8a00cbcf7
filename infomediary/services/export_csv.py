"""The complete export as a zip of CSV files, laid out by the export's JSON Schema.

The schema (``infomediary/web/static/export.schema.json``) decides every file and column, so
the CSV files and the JSON document cannot drift apart: each section is one file (a section
that is one object is one row); an object inside a row adds dotted columns
(``recipient.kind``); a list inside a row is a file of its own (``consents.receipts.csv``)
whose ``_parent`` column names the ``_id`` of its row in the file it belongs to, and a list of
plain values has one ``value`` column. A value the schema leaves free (an entry's detail, a
receipt's claims, a query's criteria) is JSON text in its cell. ``README.txt`` describes every
file and column from the schema's own descriptions; ``manifest.json`` names the format, the
schema, the export's time and each file's rows and columns. :func:`read_zip` reads the files
back into the JSON document.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from sqlalchemy.orm import Session

from infomediary.instance import Instance
from infomediary.services import Context, exports

CSV_FORMAT = "infomediary-export-csv/1"
#: Top-level values of the document that are no section: they are the manifest's.
DOCUMENT_FIELDS = ("format", "schema", "exported_at")
JSON_REF = "#/$defs/json"
#: A text cell starting with one of these is prefixed with ``'`` so that a spreadsheet never
#: runs it as a formula (OWASP CSV injection); a reader drops one leading ``'``.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


@cache
def schema() -> dict[str, Any]:
    """The export's published JSON Schema."""
    text = (files("infomediary") / "web" / "static" / "export.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _kind(node: dict[str, Any]) -> str:
    if node.get("$ref") == JSON_REF:
        return "json"
    kinds = node.get("type")
    kind = next((k for k in kinds if k != "null"), "null") if isinstance(kinds, list) else kinds
    return str(kind or "json")


@dataclass
class Layout:
    """One CSV file: its scalar columns (name, path in the row's value, schema node) and the
    files of the lists its rows hold."""

    name: str
    description: str
    nested: bool
    columns: list[tuple[str, tuple[str, ...], dict[str, Any]]] = field(default_factory=list)
    children: list[tuple[tuple[str, ...], Layout]] = field(default_factory=list)
    #: A list of plain values: the row's value is its ``value`` column.
    scalar: bool = False

    def walk(self) -> Iterator[Layout]:
        yield self
        for _, child in self.children:
            yield from child.walk()

    @property
    def header(self) -> list[str]:
        return ["_id", *(["_parent"] if self.nested else []), *(c for c, _, _ in self.columns)]


def _layout(name: str, node: dict[str, Any], description: str, nested: bool) -> Layout:
    layout = Layout(name, description or node.get("description", ""), nested)
    if _kind(node) != "object":
        layout.scalar = True
        layout.columns.append(("value", (), node))
        return layout

    def add(obj: dict[str, Any], path: tuple[str, ...]) -> None:
        for prop, sub in obj["properties"].items():
            here = (*path, prop)
            kind = _kind(sub)
            if kind == "object":
                add(sub, here)
            elif kind == "array":
                child = _layout(
                    f"{name}.{'.'.join(here)}", sub["items"], sub.get("description", ""), True
                )
                layout.children.append((here, child))
            else:
                layout.columns.append((".".join(here), here, sub))

    add(node, ())
    return layout


@cache
def layouts() -> tuple[Layout, ...]:
    """Every section's file and the files of its lists, in the document's order."""
    found = []
    for name, node in schema()["properties"].items():
        if name in DOCUMENT_FIELDS:
            continue
        if _kind(node) == "array":
            found.append(_layout(name, node["items"], node.get("description", ""), False))
        else:
            found.append(_layout(name, node, node.get("description", ""), False))
    return tuple(found)


def _is_list(section: str) -> bool:
    return _kind(schema()["properties"][section]) == "array"


# -- cells ---------------------------------------------------------------------------------------


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _untext(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


def _cell(node: dict[str, Any], value: Any) -> str:
    kind = _kind(node)
    if kind == "json":
        return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    if value is None:
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("integer", "number"):
        return json.dumps(value)
    return _text(str(value))


def _nullable(node: dict[str, Any]) -> bool:
    kinds = node.get("type")
    return isinstance(kinds, list) and "null" in kinds


def _value(node: dict[str, Any], cell: str) -> Any:
    kind = _kind(node)
    if kind == "json":
        return json.loads(_untext(cell))
    if cell == "" and _nullable(node):
        return None
    if kind == "boolean":
        return cell == "true"
    if kind in ("integer", "number"):
        return json.loads(cell)
    return _untext(cell)


def _get(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


# -- writing -------------------------------------------------------------------------------------


def _write(layout: Layout, value: Any, parent: int | None, out: dict[str, list[list[str]]]) -> None:
    rows = out.setdefault(layout.name, [])
    row_id = len(rows) + 1
    row = [str(row_id), *([str(parent)] if layout.nested else [])]
    row += [_cell(node, _get(value, path)) for _, path, node in layout.columns]
    rows.append(row)
    for path, child in layout.children:
        for item in _get(value, path):
            _write(child, item, row_id, out)


def tables(document: dict[str, Any]) -> dict[str, list[list[str]]]:
    """Every file's rows (without the header), by file name without ``.csv``."""
    out: dict[str, list[list[str]]] = {}
    for layout in layouts():
        for each in layout.walk():
            out.setdefault(each.name, [])
        section = document[layout.name]
        for item in section if _is_list(layout.name) else [section]:
            _write(layout, item, None, out)
    return out


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _readme(document: dict[str, Any]) -> str:
    lines = [
        "Everything Infomediary holds about you, as CSV files (UTF-8, comma-separated).",
        "",
        f"Format: {document['format']} in CSV ({CSV_FORMAT}).",
        f"Exported at {document['exported_at']}.",
        f"The same data as one JSON document: its schema is {document['schema']}.",
        "",
        "How to read the files:",
        "- Each file has an _id column numbering its rows. A file named after a list",
        "  (consents.receipts.csv) has a _parent column: the _id of the row it belongs to in",
        "  the file named before it (consents.csv).",
        "- A column named a.b is field b of a's object.",
        "- An empty cell is an empty value (null) where the column says it may be empty.",
        "- Times are ISO 8601 with their offset from UTC.",
        "- Cells marked 'JSON' hold JSON text, for values that have no fixed columns.",
        "- A text that starts with = + - @ or ' starts with one extra ' so that spreadsheets",
        "  show it as text and never run it as a formula; drop that first '.",
        "",
        "Suppliers are named by id (supplier_id) and by name (supplier_name) everywhere.",
        "manifest.json lists every file with its rows and columns.",
        "",
    ]
    for layout in layouts():
        for each in layout.walk():
            lines.append(f"{each.name}.csv: {each.description}")
            for column, _, node in each.columns:
                about = node.get("description", "")
                kind = _kind(node)
                marks = [kind if kind != "json" else "JSON"]
                if _nullable(node):
                    marks.append("may be empty")
                if "enum" in node:
                    marks.append("one of " + ", ".join(str(v) for v in node["enum"]))
                lines.append(f"  {column} ({'; '.join(marks)}){': ' + about if about else ''}")
            lines.append("")
    return "\n".join(lines)


def to_zip(document: dict[str, Any]) -> bytes:
    """The document as a zip of CSV files with ``README.txt`` and ``manifest.json``."""
    found = tables(document)
    headers = {each.name: each.header for layout in layouts() for each in layout.walk()}
    manifest = {
        **{name: document[name] for name in DOCUMENT_FIELDS},
        "csv_format": CSV_FORMAT,
        "files": [
            {
                "name": f"{name}.csv",
                "rows": len(found[name]),
                "columns": headers[name],
            }
            for name in headers
        ],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", _readme(document))
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for name, header in headers.items():
            archive.writestr(f"{name}.csv", _csv(header, found[name]))
    return buffer.getvalue()


# -- reading back --------------------------------------------------------------------------------


def _build(
    layout: Layout, row: dict[str, str], children: dict[str, dict[str, list[dict[str, str]]]]
) -> Any:
    if layout.scalar:
        return _value(layout.columns[0][2], row["value"])
    value: dict[str, Any] = {}
    for column, path, node in layout.columns:
        _set(value, path, _value(node, row[column]))
    for path, child in layout.children:
        _set(
            value,
            path,
            [_build(child, r, children) for r in children[child.name].get(row["_id"], [])],
        )
    return value


def read_zip(data: bytes) -> dict[str, Any]:
    """The JSON document a zip written by :func:`to_zip` holds."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        rows = {
            entry["name"][: -len(".csv")]: list(
                csv.DictReader(io.StringIO(archive.read(entry["name"]).decode("utf-8"), newline=""))
            )
            for entry in manifest["files"]
        }
    children: dict[str, dict[str, list[dict[str, str]]]] = {}
    for name, found in rows.items():
        grouped: dict[str, list[dict[str, str]]] = {}
        for row in found:
            grouped.setdefault(row.get("_parent", ""), []).append(row)
        children[name] = grouped
    document: dict[str, Any] = {name: manifest[name] for name in DOCUMENT_FIELDS}
    for layout in layouts():
        built = [_build(layout, row, children) for row in rows[layout.name]]
        document[layout.name] = built if _is_list(layout.name) else built[0]
    return document


# -- the use case --------------------------------------------------------------------------------


def export_zip(
    session: Session,
    inst: Instance,
    customer_id: str,
    ctx: Context,
    *,
    schema_url: str = exports.SCHEMA_PATH,
) -> tuple[bytes, str]:
    """The customer's complete export as a zip of CSV files (logged as such), and its time."""
    document = exports.export(session, inst, customer_id, ctx, schema_url=schema_url, as_csv=True)
    return to_zip(document), str(document["exported_at"])
