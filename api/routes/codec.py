"""A Temporal codec server, so the Web UI and CLI can show encrypted payloads to key holders.

Checking and converting payloads is CPU work in proportion to their number (1 MiB of 40,000
empty payloads took about 1 s, on the event loop), so a request holds at most MAX_PAYLOADS (the
Web UI and the CLI send the few payloads of one event at a time), and the work runs in a
validation thread under the caller's parse slot: the body is read as the JSON StrictJson parsed,
and the answer is written there too, with /decode writing packed definition snapshots out as
JSON for display (api/snapshot_view.py, bounded per request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import ParseDep, ReaderDep, StateDep
from api.errors import ApiError
from api.guards import parsed_json, was_parsed
from api.schemas.codec import MAX_PAYLOADS, CodecPayloads
from api.schemas.common import ERRORS
from api.snapshot_view import expand_snapshots
from api.state import ApiState

router = APIRouter(prefix="/codec", tags=["codec"], responses=ERRORS)
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CodecPayloads"}}},
    }
}

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


async def _identity(payloads: Sequence[Payload]) -> list[Payload]:
    return list(payloads)


def _codec(state: ApiState, encode: bool) -> Transform:
    if state.codec is None:
        return _identity
    return state.codec.encode if encode else state.codec.decode


async def _apply(
    request: Request, parse: ParseDep, transform: Transform, *, show: bool = False
) -> Response:
    document = parsed_json(request.scope)
    if not was_parsed(document):
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "a JSON body of payloads is required"}]
        )
    held = document.get("payloads") if isinstance(document, dict) else None
    if isinstance(held, list) and len(held) > MAX_PAYLOADS:
        raise ApiError(
            422,
            "invalid",
            f"a request holds at most {MAX_PAYLOADS} payloads (got {len(held)})",
            [{"path": "body.payloads", "message": f"at most {MAX_PAYLOADS} payloads"}],
        )
    message = await parse.run(_to_message, document)
    try:
        out = await transform(list(message.payloads))
    except (ValueError, DecodeError, InvalidTag) as err:
        raise ApiError(422, "codec_failed", f"payloads could not be transformed: {err}") from None
    return Response(await parse.run(_to_json, out, show), media_type="application/json")


def _to_message(document: Any) -> Payloads:
    try:
        body = CodecPayloads.model_validate(document)
    except ValidationError as err:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
        ) from None
    # The protocol is protobuf's JSON mapping of Payloads, so its parser does the base64 work.
    try:
        return json_format.ParseDict(body.model_dump(), Payloads())
    except json_format.ParseError as err:
        raise ApiError(
            422, "invalid", f"payloads are not valid base64 protobuf JSON: {err}"
        ) from None


def _to_json(payloads: list[Payload], show: bool) -> bytes:
    if show:
        payloads = expand_snapshots(payloads)
    result = json_format.MessageToDict(Payloads(payloads=payloads))
    return (
        CodecPayloads.model_validate({"payloads": result.get("payloads", [])})
        .model_dump_json(by_alias=True)
        .encode()
    )


@router.post("/encode", response_model=CodecPayloads, openapi_extra=_BODY_DOC)
async def encode(_: ReaderDep, state: StateDep, request: Request, parse: ParseDep) -> Response:
    """Encrypt payloads with the deployment's key (unchanged when no key is set)."""
    return await _apply(request, parse, _codec(state, encode=True))


@router.post("/decode", response_model=CodecPayloads, openapi_extra=_BODY_DOC)
async def decode(_: ReaderDep, state: StateDep, request: Request, parse: ParseDep) -> Response:
    """Decrypt payloads for display (unchanged when no key is set); a run input's packed
    definition snapshots are written out as JSON (api/snapshot_view.py)."""
    return await _apply(request, parse, _codec(state, encode=False), show=True)
