"""A pipeline, or a governed run, that asks an LLM is refused at start when this API has no LLM
endpoint.

The API cannot see the worker's settings, so it checks its own: a deployment passes the same
`STEPGATE_LLM_BASE_URL` and `STEPGATE_LLM_MODEL` to both (docker-compose.yml does). Without
the check such a run would start, then fail at its first model call on the worker."""

from __future__ import annotations

from collections.abc import Callable

from activities.config import Settings
from api.errors import ApiError
from workflows.language.definition import Definition
from workflows.language.policy import Policy
from workflows.language.reach import model_calls
from workflows.language.validation import Issue

LLM_SETTINGS = ("STEPGATE_LLM_BASE_URL", "STEPGATE_LLM_MODEL")


def missing_llm_settings(settings: Settings) -> list[str]:
    """The LLM settings this process lacks, by their environment names."""
    values = (settings.stepgate_llm_base_url, settings.stepgate_llm_model)
    return [name for name, value in zip(LLM_SETTINGS, values, strict=True) if not value.strip()]


def model_issues(definition: Definition, pipelines: dict[str, Definition]) -> list[Issue]:
    """Where `definition` asks a model: its own calls by path, and each step that runs a child
    pipeline asking one (at any depth: `pipelines` is the run's transitive snapshot)."""
    issues = [
        Issue(c.path, f"{c.tool} ({c.kind}) asks the LLM endpoint")
        for c in model_calls(_raw(definition))
    ]
    for i, step in enumerate(definition.steps):
        if isinstance(step.pipeline, str):
            found = _child_asking(step.pipeline, pipelines, set())
            if found:
                issues.append(
                    Issue(f"steps[{i}].pipeline", f"runs {found}, which asks the LLM endpoint")
                )
    return issues


def governed_model_issues(plan: Definition | None, policy: Policy) -> list[Issue]:
    """Where a governed run would ask a model: the planner when no plan is given, the policy's
    LLM assessor, and the given plan's own model calls (paths under `plan`)."""
    issues: list[Issue] = []
    if plan is None:
        issues.append(Issue("plan", "no plan is given: the LLM planner writes one"))
    else:
        issues += [Issue(f"plan.{i.path}", i.message) for i in model_issues(plan, {})]
    if policy.llm_assessor:
        issues.append(Issue("policy", f"policy {policy.name!r} has an LLM assessor"))
    return issues


def check_model_settings(
    definition: Definition, pipelines: dict[str, Definition], settings: Settings
) -> None:
    """422 `llm_not_configured` naming the missing settings and each place that needs them."""
    refuse_without_llm(lambda: model_issues(definition, pipelines), settings, "this pipeline")


def refuse_without_llm(issues_of: Callable[[], list[Issue]], settings: Settings, what: str) -> None:
    """422 `llm_not_configured` when this API lacks an LLM setting and `issues_of()` names a
    place that needs one (only looked for when a setting is missing)."""
    missing = missing_llm_settings(settings)
    if not missing:
        return
    issues = issues_of()
    if not issues:
        return
    names = " and ".join(missing)
    message = (
        f"{what} needs an LLM, and this API has no LLM endpoint: set {names} for the API "
        "and the worker (the API checks its own settings; the worker asks the model)"
    )
    details = [{"path": i.path, "message": i.message} for i in issues]
    raise ApiError(422, "llm_not_configured", message, details)


def _child_asking(ref: str, pipelines: dict[str, Definition], seen: set[str]) -> str | None:
    """`pipeline '<ref>'` when the child asks a model itself, `pipeline '<ref>' (through
    pipeline '<grandchild>')` when one of its own children does, else None."""
    child = pipelines.get(ref)
    if child is None or ref in seen:
        return None
    seen.add(ref)
    if model_calls(_raw(child)):
        return f"pipeline {ref!r}"
    for step in child.steps:
        if isinstance(step.pipeline, str):
            deeper = _child_asking(step.pipeline, pipelines, seen)
            if deeper:
                return f"pipeline {ref!r} (through {deeper})"
    return None


def _raw(definition: Definition) -> dict[str, object]:
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)
