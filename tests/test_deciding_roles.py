"""Who a signed link's or a Slack user's principal decides as (api/auth.py KeyStore.deciding):
the roles of its unexpired keys, no permission, nobody once its keys are gone or expired."""

from __future__ import annotations

from pathlib import Path

from activities.access import KeyFile, RoleMap
from api.auth import KeyStore
from tests.test_access import write_keys


async def test_roles_are_the_union_of_the_unexpired_keys(tmp_path: Path) -> None:
    """Two live keys' roles add up; an expired key's roles do not count; no permission is held."""
    path = tmp_path / "keys.json"
    write_keys(
        path,
        [
            {"key": "key-alice-1-0123", "principal": "alice", "roles": ["ops", "viewer"]},
            {"key": "key-alice-2-0123", "principal": "alice", "roles": ["peer", "ops"]},
            {
                "key": "key-alice-3-0123",
                "principal": "alice",
                "roles": ["admin"],
                "expires": "2000-01-01T00:00:00Z",
            },
        ],
    )
    store = KeyStore(KeyFile(path, RoleMap()))
    caller = await store.deciding("alice")
    assert caller is not None
    assert caller.principal == "alice"
    assert caller.roles == ("ops", "viewer", "peer")
    assert caller.permissions == frozenset()


async def test_no_live_key_decides_nothing(tmp_path: Path) -> None:
    """A principal whose keys expired, one with no key, and a store with no file: None."""
    path = tmp_path / "keys.json"
    write_keys(
        path,
        [
            {
                "key": "key-bob-1-012345",
                "principal": "bob",
                "roles": ["ops"],
                "expires": "2000-01-01T00:00:00Z",
            }
        ],
    )
    store = KeyStore(KeyFile(path, RoleMap()))
    assert await store.deciding("bob") is None
    assert await store.deciding("nobody") is None
    assert await KeyStore(KeyFile(None, RoleMap())).deciding("bob") is None
