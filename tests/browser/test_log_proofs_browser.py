"""Taking the proofs away, in Debian's headless Chromium (Playwright): the customer presses
"Download my access log with proofs" on the activity page, the browser saves
``access-log-proofs.json``, and the offline verifier, run as a command in a bare interpreter,
finds it intact."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.instance import Instance
from infomediary.services import checkpoints
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer
from tests.functional.test_broker_privacy import count, new_supplier, person

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "ada@example.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def test_the_downloaded_proofs_verify_offline(
    tab: BaseTab, inst: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inst, "settings", replace(inst.settings, broker_k=-1_000_000))
    customer_id = make_customer(
        inst,
        email=EMAIL,
        password=PASSWORD,
        profile={"postcode": "7000", "birth_year": 1990, "household_size": 2},
    )
    person(inst)
    count(
        inst,
        new_supplier(inst, "Acme Books"),
        {"purpose": "marketing", "where": {"region": ["TAS"]}},
    )

    page = tab.page
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    tab.goto("/activity")
    section = page.get_by_role("region", name="Take your proofs away")
    expect(section).to_contain_text("python -m infomediary.verify access-log-proofs.json")
    screenshot(tab, tmp_path, "log-proofs")
    with page.expect_download() as download_info:
        section.get_by_role("button", name="Download my access log with proofs").click()
    download = download_info.value
    assert download.failure() is None
    assert download.suggested_filename == "access-log-proofs.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    document = json.loads(saved.read_text())
    assert document["customer_id"] == customer_id
    assert len(document["counted_in"]) == 1
    assert document["entries"][0]["shown"]["reason"] == "log downloaded with proofs"

    key = checkpoints.verifier_key(inst)
    done = subprocess.run(
        [sys.executable, "-I", "-m", "infomediary.verify", str(saved), "--key", key],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No problems found." in done.stdout
    assert "1 counts you were part of" in done.stdout

    document["entries"][0]["committed"]["outcome"] = "denied"
    saved.write_text(json.dumps(document))
    forged = subprocess.run(
        [sys.executable, "-I", "-m", "infomediary.verify", str(saved), "--key", key],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert forged.returncode == 1
    assert f"entry {document['entries'][0]['seq']}: its fields do not give" in forged.stdout
    tab.assert_clean()
