"""What every command of the terminal client shares: the HTTP client, errors, printing."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

DEFAULT_URL = "http://localhost:8000"
TIMEOUT = httpx.Timeout(30.0, read=None)  # read=None: `watch` waits as long as the run does


class CliError(Exception):
    """A request failed; the message is what the user sees."""


def _client() -> httpx.Client:
    headers = {"Accept": "application/json"}
    key = os.environ.get("STEPGATE_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(
        base_url=os.environ.get("STEPGATE_URL", DEFAULT_URL), headers=headers, timeout=TIMEOUT
    )


def _check(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        message = f"{error['code']}: {error['message']}"
        if error.get("details"):
            message += "\n" + json.dumps(error["details"], indent=2)
    except (ValueError, KeyError, TypeError):
        message = response.text
    raise CliError(f"HTTP {response.status_code} {message}")


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
