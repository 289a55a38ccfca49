"""`stepgate inbox`: the gates waiting for the caller, with who started each run, quorum
progress and who voted what."""

from __future__ import annotations

import argparse
from datetime import UTC

import httpx
from pydantic import ValidationError

from api.cli_base import CliError, _print, pages, table
from api.cli_base import printable as _printable
from api.schemas.approvals import InboxItem, inbox_order


def cmd_inbox(http: httpx.Client, args: argparse.Namespace) -> int:
    items: list[InboxItem] = []
    params: dict[str, str] = {}
    if args.priority:
        params["priority"] = args.priority
    if args.page_size:
        params["page_size"] = str(args.page_size)
    for name in ("pipeline", "requester"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    for page in pages(http, "/approvals", params):
        try:
            items += [InboxItem.model_validate(i) for i in page["items"]]
        except ValidationError as err:
            first = err.errors()[0]
            raise CliError(
                f"the API sent an inbox item this client cannot read: {first['loc']}: {first['msg']}"
            ) from None
    # The API sorts each page of runs; sorting them all keeps that order across pages.
    items.sort(key=inbox_order)
    if args.json:
        _print({"items": [i.model_dump(mode="json") for i in items]})
        return 0
    if not items:
        print("nothing waits for you")
        return 0
    header = ("PRIORITY", "DEADLINE", "RUN", "REQUESTER", "VOTES", "GATE")
    print("\n".join(table(header, [inbox_row(i) for i in items])))
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
