"""The catalog folder on disk: which files are definitions, what they looked like when last seen,
and reading one within bounds and within the folder. Blocking I/O: call from a worker thread."""

from __future__ import annotations

import itertools
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.documents import MAX_DOCUMENT_CHARS, parse_document

SUFFIXES = (".yaml", ".yml")
# Holds policy files for governed runs, not pipelines.
SKIPPED_DIRS = frozenset({"policies"})
# A catalog is tens of files; these stop a mistaken mount (a home folder, a repository) from
# costing every poll a walk over thousands of entries.
MAX_FILES = 1_000
MAX_DIR_DEPTH = 8
# Entries of any kind the walk lists, so a folder of a million other files is not listed per poll.
MAX_ENTRIES = 10_000
# A definition file is read whole into memory; the parser refuses more characters than this anyway.
MAX_FILE_BYTES = MAX_DOCUMENT_CHARS
# Where a problem of the folder itself (not of one file) is reported.
ROOT = "."
# A link is followed only to a file inside the folder (how Kubernetes mounts a ConfigMap:
# `x.yaml -> ..data/x.yaml`); one to anywhere else would show outsiders a file the catalog does
# not own, through `GET /definitions/errors`. Where it points is not said, nor whether it exists.
OUTSIDE = "a link that resolves outside the definitions folder; skipped"

# What tells a changed file apart: an atomic replace changes the inode, an edit mtime or size.
Stamp = tuple[int, int, int, int]


@dataclass(frozen=True)
class Seen:
    """One definition file as the walk saw it: its path relative to the folder, its stamp, and
    the path that is read (`target`: where a link inside the folder resolves, else `rel`)."""

    rel: str
    size: int
    stamp: Stamp
    target: str


@dataclass(frozen=True)
class Scan:
    """One walk over the folder. `partial` names folders (ROOT for all) whose files may be
    missing from `files` because they could not be read: what was loaded from them stays."""

    files: tuple[Seen, ...]
    problems: tuple[tuple[str, str], ...] = ()
    partial: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        return (self.files, self.problems)


def under(rel: str, folder: str) -> bool:
    """Whether the file `rel` lies in `folder` (ROOT holds everything)."""
    return folder == ROOT or rel.startswith(folder + "/")


def scan(folder: Path) -> Scan:
    """Every `*.yaml`/`*.yml` file below `folder`, sorted, without following links to folders
    (no loops) and skipping hidden entries (editors' temporary files, Kubernetes' `..data`); a
    link to a file outside the folder is a problem named by its path."""
    root = os.path.realpath(folder)
    files: list[Seen] = []
    problems: list[tuple[str, str]] = []
    partial: list[str] = []
    todo: list[tuple[str, int]] = [("", 0)]
    budget = MAX_ENTRIES
    while todo:
        rel_dir, depth = todo.pop()
        where = rel_dir or ROOT
        try:
            with os.scandir(folder / rel_dir) as it:
                entries = sorted(itertools.islice(it, budget + 1), key=lambda e: e.name)
        except OSError as err:
            problems.append((where, f"the folder cannot be read: {err.strerror}"))
            partial.append(where)
            continue
        budget -= len(entries)
        if budget < 0:
            return _stopped(files, problems, f"more than {MAX_ENTRIES} entries in the folder")
        subdirs: list[str] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                if depth == 0 and entry.name in SKIPPED_DIRS:
                    continue
                if depth + 1 > MAX_DIR_DEPTH:
                    problems.append((rel, f"folders nest at most {MAX_DIR_DEPTH} deep; skipped"))
                    continue
                subdirs.append(rel)
            elif entry.name.endswith(SUFFIXES):
                seen = _seen(entry, rel, root)
                if isinstance(seen, str):
                    problems.append((rel, seen))
                    continue
                if seen is None:
                    continue
                if len(files) >= MAX_FILES:
                    return _stopped(files, problems, f"more than {MAX_FILES} definition files")
                files.append(seen)
        # Reversed onto the stack, so folders are walked in name order.
        todo.extend((d, depth + 1) for d in reversed(subdirs))
    files.sort(key=lambda s: s.rel)
    return Scan(tuple(files), tuple(problems), tuple(partial))


def _stopped(files: list[Seen], problems: list[tuple[str, str]], why: str) -> Scan:
    """A walk cut short: what it found, and every folder marked partial (nothing is removed)."""
    problems.append((ROOT, f"{why}; the walk stopped and nothing loaded is removed"))
    return Scan(tuple(sorted(files, key=lambda s: s.rel)), tuple(problems), (ROOT,))


def _seen(entry: os.DirEntry[str], rel: str, root: str) -> Seen | str | None:
    """The file as seen now; OUTSIDE for a link out of the folder; None for what is no file."""
    target = rel
    if entry.is_symlink():
        inside = os.path.relpath(os.path.realpath(entry.path), root)
        if inside == os.pardir or inside.startswith(os.pardir + os.sep):
            return OUTSIDE
        target = inside.replace(os.sep, "/")
    try:
        st = entry.stat()
    except OSError:
        return None  # a dangling link, or gone since the listing
    if not stat.S_ISREG(st.st_mode):
        return None
    return Seen(rel, st.st_size, (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev), target)


def _open_inside(folder: Path, rel: str) -> int:
    """An fd of the file `rel` below `folder`, opened one component at a time without following
    a link: a link put in place of a folder or the file since the walk cannot lead outside."""
    *dirs, name = rel.split("/")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in dirs:
            sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = sub
        # O_NONBLOCK: a FIFO put in place of the file since the walk must not hang the reload.
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)


def read(folder: Path, rel: str) -> Any:
    """The definition file `rel` (a `Seen.target`) as data; ValueError (DocumentError for the
    parser's own) naming the problem, never the file's contents."""
    try:
        fd = _open_inside(folder, rel)
    except OSError as err:
        raise ValueError(f"cannot be read: {err.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text at byte {err.start}") from None
    return parse_document(text)
