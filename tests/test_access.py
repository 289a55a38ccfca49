"""Permissions, the API keys file and the authorize activity, without the HTTP API."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import json
    import os
    import uuid
    from datetime import UTC, datetime
    from pathlib import Path
    from typing import Any

    import pytest
    import structlog
    import yaml
    from pydantic import BaseModel
    from temporalio.client import Client
    from temporalio.testing import ActivityEnvironment
    from temporalio.worker import Worker

    from activities import default_registry
    from activities.access import (
        PERMISSIONS,
        RELOAD_CHECK_S,
        AccessActivities,
        KeyFile,
        RoleMap,
        authorize,
    )
    from activities.config import Settings
    from activities.models import AUTHORIZE_ACTIVITY, AuthorizeCall, AuthorizeResult
    from worker import build_worker

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def write_keys(path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the keys file atomically, as an operator's deploy tool would."""
    tmp = path.with_suffix(".tmp")
    # JSON (YAML's subset): PyYAML would write entries sharing a list as an anchor and aliases,
    # which the keys file refuses.
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, path)


class Clock:
    """A monotonic clock the test moves by hand, so the once-a-second check is not waited out."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


OLGA = {"key": "key-olga-0123456789", "principal": "olga", "roles": ["operator"]}
VIC = {"key": "key-vic-0123456789", "principal": "vic", "roles": ["viewer"]}


def test_default_roles_follow_the_design() -> None:
    """viewer reads, operator starts and manages, admin holds all, other roles hold nothing."""
    roles = RoleMap()
    assert roles.of(["viewer"]) == {"read"}
    assert roles.of(["operator"]) == {"read", "start", "start_governed", "lifecycle", "schedule"}
    assert roles.of(["admin"]) == frozenset(PERMISSIONS)
    assert {"start_inline", "start_auto", "schedule_any"} <= roles.of(["admin"])
    # Deciding through MCP: admins only, unless a permissions file grants it (docs/mcp.md).
    assert "decide_via_mcp" in roles.of(["admin"])
    assert roles.of(["ops", "peer"]) == frozenset()


def test_permissions_file_replaces_only_the_roles_it_names(tmp_path: Path) -> None:
    """A permissions file redefines the roles it names and adds new ones; others keep defaults."""
    path = tmp_path / "permissions.yaml"
    path.write_text("operator: [read, start, start_inline]\nauditor: [read]\n")
    roles = RoleMap.load(path)
    assert roles.of(["operator"]) == {"read", "start", "start_inline"}
    assert roles.of(["auditor"]) == {"read"}
    assert roles.of(["viewer"]) == {"read"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("operator: [read, start_everything]\n", "unknown permission(s) start_everything"),
        ("operator: read\n", "wrong at operator"),
        ("- read\n", "expected {role: [permission, ...]}"),
    ],
)
def test_permissions_file_with_unknown_or_malformed_entries_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Unknown permission names and wrong shapes stop start-up with a message naming the file."""
    path = tmp_path / "permissions.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        RoleMap.load(path)
    assert "STEPGATE_PERMISSIONS_FILE" in str(err.value)
    assert expected in str(err.value)


def test_key_file_change_seen_after_the_check_interval(tmp_path: Path) -> None:
    """A key added to the file is picked up on the first use after the check interval, and
    a removed key is gone then too."""
    path, clock = tmp_path / "keys.yaml", Clock()
    write_keys(path, [OLGA])
    keys = KeyFile(path, RoleMap(), clock=clock)
    write_keys(path, [VIC])
    current = keys.current()
    assert current is not None and current.by_token("key-olga-0123456789") is not None
    clock.now += RELOAD_CHECK_S
    current = keys.current()
    assert current is not None
    assert current.by_token("key-olga-0123456789") is None
    vic = current.by_token("key-vic-0123456789")
    assert vic is not None and vic.principal == "vic" and vic.permissions == {"read"}


def test_key_file_due_says_when_current_would_look_and_look_false_never_does(
    tmp_path: Path,
) -> None:
    """The API authenticates on its event loop unless the file is due a look: `due()` must say
    exactly when current() would touch the file, and `look=False` must not touch it even then."""
    path, clock = tmp_path / "keys.yaml", Clock()
    write_keys(path, [OLGA])
    keys = KeyFile(path, RoleMap(), clock=clock)
    write_keys(path, [VIC])
    clock.now += RELOAD_CHECK_S - 0.001
    assert not keys.due()
    clock.now += 0.001
    assert keys.due()
    current = keys.current(look=False)
    assert current is not None and current.by_token("key-olga-0123456789") is not None
    assert keys.due()  # not looking did not count as a look
    current = keys.current()
    assert current is not None and current.by_token("key-vic-0123456789") is not None
    assert not keys.due()
    assert not KeyFile(None, RoleMap(), clock=clock).due()  # no file: nothing to look at


def test_key_file_broken_rewrite_keeps_previous_keys_and_logs(tmp_path: Path) -> None:
    """A new file that does not parse leaves the old keys working and logs where it is wrong,
    without the keys themselves."""
    path, clock = tmp_path / "keys.yaml", Clock()
    write_keys(path, [OLGA])
    keys = KeyFile(path, RoleMap(), clock=clock)
    write_keys(path, [{"key": "key-new-0123456789", "principal": "x y", "roles": []}])
    clock.now += RELOAD_CHECK_S
    with structlog.testing.capture_logs() as logs:
        current = keys.current()
    assert current is not None and current.by_token("key-olga-0123456789") is not None
    (event,) = [e for e in logs if e["log_level"] == "error"]
    assert "keeping the keys read before" in event["event"]
    assert "principal" in event["error"]
    assert "key-new-0123456789" not in str(logs)


def test_key_file_at_start_must_parse(tmp_path: Path) -> None:
    """A broken keys file at start is refused, naming the setting and the entry, not the key."""
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump([{"key": "short", "principal": "p"}]))
    with pytest.raises(ValueError) as err:
        KeyFile(path, RoleMap())
    assert "STEPGATE_API_KEYS_FILE" in str(err.value) and "0.key" in str(err.value)
    assert "short" not in str(err.value)


def test_key_expiry_naive_datetime_read_as_utc(tmp_path: Path) -> None:
    """`expires` without a zone is UTC; a key is expired from that moment on."""
    path = tmp_path / "keys.yaml"
    write_keys(path, [{**OLGA, "expires": "2030-01-01T00:00:00"}])
    current = KeyFile(path, RoleMap()).current()
    assert current is not None
    olga = current.by_token(OLGA["key"])
    assert olga is not None
    assert not olga.expired(NOW - timedelta(seconds=1))
    assert olga.expired(NOW)


def keys_of(tmp_path: Path, entries: list[dict[str, Any]]) -> KeyFile:
    path = tmp_path / "keys.yaml"
    write_keys(path, entries)
    return KeyFile(path, RoleMap())


@pytest.mark.parametrize(
    ("entries", "needs", "reason"),
    [
        ([VIC], ["start"], "principal 'olga' has no API key any more"),
        ([{**OLGA, "expires": "2029-12-31T23:59:59Z"}], ["start"], "has expired"),
        ([OLGA], ["start", "start_auto"], "lacks permission(s) start_auto"),
        ([OLGA], ["start", "fly"], "unknown permission(s) fly"),
    ],
)
def test_authorize_refuses_with_a_reason(
    tmp_path: Path, entries: list[dict[str, Any]], needs: list[str], reason: str
) -> None:
    """A removed or expired key, a missing or unknown permission: not allowed, and why."""
    result = authorize(
        keys_of(tmp_path, entries).current(), AuthorizeCall(principal="olga", needs=needs), NOW
    )
    assert not result.allowed
    assert result.reason is not None and reason in result.reason


def test_authorize_allows_through_any_current_key(tmp_path: Path) -> None:
    """A principal with an expired key and a current one holds what the current one grants."""
    entries = [
        {**OLGA, "expires": "2020-01-01T00:00:00Z"},
        {**OLGA, "key": "key-olga-rotated-0123", "expires": "2031-01-01T00:00:00Z"},
    ]
    call = AuthorizeCall(principal="olga", needs=["start", "schedule"])
    assert authorize(keys_of(tmp_path, entries).current(), call, NOW) == AuthorizeResult(
        allowed=True
    )


def test_authorize_without_keys_file_refused_naming_the_setting() -> None:
    """A worker without the keys file allows nothing and says which setting to set."""
    result = authorize(None, AuthorizeCall(principal="olga", needs=["start"]), NOW)
    assert not result.allowed and result.reason and "STEPGATE_API_KEYS_FILE" in result.reason


async def test_authorize_activity_rereads_the_keys_file(tmp_path: Path) -> None:
    """The activity answers from the file as it is now: allowed, then refused once the
    principal's key is removed."""
    path, clock = tmp_path / "keys.yaml", Clock()
    write_keys(path, [OLGA, VIC])
    access = AccessActivities(Settings(), keys=KeyFile(path, RoleMap(), clock=clock))
    call = AuthorizeCall(principal="olga", needs=["start", "schedule"])
    env = ActivityEnvironment()
    assert (await env.run(access.authorize, call)).allowed
    write_keys(path, [VIC])
    clock.now += RELOAD_CHECK_S
    result = await env.run(access.authorize, call)
    assert not result.allowed and "no API key" in (result.reason or "")


class Probe(BaseModel):
    queue: str
    call: AuthorizeCall


@workflow.defn(sandboxed=False)
class AuthorizeProbe:
    """Calls the authorize activity by its contract name on another worker's queue."""

    @workflow.run
    async def run(self, probe: Probe) -> AuthorizeResult:
        result: AuthorizeResult = await workflow.execute_activity(
            AUTHORIZE_ACTIVITY,
            probe.call,
            task_queue=probe.queue,
            result_type=AuthorizeResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return result


async def test_authorize_registered_on_the_worker(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """build_worker registers `stepgate.authorize`, reading STEPGATE_API_KEYS_FILE."""
    path = tmp_path / "keys.yaml"
    write_keys(path, [OLGA, VIC])
    keyed = settings.model_copy(update={"stepgate_api_keys_file": path})
    probe_queue = f"probe-{uuid.uuid4()}"
    registry = default_registry(entry_points=False)
    async with (
        build_worker(client, keyed, registry),
        Worker(client, task_queue=probe_queue, workflows=[AuthorizeProbe]),
    ):
        results = [
            await client.execute_workflow(
                AuthorizeProbe.run,
                Probe(queue=keyed.stepgate_task_queue, call=AuthorizeCall(principal=p, needs=n)),
                id=f"probe-{uuid.uuid4()}",
                task_queue=probe_queue,
            )
            for p, n in (("olga", ["start", "schedule"]), ("vic", ["start"]))
        ]
    assert results[0].allowed
    assert not results[1].allowed and "lacks permission(s) start" in (results[1].reason or "")


def test_key_file_removed_keeps_previous_keys(tmp_path: Path) -> None:
    """A keys file that disappears (a botched deploy) does not lock everyone out."""
    path, clock = tmp_path / "keys.yaml", Clock()
    write_keys(path, [OLGA])
    keys = KeyFile(path, RoleMap(), clock=clock)
    path.unlink()
    clock.now += RELOAD_CHECK_S
    with structlog.testing.capture_logs() as logs:
        current = keys.current()
    assert current is not None and current.by_token(OLGA["key"]) is not None
    assert [e["log_level"] for e in logs] == ["error"]


def test_api_and_worker_refuse_unknown_permission_at_start(tmp_path: Path) -> None:
    """Both processes stop at start on a permissions file naming an unknown permission."""
    from api.app import create_app

    path = tmp_path / "permissions.yaml"
    path.write_text("operator: [read, launch_missiles]\n")
    settings = Settings(stepgate_permissions_file=path, _env_file=None)  # type: ignore[call-arg]
    for start in (lambda: create_app(settings), lambda: AccessActivities(settings)):
        with pytest.raises(ValueError, match="unknown permission\\(s\\) launch_missiles"):
            start()
