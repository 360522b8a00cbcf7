"""The formats known, detection, and the one way to open a source.

Each format is a :class:`connectors.lines.Parser` in a module of its own; this table names
them (module and class), so a format is found, listed in messages and chosen with
``--format`` by its name.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, cast

from connectors.lines import Parser, UnknownFormat

#: name -> "module:Class", in the order detection tries them.
FORMATS: dict[str, str] = {
    "amazon-retail": "connectors.amazon:RetailOrderHistory",
    "amazon-legacy": "connectors.amazon:LegacyItems",
    "shopify": "connectors.shopify:OrdersExport",
    "schema-org": "connectors.schema_org:OrderJsonLd",
    "google-takeout": "connectors.google:TakeoutOrder",
    "generic-csv": "connectors.generic:GenericCsv",
}


def parser(name: str, **options: Any) -> Parser:
    """The parser of a format by its name, made with ``options`` (a Shopify export's
    ``retailer``, say); :class:`UnknownFormat` naming the formats known."""
    target = FORMATS.get(name)
    if target is None:
        raise UnknownFormat(f"unknown format {name!r}: the formats known are {known()}")
    module, cls = target.split(":")
    return cast(Parser, getattr(import_module(module), cls)(**options))


def known() -> str:
    return ", ".join(FORMATS)


def detect(head: bytes) -> Parser:
    """The first format whose ``detect`` accepts ``head`` (the generic CSV needs its mapping
    and is never detected); :class:`UnknownFormat` naming the formats known otherwise."""
    for name in FORMATS:
        if name == "generic-csv":
            continue
        candidate = parser(name)
        if candidate.detect(head):
            return candidate
    raise UnknownFormat(
        f"this file is in none of the formats known ({known()}); name one with --format, or "
        "describe its columns for generic-csv"
    )
