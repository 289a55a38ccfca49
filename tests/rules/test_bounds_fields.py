"""The field and list bounds of the views: text cut with an ellipsis, values left out when large,
principals listed up to a count, and lists filled in order while they fit their budget."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from workflows.rules import bounds
from workflows.rules.bounds import Bounds


class View(BaseModel):
    """A view whose JSON takes 8 bytes plus its text: `{"t":""}`."""

    t: str


def _form(text: int) -> Bounds:
    return Bounds(text=text, preview=0, value=0, votes=0, units=0)


def _render(tag: str = "x") -> Callable[[Bounds], View]:
    """A view of `bounds.text` characters, each `tag`."""
    return lambda b: View(t=tag * b.text)


FULL, SHORT, TINY = _form(20), _form(10), _form(1)
LADDER = (FULL, SHORT, TINY)


def test_cut_keeps_text_up_to_its_limit_and_marks_a_cut_with_an_ellipsis() -> None:
    """Text of the limit's length is whole; longer text keeps limit - 1 characters and an ellipsis."""
    assert bounds.cut("abcd", 4) == "abcd"
    assert bounds.cut("abcde", 4) == "abc…"
    assert bounds.cut("abcde", 1) == "…"
    assert bounds.cut("abcde", 0) == "…"


def test_clip_passes_none_and_cuts_text() -> None:
    """No text stays none; text is cut like `cut` does."""
    assert bounds.clip(None, 3) is None
    assert bounds.clip("abcdef", 3) == "ab…"
    assert bounds.clip("ab", 3) == "ab"


def test_size_counts_the_json_bytes_and_writes_unknown_values_as_text() -> None:
    """A dict's size is its compact JSON's; a value JSON cannot hold counts as its quoted `str`."""

    class Odd:
        def __str__(self) -> str:
            return "xy"

    assert bounds.size({"a": 1}) == len('{"a":1}')
    assert bounds.size(View(t="abc")) == len('{"t":"abc"}')
    assert bounds.size(Odd()) == len('"xy"')
    assert bounds.size("é") == len('"é"'.encode())


def test_small_shows_a_value_that_fits_and_says_when_one_is_left_out() -> None:
    """A value is shown when its JSON fits the limit exactly; over it, or with no room, it is
    left out and said to be; no value is not a value left out."""
    assert bounds.small(None, 10) == (None, False)
    assert bounds.small({"a": 1}, 7) == ({"a": 1}, False)
    assert bounds.small({"a": 1}, 6) == (None, True)
    assert bounds.small(0, 1) == (0, False)
    assert bounds.small(0, 0) == (None, True)


def test_names_lists_the_first_principals_each_cut() -> None:
    """At most APPROVERS names by default (or `most`), each cut to NAME_CHARS characters."""
    many = [f"p{i}" for i in range(bounds.APPROVERS + 1)]
    assert bounds.names(many) == many[: bounds.APPROVERS]
    assert bounds.names(many, 2) == ["p0", "p1"]
    long = "n" * (bounds.NAME_CHARS + 1)
    assert bounds.names([long, "short"]) == ["n" * (bounds.NAME_CHARS - 1) + "…", "short"]
    assert bounds.names(["n" * bounds.NAME_CHARS]) == ["n" * bounds.NAME_CHARS]


def test_shown_is_the_fullest_form_that_fits_with_its_size() -> None:
    """The first form of the ladder whose JSON fits the room (exactly counts) is chosen, with
    its size; when none fits there is nothing to show."""
    assert bounds.shown(_render(), LADDER, 28) == (View(t="x" * 20), 28)
    assert bounds.shown(_render(), LADDER, 27) == (View(t="x" * 10), 18)
    assert bounds.shown(_render(), LADDER, 9) == (View(t="x"), 9)
    assert bounds.shown(_render(), LADDER, 8) is None


def test_fit_fills_the_list_in_order_while_it_fits_the_budget() -> None:
    """Each entry takes the fullest form that fits what is left; the list ends at the first entry
    that fits in no form, even if a later one would."""
    renders = [_render("a"), _render("b"), _render("c"), _render("d")]
    got = bounds.fit(renders, LADDER, 28 + 18 + 9, 10)
    assert got == [View(t="a" * 20), View(t="b" * 10), View(t="c")]
    wide = [_render("a"), _render("b"), _render("cc"), _render("d")]
    assert bounds.fit(wide, LADDER, 28 + 27, 10) == [View(t="a" * 20), View(t="b" * 10)]
    assert bounds.fit(renders, LADDER, 28 + 28 + 28 + 28, 10) == [
        View(t=tag * 20) for tag in "abcd"
    ]
    assert bounds.fit(renders, LADDER, 8, 10) == []


def test_fit_stops_at_the_most_entries() -> None:
    """However much room is left, no more than `most` entries are listed."""
    renders = [_render(tag) for tag in "abc"]
    assert bounds.fit(renders, LADDER, 10_000, 2) == [View(t="a" * 20), View(t="b" * 20)]
    assert bounds.fit(renders, LADDER, 10_000, 0) == []


def test_fit_uniform_keeps_later_entries_in_the_first_form_only() -> None:
    """With `uniform`, the first entry may shrink, but a later entry that does not fit in the
    ladder's first form ends the list."""
    renders = [_render("a"), _render("b"), _render("c")]
    got = bounds.fit(renders, LADDER, 18 + 28 + 17, 10, uniform=True)
    assert got == [View(t="a" * 20), View(t="b" * 20)]
    shrunk = bounds.fit(renders, LADDER, 27, 10, uniform=True)
    assert shrunk == [View(t="a" * 10)], "the first entry may take a smaller form, not later ones"
    assert bounds.fit(renders, LADDER, 27, 10) == [View(t="a" * 10), View(t="b")]


def test_a_page_always_holds_its_first_entry_in_its_last_form() -> None:
    """A page whose first entry fits in no form still holds it, in the ladder's last form, and
    then nothing more; a list that is not a page stays empty."""
    renders = [_render("a"), _render("b")]
    assert bounds.fit(renders, LADDER, 5, 10, page=True) == [View(t="a")]
    assert bounds.fit(renders, LADDER, 5, 10) == []
    assert bounds.fit(renders, LADDER, 28 + 9, 10, page=True) == [View(t="a" * 20), View(t="b")]
    assert bounds.fit(renders, LADDER, 0, 0, page=True) == []
    wide = [_render("a" * 20), _render("b")]
    assert bounds.fit(wide, LADDER, 20, 10, page=True) == [View(t="a" * 20)], (
        "the oversized first entry uses up the page"
    )
