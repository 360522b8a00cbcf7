"""The table of formats: every name is a real parser; anything else is refused by name."""

from __future__ import annotations

import pytest


def test_the_formats_table_names_real_parsers_and_refuses_others() -> None:
    from connectors import formats
    from connectors.lines import UnknownFormat

    for name in formats.FORMATS:
        assert formats.parser(name).name == name
    assert formats.parser("shopify", retailer="Corner Books").retailer == "Corner Books"  # type: ignore[attr-defined]
    with pytest.raises(UnknownFormat, match="amazon-retail, amazon-legacy"):
        formats.parser("csv-of-my-own")
    with pytest.raises(UnknownFormat, match="none of the formats known"):
        formats.detect(b"Date,Thing,Price\r\n1/1/24,tea,2.00\r\n")
