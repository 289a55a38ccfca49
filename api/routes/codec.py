"""A Temporal codec server, so the Web UI and CLI can show encrypted payloads to key holders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import ReaderDep, StateDep
from api.errors import ApiError
from api.schemas.codec import CodecPayloads
from api.schemas.common import ERRORS
from api.state import ApiState

router = APIRouter(prefix="/codec", tags=["codec"], responses=ERRORS)

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


async def _identity(payloads: Sequence[Payload]) -> list[Payload]:
    return list(payloads)


def _codec(state: ApiState, encode: bool) -> Transform:
    if state.codec is None:
        return _identity
    return state.codec.encode if encode else state.codec.decode


async def _apply(body: CodecPayloads, transform: Transform) -> CodecPayloads:
    # The protocol is protobuf's JSON mapping of Payloads, so its parser does the base64 work.
    try:
        message = json_format.ParseDict(body.model_dump(), Payloads())
    except json_format.ParseError as err:
        raise ApiError(
            422, "invalid", f"payloads are not valid base64 protobuf JSON: {err}"
        ) from None
    try:
        out = await transform(list(message.payloads))
    except (ValueError, DecodeError, InvalidTag) as err:
        raise ApiError(422, "codec_failed", f"payloads could not be transformed: {err}") from None
    result = json_format.MessageToDict(Payloads(payloads=out))
    return CodecPayloads.model_validate({"payloads": result.get("payloads", [])})


@router.post("/encode", response_model=CodecPayloads)
async def encode(_: ReaderDep, state: StateDep, body: CodecPayloads) -> CodecPayloads:
    """Encrypt payloads with the deployment's key (unchanged when no key is set)."""
    return await _apply(body, _codec(state, encode=True))


@router.post("/decode", response_model=CodecPayloads)
async def decode(_: ReaderDep, state: StateDep, body: CodecPayloads) -> CodecPayloads:
    """Decrypt payloads for display (unchanged when no key is set)."""
    return await _apply(body, _codec(state, encode=False))
