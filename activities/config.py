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
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_connect_timeout_s: float = Field(30.0, gt=0)
    stepgate_task_queue: str = DEFAULT_TASK_QUEUE

    # Where local state lives (dev server database, API keys, artifacts).
    stepgate_data: Path = Path(".stepgate")
    stepgate_env: str = "development"

    # API.
    stepgate_api_host: str = "127.0.0.1"
    stepgate_api_port: int = 8000
    stepgate_api_keys_file: Path | None = None
    stepgate_public_url: str = ""
    stepgate_ui_url: str = "http://localhost:8233"
    stepgate_definitions_dir: Path = Path("definitions")
    stepgate_cors_origins: Annotated[list[str], NoDecode] = []

    # Payload encryption: a base64 32-byte key turns on AES-GCM for every payload.
    stepgate_encryption_key: str | None = None
    stepgate_encryption_key_id: str = "default"

    # Tools.
    stepgate_artifact_root: Path | None = None
    stepgate_secrets_dir: Path | None = None
    stepgate_shell_allow: Annotated[list[str], NoDecode] = []
    stepgate_llm_base_url: str = ""
    stepgate_llm_api_key: str | None = None
    stepgate_llm_model: str = ""
    stepgate_max_output_bytes: int = Field(65_536, ge=1_024)
    stepgate_preview_bytes: int = Field(2_048, ge=64)
    stepgate_http_max_body_bytes: int = Field(1_048_576, ge=1_024)

    # Gates.
    stepgate_notify_tool: str = ""
    stepgate_notify_url: str = ""

    # Worker.
    stepgate_max_concurrent_activities: int = Field(100, ge=1)
    stepgate_max_cached_workflows: int = Field(2_000, ge=0)
    stepgate_log_level: str = "INFO"
    stepgate_log_format: str = "auto"  # auto | json | console

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
