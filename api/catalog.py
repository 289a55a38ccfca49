"""The catalog: pipeline definitions loaded from YAML files and validated at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activities.documents import parse_document
from activities.registry import ToolRegistry
from workflows.definition import Definition
from workflows.validation import Issue, validate_definition


class CatalogError(ValueError):
    """One or more catalog files are invalid; the message lists every problem with its file."""


@dataclass
class Catalog:
    """Definitions by name and version."""

    versions: dict[str, dict[int, Definition]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, tools: ToolRegistry) -> Catalog:
        files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
        raw: list[tuple[Path, Any]] = []
        problems: list[str] = []
        for path in files:
            try:
                raw.append((path, parse_document(path.read_text())))
            except ValueError as err:
                problems.append(f"{path.name}: {err}")
        # String names only: an unhashable `name:` must be a validation error, not a crash.
        names = {n for _, d in raw if isinstance(d, dict) and isinstance(n := d.get("name"), str)}
        catalog = cls()
        for path, data in raw:
            report = validate_definition(data, tools, catalog=dict.fromkeys(names))
            if report.definition is None:
                problems.extend(f"{path.name}: {issue}" for issue in report.errors)
                continue
            d = report.definition
            if d.version in catalog.versions.get(d.name, {}):
                problems.append(f"{path.name}: {d.name} v{d.version} is defined twice")
            catalog.versions.setdefault(d.name, {})[d.version] = d
        if problems:
            raise CatalogError("invalid pipeline definitions:\n  " + "\n  ".join(problems))
        return catalog

    def names(self) -> list[str]:
        return sorted(self.versions)

    def get(self, ref: str) -> Definition:
        """`name` (latest version) or `name@version`; KeyError with a clear message otherwise."""
        name, _, version = ref.partition("@")
        versions = self.versions.get(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"unknown pipeline {name!r} (catalog has: {known})")
        if not version:
            return versions[max(versions)]
        if not version.isdigit() or int(version) not in versions:
            have = ", ".join(str(v) for v in sorted(versions))
            raise KeyError(f"pipeline {name!r} has no version {version!r} (have: {have})")
        return versions[int(version)]

    def latest(self) -> list[Definition]:
        return [self.get(n) for n in self.names()]

    def children(self, definition: Definition) -> dict[str, Definition]:
        """Every pipeline a definition runs as a child, transitively: the run's snapshot, keyed
        by the reference as the step wrote it (`name` for the newest, `name@2` pinned)."""
        found: dict[str, Definition] = {}
        todo = [definition]
        while todo:
            current = todo.pop()
            for step in current.steps:
                if isinstance(step.pipeline, str) and step.pipeline not in found:
                    found[step.pipeline] = self.get(step.pipeline)
                    todo.append(found[step.pipeline])
        return found


def format_issues(issues: list[Issue]) -> list[dict[str, str]]:
    return [{"path": i.path, "message": i.message} for i in issues]
