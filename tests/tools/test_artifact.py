"""artifact.write / artifact.read against the local artifact store."""

from __future__ import annotations

import base64
import hashlib

import pytest
from temporalio.exceptions import ApplicationError

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
