"""Visibility query text, for the API's listings and the worker deployment's: string literals
are quoted so that a value can never change the query around it."""

from __future__ import annotations

from collections.abc import Iterable


def quote(value: str) -> str:
    """A visibility query string literal; backslashes and quotes escaped so values cannot inject."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def in_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(quote(v) for v in values) + ")"
