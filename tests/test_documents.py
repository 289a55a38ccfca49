"""The document helpers every layer shares: one canonical JSON (and its digest) and one JSON
Pointer walker, so the API, the activities and the rules cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.documents import NOWHERE, canonical_json, digest_of, json_pointer

DOC = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, " ": 7, "nested": {"k": [{"x": 1}]}}


def test_json_pointer_follows_rfc_6901_examples() -> None:
    """The RFC's own examples: escapes `~1` and `~0`, the empty key, array indexes."""
    assert json_pointer(DOC, "") is DOC
    assert json_pointer(DOC, "/foo") == ["bar", "baz"]
    assert json_pointer(DOC, "/foo/0") == "bar"
    assert json_pointer(DOC, "/") == 0
    assert json_pointer(DOC, "/a~1b") == 1
    assert json_pointer(DOC, "/m~0n") == 8
    assert json_pointer(DOC, "/ ") == 7
    assert json_pointer(DOC, "/nested/k/0/x") == 1


def test_json_pointer_names_nowhere_for_missing_or_malformed_paths() -> None:
    """A missing key, an index past the end or not a number, a step into a scalar, and text
    that is not a pointer (an anchor's name) all lead nowhere, never to the root."""
    for pointer in ("/nope", "/foo/2", "/foo/-1", "/foo/x", "/foo/0/deeper", "anchor", "#/foo"):
        assert json_pointer(DOC, pointer) is NOWHERE, pointer


def test_canonical_json_is_one_text_for_equal_values() -> None:
    """Key order does not matter, there are no spaces, Unicode stays as is and values JSON
    cannot hold are written as text: equal values, equal texts, equal digests."""
    a = {"b": [1, "é"], "a": {"at": datetime(2026, 1, 1, tzinfo=UTC)}}
    b = {"a": {"at": datetime(2026, 1, 1, tzinfo=UTC)}, "b": [1, "é"]}
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json(a) == '{"a":{"at":"2026-01-01 00:00:00+00:00"},"b":[1,"é"]}'
    assert digest_of(a) == digest_of(b) and digest_of(a).startswith("sha256:")
    assert digest_of({"x": 1}) != digest_of({"x": 1.5})
