"""Stepgate settings: one pydantic-settings class, read once per process from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_TASK_QUEUE = "stepgate"


class Settings(BaseSettings):
    """Every knob of the worker and the API; env names are the field names in upper case."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    # Temporal connection (names fixed by the contract in DESIGN.md).
    temporal_address: str = Field("localhost:7233", description="Temporal frontend host:port")
    temporal_namespace: str = Field("default", description="Temporal namespace")
    temporal_connect_timeout_s: float = Field(
        30.0, gt=0, description="how long the worker keeps trying to reach Temporal at start"
    )
    stepgate_task_queue: str = Field(DEFAULT_TASK_QUEUE, description="default task queue")

    stepgate_data: Path = Field(
        Path(".stepgate"), description="local state: dev server database, API keys, artifacts"
    )
    stepgate_env: str = Field(
        "development", description="`production` refuses to start the API without API keys"
    )

    # API.
    stepgate_api_host: str = Field("127.0.0.1", description="address the API listens on")
    stepgate_api_port: int = Field(8000, description="port the API listens on")
    stepgate_api_keys_file: Path | None = Field(
        None, description="YAML/JSON list of {key, principal, roles}; no file, no access"
    )
    stepgate_public_url: str = Field(
        "", description="the API's external URL, used for links in gate notifications"
    )
    stepgate_ui_url: str = Field(
        "http://localhost:8233", description="Temporal Web UI URL (links, codec CORS origin)"
    )
    stepgate_definitions_dir: Path = Field(
        Path("definitions"), description="the catalog of pipeline definitions (YAML)"
    )
    stepgate_cors_origins: Annotated[list[str], NoDecode] = Field(
        [], description="extra browser origins allowed to call the API (comma list)"
    )

    # Overload: bounds held by each API process (per replica, not shared between them).
    stepgate_rate_per_s: float = Field(
        50.0, ge=0, description="requests per second each key's principal may send; 0: no limit"
    )
    stepgate_rate_burst: int = Field(
        100, ge=1, description="requests a principal may send at once before the rate applies"
    )
    stepgate_streams_per_key: int = Field(
        16, ge=1, description="live /events streams each key's principal may hold open"
    )
    stepgate_updates_per_run: int = Field(
        5,
        ge=1,
        le=1_000,
        description="decisions one API process sends to one run at once; times the API "
        "replicas, keep it at most Temporal's limit.workflowExecution.maxInFlightUpdates (10)",
    )

    # Payload encryption: a base64 32-byte key turns on AES-GCM for every payload.
    stepgate_encryption_key: str | None = Field(
        None, description="base64 of 32 random bytes: encrypts every payload (AES-256-GCM)"
    )
    stepgate_encryption_key_id: str = Field(
        "default", description="name of the key, stored with each payload for rotation"
    )

    # Tools.
    stepgate_artifact_root: Path | None = Field(
        None, description="artifact folder (default: $STEPGATE_DATA/artifacts)"
    )
    stepgate_secrets_dir: Path | None = Field(
        None, description="folder of secret files, one per name (besides STEPGATE_SECRET_<NAME>)"
    )
    stepgate_shell_allow: Annotated[list[str], NoDecode] = Field(
        [], description="executables shell.run may start (comma list); empty: shell.run is off"
    )
    stepgate_llm_base_url: str = Field("", description="OpenAI-compatible base URL for llm.chat")
    stepgate_llm_api_key: str | None = Field(None, description="API key for llm.chat")
    stepgate_llm_model: str = Field("", description="model name for llm.chat")
    stepgate_max_output_bytes: int = Field(
        65_536, ge=1_024, description="step outputs larger than this go to an artifact"
    )
    stepgate_preview_bytes: int = Field(
        2_048, ge=64, description="size of output previews in status"
    )
    stepgate_http_max_body_bytes: int = Field(
        1_048_576, ge=1_024, description="largest response body http.request keeps"
    )

    # Gates.
    stepgate_notify_tool: str = Field(
        "", description="tool that announces opened gates (e.g. notify.webhook); empty: none"
    )
    stepgate_notify_url: str = Field("", description="webhook URL for gate notifications")

    # Worker.
    stepgate_max_concurrent_activities: int = Field(
        100, ge=1, description="tool calls one worker runs at once"
    )
    stepgate_max_cached_workflows: int = Field(
        2_000, ge=0, description="runs a worker keeps in memory between tasks"
    )
    stepgate_log_level: str = Field("INFO", description="log level")
    stepgate_log_format: str = Field(
        "auto", description="auto (console on a TTY, else JSON), json or console"
    )

    @field_validator("stepgate_shell_allow", "stepgate_cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        # A plain comma list is friendlier in an env file than a JSON array.
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.stepgate_env == "production" and self.stepgate_api_keys_file is None:
            raise ValueError(
                "STEPGATE_API_KEYS_FILE must be set when STEPGATE_ENV=production: "
                "the API refuses to run without keys"
            )
        return self

    @property
    def artifact_root(self) -> Path:
        return self.stepgate_artifact_root or self.stepgate_data / "artifacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
