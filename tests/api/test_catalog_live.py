"""The live catalog through the API: files added, versioned, broken and deleted while it runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.config import Settings
from tests.api.conftest import Serve
from tests.api.helpers import eventually, wait_state
from tests.test_catalog import BROKEN, pipeline, write
from workflows.language import catalog_files

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    """The suite's settings with a quick folder watch, so a test waits a fraction of a second."""
    return api_settings.model_copy(update={"stepgate_catalog_poll_s": 0.1})


def echo(name: str, version: int, tag: str) -> str:
    """A one-step pipeline whose output says which version ran."""
    return (
        f"name: {name}\nversion: {version}\ndescription: {tag}\n"
        f"steps:\n  - id: say\n    tool: test.echo\n    with: {{tag: {tag}}}\n"
        "output: '${steps.say.output.tag}'\n"
    )


async def versions(http: httpx.AsyncClient, auth: Any, name: str) -> list[int] | None:
    r = await http.get(f"/definitions/{name}", headers=auth)
    return r.json()["versions"] if r.status_code == 200 else None


async def errors(http: httpx.AsyncClient, auth: Any) -> list[dict[str, Any]]:
    r = await http.get("/definitions/errors", headers=auth)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["errors"]
    return found


async def start(http: httpx.AsyncClient, auth: Any, ref: str) -> httpx.Response:
    return await http.post("/workflows", json={"definition": ref, "input": {}}, headers=auth)


async def test_added_file_starts_without_restart(
    http: httpx.AsyncClient, definitions: Path, as_: Auth
) -> None:
    """A file dropped into a subfolder is seen by the watch and starts; the run completes."""
    write(definitions, "examples/fresh.yaml", echo("fresh", 1, "new"))
    await eventually(lambda: versions(http, as_("vic"), "fresh"), lambda v: v == [1], "fresh")
    r = await start(http, as_("olga"), "fresh")
    assert r.status_code == 201, r.text
    status = await wait_state(http, r.json()["workflow_id"], "completed", as_("vic"))
    assert status["output"] == "new"


async def test_second_version_starts_next_to_the_first(
    http: httpx.AsyncClient, definitions: Path, as_: Auth
) -> None:
    """With v1 and v2 loaded, `name` starts v2 and `name@1` still starts v1."""
    write(definitions, "multi.yaml", echo("multi", 1, "one"))
    write(definitions, "examples/multi-v2.yaml", echo("multi", 2, "two"))
    await eventually(lambda: versions(http, as_("vic"), "multi"), lambda v: v == [1, 2], "v2")
    for ref, version, output in (("multi", 2, "two"), ("multi@1", 1, "one")):
        r = await start(http, as_("olga"), ref)
        assert r.status_code == 201, r.text
        status = await wait_state(http, r.json()["workflow_id"], "completed", as_("vic"))
        assert (status["version"], status["output"]) == (version, output)


async def test_broken_version_stays_loaded_and_error_listed(
    http: httpx.AsyncClient, definitions: Path, as_: Auth
) -> None:
    """Breaking v2's file keeps v2 as it was loaded; /definitions/errors names file and path."""
    write(definitions, "keep-v1.yaml", echo("keep", 1, "one"))
    write(definitions, "keep-v2.yaml", echo("keep", 2, "two"))
    await eventually(lambda: versions(http, as_("vic"), "keep"), lambda v: v == [1, 2], "v2")
    write(definitions, "keep-v2.yaml", BROKEN.format(name="keep", version=2))
    listed = await eventually(lambda: errors(http, as_("vic")), bool, "the error listed")
    assert listed == [
        {
            "file": "keep-v2.yaml",
            "path": "steps[0].tool",
            "message": listed[0]["message"],
            "kept": "keep@2",
        }
    ]
    assert "no.such_tool" in listed[0]["message"]
    r = await http.get("/definitions/keep", headers=as_("vic"))
    assert (r.json()["version"], r.json()["description"], r.json()["file"]) == (
        2,
        "two",
        "keep-v2.yaml",
    )
    r = await start(http, as_("olga"), "keep")
    status = await wait_state(http, r.json()["workflow_id"], "completed", as_("vic"))
    assert status["output"] == "two"


async def test_link_to_a_file_outside_listed_by_name_only(
    http: httpx.AsyncClient, definitions: Path, tmp_path: Path, as_: Auth
) -> None:
    """A viewer's `GET /definitions/errors` names a link to a file outside the folder and shows
    none of that file's lines (it once listed each top-level key of a system file)."""
    outside = tmp_path / "host.conf"
    outside.write_text("".join(f"line{n}_secret: value{n}\n" for n in range(30)))
    (definitions / "sys.yaml").symlink_to(outside)
    listed = await eventually(lambda: errors(http, as_("vic")), bool, "the link listed")
    assert "secret" not in str(listed) and "value" not in str(listed)
    assert listed == [
        {"file": "sys.yaml", "path": "", "message": catalog_files.OUTSIDE, "kept": None}
    ]


async def test_deleted_version_file_removes_it(
    http: httpx.AsyncClient, definitions: Path, as_: Auth
) -> None:
    """Deleting v2's file removes v2: `name@2` is a 422 at start and `name` starts v1."""
    write(definitions, "gone-v1.yaml", echo("gone", 1, "one"))
    write(definitions, "gone-v2.yaml", echo("gone", 2, "two"))
    await eventually(lambda: versions(http, as_("vic"), "gone"), lambda v: v == [1, 2], "v2")
    (definitions / "gone-v2.yaml").unlink()
    await eventually(lambda: versions(http, as_("vic"), "gone"), lambda v: v == [1], "v2 gone")
    r = await start(http, as_("olga"), "gone@2")
    assert r.status_code == 422
    assert r.json()["error"]["details"] == [
        {"path": "definition", "message": "pipeline 'gone' has no version '2' (have: 1)"}
    ]
    r = await start(http, as_("olga"), "gone")
    status = await wait_state(http, r.json()["workflow_id"], "completed", as_("vic"))
    assert status["version"] == 1


async def test_duplicate_name_and_version_keeps_the_loaded_file(
    http: httpx.AsyncClient, definitions: Path, as_: Auth
) -> None:
    """A second file claiming a loaded name and version is listed as an error; the first stays."""
    write(definitions, "z-twin.yaml", echo("twin", 1, "first"))
    await eventually(lambda: versions(http, as_("vic"), "twin"), lambda v: v == [1], "twin")
    write(definitions, "a-twin.yaml", echo("twin", 1, "second"))
    listed = await eventually(lambda: errors(http, as_("vic")), bool, "the duplicate listed")
    assert [(e["file"], e["message"]) for e in listed] == [
        ("a-twin.yaml", "twin v1 is already defined by z-twin.yaml")
    ]
    r = await http.get("/definitions/twin", headers=as_("vic"))
    assert r.json()["description"] == "first"


async def test_reload_needs_catalog_reload(
    serve: Serve, api_settings: Settings, definitions: Path, worker: None, as_: Auth
) -> None:
    """POST /definitions/reload is 403 for an operator and, for an admin, answers what changed
    and the errors (no watch runs here, so only the reload can have seen the files)."""
    still = api_settings.model_copy(update={"stepgate_catalog_poll_s": 0})
    async with serve(still) as url, httpx.AsyncClient(base_url=url) as http:
        write(definitions, "examples/late.yaml", echo("late", 1, "late"))
        write(definitions, "bad.yaml", "name: bad\nsteps: [\n")
        (definitions / "hello.yaml").unlink()
        r = await http.post("/definitions/reload", headers=as_("olga"))
        assert r.status_code == 403
        assert r.json()["error"]["details"] == {"missing": ["catalog_reload"]}
        assert await versions(http, as_("vic"), "late") is None
        r = await http.post("/definitions/reload", headers=as_("root"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["added"], body["changed"], body["removed"]) == (["late@1"], [], ["hello@1"])
        assert [(e["file"], e["kept"]) for e in body["errors"]] == [("bad.yaml", None)]
        assert "line" in body["errors"][0]["message"]
        assert await versions(http, as_("vic"), "late") == [1]
        again = (await http.post("/definitions/reload", headers=as_("root"))).json()
        assert (again["added"], again["changed"], again["removed"]) == ([], [], [])


async def test_bad_file_at_start_listed_and_api_serves(
    serve: Serve, api_settings: Settings, definitions: Path, worker: None, as_: Auth
) -> None:
    """A catalog with a broken file and a duplicate starts: the good pipelines are listed and
    started, the bad files are listed as errors."""
    write(definitions, "broken.yaml", "name: x\n  steps: [oops\n")
    write(definitions, "z-again.yaml", pipeline("hello"))
    async with serve(api_settings) as url, httpx.AsyncClient(base_url=url) as http:
        listed = await errors(http, as_("vic"))
        assert [(e["file"], e["kept"]) for e in listed] == [
            ("broken.yaml", None),
            ("z-again.yaml", None),
        ]
        names = {d["name"] for d in (await http.get("/definitions", headers=as_("vic"))).json()}
        assert {"hello", "approval_demo", "gated"} <= names
        r = await http.post(
            "/workflows",
            json={"definition": "hello", "input": {"name": "Ada"}},
            headers=as_("olga"),
        )
        assert r.status_code == 201, r.text


async def test_parent_whose_child_is_gone_unprocessable_at_start(
    http: httpx.AsyncClient, definitions: Path, as_: Auth
) -> None:
    """A parent starts with its child's snapshot; once the child's file is deleted, starting
    the parent is a 422 naming the step, not a 500."""
    write(definitions, "kid.yaml", echo("kid", 1, "from the child"))
    parent = "name: parent\nsteps:\n  - id: sub\n    pipeline: kid\noutput: '${steps.sub.output}'\n"
    write(definitions, "parent.yaml", parent)
    await eventually(lambda: versions(http, as_("vic"), "parent"), lambda v: v == [1], "parent")
    r = await start(http, as_("olga"), "parent")
    assert r.status_code == 201, r.text
    status = await wait_state(http, r.json()["workflow_id"], "completed", as_("vic"))
    assert status["output"] == "from the child"
    (definitions / "kid.yaml").unlink()
    await eventually(lambda: versions(http, as_("vic"), "kid"), lambda v: v is None, "kid gone")
    r = await start(http, as_("olga"), "parent")
    assert r.status_code == 422
    [detail] = r.json()["error"]["details"]
    assert detail["path"] == "definition"
    prefix = "parent steps[0].pipeline: unknown pipeline 'kid' (catalog has: approval_demo, "
    assert detail["message"].startswith(prefix) and "kid" not in detail["message"][len(prefix) :]
