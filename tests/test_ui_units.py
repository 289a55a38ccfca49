"""The web app's parts that need no server: sealed sessions, CSRF tokens, the sign-in brake,
safe rendering of data, forms from schemas and the merge patch a modify sends."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activities.config import Settings
from api.errors import ApiError
from api.ui.forms import fields_of, merge_patch_between, read_fields
from api.ui.render import TEMPLATES, TREE_NODES, diff, json_tree, markdown
from api.ui.session import FAILURES_PER_WINDOW, Failures, Sessions
from api.ui.web import local_path
from workflows.rules.votes import merge_patch

SECRET = b"s" * 32


def test_a_sealed_session_opens_only_with_its_secret_and_until_it_ends() -> None:
    """The cookie opens to the same key and principal; changed by one character, sealed under
    another secret, past its expiry or signed out, it opens to nothing."""
    sessions = Sessions(SECRET, 60, secure=False)
    value, made = sessions.begin("key-1", "alice")
    assert "key-1" not in value and "alice" not in value
    opened = sessions.open(value)
    assert opened == made
    flipped = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    assert sessions.open(flipped) is None
    assert Sessions(b"t" * 32, 60, secure=False).open(value) is None
    assert sessions.open("") is None and sessions.open("x" * 5_000) is None
    assert (
        Sessions(SECRET, -1, secure=False).open(
            Sessions(SECRET, -1, secure=False).begin("k", "p")[0]
        )
        is None
    )
    sessions.end(made)
    assert sessions.open(value) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    """A session's token passes for it and fails for another session or when missing."""
    sessions = Sessions(SECRET, 60, secure=False)
    _, one = sessions.begin("k", "alice")
    _, two = sessions.begin("k", "alice")
    assert sessions.csrf_ok(one, sessions.csrf(one))
    assert not sessions.csrf_ok(two, sessions.csrf(one))
    assert not sessions.csrf_ok(one, None)


def test_cookie_is_secure_outside_development(tmp_path: Path) -> None:
    """Production settings make the cookie Secure; development (plain HTTP on loopback) not."""
    keys = tmp_path / "keys.yaml"
    keys.write_text("[]")
    prod = Sessions.from_settings(
        Settings(
            stepgate_env="production", stepgate_ui_secret="x" * 32, stepgate_api_keys_file=keys
        )
    )
    dev = Sessions.from_settings(Settings(stepgate_env="development"))
    assert "; Secure" in prod.cookie_header("v") and "; Secure" in prod.clear_header()
    assert "Secure" not in dev.cookie_header("v")
    for header in (prod.cookie_header("v"), dev.cookie_header("v")):
        assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/ui" in header


def test_failed_sign_ins_are_braked_per_address() -> None:
    """The eleventh failure in a window from one address is refused with 429; another address
    is not affected."""
    failures = Failures()
    for _ in range(FAILURES_PER_WINDOW):
        failures.check("10.0.0.1")
        failures.failed("10.0.0.1")
    with pytest.raises(ApiError) as refused:
        failures.check("10.0.0.1")
    assert refused.value.status == 429 and refused.value.headers
    failures.check("10.0.0.2")


def test_json_is_shown_as_text_and_bounded() -> None:
    """Markup in keys and values is escaped; a huge list is cut with a count of the rest."""
    tree = str(json_tree({"<img src=x>": "<script>alert(1)</script>"}))
    assert "<script>" not in tree and "&lt;script&gt;" in tree and "<img" not in tree
    big = str(json_tree(list(range(TREE_NODES * 2))))
    assert "more not shown" in big
    deep: Any = 1
    for _ in range(50):
        deep = [deep]
    assert "deeper than shown" in str(json_tree(deep))


def test_markdown_renders_no_html_images_or_script_links() -> None:
    """Raw HTML stays text, images are not loaded, javascript: links are not links."""
    html = str(
        markdown("**bold** <script>x()</script> ![i](http://e/x.png) [a](javascript:alert(1))")
    )
    assert "<strong>bold</strong>" in html
    assert "<script>" not in html and "<img" not in html
    assert 'href="javascript' not in html


def test_diff_lists_changed_added_and_removed_fields() -> None:
    """Each changed path once with its before and after; absent is shown as a dash."""
    rows = diff({"a": 1, "b": {"c": 2}, "d": 3}, {"a": 1, "b": {"c": 5}, "e": True})
    assert rows == [("b.c", "2", "5"), ("d", "3", "—"), ("e", "—", "true")]


JSON_LEAF = st.one_of(st.booleans(), st.integers(), st.text(max_size=5))
JSON_OBJ = st.recursive(
    st.dictionaries(st.text(max_size=3), JSON_LEAF, max_size=4),
    lambda inner: st.dictionaries(st.text(max_size=3), st.one_of(JSON_LEAF, inner), max_size=4),
    max_leaves=12,
)


@given(JSON_OBJ, JSON_OBJ)
def test_the_merge_patch_a_modify_sends_turns_the_subject_into_the_proposal(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    """Applying the computed patch to the subject (with the workflow's own merge) gives back
    exactly what the approver proposed."""
    assert merge_patch(old, merge_patch_between(old, new)) == new


SCHEMA = {
    "type": "object",
    "required": ["ticket", "count"],
    "properties": {
        "ticket": {"type": "string", "title": "Change ticket", "maxLength": 20},
        "count": {"type": "integer", "minimum": 1},
        "ratio": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None},
        "risk": {"type": "string", "enum": ["low", "high"]},
        "when": {"type": "string", "format": "date-time"},
        "ok": {"type": "boolean"},
        "extra": {"type": "object"},
    },
}


def test_a_schema_becomes_typed_fields_and_the_answers_typed_values() -> None:
    """Each property becomes a control of its type; the answers come back typed, an empty
    optional one left out, a date-time from the browser completed to UTC."""
    fields = fields_of(SCHEMA, {"ticket": "CHG-1"})
    assert fields is not None
    kinds = {f.name: (f.kind, f.input_type) for f in fields}
    assert kinds["ticket"] == ("text", "text") and kinds["count"][0] == "integer"
    assert kinds["ratio"][0] == "number" and kinds["risk"][0] == "choice"
    assert kinds["when"] == ("text", "datetime-local") and kinds["extra"][0] == "json"
    assert fields[0].label == "Change ticket" and fields[0].max_length == 20
    form = {
        "f.ticket": ["CHG-2"],
        "f.count": ["3"],
        "f.ratio": [""],
        "f.risk": ["high"],
        "f.when": ["2026-12-07T10:30"],
        "f.ok": ["on"],
        "f.extra": ['{"a": [1]}'],
    }
    got = read_fields(fields, form, "response")
    assert got == {
        "ticket": "CHG-2",
        "count": 3,
        "risk": "high",
        "when": "2026-12-07T10:30:00Z",
        "ok": True,
        "extra": {"a": [1]},
    }


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("count", "many", "not a whole number"),
        ("risk", "medium", "not one of the choices"),
        ("ratio", "inf", "finite"),
        ("extra", "{", "not JSON"),
        ("ticket", "", "is required"),
    ],
)
def test_a_wrong_answer_is_a_422_naming_its_field(name: str, value: str, message: str) -> None:
    """Each kind of wrong answer names the field and why."""
    fields = fields_of(SCHEMA)
    assert fields is not None
    form = {"f.ticket": ["T"], "f.count": ["1"], f"f.{name}": [value]}
    with pytest.raises(ApiError) as refused:
        read_fields(fields, form, "response")
    assert refused.value.status == 422
    assert f"{name}" in refused.value.message and message in refused.value.message


@pytest.mark.parametrize(
    ("then", "lands"),
    [
        ("/ui/runs/x", "/ui/runs/x"),
        ("https://evil.example/ui", "/ui/inbox"),
        ("//evil.example/ui", "/ui/inbox"),
        ("/workflows", "/ui/inbox"),
        (None, "/ui/inbox"),
        ("/ui\\evil", "/ui/inbox"),
    ],
)
def test_after_sign_in_only_pages_of_this_app(then: str | None, lands: str) -> None:
    """`next` is followed only to a path of the web app."""
    assert local_path(then) == lands


def test_templates_hold_no_inline_script_style_or_handlers() -> None:
    """The pages keep to their Content-Security-Policy: scripts by src only, no style
    attributes or elements, no on* handlers, nothing loaded from another host."""
    for path in Path(TEMPLATES).glob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert not re.search(r"\sstyle=|<style", text), path.name
        assert not re.search(r"\son[a-z]+=", text), path.name
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path.name
