"""Starting runs, listing them, and deciding their gates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

from api.schemas.common import CatalogRef, InlineDefinition
from workflows.agent_models import CallView, GrantSpec
from workflows.language.definition import Action
from workflows.language.forms import FIELD_NAME
from workflows.language.limits import MAX_FORM_FIELDS, MAX_FORM_STRING_CHARS, MAX_NAME_CHARS
from workflows.models import AuditEntry, GateView, ItemView, IterationView, StepView

WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"


class WorkflowCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: CatalogRef | InlineDefinition = Field(
        description="a catalog name (`deploy`), a pinned version (`deploy@2`), "
        "or an inline definition"
    )
    input: dict[str, Any] = Field(default_factory=dict)
    workflow_id: str | None = Field(None, pattern=WORKFLOW_ID_PATTERN)
    approval_mode: Literal["manual", "auto"] = "manual"


class WorkflowLinks(BaseModel):
    self: str
    events: str
    web_ui: str


class WorkflowPublic(BaseModel):
    workflow_id: str
    run_id: str
    links: WorkflowLinks


class WorkflowSummary(BaseModel):
    workflow_id: str
    run_id: str
    pipeline: str | None
    state: str | None = Field(description="Stepgate run state")
    execution_status: str | None = Field(description="Temporal's execution status")
    awaiting: list[str]
    started_at: datetime | None
    closed_at: datetime | None


class WorkflowList(BaseModel):
    items: list[WorkflowSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class LifecycleCreate(BaseModel):
    """The optional body of cancel, pause and resume; the actor is always the caller's key."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2_000, description="recorded in the run's audit")


# A decision's answers to a gate's form: at most MAX_FORM_FIELDS fields named as a form names
# them, each a bounded string, a number or a boolean; the gate's form says which (checked by the
# run, which answers 422 bad_response naming the field). Strict: a string too long is never read as
# a number, nor a number as a string.
FormAnswer = (
    Annotated[str, Field(max_length=MAX_FORM_STRING_CHARS)] | StrictInt | StrictFloat | StrictBool
)
FieldName = Annotated[str, StringConstraints(pattern=f"^{FIELD_NAME.pattern}$")]
Answers = Annotated[
    dict[FieldName, FormAnswer],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_FORM_FIELDS,
            "patternProperties": {
                f"^{FIELD_NAME.pattern}$": {
                    "anyOf": [
                        {"type": "string", "maxLength": MAX_FORM_STRING_CHARS},
                        {"type": "number"},
                        {"type": "boolean"},
                    ]
                }
            },
            "additionalProperties": False,
        }
    ),
]


class DecisionCreate(BaseModel):
    """The body of a gate decision; the actor is always the caller's key, never the body."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    comment: str | None = Field(None, max_length=4_000)
    patch: Any = None
    digest: str | None = Field(None, max_length=MAX_NAME_CHARS)
    grant: GrantSpec | None = Field(
        None,
        description="with approve at an agent call gate only: later calls of the same tool in "
        "this run run without a gate until it expires (at most 24h) or its calls are used",
    )
    response: Answers | None = Field(
        None,
        max_length=MAX_FORM_FIELDS,
        description="the answers to the gate's form (`form` in its view): needed with approve "
        "and modify at a gate with a form, refused at a gate without one",
    )


class RevokeCreate(BaseModel):
    """The optional body of a grant's revocation; the actor is always the caller's key."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2_000, description="recorded in the run's audit")


class AuditPublic(BaseModel):
    entries: list[AuditEntry] = Field(description="oldest first")
    total: int = Field(description="entries the run has recorded in all")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class PagePublic(BaseModel):
    total: int = Field(description="entries of the whole list (in `state`, when asked)")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class StepsPublic(PagePublic):
    entries: list[StepView] = Field(description="in definition order")


class ItemsPublic(PagePublic):
    entries: list[ItemView] = Field(description="by index")


class IterationsPublic(PagePublic):
    entries: list[IterationView] = Field(description="oldest first")


class CallsPublic(PagePublic):
    entries: list[CallView] = Field(description="in the order the model asked for them")


class GatesPublic(PagePublic):
    entries: list[GateView] = Field(
        description="each step's and item's latest gate, in the order of the steps"
    )


class GovernedCreate(BaseModel):
    """A governed run: a request, its context (the plan's input), and optionally a plan."""

    model_config = ConfigDict(extra="forbid")

    request: str = Field(min_length=1, max_length=10_000)
    context: dict[str, Any] = Field(default_factory=dict)
    plan: InlineDefinition | None = Field(None, description="a proposed plan; else the LLM plans")
    policy: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,100}$", description="a policy in definitions/policies/"
    )
    workflow_id: str | None = Field(None, pattern=WORKFLOW_ID_PATTERN)
