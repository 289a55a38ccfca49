"""`${...}` references (workflows/language/refs.py): each root parsed and resolved, each mistake
refused with what and why, and what references bring in stays data."""

from __future__ import annotations

from typing import Any

import pytest

from activities.models import ARTIFACT_MARKER, ArtifactRef, Slot
from workflows.language.limits import MAX_INDEX_DIGITS, MAX_REF_SEGMENTS
from workflows.language.refs import (
    Lazy,
    Ref,
    RefError,
    Scope,
    find_refs,
    parse_ref,
    unclosed,
    walk,
)

ART = {"uri": "file:///a", "path": "run/big.json", "size": 10, "sha256": "ab" * 32}


def scope(**kw: Any) -> Scope:
    return Scope(
        {"name": "Ada", "n": 3, "tags": ["x", "y"], "deep": {"k": {"v": True}}},
        {"fetch": {"body": {"id": 7}, "list": [1, 2, 3]}, "big": None, "nothing": None},
        {"fetch": "succeeded", "skipped": "skipped"},
        {"workflow_id": "wf-1", "requester": "ada", "pipeline": "p"},
        offloaded={"big": ART},
        **kw,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("input", Ref("input", None, None, (), "input")),
        (" input.a.0 ", Ref("input", None, None, ("a", "0"), "input.a.0")),
        ("steps.s.output", Ref("steps", "s", "output", (), "steps.s.output")),
        ("steps.s.output.x.y", Ref("steps", "s", "output", ("x", "y"), "steps.s.output.x.y")),
        ("steps.s.status", Ref("steps", "s", "status", (), "steps.s.status")),
        ("run.workflow_id", Ref("run", None, "workflow_id", (), "run.workflow_id")),
        ("run.started_at", Ref("run", None, "started_at", (), "run.started_at")),
        ("secret.TOKEN", Ref("secret", None, None, ("TOKEN",), "secret.TOKEN")),
        ("index", Ref("index", None, None, (), "index")),
        ("iteration", Ref("iteration", None, None, (), "iteration")),
        ("previous.output", Ref("previous", None, "output", (), "previous.output")),
        ("previous.output.a", Ref("previous", None, "output", ("a",), "previous.output.a")),
        ("item", Ref("item", None, None, (), "item")),
        ("item.a-b_c.1", Ref("item", None, None, ("a-b_c", "1"), "item.a-b_c.1")),
        ("output.x", Ref("output", None, None, ("x",), "output.x")),
    ],
)
def test_parse_ref_reads_each_root(text: str, expected: Ref) -> None:
    """Every root parses into its parts; surrounding spaces are not part of the reference."""
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected dotted names"),
        ("input..a", "expected dotted names"),
        ("input.a b", "expected dotted names"),
        ("input.$x", "expected dotted names"),
        ("steps.s", "use steps.<id>.output[.<path>], steps.<id>.status"),
        ("steps.s.outputs", "use steps.<id>.output[.<path>], steps.<id>.status"),
        ("steps.s.status.x", "status has no fields"),
        ("run", "run has workflow_id, run_id, requester, pipeline, started_at"),
        ("run.secret", "run has workflow_id"),
        ("run.pipeline.x", "run has workflow_id"),
        ("secret", "use secret.<NAME>"),
        ("secret.A.B", "use secret.<NAME>"),
        ("index.x", "index has no fields"),
        ("iteration.x", "iteration has no fields"),
        ("previous", "use previous.output[.<path>]"),
        ("previous.x", "use previous.output[.<path>]"),
        ("env.HOME", "must start with input, steps, run, secret"),
    ],
)
def test_parse_ref_refuses_with_the_reason(text: str, message: str) -> None:
    """A malformed reference is refused and the message quotes it and says what is expected."""
    with pytest.raises(RefError, match="malformed reference") as err:
        parse_ref(text)
    assert message in str(err.value)


def test_parse_ref_bounds_segments_and_index_digits() -> None:
    """At most MAX_REF_SEGMENTS dotted names and MAX_INDEX_DIGITS digits in an index (a huge
    index would be converted inside workflow code); exactly the limits are fine."""
    assert len(parse_ref(".".join(["input"] + ["a"] * (MAX_REF_SEGMENTS - 1))).path) == 31
    with pytest.raises(RefError, match=f"more than {MAX_REF_SEGMENTS}"):
        parse_ref(".".join(["input"] + ["a"] * MAX_REF_SEGMENTS))
    assert parse_ref("input.a." + "9" * MAX_INDEX_DIGITS).path[-1] == "9" * MAX_INDEX_DIGITS
    assert parse_ref("input.a.-" + "9" * MAX_INDEX_DIGITS).path[-1] == "-" + "9" * MAX_INDEX_DIGITS
    for index in ("9" * (MAX_INDEX_DIGITS + 1), "-" + "9" * (MAX_INDEX_DIGITS + 1)):
        with pytest.raises(RefError, match=f"at most {MAX_INDEX_DIGITS} digits"):
            parse_ref(f"input.a.{index}")
    assert parse_ref("input." + "a" * 50).path == ("a" * 50,), "long names are not indexes"


def test_find_refs_lists_every_reference_in_order() -> None:
    """Inside strings, object values (not keys) and list items, in document order."""
    doc = {"a": "${input.x} and ${steps.s.output}", "${input.key}": [1, "${run.pipeline}", None]}
    assert find_refs(doc) == ["input.x", "steps.s.output", "run.pipeline"]
    assert find_refs(3) == [] and find_refs("plain") == []


def test_walk_names_where_it_stopped() -> None:
    """The one path walker's errors become RefErrors naming the reference."""
    assert walk({"a": [1, {"b": 2}]}, ("a", "1", "b"), "${x}") == 2
    assert walk([1, 2], ("-1",), "${x}") == 2
    for path, message in [
        (("z",), "${x}: no field 'z'"),
        (("a", "5"), "${x}: index 5 out of range"),
        (("a", "0", "b"), "${x}: cannot take 'b' of int"),
    ]:
        with pytest.raises(RefError) as err:
            walk({"a": [1]}, path, "${x}")
        assert str(err.value) == message


def test_value_of_each_root() -> None:
    """Input and outputs by path, statuses, run facts, local roots where set; a secret stays
    the reference text for the activity to resolve."""
    s = scope(local={"item": {"a": 1}, "index": 2, "iteration": 4, "output": [5]})
    assert s.value(parse_ref("input.deep.k.v")) is True
    assert s.value(parse_ref("input.tags.-1")) == "y"
    assert s.value(parse_ref("steps.fetch.output.body.id")) == 7
    assert s.value(parse_ref("steps.fetch.status")) == "succeeded"
    assert s.value(parse_ref("steps.ghost.status")) is None
    assert s.value(parse_ref("run.requester")) == "ada"
    assert s.value(parse_ref("run.run_id")) is None
    assert s.value(parse_ref("secret.TOKEN")) == "${secret.TOKEN}"
    assert s.value(parse_ref("item.a")) == 1
    assert s.value(parse_ref("index")) == 2 and s.value(parse_ref("iteration")) == 4
    assert s.value(parse_ref("output.0")) == 5


def test_value_refuses_a_local_root_that_does_not_exist_here() -> None:
    with pytest.raises(RefError, match=r"\$\{item\}: `item` does not exist here"):
        scope().value(parse_ref("item"))


def test_previous_output_is_null_on_the_first_iteration() -> None:
    """Before the first iteration there is no previous output: null, even with a path."""
    assert scope(local={"previous": None}).value(parse_ref("previous.output.x")) is None
    assert scope(local={"previous": {"x": 1}}).value(parse_ref("previous.output.x")) == 1


def test_a_step_without_output_is_an_error_unless_lenient() -> None:
    """Step inputs are strict; the run's output reads a skipped branch as null."""
    with pytest.raises(RefError, match="step 'skipped' has no output"):
        scope().value(parse_ref("steps.skipped.output"))
    assert scope(lenient=True).value(parse_ref("steps.skipped.output.x")) is None


def test_an_offloaded_output_is_lazy() -> None:
    """An output in the artifact store is only pointed at, with the path to follow there."""
    found = scope().value(parse_ref("steps.big.output.items.0"))
    assert found == Lazy(ART, ("items", "0"))
    assert found.marker() == {ARTIFACT_MARKER: ART, "path": ["items", "0"]}


def test_lookup_is_null_for_missing_and_refuses_an_artifact() -> None:
    """Conditions read a missing value as null, but cannot read an output kept as an artifact."""
    s = scope()
    assert s.lookup("input.missing") is None
    assert s.lookup("not a ref") is None
    assert s.lookup("input.n") == 3
    with pytest.raises(RefError, match=r"'steps\.big\.output', an output stored as an artifact"):
        s.lookup("steps.big.output")


def test_with_local_keeps_the_scope_and_adds_locals() -> None:
    """A local scope sees everything the run's scope does, plus its own values, and leaves the
    original untouched; leniency and offloaded outputs carry over."""
    s = scope(lenient=True, local={"index": 1})
    t = s.with_local(item="x", index=2)
    assert (t.value(parse_ref("item")), t.value(parse_ref("index"))) == ("x", 2)
    assert t.value(parse_ref("input.name")) == "Ada" and t.lenient
    assert t.value(parse_ref("steps.ghost.output")) is None
    assert isinstance(t.value(parse_ref("steps.big.output")), Lazy)
    assert s.local == {"index": 1}


def test_a_whole_reference_keeps_its_json_type() -> None:
    """A string that is exactly one reference (spaces around allowed) becomes the value itself."""
    s = scope()
    assert s.resolve("${input.n}") == 3
    assert s.resolve(" ${input.tags} ") == ["x", "y"]
    assert s.resolve({"a": ["${input.deep}"]}) == {"a": [{"k": {"v": True}}]}
    assert s.resolve("no refs") == "no refs" and s.resolve(5) == 5 and s.resolve(None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi ${input.name}!", "hi Ada!"),
        ("n=${input.n}", "n=3"),
        ("${input.n}${input.n}", "33"),
        ("flag ${input.deep.k.v}", "flag true"),
        ("none ${steps.fetch.output.body.missing_ok}", None),
        ("tags ${input.tags}", 'tags ["x","y"]'),
        ("obj ${input.deep}", 'obj {"k":{"v":true}}'),
        ("pi ${steps.fetch.output.list.0}.5", "pi 1.5"),
    ],
)
def test_references_inside_text_are_formatted(text: str, expected: str | None) -> None:
    """Inside longer text: strings as they are, numbers as digits, booleans and null as JSON,
    objects and lists as compact JSON."""
    if expected is None:
        with pytest.raises(RefError, match="no field 'missing_ok'"):
            scope().resolve(text)
    else:
        assert scope().resolve(text) == expected


def test_null_inside_text_is_written_as_json() -> None:
    s = Scope({"x": None, "f": 1.25}, {}, {}, {})
    assert s.resolve("x=${input.x}, f=${input.f}") == "x=null, f=1.25"


def test_secrets_become_slots_and_their_text_is_kept() -> None:
    """A secret, alone or inside text, is left as reference text and listed as a slot at its
    place in the arguments, with the literal text around it."""
    s = scope()
    args, slots = s.resolve_slots(
        {"h": {"auth": "Bearer ${secret.TOKEN} for ${input.name}"}, "k": ["${secret.KEY}"]}
    )
    assert args == {"h": {"auth": "Bearer ${secret.TOKEN} for Ada"}, "k": ["${secret.KEY}"]}
    assert slots == [
        Slot(
            path=["h", "auth"],
            expect="Bearer ${secret.TOKEN} for Ada",
            parts=[("text", "Bearer "), ("secret", "TOKEN"), ("text", " for "), ("text", "Ada")],
        ),
        Slot(path=["k", 0], expect="${secret.KEY}", parts=[("secret", "KEY")]),
    ]


def test_an_offloaded_output_becomes_a_marker_slot() -> None:
    """A whole reference into a stored output is a marker the activity fills in."""
    args, slots = scope().resolve_slots({"data": "${steps.big.output.rows}"})
    marker = {ARTIFACT_MARKER: ART, "path": ["rows"]}
    assert args == {"data": marker}
    assert slots == [
        Slot(
            path=["data"],
            expect=marker,
            artifact=ArtifactRef.model_validate(ART),
            artifact_path=["rows"],
        )
    ]


def test_an_offloaded_output_cannot_be_embedded_in_text() -> None:
    with pytest.raises(RefError, match="cannot be embedded inside a string"):
        scope().resolve("see ${steps.big.output}")


def test_what_a_reference_brings_in_is_data() -> None:
    """Text from input that looks like a reference or a secret is never resolved again, and
    plain text produces no slot."""
    s = Scope({"evil": "${secret.TOKEN}", "m": {ARTIFACT_MARKER: ART}}, {}, {}, {})
    args, slots = s.resolve_slots({"a": "${input.evil}", "b": "x ${input.evil}", "c": "${input.m}"})
    assert args == {"a": "${secret.TOKEN}", "b": "x ${secret.TOKEN}", "c": {ARTIFACT_MARKER: ART}}
    assert slots == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$${input.name}", "${input.name}"),
        ("${input.name} and $${input.name}", "Ada and ${input.name}"),
        ("$$${input.name}", "$${input.name}"),
        ("a $${ alone", "a ${ alone"),
        ("costs $5, $$5", "costs $5, $$5"),
    ],
)
def test_a_doubled_dollar_writes_a_literal_reference(text: str, expected: str) -> None:
    """`$${` is written as a literal `${`: what follows is text, not a reference, and no other
    `$` changes."""
    assert scope().resolve(text) == expected


def test_an_escaped_reference_is_neither_found_nor_unclosed_nor_a_secret() -> None:
    """An escape is no reference to check (find_refs skips it, it opens nothing unclosed), and an
    escaped secret stays text: no slot, so no activity ever fills it."""
    assert find_refs("$${input.x} ${input.y} $${steps.a.output}") == ["input.y"]
    assert not unclosed("$${") and not unclosed("$${input.x}") and unclosed("${input.x")
    args, slots = scope().resolve_slots({"h": "Bearer $${secret.TOKEN}"})
    assert args == {"h": "Bearer ${secret.TOKEN}"} and slots == []
