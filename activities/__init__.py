"""Tools run as Temporal activities. Workflows import only `activities.models` from here."""

from __future__ import annotations

from activities.registry import ToolRegistry


def default_registry(*, entry_points: bool = True) -> ToolRegistry:
    """The built-in tools plus, unless turned off, tools from the `stepgate.tools` entry points."""
    # Imported here, not at module level: workflows import `activities.models`, which runs this
    # package's __init__, and must not pull httpx, subprocess and friends into the sandbox.
    from activities.tools import builtin_tools

    registry = ToolRegistry(builtin_tools())
    if entry_points:
        registry.load_entry_points()
    return registry
