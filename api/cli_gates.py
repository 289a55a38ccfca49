"""`stepgate approve | reject | modify | retry | skip ID GATE`: a decision at an open gate, sent
as the caller's key (the API takes the actor and roles from it, never from the body)."""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from api.cli_base import JSON_FLAG, _check, _print, json_object
from api.cli_forms import response

# Each action with what it does, and whether it carries a patch: none, optional or required.
ACTIONS = {
    "approve": ("approve an open gate", None),
    "reject": ("reject an open gate: the step fails (and the run, unless it goes on)", None),
    "modify": ("amend what the gate reviews with a JSON merge patch, and vote for it", "required"),
    "retry": ("run the step again, its input patched if --patch is given", "optional"),
    "skip": (
        "skip the step (at an on_failure gate --patch is the output it stands for)",
        "optional",
    ),
}


def decide(http: httpx.Client, args: argparse.Namespace, action: str) -> int:
    body: dict[str, Any] = {"action": action}
    if args.comment:
        body["comment"] = args.comment
    if args.digest:
        body["digest"] = args.digest
    if getattr(args, "patch", None) is not None:
        body["patch"] = json_object(args.patch, "--patch")
    answers = response(http, args, action)
    if answers is not None:
        body["response"] = answers
    if getattr(args, "grant", None):
        body["grant"] = {"expires_in": args.grant, "same_arguments": args.same_arguments}
        if args.grant_calls:
            body["grant"]["calls"] = args.grant_calls
    _print(_check(http.post(f"/workflows/{args.workflow_id}/gates/{args.gate}", json=body)))
    return 0


def gate_arguments(p: argparse.ArgumentParser) -> None:
    """What every decision names: the run, the gate, a comment, the digest it was shown."""
    p.add_argument("workflow_id")
    p.add_argument("gate", help="its id: a step's id, `<step>.<index>`, `<step>.call-<n>`, review")
    p.add_argument("--comment")
    p.add_argument("--digest", help="refuse if the gate now reviews something else")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for action, (text, patch) in ACTIONS.items():
        p = sub.add_parser(action, help=text, parents=[JSON_FLAG])
        gate_arguments(p)
        if patch is not None:
            p.add_argument(
                "--patch", metavar="JSON", required=patch == "required", help="a JSON object"
            )
        p.set_defaults(handler=lambda http, args, action=action: decide(http, args, action))
        p.add_argument(
            "--response",
            metavar="JSON",
            help="the answers to the gate's form as a JSON object (approving or modifying on a "
            "terminal without it, each field is asked for)",
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
