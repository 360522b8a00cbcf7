"""The customer's proof file through the web: "Download my access log with proofs" is a
POST with CSRF, logged, served as an attachment that holds this customer's entries and the
counts they were part of (never another customer's id or detail) and verifies offline;
bounded, with pages that cover every entry once."""

from __future__ import annotations

import base64
import io
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from infomediary import verify
from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, LogCheckpoint, Release
from infomediary.services import Context, checkpoints, log_proofs
from tests.conftest import Auth, csrf
from tests.factories import make_customer
from tests.functional.test_broker_privacy import count, new_supplier, person

EMAIL, PASSWORD = "proofs@example.org", "correct horse battery"
TAS = {"purpose": "marketing", "where": {"region": ["TAS"]}}
PROFILE = {"postcode": "7000", "birth_year": 1990, "household_size": 2, "interests": ["books"]}


def customer_entries(inst: Instance, customer_id: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(
            session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer_id)
                .order_by(AccessLogEntry.seq)
            ).scalars()
        )


def downloads(inst: Instance, customer_id: str) -> list[AccessLogEntry]:
    return [
        e
        for e in customer_entries(inst, customer_id)
        if e.reason_data == log_proofs.REASON.to_json()
    ]


def post(client: FlaskClient, **fields: str) -> Any:
    return client.post("/activity/proofs", data={"csrf_token": csrf(client, "/activity"), **fields})


def checked(tmp_path: Path, document: dict[str, Any], *args: str) -> tuple[int, str]:
    path = tmp_path / "access-log-proofs.json"
    path.write_text(json.dumps(document))
    out = io.StringIO()
    return verify.main([str(path), *args], out=out), out.getvalue()


@pytest.fixture
def customer(inst: Instance, auth: Auth) -> str:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, profile=PROFILE)
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    return customer_id


def test_the_activity_page_offers_the_download_as_a_post_form(
    client: FlaskClient, customer: str
) -> None:
    page = client.get("/activity").get_data(as_text=True)
    form = page[page.index('<form method="post" action="/activity/proofs"') :]
    form = form[: form.index("</form>")]
    assert 'name="csrf_token"' in form
    assert 'name="since"' in form
    assert "Download my access log with proofs" in form
    assert "python -m infomediary.verify access-log-proofs.json" in page


def test_the_file_holds_only_this_customers_entries_and_counts_and_verifies(
    client: FlaskClient, inst: Instance, customer: str, tmp_path: Path
) -> None:
    other = person(inst)
    acme = new_supplier(inst, "Acme Books")
    count(inst, acme, TAS)  # both counted
    count(inst, acme, {"purpose": "analytics", "where": {"region": ["NT"]}})  # neither
    response = post(client)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="access-log-proofs.json"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    document = json.loads(text)
    assert document["format"] == "infomediary-log-proofs/1"
    assert document["customer_id"] == customer

    mine = customer_entries(inst, customer)
    assert [e["seq"] for e in document["entries"]] == [e.seq for e in reversed(mine)]
    assert {e["openings"]["customer_id"] for e in document["entries"]} == {customer}
    with inst.sessions() as session:
        releases = session.execute(select(func.count()).select_from(Release)).scalar_one()
    assert releases == 2
    [counted] = document["counted_in"]
    assert counted["shown"]["action"] == "count"
    assert counted["shown"]["actor"]["name"] == "Acme Books"
    assert counted["shown"]["detail"]["criteria"]["where"] == {"region": ["TAS"]}
    assert counted["committed"]["customer"] is None

    # nothing of the other customer: no id, no detail, no commitment
    assert other not in text
    for entry in customer_entries(inst, other):
        assert entry.customer_commitment is not None
        assert base64.b64encode(entry.customer_commitment).decode() not in text
        if entry.detail is not None:
            assert base64.b64encode(entry.detail).decode() not in text

    # the download is logged, first in the file, and the checkpoint covers it
    [logged] = downloads(inst, customer)
    newest = document["entries"][0]
    assert newest["seq"] == logged.seq
    assert logged.action == "export"
    assert logged.actor_type == "customer"
    assert newest["shown"]["reason"] == "log downloaded with proofs"
    assert document["tree_size"] > logged.seq
    with inst.sessions() as session:
        signed = session.execute(
            select(LogCheckpoint).order_by(LogCheckpoint.size.desc()).limit(1)
        ).scalar_one()
    assert document["checkpoint"] == signed.note
    assert signed.size == document["tree_size"]

    status, output = checked(tmp_path, document, "--key", document["vkey"])
    assert status == verify.OK, output
    assert "1 counts you were part of" in output


def test_a_get_of_the_download_is_405_and_writes_nothing(
    client: FlaskClient, inst: Instance, customer: str
) -> None:
    assert client.get("/activity/proofs").status_code == 405
    assert downloads(inst, customer) == []


def test_the_download_needs_the_csrf_token_and_a_login(
    client: FlaskClient, inst: Instance, customer: str, auth: Auth
) -> None:
    assert client.post("/activity/proofs", data={"since": ""}).status_code == 403
    assert client.post("/activity/proofs", data={"csrf_token": "forged"}).status_code == 403
    token = csrf(client, "/activity")
    refused = client.post(
        "/activity/proofs",
        data={"csrf_token": token},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert refused.status_code == 403
    assert downloads(inst, customer) == []
    auth.logout()
    token = csrf(client, "/login")
    response = client.post("/activity/proofs", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")
    assert downloads(inst, customer) == []


def test_since_gives_a_consistency_proof_and_a_bad_one_is_refused_or_noted(
    client: FlaskClient, inst: Instance, customer: str, tmp_path: Path
) -> None:
    first = post(client).get_json(force=True)
    old = tmp_path / "first.json"
    old.write_text(json.dumps(first))
    person(inst)  # the log grows
    second = post(client, since=str(first["tree_size"])).get_json(force=True)
    assert [(p["from"], p["to"]) for p in second["consistency"]] == [
        (first["tree_size"], second["tree_size"])
    ]
    assert "since" in second["consistency"][0]["why"]
    status, output = checked(
        tmp_path, second, "--checkpoint", str(old), "--key", checkpoints.verifier_key(inst)
    )
    assert status == verify.OK, output
    assert "1 older checkpoints checked" in output

    too_big = post(client, since="999999").get_json(force=True)
    assert any("No consistency proof from size 999999" in n for n in too_big["notes"])
    refused = post(client, since="three")
    assert refused.status_code == 400
    assert "text/html" in refused.headers["Content-Type"]
    assert len(downloads(inst, customer)) == 3  # the refused one logged nothing


@pytest.mark.parametrize("bound", ["MAX_COUNTS", "MEMBER_BUDGET"])
def test_pages_cover_every_entry_and_count_once(
    client: FlaskClient,
    inst: Instance,
    customer: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bound: str,
) -> None:
    """Three entries a file, and one count (by their number, or by the budget of member
    records rebuilt a file): the pages, in turn, hold every entry and count once."""
    monkeypatch.setattr(log_proofs, "MAX_ENTRIES", 3)
    monkeypatch.setattr(log_proofs, bound, 1)
    acme = new_supplier(inst, "Acme Books")
    for purpose in ("marketing", "analytics", "research"):
        count(inst, acme, {"purpose": purpose, "where": {"region": ["TAS"]}})
        with inst.sessions() as session:  # entries of theirs between the counts
            log_proofs.download(session, inst, customer, Context(Actor.customer(customer)), None)
    first = post(client).get_json(force=True)
    covered = first["page"]["covers_to"]
    pages = [first]
    while pages[-1]["page"]["older"] is not None:
        before = str(pages[-1]["page"]["older"])
        pages.append(post(client, before=before).get_json(force=True))
        assert len(pages) < 20
    ranges = [(p["page"]["covers_from"], p["page"]["covers_to"]) for p in pages]
    assert ranges[-1][0] == 0
    assert all(newer[0] == older[1] + 1 for newer, older in pairwise(ranges))
    seen = [e["seq"] for p in pages for e in p["entries"] if e["seq"] <= covered]
    counts = [c["seq"] for p in pages for c in p["counted_in"]]
    assert all(len(p["entries"]) <= 3 and len(p["counted_in"]) <= 1 for p in pages)
    assert seen == [e.seq for e in reversed(customer_entries(inst, customer)) if e.seq <= covered]
    assert len(counts) == len(set(counts)) == 3
    assert counts == sorted(counts, reverse=True)
    for number, page in enumerate(pages):
        status, output = checked(tmp_path, page, "--key", checkpoints.verifier_key(inst))
        assert status == verify.OK, (number, output)


def test_a_download_commits_its_entry_then_its_checkpoint_and_nothing_else(
    inst: Instance, customer: str
) -> None:
    with inst.sessions() as session:
        commits: list[int] = []
        commit = session.commit

        def counted() -> None:
            commits.append(1)
            commit()

        session.commit = counted  # type: ignore[method-assign]
        before = len(customer_entries(inst, customer))
        log_proofs.download(session, inst, customer, Context(Actor.customer(customer)), None)
        assert commits == [1, 1]
        assert not session.in_transaction() or not session.dirty
    assert len(customer_entries(inst, customer)) == before + 1


def test_downloads_are_limited_per_account(
    client: FlaskClient, inst: Instance, customer: str
) -> None:
    token = csrf(client, "/activity")
    statuses = [
        client.post("/activity/proofs", data={"csrf_token": token}).status_code for _ in range(11)
    ]
    assert statuses == [200] * 10 + [429]
    assert len(downloads(inst, customer)) == 10
