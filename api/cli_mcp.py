"""`stepgate mcp`: Stepgate's MCP server over stdio, for AI clients that start it as a command.

It talks to the REST API at STEPGATE_URL (default http://localhost:8000) with STEPGATE_API_KEY,
so the key's principal and permissions apply to every tool, as at the API's own /mcp. Gate
pages are linked under STEPGATE_PUBLIC_URL (default: STEPGATE_URL). See docs/mcp.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from mcp.server import ServerRequestContext
from mcp.server.stdio import stdio_server

from api.cli_base import DEFAULT_URL
from api.mcp.backend import Backend
from api.mcp.server import build_server

# A tool's request to the API: long enough for a start or a decision that waits its turn.
TIMEOUT = httpx.Timeout(60.0)


async def serve(url: str, key: str, public_url: str) -> None:
    """Serve MCP on stdin/stdout until the client closes them."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=TIMEOUT) as http:
        backend = Backend(http, public_url)

        @asynccontextmanager
        async def backend_of(_: ServerRequestContext[Any, Any]) -> AsyncIterator[Backend]:
            yield backend

        server = build_server(backend_of)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="stepgate mcp",
        description="Serve Stepgate's MCP tools over stdio (STEPGATE_URL, STEPGATE_API_KEY; "
        "STEPGATE_PUBLIC_URL for links to gate pages).",
    ).parse_args(argv)
    key = os.environ.get("STEPGATE_API_KEY", "")
    if not key:
        print("stepgate mcp: set STEPGATE_API_KEY to an API key", file=sys.stderr)
        return 2
    url = os.environ.get("STEPGATE_URL") or DEFAULT_URL
    public = os.environ.get("STEPGATE_PUBLIC_URL") or url
    try:
        anyio.run(serve, url, key, public)
    except KeyboardInterrupt:
        pass
    return 0
