"""A grant's body: the OpenAPI document states exactly what the API accepts, so a value the
document allows is never refused and one it forbids is never taken."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from workflows.agent_models import GRANT_DURATION_PATTERN, GrantSpec
from workflows.language.durations import parse_duration
from workflows.language.limits import MAX_GRANT_DURATION

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def test_the_pattern_takes_every_lifetime_from_one_unit_up_to_the_bound_and_nothing_past_it() -> (
    None
):
    """Every whole number of each unit: taken exactly when it lasts 1 s to 24 h."""
    pattern = re.compile(GRANT_DURATION_PATTERN)
    top = int(MAX_GRANT_DURATION.total_seconds())
    for unit, seconds in UNITS.items():
        for n in range(0, top // seconds + 2):
            text = f"{n}{unit}"
            fits = 1 <= n * seconds <= top
            assert bool(pattern.fullmatch(text)) is fits, text
            if fits:
                assert parse_duration(text) <= MAX_GRANT_DURATION
                assert GrantSpec(expires_in=text).expires_in == text


@pytest.mark.parametrize(
    "value",
    ["48h", "86401s", "1441m", "25h", "2d", "0s", "01h", "1h30m", " 1h", "1.5h", "1H", "1w"],
)
def test_a_lifetime_outside_the_pattern_is_refused_naming_the_bound(value: str) -> None:
    with pytest.raises(ValidationError, match="at most 24h"):
        GrantSpec(expires_in=value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("same_arguments", 0),
        ("same_arguments", "true"),
        ("calls", "2"),
        ("calls", True),
        ("calls", 2.5),
    ],
)
def test_fields_take_their_own_json_type_only(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        GrantSpec.model_validate({field: value})


def test_a_whole_number_written_with_a_fraction_is_a_json_integer() -> None:
    assert GrantSpec.model_validate({"calls": 2.0}).calls == 2


def test_the_document_states_the_pattern() -> None:
    schema = GrantSpec.model_json_schema()["properties"]
    assert schema["expires_in"]["pattern"] == GRANT_DURATION_PATTERN
    assert schema["same_arguments"]["type"] == "boolean"
