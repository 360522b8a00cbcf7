"""Downloading the complete export from the account page, in Debian's headless Chromium
(Playwright), at desktop size and at 390 px: the JSON document and the zip of CSV files are
saved, parsed and checked against the published schema, which the page links to."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from playwright.sync_api import expect

from infomediary.instance import Instance
from infomediary.services import export_csv
from tests.browser_support import NARROW, BaseTab, assert_fits, open_tab, screenshot
from tests.factories import make_customer

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "export@example.org"
PASSWORD = "correct horse battery staple"
NAME = "Export Reader"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def _log_in(tab: BaseTab, inst: Instance) -> str:
    customer_id = make_customer(
        inst,
        email=EMAIL,
        password=PASSWORD,
        name=NAME,
        profile={"postcode": "2000", "interests": ["books"]},
    )
    page = tab.page
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(tab.url("/dashboard"))
    return customer_id


def _valid(document: dict[str, object]) -> None:
    schema = export_csv.schema()
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_both_formats_download_from_the_account_page_and_parse(
    tab: BaseTab, inst: Instance, tmp_path: Path, narrow: bool
) -> None:
    page = tab.page
    if narrow:
        page.set_viewport_size(NARROW)
    customer_id = _log_in(tab, inst)
    tab.goto("/account")
    section = page.locator("section").filter(
        has=page.get_by_role("heading", name="Export everything")
    )
    expect(section).to_be_visible()
    json_button = section.get_by_role("button", name="Download my data (JSON)")
    csv_button = section.get_by_role("button", name="Download as CSV files (zip)")
    expect(json_button).to_be_visible()
    expect(csv_button).to_be_visible()
    # nothing wider than the window, and both buttons inside it
    assert_fits(page)
    width = page.viewport_size["width"] if page.viewport_size else 0
    for button in (json_button, csv_button):
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= width
    if not narrow:
        screenshot(tab, tmp_path, "export")

    # the JSON document, by keyboard: focus the button and press Enter
    json_button.focus()
    expect(json_button).to_be_focused()
    with page.expect_download() as json_download:
        page.keyboard.press("Enter")
    download = json_download.value
    assert download.failure() is None
    assert re.fullmatch(r"infomediary-export-\d{8}\.json", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    document = json.loads(saved.read_text(encoding="utf-8"))
    _valid(document)
    assert document["account"] == {**document["account"], "id": customer_id, "email": EMAIL}
    assert document["profile"]["name"] == NAME
    assert document["profile"]["interests"] == ["books"]

    # the zip of CSV files
    with page.expect_download() as csv_download:
        csv_button.click()
    download = csv_download.value
    assert download.failure() is None
    assert re.fullmatch(r"infomediary-export-\d{8}\.zip", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert {"README.txt", "manifest.json", "account.csv", "access_log.csv"} <= set(
            archive.namelist()
        )
    from_csv = export_csv.read_zip(saved.read_bytes())
    _valid(from_csv)
    assert from_csv["account"] == document["account"]
    assert from_csv["profile"] == document["profile"]
    # the CSV file's log holds the JSON download's entry, which the JSON file could not
    assert from_csv["access_log"][: len(document["access_log"])] == document["access_log"]
    assert from_csv["access_log"][-1]["reason"] == "full export downloaded"

    # the page links to the schema the documents follow
    link = section.get_by_role("link", name="its published schema")
    href = link.get_attribute("href")
    assert href
    schema = page.request.get(tab.url(href))
    assert schema.ok
    assert schema.json()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["schema"].endswith(href)
    tab.assert_clean()
