"""Rotating the payload encryption key: a keyring decrypts old payloads, encrypts with the new."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from tests.pipeline.gating import decide, open_gate
from tests.test_durability import definition
from tests.test_security import payload_bytes
from worker import build_worker
from workflows.client import make_client
from workflows.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec
from workflows.pipeline import PipelineWorkflow

OLD, NEW = os.urandom(32), os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"card": "4111"}')


async def test_payload_from_old_key_decrypts_after_rotation() -> None:
    """A payload sealed under the old key opens with the rotated keyring, whose new payloads
    carry the new key id."""
    before = EncryptionCodec({"old": OLD}, "old")
    after = EncryptionCodec({"old": OLD, "new": NEW}, "new")
    (sealed,) = await before.encode([PLAIN])
    assert sealed.metadata[KEY_ID_METADATA] == b"old"
    assert await after.decode([sealed]) == [PLAIN]
    (fresh,) = await after.encode([PLAIN])
    assert (fresh.metadata["encoding"], fresh.metadata[KEY_ID_METADATA]) == (ENCODING, b"new")
    assert await after.decode([fresh]) == [PLAIN]


async def test_payload_under_a_dropped_key_refused_naming_the_id() -> None:
    """Once a key leaves the keyring its payloads are refused, naming the id, not the key."""
    (sealed,) = await EncryptionCodec({"old": OLD}, "old").encode([PLAIN])
    with pytest.raises(ValueError, match="key id 'old', which is not in the keyring"):
        await EncryptionCodec({"new": NEW}, "new").decode([sealed])


def test_keyring_settings_combine_single_key_and_keyring() -> None:
    """STEPGATE_ENCRYPTION_KEY alone is a one-key keyring; with STEPGATE_ENCRYPTION_KEYS it joins
    the ring under STEPGATE_ENCRYPTION_KEY_ID."""
    single = Settings(stepgate_encryption_key=b64(OLD), _env_file=None)  # type: ignore[call-arg]
    assert single.encryption_keyring() == {"default": OLD}
    both = Settings(
        stepgate_encryption_keys=f"old:{b64(OLD)}",
        stepgate_encryption_key=b64(NEW),
        stepgate_encryption_key_id="new",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert both.encryption_keyring() == {"old": OLD, "new": NEW}
    assert "stepgate_encryption_keys" not in repr(both)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stepgate_encryption_keys": f"old:{b64(OLD)}"}, "KEY_ID='default' is not in"),
        ({"stepgate_encryption_keys": "default:bm90IGEga2V5"}, "must decode to 32 bytes"),
        ({"stepgate_encryption_keys": f"default:{b64(OLD)}!"}, "is not valid base64"),
        ({"stepgate_encryption_keys": f"a b:{b64(OLD)}"}, "each entry is `id:BASE64`"),
        (
            {
                "stepgate_encryption_keys": f"default:{b64(OLD)}",
                "stepgate_encryption_key": b64(NEW),
            },
            "different keys",
        ),
    ],
)
def test_keyring_settings_mistakes_refused_without_echoing_keys(
    fields: dict[str, str], message: str
) -> None:
    """A keyring that cannot work stops the process at start; the error never shows a key."""
    with pytest.raises(ValueError) as err:
        Settings(**fields, _env_file=None)  # type: ignore[arg-type]
    assert message in str(err.value)
    for secret in (b64(OLD), b64(NEW), b64(OLD)[-12:]):
        assert secret not in str(err.value)


async def test_run_started_before_rotation_finishes_after_it(
    client: Client, settings: Settings
) -> None:
    """A run parked at a gate under the old key is decided and completes on a worker with the
    rotated keyring; its history then holds payloads under both key ids."""
    old = settings.model_copy(
        update={"stepgate_encryption_keys": f"old:{b64(OLD)}", "stepgate_encryption_key_id": "old"}
    )
    new = settings.model_copy(
        update={
            "stepgate_encryption_keys": f"old:{b64(OLD)},new:{b64(NEW)}",
            "stepgate_encryption_key_id": "new",
        }
    )
    inp = definition(
        """
name: rotated
input: {type: object, properties: {card: {type: string}}}
steps:
  - id: keep
    tool: data.echo
    with: {value: "${input.card}"}
    approval: {approvers: ["role:ops"]}
output: "${steps.keep.output.value}"
"""
    )
    marker = f"4111-{uuid.uuid4().hex}"
    inp.input = {"card": marker}
    registry = default_registry(entry_points=False)
    old_client = await make_client(old, wait_s=5)
    async with build_worker(old_client, old, registry):
        handle = await old_client.start_workflow(
            PipelineWorkflow.run,
            inp,
            id=f"rotate-{uuid.uuid4()}",
            task_queue=settings.stepgate_task_queue,
        )
        await open_gate(handle, "keep")
    new_client = await make_client(new, wait_s=5)
    # A fresh worker has nothing cached: it replays the history sealed with the old key.
    async with build_worker(new_client, new, registry):
        rotated = new_client.get_workflow_handle_for(PipelineWorkflow.run, handle.id)
        await decide(rotated, "keep", "approve")
        assert (await rotated.result()).output == marker
    history = (await rotated.fetch_history()).to_json()
    sealed = [m for m, _ in payload_bytes(history) if m.get("encoding") == ENCODING.decode()]
    key_ids = {m[KEY_ID_METADATA] for m in sealed}
    assert key_ids == {"old", "new"}
    assert not any(marker.encode() in data for _, data in payload_bytes(history))
