"""`artifact.write` / `artifact.read`: named files kept with the current run."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio.exceptions import ApplicationError

from activities.context import ToolContext
from activities.errors import fatal
from activities.registry import sends_to_fields, tool
from activities.tools._masking import masked_failures

_MEDIA_TYPES = {
    "text": "text/plain; charset=utf-8",
    "base64": "application/octet-stream",
    "json": "application/json",
}


class ArtifactWriteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Relative path within the run, e.g. `reports/summary.md`.")
    content: Any = Field(description="Text, base64 text, or any JSON value (see `encoding`).")
    encoding: Literal["text", "base64", "json"] = Field(
        "text", description="How to read `content`: text, base64-encoded bytes, or JSON."
    )
    media_type: str | None = Field(None, description="Media type; from `encoding` if omitted.")
    overwrite: bool = Field(
        False, description="Replace an existing artifact of this name that has other content."
    )

    @model_validator(mode="after")
    def _content_matches_encoding(self) -> ArtifactWriteInput:
        if self.encoding != "json" and not isinstance(self.content, str):
            raise ValueError(f"content must be a string when encoding is {self.encoding!r}")
        return self

    def data(self) -> bytes:
        if self.encoding == "json":
            return json.dumps(self.content, ensure_ascii=False, sort_keys=True).encode()
        if self.encoding == "base64":
            try:
                return base64.b64decode(self.content, validate=True)
            except binascii.Error as err:
                raise fatal(
                    f"content is not valid base64: {err}", "InvalidArtifactContent"
                ) from None
        return str(self.content).encode()


class ArtifactWriteOutput(BaseModel):
    """Where the artifact is stored (the fields of an ArtifactRef); pass it on to later steps."""

    uri: str = Field(description="Where the artifact lives.")
    path: str = Field(description="Its path within the store.")
    size: int = Field(description="Size in bytes.")
    sha256: str = Field(description="SHA-256 of the bytes, hex.")
    media_type: str = Field(description="The media type it was stored with.")


class ArtifactReadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The name the artifact was written under in this run.")
    encoding: Literal["auto", "text", "base64", "json"] = Field(
        "auto", description="How to return the content; `auto` gives text if UTF-8, else base64."
    )


class ArtifactReadOutput(BaseModel):
    content: Any = Field(description="The content as text, base64 text, or parsed JSON.")
    encoding: Literal["text", "base64", "json"] = Field(description="How `content` is given.")
    size: int = Field(description="Size in bytes.")
    sha256: str = Field(description="SHA-256 of the bytes, hex.")
    uri: str = Field(description="Where the artifact lives.")
    path: str = Field(description="Its path within the store.")


async def _existing(ctx: ToolContext, name: str) -> bytes | None:
    try:
        data, _ = await ctx.artifacts.get(ctx.run_key, name)
    except ApplicationError as err:
        if err.type == "ArtifactNotFound":
            return None
        raise
    return data


@tool("artifact.write", "1.0.0", risk="medium", sends_to=sends_to_fields())
async def artifact_write(inp: ArtifactWriteInput, ctx: ToolContext) -> ArtifactWriteOutput:
    """Store content under a name for this run; writing the same content again is a no-op."""
    with masked_failures(ctx.secret_values):
        return await _write(inp, ctx)


async def _write(inp: ArtifactWriteInput, ctx: ToolContext) -> ArtifactWriteOutput:
    data = inp.data()
    before = await _existing(ctx, inp.name)
    if before is not None and before != data and not inp.overwrite:
        raise fatal(
            f"artifact {inp.name!r} already exists in this run with other content "
            f"(sha256 {hashlib.sha256(before).hexdigest()[:12]}); "
            "set overwrite: true to replace it",
            "ArtifactConflict",
        )
    ref = await ctx.artifacts.put(
        ctx.run_key, inp.name, data, inp.media_type or _MEDIA_TYPES[inp.encoding]
    )
    return ArtifactWriteOutput.model_validate(ref.model_dump())


@tool("artifact.read", "1.0.0", risk="low", sends_to=sends_to_fields())
async def artifact_read(inp: ArtifactReadInput, ctx: ToolContext) -> ArtifactReadOutput:
    """Read an artifact of this run back as text, base64 or parsed JSON."""
    with masked_failures(ctx.secret_values):
        data, ref = await ctx.artifacts.get(ctx.run_key, inp.name)
        # Decoding a large file is CPU work: keep it off the event loop.
        encoding, content = await asyncio.to_thread(_decode, inp, data)
    return ArtifactReadOutput(
        content=content,
        encoding=encoding,
        size=ref.size,
        sha256=ref.sha256,
        uri=ref.uri,
        path=ref.path,
    )


def _decode(inp: ArtifactReadInput, data: bytes) -> tuple[Literal["text", "base64", "json"], Any]:
    encoding = inp.encoding
    if encoding == "auto":
        try:
            data.decode("utf-8")
            encoding = "text"
        except UnicodeDecodeError:
            encoding = "base64"
    content: Any
    if encoding == "json":
        try:
            content = json.loads(data)
        except (ValueError, RecursionError) as err:
            raise fatal(f"artifact {inp.name!r} is not JSON: {err}", "ArtifactNotJson") from None
    elif encoding == "text":
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise fatal(
                f"artifact {inp.name!r} is not UTF-8 text; read it with encoding: base64",
                "ArtifactNotText",
            ) from None
    else:
        content = base64.b64encode(data).decode("ascii")
    return encoding, content
