"""The patches live streams send: RFC 6902 operations that turn one status into the next, small
when little changed, and the byte budget a principal's streams share."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.json_patch import apply, diff, pointer
from api.limits import ByteBudget

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 2.5]),
    st.text(alphabet="ab~/", max_size=3),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text("ab~/", max_size=3), inner, max_size=4)
    ),
    max_leaves=25,
)


def _typed(value: Any) -> Any:
    """The value with every leaf tagged by its type, so 1, 1.0 and True compare different."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@settings(max_examples=400, deadline=None)
@given(VALUES, VALUES)
def test_diff_then_apply_gives_the_new_value_exactly(old: Any, new: Any) -> None:
    """Whatever the two JSON values (keys with `~` and `/`, 1 against 1.0 against true), the
    operations applied to the old one give the new one, and the old one is left unchanged."""
    before = json.dumps(old)
    got = apply(old, diff(old, new))
    assert _typed(got) == _typed(new)
    assert json.dumps(old) == before


def test_operations_follow_rfc_6902() -> None:
    """Paths are JSON Pointers with `~0` and `/`→`~1`; add into a list inserts; remove and
    replace act at their index; a patch for equal values is empty."""
    assert pointer(["a/b", "m~n", 0]) == "/a~1b/m~0n/0"
    assert diff({"a": [1, 2]}, {"a": [1, 2]}) == []
    assert apply({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]) == {
        "foo": ["bar", "qux", "baz"]
    }
    assert apply({"a/b": 1, "m~n": 2}, diff({"a/b": 1, "m~n": 2}, {"a/b": 3})) == {"a/b": 3}
    assert diff({"x": 1}, {"x": True}) == [{"op": "replace", "path": "/x", "value": True}]


def test_a_change_deep_in_long_lists_costs_a_few_operations() -> None:
    """A status whose audit window slid by one entry, one of fifty gates of which closed and
    another opened, and one step of fifty that changed state patches only those places."""

    def gate(k: int) -> dict[str, str]:
        return {"gate": f"g{k}", "review": "r" * 500}

    old = {
        "revision": 1,
        "audit": [{"seq": k, "comment": "c" * 200} for k in range(1, 21)],
        "open_gates": [gate(k) for k in range(50)],
        "steps": [{"id": f"s{k}", "state": "running"} for k in range(50)],
    }
    new = json.loads(json.dumps(old))
    new["revision"] = 2
    new["audit"] = [*new["audit"][1:], {"seq": 21, "comment": "c" * 200}]
    new["open_gates"] = [*new["open_gates"][:10], *new["open_gates"][11:], gate(50)]
    new["steps"][7]["state"] = "succeeded"
    ops = diff(old, new)
    assert apply(old, ops) == new
    assert [(o["op"], o["path"]) for o in ops] == [
        ("replace", "/revision"),
        ("remove", "/audit/0"),
        ("add", "/audit/19"),
        ("remove", "/open_gates/10"),
        ("add", "/open_gates/49"),
        ("replace", "/steps/7/state"),
    ]
    assert len(json.dumps(ops)) < len(json.dumps(new)) / 10


def test_byte_budget_lets_through_at_most_its_rate_plus_one_event() -> None:
    """Streams that send whenever the budget allows never send more, by any moment, than the
    burst plus the rate for the time gone by plus one event, however large the events."""
    now = [0.0]
    budget = ByteBudget(rate=1_000, burst=2_000, clock=lambda: now[0])
    sent = 0
    for step in range(2_000):
        size = 300 + (step * 7919) % 5_000
        if budget.wait_s() == 0:
            budget.spend(size)
            sent += size
            assert sent <= 2_000 + 1_000 * now[0] + size
        now[0] += 0.01
    assert sent >= 1_000 * now[0] * 0.9, "and it does let that much through"
    assert budget.wait_s() > 0 or budget.tokens > 0
