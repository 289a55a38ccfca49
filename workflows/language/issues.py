"""What validation reports: each mistake with its path, gathered in a report."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.language.definition import Definition, StepSpec


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Report:
    errors: list[Issue] = field(default_factory=list)
    definition: Definition | None = None

    @property
    def valid(self) -> bool:
        return not self.errors and self.definition is not None

    def add(self, path: str, message: str) -> None:
        self.errors.append(Issue(path, message))


def indexed(steps: list[StepSpec | None]) -> list[tuple[int, StepSpec]]:
    """The steps that parsed, with their place in the list."""
    return [(i, s) for i, s in enumerate(steps) if s is not None]
