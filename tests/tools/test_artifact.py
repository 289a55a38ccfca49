"""artifact.write / artifact.read against the local artifact store."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.artifacts import run_dir
from activities.config import Settings
from activities.models import ArtifactRef
from activities.runtime import ToolActivities
from tests.tools.conftest import make_call

RUN = "wf-artifacts"


async def write(acts: ToolActivities, **args: object) -> dict[str, object]:
    result = await acts.execute(make_call("artifact.write", dict(args), workflow_id=RUN))
    assert isinstance(result.output, dict)
    return result.output


async def read(acts: ToolActivities, **args: object) -> dict[str, object]:
    result = await acts.execute(make_call("artifact.read", dict(args), workflow_id=RUN))
    assert isinstance(result.output, dict)
    return result.output


async def test_write_then_read_returns_text_when_text_written(acts: ToolActivities) -> None:
    """Text round-trips, and the ref describes the stored bytes."""
    ref = await write(acts, name="notes/a.md", content="# héllo")
    data = "# héllo".encode()
    assert ref["size"] == len(data) and ref["sha256"] == hashlib.sha256(data).hexdigest()
    assert str(ref["uri"]).startswith("file://") and str(ref["path"]).endswith("notes/a.md")
    got = await read(acts, name="notes/a.md")
    assert (got["content"], got["encoding"], got["sha256"]) == ("# héllo", "text", ref["sha256"])


async def test_write_then_read_returns_json_when_json_written(acts: ToolActivities) -> None:
    """A JSON value is stored as JSON and read back parsed."""
    await write(acts, name="plan.json", content={"steps": [1, 2]}, encoding="json")
    got = await read(acts, name="plan.json", encoding="json")
    assert got["content"] == {"steps": [1, 2]}


async def test_read_returns_base64_when_content_is_binary(acts: ToolActivities) -> None:
    """Bytes that are not UTF-8 come back base64-encoded under `auto`."""
    blob = base64.b64encode(b"\xff\x00\xfe").decode()
    await write(acts, name="blob.bin", content=blob, encoding="base64")
    got = await read(acts, name="blob.bin")
    assert (got["content"], got["encoding"], got["size"]) == (blob, "base64", 3)


async def test_write_returns_same_ref_when_repeated_with_same_content(
    acts: ToolActivities,
) -> None:
    """Writing the same name and content again (a retry) is a no-op returning the same ref."""
    first = await write(acts, name="out.txt", content="same")
    assert await write(acts, name="out.txt", content="same") == first


async def test_write_fails_fatally_when_content_differs_without_overwrite(
    acts: ToolActivities,
) -> None:
    """Other content under an existing name is refused unless overwrite is set."""
    await write(acts, name="out.txt", content="one")
    with pytest.raises(ApplicationError) as err:
        await write(acts, name="out.txt", content="two")
    assert err.value.non_retryable is True and "overwrite" in err.value.message
    replaced = await write(acts, name="out.txt", content="two", overwrite=True)
    assert replaced["size"] == 3
    assert (await read(acts, name="out.txt"))["content"] == "two"


async def test_read_fails_fatally_when_artifact_is_missing(acts: ToolActivities) -> None:
    """Reading a name never written is a non-retryable error naming it."""
    with pytest.raises(ApplicationError) as err:
        await read(acts, name="nothing.txt")
    assert err.value.non_retryable is True and "nothing.txt" in err.value.message


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"name": "x", "content": "%%%", "encoding": "base64"}, "not valid base64"),
        ({"name": "x", "content": {"a": 1}}, "content must be a string"),
        ({"name": "../escape", "content": "x"}, "must be a relative path"),
    ],
)
async def test_write_fails_fatally_when_input_is_bad(
    acts: ToolActivities, args: dict[str, object], fragment: str
) -> None:
    """Bad base64, non-text content for text, and path escapes are refused without retry."""
    with pytest.raises(ApplicationError) as err:
        await write(acts, **args)
    assert err.value.non_retryable is True and fragment in err.value.message


async def test_write_keeps_runs_apart_when_ids_differ_only_in_unsafe_characters(
    acts: ToolActivities,
) -> None:
    """`hr:1` and `hr_1` once shared a folder; each now reads back only its own file."""
    refs = {}
    for run in ("hr:1", "hr_1", "HR_1"):
        call = make_call("artifact.write", {"name": "r.txt", "content": run}, workflow_id=run)
        refs[run] = (await acts.execute(call)).output
    assert len({str(ref["path"]).split("/")[0] for ref in refs.values()}) == 3
    for run in refs:
        got = await acts.execute(make_call("artifact.read", {"name": "r.txt"}, workflow_id=run))
        assert got.output["content"] == run


async def test_write_names_folder_briefly_when_workflow_id_is_long(acts: ToolActivities) -> None:
    """A 1,000-character workflow id still gets a folder name any file system accepts."""
    run = "x" * 1000
    ref = (
        await acts.execute(
            make_call("artifact.write", {"name": "a", "content": "1"}, workflow_id=run)
        )
    ).output
    assert len(str(ref["path"]).split("/")[0]) < 128


async def test_read_ref_resolves_path_when_recorded_under_old_layout(
    acts: ToolActivities, tool_settings: Settings
) -> None:
    """A reference recorded before the folder layout changed (`hr_1/...`) still resolves."""
    data = b'{"big": true}'
    old = tool_settings.artifact_root / "hr_1" / "outputs" / "fetch.main.json"
    old.parent.mkdir(parents=True)
    old.write_bytes(data)
    ref = ArtifactRef(
        uri=old.as_uri(),
        path="hr_1/outputs/fetch.main.json",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    assert await acts.artifacts.read_ref(ref) == data
    with pytest.raises(ApplicationError) as err:
        await acts.artifacts.read_ref(
            ref.model_copy(update={"path": "../hr_1/outputs/fetch.main.json"})
        )
    assert err.value.type == "ArtifactNotFound"


async def test_store_refuses_links_when_run_folder_holds_them(
    acts: ToolActivities, tool_settings: Settings, tmp_path: Path
) -> None:
    """Links a program planted in its run folder are never followed: not to read a file
    elsewhere, not to write through a linked folder."""
    await write(acts, name="seed.txt", content="x")
    folder = run_dir(tool_settings.artifact_root.resolve(), RUN)
    secret = tmp_path / "worker-secret.txt"
    secret.write_text("not for the run")
    (folder / "leak.txt").symlink_to(secret)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "outputs").symlink_to(elsewhere)
    with pytest.raises(ApplicationError) as err:
        await read(acts, name="leak.txt")
    assert err.value.type == "ArtifactNotFound"
    with pytest.raises(ApplicationError) as err:
        await write(acts, name="outputs/step.json", content="{}")
    assert err.value.type == "ArtifactUnwritable" and err.value.non_retryable is True
    assert list(elsewhere.iterdir()) == []


async def test_read_fails_at_once_when_name_is_a_fifo(
    acts: ToolActivities, tool_settings: Settings
) -> None:
    """A FIFO planted under an artifact's name is refused instead of blocking the reader."""
    await write(acts, name="seed.txt", content="x")
    os.mkfifo(run_dir(tool_settings.artifact_root.resolve(), RUN) / "pipe")
    with pytest.raises(ApplicationError) as err:
        await read(acts, name="pipe")
    assert err.value.type == "ArtifactNotFound"


async def test_write_closes_run_folder_when_created(
    acts: ToolActivities, tool_settings: Settings
) -> None:
    """A run's folder is open to its owner only (other runs' programs cannot browse it)."""
    await write(acts, name="seed.txt", content="x")
    mode = run_dir(tool_settings.artifact_root.resolve(), RUN).stat().st_mode
    assert stat.S_IMODE(mode) == 0o700


async def test_write_masks_secret_when_name_is_refused(
    acts: ToolActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret in a refused artifact name is masked in the failure, however it is quoted."""
    monkeypatch.setenv("STEPGATE_SECRET_KEY", 'it\'s-a-"secret"')
    for tool_name in ("artifact.write", "artifact.read"):
        args = (
            {"name": "x/${secret.KEY}", "content": "x"}
            if tool_name == "artifact.write"
            else {"name": "${secret.KEY}"}
        )
        with pytest.raises(ApplicationError) as err:
            await acts.execute(make_call(tool_name, args, workflow_id=RUN))
        assert err.value.type == "InvalidArtifactName" and "***" in err.value.message
        assert "secret" not in err.value.message, err.value.message


async def test_load_list_reads_its_path_and_refuses_what_history_cannot_hold(
    acts: ToolActivities,
) -> None:
    """The for_each list read returns the value at its path in a stored output, refuses a
    value over its byte bound (non-retryable, naming the size) and a path the output lacks."""
    from activities.lists import ListActivities
    from activities.models import ListCall

    stored = await acts.artifacts.put(
        RUN, "outputs/fetch.json", b'{"json": {"services": ["a", "b"]}}', "application/json"
    )
    lists = ListActivities(acts.artifacts)
    got = await lists.load_list(ListCall(artifact=stored, path=["json", "services"], max_bytes=9))
    assert got.value == ["a", "b"]
    with pytest.raises(ApplicationError) as big:
        await lists.load_list(ListCall(artifact=stored, path=["json"], max_bytes=9))
    assert big.value.non_retryable and big.value.type == "ListTooLarge"
    assert big.value.message.startswith("the list at json is 22 bytes of JSON, more than 9")
    with pytest.raises(ApplicationError) as missing:
        await lists.load_list(ListCall(artifact=stored, path=["json", "nope"], max_bytes=99))
    assert missing.value.non_retryable and missing.value.type == "BadReference"
