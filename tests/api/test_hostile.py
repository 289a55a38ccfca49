"""Hostile requests against the live API: each gets a fast, precise 4xx, and the API stays up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from activities.config import Settings
from tests.api.conftest import Serve
from tests.support import util
from tests.test_hostile_input import ALIAS_BOMB

Auth = Callable[[str], dict[str, str]]
MIB = 1_048_576


async def raw_request(
    base: str, head: list[str], chunks: list[bytes] | None = None
) -> tuple[int, dict[str, Any]]:
    """Send a request as written (headers, then optional chunked body) on a socket of its own;
    return the status and the JSON body. httpx would stop at the server's early answer, and the
    answer is read while the body is still being sent: the server closes once it has answered."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)

    async def answer() -> tuple[int, dict[str, Any]]:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        length = next(
            int(v)
            for k, _, v in (h.partition(": ") for h in lines)
            if k.lower() == "content-length"
        )
        return int(lines[0].split()[1]), json.loads(await reader.readexactly(length))

    reply = asyncio.create_task(answer())
    writer.write(("\r\n".join([*head, f"Host: {url.netloc}", "", ""])).encode())
    try:
        for chunk in chunks or []:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        if chunks is not None:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
    except ConnectionError:
        pass  # the server answered and closed before reading everything: expected here
    try:
        return await asyncio.wait_for(reply, timeout=30)
    finally:
        writer.close()


async def test_validate_refuses_alias_bomb_from_a_viewer(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """An alias bomb (one of 515 bytes held the API for minutes and 2.4 GB) is a 422 naming the
    rule, for any key, and /healthz answers right after."""
    r = await http.post(
        "/definitions/validate",
        content=ALIAS_BOMB,
        headers={**as_("vic"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"
    assert "YAML anchors and aliases are not accepted" in r.json()["error"]["message"]
    assert (await http.get("/healthz")).status_code == 200


async def test_body_announced_too_large_refused_before_reading(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """A request announcing 50 MB gets 413 in the API's error shape without sending a byte."""
    status, body = await raw_request(
        str(http.base_url),
        [
            "POST /codec/decode HTTP/1.1",
            f"Authorization: {as_('vic')['Authorization']}",
            "Content-Type: application/json",
            f"Content-Length: {50 * MIB}",
        ],
    )
    assert status == 413
    assert body["error"]["code"] == "too_large"


async def test_chunked_body_over_limit_refused(http: httpx.AsyncClient, as_: Auth) -> None:
    """A body streamed in chunks without a length is cut off with 413 once it passes the limit."""
    status, body = await raw_request(
        str(http.base_url),
        [
            "POST /workflows HTTP/1.1",
            f"Authorization: {as_('olga')['Authorization']}",
            "Content-Type: application/json",
            "Transfer-Encoding: chunked",
        ],
        [b" " * 65_536] * 18,
    )
    assert status == 413
    assert body["error"]["message"] == f"the request body is larger than {MIB} bytes"


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (b'{"definition": "gated", "input": {"ref": NaN}}', "body.input.ref", "NaN is not"),
        (
            b'{"definition": "gated", "input": {"ref": "x", "n": ' + b"9" * 5000 + b"}}",
            "body.input.n",
            "a number is at most 100 characters",
        ),
        (
            b'{"definition": "gated", "input": {"ref": "x", "deep": '
            + b"[" * 300
            + b"]" * 300
            + b"}}",
            "body.input.deep[0]",
            "nested deeper than 64 levels",
        ),
    ],
    ids=["nan", "5000-digits", "nested-300"],
)
async def test_start_refuses_json_that_breaks_limits(
    http: httpx.AsyncClient, as_: Auth, raw: bytes, path: str, message: str
) -> None:
    """JSON that Python accepts but JSON forbids or that breaks a limit is a 422 with its path."""
    r = await http.post(
        "/workflows", content=raw, headers={**as_("olga"), "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    [detail] = r.json()["error"]["details"]
    assert detail["path"].startswith(path) and message in detail["message"]


async def test_unparseable_json_bad_request(http: httpx.AsyncClient, as_: Auth) -> None:
    """A body that is not JSON at all is a 400 saying where it broke."""
    r = await http.post(
        "/workflows",
        content=b'{"definition": "gated",',
        headers={**as_("olga"), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unparseable"
    assert "line 1, column 24" in r.json()["error"]["message"]


async def test_long_ids_in_paths_refused(http: httpx.AsyncClient, as_: Auth) -> None:
    """A 10,000-character workflow id (a 502 from Temporal before) is a 422 naming the path."""
    long_id = "w" * 10_000
    for method, path in [
        ("GET", f"/workflows/{long_id}"),
        ("POST", f"/workflows/{long_id}/cancel"),
        ("POST", f"/workflows/x/gates/{long_id}"),
        ("DELETE", f"/schedules/{long_id}"),
    ]:
        r = await http.request(method, path, headers=as_("root"), json={"action": "approve"})
        assert r.status_code == 422, (path[:40], r.text)
        assert r.json()["error"]["details"][0]["path"].startswith("path.")


def inline(**overrides: Any) -> dict[str, Any]:
    """A small valid inline definition with `overrides` merged into its only step."""
    return {"name": "inline", "steps": [{"id": "a", "tool": "data.echo", **overrides}]}


@pytest.mark.parametrize(
    ("definition", "path"),
    [
        (inline(timeout="1000000000d"), "definition.steps[0].timeout"),
        (
            inline(approval={"approvers": ["role:ops"], "timeout": "900000000d"}),
            "definition.steps[0].approval.timeout",
        ),
        (
            {"name": "wide", "steps": [{"id": f"s{i}", "tool": "data.echo"} for i in range(2500)]},
            "definition.steps",
        ),
        (
            {
                "name": "index",
                "steps": [
                    {"id": "a", "tool": "data.echo"},
                    {
                        "id": "b",
                        "tool": "data.echo",
                        "needs": ["a"],
                        "with": {"v": "${steps.a.output.items." + "0" * 5000 + "1}"},
                    },
                ],
            },
            "definition.steps[1].with.v",
        ),
        (
            {
                "name": "redos",
                "input": {"properties": {"x": {"pattern": "^(a+)\\1$"}}},
                "steps": [{"id": "a", "tool": "data.echo"}],
            },
            "definition.input.properties.x.pattern",
        ),
    ],
    ids=["timeout-1e9d", "gate-timeout-9e8d", "2500-steps", "5000-digit-index", "backreference"],
)
async def test_start_refuses_runs_that_could_never_finish(
    http: httpx.AsyncClient, as_: Auth, definition: dict[str, Any], path: str
) -> None:
    """Definitions that started with 201 and then never finished are 422s naming the field."""
    r = await http.post(
        "/workflows", json={"definition": definition, "input": {}}, headers=as_("root")
    )
    assert r.status_code == 422, r.text[:500]
    assert path in {d["path"] for d in r.json()["error"]["details"]}, r.text[:500]


async def test_start_checks_catastrophic_pattern_in_linear_time(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """`^(a+)+$` (7.6 s on the event loop for 28 characters) is checked with RE2: a 100,000
    character input that does not match is a prompt 422 at its path."""
    definition = {
        "name": "pattern",
        "input": {"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a+)+$"}}},
        "steps": [{"id": "a", "tool": "data.echo"}],
    }
    r = await http.post(
        "/workflows",
        json={"definition": definition, "input": {"x": "a" * 100_000 + "!"}},
        headers=as_("root"),
    )
    assert r.status_code == 422, r.text[:500]
    assert [d["path"] for d in r.json()["error"]["details"]] == ["input.x"]


async def test_healthz_answers_while_a_large_validation_runs(
    serve: Serve, api_settings: Settings, as_: Auth
) -> None:
    """A large but legal validation is checked in a checker process: /healthz, asked while the
    validation holds its place, answers before it ends (on the event loop it could only answer
    after)."""
    steps = [
        {
            "id": f"s{i}",
            "tool": "data.echo",
            "needs": [f"s{j}" for j in range(max(0, i - 100), i)],
            "with": {f"k{k}": f"${{steps.s{i - 1}.output.v{k}}}" if i else k for k in range(30)},
        }
        for i in range(500)
    ]
    payload = json.dumps({"name": "large", "steps": steps}).encode()
    assert len(payload) < MIB
    apps: list[FastAPI] = []
    async with (
        serve(api_settings, apps=apps) as base,
        httpx.AsyncClient(base_url=base, timeout=120) as http,
    ):
        places = apps[0].state.stepgate.parse
        validation = asyncio.create_task(
            http.post(
                "/definitions/validate",
                content=payload,
                headers={**as_("vic"), "Content-Type": "application/json"},
            )
        )
        await util.eventually(lambda: places.held("vic") == 1, within=30, what="validation began")
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert not validation.done(), "the validation finished before /healthz answered"
        reply = await validation
    assert reply.status_code == 200 and reply.json() == {"valid": True, "errors": []}
