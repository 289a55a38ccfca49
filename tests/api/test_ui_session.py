"""The web app's sign-in, session cookie, CSRF and origin checks over real HTTP: the cookie is
for /ui only, a rotated key ends the session, and forged posts change nothing."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml

from tests.api.helpers import eventually

pytestmark = pytest.mark.asyncio


async def sign_in(http: httpx.AsyncClient, key: str) -> httpx.Response:
    return await http.post("/ui/signin", data={"key": key, "next": "/ui/inbox"})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def test_sign_in_sets_a_strict_cookie_for_ui_only(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    """A good key gets an HttpOnly, SameSite=Strict cookie scoped to /ui and a redirect to the
    inbox; a bad one gets the sign-in page again with 401 and no cookie."""
    bad = await sign_in(http, "not-a-key")
    assert bad.status_code == 401
    assert "unknown API key" in bad.text
    assert "set-cookie" not in bad.headers
    good = await sign_in(http, keys["alice"])
    assert good.status_code == 303
    assert good.headers["location"] == "/ui/inbox"
    cookie = good.headers["set-cookie"]
    for part in ("HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="):
        assert part in cookie
    assert "Secure" not in cookie  # development: plain HTTP on loopback
    inbox = await http.get("/ui/inbox")
    assert inbox.status_code == 200
    assert "Signed in as <strong>alice</strong>" in inbox.text
    csp = inbox.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert inbox.headers["x-frame-options"] == "DENY"


async def test_the_json_api_never_accepts_the_cookie(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    """The session cookie sent to the JSON API authenticates nothing: 401 there."""
    await sign_in(http, keys["root"])
    value = http.cookies.get("stepgate_session")
    assert value
    r = await http.get("/workflows", headers={"Cookie": f"stepgate_session={value}"})
    assert r.status_code == 401
    r = await http.post(
        "/approvals/batch",
        json={"items": [{"workflow_id": "x", "gate": "g", "action": "approve"}]},
        headers={"Cookie": f"stepgate_session={value}"},
    )
    assert r.status_code == 401


async def test_a_form_without_the_csrf_token_or_from_another_site_is_refused(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    """Sign-out without the token, or with it but from another origin, is a 403 and the
    session holds; with the token from this origin it ends the session."""
    await sign_in(http, keys["alice"])
    page = await http.get("/ui/inbox")
    token = csrf_of(page.text)
    assert (await http.post("/ui/signout", data={"other": "1"})).status_code == 403
    assert (await http.post("/ui/signout", content=b"csrf=x")).status_code == 415
    assert (await http.post("/ui/signout", data={"csrf": "forged"})).status_code == 403
    foreign = await http.post(
        "/ui/signout", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert (await http.get("/ui/inbox")).status_code == 200
    old = http.cookies.get("stepgate_session")
    out = await http.post("/ui/signout", data={"csrf": token})
    assert out.status_code == 303
    # The old cookie, replayed, no longer opens a session.
    again = await http.get("/ui/inbox", headers={"Cookie": f"stepgate_session={old}"})
    assert again.status_code == 303
    assert again.headers["location"].startswith("/ui/signin")


async def test_a_key_rotated_away_ends_the_session(
    http: httpx.AsyncClient, keys: dict[str, str], tmp_path: Path
) -> None:
    """Removing the key from the keys file while signed in sends the next page to sign-in,
    saying why, and clears the cookie."""
    await sign_in(http, keys["alice"])
    assert (await http.get("/ui/inbox")).status_code == 200
    path = tmp_path / "keys.yaml"
    entries = [e for e in yaml.safe_load(path.read_text()) if e["principal"] != "alice"]
    path.write_text(yaml.safe_dump(entries))

    async def probe() -> httpx.Response:
        return await http.get("/ui/inbox")

    r = await eventually(probe, lambda r: r.status_code == 303, "session ended")
    assert "/ui/signin" in r.headers["location"]
    assert "session%20ended" in r.headers["location"]
    assert "Max-Age=0" in r.headers["set-cookie"]


async def test_sign_in_only_returns_to_this_app(
    http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    """`next` pointing at another site (or a scheme-relative URL) lands on the inbox instead."""
    for target in (
        "https://evil.example/",
        "//evil.example/ui",
        "/ui\\@evil.example",
        "/workflows",
    ):
        r = await http.post("/ui/signin", data={"key": keys["alice"], "next": target})
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/inbox", target


async def test_pages_without_a_session_go_to_sign_in(http: httpx.AsyncClient) -> None:
    """Every page redirects to sign-in with where to come back to; a forged cookie is no
    session."""
    for path in ("/ui/inbox", "/ui/runs", "/ui/start", "/ui/runs/x/gates/g"):
        r = await http.get(path, headers={"Cookie": "stepgate_session=Zm9yZ2Vk"})
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/ui/signin?next=")


async def test_repeated_failed_sign_ins_are_slowed(http: httpx.AsyncClient) -> None:
    """After ten wrong keys in a minute from one address, sign-in answers 429 with Retry-After."""
    codes = [(await sign_in(http, f"wrong-{i}")).status_code for i in range(11)]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
