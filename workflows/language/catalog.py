"""The catalog: pipeline definitions by name and version, read from a folder of YAML files.

A `Catalog` is an immutable snapshot; `Catalog.load` builds the next one from the folder and the
one before it, so a file that stops validating keeps the version it served (see api/catalog_live.py
for reloading without a restart).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from activities.documents import DocumentError
from activities.registry import ToolRegistry
from workflows.language import catalog_files
from workflows.language.definition import Definition
from workflows.language.limits import some_names
from workflows.language.validation import Issue, validate_definition

log = structlog.get_logger("stepgate.catalog")

# `/definitions/errors`, `/definitions/validate` and `/definitions/reload` are routes of their
# own, so no catalog pipeline may take those names (`GET /definitions/<name>` would be ambiguous).
RESERVED_NAMES = frozenset({"errors", "reload", "validate"})
# Errors kept per file and in all (a hostile or broken folder must not make the answer large);
# messages are cut to MAX_MESSAGE_CHARS.
MAX_ERRORS_PER_FILE = 20
MAX_ERRORS = 500
MAX_MESSAGE_CHARS = 1_000
# Errors are read by every viewer: they quote a file only once it is shaped like a definition.
# Anything else (a file that does not parse, breaks a document limit, or is some other YAML) is
# named with what is wrong in general terms, never with its keys or values.
NOT_A_DEFINITION = (
    "not a pipeline definition: a mapping with a string `name` and `steps` is expected "
    "(nothing of the file is shown)"
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

Key = tuple[str, int]


@dataclass(frozen=True)
class CatalogIssue:
    """Why a file is not (or no longer) what the catalog serves. `kept` names the version
    (`name@2`) the file's last good content still serves, if any."""

    file: str
    path: str
    message: str
    kept: str | None = None


@dataclass(frozen=True)
class Catalog:
    """Definitions by name and version, the file each came from, and the files refused. Never
    changed once built: a reader holding one sees one whole load."""

    versions: Mapping[str, Mapping[int, Definition]] = field(default_factory=dict)
    files: Mapping[Key, str] = field(default_factory=dict)
    errors: tuple[CatalogIssue, ...] = ()

    @classmethod
    def load(
        cls,
        folder: Path,
        tools: ToolRegistry,
        previous: Catalog | None = None,
        scan: catalog_files.Scan | None = None,
    ) -> Catalog:
        """Read `folder` (or what `scan` saw of it). Never raises for a bad file: its errors are
        listed, and what it served in `previous` stays."""
        return _build(folder, tools, previous or cls(), scan or catalog_files.scan(folder))

    def names(self) -> list[str]:
        return sorted(self.versions)

    def refs(self) -> list[str]:
        """Every loaded version as `name@version`."""
        return [f"{n}@{v}" for n in self.names() for v in sorted(self.versions[n])]

    def get(self, ref: str) -> Definition:
        """`name` (latest version) or `name@version`; KeyError with a clear message otherwise."""
        name, _, version = ref.partition("@")
        versions = self.versions.get(name)
        if not versions:
            raise KeyError(f"unknown pipeline {name!r} (catalog has: {some_names(self.names())})")
        if not version:
            return versions[max(versions)]
        # ASCII digits only: `isdigit` also holds for `²`, which `int` refuses.
        if not (version.isascii() and version.isdigit()) or int(version) not in versions:
            have = ", ".join(str(v) for v in sorted(versions))
            raise KeyError(f"pipeline {name!r} has no version {version!r} (have: {have})")
        return versions[int(version)]

    def latest(self) -> list[Definition]:
        return [self.get(n) for n in self.names()]

    def children(self, definition: Definition) -> dict[str, Definition]:
        """Every pipeline a definition runs as a child, transitively: the run's snapshot, keyed
        by the reference as the step wrote it (`name` for the newest, `name@2` pinned). KeyError
        naming the step when one is not in the catalog (any more)."""
        found: dict[str, Definition] = {}
        todo = [definition]
        while todo:
            current = todo.pop()
            for i, step in enumerate(current.steps):
                if isinstance(step.pipeline, str) and step.pipeline not in found:
                    try:
                        found[step.pipeline] = self.get(step.pipeline)
                    except KeyError as err:
                        raise KeyError(
                            f"{current.name} steps[{i}].pipeline: {err.args[0]}"
                        ) from None
                    todo.append(found[step.pipeline])
        return found


def log_errors(errors: Iterable[CatalogIssue], before: Iterable[CatalogIssue] = ()) -> None:
    """Log each error not already in `before`: once per change, not once per reload."""
    known = set(before)
    for e in errors:
        if e not in known:
            log.error(
                "catalog file refused", file=e.file, path=e.path, error=e.message, kept=e.kept
            )


@dataclass
class _Candidate:
    file: str
    definition: Definition


def _build(
    folder: Path, tools: ToolRegistry, previous: Catalog, scan: catalog_files.Scan
) -> Catalog:
    issues = [CatalogIssue(where, "", message) for where, message in scan.problems]
    by_file = {file: key for key, file in previous.files.items()}
    present = {s.rel for s in scan.files}
    unseen = {
        f
        for f in by_file
        if f not in present and any(catalog_files.under(f, p) for p in scan.partial)
    }
    refused: set[str] = set()
    parsed: dict[str, Any] = {}
    for seen in scan.files:
        try:
            data = catalog_files.read(folder, seen.target)
        except DocumentError as err:
            refused.add(seen.rel)
            issues += _refused(seen.rel, _document_issues(err), by_file)
            continue
        except ValueError as err:
            refused.add(seen.rel)
            issues += _refused(seen.rel, [Issue("", str(err))], by_file)
            continue
        if _is_definition(data):
            parsed[seen.rel] = data
        else:
            refused.add(seen.rel)
            issues += _refused(seen.rel, [Issue("", NOT_A_DEFINITION)], by_file)
    # A child may name any pipeline a file claims or the catalog keeps; whether it is really
    # there is checked again when a run starts (the children's snapshot).
    names = {d["name"] for d in parsed.values()}
    names |= {key[0] for f, key in by_file.items() if f in present or f in unseen}
    claims: dict[Key, list[_Candidate]] = {}
    for rel, data in parsed.items():
        try:
            found = _validate(data, tools, names)
        except Exception:
            # A validator bug on one file must not block every other file, nor the API's start.
            log.exception("catalog file could not be checked", file=rel)
            found = [Issue("", "could not be checked: an internal error (logged)")]
        if isinstance(found, Definition):
            claims.setdefault((found.name, found.version), []).append(_Candidate(rel, found))
        else:
            refused.add(rel)
            issues += _refused(rel, found, by_file)
    return _settle(claims, previous, refused | unseen, issues)


def _settle(
    claims: dict[Key, list[_Candidate]],
    previous: Catalog,
    keep: set[str],
    issues: list[CatalogIssue],
) -> Catalog:
    """One file per name and version: the file that served it before, else the first by path.
    A file that is refused, unseen, or loses such a claim keeps serving what it served; that
    can displace a newcomer in turn, so this repeats until nothing changes (each file is kept
    at most once)."""
    by_file = {file: key for key, file in previous.files.items()}
    kept: set[str] = set()
    while True:
        for file in sorted(keep - kept):
            if file in by_file:
                name, version = by_file[file]
                stale = _Candidate(file, previous.versions[name][version])
                claims.setdefault((name, version), []).append(stale)
        kept |= keep
        ordered = {
            key: sorted(cs, key=lambda c: (c.file != previous.files.get(key), c.file))
            for key, cs in claims.items()
        }
        keep = {c.file for cs in ordered.values() for c in cs[1:]} | kept
        if keep == kept:
            break
    versions: dict[str, dict[int, Definition]] = {}
    files: dict[Key, str] = {}
    for key, candidates in sorted(ordered.items()):
        winner = candidates[0]
        versions.setdefault(key[0], {})[key[1]] = winner.definition
        files[key] = winner.file
        issues += [
            CatalogIssue(
                c.file,
                "",
                f"{key[0]} v{key[1]} is already defined by {winner.file}",
                _ref(by_file.get(c.file)),
            )
            for c in candidates[1:]
        ]
    return Catalog(versions, files, _bounded(issues))


def _validate(data: Any, tools: ToolRegistry, names: set[str]) -> Definition | list[Issue]:
    report = validate_definition(data, tools, catalog=dict.fromkeys(names))
    if report.definition is None:
        return report.errors
    if report.definition.name in RESERVED_NAMES:
        return [Issue("name", f"{report.definition.name!r} is reserved by the API")]
    return report.definition


def _refused(rel: str, found: list[Issue], by_file: Mapping[str, Key]) -> list[CatalogIssue]:
    kept = _ref(by_file.get(rel))
    return [CatalogIssue(rel, i.path, i.message, kept) for i in found[:MAX_ERRORS_PER_FILE]]


def _ref(key: Key | None) -> str | None:
    return f"{key[0]}@{key[1]}" if key is not None else None


def _document_issues(err: DocumentError) -> list[Issue]:
    """What the parser refused, without what it quoted (a tag, a character) and without the
    keys on the way to a value (a file that does not parse may be anything)."""
    if err.issues:
        messages = dict.fromkeys(message for _, message in err.issues)
        return [Issue("", f"breaks a document limit: {m}") for m in messages]
    return [Issue("", _QUOTED.sub("…", str(err)))]


def _bounded(issues: list[CatalogIssue]) -> tuple[CatalogIssue, ...]:
    issues = sorted(issues, key=lambda i: i.file)  # stable: a file's errors keep their order
    cut = [
        CatalogIssue(i.file, i.path[:MAX_MESSAGE_CHARS], i.message[:MAX_MESSAGE_CHARS], i.kept)
        for i in issues[:MAX_ERRORS]
    ]
    if len(issues) > MAX_ERRORS:
        cut.append(CatalogIssue(catalog_files.ROOT, "", f"{len(issues) - MAX_ERRORS} more errors"))
    return tuple(cut)


def _is_definition(data: Any) -> bool:
    # Shaped like a definition: only these are validated (and quoted in errors); only string
    # names count, so an unhashable `name:` cannot break the set of names.
    return isinstance(data, dict) and isinstance(data.get("name"), str) and "steps" in data
