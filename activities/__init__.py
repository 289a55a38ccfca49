"""Tools run as Temporal activities. Workflows import only models and names from here
(`activities.models`, `activities.masking`, settings' names): this package's __init__ imports
nothing, so they pull in no HTTP client, subprocess or database driver."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from activities.registry import ToolRegistry


def default_registry(*, entry_points: bool = True) -> ToolRegistry:
    """The built-in tools plus, unless turned off, tools from the `stepgate.tools` entry points."""
    from activities.registry import ToolRegistry
    from activities.tools import builtin_tools

    registry = ToolRegistry(builtin_tools())
    if entry_points:
        registry.load_entry_points()
    return registry
