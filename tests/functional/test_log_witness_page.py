"""The activity page carries the browser's witness of the access log: the status it fills,
where to fetch from, whether any checkpoint is signed yet, and the script, served from
static/ within the CSP (no inline script)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from infomediary.instance import Instance
from infomediary.services import checkpoints
from infomediary.web.security import CSP
from tests.factories import make_customer

EMAIL = "grete@example.org"
WITNESS_RE = re.compile(r'<div id="log-witness" role="status" hidden\s+(.*?)></div>', re.DOTALL)


def attributes(page: str) -> dict[str, str]:
    found = WITNESS_RE.search(page)
    assert found, "no witness status on the page"
    return dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', found.group(1)))


def test_the_activity_page_holds_the_witness_and_says_whether_a_checkpoint_exists(
    auth, client: FlaskClient, inst: Instance
) -> None:
    make_customer(inst, email=EMAIL)
    assert auth.login(email=EMAIL).status_code == 302
    answer = client.get("/activity")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert attributes(page) == {
        "data-signed": "no",
        "data-checkpoint-url": "/api/v1/log/checkpoint",
        "data-key-url": "/api/v1/log/key",
        "data-consistency-url": "/api/v1/log/proof/consistency",
        "data-contact": "us at privacy@infomediary.example",
    }
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script src="/static/js/log-witness.js" defer>']
    assert answer.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self';" in CSP
    with inst.sessions() as session:
        checkpoints.sign(session, inst)
    assert attributes(client.get("/activity").get_data(as_text=True))["data-signed"] == "yes"


def test_the_script_is_served_as_javascript(client: FlaskClient) -> None:
    with client.get("/static/js/log-witness.js") as answer:
        assert answer.status_code == 200
        assert answer.mimetype in {"text/javascript", "application/javascript"}
        body = answer.get_data(as_text=True)
    assert "verifyConsistency" in body
    assert "localStorage" in body
