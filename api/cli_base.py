"""What every command of the terminal client shares: the HTTP client, errors, printing, `--json`
and reading a list a page at a time."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import httpx

DEFAULT_URL = "http://localhost:8000"
TIMEOUT = httpx.Timeout(30.0, read=None)  # read=None: `watch` waits as long as the run does
# Pages one command reads of a list (runs, audit entries, inbox runs) before it stops and says
# so: a server that always answers with another cursor cannot keep the client reading for ever.
MAX_PAGES = 200
# What an error quotes of an answer that is not the API's error shape (an HTML page, a proxy's).
MAX_ERROR_CHARS = 2000

# `--json` on every command (and before the command): print the API's answer as JSON.
JSON_FLAG = argparse.ArgumentParser(add_help=False)
JSON_FLAG.add_argument(
    "--json",
    action="store_true",
    default=argparse.SUPPRESS,  # the top-level flag's value stands when a command's is not given
    help="print machine-readable JSON",
)


class CliError(Exception):
    """A request failed; the message is what the user sees."""


class UsageError(CliError):
    """An argument the client cannot use (exit status 2, as argparse's own)."""


def printable(text: str) -> str:
    """Text from runs and definitions with its control characters (terminal escapes, bidi
    overrides, line breaks) shown as `?`, so a run cannot rewrite what the approver sees."""
    return "".join(c if c.isprintable() else "?" for c in text)


def base_url() -> str:
    return os.environ.get("STEPGATE_URL", DEFAULT_URL)


def shown(url: httpx.URL | str) -> str:
    """A URL as a message may show it: without the user and password it may carry."""
    try:
        return str(httpx.URL(url).copy_with(userinfo=b""))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(an invalid URL)"


def _client() -> httpx.Client:
    headers = {"Accept": "application/json"}
    key = os.environ.get("STEPGATE_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=base_url(), headers=headers, timeout=TIMEOUT)


def _check(response: httpx.Response) -> Any:
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            url, code = shown(response.request.url), response.status_code
            raise CliError(
                f"{url} answered {code} with something that is not JSON: "
                "is STEPGATE_URL the Stepgate API?"
            ) from None
    try:
        error = response.json()["error"]
        message = f"{error['code']}: {error['message']}"
        if error.get("details"):
            message += "\n" + json.dumps(error["details"], indent=2)
    except (ValueError, KeyError, TypeError):
        message = response.text[:MAX_ERROR_CHARS]
    lines = [printable(line) for line in message.splitlines()]
    raise CliError(f"HTTP {response.status_code} " + "\n".join(lines))


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def json_arg(text: str, option: str) -> Any:
    """The value of a JSON option (`--input`, `--patch`, ...), or a usage error naming it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{option} is not JSON: {err}") from None


def json_object(text: str, option: str) -> dict[str, Any]:
    value = json_arg(text, option)
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def pages(
    http: httpx.Client, path: str, params: dict[str, str], cursor: str | None = None
) -> Iterator[dict[str, Any]]:
    """Each page of a list the API pages with `cursor` / `next_cursor`, at most MAX_PAGES."""
    for _ in range(MAX_PAGES):
        page: dict[str, Any] = _check(
            http.get(path, params={**params, "cursor": cursor} if cursor else params)
        )
        yield page
        cursor = page.get("next_cursor")
        if not cursor:
            return
    raise CliError(f"stopped after {MAX_PAGES} pages of {path}; the next cursor is {cursor}")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Rows under a header, each column as wide as its widest cell but the last, printable."""
    cells = [[printable(str(c)) for c in row] for row in (header, *rows)]
    last = len(header) - 1
    widths = [max(len(r[c]) for r in cells) for c in range(last)]
    return ["  ".join([*(r[c].ljust(widths[c]) for c in range(last)), r[last]]) for r in cells]
