"""Turning a start request into a validated PipelineInput snapshot, shared by runs and schedules."""

from __future__ import annotations

import json
from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.access import START, START_AUTO, START_INLINE
from activities.config import Settings
from activities.registry import ToolRegistry
from api.auth import Caller, require
from api.errors import invalid
from api.model_check import check_model_settings
from workflows.contract import SA_PIPELINE, SA_STATE, RunState
from workflows.language.catalog import Catalog
from workflows.language.definition import Definition, NotifySpec
from workflows.language.refs import RefError, Scope
from workflows.language.validation import Issue, validate_definition, validate_input
from workflows.models import NotifyDefaults, PipelineInput, Principal

SUMMARY_CHARS = 200


def resolve_definition(
    ref: str | dict[str, Any], catalog: Catalog, registry: ToolRegistry
) -> tuple[Definition | None, list[Issue]]:
    """A catalog entry by name, or an inline definition checked like a catalog file."""
    if isinstance(ref, str):
        try:
            return catalog.get(ref), []
        except KeyError as err:
            return None, [Issue("definition", str(err.args[0]))]
    report = validate_definition(ref, registry, catalog=catalog.versions)
    issues = [
        Issue(f"definition.{i.path}" if i.path else "definition", i.message) for i in report.errors
    ]
    return report.definition, issues


def start_needs(ref: str | dict[str, Any], approval_mode: str) -> list[str]:
    """The permissions a start needs: a catalog pipeline `start`; an inline definition also
    `start_inline` (it could be a catalog pipeline without its gates); auto mode `start_auto`."""
    needs = [START]
    if not isinstance(ref, str):
        needs.append(START_INLINE)
    if approval_mode == "auto":
        needs.append(START_AUTO)
    return needs


def build_input(
    ref: str | dict[str, Any],
    data: dict[str, Any],
    approval_mode: str,
    caller: Caller,
    catalog: Catalog,
    registry: ToolRegistry,
    settings: Settings,
) -> PipelineInput:
    """Check the caller may start this, then validate everything at once; 403 naming the
    missing permissions, 422 with every problem when anything is wrong (and 422
    `llm_not_configured` when it asks an LLM and this API has no LLM endpoint)."""
    # Before validation: whoever may not start it learns nothing from the validator.
    require(caller, *start_needs(ref, approval_mode), doing="this start")
    definition, issues = resolve_definition(ref, catalog, registry)
    if definition is not None:
        issues += validate_input(definition, data)
    if definition is None or issues:
        raise invalid(issues)
    try:
        # From the same catalog snapshot as the definition: a reload cannot split the two.
        pipelines = catalog.children(definition)
    except KeyError as err:
        # A child's file was removed (or never loaded) after its parent was validated.
        raise invalid([Issue("definition", str(err.args[0]))]) from None
    # A run that would fail at its first model call is refused now, naming what to set.
    check_model_settings(definition, pipelines, settings)
    notify = (
        NotifySpec.model_validate(
            {"tool": settings.stepgate_notify_tool, "with": {"url": settings.stepgate_notify_url}}
        )
        if settings.stepgate_notify_tool
        else None
    )
    return PipelineInput(
        definition=definition,
        input=data,
        requester=Principal(principal=caller.principal, roles=list(caller.roles)),
        approval_mode="auto" if approval_mode == "auto" else "manual",
        pipelines=pipelines,
        notify=NotifyDefaults(notify=notify),
    )


def summary(inp: PipelineInput, workflow_id: str) -> str:
    """What the Web UI shows in its run list: the definition's template, or the input in short."""
    d = inp.definition
    text = ""
    if d.summary:
        run = {"workflow_id": workflow_id, "pipeline": d.name, "requester": _requester(inp)}
        try:
            text = str(Scope(inp.input, {}, {}, run).resolve(d.summary))
        except RefError:
            text = ""
    if not text:
        text = json.dumps(inp.input, sort_keys=True, separators=(",", ":"), default=str)
    return clip_summary(f"{d.name} v{d.version}: {text}")


def clip_summary(text: str) -> str:
    """A run's one-line summary for the Web UI's run list, cut to SUMMARY_CHARS."""
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def details(inp: PipelineInput) -> str:
    """Markdown the Web UI shows on the run page."""
    d = inp.definition
    lines = [
        f"**{d.name}** v{d.version}" + (f" — {d.description}" if d.description else ""),
        f"requested by `{_requester(inp)}`, approval mode `{inp.approval_mode}`",
        "",
        *(
            f"- `{s.id}`: {s.resolved_tool or s.tool or 'pipeline ' + str(s.pipeline)}"
            for s in d.steps
        ),
    ]
    return "\n".join(lines)


def _requester(inp: PipelineInput) -> str | None:
    return inp.requester.principal if inp.requester else None


def start_attributes(inp: PipelineInput) -> TypedSearchAttributes:
    """What visibility knows of a run from its first moment: its pipeline, and that it runs."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_PIPELINE, inp.definition.name),
            SearchAttributePair(SA_STATE, RunState.RUNNING.value),
        ]
    )
