"""An ended session stays ended: a request in flight for it, or a half-logged-in session of
the same customer, does not survive logging out everywhere or a password change."""

from __future__ import annotations

from flask import request
from sqlalchemy import delete, select

from infomediary.models import WebSession
from infomediary.web.sessions import ServerSession
from tests.factories import make_customer

EMAIL = "ada@example.org"
PASSWORD = "correct horse battery"


def test_a_session_ended_while_its_request_is_in_flight_does_not_come_back(
    app, client, auth, inst
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    token = client.get_cookie("infomediary_session").value
    interface = app.session_interface
    with app.test_request_context("/dashboard", headers={"Cookie": f"infomediary_session={token}"}):
        loaded = interface.open_session(app, request)
        assert isinstance(loaded, ServerSession)
        assert loaded.stored
        assert loaded.get("customer_id")
        # "log out everywhere" in another request, while this one runs
        with inst.sessions() as db, db.begin():
            db.execute(delete(WebSession))
        loaded["_flashes"] = [("message", "written by the request in flight")]
        loaded.touch = True
        response = app.response_class()
        interface.save_session(app, loaded, response)
    with inst.sessions() as db:
        assert db.scalars(select(WebSession)).all() == []
    assert token not in response.headers.get("Set-Cookie", "")
    assert client.get("/dashboard").status_code == 302
