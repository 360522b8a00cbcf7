from __future__ import annotations


def test_signup_then_profile_shows_name(client, auth):
    response = auth.signup(name="Grace Hopper")
    assert response.status_code == 302
    page = client.get("/profile")
    assert page.status_code == 200
    assert "Grace Hopper" in page.get_data(as_text=True)
