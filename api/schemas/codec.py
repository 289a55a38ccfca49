"""The Temporal codec server JSON protocol: payloads with base64 metadata values and data."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("not valid base64") from None
    return value


Base64 = Annotated[str, AfterValidator(_base64)]
# Payloads in one request: the Web UI and the CLI send the few payloads of one event at a time.
MAX_PAYLOADS = 1_000


class CodecPayload(BaseModel):
    metadata: dict[str, Base64] = Field(default_factory=dict)
    data: Base64 = ""


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload] = Field(max_length=MAX_PAYLOADS)
