"""``/metrics``: hidden without a token, refused with a wrong one, and the exposition counts what
happened (requests by route, access-log appends, epsilon, suppressed answers, the index, jobs),
summed over processes in multiprocess mode. Real services, real OAuth tokens, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from infomediary import create_app, metrics
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, utcnow
from infomediary.services import jobs
from tests.factories import make_customer
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier
from tests.scripted_noise import scripted_instances

TOKEN = "metrics-token-7d1c0a9e5b"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
EMAIL, PASSWORD = "metrics.reader@example.org", "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]
FAILING = "test.metrics.failing"
PROBE = "test.metrics.probe"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _failing(session: Any, inst: Instance, run: jobs.JobRun) -> None:
    raise RuntimeError("a value that must reach no label")


@pytest.fixture(autouse=True)
def kinds() -> None:
    jobs.register(FAILING, _failing, max_attempts=2)


@pytest.fixture
def broker_inst(inst: Instance) -> Iterator[Instance]:
    """The test's database and keys with the broker's noise scripted (every sample 0)."""
    with scripted_instances() as open_scripted:
        yield open_scripted(inst.settings, [0] * 16)


@pytest.fixture
def app(broker_inst: Instance) -> Flask:
    """This module's app: the metrics token set (the conftest's app has none)."""
    flask_app = create_app(replace(broker_inst.settings, metrics_token=TOKEN), instance=broker_inst)
    flask_app.config["TESTING"] = True
    return flask_app


def parse(exposition: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(client: FlaskClient) -> tuple[Samples, str]:
    response = client.get("/metrics", headers=HEADERS)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_data(as_text=True)
    return parse(body), body


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_not_found_without_a_token(inst: Instance) -> None:
    client = create_app(inst.settings, instance=inst).test_client()
    assert inst.settings.metrics_token == ""
    for headers in ({}, HEADERS, {"Authorization": "Bearer "}):
        hidden = client.get("/metrics", headers={"Accept": "application/json", **headers})
        unknown = client.get("/no-such-page", headers={"Accept": "application/json"})
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.mimetype == unknown.mimetype == "application/problem+json"
        assert hidden.get_json() == unknown.get_json()
        assert hidden.get_json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_authorization"),
        ("Bearer", "missing_authorization"),
        ("Basic bWV0cmljczp4", "missing_authorization"),
        ("Bearer wrong-token", "invalid_token"),
        (f"Bearer {TOKEN}x", "invalid_token"),
        (f"Bearer {TOKEN[:-1]}", "invalid_token"),
    ],
)
def test_metrics_refuse_a_missing_or_wrong_token(
    client: FlaskClient, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    assert TOKEN not in response.get_data(as_text=True)


def test_metrics_answer_the_exposition_with_the_token(client: FlaskClient) -> None:
    response = client.get("/metrics", headers=HEADERS)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == metrics.CONTENT_TYPE_LATEST
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    samples = parse(response.get_data(as_text=True))
    names = {name for name, _ in samples}
    assert "infomediary_access_log_appends_total" in names
    assert "infomediary_broker_suppressed_answers_total" in names


def _read_me(live_server: str, inst: Instance) -> str:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    supplier = make_supplier(inst, name="Metered Reads")
    client = client_session(live_server, supplier, "profile.identity:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    result = consent(live_server, browser, client, purpose="marketing")
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    me = client.get(f"{live_server}/api/v1/me")
    assert me.status_code == 200, me.text
    browser.close()
    client.close()
    return customer_id


def _count(live_server: str, inst: Instance) -> dict[str, Any]:
    creds = make_supplier(
        inst,
        name="Metered Counts",
        scopes=("audience:count",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope="audience:count",
        token_endpoint=f"{live_server}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")
    query = {"purpose": "marketing", "where": {"age_band": ["25-34"]}}
    answer = client.post(f"{live_server}/api/v1/audiences/count", json=query)
    client.close()
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _entries(inst: Instance) -> int:
    with inst.sessions() as session:
        return int(session.execute(select(func.count()).select_from(AccessLogEntry)).scalar_one())


def test_the_exposition_counts_requests_appends_epsilon_and_the_index(
    live_server: str, broker_inst: Instance
) -> None:
    def fetch() -> tuple[Samples, str]:
        with requests.get(f"{live_server}/metrics", headers=HEADERS, timeout=30) as response:
            assert response.status_code == 200, response.text
            return parse(response.text), response.text

    before, _ = fetch()
    entries = _entries(broker_inst)
    customer_id = _read_me(live_server, broker_inst)
    answer = _count(live_server, broker_inst)
    after, text = fetch()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    me = {"method": "GET", "route": "/api/v1/me", "status": "2xx"}
    assert delta("infomediary_http_request_duration_seconds_count", **me) == 1
    assert delta("infomediary_http_request_duration_seconds_sum", **me) > 0
    assert 'route="/api/v1/audiences/count"' in text
    appended = delta("infomediary_access_log_appends_total", outcome="allowed") + delta(
        "infomediary_access_log_appends_total", outcome="denied"
    )
    assert appended == _entries(broker_inst) - entries > 0
    # nobody matches and the scripted noise adds 0: charged, and withheld below k
    assert answer["suppressed"] is True
    assert delta("infomediary_broker_epsilon_spent_total") == pytest.approx(answer["epsilon"])
    assert answer["epsilon"] == pytest.approx(broker_inst.settings.broker_epsilon)
    assert delta("infomediary_broker_suppressed_answers_total", part="count") == 1
    assert delta("infomediary_broker_index_build_seconds_count") == 1  # this instance's first
    assert value(after, "infomediary_broker_index_version_lag") == 0
    assert customer_id not in text
    assert EMAIL not in text


def test_job_failures_and_the_queue_depth(client: FlaskClient, inst: Instance) -> None:
    before, _ = scrape(client)
    now = utcnow()
    with inst.sessions() as session, session.begin():
        jobs.enqueue(session, PROBE, {"n": 1})
        jobs.enqueue(session, PROBE, {"n": 2}, run_after=now + timedelta(hours=1))
        jobs.enqueue(session, FAILING, {"n": 3})
    assert jobs.run_one(inst, kinds=[FAILING])  # fails; retried later
    after, text = scrape(client)
    failures = "infomediary_jobs_failures_total"
    assert value(after, failures, kind=FAILING) - value(before, failures, kind=FAILING) == 1
    depth = "infomediary_jobs_queue_depth"
    assert value(after, depth, kind=PROBE, status="due") == 1
    assert value(after, depth, kind=PROBE, status="scheduled") == 1
    assert value(after, depth, kind=FAILING, status="scheduled") == 1
    assert value(after, depth, kind=FAILING, status="due") == 0
    assert (depth, (("kind", FAILING), ("status", "failed"))) in after  # zero, not absent
    assert "a value that must reach no label" not in text


def test_labels_name_route_patterns_never_paths(client: FlaskClient) -> None:
    client.get("/suppliers/marker-4e1f9")
    client.get("/no/such/page/marker-88c2")
    client.open("/healthz", method="BREW")
    _, text = scrape(client)
    assert "marker-" not in text
    assert 'route="/suppliers/<supplier_id>"' in text
    assert 'route="<unmatched>"' in text
    assert 'method="other"' in text
    assert 'method="BREW"' not in text


def _count_in_child(folder: Path, failures: int) -> int:
    code = (
        "from infomediary import metrics\n"
        f"metrics.JOB_FAILURES.labels('test.metrics.child').inc({failures})\n"
        "metrics.observe_request('GET', '/child', 200, 0.01)\n"
        "import os; print(os.getpid())\n"
    )
    env = {**os.environ, metrics.MULTIPROC_ENV: str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


def test_multiprocess_mode_sums_the_processes(
    client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = [_count_in_child(tmp_path, 2), _count_in_child(tmp_path, 3)]
    assert list(tmp_path.glob("counter_*.db"))
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    samples, _ = scrape(client)
    assert value(samples, "infomediary_jobs_failures_total", kind="test.metrics.child") == 5
    child = {"method": "GET", "route": "/child", "status": "2xx"}
    assert value(samples, "infomediary_http_request_duration_seconds_count", **child) == 2
    for pid in pids:  # gunicorn's child_exit hook, as gunicorn calls it
        metrics.child_exit(None, SimpleNamespace(pid=pid))
    metrics.on_starting(None)  # the next server starts from an empty folder
    assert not list(tmp_path.glob("*.db"))
    samples, _ = scrape(client)
    assert value(samples, "infomediary_jobs_failures_total", kind="test.metrics.child") == 0


def test_the_metrics_module_loads_only_prometheus_client_and_the_standard_library() -> None:
    code = "import json, sys; import infomediary.metrics; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout))
    ours = {name for name in loaded if name.split(".")[0] == "infomediary"}
    assert ours == {"infomediary", "infomediary.metrics"}
    assert not {"flask", "sqlalchemy", "werkzeug", "pythonjsonlogger"} & loaded
    assert "prometheus_client" in loaded


def test_an_offer_counts_the_epsilon_charged_to_its_supplier(
    live_server: str, broker_inst: Instance
) -> None:
    """An offer charges its supplier's budget as a count does (its reach is a noisy count)."""
    creds = make_supplier(
        broker_inst,
        name="Metered Offers",
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope="offers:send",
        token_endpoint=f"{live_server}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")

    def spent() -> float:
        with requests.get(f"{live_server}/metrics", headers=HEADERS, timeout=30) as response:
            assert response.status_code == 200, response.text
            return value(parse(response.text), "infomediary_broker_epsilon_spent_total")

    before = spent()
    offer = {
        "purpose": "marketing",
        "where": {"age_band": ["25-34"]},
        "title": "A free bookmark",
        "body": "Ask at the counter.",
        "reward_cents": 0,
        "max_recipients": 10,
        "expires_in_days": 7,
    }
    sent = client.post(f"{live_server}/api/v1/offers", json=offer)
    client.close()
    assert sent.status_code == 202, sent.text
    assert sent.json()["epsilon_spent"] > 0
    assert spent() - before == pytest.approx(sent.json()["epsilon_spent"])
