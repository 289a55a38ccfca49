"""`stepgate`: a small command line over the HTTP API (STEPGATE_URL, STEPGATE_API_KEY)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from activities.documents import parse_document
from api import json_patch
from api.cli_base import CliError, _check, _client, _print
from api.cli_forms import printable as _printable
from api.cli_forms import response
from api.cli_inbox import cmd_inbox


def sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from Server-Sent Event lines; comments and ids are skipped."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def cmd_start(http: httpx.Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"definition": args.definition, "input": json.loads(args.input)}
    if args.workflow_id:
        body["workflow_id"] = args.workflow_id
    if args.auto:
        body["approval_mode"] = "auto"
    _print(_check(http.post("/workflows", json=body)))
    return 0


def cmd_govern(http: httpx.Client, args: argparse.Namespace) -> int:
    """Start a governed run: the request, its context, and a plan file if one is proposed."""
    body: dict[str, Any] = {"request": args.request, "context": json.loads(args.context)}
    if args.plan:
        try:
            with open(args.plan, encoding="utf-8") as fh:
                body["plan"] = parse_document(fh.read())
        except (OSError, ValueError) as err:
            raise CliError(f"--plan {args.plan}: {err}") from None
    if args.policy:
        body["policy"] = args.policy
    if args.workflow_id:
        body["workflow_id"] = args.workflow_id
    _print(_check(http.post("/governed", json=body)))
    return 0


def cmd_status(http: httpx.Client, args: argparse.Namespace) -> int:
    _print(_check(http.get(f"/workflows/{args.workflow_id}")))
    return 0


def cmd_watch(http: httpx.Client, args: argparse.Namespace) -> int:
    state = ""
    with http.stream("GET", f"/workflows/{args.workflow_id}/events") as response:
        if not response.is_success:
            response.read()
            _check(response)
        payload: dict[str, Any] = {}
        for event, data in sse(response.iter_lines()):
            got = json.loads(data)
            if event == "error":
                raise CliError(f"{got['error']['code']}: {got['error']['message']}")
            # The first event is the status whole, each later one a JSON Patch to it.
            payload = json_patch.apply(payload, got) if event == "patch" else got
            state = payload["state"]
            gates = ", ".join(g["gate"] for g in payload["open_gates"])
            waiting = f" (waiting at {gates})" if gates else ""
            print(f"[{payload['revision']}] {state} {payload['progress']['percent']}%{waiting}")
    return 0 if state == "completed" else 1


def _decide(http: httpx.Client, args: argparse.Namespace, action: str) -> int:
    body: dict[str, Any] = {"action": action}
    if args.comment:
        body["comment"] = args.comment
    if args.digest:
        body["digest"] = args.digest
    answers = response(http, args, action)
    if answers is not None:
        body["response"] = answers
    if getattr(args, "grant", None):
        body["grant"] = {"expires_in": args.grant, "same_arguments": args.same_arguments}
        if args.grant_calls:
            body["grant"]["calls"] = args.grant_calls
    _print(_check(http.post(f"/workflows/{args.workflow_id}/gates/{args.gate}", json=body)))
    return 0


def cmd_revoke(http: httpx.Client, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason else None
    path = f"/workflows/{args.workflow_id}/grants/{args.grant}"
    _print(_check(http.request("DELETE", path, json=body)))
    return 0


def cmd_versions(http: httpx.Client, args: argparse.Namespace) -> int:
    """The worker builds and the runs open on each, or make one current (docs/versioning.md)."""
    if args.action == "set-current":
        changed = _check(http.post("/versions/current", json={"build_id": args.build_id}))
        if args.json:
            _print(changed)
        else:
            was = changed["previous_build_id"] or "unversioned workers"
            print(f"{_printable(changed['build_id'])} is current (new runs start on it); was {was}")
        return 0
    listing = _check(http.get("/versions"))
    if args.json:
        _print(listing)
        return 0
    print("\n".join(versions_table(listing)))
    return 0


def versions_table(listing: dict[str, Any]) -> list[str]:
    """The listing as lines: where new runs start, then one row per build and one for the open
    runs no build holds."""
    current = listing["current_build_id"] or "unversioned workers"
    head = f"deployment {listing['deployment']}: new runs start on {current}"
    if listing["ramping_build_id"]:
        head += f", {listing['ramping_percentage']:g}% on {listing['ramping_build_id']}"
    rows = [["BUILD", "STATUS", "CREATED", "OPEN RUNS"]]
    for build in listing["builds"]:
        created = build["created_at"]
        stamp = datetime.fromisoformat(created).astimezone(UTC) if created else None
        when = stamp.strftime("%Y-%m-%d %H:%MZ") if stamp else "-"
        cells = [build["build_id"], build["status"], when, str(build["open_runs"])]
        rows.append([_printable(cell) for cell in cells])
    rows.append(["(unversioned)", "-", "-", str(listing["unversioned_open_runs"])])
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    lines = ["  ".join([*(row[c].ljust(widths[c]) for c in range(3)), row[3]]) for row in rows]
    return [_printable(head), *lines]


def cmd_approve(http: httpx.Client, args: argparse.Namespace) -> int:
    return _decide(http, args, "approve")


def cmd_reject(http: httpx.Client, args: argparse.Namespace) -> int:
    return _decide(http, args, "reject")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stepgate", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a run of a catalog pipeline")
    start.add_argument("definition", help="name or name@version")
    start.add_argument("--input", default="{}", help="the run input as JSON")
    start.add_argument("--workflow-id")
    start.add_argument("--auto", action="store_true", help="approve every gate automatically")
    govern = sub.add_parser("govern", help="start a governed run: plan, review by risk, execute")
    govern.add_argument("request", help="what should be done, in words")
    govern.add_argument("--context", default="{}", help="facts for the plan (its input) as JSON")
    govern.add_argument(
        "--plan", help="a YAML or JSON file with a proposed plan (else the LLM plans)"
    )
    govern.add_argument("--policy", help="a policy in definitions/policies/ (default: default)")
    govern.add_argument("--workflow-id")
    for name, text in (("status", "print a run's status"), ("watch", "follow a run live")):
        sub.add_parser(name, help=text).add_argument("workflow_id")
    for name in ("approve", "reject"):
        decide = sub.add_parser(name, help=f"{name} an open gate")
        decide.add_argument("workflow_id")
        decide.add_argument("gate")
        decide.add_argument("--comment")
        decide.add_argument("--digest", help="refuse if the gate now reviews something else")
        decide.add_argument(
            "--response",
            metavar="JSON",
            help="the answers to the gate's form as a JSON object (approving on a terminal "
            "without it, each field is asked for)",
        )
    approve = sub.choices["approve"]
    approve.add_argument(
        "--grant",
        metavar="DURATION",
        help="at an agent call gate: let later calls of the tool "
        "in this run through without a gate for this long (at most 24h)",
    )
    approve.add_argument("--grant-calls", type=int, help="... for at most this many calls")
    approve.add_argument("--same-arguments", action="store_true", help="... with these arguments")
    revoke = sub.add_parser("revoke", help="end a standing grant (yours, or any as an admin)")
    revoke.add_argument("workflow_id")
    revoke.add_argument("grant", help="its id in the run's status, e.g. g1")
    revoke.add_argument("--reason")
    inbox = sub.add_parser("inbox", help="gates waiting for you, most urgent first")
    inbox.add_argument("--priority", help="only these priorities: urgent, or a list urgent,high")
    inbox.add_argument("--page-size", type=int, help="runs read per request (the API's default)")
    inbox.add_argument("--pipeline", help="only runs of this pipeline")
    inbox.add_argument("--requester", help="only runs this principal started")
    versions = sub.add_parser(
        "versions", help="worker builds and the runs open on each (admin); set-current BUILD"
    )
    versions.add_argument("--json", action="store_true", help="print the API's answer")
    actions = versions.add_subparsers(dest="action")
    current = actions.add_parser("set-current", help="make a build current: new runs start on it")
    current.add_argument("build_id")
    current.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    sub.add_parser("mcp", help="serve Stepgate's MCP tools over stdio (docs/mcp.md)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mcp"]:  # MCP over stdio: a server, not a request (api/cli_mcp.py)
        from api import cli_mcp

        return cli_mcp.main(argv[1:])
    args = parser().parse_args(argv)
    commands = {
        "start": cmd_start,
        "govern": cmd_govern,
        "status": cmd_status,
        "watch": cmd_watch,
        "inbox": cmd_inbox,
        "approve": cmd_approve,
        "reject": cmd_reject,
        "revoke": cmd_revoke,
        "versions": cmd_versions,
    }
    try:
        with _client() as http:
            return commands[args.command](http, args)
    except CliError as err:
        print(f"stepgate: {err}", file=sys.stderr)
        return 1
    except httpx.HTTPError as err:
        print(f"stepgate: cannot reach the API: {err}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as err:
        print(f"stepgate: --input or --context is not JSON: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
