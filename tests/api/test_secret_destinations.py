"""A secret goes only where it was declared: an approver who may decide a gate (and nothing
else) cannot redirect the secret a gated call holds to a URL of their choosing, over real HTTP
to the API, a real worker and loopback servers that record where the Authorization header went."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import StartRun
from tests.api.helpers import wait_state
from tests.tools.server import LocalServer, Reply, json_reply

Auth = Callable[[str], dict[str, str]]
TOKEN = f"Tok+en/{uuid.uuid4().hex}="


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalServer, LocalServer]]:
    """The service the definition names, and the approver's own; both record every request."""
    monkeypatch.setenv("STEPGATE_SECRET_APITOKEN", TOKEN)
    declared, other = LocalServer(), LocalServer()
    for srv in (declared, other):
        srv.route("POST", "/deploy", lambda seen: json_reply({"ok": True}))
        srv.route("POST", "/v2/deploy", lambda seen: json_reply({"ok": True}))
        srv.start()
    declared.route(
        "POST", "/moved", lambda seen: Reply(307, b"", {"Location": other.url("/deploy")})
    )
    try:
        yield declared, other
    finally:
        declared.stop()
        other.stop()


def gated(team: str, url: str, secrets: Any, **with_: Any) -> dict[str, Any]:
    return {
        "name": "secret_call",
        "secrets": secrets,
        "steps": [
            {
                "id": "call",
                "tool": "http.request",
                "with": {
                    "method": "POST",
                    "url": url,
                    "headers": {"Authorization": "Bearer ${secret.APITOKEN}"},
                    "json": {"ref": "main"},
                    **with_,
                },
                "approval": {"approvers": [f"role:{team}"]},
            }
        ],
    }


def authorizations(server: LocalServer) -> list[str]:
    return [s.headers.get("authorization", "") for s in server.seen]


async def decide(
    http: httpx.AsyncClient, as_: Auth, workflow_id: str, body: dict[str, Any]
) -> httpx.Response:
    # carol holds only the team's role: she may decide the gate, not start or cancel runs.
    return await http.post(f"/workflows/{workflow_id}/gates/call", json=body, headers=as_("carol"))


async def test_approver_moving_an_unbound_secret_is_422_naming_the_url(
    http: httpx.AsyncClient,
    start_run: StartRun,
    as_: Auth,
    team: str,
    servers: tuple[LocalServer, LocalServer],
) -> None:
    """A modify of only the url of a call whose header holds an unbound secret is a 422
    `bad_patch` naming `url`; the secret never reaches the approver's server, and approving the
    call as declared sends it to the declared one."""
    declared, other = servers
    definition = gated(team, declared.url("/deploy"), ["APITOKEN"])
    workflow_id = await start_run(definition, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    r = await decide(
        http, as_, workflow_id, {"action": "modify", "patch": {"url": other.url("/deploy")}}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "bad_patch"
    message = r.json()["error"]["message"]
    assert "patched input.url" in message and "'APITOKEN'" in message, message
    r = await decide(http, as_, workflow_id, {"action": "modify", "patch": {"url": "x"}})
    assert r.status_code == 422  # an invalid URL is refused on both counts
    r = await decide(http, as_, workflow_id, {"action": "approve"})
    assert r.status_code == 200, r.text
    await wait_state(http, workflow_id, "completed", as_("vic"))
    assert other.seen == []
    assert authorizations(declared) == [f"Bearer {TOKEN}"]


async def test_approver_may_move_a_bound_secret_only_within_its_hosts(
    http: httpx.AsyncClient,
    start_run: StartRun,
    as_: Auth,
    team: str,
    servers: tuple[LocalServer, LocalServer],
) -> None:
    """With `secrets: {APITOKEN: {hosts: [<declared host:port>]}}` a modify that keeps the url on
    that host is taken and the call goes there; one that leaves it is a 422 quoting the binding."""
    declared, other = servers
    here = f"127.0.0.1:{declared.port}"
    definition = gated(team, declared.url("/deploy"), {"APITOKEN": {"hosts": [here]}})
    workflow_id = await start_run(definition, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    r = await decide(
        http, as_, workflow_id, {"action": "modify", "patch": {"url": other.url("/deploy")}}
    )
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert f"to 127.0.0.1:{other.port}" in message and f"only to hosts {here}" in message, message
    r = await decide(
        http, as_, workflow_id, {"action": "modify", "patch": {"url": declared.url("/v2/deploy")}}
    )
    assert r.status_code == 200, r.text
    await wait_state(http, workflow_id, "completed", as_("vic"))
    assert other.seen == []
    assert [s.path for s in declared.seen] == ["/v2/deploy"]
    assert authorizations(declared) == [f"Bearer {TOKEN}"]


async def test_bound_secret_is_not_sent_on_when_the_server_redirects_elsewhere(
    http: httpx.AsyncClient,
    start_run: StartRun,
    as_: Auth,
    team: str,
    servers: tuple[LocalServer, LocalServer],
) -> None:
    """A call that follows redirects, approved as declared, is refused at the hop to a host the
    binding does not name: the run fails `SecretDestinationRefused` and that host gets nothing."""
    declared, other = servers
    here = f"127.0.0.1:{declared.port}"
    definition = gated(
        team, declared.url("/moved"), {"APITOKEN": {"hosts": [here]}}, follow_redirects=True
    )
    workflow_id = await start_run(definition, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    r = await decide(http, as_, workflow_id, {"action": "approve"})
    assert r.status_code == 200, r.text
    status = await wait_state(http, workflow_id, "failed", as_("vic"))
    assert "refused to send secret 'APITOKEN'" in status["error"], status["error"]
    assert [s.path for s in declared.seen] == ["/moved"]
    assert other.seen == []


async def test_secret_bindings_are_checked_with_their_paths(
    http: httpx.AsyncClient, as_: Auth, team: str
) -> None:
    """A binding with a URL for a host, an empty binding and a blank program are a 422 naming
    each place in `secrets:`; POST /definitions/validate lists the same paths."""
    definition = gated(
        team,
        "https://api.example.com/",
        {
            "APITOKEN": {"hosts": ["https://api.example.com/"]},
            "OTHER": {},
            "THIRD": {"argv": [["", "x"]]},
        },
    )
    wanted = ["secrets.APITOKEN.hosts[0]", "secrets.OTHER", "secrets.THIRD.argv[0]"]
    started = [f"definition.{p}" for p in wanted]
    r = await http.post(
        "/workflows", json={"definition": definition, "input": {}}, headers=as_("root")
    )
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == started
    r = await http.post("/definitions/validate", json=definition, headers=as_("root"))
    assert r.status_code == 200 and r.json()["valid"] is False, r.text
    assert [e["path"] for e in r.json()["errors"]] == wanted
