"""What one document may cost: a bound on its values (the CPU of reading it), YAML read from its
event stream exactly as PyYAML's safe loader reads it, and refusals that are DocumentErrors,
never another exception."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.documents import MAX_DOCUMENT_VALUES, DocumentError, parse_document, parse_json

ROOT = Path(__file__).resolve().parent.parent


def test_yaml_past_the_value_bound_refused_at_the_first_value_over_it() -> None:
    """The issue's 1 MiB YAML (520,000 values, 7.2 s of CPU to read and validate) is refused,
    naming the bound and the line where it was passed; a document just under it is read."""
    flat = "steps:\n- with:\n    x: [" + ",".join(["1"] * 520_000) + "]\n"
    with pytest.raises(DocumentError, match=r"at most 100,000 values \(line 3\)") as err:
        parse_document(flat)
    assert not err.value.syntax
    under = "x: [" + ",".join(["1"] * (MAX_DOCUMENT_VALUES - 3)) + "]\n"  # and x, [], {}
    assert len(parse_document(under)["x"]) == MAX_DOCUMENT_VALUES - 3


def test_json_past_the_value_bound_refused_before_its_values_are_walked() -> None:
    """A 1 MiB JSON body of 520,000 values is a 422-kind refusal naming the bound; one of
    containers only is counted the same way."""
    for body in ([1] * 520_000, [{}] * 200_000, {"a": [[0]] * 60_000}):
        with pytest.raises(DocumentError, match="at most 100,000 values") as err:
            parse_json(json.dumps(body).encode())
        assert err.value.issues == [((), "a document holds at most 100,000 values")]
    assert len(parse_json(json.dumps([1] * 99_000).encode())) == 99_000


@pytest.mark.parametrize(
    "text",
    ["!!int abc", "a: !!float x", "a: !!bool maybe", "when: 2024-13-45", "a: !!int 1.5"],
)
def test_yaml_scalar_that_cannot_be_built_is_a_syntax_error(text: str) -> None:
    """PyYAML's constructors raise ValueError or KeyError for these (a 500 from the API); the
    reader turns them into a syntax refusal with the line."""
    with pytest.raises(DocumentError, match="not valid YAML or JSON at line 1") as err:
        parse_document(text)
    assert err.value.syntax


def test_yaml_merge_keys_and_collection_keys_refused() -> None:
    """`<<` merges an alias's mapping in (aliases are refused, so it is too); a list or mapping
    as a key is a syntax error, as it is for PyYAML."""
    with pytest.raises(DocumentError, match="merge keys"):
        parse_document("a: {<<: {b: 1}}")
    with pytest.raises(DocumentError, match="a mapping key must be a scalar"):
        parse_document("{[1, 2]: x}")
    with pytest.raises(DocumentError, match="single document"):
        parse_document("a: 1\n---\nb: 2\n")
    with pytest.raises(DocumentError, match="does not fit"):
        parse_document("a: !!map [1]")


SAMPLES = [
    "",
    "a",
    "12",
    "0x1F",
    "0o17",
    "1_000",
    "1:30",
    "-1.5e3",
    "yes",
    "No",
    "~",
    "2024-01-01",
    "2024-01-01 10:00:00Z",
    "!!str 12",
    "!!int '12'",
    "! 12",
    "!!float 1",
    "[1, '2', \"3\", {a: b}, [], {}]",
    "a: 1\na: 2",
    "? a\n? b\n",
    "key: 'it''s'",
    "a: |\n  text\n  more\n",
    "a: >\n  folded\n  text\n",
    "--- a\n...\n",
    "a:\n  - b: [1, 2]\n    c: {d: null}\n  - true\n",
    "1: one\n2.5: two\nnull: three\n",
]


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, all the way down (1 == True would pass a plain ==)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@pytest.mark.parametrize("text", SAMPLES)
def test_yaml_reads_as_the_safe_loader_reads(text: str) -> None:
    """Scalars, tags, flow and block styles, duplicate keys and non-string keys read exactly as
    `yaml.safe_load` reads them."""
    assert same(parse_document(text), yaml.safe_load(text))


def test_catalog_and_example_files_read_as_the_safe_loader_reads() -> None:
    """Every definition and policy shipped reads exactly as `yaml.safe_load` reads it."""
    files = sorted((ROOT / "definitions").rglob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        assert same(parse_document(text), yaml.safe_load(text)), path


def test_document_error_pickles_whole() -> None:
    """A refusal sent back from a checker process keeps its message, issues and kind."""
    err = DocumentError("x: broken", [(("x", 1), "bad")], syntax=True)
    back = pickle.loads(pickle.dumps(err))
    assert (back.message, back.issues, back.syntax) == ("x: broken", [(("x", 1), "bad")], True)
