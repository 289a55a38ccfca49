"""Structured logging: JSON lines in production, a console renderer on a TTY."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

from activities.config import Settings
from activities.masking import mask, mask_text
from activities.secrets import SecretStore
from activities.tracing import add_trace_ids


class SecretMasker:
    """A last step before rendering, for our loggers and every library's alike: every value of a
    secret this process holds is masked wherever it shows up in a log line (message, fields,
    exception text). The values are read again at most every REFRESH_S seconds, so a secret
    file added later is covered too."""

    REFRESH_S = 30.0

    def __init__(self, store: SecretStore) -> None:
        self._store = store
        self._values: frozenset[str] = frozenset()
        self._read_at = -self.REFRESH_S

    def values(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._read_at >= self.REFRESH_S:
            self._values = frozenset(self._store.known_values())
            self._read_at = now
        return self._values

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        values = self.values()
        if not values:
            return event
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = mask_text(value, values)
            elif isinstance(value, dict | list):
                event[key] = mask(value, values)
        return event


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library (Temporal's loggers) through one renderer."""
    fmt = settings.stepgate_log_format
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # The current span's trace and span ids, when tracing is on and a span is current.
        add_trace_ids,
    ]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                SecretMasker(SecretStore(settings.stepgate_secrets_dir)),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.stepgate_log_level.upper())
    # Access logs repeat what the API's own request log says.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO (httpcore more at DEBUG), and a tool's query
    # string may carry a resolved secret: only their warnings and errors are worth keeping.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
