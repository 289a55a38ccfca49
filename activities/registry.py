"""The tool registry: typed, versioned tools looked up by `name` or `name@version`."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import BaseModel

if TYPE_CHECKING:
    from activities.context import ToolContext

ENTRY_POINT_GROUP = "stepgate.tools"
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_VERSION = re.compile(r"^(0|[1-9]\d*)(\.(0|[1-9]\d*)){0,2}$")

ToolFn = Callable[[Any, "ToolContext"], Awaitable[Any]]
# How much a call of a tool can change in the world: governed runs review plans by it.
Risk = Literal["low", "medium", "high"]
RISKS: tuple[Risk, ...] = ("low", "medium", "high")
# A tool's risk, or a function of the call's arguments (as written in the plan) giving it.
RiskOf = Risk | Callable[[dict[str, Any]], Risk]
# Where a call sends what it holds, from its arguments: each part by the name of the field it
# comes from (`url`, `argv`, ...). A patch that changes a part moves the call's secrets; the gate
# refuses it unless the secrets' bindings still hold (activities/destinations.py).
SendsTo = Callable[[dict[str, Any]], dict[str, Any]]


def sends_to_fields(*names: str) -> SendsTo:
    """A tool whose destination is these input fields (none: it sends nowhere a call chooses)."""

    def where(args: dict[str, Any]) -> dict[str, Any]:
        return {name: args.get(name) for name in names}

    return where


class ToolError(ValueError):
    """A tool could not be registered or found; the message says which and why."""


def parse_version(version: str) -> tuple[int, int, int]:
    """`1` -> (1, 0, 0); `1.2.3` -> (1, 2, 3). Refuses anything that is not dotted integers."""
    if not _VERSION.match(version):
        raise ToolError(f"version {version!r} is not of the form MAJOR[.MINOR[.PATCH]]")
    parts = [int(p) for p in version.split(".")]
    major, minor, patch = [*parts, 0, 0][:3]
    return major, minor, patch


@dataclass(frozen=True)
class Tool:
    """One version of one tool."""

    name: str
    version: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    fn: ToolFn = field(repr=False)
    # The heartbeat timeout Temporal uses to notice a dead worker mid-call; None for quick tools.
    heartbeat: bool = False
    # A tool that does not say how risky it is counts as high risk.
    risk: RiskOf = "high"
    # Pure and quick: may run as a Temporal local activity, inside the workflow task (no
    # heartbeats, a short timeout), which saves the server round trips of a regular one.
    local: bool = False
    # None: the tool does not say, so every field of its input counts as a destination.
    sends_to: SendsTo | None = field(default=None, repr=False)

    def risk_for(self, args: dict[str, Any]) -> Risk:
        """This call's risk: the tool's own, or what its risk function says of `args`."""
        return self.risk(args) if callable(self.risk) else self.risk

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @functools.cached_property
    def semver(self) -> tuple[int, int, int]:
        # Every tool call resolves its pinned version by sorting the tool's versions: parsed once.
        return parse_version(self.version)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "risk": self.risk if isinstance(self.risk, str) else "depends on the call",
            "local": self.local,
            "input_schema": self.input_model.model_json_schema(),
            "output_schema": self.output_model.model_json_schema(),
        }


def tool(
    name: str,
    version: str,
    *,
    description: str | None = None,
    heartbeat: bool = False,
    risk: RiskOf = "high",
    local: bool = False,
    sends_to: SendsTo | None = None,
) -> Callable[[ToolFn], Tool]:
    """Turn `async def fn(inp: InModel, ctx: ToolContext) -> OutModel` into a Tool.

    The input and output models come from the function's annotations.
    """

    def wrap(fn: ToolFn) -> Tool:
        if not inspect.iscoroutinefunction(fn):
            raise ToolError(f"tool {name}@{version}: {fn.__qualname__} must be `async def`")
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        in_model = hints.get(params[0]) if params else None
        out_model = hints.get("return")
        for label, model in (("input", in_model), ("output", out_model)):
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ToolError(
                    f"tool {name}@{version}: the {label} annotation must be a pydantic model"
                )
        assert in_model is not None and out_model is not None  # narrowed above for mypy
        doc = inspect.getdoc(fn) or ""
        return Tool(
            name=name,
            version=version,
            description=description or doc.split("\n\n")[0].replace("\n", " "),
            input_model=in_model,
            output_model=out_model,
            fn=fn,
            heartbeat=heartbeat,
            risk=risk,
            local=local,
            sends_to=sends_to,
        )

    return wrap


class ToolRegistry:
    """Tools by name, each with one or more versions."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, dict[str, Tool]] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> Tool:
        if not _NAME.match(t.name):
            raise ToolError(
                f"tool name {t.name!r} must be dotted lower-case words, e.g. 'http.request'"
            )
        parse_version(t.version)
        versions = self._tools.setdefault(t.name, {})
        if t.version in versions:
            raise ToolError(f"tool {t.ref} is registered twice; each name@version must be unique")
        versions[t.version] = t
        return t

    def register(self, obj: Any) -> None:
        """Add a Tool, an iterable of Tools, or call `obj(registry)` (entry-point style)."""
        if isinstance(obj, Tool):
            self.add(obj)
        elif isinstance(obj, Iterable):
            for item in obj:
                self.register(item)
        elif callable(obj):
            obj(self)
        else:
            raise ToolError(f"cannot register {obj!r}: expected a Tool, a list or a function")

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Load third-party tools; returns the entry points loaded."""
        loaded = []
        for ep in entry_points(group=group):
            try:
                self.register(ep.load())
            except ToolError:
                raise
            except Exception as err:
                raise ToolError(
                    f"entry point {ep.name!r} ({ep.value}) failed to load: {err}"
                ) from err
            loaded.append(ep.name)
        return loaded

    def names(self) -> list[str]:
        return sorted(self._tools)

    def versions(self, name: str) -> list[Tool]:
        return sorted(self._tools.get(name, {}).values(), key=lambda t: t.semver)

    def resolve(self, ref: str) -> Tool:
        """`name` -> latest; `name@1` -> latest 1.x.y; `name@1.2` -> latest 1.2.x; exact otherwise."""
        name, _, wanted = ref.partition("@")
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise ToolError(f"unknown tool {name!r} (known tools: {known})")
        if not wanted:
            return versions[-1]
        prefix = parse_version(wanted)[: len(wanted.split("."))]
        matches = [t for t in versions if t.semver[: len(prefix)] == prefix]
        if not matches:
            have = ", ".join(t.version for t in versions)
            raise ToolError(f"tool {name!r} has no version matching {wanted!r} (have: {have})")
        return matches[-1]

    def get(self, name: str, version: str) -> Tool:
        """The exact version a workflow pinned at validation time."""
        t = self._tools.get(name, {}).get(version)
        if t is None:
            raise ToolError(f"this worker does not have tool {name}@{version}")
        return t

    def listing(self) -> list[dict[str, Any]]:
        """Every version of every tool with its JSON Schemas, newest version first per tool."""
        out = []
        for name in self.names():
            for t in reversed(self.versions(name)):
                out.append(t.describe())
        return out
