"""The Temporal codec server JSON protocol: payloads with base64 metadata values and data."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

# Standard base64 with its padding, as the OpenAPI document states it and the API checks it.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
Base64 = Annotated[str, StringConstraints(pattern=BASE64_PATTERN)]
# Payloads in one request: the Web UI and the CLI send the few payloads of one event at a time.
MAX_PAYLOADS = 1_000


class CodecPayload(BaseModel):
    metadata: dict[str, Base64] = Field(default_factory=dict)
    data: Base64 = ""


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload] = Field(max_length=MAX_PAYLOADS)
