"""Stepgate settings: one pydantic-settings class, read once per process from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from activities.addresses import parse_allow, split_host_port
from activities.config_channels import ChannelSettings
from activities.config_parse import ParseSettings
from activities.config_streams import StreamSettings
from activities.config_ui import UiSettings
from activities.config_versioning import VersioningSettings
from activities.egress import TEMPORAL_HTTP_DEFAULT_PORT
from activities.keyring import parse_keyring

DEFAULT_TASK_QUEUE = "stepgate"
# What STEPGATE_DATABASE_URL may name: PostgreSQL (asyncpg is the driver whatever the URL says),
# or a SQLite file spelled out.
DATABASE_SCHEMES = frozenset(
    {"postgresql", "postgres", "postgresql+asyncpg", "sqlite", "sqlite+aiosqlite"}
)


class Settings(VersioningSettings, StreamSettings, ParseSettings, UiSettings, ChannelSettings):
    """Every knob of the worker and the API; env names are the field names in upper case."""

    # Errors never echo input: some settings are keys.
    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

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
    stepgate_database_url: str | None = Field(
        None,
        repr=False,  # it may carry a password
        description="the memory of governed runs: `postgresql://user:password@host:port/db` "
        "(PostgreSQL); unset: a SQLite file, $STEPGATE_DATA/memory.db",
    )
    stepgate_env: str = Field(
        "development", description="`production` refuses to start the API without API keys"
    )

    # API.
    stepgate_api_host: str = Field("127.0.0.1", description="address the API listens on")
    stepgate_api_port: int = Field(8000, description="port the API listens on")
    stepgate_api_keys_file: Path | None = Field(
        None,
        description="YAML/JSON list of {key, principal, roles, expires?}, reread when it "
        "changes; no file, no access (the worker reads it too, to check scheduled runs)",
    )
    stepgate_permissions_file: Path | None = Field(
        None,
        description="YAML {role: [permission, ...]} replacing the default permissions of the "
        "roles it names",
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
        Path("definitions"),
        description="the catalog of pipeline definitions (YAML, read recursively; `policies/` "
        "is skipped)",
    )
    stepgate_catalog_poll_s: float = Field(
        2.0,
        ge=0,
        le=3_600,
        description="how often the API looks for changed catalog files, in seconds; 0: only on "
        "SIGHUP or POST /definitions/reload",
    )
    stepgate_cors_origins: Annotated[list[str], NoDecode] = Field(
        [], description="extra browser origins allowed to call the API (comma list)"
    )
    stepgate_max_body_bytes: int = Field(
        1_048_576, ge=1_024, description="largest request body the API reads (413 beyond it)"
    )
    stepgate_api_cpu_threads: int = Field(
        4, ge=1, le=64, description="threads the API reads the inbox and reloads the catalog in"
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

    # Payload encryption: a base64 32-byte key turns on AES-GCM for every payload. Kept out of
    # repr so a logged or printed Settings does not carry them.
    stepgate_encryption_key: str | None = Field(
        None,
        repr=False,
        description="base64 of 32 random bytes: encrypts every payload (AES-256-GCM), "
        "under the id STEPGATE_ENCRYPTION_KEY_ID",
    )
    stepgate_encryption_keys: str | None = Field(
        None,
        repr=False,
        description="keyring for rotation: comma list of `id:BASE64`; payloads decrypt with "
        "any of them",
    )
    stepgate_encryption_key_id: str = Field(
        "default",
        description="id of the key new payloads are encrypted with (stored with each payload)",
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
    # Workflow code runs under one interpreter lock: more tasks at once only make each take
    # longer, and a task (local steps included) past Temporal's 10 s timeout is done again.
    stepgate_max_concurrent_workflow_tasks: int = Field(
        16,
        ge=2,
        le=1_000,
        description="workflow tasks one worker processes at once",
    )
    stepgate_worker_metrics_address: str = Field(
        "",
        pattern=r"^$|^[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]{2,45}\]:[0-9]{1,5}$",
        description="host:port the worker serves Prometheus metrics on (temporal_* and "
        "stepgate_*); empty: none",
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

    @field_validator("stepgate_database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        # Checked at start, naming the setting; the URL itself is never echoed (it may hold a
        # password).
        if value is not None and value.strip():
            scheme = value.partition(":")[0].lower()
            if scheme not in DATABASE_SCHEMES:
                raise ValueError(
                    "STEPGATE_DATABASE_URL must start with postgresql:// (or be unset for SQLite)"
                )
            return value.strip()
        return None

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
        # A bad keyring stops the process at start, not at first use.
        self.encryption_keyring()
        self.link_keyring()
        return self

    def encryption_keyring(self) -> dict[str, bytes]:
        """Key id -> 32-byte key from STEPGATE_ENCRYPTION_KEYS plus STEPGATE_ENCRYPTION_KEY (under
        STEPGATE_ENCRYPTION_KEY_ID); empty when payloads stay plain. Messages never echo a key."""
        return parse_keyring(
            self.stepgate_encryption_keys,
            self.stepgate_encryption_key,
            self.stepgate_encryption_key_id,
            "STEPGATE_ENCRYPTION",
        )

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
    def memory_db_path(self) -> Path:
        """Where the memory lives when STEPGATE_DATABASE_URL is unset."""
        return self.stepgate_data / "memory.db"

    @property
    def artifact_root(self) -> Path:
        return self.stepgate_artifact_root or self.stepgate_data / "artifacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
