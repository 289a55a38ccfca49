"""A decision storm on one gate through the HTTP API, shared by `make drill` and the test suite.

Every voter sends its approval twice and outsiders send invalid decisions of every kind, all at
the same moment: each voter's vote must be applied exactly once (the twin answered 409
already_voted), each invalid decision refused with its own 4xx, and nothing answered 5xx.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

GATE = "vote"
ALREADY_VOTED = (409, "already_voted")


def definition(role: str, quorum: int, tool: str = "data.echo") -> dict[str, Any]:
    """An inline pipeline whose one gate `role` decides; a quorum above the voters keeps it open."""
    return {
        "name": "storm",
        "steps": [
            {
                "id": GATE,
                "tool": tool,
                "approval": {"approvers": [f"role:{role}"], "quorum": quorum},
            }
        ],
    }


@dataclass(frozen=True)
class Shot:
    """One request of the storm and what it must get; `expect` None marks a valid vote."""

    who: str
    path: str
    body: dict[str, Any]
    expect: tuple[int, str] | None


def invalid_kinds(workflow_id: str) -> list[tuple[str, dict[str, Any], tuple[int, str]]]:
    """(path, body, expected status and code) of each way a decision can be wrong."""
    gate = f"/workflows/{workflow_id}/gates/{GATE}"
    return [
        (f"/workflows/{workflow_id}/gates/nope", {"action": "approve"}, (404, "unknown_gate")),
        ("/workflows/no-such-run/gates/vote", {"action": "approve"}, (404, "not_found")),
        (gate, {"action": "approve", "patch": {"x": 1}}, (422, "bad_patch")),
        (gate, {"action": "modify", "patch": [1]}, (422, "bad_patch")),
        (gate, {"action": "retry"}, (422, "action_not_allowed")),
        (gate, {"action": "approve", "digest": "sha256:0"}, (409, "digest_mismatch")),
        (gate, {"action": "bogus"}, (422, "invalid")),
        (gate, {"action": "approve", "actor": "root"}, (422, "invalid")),
    ]


def shots(
    workflow_id: str,
    voters: list[str],
    outsiders: list[str],
    stranger: str,
    invalid: int,
    seed: int = 0,
) -> list[Shot]:
    """Two votes per voter, then `invalid` wrong decisions: a `stranger` (no role at the gate)
    approving, and `outsiders` (holding the role, never voting) sending every other kind."""
    gate = f"/workflows/{workflow_id}/gates/{GATE}"
    out = [Shot(v, gate, {"action": "approve"}, None) for v in voters for _ in range(2)]
    kinds = invalid_kinds(workflow_id)
    for i in range(invalid):
        # Every ninth is the stranger's approval; outsiders take turns with the other kinds.
        if i % (len(kinds) + 1) == len(kinds):
            out.append(Shot(stranger, gate, {"action": "approve"}, (403, "not_authorized")))
        else:
            path, body, expect = kinds[i % (len(kinds) + 1)]
            out.append(Shot(outsiders[i % len(outsiders)], path, body, expect))
    random.Random(seed).shuffle(out)
    return out


@dataclass(frozen=True)
class Answer:
    shot: Shot
    status: int
    code: str | None


async def fire(
    replicas: list[httpx.AsyncClient], plan: list[Shot], keys: dict[str, str]
) -> list[Answer]:
    """Send every shot at once, spread over the API replicas in turn (each client's pool must
    allow that many connections)."""
    gate = asyncio.Event()

    async def one(i: int, shot: Shot) -> Answer:
        await gate.wait()
        r = await replicas[i % len(replicas)].post(
            shot.path, json=shot.body, headers={"Authorization": f"Bearer {keys[shot.who]}"}
        )
        try:
            code = r.json().get("error", {}).get("code") if r.status_code >= 400 else None
        except ValueError:  # not the API's error shape (a proxy's page, say): no code to compare
            code = None
        return Answer(shot, r.status_code, code)

    tasks = [asyncio.create_task(one(i, s)) for i, s in enumerate(plan)]
    await asyncio.sleep(0)  # every task waits at the gate, so they leave it together
    gate.set()
    return await asyncio.gather(*tasks)


def tally(answers: list[Answer], approvals: list[str], voters: list[str]) -> dict[str, Any]:
    """What the storm did: votes applied exactly once, invalid refused as expected, 5xx seen.

    `approvals` are the actors of the gate's approvals as the run reports them afterwards."""
    by_voter: dict[str, list[tuple[int, str | None]]] = {v: [] for v in voters}
    refused_right = 0
    wrong: list[str] = []
    for a in answers:
        if a.shot.expect is None:
            by_voter[a.shot.who].append((a.status, a.code))
        elif (a.status, a.code) == a.shot.expect:
            refused_right += 1
        else:
            wrong.append(f"{a.shot.body} -> {a.status} {a.code}, wanted {a.shot.expect}")
    counted = Counter(approvals)
    applied_once = 0
    for voter, got in by_voter.items():
        if sorted(got, key=str) == sorted([(200, None), ALREADY_VOTED], key=str):
            applied_once += counted[voter] == 1
        else:
            wrong.append(f"{voter}'s two votes -> {got}")
    invalid = sum(1 for a in answers if a.shot.expect is not None)
    # Anyone else among the approvals means an invalid decision was applied.
    intruders = sorted(set(counted) - set(voters))
    wrong += [f"{who} is among the approvals" for who in intruders]
    return {
        "requests": len(answers),
        "voters": len(voters),
        "valid_applied_once": applied_once,
        "invalid": invalid,
        "invalid_refused": refused_right,
        "server_errors": sum(1 for a in answers if a.status >= 500),
        "statuses": dict(sorted(Counter(a.status for a in answers).items())),
        "unexpected": wrong[:10],
        "ok": applied_once == len(voters) and refused_right == invalid and not wrong,
    }
