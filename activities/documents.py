"""YAML and JSON documents from files and request bodies: one parser for the catalog, API keys and
the API, so every reader gets the same limits."""

from __future__ import annotations

from typing import Any

import yaml


def parse_document(text: str) -> Any:
    """YAML (a superset of JSON) to data; raises ValueError with the line of a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"not valid YAML or JSON{where}: {getattr(err, 'problem', err)}") from None
