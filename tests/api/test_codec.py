"""The codec server for the Temporal Web UI and CLI."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx

from activities.config import Settings
from tests.api.conftest import Serve

Auth = Callable[[str], dict[str, str]]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


PLAIN = {
    "payloads": [{"metadata": {"encoding": _b64(b"json/plain")}, "data": _b64(b'{"secret": 1}')}]
}


async def test_codec_round_trip_with_key(serve: Serve, api_settings: Settings, as_: Auth) -> None:
    """With a key, encode encrypts and decode restores the original payloads."""
    keyed = api_settings.model_copy(update={"stepgate_encryption_key": _b64(bytes(range(32)))})
    async with serve(keyed) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/codec/encode", json=PLAIN, headers=as_("vic"))
        assert r.status_code == 200
        sealed = r.json()
        assert sealed["payloads"][0]["metadata"]["encoding"] == _b64(b"binary/encrypted")
        assert sealed["payloads"][0]["data"] != PLAIN["payloads"][0]["data"]
        back = await c.post("/codec/decode", json=sealed, headers=as_("vic"))
        assert back.json() == PLAIN
        assert (await c.post("/codec/decode", json=sealed)).status_code == 401
        pre = await c.options(
            "/codec/decode",
            headers={"Origin": keyed.stepgate_ui_url, "Access-Control-Request-Method": "POST"},
        )
        assert pre.headers["access-control-allow-origin"] == keyed.stepgate_ui_url


async def test_codec_without_key_identity(http: httpx.AsyncClient, as_: Auth) -> None:
    """Without a key, payloads pass through unchanged; bad base64 is a 422."""
    r = await http.post("/codec/encode", json=PLAIN, headers=as_("vic"))
    assert r.json() == PLAIN
    bad = {"payloads": [{"metadata": {}, "data": "%%%"}]}
    assert (await http.post("/codec/decode", json=bad, headers=as_("vic"))).status_code == 422
