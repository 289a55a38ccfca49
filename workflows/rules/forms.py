"""A reviewer's answer to a gate's form (a decision's `response`): whether the decision may carry
it, whether it answers the form, and what the gate keeps of it. Pure functions.

- A gate without a form takes no response.
- At a gate with a form, `approve` and `modify` carry one; any other action may (a reason for a
  `reject`, say), and what it carries is checked the same way.
- A response names only the form's fields, each answered as its schema says; the fields the form
  requires are there, in at most MAX_RESPONSE_BYTES of JSON. What is kept is the response with the defaults of the fields left out."""

from __future__ import annotations

from typing import Any

from activities.documents import canonical_json
from workflows.language.forms import defaults, field_issue
from workflows.language.limits import MAX_RESPONSE_BYTES

# Actions that must carry a response at a gate with a form.
ANSWERED = ("approve", "modify")


def response_issues(form: dict[str, Any], response: dict[str, Any]) -> list[tuple[str, str]]:
    """Every way `response` fails to answer `form`, each as (`response.<field>`, why)."""
    props: dict[str, Any] = form.get("properties") or {}
    found: list[tuple[str, str]] = []
    for name, value in response.items():
        field = props.get(name)
        if field is None:
            found.append((f"response.{name}", "is not a field of the gate's form"))
            continue
        wrong = field_issue(field, value)
        if wrong is not None:
            found.append((f"response.{name}", wrong))
    for name in form.get("required") or []:
        if name not in response:
            found.append((f"response.{name}", "is required by the gate's form"))
    return found


def refusal(
    form: dict[str, Any] | None, gate: str, action: str, response: dict[str, Any] | None
) -> str | None:
    """Why a decision with this action and response cannot be cast at `gate`, or None."""
    if form is None:
        if response is None:
            return None
        return f"gate {gate!r} has no form: a decision there carries no response"
    if response is None:
        if action not in ANSWERED:
            return None
        return f"{action} at gate {gate!r} needs a response to its form"
    if len(canonical_json(response).encode()) > MAX_RESPONSE_BYTES:
        return f"response: at most {MAX_RESPONSE_BYTES} bytes of JSON"
    issues = response_issues(form, response)
    return "; ".join(f"{path}: {why}" for path, why in issues) or None


def kept(form: dict[str, Any] | None, response: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the vote, the audit and the gate keep: the answers over the form's defaults."""
    if form is None or response is None:
        return response
    return {**defaults(form), **response}
