"""MCP clients for tests: the SDK's own `Client`, over streamable HTTP or a spawned `stepgate mcp`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

ROOT = Path(__file__).resolve().parent.parent.parent


@contextlib.asynccontextmanager
async def over_http(
    url: str, key: str, *, mode: str = "auto", elicitation: ElicitationFnT | None = None
) -> AsyncIterator[Client]:
    """A client of the API's /mcp at `url`, authenticated with `key`."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode=mode, elicitation_callback=elicitation) as client:
            yield client


@contextlib.asynccontextmanager
async def over_stdio(
    url: str, key: str, *, mode: str = "auto", elicitation: ElicitationFnT | None = None
) -> AsyncIterator[Client]:
    """A client of `stepgate mcp` spawned as a process of its own, against the API at `url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPGATE_")}
    env.update(STEPGATE_URL=url, STEPGATE_API_KEY=key)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "api.cli", "mcp"], env=env, cwd=ROOT
    )
    async with Client(params, mode=mode, elicitation_callback=elicitation) as client:
        yield client


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def data(result: CallToolResult) -> Any:
    """A successful tool result's JSON; fails the test with the error text otherwise."""
    assert not result.is_error, text(result)
    return json.loads(text(result))
