"""`stepgate list | audit | cancel | pause | resume | memory`: runs listed from visibility, a
run's audit trail, its lifecycle, and the memory of governed runs."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import httpx

from api.cli_base import JSON_FLAG, UsageError, _check, _print, pages, printable, table
from api.cli_gates import decide

# Runs `stepgate list` shows at most (the API pages them by at most 200).
MAX_LIST = 10_000
LIST_PAGE = 200
AUDIT_PAGE = 500


def _when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_list(http: httpx.Client, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_LIST:
        raise UsageError(f"--limit is 1 to {MAX_LIST}")
    params = {"page_size": str(min(args.limit, LIST_PAGE))}
    for name in ("state", "pipeline"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    if args.awaiting_me:
        params["awaiting"] = "me"
    runs: list[dict[str, Any]] = []
    for page in pages(http, "/workflows", params):
        runs += page["items"]
        if len(runs) >= args.limit:
            break
    if args.json:
        _print({"items": runs[: args.limit]})
        return 0
    rows = [
        (
            r["workflow_id"],
            r["state"] or r["execution_status"] or "-",
            r["pipeline"] or "-",
            _when(r["started_at"]),
            ", ".join(r["awaiting"]) or "-",
        )
        for r in runs[: args.limit]
    ]
    if not rows:
        print("no runs")
        return 0
    print("\n".join(table(("RUN", "STATE", "PIPELINE", "STARTED", "AWAITING"), rows)))
    return 0


def cmd_audit(http: httpx.Client, args: argparse.Namespace) -> int:
    path = f"/workflows/{args.workflow_id}/audit"
    after = str(args.after) if args.after is not None else None
    entries: list[dict[str, Any]] = []
    total = 0
    for page in pages(http, path, {"limit": str(AUDIT_PAGE)}, cursor=after):
        entries += page["entries"]
        total = page["total"]
    if args.json:
        _print({"entries": entries, "total": total})
        return 0
    rows = [audit_row(e) for e in entries]
    print("\n".join(table(("SEQ", "AT", "KIND", "ACTOR", "ACTION", "GATE", "DETAIL"), rows)))
    return 0


def audit_row(entry: dict[str, Any]) -> tuple[str, ...]:
    """One audit line: when, what kind, who, which action at which gate, and the outcome (a
    refusal says so), comment and reason."""
    actor = entry.get("actor") or "-"
    if entry.get("on_behalf_of"):
        actor += f" for {entry['on_behalf_of']}"
    detail = [entry["outcome"]] if entry.get("outcome") in ("accepted", "refused") else []
    detail += [str(entry[k]) for k in ("comment", "reason") if entry.get(k)]
    return (
        str(entry.get("seq") or "-"),
        _when(entry["at"]),
        entry["kind"],
        actor,
        entry.get("action") or "-",
        entry.get("gate") or "-",
        " — ".join(detail) or "-",
    )


def lifecycle(http: httpx.Client, args: argparse.Namespace, action: str) -> int:
    """Cancel, pause or resume the run, as the caller, with a reason the audit records."""
    body = {"reason": args.reason} if args.reason else None
    answer = _check(http.post(f"/workflows/{args.workflow_id}/{action}", json=body))
    if args.json:
        _print(answer)
    else:
        print(f"{printable(answer['workflow_id'])}: {action} accepted")
    return 0


def cmd_cancel(http: httpx.Client, args: argparse.Namespace) -> int:
    """The run (permission `lifecycle`), or with GATE a `cancel` decision at that gate."""
    if args.gate is None:
        if args.digest:
            raise UsageError("--digest goes with a GATE")
        return lifecycle(http, args, "cancel")
    args.comment, args.response = args.reason, None
    return decide(http, args, "cancel")


def cmd_memory(http: httpx.Client, args: argparse.Namespace) -> int:
    if args.action == "delete":
        _print(_check(http.delete(f"/memory/{args.id}")))
        return 0
    found = _check(http.get("/memory", params={"q": args.query, "limit": str(args.limit)}))
    if args.json:
        _print(found)
        return 0
    if not found["hits"]:
        print("no past governed run matches")
        return 0
    rows = [
        (
            f"{h['score']:.2f}",
            str(h["id"]),
            str(h["pattern"].get("tier") or "-"),
            h["pattern"].get("outcome") or "-",
            h["pattern"]["request"],
        )
        for h in found["hits"]
    ]
    print("\n".join(table(("SCORE", "ID", "TIER", "OUTCOME", "REQUEST"), rows)))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("list", help="runs, newest first", parents=[JSON_FLAG])
    runs.add_argument("--state", help="only runs in this state (running, waiting, ...)")
    runs.add_argument("--pipeline", help="only runs of this pipeline")
    runs.add_argument("--awaiting-me", action="store_true", help="only runs you may decide")
    runs.add_argument("--limit", type=int, default=50, help="runs shown at most (default 50)")
    runs.set_defaults(handler=cmd_list)
    audit = sub.add_parser("audit", help="a run's audit trail, oldest first", parents=[JSON_FLAG])
    audit.add_argument("workflow_id")
    audit.add_argument("--after", type=int, metavar="SEQ", help="only entries after this one")
    audit.set_defaults(handler=cmd_audit)
    cancel = sub.add_parser(
        "cancel", help="cancel a run, or decide `cancel` at one of its gates", parents=[JSON_FLAG]
    )
    cancel.add_argument("workflow_id")
    cancel.add_argument("gate", nargs="?", help="decide at this gate instead (as its approver)")
    cancel.add_argument("--reason", help="recorded in the audit (at a gate: the comment)")
    cancel.add_argument("--digest", help="with GATE: refuse if it now reviews something else")
    cancel.set_defaults(handler=cmd_cancel)
    for action, text in (
        ("pause", "start no new steps until resumed"),
        ("resume", "continue a paused run"),
    ):
        p = sub.add_parser(action, help=text, parents=[JSON_FLAG])
        p.add_argument("workflow_id")
        p.add_argument("--reason", help="recorded in the audit")
        p.set_defaults(handler=lambda http, args, action=action: lifecycle(http, args, action))
    memory = sub.add_parser("memory", help="the memory of governed runs", parents=[JSON_FLAG])
    actions = memory.add_subparsers(dest="action", required=True)
    search = actions.add_parser("search", help="past governed runs by text", parents=[JSON_FLAG])
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=10, help="hits at most (1 to 100)")
    forget = actions.add_parser("delete", help="forget one pattern (admin)", parents=[JSON_FLAG])
    forget.add_argument("id", type=int)
    memory.set_defaults(handler=cmd_memory)
