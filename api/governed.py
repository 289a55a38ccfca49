"""Turning a POST /governed request into a GovernedWorkflow's input: the policy's snapshot, the
tools a plan may use, and a proposed plan checked now for a fast 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from activities.config import Settings
from activities.documents import parse_document
from activities.registry import ToolRegistry
from api.auth import Caller
from api.errors import invalid
from api.model_check import governed_model_issues, refuse_without_llm
from workflows.language.definition import Definition
from workflows.language.plans import plan_issues
from workflows.language.policy import Policy
from workflows.language.validation import Issue, loc_to_path, validate_definition, validate_input
from workflows.models import NotifyDefaults, Principal
from workflows.rules.governed import SCHEMA_CHARS, GovernedInput, ToolInfo

POLICIES = "policies"
DEFAULT_POLICY = "default"
MAX_POLICY_BYTES = 256 * 1024


def load_policy(folder: Path, name: str) -> Policy:
    """`<definitions>/policies/<name>.yaml`; the built-in defaults for `default` when absent."""
    path = folder / POLICIES / f"{name}.yaml"
    if not path.is_file():
        if name == DEFAULT_POLICY:
            return Policy()
        raise invalid([Issue("policy", f"no policy {name!r} in {POLICIES}/")])
    raw = path.read_bytes()[: MAX_POLICY_BYTES + 1]
    if len(raw) > MAX_POLICY_BYTES:
        raise invalid([Issue("policy", f"policy {name!r} is larger than {MAX_POLICY_BYTES} bytes")])
    try:
        return Policy.model_validate(parse_document(raw.decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as err:
        issues = (
            [Issue(loc_to_path(e["loc"], "policy"), e["msg"]) for e in err.errors()]
            if isinstance(err, ValidationError)
            else [Issue("policy", str(err))]
        )
        raise invalid(issues, f"policy {name!r} is not valid") from None


def tools_for(policy: Policy, registry: ToolRegistry) -> list[ToolInfo]:
    """The tools a plan may use (the policy's list, else every tool), newest version each."""
    names = policy.allowed_tools if policy.allowed_tools is not None else registry.names()
    out = []
    for name in names:
        try:
            tool = registry.resolve(name)
        except ValueError:
            raise invalid([Issue("policy.allowed_tools", f"unknown tool {name!r}")]) from None
        schema = tool.input_model.model_json_schema()
        out.append(
            ToolInfo(
                name=tool.name,
                version=tool.version,
                description=tool.description,
                risk=tool.risk if isinstance(tool.risk, str) else "low to medium, by the call",
                input_schema=schema if len(str(schema)) <= SCHEMA_CHARS * 4 else {},
            )
        )
    return out


def build_governed(
    request: str,
    context: dict[str, Any],
    plan: dict[str, Any] | None,
    policy_name: str | None,
    caller: Caller,
    registry: ToolRegistry,
    settings: Settings,
) -> GovernedInput:
    """Everything checked at once: the policy, the tools, a proposed plan (422 with each path)."""
    policy = load_policy(settings.stepgate_definitions_dir, policy_name or DEFAULT_POLICY)
    tools = tools_for(policy, registry)
    checked: Definition | None = None
    if plan is not None:
        problems = [
            Issue(f"plan.{where}" if message else "plan", message or where)
            for where, _, message in (
                p.partition(": ")
                for p in plan_issues(
                    plan, [t.name for t in tools], policy.max_steps, policy.allowed_task_queues
                )
            )
        ]
        report = validate_definition(plan, registry, catalog={})
        checked = report.definition
        problems += [
            Issue(f"plan.{i.path}" if i.path else "plan", i.message) for i in report.errors
        ]
        if report.definition is not None and not problems:
            # The context is the plan's input: refused now rather than when the plan runs.
            problems += [
                Issue("context" + i.path.removeprefix("input"), i.message)
                for i in validate_input(report.definition, context)
            ]
        if problems:
            raise invalid(problems, "the proposed plan is not valid")
    # A run that would fail at its first model call is refused now, naming what to set.
    refuse_without_llm(
        lambda: governed_model_issues(checked, policy), settings, "this governed run"
    )
    return GovernedInput(
        request=request,
        context=context,
        plan=plan,
        policy=policy,
        requester=Principal(principal=caller.principal, roles=list(caller.roles)),
        tools=tools,
        notify=NotifyDefaults(),
    )
