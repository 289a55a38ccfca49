"""Stepgate settings: one pydantic-settings class, read once per process from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from activities.addresses import parse_allow, split_host_port
from activities.egress import TEMPORAL_HTTP_DEFAULT_PORT

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
    stepgate_temporal_http_address: str = Field(
        "",
        description="the Temporal server's HTTP API host:port, which tools may never reach "
        "(default: TEMPORAL_ADDRESS's host, port 7243)",
    )

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
        "http://localhost:8233",
        description="Temporal Web UI URL (links, codec CORS origin; on the worker: the UI tools "
        "may never reach)",
    )
    stepgate_definitions_dir: Path = Field(
        Path("definitions"), description="the catalog of pipeline definitions (YAML)"
    )
    stepgate_cors_origins: Annotated[list[str], NoDecode] = Field(
        [], description="extra browser origins allowed to call the API (comma list)"
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
    stepgate_shell_sandbox: Literal["auto", "bwrap", "none"] = Field(
        "auto",
        description="auto: bubblewrap when it works here, else none; bwrap: refuse to run "
        "programs without it; none: limits and a clean environment only",
    )
    stepgate_shell_network: bool = Field(
        False, description="let shell.run programs reach the network inside the bwrap sandbox"
    )
    stepgate_shell_user: str = Field(
        "nobody", description="user shell.run programs run as when the worker runs as root"
    )
    stepgate_shell_max_cpu_s: int = Field(
        300, ge=1, description="CPU seconds a shell.run process may use (RLIMIT_CPU)"
    )
    stepgate_shell_max_memory_bytes: int = Field(
        2 * 1024**3, ge=64 * 1024**2, description="address space of a shell.run process (RLIMIT_AS)"
    )
    stepgate_shell_max_procs: int = Field(
        256,
        ge=8,
        description="processes and threads a shell.run program may run at once (RLIMIT_NPROC)",
    )
    stepgate_shell_max_open_files: int = Field(
        256, ge=16, description="open files of a shell.run process (RLIMIT_NOFILE)"
    )
    stepgate_shell_max_file_bytes: int = Field(
        1024**3,
        ge=1024**2,
        description="largest file a shell.run program may write (RLIMIT_FSIZE); also its /tmp size",
    )
    stepgate_transform_timeout_s: float = Field(
        5.0, gt=0, le=600, description="time budget of one data.transform evaluation"
    )
    stepgate_transform_max_output_bytes: int = Field(
        4 * 1024**2,
        ge=1_024,
        description="largest value (JSON size) data.transform may return or build on the way",
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
    stepgate_http_allow: Annotated[list[str], NoDecode] = Field(
        [],
        description="host, host:port, cidr or cidr:port entries (comma list) tools may reach "
        "although private, loopback or link-local",
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

    @field_validator("stepgate_http_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        # Always a comma list: an IPv6 entry such as [::1]:8080 must not read as a JSON array.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("stepgate_http_allow")
    @classmethod
    def _valid_allow(cls, value: list[str]) -> list[str]:
        parse_allow(value)  # a bad entry stops the process at start, naming the entry
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
    def temporal_http_address(self) -> str:
        """Where the Temporal server serves its HTTP API (Temporal's own default port if unset)."""
        if self.stepgate_temporal_http_address:
            return self.stepgate_temporal_http_address
        try:
            host, _ = split_host_port(self.temporal_address, None)
        except ValueError:
            return self.temporal_address  # reported, naming TEMPORAL_ADDRESS, where it is parsed
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{TEMPORAL_HTTP_DEFAULT_PORT}"

    @property
    def artifact_root(self) -> Path:
        return self.stepgate_artifact_root or self.stepgate_data / "artifacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
