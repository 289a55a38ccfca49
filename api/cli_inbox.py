"""`stepgate inbox`: the gates waiting for the caller, with who started each run, quorum
progress and who voted what."""

from __future__ import annotations

import argparse
from datetime import UTC

import httpx
from pydantic import ValidationError

from api.cli_base import CliError, _check
from api.cli_forms import printable as _printable
from api.schemas.approvals import InboxItem, inbox_order


def cmd_inbox(http: httpx.Client, args: argparse.Namespace) -> int:
    items: list[InboxItem] = []
    cursor: str | None = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        if args.priority:
            params["priority"] = args.priority
        if args.page_size:
            params["page_size"] = str(args.page_size)
        for name in ("pipeline", "requester"):
            if getattr(args, name):
                params[name] = getattr(args, name)
        page = _check(http.get("/approvals", params=params))
        try:
            items += [InboxItem.model_validate(i) for i in page["items"]]
        except ValidationError as err:
            first = err.errors()[0]
            raise CliError(
                f"the API sent an inbox item this client cannot read: {first['loc']}: {first['msg']}"
            ) from None
        cursor = page["next_cursor"]
        if not cursor:
            break
    if not items:
        print("nothing waits for you")
        return 0
    # The API sorts each page of runs; sorting them all keeps that order across pages.
    rows = [inbox_row(i) for i in sorted(items, key=inbox_order)]
    header = ("PRIORITY", "DEADLINE", "RUN", "REQUESTER", "VOTES", "GATE")
    last = len(header) - 1
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(last)]
    for row in (header, *rows):
        print("  ".join([*(row[c].ljust(widths[c]) for c in range(last)), row[last]]))
    return 0


def inbox_row(item: InboxItem) -> tuple[str, ...]:
    """One inbox line: priority, deadline, run, who started it, quorum progress (votes to go on
    of those needed), and the gate with its review and who voted what."""
    deadline = item.deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") if item.deadline else "-"
    review = f" — {item.review}" if item.review else ""
    voted = ", ".join(f"{v.principal} {v.action}" for v in item.votes)
    more = item.votes_total - len(item.votes)
    voted += f" and {more} more" if more > 0 else ""
    gate = f"{item.gate} ({item.stage}){review}" + (f" [voted: {voted}]" if voted else "")
    form = " [form]" if item.form else ""
    return (
        item.priority,
        deadline,
        _printable(item.workflow_id),
        _printable(item.requester or "-"),
        f"{item.approvals}/{item.quorum}",
        _printable(gate + form),
    )
