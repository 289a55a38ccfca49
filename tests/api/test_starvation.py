"""No request starves a decision: keys and per-key places are settled from the headers before a
body is read, documents are checked in processes of their own under a CPU budget, and a
decision never waits for a validation (the issue's attack: a viewer's 1 MiB YAML bodies and
unauthenticated 1 MiB JSON bodies, which held an approver's decision for over a minute)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

from activities.config import Settings
from tests.api.conftest import Serve, StartRun
from tests.api.helpers import wait_state
from tests.support import util

Auth = Callable[[str], dict[str, str]]
ANSWER_S = 30
# 99,900 values as small mappings: the costliest YAML under the document bounds.
HEAVY_YAML = (
    "name: heavy\nsteps:\n- id: a\n  tool: data.echo\n  with:\n    x:\n" + "    - {a: 1}\n" * 33_300
).encode()


class Held:
    """A request whose headers have been sent and whose body has not (yet)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def answer(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        """The status, headers and JSON body the server sent without waiting for the body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), ANSWER_S)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in lines[1:] if h)}
        body = await self.reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split()[1]), headers, json.loads(body)

    def close(self) -> None:
        self.writer.close()


async def hold(base: str, path: str, length: int, key: str | None, media: str) -> Held:
    """Send only the headers of a POST announcing a body of `length` bytes."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}", f"Content-Type: {media}"]
    head += [f"Content-Length: {length}"] + ([f"Authorization: Bearer {key}"] if key else [])
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()
    return Held(reader, writer)


async def test_unauthenticated_body_answered_401_before_it_is_sent(
    http: httpx.AsyncClient,
) -> None:
    """A request without a valid key announcing a 1 MB body is answered 401 from its headers,
    with the connection closed, while not a byte of its body has been sent: no key, no parse
    (16 such bodies in a loop used to hold an approver's decision for 7-14 s)."""
    base = str(http.base_url)
    for key, media in ((None, "application/json"), ("not-a-key", "application/json")):
        held = await hold(base, "/workflows", 1_000_000, key, media)
        try:
            status, headers, body = await held.answer()
        finally:
            held.close()
        assert status == 401, body
        assert headers["connection"] == "close"
        assert body["error"]["code"] == "unauthorized"


async def test_small_unauthenticated_body_is_read_before_the_401_and_the_connection_kept(
    http: httpx.AsyncClient,
) -> None:
    """A small body sent after its headers (as HTTP clients send it) is read and dropped before
    the 401, so no reset can overtake the answer (closing a socket with unread bytes sends RST),
    and the connection stays usable: a second request on it is answered too."""
    body = b'{"reason": ""}'
    held = await hold(
        str(http.base_url), "/workflows/0/resume", len(body), None, "application/json"
    )
    try:
        held.writer.write(body)
        status, headers, answer = await held.answer()
        assert (status, answer["error"]["code"]) == (401, "unauthorized")
        assert headers.get("connection") != "close"
        host = urlsplit(str(http.base_url)).netloc
        held.writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, _, _ = await held.answer()
        assert status == 200
    finally:
        held.close()


async def test_large_bodies_past_per_key_places_answered_429_before_they_are_sent(
    serve: Serve, api_settings: Settings, keys: dict[str, str]
) -> None:
    """With one place per key, a second large body from a principal whose first is still in
    flight is refused 429 parse_busy with Retry-After from its headers; another principal's is
    admitted, and the place is free again once the first request is answered."""
    settings = api_settings.model_copy(update={"stepgate_parse_per_key": 1})
    vic = keys["vic"]
    async with serve(settings) as base:
        first = await hold(base, "/definitions/validate", len(HEAVY_YAML), vic, "text/yaml")
        try:
            second = await hold(base, "/workflows", 500_000, vic, "application/json")
            status, headers, body = await second.answer()
            second.close()
            assert (status, body["error"]["code"]) == (429, "parse_busy"), body
            assert headers["retry-after"] == "1" and headers["connection"] == "close"
            other = await hold(base, "/workflows", 5_000, keys["olga"], "application/json")
            other.writer.write(b'{"definition": 7}'.ljust(5_000))
            status, _, body = await other.answer()
            other.close()
            assert status == 422, body  # checked, not refused for vic's place
            first.writer.write(b"name: small\nsteps: []\n".ljust(len(HEAVY_YAML)))
            status, _, body = await first.answer()
            assert status == 200, body
        finally:
            first.close()
        async with httpx.AsyncClient(base_url=base, timeout=ANSWER_S) as c:

            async def validate() -> int:
                r = await c.post(
                    "/definitions/validate",
                    content=b"name: x\n".ljust(5_000),
                    headers={"Authorization": f"Bearer {vic}", "Content-Type": "text/yaml"},
                )
                return r.status_code

            await util.eventually(validate, ok=lambda s: s == 200, what="vic's place free again")


async def test_viewer_parallel_validations_past_per_key_limit_429(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """A viewer's eight heavy validations at once: two take the viewer's places (the default),
    the others are refused 429 parse_busy with Retry-After instead of queueing CPU work."""
    headers = {**as_("vic"), "Content-Type": "application/yaml"}
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=120, limits=limits) as c:
        answers = await asyncio.gather(
            *(
                c.post("/definitions/validate", content=HEAVY_YAML, headers=headers)
                for _ in range(8)
            )
        )
    refused = [r for r in answers if r.status_code == 429]
    assert 1 <= len(refused) <= 6, [r.status_code for r in answers]
    assert all(r.json()["error"]["code"] == "parse_busy" for r in refused)
    assert all(r.headers["retry-after"] == "1" for r in refused)
    checked = [r for r in answers if r.status_code != 429]
    assert all(r.status_code == 200 and r.json()["valid"] for r in checked), checked


async def test_decision_answered_while_viewer_validations_are_in_flight(
    serve: Serve,
    api_settings: Settings,
    start_run: StartRun,
    http: httpx.AsyncClient,
    as_: Auth,
) -> None:
    """With eight of a viewer's heaviest validations admitted and in flight, an approver's
    decision with a long comment (a 24 KB body) is answered 200 before any of them is: a
    decision never waits for their parsing or validation (it used to wait its turn behind them
    in the API's threads)."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    settings = api_settings.model_copy(update={"stepgate_parse_per_key": 8})
    done: list[int] = []
    apps: list[FastAPI] = []
    async with (
        serve(settings, apps=apps) as base,
        httpx.AsyncClient(base_url=base, timeout=300) as c,
    ):
        places = apps[0].state.stepgate.parse

        async def validate() -> None:
            headers = {**as_("vic"), "Content-Type": "application/yaml"}
            r = await c.post("/definitions/validate", content=HEAVY_YAML, headers=headers)
            done.append(r.status_code)

        flood = [asyncio.create_task(validate()) for _ in range(8)]
        try:
            await util.eventually(lambda: places.held("vic") == 8, what="all eight admitted")
            decided = await c.post(
                f"/workflows/{workflow_id}/gates/release",
                content=json.dumps({"action": "approve", "comment": "é" * 4_000}).encode(),
                headers={**as_("alice"), "Content-Type": "application/json"},
            )
            finished_first = list(done)
        finally:
            await asyncio.gather(*flood)
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "approved"
    assert finished_first == [], f"validations answered before the decision: {finished_first}"
    assert done == [200] * 8


async def test_rate_past_burst_answered_429_before_the_body_is_sent(
    serve: Serve, api_settings: Settings, keys: dict[str, str]
) -> None:
    """The key's request rate is charged from the headers too: past its burst, a large body is
    refused 429 rate_limited before a byte of it is sent."""
    settings = api_settings.model_copy(
        update={"stepgate_rate_burst": 1, "stepgate_rate_per_s": 0.001}
    )
    async with serve(settings) as base:
        async with httpx.AsyncClient(base_url=base, timeout=ANSWER_S) as c:
            r = await c.get("/definitions", headers={"Authorization": f"Bearer {keys['vic']}"})
            assert r.status_code == 200
        held = await hold(base, "/definitions/validate", 1_000_000, keys["vic"], "text/yaml")
        try:
            status, headers, body = await held.answer()
        finally:
            held.close()
    assert (status, body["error"]["code"]) == (429, "rate_limited"), body
    assert headers["connection"] == "close" and "retry-after" in headers


async def test_documents_past_the_value_bound_refused_naming_it(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """The issue's 1 MiB YAML (520,000 values) and a 1 MiB JSON body of as many are refused
    422 naming the bound, checked only up to it."""
    flat = "name: flat\nsteps:\n- id: a\n  tool: data.echo\n  with:\n    x: [" + ",".join(
        ["1"] * 520_000
    )
    yaml_reply = await http.post(
        "/definitions/validate",
        content=(flat + "]\n").encode(),
        headers={**as_("vic"), "Content-Type": "application/yaml"},
    )
    assert yaml_reply.status_code == 422, yaml_reply.text[:300]
    assert "at most 100,000 values (line 6)" in yaml_reply.json()["error"]["message"]
    body = {"definition": "gated", "input": {"ref": "main", "x": [1] * 520_000}}
    json_reply = await http.post("/workflows", json=body, headers=as_("olga"))
    assert json_reply.status_code == 422, json_reply.text[:300]
    assert "at most 100,000 values" in json_reply.json()["error"]["message"]


async def test_check_past_its_cpu_budget_answered_422(
    serve: Serve, api_settings: Settings, keys: dict[str, str]
) -> None:
    """A document that takes more CPU to check than STEPGATE_PARSE_CPU_S is refused 422
    over_budget, naming the budget; a small one is still checked."""
    settings = api_settings.model_copy(update={"stepgate_parse_cpu_s": 0.02})
    headers = {"Authorization": f"Bearer {keys['vic']}", "Content-Type": "application/yaml"}
    async with serve(settings) as base, httpx.AsyncClient(base_url=base, timeout=120) as c:
        heavy = await c.post("/definitions/validate", content=HEAVY_YAML, headers=headers)
        small = await c.post(
            "/definitions/validate", content=b"name: x\nsteps: []\n", headers=headers
        )
    assert heavy.status_code == 422, heavy.text
    assert heavy.json()["error"]["code"] == "over_budget"
    assert "more than 0.02 s of CPU" in heavy.json()["error"]["message"]
    assert small.status_code == 200, small.text


async def test_large_json_that_breaks_limits_refused_with_its_path(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """A body over 4 KiB (checked in a validation thread) and one over 64 KiB (in a checker
    process) get the same refusals and paths as a small one checked on the event loop."""
    for pad in (8_000, 100_000):
        raw = b'{"definition": "gated", "input": {"pad": "' + b"p" * pad + b'", "ref": NaN}}'
        r = await http.post(
            "/workflows", content=raw, headers={**as_("olga"), "Content-Type": "application/json"}
        )
        assert r.status_code == 422, r.text[:300]
        assert [d["path"] for d in r.json()["error"]["details"]] == ["body.input.ref"]


async def test_yaml_scalar_that_cannot_be_built_answered_400(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """`!!bool maybe` and a thirteenth month made PyYAML raise outside its own errors (a 500);
    they are 400 unparseable naming the line."""
    for text in ("name: x\nsteps: !!bool maybe\n", "name: x\nwhen: 2024-13-45\n"):
        r = await http.post(
            "/definitions/validate",
            content=text.encode(),
            headers={**as_("vic"), "Content-Type": "application/yaml"},
        )
        assert r.status_code == 400, r.text
        assert "at line 2" in r.json()["error"]["message"]


async def test_codec_payloads_past_their_bound_refused(http: httpx.AsyncClient, as_: Auth) -> None:
    """1,001 payloads in one codec request are refused 422 before any is converted (40,000
    took a second of the event loop); 1,000 are converted."""
    payload = {"metadata": {}, "data": ""}
    over = await http.post(
        "/codec/decode", json={"payloads": [payload] * 1_001}, headers=as_("vic")
    )
    assert over.status_code == 422, over.text[:300]
    assert over.json()["error"]["details"][0]["path"] == "body.payloads"
    fine = await http.post(
        "/codec/decode", json={"payloads": [payload] * 1_000}, headers=as_("vic")
    )
    assert fine.status_code == 200, fine.text[:300]
    assert len(fine.json()["payloads"]) == 1_000
