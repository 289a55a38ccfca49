"""Small tools for workflow tests, registered under real tool names in a test registry."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.errors import fatal, transient
from activities.registry import ToolRegistry, tool


class EchoIn(BaseModel):
    model_config = ConfigDict(extra="allow")


class Any_(BaseModel):
    model_config = ConfigDict(extra="allow")


@tool("test.echo", "1.0.0")
async def echo(inp: EchoIn, ctx: ToolContext) -> Any_:
    """Returns its input plus the step id."""
    return Any_(**(inp.model_extra or {}), step=ctx.call.step_id)


class SleepIn(BaseModel):
    seconds: float = 0.2
    marker: str | None = None


class Span(BaseModel):
    step: str
    start: float
    end: float


@tool("test.sleep", "1.0.0")
async def sleep(inp: SleepIn, ctx: ToolContext) -> Span:
    """Sleeps and reports its wall-clock span, so tests can see overlap."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(inp.seconds)
    return Span(step=ctx.call.step_id, start=start, end=loop.time())


class FlakyIn(BaseModel):
    fail_times: int = 2
    value: Any = None


class Attempt(BaseModel):
    attempt: int
    value: Any = None


ATTEMPTS: dict[str, int] = {}


@tool("test.flaky", "1.0.0")
async def flaky(inp: FlakyIn, ctx: ToolContext) -> Attempt:
    """Fails with a retryable error `fail_times` times per idempotency key, then succeeds."""
    n = ATTEMPTS.get(ctx.idempotency_key, 0) + 1
    ATTEMPTS[ctx.idempotency_key] = n
    if n <= inp.fail_times:
        raise transient(f"flaky failure {n}")
    return Attempt(attempt=n, value=inp.value)


class FailIn(BaseModel):
    message: str = "boom"


@tool("test.fail", "1.0.0")
async def fail(inp: FailIn, ctx: ToolContext) -> Any_:
    """Always fails, non-retryably."""
    raise fatal(inp.message, "TestFailure")


class LedgerIn(BaseModel):
    entry: str = ""
    sleep: float = 0.0


class LedgerOut(BaseModel):
    entries: list[str] = Field(default_factory=list)


LEDGER: list[str] = []


@tool("test.ledger", "1.0.0")
async def ledger(inp: LedgerIn, ctx: ToolContext) -> LedgerOut:
    """Appends `entry` (or the step id) to an in-process ledger; compensations write 'undo:'."""
    await asyncio.sleep(inp.sleep)
    prefix = "undo:" if ctx.call.scope == "compensate" else ""
    LEDGER.append(prefix + (inp.entry or ctx.call.step_id))
    return LedgerOut(entries=list(LEDGER))


class BlobIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    bytes: int = Field(1_000, ge=0, le=65_536)


@tool("test.blob", "1.0.0")
async def blob(inp: BlobIn, ctx: ToolContext) -> Any_:
    """Returns its input with a `blob` of `bytes` characters: a large output from a small call."""
    return Any_(**(inp.model_extra or {}), blob="b" * inp.bytes)


class SizeOut(BaseModel):
    sizes: dict[str, int]


@tool("test.size", "1.0.0")
async def size(inp: EchoIn, ctx: ToolContext) -> SizeOut:
    """Reports the length of each string input, so tests can pass data without echoing it."""
    return SizeOut(
        sizes={k: len(v) for k, v in (inp.model_extra or {}).items() if isinstance(v, str)}
    )


class PollIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    done_after: int = 3


class PollOut(BaseModel):
    status: str
    calls: int


POLLS: dict[str, int] = {}


@tool("test.poll", "1.0.0")
async def poll(inp: PollIn, ctx: ToolContext) -> PollOut:
    """A job that reports `running` until it has been asked `done_after` times in this run."""
    n = POLLS.get(ctx.call.workflow_id, 0) + 1
    POLLS[ctx.call.workflow_id] = n
    return PollOut(status="done" if n >= inp.done_after else "running", calls=n)


class ReviewIn(BaseModel):
    code: str = ""
    needs: str = "tests"


class ReviewOut(BaseModel):
    passed: bool
    findings: str


@tool("test.review", "1.0.0")
async def review(inp: ReviewIn, ctx: ToolContext) -> ReviewOut:
    """A tester: passes code that mentions what it needs, else asks for it."""
    if inp.needs in inp.code:
        return ReviewOut(passed=True, findings="")
    return ReviewOut(passed=False, findings=f"add {inp.needs}")


FAKE_TOOLS = (echo, sleep, flaky, fail, ledger, size, poll, review)


def fake_registry() -> ToolRegistry:
    return ToolRegistry(list(FAKE_TOOLS))


# Tools an agent step is offered in tests: reading is low risk, restarting high. Each call is
# recorded (tool, arguments, idempotency key), and what a read returns can be set per service
# (a prompt injection hides in there).
CALLS: list[tuple[str, dict[str, Any], str]] = []
READINGS: dict[str, Any] = {}


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, max_length=100)
    what: Literal["metrics", "logs"] = "metrics"


class ReadOut(BaseModel):
    service: str
    what: str
    data: Any = None


@tool("ops.read", "1.0.0", risk="low")
async def ops_read(inp: ReadIn, ctx: ToolContext) -> ReadOut:
    """Read a service's metrics or logs."""
    CALLS.append(("ops.read", inp.model_dump(), ctx.idempotency_key))
    data = READINGS.get(inp.service, {"cpu": 0.93, "errors": 12})
    return ReadOut(service=inp.service, what=inp.what, data=data)


class RestartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, max_length=100)
    mode: Literal["graceful", "hard"] = "graceful"


class RestartOut(BaseModel):
    restarted: str
    mode: str


@tool("ops.restart", "1.0.0", risk="high")
async def ops_restart(inp: RestartIn, ctx: ToolContext) -> RestartOut:
    """Restart a service."""
    CALLS.append(("ops.restart", inp.model_dump(), ctx.idempotency_key))
    return RestartOut(restarted=inp.service, mode=inp.mode)


@tool("ops.page", "1.0.0", risk="medium")
async def ops_page(inp: RestartIn, ctx: ToolContext) -> RestartOut:
    """Page the on-call engineer of a service."""
    CALLS.append(("ops.page", inp.model_dump(), ctx.idempotency_key))
    return RestartOut(restarted="", mode="paged")


OPS_TOOLS = (ops_read, ops_restart, ops_page)
