"""Sign-up, log-in, log-out, CSRF and API tokens over real HTTP."""

from __future__ import annotations

from tests.conftest import LiveServer
from tests.helpers import bearer, problem, sign_up, unique_name


def test_sign_up_sets_httponly_lax_session_cookie(server: LiveServer):
    """The session cookie is HttpOnly and SameSite=Lax; the CSRF cookie is readable."""
    with server.client() as c:
        name = unique_name()
        r = c.post("/api/accounts", json={"username": name, "password": "long-enough-1"})
        assert r.status_code == 201
        cookies = r.headers.get_list("set-cookie")
        session = next(h for h in cookies if h.startswith("tribune_session="))
        csrf = next(h for h in cookies if h.startswith("tribune_csrf="))
        assert "HttpOnly" in session
        assert "samesite=lax" in session.lower()
        assert "HttpOnly" not in csrf
        assert r.json()["user"]["username"] == name
        assert c.get("/api/me").json()["user"]["username"] == name


def test_log_in_log_out(server: LiveServer):
    """Log in with the password; after log-out the cookie no longer works."""
    person = sign_up(server.url, password="s3cret-password")
    name = person.user["username"]
    with server.client() as c:
        problem(
            c.post("/api/session", json={"username": name, "password": "wrong-pass"}),
            401,
            contains="wrong",
        )
        r = c.post("/api/session", json={"username": name.upper(), "password": "s3cret-password"})
        assert r.status_code == 200
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        assert c.get("/api/me").status_code == 200
        assert c.delete("/api/session").status_code == 204
        problem(c.get("/api/me"), 401)


def test_unknown_user_and_wrong_password_look_the_same(server: LiveServer):
    """No account enumeration through log-in errors."""
    person = sign_up(server.url)
    with server.client() as c:
        a = c.post("/api/session", json={"username": "nobody_here", "password": "whatever12"})
        b = c.post(
            "/api/session", json={"username": person.user["username"], "password": "whatever12"}
        )
    assert a.status_code == b.status_code == 401
    assert a.json()["detail"] == b.json()["detail"]


def test_duplicate_username_is_a_conflict(server: LiveServer):
    """Usernames are unique, case-insensitively."""
    person = sign_up(server.url)
    with server.client() as c:
        r = c.post(
            "/api/accounts",
            json={"username": person.user["username"].upper(), "password": "long-enough-1"},
        )
        problem(r, 409, contains="taken")


def test_bad_sign_ups(server: LiveServer):
    """Short passwords, bad usernames, missing fields and extra fields are refused."""
    with server.client() as c:
        problem(
            c.post("/api/accounts", json={"username": "ok_name", "password": "short"}),
            422,
            contains="password",
        )
        problem(
            c.post("/api/accounts", json={"username": "x", "password": "long-enough"}),
            422,
            contains="username",
        )
        problem(
            c.post("/api/accounts", json={"username": "bad name!", "password": "long-enough"}),
            422,
            contains="username",
        )
        problem(c.post("/api/accounts", json={"password": "long-enough"}), 422, contains="username")
        problem(
            c.post(
                "/api/accounts", json={"username": "abc", "password": "long-enough", "admin": True}
            ),
            422,
            contains="admin",
        )


def test_cookie_write_without_csrf_token_is_refused_and_changes_nothing(server: LiveServer):
    """A cookie-authenticated write without X-CSRF-Token: 403, no Space created."""
    person = sign_up(server.url)
    before = person.get("/api/spaces").json()["spaces"]
    del person.headers["X-CSRF-Token"]
    problem(person.post("/api/spaces", json={"title": "forged"}), 403, contains="CSRF")
    person.headers["X-CSRF-Token"] = "not-the-token"
    problem(person.post("/api/spaces", json={"title": "forged"}), 403, contains="CSRF")
    person.headers["X-CSRF-Token"] = person.csrf
    after = person.get("/api/spaces").json()["spaces"]
    assert [s["id"] for s in after] == [s["id"] for s in before]


def test_api_tokens_authenticate_without_csrf_and_can_be_revoked(server: LiveServer):
    """A bearer API token works with no cookie or CSRF header, until revoked."""
    person = sign_up(server.url)
    r = person.post("/api/tokens", json={"name": "bot"})
    assert r.status_code == 201
    token, token_id = r.json()["token"], r.json()["id"]
    assert token.startswith("tbt_")
    with server.client() as bot:
        created = bot.post("/api/spaces", json={"title": "from a bot"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        assert created.json()["host"]["user_id"] == person.user["id"]
        assert [t["id"] for t in person.get("/api/tokens").json()] == [token_id]
        assert person.delete(f"/api/tokens/{token_id}").status_code == 204
        problem(bot.get("/api/me", headers=bearer(token)), 401, contains="revoked")
        problem(person.delete(f"/api/tokens/{token_id}"), 404)


def test_malformed_authorization_headers(server: LiveServer):
    """Unknown schemes and unknown token kinds get 401 with a reason."""
    with server.client() as c:
        problem(c.get("/api/me", headers={"Authorization": "Basic abc"}), 401, contains="Bearer")
        problem(c.get("/api/me", headers=bearer("nonsense")), 401, contains="neither")
        problem(c.get("/api/me", headers=bearer("tbt_forged")), 401)


def test_login_attempts_are_rate_limited(start_server):
    """Guessing passwords hits 429 with Retry-After after the per-minute allowance."""
    live = start_server(login_attempts_per_minute=3)
    person = sign_up(live.url)
    with live.client() as c:
        body = {"username": person.user["username"], "password": "wrong-guess"}
        statuses = [c.post("/api/session", json=body).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        r = c.post("/api/session", json=body)
        problem(r, 429, contains="too many")
        assert int(r.headers["Retry-After"]) >= 1
