"""The terminal client's side of a gate's form: answers given as JSON (`--response`), or asked
for one field at a time on a terminal, each checked as the run will check it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import httpx

from api.cli_base import CliError, _check, printable
from workflows.language.forms import choices, field_issue

# Tries one field gets before the prompt gives up (a script feeding bad answers must end).
MAX_TRIES = 3
_YES = ("y", "yes", "true", "1")
_NO = ("n", "no", "false", "0")


class FormError(ValueError):
    """Answers that cannot be sent; the message says which and why."""


def parse_response(text: str) -> dict[str, Any]:
    """`--response`: a JSON object of answers."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormError(f"--response is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise FormError('--response is a JSON object of answers, like \'{"ticket": "CHG-1"}\'')
    return value


def _labels(field: dict[str, Any]) -> list[str] | None:
    """What each choice of an enum field is called (its title, else itself)."""
    if isinstance(field.get("oneOf"), list):
        return [str(e.get("title") or e["const"]) for e in field["oneOf"]]
    names = field.get("enumNames")
    return [str(n) for n in names] if isinstance(names, list) else choices(field)


def convert(field: dict[str, Any], text: str) -> tuple[Any, str | None]:
    """A typed answer from what was typed, or why it is not one."""
    kind = field["type"]
    if kind == "boolean":
        word = text.strip().lower()
        if word in _YES or word in _NO:
            return word in _YES, None
        return None, "answer yes or no"
    if kind in ("integer", "number"):
        try:
            return (int(text) if kind == "integer" else float(text)), None
        except ValueError:
            return None, f"must be {'an integer' if kind == 'integer' else 'a number'}"
    allowed = choices(field)
    if allowed is not None and text.isdigit() and 1 <= int(text) <= len(allowed):
        return allowed[int(text) - 1], None  # the choice's number as listed
    return text, None


def _prompt(name: str, field: dict[str, Any], required: bool) -> list[str]:
    """The lines that introduce a field: its title, description and choices, then the question."""
    lines = []
    if field.get("description"):
        lines.append(f"  {printable(str(field['description']))}")
    labels = _labels(field)
    allowed = choices(field)
    if labels is not None and allowed is not None:
        lines += [f"  {n}) {printable(a)}" for n, a in enumerate(labels, 1)]
    hint = [field["type"] if "format" not in field else field["format"]]
    if "default" in field:
        hint.append(f"default {json.dumps(field['default'])}")
    elif not required:
        hint.append("optional")
    title = printable(str(field.get("title") or name))
    lines.append(f"{title} [{', '.join(hint)}]: ")
    return lines


def ask(
    form: dict[str, Any], read: Callable[[str], str], say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Ask each field of `form` in turn (`read` shows a prompt and returns the line typed); an
    empty line leaves a field with a default or an optional one out (the run fills defaults)."""
    required = set(form.get("required") or [])
    answers: dict[str, Any] = {}
    if form.get("title"):
        say(printable(str(form["title"])))
    for name, field in (form.get("properties") or {}).items():
        *intro, question = _prompt(name, field, name in required)
        for line in intro:
            say(line)
        for _ in range(MAX_TRIES):
            text = read(question).strip()
            if not text:
                if "default" in field or name not in required:
                    break
                say("  an answer is required")
                continue
            value, why = convert(field, text)
            why = why or field_issue(field, value)
            if why is None:
                answers[name] = value
                break
            say(f"  {why}")
        else:
            raise FormError(f"no valid answer for {name!r} after {MAX_TRIES} tries")
    return answers


def response(http: httpx.Client, args: argparse.Namespace, action: str) -> dict[str, Any] | None:
    """`--response` as given; else, approving or modifying on a terminal at a gate with a form,
    the answers asked for field by field."""
    try:
        if args.response is not None:
            return parse_response(args.response)
        if action not in ("approve", "modify") or not sys.stdin.isatty():
            return None
        form = gate_form(http, args.workflow_id, args.gate)
        return ask(form, input) if form is not None else None
    except (FormError, EOFError) as err:
        raise CliError(str(err) or "no answers given") from None


# Pages of a run's open gates read to find one gate's form.
FORM_PAGES = 10


def gate_form(http: httpx.Client, workflow_id: str, gate: str) -> dict[str, Any] | None:
    """The form of the open gate `gate` of the run, or None (no form, no such open gate, or a
    caller who may decide but not read runs: the run then says what its gate needs)."""
    params: dict[str, str] = {"state": "open", "limit": "200"}
    for _ in range(FORM_PAGES):
        got = http.get(f"/workflows/{workflow_id}/gates", params=params)
        if got.status_code in (403, 404):
            return None
        page = _check(got)
        for view in page["entries"]:
            if view["gate"] == gate:
                form: dict[str, Any] | None = view.get("form")
                return form
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    return None
