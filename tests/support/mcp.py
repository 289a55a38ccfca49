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
import yaml
from mcp import Client
from mcp.client.session import ClientRequestContext, ElicitationFnT
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, ElicitRequestParams, ElicitResult, TextContent

from activities.config import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
DORA = "key-dora-0123456789"


def allow_mcp_decisions(settings: Settings, folder: Path, team: str) -> Settings:
    """Adds dora (an operator of `team` whose role `mcp` holds decide_via_mcp, granted by a
    permissions file) to the keys file."""
    keys_file = settings.stepgate_api_keys_file
    assert keys_file is not None
    entries = yaml.safe_load(keys_file.read_text())
    entries.append({"key": DORA, "principal": "dora", "roles": [team, "operator", "mcp"]})
    keys_file.write_text(yaml.safe_dump(entries))
    permissions = folder / "permissions.yaml"
    permissions.write_text(yaml.safe_dump({"mcp": ["decide_via_mcp"]}))
    return settings.model_copy(update={"stepgate_permissions_file": permissions})


def recorder(answer: ElicitResult, asked: list[ElicitRequestParams]) -> Any:
    """An elicitation callback that records what it was asked and answers `answer`."""

    async def callback(_: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        return answer

    return callback


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
