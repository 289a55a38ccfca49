"""`stepgate`: a small command line over the HTTP API (STEPGATE_URL, STEPGATE_API_KEY)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from activities.documents import parse_document
from api import cli_gates, cli_runs, json_patch
from api.cli_base import (
    JSON_FLAG,
    CliError,
    UsageError,
    _check,
    _client,
    _print,
    base_url,
    json_arg,
    json_object,
    shown,
)
from api.cli_base import printable as _printable
from api.cli_inbox import cmd_inbox

# Exit statuses besides 0 (done), 1 (the request failed) and 2 (a usage error): stdout was
# closed by its reader (`stepgate status X | head`), as a shell shows a SIGPIPE; Ctrl-C.
EXIT_CLOSED_PIPE = 141
EXIT_INTERRUPTED = 130


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
    body: dict[str, Any] = {"definition": args.definition, "input": json_arg(args.input, "--input")}
    if args.workflow_id:
        body["workflow_id"] = args.workflow_id
    if args.auto:
        body["approval_mode"] = "auto"
    _print(_check(http.post("/workflows", json=body)))
    return 0


def cmd_govern(http: httpx.Client, args: argparse.Namespace) -> int:
    """Start a governed run: a request file (the body of POST /governed), or the request, its
    context and a plan file if one is proposed; options given override the file's."""
    body: dict[str, Any] = _document(args.file, "--file") if args.file else {}
    if not isinstance(body, dict):
        raise UsageError(f"--file {args.file}: not a mapping of request, context, plan, policy")
    if args.request:
        body["request"] = args.request
    if "request" not in body:
        raise UsageError("say what should be done (REQUEST), or give a request --file")
    if args.context is not None:
        body["context"] = json_object(args.context, "--context")
    if args.plan:
        body["plan"] = _document(args.plan, "--plan")
    if args.policy:
        body["policy"] = args.policy
    if args.workflow_id:
        body["workflow_id"] = args.workflow_id
    _print(_check(http.post("/governed", json=body)))
    return 0


def _document(path: str, option: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_document(fh.read())
    except (OSError, ValueError) as err:
        raise UsageError(f"{option} {path}: {err}") from None


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
            if args.json:  # one status a line, each whole
                print(json.dumps(payload, separators=(",", ":")), flush=True)
                continue
            gates = ", ".join(g["gate"] for g in payload["open_gates"])
            waiting = f" (waiting at {gates})" if gates else ""
            print(f"[{payload['revision']}] {state} {payload['progress']['percent']}%{waiting}")
            sys.stdout.flush()
    return 0 if state == "completed" else 1


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


Handler = Callable[[httpx.Client, argparse.Namespace], int]
# Each module adds its commands (`register(sub)`), each parser naming its handler(http, args)
# with `set_defaults(handler=...)` and taking `--json` (parents=[JSON_FLAG]). A new module of
# commands is one line here.
REGISTER: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    cli_gates.register,
    cli_runs.register,
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stepgate", description=__doc__)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        found = sub.add_parser(name, help=text, parents=[JSON_FLAG])
        found.set_defaults(handler=handler)
        return found

    start = command("start", cmd_start, "start a run of a catalog pipeline")
    start.add_argument("definition", help="name or name@version")
    start.add_argument("--input", default="{}", help="the run input as JSON")
    start.add_argument("--workflow-id")
    start.add_argument("--auto", action="store_true", help="approve every gate automatically")
    govern = command("govern", cmd_govern, "start a governed run: plan, review by risk, execute")
    govern.add_argument("request", nargs="?", help="what should be done, in words")
    govern.add_argument("--file", help="a request file: the JSON or YAML body of POST /governed")
    govern.add_argument("--context", help="facts for the plan (its input) as a JSON object")
    govern.add_argument(
        "--plan", help="a YAML or JSON file with a proposed plan (else the LLM plans)"
    )
    govern.add_argument("--policy", help="a policy in definitions/policies/ (default: default)")
    govern.add_argument("--workflow-id")
    command("status", cmd_status, "print a run's status").add_argument("workflow_id")
    command("watch", cmd_watch, "follow a run live (--json: each status on a line)").add_argument(
        "workflow_id"
    )
    revoke = command("revoke", cmd_revoke, "end a standing grant (yours, or any as an admin)")
    revoke.add_argument("workflow_id")
    revoke.add_argument("grant", help="its id in the run's status, e.g. g1")
    revoke.add_argument("--reason")
    inbox = command("inbox", cmd_inbox, "gates waiting for you, most urgent first")
    inbox.add_argument("--priority", help="only these priorities: urgent, or a list urgent,high")
    inbox.add_argument("--page-size", type=int, help="runs read per request (the API's default)")
    inbox.add_argument("--pipeline", help="only runs of this pipeline")
    inbox.add_argument("--requester", help="only runs this principal started")
    versions = command(
        "versions", cmd_versions, "worker builds and the runs open on each (admin); set-current"
    )
    actions = versions.add_subparsers(dest="action")
    current = actions.add_parser(
        "set-current", help="make a build current: new runs start on it", parents=[JSON_FLAG]
    )
    current.add_argument("build_id")
    for register in REGISTER:
        register(sub)
    # MCP over stdio (main() hands `stepgate mcp` to api/cli_mcp.py before any request); it
    # speaks JSON-RPC on stdout, so --json changes nothing there.
    sub.add_parser(
        "mcp", help="serve Stepgate's MCP tools over stdio (docs/mcp.md)", parents=[JSON_FLAG]
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mcp"]:  # MCP over stdio: a server, not a request (api/cli_mcp.py)
        from api import cli_mcp

        return cli_mcp.main(argv[1:])
    args = parser().parse_args(argv)
    try:
        with _client() as http:
            code = int(args.handler(http, args))
        sys.stdout.flush()  # here, where a closed pipe can still be answered quietly
        return code
    except UsageError as err:
        print(f"stepgate: {err}", file=sys.stderr)
        return 2
    except CliError as err:
        print(f"stepgate: {err}", file=sys.stderr)
        return 1
    except httpx.TransportError as err:
        print(f"stepgate: cannot reach the API at {_url(err)}: {_why(err)}", file=sys.stderr)
        print(f"  (STEPGATE_URL is {shown(base_url())})", file=sys.stderr)
        return 1
    except httpx.HTTPError as err:
        print(f"stepgate: the API at {_url(err)} failed: {_why(err)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away: say nothing, and keep the interpreter's last flush from failing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _url(err: httpx.HTTPError) -> str:
    try:
        return shown(err.request.url)
    except RuntimeError:  # an error raised before a request was built
        return shown(base_url())


def _why(err: httpx.HTTPError) -> str:
    return " ".join(_printable(line) for line in (str(err) or type(err).__name__).splitlines())


if __name__ == "__main__":
    sys.exit(main())
