"""A run's snapshot as its payloads carry it (workflows/snapshot.py): packed (written without the
fields at their defaults, deflated) and read back the same, plain JSON read as ever, shared
between the runs of one worker only when the text is the same and within its bound, never
changed by a run that holds it, and a packed one that is not one, or inflates past its bound,
refused naming the field."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import from_json, to_json
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from activities import default_registry
from workflows import snapshot
from workflows.client import make_data_converter
from workflows.governed import GovernedWorkflow
from workflows.language.catalog import Catalog
from workflows.language.definition import Definition
from workflows.models import PipelineInput, Principal
from workflows.pipeline import PipelineWorkflow

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def catalog() -> list[Definition]:
    loaded = Catalog.load(ROOT / "definitions", default_registry(entry_points=False))
    assert not loaded.errors, loaded.errors
    return [loaded.get(ref) for ref in loaded.refs()]


def read(inp: PipelineInput) -> PipelineInput:
    return PipelineInput.model_validate_json(to_json(inp))


def test_every_catalog_pipeline_reads_back_the_same_from_its_packed_snapshot() -> None:
    """Packing loses nothing: each shipped definition, carried by a run's input with its child
    snapshots, reads back equal, from a payload a fraction of the whole JSON's size; its plain
    JSON, whole or compact, reads back the same too."""
    definitions = catalog()
    assert len(definitions) >= 5
    for d in definitions:
        inp = PipelineInput(definition=d, input={"x": 1}, pipelines={"child": d})
        back = read(inp)
        assert back == inp, d.ref
        whole = to_json(d.model_dump(mode="json", by_alias=True))
        assert len(snapshot.pack(d)) < len(whole) / 2, d.ref
        for plain in (from_json(whole), snapshot.compact(d)):
            assert PipelineInput.model_validate({"definition": plain}).definition == d, d.ref


def test_runs_of_one_snapshot_share_one_definition_and_others_do_not() -> None:
    """Two inputs with the same snapshot text read to one Definition instance; another
    snapshot, or the same one past SHARED_SNAPSHOT_BYTES, is read for its own run."""
    d = catalog()[0]
    first = read(PipelineInput(definition=d, input={"n": 1}))
    second = read(PipelineInput(definition=d, input={"n": 2}, requester=Principal(principal="p")))
    assert first.definition is second.definition
    other = d.model_copy(update={"description": "another text"})
    assert read(PipelineInput(definition=other)).definition is not first.definition
    big = d.model_copy(update={"output": "x" * snapshot.SHARED_SNAPSHOT_BYTES})
    one, two = read(PipelineInput(definition=big)), read(PipelineInput(definition=big))
    assert one.definition == two.definition and one.definition is not two.definition


def test_a_snapshot_that_breaks_the_language_is_refused_whether_shared_or_not() -> None:
    """A payload's snapshot is validated as ever, packed or plain, shared or not: a bad one
    names its field."""
    bad: dict[str, Any] = {"name": "has space", "steps": [{"id": "a"}]}
    for padding in ("", "x" * snapshot.SHARED_SNAPSHOT_BYTES):
        bad["output"] = padding
        packed = base64.b64encode(zlib.compress(to_json(bad))).decode()
        for carried in (bad, packed):
            with pytest.raises(ValueError, match=r"definition\.name"):
                PipelineInput.model_validate_json(to_json({"definition": carried}))


@pytest.mark.parametrize(
    "packed",
    [
        "not base64 at all!",
        base64.b64encode(b"not deflated").decode(),
        base64.b64encode(zlib.compress(b"{" * (snapshot.MAX_SNAPSHOT_BYTES + 1))).decode(),
        base64.b64encode(zlib.compress(b"[]")[:-3]).decode(),
    ],
    ids=["not_base64", "not_deflated", "inflates_past_the_bound", "cut_short"],
)
def test_a_packed_snapshot_that_is_not_one_is_refused_naming_the_field(packed: str) -> None:
    """Data is never trusted to be what it says: a string that is not base64, not deflated,
    cut short, or that would inflate past MAX_SNAPSHOT_BYTES (a few KiB unpacking to megabytes)
    is refused as the run's definition, before any of it is read as one."""
    with pytest.raises(ValueError, match=r"definition\n.*packed definition snapshot"):
        PipelineInput.model_validate_json(to_json({"definition": packed}))


def _started_snapshot(path: Path) -> bytes | None:
    events = json.loads(path.read_text())["events"]
    started = events[0].get("workflowExecutionStartedEventAttributes") or {}
    if started.get("workflowType", {}).get("name") != "PipelineWorkflow":
        return None
    payload = started["input"]["payloads"][0]
    carried = from_json(base64.b64decode(payload["data"]))["definition"]
    return snapshot.unpack(carried) if isinstance(carried, str) else to_json(carried)


async def test_replaying_every_recorded_run_leaves_the_shared_snapshots_as_read() -> None:
    """Runs share a snapshot only because no workflow code changes a definition: after every
    recorded history has replayed, each shared snapshot still equals a fresh read of its text."""
    replayer = Replayer(
        workflows=[PipelineWorkflow, GovernedWorkflow], data_converter=make_data_converter()
    )
    texts = [t for t in map(_started_snapshot, HISTORIES) if t is not None]
    assert len(texts) >= 10 and len(texts) <= snapshot.SHARED_SNAPSHOTS
    for path in HISTORIES:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, path.name
    for text in texts:
        shared = PipelineInput.model_validate_json(b'{"definition":' + text + b"}").definition
        assert shared == Definition.model_validate_json(text)
