"""Small helpers the API tests share."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

import httpx

_names = itertools.count()


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{next(_names)}_{secrets.token_hex(3)}"


#: every client a test opened; conftest closes them after each test
OPEN_CLIENTS: list[httpx.Client] = []


class Person(httpx.Client):
    """A browser-like client: session cookie plus the CSRF header, and who it is."""

    user: dict[str, Any]
    csrf: str

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        OPEN_CLIENTS.append(self)


def sign_up(base_url: str, name: str | None = None, password: str = "pa55word-long") -> Person:  # noqa: S107
    person = Person(base_url=base_url, timeout=10)
    username = name or unique_name()
    r = person.post(
        "/api/accounts",
        json={"username": username, "password": password, "display_name": username.title()},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    person.user = body["user"]
    person.csrf = body["csrf_token"]
    person.headers["X-CSRF-Token"] = person.csrf
    return person


def problem(response: httpx.Response, status: int, *, contains: str = "") -> dict[str, Any]:
    """Assert an RFC 9457 problem with ``status`` whose detail mentions ``contains``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"].startswith("urn:tribune:problem:")
    assert body["detail"], body
    assert contains.lower() in body["detail"].lower(), body["detail"]
    return body


def create_space(host: httpx.Client, **fields: Any) -> dict[str, Any]:
    payload = {"title": "A Space", **fields}
    r = host.post("/api/spaces", json=payload)
    assert r.status_code == 201, r.text
    space: dict[str, Any] = r.json()
    return space


def join(client: httpx.Client, space_id: str) -> dict[str, Any]:
    r = client.post(f"/api/spaces/{space_id}/join")
    assert r.status_code == 201, r.text
    joined: dict[str, Any] = r.json()
    return joined


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
