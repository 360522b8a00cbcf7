"""Notifications: each kind appears from the record its event left, unread until marked read,
filtered by the customer's choices, and e-mailed in a digest once; nobody sees another's."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text

from infomediary.audit.log import Actor, ActorType
from infomediary.demo import seed_synthetic
from infomediary.instance import Instance
from infomediary.mail import read_outbox
from infomediary.models import AccessLogEntry, Job, NotificationSettings, utcnow
from infomediary.services import Context, auditing, notifications
from infomediary.services.jobs import run_pending
from tests.conftest import Auth, csrf_token_in
from tests.factories import make_customer, make_grant, make_offer, make_supplier
from tests.functional.test_purchases_import import AMAZON, run_import
from tests.log_reasons import code_of
from tests.oauth_helpers import browser_login, client_session, consent
from tests.outbox import messages_to

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
AUDITOR = Context(Actor(ActorType.AUDITOR, "3f6c1d52-0000-4000-8000-00000000a0d1"))
ALL = list(notifications.KINDS)


def _customer(inst: Instance, client: FlaskClient, email: str = EMAIL) -> str:
    customer_id = make_customer(inst, email=email, password=PASSWORD)
    Auth(client).login(email, PASSWORD)
    return customer_id


def _items(inst: Instance, customer_id: str) -> list[notifications.Notification]:
    with inst.sessions() as session:
        return notifications.list_notifications(session, inst, customer_id).items


def _kinds(inst: Instance, customer_id: str) -> list[str]:
    return [n.kind for n in _items(inst, customer_id)]


def _unread(inst: Instance, customer_id: str) -> int:
    with inst.sessions() as session:
        return notifications.unread_count(session, customer_id)


def _post(client: FlaskClient, path: str, page: str, data: dict[str, object]) -> object:
    token = csrf_token_in(client.get(page).get_data(as_text=True), page)
    return client.post(path, data={"csrf_token": token, **data})


def _choose(
    client: FlaskClient, in_app: list[str], digest_kinds: list[str], digest: bool
) -> object:
    data: dict[str, object] = {"in_app": in_app, "digest_kinds": digest_kinds}
    if digest:
        data["digest"] = "on"
    return _post(client, "/notifications/settings", "/notifications/settings", data)


def _badge(page: str) -> str | None:
    found = re.search(r'<span class="badge nav-badge">([^<]+)<span', page)
    return found.group(1) if found else None


def test_a_supplier_read_through_the_api_is_a_notification_naming_it(
    live_server: str, inst: Instance, client: FlaskClient
) -> None:
    customer_id = _customer(inst, client)
    acme = make_supplier(inst, name="Acme Books")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    oauth = client_session(live_server, acme, "profile.identity:read")
    authorized = consent(
        live_server, browser, oauth, purpose="service", approve=["profile.identity:read"]
    )
    oauth.fetch_token(
        authorization_response=authorized.authorization_response, code_verifier=authorized.verifier
    )
    assert oauth.get(f"{live_server}/api/v1/me").status_code == 200
    items = _items(inst, customer_id)
    assert [n.kind for n in items] == ["supplier_read", "new_grant"]
    assert all(n.supplier == "Acme Books" and n.unread for n in items)
    page = client.get("/notifications").get_data(as_text=True)
    assert "Acme Books read your data" in page
    assert 'href="/activity?actor=supplier&amp;action=read"' in page
    assert "You gave Acme Books consent" in page
    assert acme.id not in page  # named in words, never by id
    assert _badge(page) == "2"


def test_grant_expiring_offer_auditor_and_import_each_appear_with_their_link(
    inst: Instance, client: FlaskClient
) -> None:
    with inst.sessions() as session:
        seed_synthetic(session, inst, 300, workers=1)
    customer_id = make_customer(
        inst,
        email=EMAIL,
        password=PASSWORD,
        profile={"postcode": "2000", "birth_year": 1980, "interests": ["books"]},
    )
    Auth(client).login(EMAIL, PASSWORD)
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, customer_id, acme.id)
    soon = make_supplier(inst, name="Soon Ltd")
    make_grant(inst, customer_id, soon.id, expires_at=utcnow() + timedelta(days=3))
    later = make_supplier(inst, name="Later Ltd")
    make_grant(inst, customer_id, later.id, expires_at=utcnow() + timedelta(days=30))
    shop = make_supplier(
        inst,
        name="Offer Co",
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
        fund_cents=1_000_000,
    )
    assert make_offer(inst, shop.id, max_recipients=1000)["status"] == "delivered"
    with inst.sessions() as session:
        auditing.search(session, inst, AUDITOR.actor.id, auditing.AuditFilter(), AUDITOR)
    assert run_import(inst, customer_id, AMAZON).imported > 0

    items = {(n.kind, n.supplier): n for n in _items(inst, customer_id)}
    assert set(items) == {
        ("new_grant", "Acme Books"),
        ("new_grant", "Soon Ltd"),
        ("new_grant", "Later Ltd"),
        ("consent_expiring", "Soon Ltd"),  # 3 days away; 30 days is not yet
        ("new_offer", "Offer Co"),
        ("auditor_read", None),
        ("import_finished", None),
    }
    links = {kind: n.link for (kind, _), n in items.items()}
    assert links == {
        "new_grant": "/consents",
        "consent_expiring": "/consents",
        "new_offer": "/inbox",
        "auditor_read": "/activity?actor=auditor",
        "import_finished": "/purchases",
    }
    page = client.get("/notifications").get_data(as_text=True)
    assert "Your consent for Soon Ltd expires within 7 days" in page
    assert "A new offer from Offer Co" in page
    assert "An auditor looked at your log entries" in page
    assert "A purchase import finished" in page
    for path in set(links.values()):
        assert client.get(path).status_code == 200, path


def test_mark_all_read_moves_the_watermark_logged_and_new_events_are_unread_again(
    inst: Instance, client: FlaskClient
) -> None:
    customer_id = _customer(inst, client)
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, customer_id, acme.id)
    soon = make_supplier(inst, name="Soon Ltd")
    make_grant(inst, customer_id, soon.id, expires_at=utcnow() + timedelta(days=2))
    assert _unread(inst, customer_id) == 3  # two grants, one expiring
    assert _badge(client.get("/notifications").get_data(as_text=True)) == "3"

    answer = _post(client, "/notifications/read", "/notifications", {})
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert _unread(inst, customer_id) == 0
    page = client.get("/notifications").get_data(as_text=True)
    assert _badge(page) is None
    assert "You gave Acme Books consent" in page  # still listed, read
    assert all(not n.unread for n in _items(inst, customer_id))
    with inst.sessions() as session:
        last = (
            session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer_id)
                .order_by(AccessLogEntry.seq.desc())
            )
            .scalars()
            .first()
        )
        assert last is not None
        assert code_of(last) == "notifications.read"

    with inst.sessions() as session:
        auditing.search(session, inst, AUDITOR.actor.id, auditing.AuditFilter(), AUDITOR)
    assert _unread(inst, customer_id) == 1
    assert next(n.unread for n in _items(inst, customer_id)) is True


def test_the_unread_count_is_capped(inst: Instance, client: FlaskClient) -> None:
    customer_id = _customer(inst, client)
    acme = make_supplier(inst, name="Acme Books")
    for purpose in ("service", "marketing", "analytics"):
        make_grant(inst, customer_id, acme.id, purpose=purpose)
    with inst.sessions() as session:
        for _ in range(8):
            auditing.search(session, inst, AUDITOR.actor.id, auditing.AuditFilter(), AUDITOR)
    assert _unread(inst, customer_id) == notifications.COUNT_CAP + 1
    assert _badge(client.get("/notifications").get_data(as_text=True)) == "9+"


def test_preferences_filter_the_kinds_shown_and_are_logged(
    inst: Instance, client: FlaskClient
) -> None:
    customer_id = _customer(inst, client)
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, customer_id, acme.id, expires_at=utcnow() + timedelta(days=2))
    assert sorted(_kinds(inst, customer_id)) == ["consent_expiring", "new_grant"]
    settings = client.get("/notifications/settings").get_data(as_text=True)
    assert settings.count("checked") == len(ALL) * 2  # everything in the app; digest off

    answer = _choose(client, ["consent_expiring"], [], False)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert _kinds(inst, customer_id) == ["consent_expiring"]
    assert _unread(inst, customer_id) == 1
    with inst.sessions() as session:
        row = session.get(NotificationSettings, customer_id)
        assert row is not None
        assert row.in_app == "consent_expiring"
        assert not row.digest
    saved = client.get("/notifications/settings").get_data(as_text=True)
    assert 'id="in_app-consent_expiring" name="in_app" value="consent_expiring" checked' in saved
    assert 'id="in_app-new_grant" name="in_app" value="new_grant" >' in saved


def test_bad_choices_come_back_as_chosen_with_every_error(
    inst: Instance, client: FlaskClient
) -> None:
    customer_id = _customer(inst, client)
    answer = _choose(client, ["new_offer", "nonsense"], [], True)
    assert answer.status_code == 400  # type: ignore[attr-defined]
    page = answer.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Choose only kinds from the list." in page
    assert "Choose at least one kind for the digest, or turn it off." in page
    assert 'value="new_offer" checked' in page
    assert 'id="digest" name="digest" value="on" checked' in page
    with inst.sessions() as session:
        assert session.get(NotificationSettings, customer_id) is None


def test_the_digest_is_sent_once_with_the_chosen_kinds_and_not_to_others(
    inst: Instance, client: FlaskClient
) -> None:
    customer_id = _customer(inst, client)
    _choose(client, ALL, ["new_grant"], True)
    other = make_customer(inst, email="bob@example.org", password=PASSWORD)  # digest off
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, customer_id, acme.id)
    make_grant(inst, other, acme.id)
    with inst.sessions() as session:
        auditing.search(session, inst, AUDITOR.actor.id, auditing.AuditFilter(), AUDITOR)
        assert session.execute(select(Job.kind).where(Job.key == notifications.JOB)).scalar_one()

    run_pending(inst)
    (sent,) = messages_to(inst.settings, EMAIL)
    assert sent["subject"] == "Your Infomediary notifications"
    assert "1 new consent(s) (Acme Books)" in sent["body"]
    assert "/consents" in sent["body"]
    assert "auditor" not in sent["body"]  # not a kind chosen for the digest
    assert messages_to(inst.settings, "bob@example.org") == []
    with inst.sessions() as session:
        codes = [
            code_of(e)
            for e in session.execute(
                select(AccessLogEntry).where(AccessLogEntry.customer_id == customer_id)
            ).scalars()
        ]
        assert codes.count("notifications.digest_sent") == 1

    # the next run, a period later, has nothing new to tell: nothing is sent twice
    later = utcnow() + timedelta(seconds=inst.settings.digest_seconds + 60)
    with inst.sessions() as session:
        assert notifications.send_digests(session, inst, now=later) == 0
    # a new grant after the digest is in the next one, and only it
    make_grant(inst, customer_id, acme.id, purpose="marketing")
    with inst.sessions() as session:
        assert notifications.send_digests(session, inst, now=later) == 1
        row = session.get(NotificationSettings, customer_id)
        assert row is not None
        assert row.digest_sent_at == later
    first, second = messages_to(inst.settings, EMAIL)
    assert first == sent
    assert "1 new consent(s) (Acme Books)" in second["body"]
    assert all(m.as_dict()["to"] == EMAIL for m in read_outbox(inst.settings))


def test_customers_with_nothing_to_send_do_not_starve_those_after_them(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "DIGEST_BATCH", 1)
    made = sorted(
        (make_customer(inst, email=f"d{n}@example.org", password=PASSWORD), f"d{n}@example.org")
        for n in range(3)
    )
    (quiet, quiet_email), (unconfirmed, _), (busy, busy_email) = made
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, unconfirmed, acme.id)
    make_grant(inst, busy, acme.id)
    with inst.sessions() as session:
        for customer_id, _email in made:
            session.add(
                NotificationSettings(
                    customer_id=customer_id,
                    in_app=" ".join(ALL),
                    digest_kinds="new_grant",
                    digest=True,
                    seen_seq=0,
                    digest_seq=0,
                )
            )
        session.execute(
            text("UPDATE customers SET verified_at = NULL WHERE id = :id"), {"id": unconfirmed}
        )
        session.commit()
    now = utcnow()
    sent = []
    for minute in range(3):
        with inst.sessions() as session:
            at = now + timedelta(minutes=minute)
            sent.append(notifications.send_digests(session, inst, now=at))
    assert sent == [0, 0, 1]
    assert len(messages_to(inst.settings, busy_email)) == 1
    with inst.sessions() as session:
        quiet_row = session.get_one(NotificationSettings, quiet)
        # Only the time it was looked at moved: the digest's own watermarks are unchanged.
        assert quiet_row.digest_sent_at is None
        assert quiet_row.digest_seq == 0
    # The quiet customer's first grant is in their next digest.
    make_grant(inst, quiet, acme.id)
    with inst.sessions() as session:
        assert notifications.send_digests(session, inst, now=now + timedelta(minutes=3)) == 1
    assert len(messages_to(inst.settings, quiet_email)) == 1


def test_one_customer_never_sees_anothers_notifications(
    inst: Instance, client: FlaskClient
) -> None:
    mine = _customer(inst, client)
    theirs = make_customer(inst, email="bob@example.org", password=PASSWORD)
    hidden = make_supplier(inst, name="Hidden Ltd")
    make_grant(inst, theirs, hidden.id, expires_at=utcnow() + timedelta(days=1))
    assert _kinds(inst, mine) == []
    assert _unread(inst, mine) == 0
    page = client.get("/notifications").get_data(as_text=True)
    assert "Hidden Ltd" not in page
    assert _badge(page) is None
    assert sorted(_kinds(inst, theirs)) == ["consent_expiring", "new_grant"]


@pytest.mark.parametrize(
    "path", ["/notifications", "/notifications/settings"], ids=["list", "settings"]
)
def test_pages_need_a_login(client: FlaskClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 302
    assert "/login" in answer.headers["Location"]


def test_posts_need_the_csrf_token(inst: Instance, client: FlaskClient) -> None:
    customer_id = _customer(inst, client)
    assert client.post("/notifications/read", data={"all": "1"}).status_code == 403
    assert client.post("/notifications/settings", data={"in_app": ALL}).status_code == 403
    with inst.sessions() as session:
        assert session.get(NotificationSettings, customer_id) is None


def test_the_cli_sends_the_digest_now_once(
    inst: Instance, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.functional.test_cli import run

    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(inst.settings.instance_path))
    monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", inst.settings.database_url)
    customer_id = _customer(inst, client)
    _choose(client, ALL, ALL, True)
    make_grant(inst, customer_id, make_supplier(inst, name="Acme Books").id)
    assert run("notifications", "digest", "--json") == (0, '{"sent": 1}\n')
    assert run("notifications", "digest") == (0, "0 digest(s) sent\n")
    assert len(messages_to(inst.settings, EMAIL)) == 1


def test_the_unread_log_query_is_a_range_of_the_customer_seq_index(inst: Instance) -> None:
    """Unread supplier reads are found through ``(customer_id, seq)``, not by scanning the log."""
    since = notifications._Since(None, 41)
    query = notifications._log_query("c-1", notifications.SUPPLIER_READ, since).limit(10)
    sqlite = inst.engine.dialect.name == "sqlite"
    with inst.sessions() as session:
        if not sqlite:  # an empty table would be read whole: ask whether the index can serve
            session.execute(text("SET LOCAL enable_seqscan = off"))
        compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        plan = " ".join(str(row) for row in session.execute(text(f"{explain}{compiled}")))
    assert "ix_access_log_customer_seq" in plan, plan
