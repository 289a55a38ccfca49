"""The catalog folder: what is read, what a bad file changes (nothing loaded), reloads and bounds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from activities import default_registry
from activities.config import Settings
from activities.registry import ToolRegistry
from api.catalog_live import LiveCatalog
from worker import read_catalog
from workflows.language import catalog_files
from workflows.language.catalog import Catalog


def pipeline(name: str, version: int = 1, greeting: str = "hi", extra: str = "") -> str:
    """A valid one-step definition; `greeting` tells versions apart."""
    return (
        f"name: {name}\nversion: {version}\ndescription: {greeting}\n{extra}"
        "steps:\n  - id: greet\n    tool: data.transform\n"
        f"    with: {{data: 1, expression: \"'{greeting}'\"}}\n"
    )


BROKEN = "name: {name}\nversion: {version}\nsteps:\n  - id: a\n    tool: no.such_tool\n"


@pytest.fixture
def tools() -> ToolRegistry:
    return default_registry(entry_points=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "definitions"
    path.mkdir()
    return path


def write(folder: Path, rel: str, text: str) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    # Replaced atomically, as the README asks: a new inode is a change whatever the clock says.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def test_load_reads_subfolders_skipping_policies_and_hidden(
    folder: Path, tools: ToolRegistry
) -> None:
    """Files in subfolders (examples/) are pipelines; policies/ and hidden entries are not read."""
    write(folder, "a.yaml", pipeline("a"))
    write(folder, "examples/b.yml", pipeline("b"))
    write(folder, "examples/deeper/c.yaml", pipeline("c"))
    write(folder, "policies/p.yaml", "rules: [not a pipeline]\n")
    write(folder, ".hidden/d.yaml", pipeline("d"))
    write(folder, "notes.txt", "not yaml")
    catalog = Catalog.load(folder, tools)
    assert catalog.refs() == ["a@1", "b@1", "c@1"]
    assert catalog.errors == ()
    assert catalog.files[("c", 1)] == "examples/deeper/c.yaml"


def test_load_bad_files_listed_not_raised(folder: Path, tools: ToolRegistry) -> None:
    """Broken YAML, a failed validation and a non-mapping are errors with file and path; the
    good files load."""
    write(folder, "good.yaml", pipeline("good"))
    write(folder, "syntax.yaml", "name: x\nsteps: [\n")
    write(folder, "invalid.yaml", BROKEN.format(name="bad", version=1))
    write(folder, "list.yaml", "[1, 2]\n")
    catalog = Catalog.load(folder, tools)
    assert catalog.refs() == ["good@1"]
    found = {(e.file, e.path) for e in catalog.errors}
    assert found == {("invalid.yaml", "steps[0].tool"), ("list.yaml", ""), ("syntax.yaml", "")}
    syntax = next(e for e in catalog.errors if e.file == "syntax.yaml")
    assert "line" in syntax.message and syntax.kept is None


def test_reload_broken_file_keeps_the_version_it_served(folder: Path, tools: ToolRegistry) -> None:
    """A file that stops validating keeps serving its last good content, and says so."""
    write(folder, "p1.yaml", pipeline("p", 1))
    write(folder, "p2.yaml", pipeline("p", 2, greeting="second"))
    live = LiveCatalog(folder, tools)
    write(folder, "p2.yaml", BROKEN.format(name="p", version=2))
    change = live.reload("test")
    assert change.changed == change.removed == []
    assert live.current.get("p").description == "second"
    (error,) = live.current.errors
    assert (error.file, error.path, error.kept) == ("p2.yaml", "steps[0].tool", "p@2")
    write(folder, "p2.yaml", "steps: [\n")  # not even YAML now
    live.reload("test")
    assert live.current.get("p@2").description == "second"
    assert [e.kept for e in live.current.errors] == ["p@2"]


def test_reload_duplicate_keeps_the_loaded_file(folder: Path, tools: ToolRegistry) -> None:
    """A new file claiming a loaded name and version is an error, even when it sorts first."""
    write(folder, "z.yaml", pipeline("p", 1, greeting="original"))
    live = LiveCatalog(folder, tools)
    write(folder, "a.yaml", pipeline("p", 1, greeting="usurper"))
    live.reload("test")
    assert live.current.get("p").description == "original"
    assert live.current.files[("p", 1)] == "z.yaml"
    (error,) = live.current.errors
    assert (error.file, error.message) == ("a.yaml", "p v1 is already defined by z.yaml")


def test_load_duplicates_at_start_first_path_wins(folder: Path, tools: ToolRegistry) -> None:
    """With nothing loaded yet, the first file by path takes a name and version."""
    write(folder, "b.yaml", pipeline("p", 1, greeting="b"))
    write(folder, "a.yaml", pipeline("p", 1, greeting="a"))
    catalog = Catalog.load(folder, tools)
    assert catalog.get("p").description == "a"
    assert [e.file for e in catalog.errors] == ["b.yaml"]


def test_reload_duplicate_loser_keeps_what_it_served(folder: Path, tools: ToolRegistry) -> None:
    """A file edited to claim a version another file holds loses, and keeps its own version."""
    write(folder, "a.yaml", pipeline("p", 1))
    write(folder, "b.yaml", pipeline("q", 1))
    live = LiveCatalog(folder, tools)
    write(folder, "b.yaml", pipeline("p", 1, greeting="clash"))
    change = live.reload("test")
    assert change.empty
    assert live.current.refs() == ["p@1", "q@1"]
    (error,) = live.current.errors
    assert (error.file, error.kept) == ("b.yaml", "q@1")


def test_reload_deleted_file_removes_its_version(folder: Path, tools: ToolRegistry) -> None:
    """Deleting a version's file removes that version, and `name` then starts the one left."""
    write(folder, "p1.yaml", pipeline("p", 1))
    write(folder, "examples/p2.yaml", pipeline("p", 2))
    live = LiveCatalog(folder, tools)
    assert live.current.get("p").version == 2
    (folder / "examples/p2.yaml").unlink()
    change = live.reload("test")
    assert (change.added, change.changed, change.removed) == ([], [], ["p@2"])
    assert live.current.get("p").version == 1
    with pytest.raises(KeyError, match="no version '2'"):
        live.current.get("p@2")


def test_reload_vanished_folder_keeps_everything(folder: Path, tools: ToolRegistry) -> None:
    """A folder that cannot be read (unmounted, renamed) is an error, not an empty catalog."""
    write(folder, "p.yaml", pipeline("p"))
    live = LiveCatalog(folder, tools)
    folder.rename(folder.with_name("elsewhere"))
    change = live.reload("test")
    assert change.empty
    assert live.current.refs() == ["p@1"]
    assert [(e.file, e.kept) for e in live.current.errors] == [(".", None)]


def test_reload_swaps_whole_snapshots(folder: Path, tools: ToolRegistry) -> None:
    """A catalog taken before a reload is left exactly as it was; the reload builds another."""
    write(folder, "p.yaml", pipeline("p", 1, greeting="old"))
    live = LiveCatalog(folder, tools)
    before = live.current
    write(folder, "p.yaml", pipeline("p", 1, greeting="new"))
    write(folder, "q.yaml", pipeline("q"))
    change = live.reload("test")
    assert (change.added, change.changed) == (["q@1"], ["p@1"])
    assert before.refs() == ["p@1"] and before.get("p").description == "old"
    assert live.current.get("p").description == "new"


def test_poll_reloads_only_when_files_change(folder: Path, tools: ToolRegistry) -> None:
    """The watch's poll does nothing while the folder is unchanged and reloads after a change."""
    write(folder, "p.yaml", pipeline("p"))
    live = LiveCatalog(folder, tools)
    assert live.poll() is None
    write(folder, "examples/q.yaml", pipeline("q"))
    change = live.poll()
    assert change is not None and change.added == ["q@1"]
    assert live.poll() is None


def test_errors_logged_once_per_change(folder: Path, tools: ToolRegistry) -> None:
    """A refused file is logged when its errors appear or change, not on every reload."""
    write(folder, "bad.yaml", BROKEN.format(name="bad", version=1))
    with capture_logs() as logs:
        live = LiveCatalog(folder, tools)
        live.reload("again")
        live.reload("and again")
        write(folder, "bad.yaml", "name: bad\nsteps: 3\n")
        live.reload("changed")
    refused = [e for e in logs if e["event"] == "catalog file refused"]
    assert [(e["file"], e["path"]) for e in refused] == [
        ("bad.yaml", "steps[0].tool"),
        ("bad.yaml", "steps"),
    ]


def test_children_missing_names_the_step(folder: Path, tools: ToolRegistry) -> None:
    """A child pipeline gone since its parent loaded is a KeyError naming the parent's step."""
    write(folder, "child.yaml", pipeline("child"))
    parent = "name: parent\nsteps:\n  - id: sub\n    pipeline: child@1\n"
    write(folder, "parent.yaml", parent)
    live = LiveCatalog(folder, tools)
    assert set(live.current.children(live.current.get("parent"))) == {"child@1"}
    (folder / "child.yaml").unlink()
    live.reload("test")
    with pytest.raises(KeyError, match=r"parent steps\[0\]\.pipeline: unknown pipeline 'child'"):
        live.current.children(live.current.get("parent"))


@pytest.mark.parametrize("name", ["errors", "reload", "validate"])
def test_load_refuses_the_reserved_names(folder: Path, tools: ToolRegistry, name: str) -> None:
    """`/definitions/errors`, `/reload` and `/validate` are routes of their own, so no catalog
    pipeline may take those names (`GET /definitions/<name>` would be ambiguous)."""
    write(folder, f"{name}.yaml", pipeline(name))
    catalog = Catalog.load(folder, tools)
    assert catalog.refs() == []
    assert [(e.path, e.message) for e in catalog.errors] == [
        ("name", f"{name!r} is reserved by the API")
    ]


@pytest.mark.parametrize(
    ("bound", "message"),
    [
        ("MAX_FILES", "more than 2 definition files"),
        ("MAX_ENTRIES", "more than 2 entries in the folder"),
    ],
)
def test_scan_past_its_bounds_removes_nothing(
    folder: Path, tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch, bound: str, message: str
) -> None:
    """Past the bound on files or on entries listed the walk stops, says so, and no loaded
    version is dropped."""
    write(folder, "z.yaml", pipeline("z"))
    live = LiveCatalog(folder, tools)
    monkeypatch.setattr(catalog_files, bound, 2)
    for n in range(3):
        write(folder, f"a{n}.yaml", pipeline(f"a{n}"))
    live.reload("test")
    assert "z@1" in live.current.refs()
    assert [e.file for e in live.current.errors] == ["."]
    assert live.current.errors[0].message.startswith(message)


def test_scan_bounds_depth_size_links_and_fifos(
    folder: Path, tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders nested too deep, oversized files, links back up the tree and FIFOs cannot hang
    or blow up a load: each is skipped or reported."""
    monkeypatch.setattr(catalog_files, "MAX_DIR_DEPTH", 2)
    monkeypatch.setattr(catalog_files, "MAX_FILE_BYTES", 4_096)
    write(folder, "ok/ok.yaml", pipeline("ok"))
    write(folder, "a/b/c/deep.yaml", pipeline("deep"))
    write(folder, "big.yaml", pipeline("big", extra=f"summary: {'x' * 5_000}\n"))
    os.symlink(folder, folder / "ok" / "loop")
    os.mkfifo(folder / "pipe.yaml")
    os.symlink(folder / "missing.yaml", folder / "dangling.yaml")
    catalog = Catalog.load(folder, tools)
    assert catalog.refs() == ["ok@1"]
    assert {(e.file, e.message) for e in catalog.errors} == {
        ("a/b/c", "folders nest at most 2 deep; skipped"),
        ("big.yaml", "larger than 4096 bytes"),
    }


def test_worker_reads_a_bad_catalog_and_logs_it(folder: Path, tools: ToolRegistry) -> None:
    """The worker starts with a broken definition file: it logs the error and goes on."""
    write(folder, "good.yaml", pipeline("good"))
    write(folder, "bad.yaml", "name: bad\nsteps: [\n")
    settings = Settings(stepgate_definitions_dir=folder, _env_file=None)  # type: ignore[call-arg]
    with capture_logs() as logs:
        catalog = read_catalog(settings, tools)
    assert catalog.refs() == ["good@1"]
    assert [e["file"] for e in logs if e["event"] == "catalog file refused"] == ["bad.yaml"]


def test_shipped_catalog_loads_without_errors(tools: ToolRegistry, tmp_path: Path) -> None:
    """Every file shipped in definitions/ (subfolders included) validates."""
    root = Path(__file__).resolve().parent.parent / "definitions"
    shutil.copytree(root, tmp_path / "shipped")
    catalog = Catalog.load(tmp_path / "shipped", tools)
    assert catalog.errors == ()
    assert {"hello", "approval_demo"} <= set(catalog.names())


def test_an_unknown_pipeline_names_only_the_first_few_of_a_large_catalog(
    folder: Path, tools: ToolRegistry
) -> None:
    """An error about a missing pipeline lists some of what the catalog has, not all of it."""
    for i in range(25):
        write(folder, f"p{i:02}.yaml", pipeline(f"p{i:02}"))
    catalog = Catalog.load(folder, tools)
    with pytest.raises(KeyError) as err:
        catalog.get("nope")
    message = err.value.args[0]
    assert message.startswith("unknown pipeline 'nope' (catalog has: p00, p01,")
    assert message.endswith("p19 and 5 more)") and "p20" not in message


# Lines a file outside the catalog might hold; none of them may reach an error.
SECRET_LINES = "db_password: hunter2-outside\napi_token: tok-outside\nname: 5\n"


def shown(catalog: Catalog) -> str:
    """Everything the catalog's errors show a viewer, as one text."""
    return " ".join(f"{e.file} {e.path} {e.message} {e.kept}" for e in catalog.errors)


def test_scan_skips_links_out_of_the_folder_and_names_them(
    folder: Path, tools: ToolRegistry, tmp_path: Path
) -> None:
    """A link to a file outside the folder (directly, or up out of a subfolder) is skipped with
    an error naming the link and nothing of its target; a link to a file inside is followed
    (a Kubernetes ConfigMap's `x.yaml -> ..data/x.yaml`)."""
    outside = tmp_path / "system.yaml"
    outside.write_text(SECRET_LINES)
    os.symlink(outside, folder / "abs.yaml")
    write(folder, "sub/keep.yaml", pipeline("keep"))
    os.symlink("../../system.yaml", folder / "sub" / "rel.yaml")
    os.symlink(tmp_path / "missing.yaml", folder / "gone.yaml")
    write(folder, "..2026_01_01/cm.yaml", pipeline("cm"))
    os.symlink("..2026_01_01", folder / "..data")
    os.symlink("..data/cm.yaml", folder / "cm.yaml")
    catalog = Catalog.load(folder, tools)
    assert catalog.refs() == ["cm@1", "keep@1"]
    assert {(e.file, e.path, e.message) for e in catalog.errors} == {
        (rel, "", catalog_files.OUTSIDE) for rel in ("abs.yaml", "gone.yaml", "sub/rel.yaml")
    }
    assert "hunter2" not in shown(catalog) and "db_password" not in shown(catalog)


def test_read_never_leaves_the_folder_when_a_link_appears_after_the_walk(
    folder: Path, tools: ToolRegistry, tmp_path: Path
) -> None:
    """A folder or file swapped for a link to the outside between the walk and the read is
    refused as unreadable; nothing of the outside file is read or shown."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "p.yaml").write_text(SECRET_LINES)
    write(folder, "sub/p.yaml", pipeline("p"))
    write(folder, "q.yaml", pipeline("q"))
    scan = catalog_files.scan(folder)
    shutil.rmtree(folder / "sub")
    os.symlink(elsewhere, folder / "sub")
    (folder / "q.yaml").unlink()
    os.symlink(elsewhere / "p.yaml", folder / "q.yaml")
    catalog = Catalog.load(folder, tools, scan=scan)
    assert catalog.refs() == []
    assert {(e.file, e.message) for e in catalog.errors} == {
        ("sub/p.yaml", "cannot be read: Not a directory"),
        ("q.yaml", "cannot be read: Too many levels of symbolic links"),
    }
    assert "hunter2" not in shown(catalog) and "db_password" not in shown(catalog)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SECRET_LINES, "not a pipeline definition"),
        ("db_password: hunter2-outside\n\tapi_token: [\n", "not valid YAML or JSON at line"),
        ("db_password: .nan\n", "breaks a document limit: NaN and Infinity"),
        ("db_password: !hunter2-outside x\n", "YAML tag"),
    ],
    ids=["other-yaml", "syntax", "limit", "tag"],
)
def test_errors_quote_nothing_of_a_file_that_is_no_definition(
    folder: Path, tools: ToolRegistry, text: str, message: str
) -> None:
    """A file that is not a pipeline definition (other YAML, broken YAML, a document limit, a
    foreign tag) is one error with no path and nothing of its keys or values."""
    write(folder, "conf.yaml", text)
    catalog = Catalog.load(folder, tools)
    (error,) = catalog.errors
    assert (error.file, error.path) == ("conf.yaml", "")
    assert error.message.startswith(message)
    assert "hunter2" not in shown(catalog) and "db_password" not in shown(catalog)


def test_get_refuses_a_version_that_is_no_ascii_number(folder: Path, tools: ToolRegistry) -> None:
    """`name@²` is an unknown version (a KeyError naming it), not a crash in `int()`."""
    write(folder, "p.yaml", pipeline("p"))
    catalog = Catalog.load(folder, tools)
    with pytest.raises(KeyError) as err:
        catalog.get("p@²")
    assert err.value.args[0] == "pipeline 'p' has no version '²' (have: 1)"
