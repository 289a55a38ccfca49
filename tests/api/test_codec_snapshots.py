"""The codec server writes a run input's packed definition snapshots out as JSON for the Web UI
and CLI (api/snapshot_view.py), within its bounds, and leaves every other payload alone."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable

import httpx
from pydantic_core import from_json, to_json
from temporalio.api.common.v1 import Payload

from activities.config import Settings
from api.snapshot_view import MAX_SHOWN_BYTES, MAX_TRIED, expand_snapshots
from tests.api.conftest import Serve
from tests.test_snapshot import catalog
from workflows import snapshot
from workflows.client import make_data_converter
from workflows.models import PipelineInput

Auth = Callable[[str], dict[str, str]]
JSON = {"encoding": b"json/plain"}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _packed(text: bytes) -> str:
    return _b64(zlib.compress(text, 9))


def _shown(doc: object, metadata: dict[str, bytes] = JSON) -> object:
    (out,) = expand_snapshots([Payload(metadata=metadata, data=to_json(doc))])
    return from_json(out.data)


def test_a_run_input_shows_its_snapshots_as_json_and_still_reads_the_same() -> None:
    """Its own definition and every child pipeline's come out as their compact JSON; the
    expanded payload reads back to the same run input."""
    first, second = catalog()[:2]
    inp = PipelineInput(definition=first, input={"x": 1}, pipelines={"child": second})
    (payload,) = make_data_converter(Settings()).payload_converter.to_payloads([inp])
    assert isinstance(from_json(payload.data)["definition"], str)
    (out,) = expand_snapshots([payload])
    doc = from_json(out.data)
    assert doc["definition"] == snapshot.compact(first)
    assert doc["pipelines"] == {"child": snapshot.compact(second)}
    assert doc["input"] == {"x": 1}
    assert out.metadata == payload.metadata
    assert PipelineInput.model_validate_json(out.data) == inp


def test_payloads_that_are_not_a_run_input_pass_unchanged() -> None:
    """Other encodings, other JSON, strings that are not packed snapshots, a packed list (not a
    definition), and JSON nested past the parser's depth all come back byte for byte."""
    definition = snapshot.pack(catalog()[0])
    deep = b'{"definition": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    payloads = [
        Payload(metadata={"encoding": b"binary/plain"}, data=to_json({"definition": definition})),
        Payload(metadata=JSON, data=to_json({"other": definition})),
        Payload(metadata=JSON, data=to_json({"definition": "not base64!"})),
        Payload(metadata=JSON, data=to_json({"definition": _b64(b"not deflated")})),
        Payload(metadata=JSON, data=to_json({"definition": _packed(b"[1, 2]")})),
        Payload(metadata=JSON, data=to_json({"definition": _packed(b"{not json")})),
        Payload(metadata=JSON, data=to_json(["definition", definition])),
        Payload(metadata=JSON, data=deep),
        Payload(metadata=JSON, data=b'{"definition": '),
    ]
    assert expand_snapshots(payloads) == payloads


def test_a_bomb_stays_packed_and_the_budget_bounds_a_whole_request() -> None:
    """A snapshot that would inflate past MAX_SNAPSHOT_BYTES stays packed; across one request
    at most MAX_SHOWN_BYTES of JSON and MAX_TRIED unpacks, the rest left as they came."""
    bomb = _packed(b'{"a": "' + b"x" * (snapshot.MAX_SNAPSHOT_BYTES + 1) + b'"}')
    assert _shown({"definition": bomb}) == {"definition": bomb}
    big = b'{"a": "' + b"x" * (snapshot.MAX_SNAPSHOT_BYTES - 100) + b'"}'
    many = {"definition": _packed(big), "pipelines": {str(i): _packed(big) for i in range(4)}}
    shown = _shown(many)
    assert isinstance(shown, dict)
    expanded = [v for v in [shown["definition"], *shown["pipelines"].values()] if v != _packed(big)]
    assert len(expanded) == MAX_SHOWN_BYTES // len(big) == 2
    small = {str(i): _packed(b'{"name": "p"}') for i in range(MAX_TRIED + 5)}
    shown = _shown({"definition": "x", "pipelines": small})
    assert isinstance(shown, dict)
    left = [k for k, v in shown["pipelines"].items() if isinstance(v, str)]
    assert len(left) == 6  # "x" took one try, MAX_TRIED - 1 snapshots expanded


async def test_decode_shows_snapshots_to_a_reader_with_and_without_a_key(
    serve: Serve, http: httpx.AsyncClient, api_settings: Settings, as_: Auth
) -> None:
    """Over HTTP: /decode writes the snapshot out (after decrypting it, with a key); /encode
    leaves it packed; a reader without a key gets a 401."""
    definition = catalog()[0]
    packed = to_json({"definition": snapshot.pack(definition), "input": {}})
    body = {"payloads": [{"metadata": {"encoding": _b64(b"json/plain")}, "data": _b64(packed)}]}
    keyed = api_settings.model_copy(update={"stepgate_encryption_key": _b64(bytes(range(32)))})
    async with serve(keyed) as url, httpx.AsyncClient(base_url=url) as c:
        sealed = (await c.post("/codec/encode", json=body, headers=as_("vic"))).json()
        back = await c.post("/codec/decode", json=sealed, headers=as_("vic"))
        assert back.status_code == 200
        assert (await c.post("/codec/decode", json=sealed)).status_code == 401
    plain = await http.post("/codec/decode", json=body, headers=as_("vic"))
    for r in (back, plain):
        doc = from_json(base64.b64decode(r.json()["payloads"][0]["data"]))
        assert doc["definition"] == snapshot.compact(definition)
    same = await http.post("/codec/encode", json=body, headers=as_("vic"))
    assert same.json() == body
