"""A large purchase file in Debian's headless Chromium (Playwright): uploaded through the file
input, listed under Uploads while it waits, and the page, reloading itself without a script
(a Refresh header, under the Content-Security-Policy), shows it done once its job ran."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import expect

from infomediary import create_app
from infomediary.instance import Instance
from infomediary.services.jobs import run_pending
from tests.browser.test_counts import EMAIL, PASSWORD, log_in
from tests.browser_support import BaseTab, open_tab
from tests.factories import make_customer
from tests.functional.test_purchases_import import amazon_file

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def app(inst: Instance) -> Flask:
    """The app with a job threshold of 8 KiB, so a file of 60 lines runs as a job."""
    flask_app = create_app(replace(inst.settings, upload_job_bytes=8192), instance=inst)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def test_a_large_upload_is_followed_until_done(
    tab: BaseTab, inst: Instance, tmp_path: Path
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    page = tab.page
    log_in(tab)
    tab.goto("/purchases")
    big = amazon_file(tmp_path / "big-orders.csv", 60)
    page.get_by_label("Order history file").set_input_files(str(big))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_text("being imported in the background")).to_be_visible()
    uploads = page.get_by_role("table", name="Files and batches imported in the background")
    expect(uploads).to_contain_text("big-orders.csv")
    expect(uploads).to_contain_text("Waiting to start")
    expect(page.get_by_text("this page reloads itself")).to_be_visible()

    assert run_pending(inst) >= 1
    # No click: the page reloads itself (Refresh: 5) and shows the job's end.
    expect(uploads).to_contain_text("60 new, 0 already held", timeout=15_000)
    expect(page.get_by_role("table", name="Purchase lines").get_by_role("row")).to_have_count(51)
    expect(page.get_by_text("this page reloads itself")).to_have_count(0)
    tab.assert_clean()
