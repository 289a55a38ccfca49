"""Fake tools for gate notices: a `notify.slack` that records what it is told and answers with a
post per notice, and a `test.hold` step that runs until the test lets it go."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.notice import GateNotice, NoticeResult, PostRef
from activities.registry import ToolRegistry, tool
from tests.support.fakes import FAKE_TOOLS

# What the fake notify.slack was given, call by call (its text, the gate notice, its channel).
NOTICES: list[dict[str, Any]] = []
# A test.hold step runs until its name is let go here.
HOLDS: dict[str, asyncio.Event] = {}


class SlackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    channel: str = "C1"
    gate: GateNotice | None = None
    # Who to report as held in their quiet hours, and for how many seconds from now.
    hold: list[str] = Field(default_factory=list, max_length=10)
    hold_s: float = Field(0, ge=0, le=3600)


@tool("notify.slack", "1.0.0")
async def fake_slack(inp: SlackIn, ctx: ToolContext) -> NoticeResult:
    """Records the notice; posts one message per notice, updates the posts of a decided one.
    Reports `hold` as held for `hold_s` seconds, unless the notice names whom to tell (`only`):
    that is the held delivery, told to them."""
    NOTICES.append(inp.model_dump(mode="json"))
    if inp.gate is not None and inp.gate.event == "decided":
        return NoticeResult(sent=len(inp.gate.posts))
    post = PostRef(channel=inp.channel, ts=f"{len(NOTICES)}.0")
    if inp.hold and inp.gate is not None and not inp.gate.only:
        until = datetime.now(UTC) + timedelta(seconds=inp.hold_s)
        return NoticeResult(posts=[post], sent=1, held=inp.hold, held_until=until)
    return NoticeResult(posts=[post], sent=1)


class HoldIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class Held(BaseModel):
    name: str


@tool("test.hold", "1.0.0")
async def hold(inp: HoldIn, ctx: ToolContext) -> Held:
    """Runs until the test lets `name` go (`let_go`)."""
    await HOLDS.setdefault(inp.name, asyncio.Event()).wait()
    return Held(name=inp.name)


def let_go(name: str) -> None:
    HOLDS.setdefault(name, asyncio.Event()).set()


def notice_registry() -> ToolRegistry:
    return ToolRegistry([*FAKE_TOOLS, fake_slack, hold])


def events(workflow_id: str) -> list[str]:
    """The events the fake was told of for one run, in order."""
    return [n["gate"]["event"] for n in NOTICES if n["gate"]["workflow_id"] == workflow_id]
