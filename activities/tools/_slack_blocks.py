"""The Block Kit messages notify.slack posts: escaped, and cut to Slack's limits."""

from __future__ import annotations

import json
from typing import Any

from activities.notice import GateNotice
from activities.tools._notice import facts, headline

# Slack's limits (api.slack.com/reference/block-kit): a section's or context element's text, a
# button's label, value and URL, and the message's fallback text kept short enough to notify.
SECTION_CHARS = 3_000
BUTTON_TEXT_CHARS = 75
BUTTON_VALUE_CHARS = 2_000
BUTTON_URL_CHARS = 3_000
FALLBACK_CHARS = 3_000
# The actions Slack buttons decide; the rest (modify, forms) is done on the page.
BUTTON_ACTIONS = ("approve", "reject")
OPEN_ACTION = "open_page"


def escape(text: str) -> str:
    """Data as mrkdwn text: `<!channel>`, `<https://evil|here>` and `&` show as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """`text` escaped, at most `limit` characters, never ending inside an entity."""
    out = escape(text)
    if len(out) <= limit:
        return out
    cut = out[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def fallback(gate: GateNotice | None, text: str) -> str:
    """The message's plain `text` (notifications, screen readers)."""
    return fit(f"{headline(gate)}\n{text}" if gate else text, FALLBACK_CHARS)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button_value(gate: GateNotice) -> str:
    return json.dumps(
        {"workflow_id": gate.workflow_id, "gate": gate.gate, "digest": gate.digest},
        separators=(",", ":"),
    )


def gate_blocks(gate: GateNotice, text: str, link: str | None) -> list[dict[str, Any]]:
    """The gate as a message: headline, the run's text (review or subject summary), priority and
    deadline, approve/reject buttons for the actions it offers, and a button opening the page."""
    blocks = [
        _section(f"*{fit(headline(gate), SECTION_CHARS - 2)}*"),
        _section(fit(text, SECTION_CHARS)),
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": fit(" · ".join(facts(gate)), SECTION_CHARS)}],
        },
    ]
    if gate.review and gate.review not in text:
        blocks.insert(1, _section(fit(gate.review, SECTION_CHARS)))
    buttons: list[dict[str, Any]] = []
    value = button_value(gate)
    # A value past Slack's bound would make the whole message fail: the page link still works.
    if len(value) <= BUTTON_VALUE_CHARS and not gate.has_form:
        for action in BUTTON_ACTIONS:
            if action in gate.actions:
                buttons.append(
                    {
                        "type": "button",
                        "action_id": action,
                        "text": {"type": "plain_text", "text": action.capitalize()},
                        "style": "primary" if action == "approve" else "danger",
                        "value": value,
                    }
                )
    if link is not None and len(link) <= BUTTON_URL_CHARS:
        label = (
            "Modify or fill in the form" if gate.has_form or "modify" in gate.actions else "Open"
        )
        buttons.append(
            {
                "type": "button",
                "action_id": OPEN_ACTION,
                "text": {"type": "plain_text", "text": label[:BUTTON_TEXT_CHARS]},
                "url": link,
            }
        )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def decided_blocks(gate: GateNotice) -> list[dict[str, Any]]:
    """The message once the gate is decided: who decided what and when, and no buttons."""
    when = gate.decided_at.isoformat(timespec="minutes") if gate.decided_at else ""
    return [
        _section(f"*{fit(headline(gate), SECTION_CHARS - 2)}*"),
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": fit(f"{gate.outcome or 'closed'} {when}".strip(), 300)}
            ],
        },
    ]
